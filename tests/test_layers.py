"""The CPU conv routing in ``layers.conv_general_dilated`` matches ``lax`` to float rounding (values and gradients)."""

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
    (8, 3, 1, "SAME", 4, 4),           # the native path
]


@pytest.mark.parametrize("size,k,s,pad,cin,cout", CASES)
def test_conv_matches_lax_values_and_gradients(size, k, s, pad, cin, cout):
  kx, kw = jax.random.split(jax.random.key(size * 10 + k))
  x = jax.random.normal(kx, (2, size, size, cin))
  w = jax.random.normal(kw, (k, k, cin, cout)) / (k * np.sqrt(cin))
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
