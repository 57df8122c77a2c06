"""RegNetX and RegNetY (Radosavovic et al., 2020) at the torchvision sizes.

A variant is one row of ``VARIANTS``: the paper's design-space parameters
(depth, initial width ``w_0``, slope ``w_a``, multiplier ``w_m``, group width,
SE ratio). The per-stage widths, depths and group widths are derived from the
row by one pure function, :func:`stage_params` (torchvision
``BlockParams.from_init_params``), and :func:`block_layout` lists every block;
the model and the weight mapping tables (``tl_jax.weights.regnet``) both walk
that list, so their paths cannot drift.

The bottleneck block: 1x1 conv, 3x3 grouped conv (stride on it), squeeze-excite
on the bottleneck width (RegNetY only; reduced to ``se_ratio`` times the
*block input* width), 1x1 conv, plus a 1x1 conv + BN shortcut where the shape
changes; BatchNorm epsilon 1e-5, ReLU.

Parameter paths::

  backbone/stem/{conv,bn}
  backbone/stage{s}/block{b}/conv{1,2,3}/{conv,bn}
  backbone/stage{s}/block{b}/se/{reduce,expand}          (RegNetY)
  backbone/stage{s}/block{b}/downsample/{conv,bn}        (first block of a stage)
"""

from collections.abc import Set
import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from tl_jax.models.blocks import ConvBNAct, DropPath, SqueezeExcite
from tl_jax.models.layers import BatchNorm

STEM_CHANNELS = 32
QUANT = 8  # block widths are multiples of 8
BN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class RegNetConfig:
  """One row of the paper's design space (torchvision ``regnet_*`` arguments)."""

  depth: int  # blocks in all
  w_0: int  # initial width
  w_a: float  # width slope
  w_m: float  # width multiplier between stages (log-space quantisation)
  group_width: int
  se_ratio: float = 0.0  # RegNetY: 0.25
  bottleneck_multiplier: float = 1.0


VARIANTS: dict[str, RegNetConfig] = {
    "regnet_x_400mf": RegNetConfig(22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": RegNetConfig(16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": RegNetConfig(18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": RegNetConfig(25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": RegNetConfig(23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": RegNetConfig(22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": RegNetConfig(23, 320, 69.86, 2.0, 168),
    "regnet_y_400mf": RegNetConfig(16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": RegNetConfig(14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": RegNetConfig(27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": RegNetConfig(21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": RegNetConfig(17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": RegNetConfig(18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": RegNetConfig(20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": RegNetConfig(27, 456, 160.83, 2.52, 264, 0.25),
}


@dataclasses.dataclass(frozen=True)
class StageParams:
  width: int  # output width of every block of the stage
  depth: int
  group_width: int
  bottleneck_multiplier: float


def _make_divisible(v: float, divisor: int) -> int:
  """torchvision's rounding: nearest multiple, never more than 10% down."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new_v + divisor if new_v < 0.9 * v else new_v


def stage_params(cfg: RegNetConfig) -> list[StageParams]:
  """Per-stage widths, depths and group widths of a design-space row.

  torchvision ``BlockParams.from_init_params``, float32 like torch's default
  dtype (a float64 computation could round a width differently): linear
  widths ``w_0 + w_a * j``, quantised in log-space base ``w_m`` and to
  multiples of 8; runs of equal widths are stages; then widths and group
  widths are made compatible (the bottleneck width a multiple of the group
  width).
  """
  f32 = np.float32
  cont = np.arange(cfg.depth).astype(f32) * f32(cfg.w_a) + f32(cfg.w_0)
  capacity = np.round(np.log(cont / f32(cfg.w_0)) / f32(math.log(cfg.w_m)))
  widths = (np.round(f32(cfg.w_0) * np.power(f32(cfg.w_m), capacity) / f32(QUANT)) * QUANT).astype(int).tolist()
  stages: list[list[int]] = []  # [width, depth]
  for w in widths:
    if stages and stages[-1][0] == w:
      stages[-1][1] += 1
    else:
      stages.append([w, 1])
  out = []
  for w, d in stages:
    b = cfg.bottleneck_multiplier
    w_bot = int(w * b)
    g = min(cfg.group_width, w_bot)
    out.append(StageParams(int(_make_divisible(w_bot, g) / b), d, g, b))
  return out


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One bottleneck block, as the model and every mapping table see it."""

  stage: str  # "stage1".."stage4"
  block: str  # "block1".."blockN"
  index: int  # 0-based position in the whole network (stochastic depth)
  in_channels: int
  out_channels: int
  bottleneck: int  # width of the grouped 3x3
  groups: int
  stride: int
  se_channels: int  # 0: no squeeze-excite
  downsample: bool  # the shortcut is a 1x1 conv + BN


def block_layout(cfg: RegNetConfig) -> list[BlockSpec]:
  """Every block of a RegNet, in order."""
  layout, in_ch = [], STEM_CHANNELS
  for s, p in enumerate(stage_params(cfg), start=1):
    for b in range(1, p.depth + 1):
      stride = 2 if b == 1 else 1
      w_b = int(round(p.width * p.bottleneck_multiplier))
      se = int(round(cfg.se_ratio * in_ch)) if cfg.se_ratio else 0  # from the block's input width
      layout.append(BlockSpec(f"stage{s}", f"block{b}", len(layout), in_ch, p.width, w_b,
                              w_b // p.group_width, stride, se, stride != 1 or in_ch != p.width))
      in_ch = p.width
  return layout


class Block(nn.Module):
  """The RegNet bottleneck with optional squeeze-excite and projection shortcut."""

  spec: BlockSpec
  norm: Any
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec = self.spec
    conv = functools.partial(ConvBNAct, norm=self.norm, padding="torch", dtype=self.dtype)
    y = conv(spec.bottleneck, 1, 1, act="relu", name="conv1")(x, train)
    y = conv(spec.bottleneck, 3, spec.stride, act="relu", groups=spec.groups, name="conv2")(y, train)
    if spec.se_channels:
      y = SqueezeExcite(spec.se_channels, act="relu", gate="sigmoid", dtype=self.dtype, name="se")(y)
    y = conv(spec.out_channels, 1, 1, act="identity", name="conv3")(y, train)
    if spec.downsample:
      x = conv(spec.out_channels, 1, spec.stride, act="identity", name="downsample")(x, train)
    return nn.relu(DropPath(self.drop_path_rate)(y, not train) + x)


class Stage(nn.Module):
  """A run of blocks named block1..blockN."""

  blocks: tuple  # (BlockSpec, drop-path rate) per block
  norm: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    for spec, rate in self.blocks:
      x = Block(spec, self.norm, rate, self.dtype, name=spec.block)(x, train)
    return x


class RegNet(nn.Module):
  """RegNet backbone: ``{"stem", "stage1".."stage4", "pre_logits"}`` from normalised NHWC images."""

  variant: str = "regnet_y_400mf"
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.variant not in VARIANTS:
      raise ValueError(f"Unknown RegNet variant {self.variant!r}; known: {sorted(VARIANTS)}.")
    # torch momentum 0.1 == flax momentum 0.9.
    norm = functools.partial(BatchNorm, momentum=0.9, epsilon=BN_EPSILON, frozen=self.frozen_bn,
                             dtype=self.dtype)
    features = {}
    x = features["stem"] = ConvBNAct(STEM_CHANNELS, 3, 2, norm, act="relu", padding="torch",
                                     dtype=self.dtype, name="stem")(x, train)
    layout = block_layout(VARIANTS[self.variant])
    stages: dict[str, list] = {}
    for spec in layout:
      stages.setdefault(spec.stage, []).append((spec, self.drop_path_rate * spec.index / len(layout)))
    for stage, blocks in stages.items():
      x = features[stage] = Stage(tuple(blocks), norm, self.dtype, name=stage)(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features


def feature_channels(variant: str) -> int:
  """Channels of the pooled features (``pre_logits``)."""
  return block_layout(VARIANTS[variant])[-1].out_channels
