"""The CPU conv routing in ``layers.conv_general_dilated`` matches ``lax`` to float rounding (values and gradients)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tl_jax import models
from tl_jax.models import layers

CASES = [  # input spatial, kernel, stride, padding, cin, cout
    (2, 3, 1, "SAME", 8, 6),           # map smaller than the kernel: the swapped-operand case
    (4, 3, 2, ((1, 1), (1, 1)), 8, 6),  # stride 2 whose output (2x2) is smaller than the kernel
    (9, 7, 2, ((3, 3), (3, 3)), 3, 5),  # ResNet stem shape
    (5, 1, 1, "VALID", 8, 6),          # 1x1 -> dot
    (6, 1, 2, "VALID", 8, 6),          # strided 1x1 projection shortcut
    (7, 3, 1, ((0, 1), (0, 1)), 4, 4),  # TF-style asymmetric padding
    (8, 3, 1, "SAME", 4, 4),           # 8x8 output: the native path
    (10, 3, 1, "SAME", 4, 6),          # 10x10 output: native forward, tap-scan kernel gradient
    (20, 3, 2, ((1, 1), (1, 1)), 4, 6),  # ... strided (VGG/ResNet downsampling)
    (19, 3, 2, ((0, 1), (0, 1)), 4, 6),  # ... TF-style asymmetric padding, odd input
    (24, 7, 2, ((3, 3), (3, 3)), 3, 5),  # ... the ResNet stem at 24 px
]


def _normal(rng, shape):
  return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("size,k,s,pad,cin,cout", CASES)
def test_conv_matches_lax_values_and_gradients(size, k, s, pad, cin, cout):
  rng = np.random.default_rng(size * 10 + k)  # numpy: an eager jax.random draw compiles per shape
  x = _normal(rng, (6, size, size, cin))  # 6 images: the kernel-gradient scan takes several slices
  w = _normal(rng, (k, k, cin, cout)) / (k * np.sqrt(cin))
  dn = ("NHWC", "HWIO", "NHWC")

  def loss(conv, x, w):
    y = conv(x, w, (s, s), pad, dimension_numbers=dn)
    return jnp.sum(jnp.sin(y)), y

  (_, want), gwant = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(lax.conv_general_dilated, x, w)
  (_, got), ggot = jax.jit(jax.value_and_grad(loss, argnums=(1, 2), has_aux=True), static_argnums=0)(
      layers.conv_general_dilated, x, w)
  np.testing.assert_allclose(got, want, atol=2e-5)
  for g, h in zip(ggot, gwant):
    np.testing.assert_allclose(g, h, atol=2e-5)


@pytest.mark.parametrize("size,scans", [(8, False), (10, True)])
def test_large_map_kxk_kernel_gradient_takes_the_tap_scan(size, scans):
  """Routed kxk convolutions with outputs over 8x8 take ``conv_tap_grad``'s kernel gradient (a scan)."""
  x, w = jnp.zeros((4, size, size, 4)), jnp.zeros((3, 3, 4, 4))
  with layers.impl("cpu_routed"):
    jaxpr = jax.make_jaxpr(jax.grad(lambda w: layers.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()))(w)
  assert ("scan[" in str(jaxpr)) == scans


def test_resnet50_small_maps_avoid_the_swapped_convolution():
  """At 64 px stage 4 runs on 2x2 maps; XLA:CPU would swap those 3x3 convs (``rhs_reversal``, ~100x slower)."""
  model = models.create("resnet50", 10)
  x = jnp.zeros((2, 64, 64, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  variables = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), variables)

  def loss(params, x):
    out, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    return out[0].sum()  # (logits, features)

  hlo = jax.jit(jax.grad(loss)).lower(variables["params"], x).compile().as_text()
  assert "rhs_reversal" not in hlo and "01fb_o01i" not in hlo


@pytest.mark.parametrize("impl", ["native", "cpu_routed"])
@pytest.mark.parametrize("k,s,d,pad,size", [(3, 1, 2, "SAME", 9), (3, 2, 2, "torch", 10), (5, 2, 3, "SAME", 12),
                                            (3, 2, 1, "torch", 8)])
def test_depthwise_bias_and_dilation_match_grouped_nn_conv(impl, k, s, d, pad, size):
  """``DepthwiseConv(use_bias, dilation)`` = ``nn.Conv(C, groups=C, kernel_dilation=d)``, values and gradients."""
  # 6 images: the routed kernel gradient scans over slices of the batch (one image per core, up to
  # a divisor of the batch), so it sums several slices on any machine.
  x = _normal(np.random.default_rng(0), (6, size, size, 4))
  model = layers.DepthwiseConv(k, s, padding=pad, use_bias=True, dilation=d)
  variables = jax.tree.map(lambda a: a + 0.1, jax.jit(model.init)(jax.random.key(1), x))  # a non-zero bias
  assert sorted(variables["params"]) == ["bias", "kernel"]
  pads = [layers.conv_padding(pad, size, d * (k - 1) + 1, s)] * 2
  ref = nn.Conv(4, (k, k), (s, s), padding=pads, kernel_dilation=d, feature_group_count=4)
  grad = lambda apply: jax.jit(jax.value_and_grad(lambda v, x: jnp.sum(jnp.sin(apply(v, x))), argnums=(0, 1)))
  want = grad(ref.apply)(variables, x)
  with layers.impl(impl):
    got = grad(model.apply)(variables, x)
  for g, h in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, h, atol=3e-5, rtol=1e-5)


def test_layer_impl_is_part_of_the_jit_cache_key():
  f = jax.jit(lambda x: x + layers.routed())
  with layers.impl("native"):
    assert int(f(0)) == 0
  with layers.impl("cpu_routed"):
    assert int(f(0)) == 1  # traced again, not the cached native trace
  assert int(f(0)) == int(jax.default_backend() == "cpu")  # "auto"
  with pytest.raises(ValueError, match="cpu_routed"):
    layers.impl("gpu").__enter__()


def test_classifier_layer_impl_overrides_the_context():
  x = jnp.zeros((1, 32, 32, 3))

  def jaxpr(layer_impl):
    model = models.create("efficientnet_lite0", 3, layer_impl=layer_impl)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    with layers.impl("cpu_routed"):
      return str(jax.make_jaxpr(model.apply)(variables, x))

  assert "feature_group_count=32" in jaxpr("native")  # the grouped depthwise conv of stage 1
  assert "feature_group_count=32" not in jaxpr(None)  # the context's shifted sum


def test_bn_momentum_sets_every_batchnorm_update():
  # Training mode updates each running mean as m * old + (1 - m) * batch mean. From zero means,
  # new / (1 - m) is the batch mean whatever m: the override must give every layer m = 0.5
  # where resnet18's own is torch's 0.9.
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3), maxval=255.0)
  init = jax.jit(models.create("resnet18", 3).init)(jax.random.key(1), x)
  assert all(np.all(np.asarray(v) == 0.0) for p, v in jax.tree.leaves_with_path(init["batch_stats"])
             if p[-1].key == "mean")

  def means(momentum):
    apply = jax.jit(lambda v: models.create("resnet18", 3, bn_momentum=momentum).apply(
        v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})[1])
    return [np.asarray(v) for p, v in jax.tree.leaves_with_path(apply(init)["batch_stats"])
            if p[-1].key == "mean"]

  own, half = means(0.0), means(0.5)
  assert len(own) == 20  # stem + 8 blocks x 2 + 3 downsample projections
  for a, b in zip(own, half):
    np.testing.assert_allclose(b / 0.5, a / 0.1, rtol=1e-4, atol=1e-5)


def test_bn_momentum_must_be_a_fraction():
  with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\).*model.bn_momentum"):
    with layers.bn_momentum(1.5):
      pass
