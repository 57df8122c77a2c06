"""The native layer path (every accelerator's) against the CPU-routed one, on CPU, for every model.

CI has no accelerator, and ``"auto"`` takes the routed path on CPU, so without
this test the convolutions GPUs and TPUs run would never be traced in CI.
Only the routed kernels differ between the paths (``layers.conv_general_dilated``'s
im2col and tap-gradient convolutions, ``depthwise_shifted``); everything else is
the same code. The default run checks ``DEFAULT``: models chosen so that every
routed-kernel call in the zoo (its kind, kernel, stride, padding, input parity and
small-map case: :func:`_signatures`) occurs in one of them, which the slow
``test_default_models_cover_every_routed_kernel_signature`` checks over the zoo.
The whole zoo is ``slow``. Compared: eval logits, train-mode logits and every
parameter gradient of the train step's loss.

BatchNorm runs on its running statistics in the train step (the repo's
``bn="running"``): batch statistics of 2 images on the 1x1 maps of a 32 px
input divide by near-zero deviations, so rounding-level differences grow to
O(1) in the forward pass already (gradients of 1e8 were seen on Lite0) and no
tolerance could separate a bug from chaos. BatchNorm's own code is the same on
both paths; the convolutions are what differ.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax import models, partition
from tl_jax.models import layers
from tl_jax.train import steps

# Every routed-kernel signature of the zoo at IMAGE_SIZE, at the least test time (a weighted set
# cover of the measured per-model seconds): 10 models, ~270 of the 436 s the 19 family
# representatives took, and keras_mobilenet_v3_small's 5x5 stride-2 taps on a 4x4 map, which no
# representative had.
DEFAULT = ("convnext_tiny", "efficientnet_b0", "efficientnet_lite0", "keras_inception_v3", "keras_mobilenet_v2",
           "keras_mobilenet_v3_small", "keras_xception", "mobilenet_v2", "mobilenet_v3_small", "resnet18")
# Per-leaf tolerance relative to the leaf's largest gradient. The two paths sum
# the same products in other orders: each layer adds a few float32 eps (1.2e-7)
# of relative error, which compounds over ~50 layers and through BatchNorm's
# division by BatchNorm's running deviations. Observed worst over the zoo:
# 1.2e-6 .. 8e-6 of a leaf's largest gradient; 1e-4 leaves 10x headroom and
# still fails on any real error (a wrong pad or tap moves whole leaves).
RTOL = 1e-4
# Inception and Xception reduce 32 px to nothing (all-zero features): their smallest sensible input.
IMAGE_SIZE = {"inception_v3": 75, "keras_inception_v3": 75, "keras_xception": 75}
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _random_variables(shapes, seed: int = 0):
  """Random variables of ``shapes`` on the host (no init to compile): weights ~ N(0, 1/fan_in),
  BatchNorm scales and variances near 1, biases and means small, the head included (a zero
  head would zero every backbone gradient)."""
  rng = np.random.default_rng(seed)

  def fill(path, x):
    leaf = jax.tree_util.keystr(path[-1:], simple=True)
    if leaf in ("scale", "var"):
      return (1 + 0.2 * rng.random(x.shape)).astype(x.dtype)
    if x.ndim == 1:
      return (0.1 * rng.standard_normal(x.shape)).astype(x.dtype)
    return (rng.standard_normal(x.shape, np.float32) / np.sqrt(np.prod(x.shape[:-1]))).astype(x.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _check(name: str) -> float:
  """Asserts native == cpu_routed for ``name``; returns the worst relative difference."""
  rng = np.random.default_rng(1)
  size = IMAGE_SIZE.get(name, 32)
  images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  labels = rng.integers(0, 5, 2)
  shapes = jax.eval_shape(models.create(name, 5).init, jax.random.key(1), images)
  frozen_bn = {k.rsplit("/", 1)[0] for k in partition.flatten(shapes.get("batch_stats", {}))}
  model = models.create(name, 5, dropout_rate=0.0, frozen_bn=frozen_bn)
  # Unoptimised XLA:CPU code: compiling dominates this test, and the paths' math is the same.
  options = COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  compiled = {}

  def run(impl, variables):
    def objective(params, stats):  # the train step's loss; with dropout 0 and running BN, logits are eval's
      (logits, _), _ = model.apply({"params": params, "batch_stats": stats}, images, train=True,
                                   mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
      return steps.cross_entropy(logits, labels), logits

    args = variables["params"], variables.get("batch_stats", {})
    # Full float32 products: a GPU's default (TF32 convolutions and matmuls) differs by ~1e-3.
    with layers.impl(impl), jax.default_matmul_precision("highest"):
      if impl not in compiled:  # the variables are arguments: one compilation per path
        compiled[impl] = jax.jit(jax.value_and_grad(objective, has_aux=True)).lower(*args).compile(options)
      (_, logits), grads = compiled[impl](*args)
    return {"logits": logits, **{f"grad:{k}": v for k, v in partition.flatten(grads).items()}}

  # Random weights can leave a leaf's gradient all zero (a small squeeze-excite whose ReLU is dead
  # on both images: regnet_y_800mf at seed 0); its check would be empty, so draw again.
  for seed in range(3):
    variables = jax.device_put(_random_variables(shapes, seed))
    native = jax.device_get(run("native", variables))
    # In numpy: eagerly on the device each reduction compiled per shape (~50 s over the defaults).
    scale = {k: float(np.abs(v).max()) for k, v in native.items()}
    empty = [k for k, v in scale.items() if not v > 0]
    if not empty:
      break
  assert not empty, f"{name}: all-zero {empty} at 3 seeds, so their check would be empty"
  routed = jax.device_get(run("cpu_routed", variables))
  assert native.keys() == routed.keys()
  worst = {k: float(np.abs(routed[k] - v).max()) / scale[k] for k, v in native.items()}
  bad = {k: f"{v:.2e}" for k, v in worst.items() if not v <= RTOL}
  assert not bad, f"{name}: native vs cpu_routed differ beyond {RTOL} of the leaf's scale: {bad}"
  return max(worst.values())


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in models.names()])
def test_native_matches_cpu_routed(name):
  _check(name)


@pytest.mark.slow
def test_a_wrong_native_path_fails(monkeypatch):
  """The check catches a real error: native depthwise convolutions padded on the wrong side."""
  monkeypatch.setattr(layers, "depthwise_pads", lambda shape, k, s, padding, d: [(k - 1, 0)] * 2
                      if not layers.routed() else [layers.conv_padding(padding, n, d * (k - 1) + 1, s)
                                                   for n in shape[1:3]])
  with pytest.raises(AssertionError, match="differ beyond"):
    _check("efficientnet_lite0")


def _signatures(name: str) -> set[tuple]:
  """The routed kernels ``name``'s train step calls at IMAGE_SIZE (traced, not run): per call its
  kind, kernel, stride, padding, input size modulo stride, and which dimensions have an input
  smaller than the kernel, an output of one pixel or none (the cases a tap or pad can get wrong)."""
  calls = set()

  def conv(kind, fn):
    def record(x, kernel, strides, pads, *args, **kwargs):
      n, k = x.shape[1:3], kernel.shape[:2]
      out = [(i + lo + hi - j) // s + 1 for i, j, s, (lo, hi) in zip(n, k, strides, pads)]
      calls.add((kind, tuple(k), tuple(strides), tuple(map(tuple, pads)), tuple(i % s for i, s in zip(n, strides)),
                 tuple(i < j for i, j in zip(n, k)), tuple(o < j for o, j in zip(out, k)), tuple(min(o, 2) for o in out)))
      return fn(x, kernel, strides, pads, *args, **kwargs)
    return record

  def depthwise(x, kernel, stride, padding="SAME", dilation=1):
    k, n = kernel.shape[0], x.shape[1:3]
    pads = layers.depthwise_pads(x.shape, k, stride, padding, dilation)
    out = [(i + lo + hi - dilation * (k - 1) - 1) // stride + 1 for i, (lo, hi) in zip(n, pads)]
    calls.add(("depthwise", k, stride, tuple(map(tuple, pads)), dilation, tuple(i % stride for i in n),
               tuple(i < k for i in n), tuple(min(o, 2) for o in out)))
    return fn_depthwise(x, kernel, stride, padding, dilation)

  fn_depthwise = layers.depthwise_shifted
  size = IMAGE_SIZE.get(name, 32)
  images = jnp.zeros((2, size, size, 3), jnp.uint8)
  model = models.create(name, 5, dropout_rate=0.0)
  with pytest.MonkeyPatch.context() as patch, layers.impl("cpu_routed"):
    patch.setattr(layers, "im2col_conv", conv("im2col", layers.im2col_conv))
    patch.setattr(layers, "conv_tap_grad", conv("tap_grad", layers.conv_tap_grad))
    patch.setattr(layers, "depthwise_shifted", depthwise)
    shapes = jax.eval_shape(model.init, jax.random.key(1), images)

    def loss(params, stats):
      (logits, _), _ = model.apply({"params": params, "batch_stats": stats}, images, train=True,
                                   mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
      return logits.sum()

    jax.eval_shape(jax.grad(loss), shapes["params"], shapes.get("batch_stats", {}))
  return calls


@pytest.mark.slow  # traces every model: 7 min on 2 cores
def test_default_models_cover_every_routed_kernel_signature():
  covered = set().union(*(_signatures(n) for n in DEFAULT))
  assert len(covered) > 30  # the tracing hooks saw the routed kernels
  missing = {n: sorted(map(str, _signatures(n) - covered)) for n in sorted(set(models.names()) - set(DEFAULT))}
  missing = {n: m for n, m in missing.items() if m}
  assert not missing, f"routed kernels no DEFAULT model calls (add the model to DEFAULT): {missing}"
