"""Pre-activation ResNet (He et al., 2016, "Identity mappings"): Keras ResNetV2 and BiT.

One builder, two rows of ``ARCHS`` (the norm and the convolution are passed in):

* ``"keras"`` (``keras.applications.ResNet{50,101,152}V2``): BatchNorm
  (epsilon 1.001e-5), plain convolutions; the stem, projection and last 1x1
  convolutions have biases; the stride of a stage sits on its LAST block
  (3x3 conv, identity shortcut sub-sampled by a 1x1 max-pool); stage 4 has none.
* ``"bit"`` (Big Transfer, Kolesnikov et al., 2020; big_transfer's
  ``ResNetV2``, timm ``resnetv2_*_bit``): GroupNorm(32 groups) and
  weight-standardised convolutions (``StdConv``, big_vision ``models/bit.py``),
  no biases; the stride sits on the FIRST block of stages 2-4 (3x3 conv and
  projection); widths times the width factor (R50x3: 3x).

Both: a 7x7 stride-2 stem conv without norm or activation, then a zero-padded
3x3 stride-2 max-pool (zero, not -inf: nothing rectifies the stem), bottleneck
units ``norm1-relu`` (shared by the projection shortcut) ``-conv1-norm2-relu-
conv2-norm3-relu-conv3`` + shortcut, and a final norm + ReLU before pooling.

Parameter paths::

  backbone/stem/conv
  backbone/stage{s}/block{b}/{norm1,conv1,norm2,conv2,norm3,conv3[,downsample_conv]}
  backbone/top/norm
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import GroupNorm, StdConv
from tl_jax.models.layers import BatchNorm, Conv, DropPath

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@dataclasses.dataclass(frozen=True)
class Arch:
  """A source's block conventions (the family row)."""

  norm: str  # "batch" (BatchNorm) or "group" (GroupNorm, 32 groups)
  std_conv: bool  # weight-standardised convolutions
  stride_last: bool  # the stage's stride sits on its last block (Keras), else its first (BiT)
  bias: bool  # stem, projection and conv3 have biases (Keras)
  epsilon: float  # norm epsilon
  ws_epsilon: float = 0.0  # weight standardisation epsilon


ARCHS = {
    "keras": Arch("batch", False, True, True, 1.001e-5),
    # big_transfer's bit_pytorch: GroupNorm(32) default eps 1e-5, StdConv2d eps 1e-10.
    "bit": Arch("group", True, False, False, 1e-5, 1e-10),
}


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  stage: str
  block: str
  stage_index: int  # 1-based; the mapping tables number from these, never parse names
  block_index: int
  in_channels: int
  width: int  # of the 3x3 conv; the block outputs 4x this
  stride: int
  projection: bool  # 1x1 conv shortcut from the pre-activation
  index: int  # 0-based position in the network (stochastic depth)


def block_layout(depth: int, width_factor: int, arch: Arch) -> list[BlockSpec]:
  """Every block of a pre-activation ResNet-``depth`` x ``width_factor``, in order."""
  layout, in_ch = [], 64 * width_factor
  for s, n in enumerate(DEPTHS[depth], start=1):
    width = 64 * width_factor * 2 ** (s - 1)
    for b in range(1, n + 1):
      if arch.stride_last:
        stride = 2 if b == n and s < 4 else 1
      else:
        stride = 2 if b == 1 and s > 1 else 1
      projection = b == 1  # every stage's first block changes the width
      layout.append(BlockSpec(f"stage{s}", f"block{b}", s, b, in_ch, width, stride, projection,
                              len(layout)))
      in_ch = 4 * width
  return layout


def feature_channels(depth: int, width_factor: int = 1) -> int:
  """Channels of the pooled features (``pre_logits``)."""
  return 2048 * width_factor


class Block(nn.Module):
  """The pre-activation bottleneck unit."""

  spec: BlockSpec
  conv: Any
  norm: Any
  bias: bool
  drop_path_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec, s = self.spec, self.spec.stride
    pre = nn.relu(self.norm(name="norm1")(x, not train))
    if spec.projection:
      shortcut = self.conv(4 * spec.width, (1, 1), (s, s), use_bias=self.bias, name="downsample_conv")(pre)
    elif s > 1:  # Keras: MaxPooling2D(1, strides=s) of the block input
      shortcut = x[:, ::s, ::s, :]
    else:
      shortcut = x
    y = self.conv(spec.width, (1, 1), name="conv1")(pre)
    y = nn.relu(self.norm(name="norm2")(y, not train))
    y = self.conv(spec.width, (3, 3), (s, s), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(self.norm(name="norm3")(y, not train))
    y = self.conv(4 * spec.width, (1, 1), use_bias=self.bias, name="conv3")(y)
    return shortcut + DropPath(self.drop_path_rate)(y, not train)


class Stage(nn.Module):
  blocks: tuple  # (BlockSpec, drop-path rate) per block
  conv: Any
  norm: Any
  bias: bool

  @nn.compact
  def __call__(self, x, train: bool = False):
    for spec, rate in self.blocks:
      x = Block(spec, self.conv, self.norm, self.bias, rate, name=spec.block)(x, train)
    return x


class Stem(nn.Module):
  """7x7 stride-2 convolution alone (pre-activation: the first block normalises)."""

  conv: Any
  channels: int
  bias: bool

  @nn.compact
  def __call__(self, x):
    return self.conv(self.channels, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=self.bias,
                     name="conv")(x)


class Top(nn.Module):
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.relu(self.norm(name="norm")(x, not train))


class ResNetV2(nn.Module):
  """Pre-activation ResNet backbone: ``{"stem", "stage1".."stage4", "pre_logits"}``.

  ``stem`` is the stride-2 stem convolution's output (before the max-pool);
  ``stage{s}`` the raw residual sums (pre-activation: not yet normalised).
  """

  depth: int = 50
  width_factor: int = 1
  arch: str = "bit"
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.arch not in ARCHS:
      raise ValueError(f"Unknown ResNetV2 arch {self.arch!r}; known: {sorted(ARCHS)}.")
    if self.depth not in DEPTHS:
      raise ValueError(f"Unknown ResNetV2 depth {self.depth}; known: {sorted(DEPTHS)}.")
    arch = ARCHS[self.arch]
    if arch.std_conv:
      conv = functools.partial(StdConv, epsilon=arch.ws_epsilon, use_bias=False, padding="VALID",
                               dtype=self.dtype)
    else:
      conv = functools.partial(Conv, use_bias=False, padding="VALID", dtype=self.dtype)
    if arch.norm == "group":
      norm = functools.partial(GroupNorm, num_groups=32, epsilon=arch.epsilon, dtype=self.dtype)
    else:  # torch-style momentum 0.9 as elsewhere in tl_jax
      norm = functools.partial(BatchNorm, momentum=0.9, epsilon=arch.epsilon, frozen=self.frozen_bn,
                               dtype=self.dtype)
    features = {}
    x = features["stem"] = Stem(conv, 64 * self.width_factor, arch.bias, name="stem")(x)
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros: the stem output is not rectified
    x = nn.max_pool(x, (3, 3), (2, 2))
    layout = block_layout(self.depth, self.width_factor, arch)
    stages: dict[str, list] = {}
    for spec in layout:
      stages.setdefault(spec.stage, []).append((spec, self.drop_path_rate * spec.index / len(layout)))
    for stage, blocks in stages.items():
      x = features[stage] = Stage(tuple(blocks), conv, norm, arch.bias, name=stage)(x, train)
    x = Top(norm, name="top")(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features
