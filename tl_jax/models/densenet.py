"""DenseNet (Huang et al., 2017): 121, 169 and 201, in the layout torchvision and Keras share.

A variant is one row of ``VARIANTS`` (dense layers per block). Both sources
compute the same network: a 7x7 stride-2 stem conv + BatchNorm + ReLU and a
3x3 stride-2 max-pool; four dense blocks of BN-ReLU-1x1 conv (4 x growth) -
BN-ReLU-3x3 conv (growth) layers, each concatenating its output to its input;
a transition (BN-ReLU-1x1 conv halving the channels, 2x2 average pool) between
blocks; a final BatchNorm + ReLU before global pooling. The two differ only in
BatchNorm epsilon (1e-5 vs Keras' 1.001e-5: below float32 resolution).

Stages: dense block ``s`` is ``stage{s}``; the transition that precedes it
(blocks 2-4) opens the stage (``stage{s}/transition``), as ConvNeXt's
downsampling does, so ``stage1`` is dense block 1's output at stride 4 and
every stage feature is a dense block's concatenated output.

The model and the mapping tables (``tl_jax.weights.densenet``) walk
:func:`stage_layout`.

Parameter paths (``batch_stats`` mirror the ``bn`` ones)::

  backbone/stem/{conv,bn}
  backbone/stage{s}/transition/{bn,conv}                   (s = 2..4)
  backbone/stage{s}/block{b}/{bn1,conv1,bn2,conv2}         (b = dense layer, from 1)
  backbone/top/bn
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.layers import BatchNorm, Conv

GROWTH = 32
BOTTLENECK = 4  # the 1x1 conv's width is BOTTLENECK * GROWTH
STEM_CHANNELS = 64
BN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class DenseNetConfig:
  layers: tuple[int, int, int, int]  # dense layers per block


VARIANTS: dict[str, DenseNetConfig] = {
    "densenet121": DenseNetConfig((6, 12, 24, 16)),
    "densenet169": DenseNetConfig((6, 12, 32, 32)),
    "densenet201": DenseNetConfig((6, 12, 48, 32)),
}


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  block: str  # "block1".."blockN": the dense layer
  index: int  # 1-based within the dense block (torchvision's denselayer{index})
  in_channels: int


@dataclasses.dataclass(frozen=True)
class StageSpec:
  stage: str  # "stage1".."stage4"
  index: int  # 1-based: dense block ``index``
  transition: bool  # opens with a transition from ``in_channels`` to half of it
  in_channels: int  # before the transition
  out_channels: int  # after the dense block
  layers: tuple[LayerSpec, ...]


def stage_layout(cfg: DenseNetConfig) -> list[StageSpec]:
  """Every stage (transition + dense block) of a DenseNet, in order."""
  stages, ch = [], STEM_CHANNELS
  for s, n in enumerate(cfg.layers, start=1):
    start = ch // 2 if s > 1 else ch
    layers = tuple(LayerSpec(f"block{b}", b, start + (b - 1) * GROWTH) for b in range(1, n + 1))
    stages.append(StageSpec(f"stage{s}", s, s > 1, ch, start + n * GROWTH, layers))
    ch = start + n * GROWTH
  return stages


def feature_channels(variant: str) -> int:
  """Channels of the pooled features (``pre_logits``)."""
  return stage_layout(VARIANTS[variant])[-1].out_channels


class DenseLayer(nn.Module):
  """BN-ReLU-1x1 conv, BN-ReLU-3x3 conv; returns the input with the ``GROWTH`` new channels appended."""

  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = nn.relu(self.norm(name="bn1")(x, not train))
    y = self.conv(BOTTLENECK * GROWTH, (1, 1), name="conv1")(y)
    y = nn.relu(self.norm(name="bn2")(y, not train))
    y = self.conv(GROWTH, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
    return jnp.concatenate([x, y], axis=-1)


class Transition(nn.Module):
  """BN-ReLU-1x1 conv halving the channels, 2x2 stride-2 average pool."""

  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(self.norm(name="bn")(x, not train))
    x = self.conv(x.shape[-1] // 2, (1, 1), name="conv")(x)
    return nn.avg_pool(x, (2, 2), (2, 2))


class Stage(nn.Module):
  """An optional transition, then a dense block of layers block1..blockN."""

  spec: StageSpec
  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.spec.transition:
      x = Transition(self.conv, self.norm, name="transition")(x, train)
    for layer in self.spec.layers:
      x = DenseLayer(self.conv, self.norm, name=layer.block)(x, train)
    return x


class Stem(nn.Module):
  """7x7 stride-2 convolution, BatchNorm, ReLU."""

  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self.conv(STEM_CHANNELS, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv")(x)
    return nn.relu(self.norm(name="bn")(x, not train))


class DenseNet(nn.Module):
  """DenseNet backbone: ``{"stem", "stage1".."stage4", "pre_logits"}`` from normalised NHWC images.

  ``stem`` is the stride-2 activation before the max-pool; ``pre_logits`` the
  pooled ReLU of the final BatchNorm (``top/bn``).
  """

  variant: str = "densenet121"
  drop_path_rate: float = 0.0  # the registry's common signature; DenseNet has no residual branch
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.variant not in VARIANTS:
      raise ValueError(f"Unknown DenseNet variant {self.variant!r}; known: {sorted(VARIANTS)}.")
    conv = functools.partial(Conv, use_bias=False, padding="VALID", dtype=self.dtype)
    # torch momentum 0.1 == flax 0.9.
    norm = functools.partial(BatchNorm, momentum=0.9, epsilon=self.bn_epsilon,
                             frozen=self.frozen_bn, dtype=self.dtype)
    features = {}
    x = features["stem"] = Stem(conv, norm, name="stem")(x, train)
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))  # after a ReLU: 0-pad == -inf-pad
    for spec in stage_layout(VARIANTS[self.variant]):
      x = features[spec.stage] = Stage(spec, conv, norm, name=spec.stage)(x, train)
    x = nn.relu(Top(norm, name="top")(x, train))
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features


class Top(nn.Module):
  """The final BatchNorm (torchvision's ``features.norm5``, Keras' ``bn``)."""

  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    return self.norm(name="bn")(x, not train)
