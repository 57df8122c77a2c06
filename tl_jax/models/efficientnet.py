"""The inverted-residual family: MobileNetV2/V3, EfficientNet-Lite and EfficientNet-B0..B7.

One builder for all of them (timm's ``_efficientnet_builder.py`` does the
same): a paper table is a tuple of stages, each a tuple of typed block rows
(``DepthwiseSeparable``, ``MBConv``, ``FusedMBConv``); a family's quirks are
fields of its ``Arch`` row; a variant is one ``Variant`` row (width, depth,
resolution, dropout); the numbers that depend on where the weights come from
(padding, BatchNorm epsilon and momentum) are a ``Numerics`` row chosen by the
registry. ``block_layout`` derives every block, with the list of its parts,
from those rows; the model and every mapping table walk that one list.

Parameter paths::

  backbone/stem/{conv,bn}
  backbone/stage{s}/block{b}/{expand_conv,expand_bn,depthwise_conv,depthwise_bn,
                              se/{reduce,expand},project_conv,project_bn}
  backbone/top/{conv,bn}
  backbone/top_fc/{kernel,bias}      (MobileNetV3: a Dense on the pooled features)

(a block has the parts its row declares; s and b count from 1).
"""

from collections.abc import Set
import dataclasses
import functools
import math
from typing import Any, Union

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import ConvBNAct, DropPath, SqueezeExcite, activation
from tl_jax.models.layers import BatchNorm, Conv, DepthwiseConv, conv_padding

# --- paper tables: typed rows ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DepthwiseSeparable:
  """kxk depthwise, [squeeze-excite], 1x1 project: no expansion (timm's ``ds`` block)."""

  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0  # squeeze-excite ratio (0: none); its base width is the Arch's choice
  act: str = ""  # "" = the Arch's activation


@dataclasses.dataclass(frozen=True)
class MBConv:
  """1x1 expand, kxk depthwise, [squeeze-excite], 1x1 project (timm's ``ir`` block)."""

  expand: float
  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0
  act: str = ""


@dataclasses.dataclass(frozen=True)
class FusedMBConv:
  """kxk expand (strided), [squeeze-excite], 1x1 project; with ``expand=1`` one kxk conv
  (EfficientNetV2's early stages; timm's ``er`` / ``cn`` blocks)."""

  expand: float
  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0
  act: str = ""


Row = Union[DepthwiseSeparable, MBConv, FusedMBConv]
Stages = tuple[tuple[Row, ...], ...]


@dataclasses.dataclass(frozen=True)
class Arch:
  """A family's network: its stage table and its quirks."""

  stages: Stages
  act: str = "relu6"
  stem: int = 32
  top: int = 1280
  # Lite keeps the stem/top widths and the first and last stage's repeats unscaled.
  scale_ends: bool = True
  se_from_expanded: bool = False  # MobileNetV3: SE width from the expanded width, rounded to 8
  se_act: str = ""  # "" = the block's activation
  se_gate: str = "sigmoid"
  top_fc: int = 0  # MobileNetV3: width of a Dense + act on the pooled features (0: none)


@dataclasses.dataclass(frozen=True)
class Variant:
  """One model of a family: its Arch (a key of ``ARCHS``) scaled."""

  arch: str
  width: float = 1.0
  depth: float = 1.0
  resolution: int = 224
  dropout: float = 0.2  # before the head, as in the original recipe


@dataclasses.dataclass(frozen=True)
class Numerics:
  """What the weights' framework fixes: padding convention and BatchNorm epsilon/momentum.

  ``bn_momentum`` is Flax's (the weight of the old running value): torch's
  ``momentum=0.1`` is Flax 0.9, Keras' ``momentum=0.99`` is Flax 0.99.
  """

  padding: str = "SAME"
  bn_epsilon: float = 1e-3
  bn_momentum: float = 0.99


TF = Numerics("SAME", 1e-3, 0.99)  # Keras, timm tf_*, TF-Lite ports
TORCH = Numerics("torch", 1e-5, 0.9)  # torch BatchNorm2d defaults (eps 1e-5, momentum 0.1)


def _single(*rows: Row) -> Stages:
  return tuple((r,) for r in rows)


# EfficientNet-B0 (Tan & Le, 2019, Table 1); Lite and the B series scale it.
B0_STAGES = _single(
    DepthwiseSeparable(3, 1, 16, 1, se=0.25),
    MBConv(6, 3, 2, 24, 2, se=0.25),
    MBConv(6, 5, 2, 40, 2, se=0.25),
    MBConv(6, 3, 2, 80, 3, se=0.25),
    MBConv(6, 5, 1, 112, 3, se=0.25),
    MBConv(6, 5, 2, 192, 4, se=0.25),
    MBConv(6, 3, 1, 320, 1, se=0.25),
)
# Lite: B0 without squeeze-excite (and ReLU6, see ARCHS).
LITE_STAGES = tuple(tuple(dataclasses.replace(r, se=0.0) for r in s) for s in B0_STAGES)
# MobileNetV2 (Sandler et al., 2018): 3x3 kernels throughout (expansion t, channels c, repeats n, stride s).
MOBILENET_V2_STAGES = _single(
    DepthwiseSeparable(3, 1, 16, 1),
    MBConv(6, 3, 2, 24, 2),
    MBConv(6, 3, 2, 32, 3),
    MBConv(6, 3, 2, 64, 4),
    MBConv(6, 3, 1, 96, 3),
    MBConv(6, 3, 2, 160, 3),
    MBConv(6, 3, 1, 320, 1),
)

# MobileNetV3 (Howard et al., 2019, Tables 1-2), grouped into stages as timm does; expansions
# are the paper's expanded widths over the input width (rounded to 8 again when built).
_RE, _HS = "relu", "hard_swish"
MOBILENET_V3_LARGE_STAGES = (
    (DepthwiseSeparable(3, 1, 16, act=_RE),),
    (MBConv(4, 3, 2, 24, act=_RE), MBConv(3, 3, 1, 24, act=_RE)),
    (MBConv(3, 5, 2, 40, 3, se=0.25, act=_RE),),
    (MBConv(6, 3, 2, 80), MBConv(2.5, 3, 1, 80), MBConv(184 / 80, 3, 1, 80, 2)),
    (MBConv(6, 3, 1, 112, 2, se=0.25),),
    (MBConv(6, 5, 2, 160, 3, se=0.25),),
)
MOBILENET_V3_SMALL_STAGES = (
    (DepthwiseSeparable(3, 2, 16, se=0.25, act=_RE),),
    (MBConv(72 / 16, 3, 2, 24, act=_RE), MBConv(88 / 24, 3, 1, 24, act=_RE)),
    (MBConv(4, 5, 2, 40, se=0.25), MBConv(6, 5, 1, 40, 2, se=0.25)),
    (MBConv(3, 5, 1, 48, 2, se=0.25),),
    (MBConv(6, 5, 2, 96, 3, se=0.25),),
)
_MOBILENET_V3 = dict(act=_HS, stem=16, se_from_expanded=True, se_act=_RE, se_gate="hard_sigmoid")

ARCHS: dict[str, Arch] = {
    "mobilenet_v3_large": Arch(MOBILENET_V3_LARGE_STAGES, top=960, top_fc=1280, **_MOBILENET_V3),
    "mobilenet_v3_small": Arch(MOBILENET_V3_SMALL_STAGES, top=576, top_fc=1024, **_MOBILENET_V3),
    "mobilenet_v2": Arch(MOBILENET_V2_STAGES),
    "efficientnet_lite": Arch(LITE_STAGES, scale_ends=False),
    "efficientnet": Arch(B0_STAGES, act="swish"),
}

VARIANTS: dict[str, Variant] = {
    "mobilenet_v2": Variant("mobilenet_v2"),
    "mobilenet_v3_large": Variant("mobilenet_v3_large"),
    "mobilenet_v3_small": Variant("mobilenet_v3_small"),
    "efficientnet_lite0": Variant("efficientnet_lite", 1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": Variant("efficientnet_lite", 1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": Variant("efficientnet_lite", 1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": Variant("efficientnet_lite", 1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": Variant("efficientnet_lite", 1.4, 1.8, 300, 0.3),
    # Keras/torchvision/timm agree on these (width, depth, resolution, dropout).
    "efficientnet_b0": Variant("efficientnet", 1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant("efficientnet", 1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant("efficientnet", 1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant("efficientnet", 1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant("efficientnet", 1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant("efficientnet", 1.6, 2.2, 456, 0.4),
    "efficientnet_b6": Variant("efficientnet", 1.8, 2.6, 528, 0.5),
    "efficientnet_b7": Variant("efficientnet", 2.0, 3.1, 600, 0.5),
}
LITE_NAMES = tuple(n for n, v in VARIANTS.items() if v.arch == "efficientnet_lite")
B_NAMES = tuple(n for n, v in VARIANTS.items() if v.arch == "efficientnet")

# --- derived tables: one pure function --------------------------------------------------------


def round_channels(channels: float, width: float = 1.0, divisor: int = 8) -> int:
  """Scales a channel count and rounds it to a multiple of ``divisor`` (TF rule)."""
  scaled = channels * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * scaled:  # never round down by more than 10%
    rounded += divisor
  return int(rounded)


@dataclasses.dataclass(frozen=True)
class Part:
  """One layer group of a block: ``{name}_conv`` + ``{name}_bn``, or the ``se`` module."""

  name: str  # expand | depthwise | se | project
  kind: str  # conv | depthwise | se
  features: int  # output width (for se: the reduced width)
  kernel: int = 1
  stride: int = 1
  act: str = "identity"
  gate: str = ""  # se only


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One block of the network, as the model builds it and the mapping tables name it."""

  stage: int  # 1-based
  block: int  # 1-based within the stage
  index: int  # 0-based over the whole network
  row: Row
  in_channels: int
  stride: int
  parts: tuple[Part, ...]

  @property
  def path(self) -> str:
    return f"backbone/stage{self.stage}/block{self.block}"

  @property
  def out_channels(self) -> int:
    return self.parts[-1].features

  @property
  def skip(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels


def _parts(row: Row, arch: Arch, in_ch: int, out: int, stride: int) -> tuple[Part, ...]:
  act = row.act or arch.act
  k = row.kernel
  hidden = in_ch if isinstance(row, DepthwiseSeparable) else round_channels(in_ch * row.expand)
  se = ()
  if row.se:
    reduced = (round_channels(hidden * row.se) if arch.se_from_expanded
               else max(1, int(in_ch * row.se)))
    se = (Part("se", "se", reduced, act=arch.se_act or act, gate=arch.se_gate),)
  project = (Part("project", "conv", out),)
  if isinstance(row, DepthwiseSeparable):
    return (Part("depthwise", "depthwise", hidden, k, stride, act),) + se + project
  if isinstance(row, MBConv):
    return ((Part("expand", "conv", hidden, 1, 1, act), Part("depthwise", "depthwise", hidden, k, stride, act))
            + se + project)
  if row.expand == 1:  # a single kxk conv-bn-act
    return (Part("project", "conv", out, k, stride, act),) + se
  return (Part("expand", "conv", hidden, k, stride, act),) + se + project


def stem_width(variant: Variant) -> int:
  arch = ARCHS[variant.arch]
  return round_channels(arch.stem, variant.width) if arch.scale_ends else arch.stem


def top_width(variant: Variant) -> int:
  arch = ARCHS[variant.arch]
  return round_channels(arch.top, variant.width) if arch.scale_ends else arch.top


def block_layout(variant: Variant) -> list[BlockSpec]:
  """Every block of ``variant`` in order, with its parts: widths and repeats scaled."""
  arch = ARCHS[variant.arch]
  layout, in_ch, last = [], stem_width(variant), len(arch.stages) - 1
  for s, rows in enumerate(arch.stages):
    b = 0
    for row in rows:
      out = round_channels(row.out, variant.width)
      fixed = not arch.scale_ends and s in (0, last)
      repeats = row.repeats if fixed else int(math.ceil(variant.depth * row.repeats))
      for r in range(repeats):
        stride = row.stride if r == 0 else 1
        b += 1
        layout.append(BlockSpec(s + 1, b, len(layout), row, in_ch, stride,
                                _parts(row, arch, in_ch, out, stride)))
        in_ch = out
  return layout


# --- the model ----------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
  """One block: its parts in order, then the residual (with stochastic depth) when shapes allow."""

  spec: BlockSpec
  norm: Any
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, train: bool = False):
    inputs = x
    for part in self.spec.parts:
      if part.kind == "se":
        x = SqueezeExcite(part.features, part.act, part.gate, self.dtype, name="se")(x)
        continue
      if part.kind == "depthwise":
        x = DepthwiseConv(kernel_size=part.kernel, stride=part.stride, dtype=self.dtype,
                          padding=self.padding, name=f"{part.name}_conv")(x)
      else:
        k, s = part.kernel, part.stride
        pads = [conv_padding(self.padding, n, k, s) for n in x.shape[1:3]]
        x = Conv(part.features, (k, k), (s, s), padding=pads, use_bias=False, dtype=self.dtype,
                 name=f"{part.name}_conv")(x)
      x = activation(part.act)(self.norm(name=f"{part.name}_bn")(x, not train))
    if self.spec.skip:
      x = DropPath(self.drop_path_rate)(x, not train) + inputs
    return x


class Stage(nn.Module):
  """A run of blocks named block1..blockN."""

  blocks: tuple  # (BlockSpec, drop-path rate) per block
  norm: Any
  dtype: Any = jnp.float32
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, train: bool = False):
    for spec, rate in self.blocks:
      x = InvertedResidual(spec, self.norm, rate, self.dtype, self.padding,
                           name=f"block{spec.block}")(x, train)
    return x


class EfficientNet(nn.Module):
  """An inverted-residual backbone: ``variant`` (a key of ``VARIANTS``) with ``numerics``.

  Takes normalised NHWC images and returns the features dict
  ``{"stem", "stage1".."stageN", "pre_logits"}``.
  """

  variant: str = "efficientnet_lite0"
  numerics: Numerics = TF
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    variant, num = VARIANTS[self.variant], self.numerics
    arch = ARCHS[variant.arch]
    norm = functools.partial(BatchNorm, momentum=num.bn_momentum, epsilon=num.bn_epsilon,
                             frozen=self.frozen_bn, dtype=self.dtype)
    features = {}
    x = features["stem"] = ConvBNAct(stem_width(variant), 3, 2, norm, arch.act, self.dtype,
                                     num.padding, name="stem")(x, train)
    layout = block_layout(variant)
    stages: dict[int, list] = {}
    for spec in layout:
      rate = self.drop_path_rate * spec.index / len(layout)  # deeper blocks drop more
      stages.setdefault(spec.stage, []).append((spec, rate))
    for s, blocks in stages.items():
      x = features[f"stage{s}"] = Stage(tuple(blocks), norm, self.dtype, num.padding,
                                        name=f"stage{s}")(x, train)
    x = ConvBNAct(top_width(variant), 1, 1, norm, arch.act, self.dtype, name="top")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    if arch.top_fc:
      x = activation(arch.act)(nn.Dense(arch.top_fc, dtype=self.dtype, name="top_fc")(x))
    features["pre_logits"] = x
    return features
