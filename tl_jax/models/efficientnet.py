"""The inverted-residual family: MobileNetV2/V3, EfficientNet-Lite, -B0..B7 and EfficientNetV2.

One builder for all of them (timm's ``_efficientnet_builder.py`` does the
same). The rows live in ``efficientnet_rows``: a paper table is a tuple of
stages, each a tuple of typed block rows (``DepthwiseSeparable``, ``MBConv``,
``FusedMBConv``); a family's quirks are
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
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import ConvBNAct, DropPath, SqueezeExcite, activation
from tl_jax.models.layers import BatchNorm, Conv, DepthwiseConv, conv_padding
from tl_jax.models.efficientnet_rows import (  # re-exported: the family's public names
    ARCHS, B0_STAGES, B_NAMES, LITE_NAMES, LITE_STAGES, MOBILENET_V2_STAGES,
    MOBILENET_V3_LARGE_STAGES, MOBILENET_V3_SMALL_STAGES, TF, TORCH, V2_B0_STAGES, V2_L_STAGES,
    V2_M_STAGES, V2_NAMES, V2_S_STAGES, VARIANTS, Arch, DepthwiseSeparable, FusedMBConv, MBConv,
    Numerics, Row, Stages, Variant)

# --- derived tables: one pure function --------------------------------------------------------


def round_channels(channels: float, width: float = 1.0, divisor: int = 8, limit: float = 0.9) -> int:
  """Scales a channel count and rounds it to a multiple of ``divisor`` (TF rule)."""
  scaled = channels * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if rounded < limit * scaled:  # never round down by more than 1 - limit (10%)
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
  return round_channels(arch.stem, variant.width, limit=arch.round_limit) if arch.scale_ends else arch.stem


def top_width(variant: Variant) -> int:
  arch = ARCHS[variant.arch]
  return round_channels(arch.top, variant.width, limit=arch.round_limit) if arch.scale_ends else arch.top


def block_layout(variant: Variant) -> list[BlockSpec]:
  """Every block of ``variant`` in order, with its parts: widths and repeats scaled."""
  arch = ARCHS[variant.arch]
  layout, in_ch, last = [], stem_width(variant), len(arch.stages) - 1
  for s, rows in enumerate(arch.stages):
    b = 0
    for row in rows:
      out = round_channels(row.out, variant.width, limit=arch.round_limit)
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
