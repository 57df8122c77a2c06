"""ResNet (He et al., 2016) in the torchvision and the Keras layouts.

Two variants of the bottleneck block exist in the wild, and pretrained weights
only fit the one they were trained with:

* ``style="torchvision"`` (ResNet v1.5, also timm): the stride of a
  downsampling bottleneck sits on the 3x3 convolution; convolutions have no
  bias; BatchNorm epsilon 1e-5.
* ``style="keras"`` (``keras.applications.ResNet50/101/152``, the original
  v1): the stride sits on the first 1x1 convolution; every convolution has a
  bias; BatchNorm epsilon 1.001e-5.

Parameter paths::

  backbone/stem/{conv,bn}
  backbone/stage{s}/block{b}/{conv1,bn1,conv2,bn2[,conv3,bn3][,downsample_conv,downsample_bn]}
                                                        (s = 1..4, b from 1)
"""

from collections.abc import Set
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.layers import BatchNorm, Conv, DropPath

# depth: (block kind, blocks per stage)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # bottlenecks output 4x this
STEM_CHANNELS = 64
# style: (BatchNorm epsilon, convolutions have a bias, stride on the first 1x1)
STYLES = {"torchvision": (1e-5, False, False), "keras": (1.001e-5, True, True)}

# He-normal on fan-out, as torchvision initialises its ResNets.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  stage: str
  block: str
  in_channels: int
  width: int
  stride: int
  downsample: bool  # the shortcut needs a projection (1x1 conv + BN)
  stage_index: int  # 1-based, as in ``stage``: mapping tables number from these, never parse names
  block_index: int


def block_layout(depth: int) -> list[BlockSpec]:
  """Every block of ResNet-``depth``, in order.

  The model and the weight mapping tables both iterate this, so their paths
  cannot disagree.
  """
  kind, repeats = DEPTHS[depth]
  expansion = 4 if kind == "bottleneck" else 1
  layout, in_ch = [], STEM_CHANNELS
  for s, (n, width) in enumerate(zip(repeats, STAGE_WIDTHS), start=1):
    for b in range(1, n + 1):
      stride = 2 if b == 1 and s > 1 else 1
      out = width * expansion
      layout.append(BlockSpec(f"stage{s}", f"block{b}", in_ch, width, stride,
                              stride != 1 or in_ch != out, s, b))
      in_ch = out
  return layout


def feature_channels(depth: int) -> int:
  """Channels of the pooled features (``pre_logits``)."""
  return block_layout(depth)[-1].width * (4 if DEPTHS[depth][0] == "bottleneck" else 1)


class Stem(nn.Module):
  """7x7 stride-2 convolution, BatchNorm, ReLU."""

  conv: Any
  norm: Any

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self.conv(STEM_CHANNELS, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv")(x)
    return nn.relu(self.norm(name="bn")(x, not train))


class Block(nn.Module):
  """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) residual block."""

  spec: BlockSpec
  bottleneck: bool
  conv: Any  # partial Conv with the style's bias choice
  norm: Any
  stride_on_1x1: bool = False
  drop_path_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    spec, s = self.spec, self.spec.stride
    pad1 = ((1, 1), (1, 1))  # symmetric, as both frameworks pad their stride-1/2 3x3s here
    if self.bottleneck:
      s1, s3 = (s, 1) if self.stride_on_1x1 else (1, s)
      out_ch = spec.width * 4
      y = self.conv(spec.width, (1, 1), (s1, s1), name="conv1")(x)
      y = nn.relu(self.norm(name="bn1")(y, not train))
      y = self.conv(spec.width, (3, 3), (s3, s3), padding=pad1, name="conv2")(y)
      y = nn.relu(self.norm(name="bn2")(y, not train))
      y = self.conv(out_ch, (1, 1), name="conv3")(y)
      y = self.norm(name="bn3")(y, not train)
    else:
      out_ch = spec.width
      y = self.conv(spec.width, (3, 3), (s, s), padding=pad1, name="conv1")(x)
      y = nn.relu(self.norm(name="bn1")(y, not train))
      y = self.conv(spec.width, (3, 3), padding=pad1, name="conv2")(y)
      y = self.norm(name="bn2")(y, not train)
    if spec.downsample:
      x = self.conv(out_ch, (1, 1), (s, s), name="downsample_conv")(x)
      x = self.norm(name="downsample_bn")(x, not train)
    return nn.relu(DropPath(self.drop_path_rate)(y, not train) + x)


class Stage(nn.Module):
  """A run of residual blocks named block1..blockN."""

  blocks: tuple  # (BlockSpec, drop-path rate) per block
  bottleneck: bool
  conv: Any
  norm: Any
  stride_on_1x1: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    for spec, rate in self.blocks:
      x = Block(spec, self.bottleneck, self.conv, self.norm, self.stride_on_1x1, rate,
                name=spec.block)(x, train)
    return x


class ResNet(nn.Module):
  """ResNet backbone.

  Takes normalised NHWC images and returns the features dict
  ``{"stem", "stage1".."stage4", "pre_logits"}``; ``stem`` is the stride-2
  activation before the max-pool.
  """

  depth: int = 50
  style: str = "torchvision"
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.style not in STYLES:
      raise ValueError(f"Unknown ResNet style {self.style!r}; known: {sorted(STYLES)}.")
    if self.depth not in DEPTHS:
      raise ValueError(f"Unknown ResNet depth {self.depth}; known: {sorted(DEPTHS)}.")
    epsilon, bias, stride_on_1x1 = STYLES[self.style]
    conv = functools.partial(Conv, use_bias=bias, padding="VALID", kernel_init=conv_init,
                             dtype=self.dtype)
    # torch momentum 0.1 == flax momentum 0.9 (Keras' own is 0.99; only fine-tuning sees it).
    norm = functools.partial(BatchNorm, momentum=0.9, epsilon=epsilon, frozen=self.frozen_bn,
                             dtype=self.dtype)
    features = {}
    x = features["stem"] = Stem(conv, norm, name="stem")(x, train)
    # Keras pads with zeros, torch with -inf: the same after a ReLU.
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    layout = block_layout(self.depth)
    bottleneck = DEPTHS[self.depth][0] == "bottleneck"
    stages: dict[str, list] = {}
    for i, spec in enumerate(layout):
      stages.setdefault(spec.stage, []).append((spec, self.drop_path_rate * i / len(layout)))
    for stage, blocks in stages.items():
      x = features[stage] = Stage(tuple(blocks), bottleneck, conv, norm, stride_on_1x1,
                                  name=stage)(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features
