"""Inception-v3 (Szegedy et al., 2016) in the torchvision and the Keras layouts.

Every convolution is conv (no bias) + BatchNorm (epsilon 1e-3) + ReLU; a mixed
block is branches of those, concatenated. The two sources differ in two
numbers, fields of ``ARCHS``: Keras' BatchNorms have no scale
(``scale=False``) and its 3x3 average pools leave the padding out of the mean
(``padding="same"``), torchvision's count it (``count_include_pad=True``).
torchvision's pretrained model re-maps its ImageNet-normalised input to
x / 127.5 - 1 (``transform_input``), so both see Keras' "tf" normalisation.

Stages (docs/zoo.md states them): ``stem`` = Conv2d_1a..2b (stride 2);
``stage1`` = max-pool, Conv2d_3b, Conv2d_4a (stride 4); ``stage2`` = max-pool,
Mixed_5b..5d (Keras mixed0..2, stride 8); ``stage3`` = Mixed_6a..6e (mixed3..7,
stride 16); ``stage4`` = Mixed_7a..7c (mixed8..10, stride 32). Blocks are
numbered from 1 within a stage; branches keep torchvision's names.

The model and the mapping tables (``tl_jax.weights.inception``) walk
:func:`stage_layout`.

Parameter paths::

  backbone/stem/{conv1a,conv2a,conv2b}/{conv,bn}
  backbone/stage1/{conv3b,conv4a}/{conv,bn}
  backbone/stage{s}/block{b}/<branch>/{conv,bn}         (s = 2..4; e.g. branch5x5_1)
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import ConvBNAct
from tl_jax.models.layers import BatchNorm

BN_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class Arch:
  bn_scale: bool  # BatchNorm has a scale (torchvision) or not (Keras scale=False)
  pool_counts_padding: bool  # 3x3 average pools divide by 9 at the borders too (torchvision)


ARCHS = {"torchvision": Arch(True, True), "keras": Arch(False, False)}


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One conv-BN-ReLU: its name (torchvision's), width, kernel, stride, padding and input."""

  name: str
  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: str = "torch"  # "torch" (k // 2 each side: Keras' stride-1 "same") or "VALID"
  source: str = ""  # "" = the previous conv; "x" = the block input; "pool" = 3x3 avg pool of it


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  block: str  # "block1".. within the stage, or the conv's name in the stem and stage1
  convs: tuple[ConvSpec, ...]  # in both sources' creation order
  outputs: tuple[str, ...] = ()  # concatenated, in order; "max" = 3x3 stride-2 max-pool of x
  index: int = 0  # 0-based mixed block (Keras mixed{index}); -1 for plain convs
  paired: tuple[str, ...] = ()  # outputs Keras concatenates in pairs first (mixed9_0): graph depth

  def keras_order(self) -> list[ConvSpec]:
    """The convs in Keras' ``model.layers`` order: by distance to the block's output, longest
    first (conv, BN and ReLU are three layers), ties in creation order."""
    dist = {}
    for c in reversed(self.convs):
      consumers = [dist[d.name] for d in self.convs if self._source(d) == c.name]
      if c.name in self.outputs or not consumers:  # a plain conv (stem) ends its own "block"
        consumers.append(1 if c.name in self.paired else 0)
      dist[c.name] = 3 + max(consumers)
    return sorted(self.convs, key=lambda c: -dist[c.name])  # sorted() is stable

  def _source(self, c: ConvSpec) -> str:
    if c.source:
      return c.source
    return self.convs[self.convs.index(c) - 1].name if self.convs.index(c) else "x"


@dataclasses.dataclass(frozen=True)
class StageSpec:
  stage: str
  max_pool: bool  # opens with a 3x3 stride-2 max-pool
  blocks: tuple[BlockSpec, ...]


def _c(name, features, kernel, stride=1, padding="torch", source=""):
  k = (kernel, kernel) if isinstance(kernel, int) else kernel
  return ConvSpec(name, features, k, stride, padding, source)


def _a(pool):
  return (_c("branch1x1", 64, 1, source="x"), _c("branch5x5_1", 48, 1, source="x"),
          _c("branch5x5_2", 64, 5), _c("branch3x3dbl_1", 64, 1, source="x"), _c("branch3x3dbl_2", 96, 3),
          _c("branch3x3dbl_3", 96, 3), _c("branch_pool", pool, 1, source="pool")), (
              "branch1x1", "branch5x5_2", "branch3x3dbl_3", "branch_pool")


def _b():
  return (_c("branch3x3", 384, 3, 2, "VALID", "x"), _c("branch3x3dbl_1", 64, 1, source="x"),
          _c("branch3x3dbl_2", 96, 3), _c("branch3x3dbl_3", 96, 3, 2, "VALID")), (
              "branch3x3", "branch3x3dbl_3", "max")


def _c7(c7):
  return (_c("branch1x1", 192, 1, source="x"), _c("branch7x7_1", c7, 1, source="x"),
          _c("branch7x7_2", c7, (1, 7)), _c("branch7x7_3", 192, (7, 1)),
          _c("branch7x7dbl_1", c7, 1, source="x"), _c("branch7x7dbl_2", c7, (7, 1)),
          _c("branch7x7dbl_3", c7, (1, 7)), _c("branch7x7dbl_4", c7, (7, 1)),
          _c("branch7x7dbl_5", 192, (1, 7)), _c("branch_pool", 192, 1, source="pool")), (
              "branch1x1", "branch7x7_3", "branch7x7dbl_5", "branch_pool")


def _d():
  return (_c("branch3x3_1", 192, 1, source="x"), _c("branch3x3_2", 320, 3, 2, "VALID"),
          _c("branch7x7x3_1", 192, 1, source="x"), _c("branch7x7x3_2", 192, (1, 7)),
          _c("branch7x7x3_3", 192, (7, 1)), _c("branch7x7x3_4", 192, 3, 2, "VALID")), (
              "branch3x3_2", "branch7x7x3_4", "max")


def _e():
  return (_c("branch1x1", 320, 1, source="x"), _c("branch3x3_1", 384, 1, source="x"),
          _c("branch3x3_2a", 384, (1, 3)), _c("branch3x3_2b", 384, (3, 1), source="branch3x3_1"),
          _c("branch3x3dbl_1", 448, 1, source="x"), _c("branch3x3dbl_2", 384, 3),
          _c("branch3x3dbl_3a", 384, (1, 3)), _c("branch3x3dbl_3b", 384, (3, 1), source="branch3x3dbl_2"),
          _c("branch_pool", 192, 1, source="pool")), (
              "branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b",
              "branch_pool"), ("branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b")


# torchvision's mixed blocks per stage: Mixed_5b..5d, 6a..6e, 7a..7c.
MIXED = ((_a(32), _a(64), _a(64)), (_b(), _c7(128), _c7(160), _c7(160), _c7(192)), (_d(), _e(), _e()))
TORCHVISION_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def stage_layout() -> list[StageSpec]:
  """Every stage, block and convolution of Inception-v3, in order."""
  stem = tuple(BlockSpec(c.name, (c,), index=-1) for c in (
      _c("conv1a", 32, 3, 2, "VALID"), _c("conv2a", 32, 3, padding="VALID"), _c("conv2b", 64, 3)))
  stage1 = tuple(BlockSpec(c.name, (c,), index=-1) for c in (
      _c("conv3b", 80, 1, padding="VALID"), _c("conv4a", 192, 3, padding="VALID")))
  stages, n = [StageSpec("stem", False, stem), StageSpec("stage1", True, stage1)], 0
  for s, blocks in enumerate(MIXED, start=2):
    specs = []
    for b, (convs, outputs, *paired) in enumerate(blocks, start=1):
      specs.append(BlockSpec(f"block{b}", convs, outputs, n, *paired))
      n += 1
    stages.append(StageSpec(f"stage{s}", s == 2, tuple(specs)))
  return stages


def feature_channels() -> int:
  return 2048


class Mixed(nn.Module):
  """One mixed block: its convs in order, each reading its ``source``; outputs concatenated."""

  spec: BlockSpec
  conv: Any  # ConvBNAct with norm, act and dtype bound
  pool_counts_padding: bool

  @nn.compact
  def __call__(self, x, train: bool = False):
    values, prev = {}, x
    for c in self.spec.convs:
      if c.source == "pool":
        inp = nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)),
                          count_include_pad=self.pool_counts_padding)
      else:
        inp = {"": prev, "x": x}.get(c.source, values.get(c.source))
      prev = values[c.name] = self.conv(c.features, c.kernel, c.stride, padding=c.padding,
                                        name=c.name)(inp, train)
    values["max"] = nn.max_pool(x, (3, 3), (2, 2)) if "max" in self.spec.outputs else None
    return jnp.concatenate([values[o] for o in self.spec.outputs], axis=-1)


class Stage(nn.Module):
  spec: StageSpec
  conv: Any
  pool_counts_padding: bool

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.spec.max_pool:
      x = nn.max_pool(x, (3, 3), (2, 2))
    for block in self.spec.blocks:
      if block.index < 0:  # a plain conv
        c = block.convs[0]
        x = self.conv(c.features, c.kernel, c.stride, padding=c.padding, name=c.name)(x, train)
      else:
        x = Mixed(block, self.conv, self.pool_counts_padding, name=block.block)(x, train)
    return x


class InceptionV3(nn.Module):
  """Inception-v3 backbone: ``{"stem", "stage1".."stage4", "pre_logits"}`` (no auxiliary head)."""

  arch: str = "torchvision"
  drop_path_rate: float = 0.0  # the registry's common signature; no residual branches
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.arch not in ARCHS:
      raise ValueError(f"Unknown Inception-v3 arch {self.arch!r}; known: {sorted(ARCHS)}.")
    arch = ARCHS[self.arch]
    norm = functools.partial(BatchNorm, momentum=0.9, epsilon=BN_EPSILON, use_scale=arch.bn_scale,
                             frozen=self.frozen_bn, dtype=self.dtype)
    conv = functools.partial(ConvBNAct, norm=norm, act="relu", dtype=self.dtype)
    features = {}
    for spec in stage_layout():
      x = features[spec.stage] = Stage(spec, conv, arch.pool_counts_padding, name=spec.stage)(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features
