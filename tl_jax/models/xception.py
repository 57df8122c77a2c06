"""Xception (Chollet, 2017) in the layout of ``keras.applications.Xception``.

Entry flow: two 3x3 convs (stride 2, then 1; BN + ReLU), then blocks 2-4 of
two separable 3x3 convs + BN and a SAME 3x3 stride-2 max-pool, with a 1x1
stride-2 conv + BN shortcut (block 2 starts without the ReLU); middle flow:
blocks 5-12 of three ReLU-separable conv-BN with an identity shortcut; exit
flow: block 13 (as the entry blocks, 728 -> 1024) and block 14 (two separable
convs + BN + ReLU, 1536 and 2048). BatchNorm epsilon 1e-3; no biases.

Stages (docs/zoo.md states them): ``stem`` = block 1 (stride 2); ``stage1`` =
block 2 (stride 4), ``stage2`` = block 3 (stride 8), ``stage3`` = blocks 4-12
(stride 16), ``stage4`` = blocks 13-14 (stride 32). Blocks keep their Keras
number (``stage3/block4``...), so paths name the paper's blocks.

Parameter paths::

  backbone/stem/{conv1,conv2}/{conv,bn}
  backbone/stage{s}/block{k}/{sepconv1,sepconv2[,sepconv3]}/{depthwise,pointwise}, .../sepconv{i}_bn
  backbone/stage{s}/block{k}/{shortcut_conv,shortcut_bn}
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.blocks import ConvBNAct
from tl_jax.models.layers import BatchNorm, Conv, DepthwiseConv

BN_EPSILON = 1e-3


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  stage: str
  block: str  # Keras' block number: "block2".."block14"
  index: int  # Keras' block number
  widths: tuple[int, ...]  # of the separable convs
  shortcut: bool  # 1x1 stride-2 conv + BN shortcut and a closing max-pool (entry/exit blocks)
  first_relu: bool  # a ReLU before the first separable conv (all but block 2)
  last_relu: bool = False  # block 14: ReLU after each BN, no residual


def block_layout() -> list[BlockSpec]:
  """Blocks 2-14 of Xception, in order."""
  layout = [BlockSpec("stage1", "block2", 2, (128, 128), True, False),
            BlockSpec("stage2", "block3", 3, (256, 256), True, True),
            BlockSpec("stage3", "block4", 4, (728, 728), True, True)]
  layout += [BlockSpec("stage3", f"block{k}", k, (728, 728, 728), False, True) for k in range(5, 13)]
  return layout + [BlockSpec("stage4", "block13", 13, (728, 1024), True, True),
                   BlockSpec("stage4", "block14", 14, (1536, 2048), False, False, True)]


class SeparableConv(nn.Module):
  """Keras ``SeparableConv2D`` (no bias): 3x3 depthwise then 1x1 pointwise, as ``depthwise`` and
  ``pointwise`` (the kernel shapes of Keras' ``depthwise_kernel``/``pointwise_kernel``)."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = DepthwiseConv(3, 1, dtype=self.dtype, padding="SAME", name="depthwise")(x)
    return Conv(self.features, (1, 1), use_bias=False, dtype=self.dtype, name="pointwise")(x)


class Block(nn.Module):
  spec: BlockSpec
  norm: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec, y = self.spec, x
    for i, width in enumerate(spec.widths, start=1):
      if i > 1 or spec.first_relu:
        y = nn.relu(y)
      y = SeparableConv(width, self.dtype, name=f"sepconv{i}")(y)
      y = self.norm(name=f"sepconv{i}_bn")(y, not train)
    if spec.last_relu:
      return nn.relu(y)
    if spec.shortcut:
      y = nn.max_pool(y, (3, 3), (2, 2), padding="SAME")  # -inf padding, as TF's SAME max-pool
      x = Conv(spec.widths[-1], (1, 1), (2, 2), use_bias=False, dtype=self.dtype, name="shortcut_conv")(x)
      x = self.norm(name="shortcut_bn")(x, not train)
    return x + y


class Stem(nn.Module):
  norm: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(ConvBNAct, norm=self.norm, act="relu", dtype=self.dtype, padding="VALID")
    return conv(64, 3, 1, name="conv2")(conv(32, 3, 2, name="conv1")(x, train), train)


class Stage(nn.Module):
  blocks: tuple[BlockSpec, ...]
  norm: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    for spec in self.blocks:
      x = Block(spec, self.norm, self.dtype, name=spec.block)(x, train)
    return x


class Xception(nn.Module):
  """Xception backbone: ``{"stem", "stage1".."stage4", "pre_logits"}`` from normalised NHWC images."""

  drop_path_rate: float = 0.0  # the registry's common signature
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    norm = functools.partial(BatchNorm, momentum=0.99, epsilon=BN_EPSILON, frozen=self.frozen_bn,
                             dtype=self.dtype)
    features = {}
    x = features["stem"] = Stem(norm, self.dtype, name="stem")(x, train)
    stages: dict[str, list] = {}
    for spec in block_layout():
      stages.setdefault(spec.stage, []).append(spec)
    for stage, blocks in stages.items():
      x = features[stage] = Stage(tuple(blocks), norm, self.dtype, name=stage)(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features
