"""ConvNeXt (Liu et al., 2022): T, S, B, L, XL, in the layout torchvision, timm and Keras share.

A variant is one row of ``VARIANTS`` (blocks and width per stage). The three
sources compute the same network: a 4x4 stride-4 patchify stem + LayerNorm;
per stage a LayerNorm + 2x2 stride-2 conv downsampling (stages 2-4), then
blocks of 7x7 depthwise conv (with bias), LayerNorm, pointwise 4x expansion,
exact GELU, pointwise projection, per-channel LayerScale and stochastic depth
on the residual branch. The top is a LayerNorm on the pooled features. Every
LayerNorm is channels-last with epsilon 1e-6. Keras builds its ImageNet
normalisation into the model (a ``Normalization`` layer): it is the torchvision
mean and std, which the registry entry declares, so one model serves all three.

The model and the mapping tables (``tl_jax.weights.convnext``) walk
:func:`stage_layout`.

Parameter paths::

  backbone/stem/{conv,norm}
  backbone/stage{s}/{downsample_norm,downsample_conv}                    (s = 2..4)
  backbone/stage{s}/block{b}/{depthwise_conv,norm,pointwise1,pointwise2}
  backbone/stage{s}/block{b}/layer_scale                                (a (C,) parameter)
  backbone/top/norm
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import DropPath, activation
from tl_jax.models.layers import Conv, DepthwiseConv

LN_EPSILON = 1e-6
LAYER_SCALE_INIT = 1e-6
MLP_RATIO = 4


@dataclasses.dataclass(frozen=True)
class ConvNeXtConfig:
  depths: tuple[int, int, int, int]  # blocks per stage
  widths: tuple[int, int, int, int]  # channels per stage


VARIANTS: dict[str, ConvNeXtConfig] = {
    "convnext_tiny": ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024)),
    "convnext_large": ConvNeXtConfig((3, 3, 27, 3), (192, 384, 768, 1536)),
    "convnext_xlarge": ConvNeXtConfig((3, 3, 27, 3), (256, 512, 1024, 2048)),
}


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  block: str  # "block1".."blockN"
  index: int  # 0-based position in the whole network (stochastic depth)
  channels: int


@dataclasses.dataclass(frozen=True)
class StageSpec:
  stage: str  # "stage1".."stage4"
  index: int  # 0-based (Keras and timm count stages from 0)
  in_channels: int
  channels: int
  downsample: bool  # opens with LayerNorm + 2x2 stride-2 conv
  blocks: tuple[BlockSpec, ...]


def stage_layout(cfg: ConvNeXtConfig) -> list[StageSpec]:
  """Every stage and block of a ConvNeXt, in order."""
  stages, n, in_ch = [], 0, cfg.widths[0]
  for s, (depth, width) in enumerate(zip(cfg.depths, cfg.widths)):
    blocks = tuple(BlockSpec(f"block{b + 1}", n + b, width) for b in range(depth))
    stages.append(StageSpec(f"stage{s + 1}", s, in_ch, width, s > 0, blocks))
    n, in_ch = n + depth, width
  return stages


def _norm(name: str, dtype) -> nn.LayerNorm:
  # Two-pass variance, as BatchNorm here: E[x^2]-E[x]^2 cancels on flat inputs.
  return nn.LayerNorm(epsilon=LN_EPSILON, use_fast_variance=False, dtype=dtype, name=name)


class Block(nn.Module):
  """The ConvNeXt block: depthwise 7x7, LayerNorm, MLP, LayerScale, residual."""

  spec: BlockSpec
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = self.spec.channels
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    y = DepthwiseConv(7, 1, dtype=self.dtype, padding="torch", use_bias=True, name="depthwise_conv")(x)
    y = _norm("norm", self.dtype)(y)
    y = activation("gelu")(dense(MLP_RATIO * c, name="pointwise1")(y))
    y = dense(c, name="pointwise2")(y)
    gamma = self.param("layer_scale", nn.initializers.constant(LAYER_SCALE_INIT), (c,), jnp.float32)
    y = y * gamma.astype(self.dtype)
    return x + DropPath(self.drop_path_rate)(y, not train)


class Stage(nn.Module):
  """Optional downsampling, then blocks block1..blockN."""

  spec: StageSpec
  rates: tuple[float, ...]  # drop-path rate per block
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.spec.downsample:
      x = _norm("downsample_norm", self.dtype)(x)
      x = Conv(self.spec.channels, (2, 2), (2, 2), padding="VALID", dtype=self.dtype,
               name="downsample_conv")(x)
    for block, rate in zip(self.spec.blocks, self.rates):
      x = Block(block, rate, self.dtype, name=block.block)(x, train)
    return x


class Stem(nn.Module):
  """4x4 stride-4 patchify convolution (with bias), LayerNorm."""

  channels: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = Conv(self.channels, (4, 4), (4, 4), padding="VALID", dtype=self.dtype, name="conv")(x)
    return _norm("norm", self.dtype)(x)


class Top(nn.Module):
  """LayerNorm of the pooled features (torchvision's ``classifier.0``, timm's ``head.norm``)."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    return _norm("norm", self.dtype)(x)


class ConvNeXt(nn.Module):
  """ConvNeXt backbone: ``{"stem", "stage1".."stage4", "pre_logits"}`` from normalised NHWC images.

  ``frozen_bn`` is accepted for the registry's common signature; LayerNorm has
  no running statistics to freeze.
  """

  variant: str = "convnext_tiny"
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.variant not in VARIANTS:
      raise ValueError(f"Unknown ConvNeXt variant {self.variant!r}; known: {sorted(VARIANTS)}.")
    cfg = VARIANTS[self.variant]
    total = sum(cfg.depths)
    features = {}
    x = features["stem"] = Stem(cfg.widths[0], self.dtype, name="stem")(x)
    for spec in stage_layout(cfg):
      # Linear in depth from 0 to drop_path_rate (timm, Keras and torchvision alike).
      rates = tuple(self.drop_path_rate * b.index / max(total - 1, 1) for b in spec.blocks)
      x = features[spec.stage] = Stage(spec, rates, self.dtype, name=spec.stage)(x, train)
    features["pre_logits"] = Top(self.dtype, name="top")(jnp.mean(x, axis=(1, 2)))
    return features


def feature_channels(variant: str) -> int:
  """Channels of the pooled features (``pre_logits``)."""
  return VARIANTS[variant].widths[-1]
