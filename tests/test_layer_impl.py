"""The native layer path (every accelerator's) against the CPU-routed one, on CPU, for every model family.

CI has no accelerator, and ``"auto"`` takes the routed path on CPU, so without
this test the convolutions GPUs and TPUs run would never be traced in CI.
Per family one variant runs in the default run; the whole zoo is ``slow``. A
``keras_`` family whose torch-layout twin runs by default (same blocks, TF
"same" padding) is slow too: lite0 and keras_mobilenet_v2 trace that padding.
Compared: eval logits, train-mode logits and every parameter gradient of the
train step's loss.

BatchNorm runs on its running statistics in the train step (the repo's
``bn="running"``): batch statistics of 2 images on the 1x1 maps of a 32 px
input divide by near-zero deviations, so rounding-level differences grow to
O(1) in the forward pass already (gradients of 1e8 were seen on Lite0) and no
tolerance could separate a bug from chaos. BatchNorm's own code is the same on
both paths; the convolutions are what differ.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax import models, partition
from tl_jax.models import layers
from tl_jax.train import steps

# Names whose family the name rule below gets wrong: name -> family.
FAMILY_OVERRIDES: dict[str, str] = {}
# A VGG fc top adds two Dense layers (the same code on both paths) of 100M
# parameters to its trunk, the costliest part of this test (~20 s): fc variants
# count as their trunk's family, and run in the slow set.
SAME_FAMILY_SUFFIXES = ("_fc",)
# Variants tested in the default run beside their family's smallest because their blocks differ
# from it (resnet50's bottleneck blocks are covered by keras_resnet50).
EXTRA: tuple[str, ...] = ()
# Size words, smallest first: a family's representative is its smallest variant.
SIZE_ORDER = ("tiny", "small", "s", "base", "m", "l", "large", "xl", "xlarge", "huge")
SIZE_WORDS = set(SIZE_ORDER)
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


def family(name: str) -> str:
  """A registry name's family: size digits, size words and fc tops dropped (``resnet50`` ->
  ``resnet``, ``vgg16_bn_fc`` -> ``vgg_bn``); version digits after a ``v`` stay (``mobilenet_v2``)."""
  if name in FAMILY_OVERRIDES:
    return FAMILY_OVERRIDES[name]
  for suffix in SAME_FAMILY_SUFFIXES:
    name = name.removesuffix(suffix)
  name = re.sub(r"_\d+(?:_\d+)?(mf|gf)$", "", name)  # RegNet sizes: regnet_x_400mf, regnet_x_1_6gf
  name = re.sub(r"(_v2)_[sml]$", r"\1_b", name)  # EfficientNetV2-S/M/L belong with V2-B0..B3
  stem = re.sub(r"(?<![vV])\d+", "", name)
  return "_".join(t for t in stem.split("_") if t and t not in SIZE_WORDS)


def _size_key(name: str):
  """Orders a family's variants small to large: RegNet by its FLOPs (400mf < 1_6gf), others by
  the numbers in the name (resnet18 < resnet50), then by size word (tiny < small < base < large)."""
  if m := re.search(r"(\d+(?:_\d+)?)(mf|gf)$", name):
    numbers = [float(m[1].replace("_", ".")) * (1 if m[2] == "mf" else 1000)]
  else:
    numbers = [int(t) for t in re.findall(r"(?<![vV])\d+", name)]
  words = [SIZE_ORDER.index(t) for t in name.split("_") if t in SIZE_WORDS]
  return not numbers, numbers, words, name  # numbered variants first: V2-B0 before V2-S


def representatives() -> list[str]:
  """One variant per family (its smallest by the numbers in its name), plus ``EXTRA``."""
  fams: dict[str, list[str]] = {}
  for name in models.names():
    fams.setdefault(family(name), []).append(name)
  return sorted({min(v, key=_size_key) for v in fams.values()} | set(EXTRA) & set(models.names()))


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
    native = run("native", variables)
    # On the device: the fc tops' 100M-parameter gradients are slow to compare in numpy.
    scale = {k: float(jnp.abs(v).max()) for k, v in native.items()}
    empty = [k for k, v in scale.items() if not v > 0]
    if not empty:
      break
  assert not empty, f"{name}: all-zero {empty} at 3 seeds, so their check would be empty"
  routed = run("cpu_routed", variables)
  assert native.keys() == routed.keys()
  worst = {k: float(jnp.abs(routed[k] - v).max()) / scale[k] for k, v in native.items()}
  bad = {k: f"{v:.2e}" for k, v in worst.items() if not v <= RTOL}
  assert not bad, f"{name}: native vs cpu_routed differ beyond {RTOL} of the leaf's scale: {bad}"
  return max(worst.values())


def test_family_rule():
  assert [family(n) for n in ("resnet50", "keras_resnet101", "vgg16_bn_fc", "keras_vgg19", "efficientnet_lite3",
                              "mobilenet_v2", "mobilenet_v3_large", "convnext_tiny")] == [
      "resnet", "keras_resnet", "vgg_bn", "keras_vgg", "efficientnet_lite", "mobilenet_v2",
      "mobilenet_v3", "convnext"]
  reps = representatives()
  assert {"resnet18", "keras_resnet50", "vgg11", "vgg11_bn", "keras_vgg16", "efficientnet_lite0",
          "mobilenet_v2", "keras_mobilenet_v2"} <= set(reps)
  assert {family(n) for n in models.names()} == {family(n) for n in reps}  # every family is covered


# keras_ twins of a default-run family: the same blocks with TF "same" padding (see the docstring).
SLOW_TWINS = ("keras_efficientnet_b0", "keras_efficientnet_v2_b0", "keras_inception_v3",
              "keras_mobilenet_v3_small")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TWINS else n
                                  for n in representatives()])
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


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(models.names()) - set(representatives())))
def test_native_matches_cpu_routed_whole_zoo(name):
  _check(name)
