"""EfficientNet-Lite (Tan & Le, 2019; the TF-Lite friendly variant) and MobileNetV2.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-excite,
and the stem (32 channels), head conv (1280 channels) and the repeats of the
first and last stage are not scaled. Convolutions use TF "SAME" padding (the
extra pixel goes bottom/right), which is what the released weights expect.

Parameter paths::

  backbone/stem/{conv,bn}
  backbone/stage{s}/block{b}/{expand_conv,expand_bn,depthwise_conv,depthwise_bn,
                              project_conv,project_bn}     (s = 1..7, b from 1)
  backbone/top/{conv,bn}
"""

from collections.abc import Set
import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.layers import BatchNorm, Conv, DepthwiseConv, DropPath, conv_padding


@dataclasses.dataclass(frozen=True)
class StageSpec:
  kernel: int
  stride: int
  expand: int
  channels: int
  repeats: int


# EfficientNet-B0 stages; every Lite variant scales these.
BASE_STAGES = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)

# MobileNetV2 (Sandler et al., 2018) is the same network of inverted residuals
# with 3x3 kernels throughout (expansion t, channels c, repeats n, stride s).
MOBILENET_V2_STAGES = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(3, 2, 6, 32, 3),
    StageSpec(3, 2, 6, 64, 4),
    StageSpec(3, 1, 6, 96, 3),
    StageSpec(3, 2, 6, 160, 3),
    StageSpec(3, 1, 6, 320, 1),
)

# name: (width multiplier, depth multiplier, resolution, dropout before the head)
LITE_SCALING = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 300, 0.3),
}
STEM_CHANNELS = 32
TOP_CHANNELS = 1280


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
  """Scales a channel count and rounds it to a multiple of ``divisor`` (TF rule)."""
  scaled = channels * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * scaled:  # never round down by more than 10%
    rounded += divisor
  return int(rounded)


def lite_stages(width: float, depth: float, base=BASE_STAGES) -> tuple[StageSpec, ...]:
  """The stage specs of a Lite variant: first and last stage keep their repeats."""
  last = len(base) - 1
  return tuple(
      dataclasses.replace(
          s,
          channels=round_channels(s.channels, width),
          repeats=s.repeats if i in (0, last) else int(math.ceil(depth * s.repeats)),
      )
      for i, s in enumerate(base)
  )


def block_layout(stages) -> list[tuple[str, str, int, int, StageSpec]]:
  """(stage name, block name, in channels, stride, spec) for every block, in order.

  The model and the weight mapping tables both iterate this, so their paths
  cannot disagree.
  """
  layout, in_ch = [], STEM_CHANNELS
  for s, spec in enumerate(stages, start=1):
    for b in range(1, spec.repeats + 1):
      stride = spec.stride if b == 1 else 1
      layout.append((f"stage{s}", f"block{b}", in_ch, stride, spec))
      in_ch = spec.channels
  return layout


class ConvBN(nn.Module):
  """Convolution, BatchNorm and ReLU6: the stem and the top of the network."""

  features: int
  kernel: int
  stride: int
  norm: Any
  dtype: Any = jnp.float32
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, train: bool = False):
    k, s = self.kernel, self.stride
    pads = [conv_padding(self.padding, n, k, s) for n in x.shape[1:3]]
    x = Conv(self.features, (k, k), (s, s), padding=pads, use_bias=False,
                dtype=self.dtype, name="conv")(x)
    return nn.relu6(self.norm(name="bn")(x, not train))


class MBConv(nn.Module):
  """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project."""

  in_channels: int
  spec: StageSpec
  stride: int
  norm: Any
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(Conv, use_bias=False, padding="SAME", dtype=self.dtype)
    inputs = x
    hidden = self.in_channels * self.spec.expand
    if self.spec.expand != 1:
      x = conv(hidden, (1, 1), name="expand_conv")(x)
      x = nn.relu6(self.norm(name="expand_bn")(x, not train))
    k, s = self.spec.kernel, self.stride
    x = DepthwiseConv(k, s, self.dtype, self.padding, name="depthwise_conv")(x)
    x = nn.relu6(self.norm(name="depthwise_bn")(x, not train))
    x = conv(self.spec.channels, (1, 1), name="project_conv")(x)
    x = self.norm(name="project_bn")(x, not train)
    if self.stride == 1 and self.in_channels == self.spec.channels:
      x = DropPath(self.drop_path_rate)(x, not train) + inputs
    return x


class Stage(nn.Module):
  """A run of MBConv blocks named block1..blockN."""

  blocks: tuple  # (in channels, stride, spec, drop-path rate) per block
  norm: Any
  dtype: Any = jnp.float32
  padding: str = "SAME"

  @nn.compact
  def __call__(self, x, train: bool = False):
    for b, (in_ch, stride, spec, rate) in enumerate(self.blocks, start=1):
      x = MBConv(in_ch, spec, stride, self.norm, rate, self.dtype, self.padding,
                 name=f"block{b}")(x, train)
    return x


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite backbone; with ``base=MOBILENET_V2_STAGES``, MobileNetV2.

  Takes normalised NHWC images and returns the features dict
  ``{"stem", "stage1".."stage7", "pre_logits"}``. ``padding`` and
  ``bn_epsilon`` follow the framework the weights come from: TF/Keras
  ("SAME", 1e-3) or PyTorch ("torch", 1e-5 for torchvision and timm's MobileNetV2).
  """

  width: float = 1.0
  depth: float = 1.0
  drop_path_rate: float = 0.0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32
  base: tuple = BASE_STAGES
  padding: str = "SAME"
  bn_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    norm = functools.partial(
        BatchNorm, momentum=0.99, epsilon=self.bn_epsilon, frozen=self.frozen_bn, dtype=self.dtype
    )
    features = {}
    x = features["stem"] = ConvBN(STEM_CHANNELS, 3, 2, norm, self.dtype, self.padding,
                                  name="stem")(x, train)
    layout = block_layout(lite_stages(self.width, self.depth, self.base))
    stages: dict[str, list] = {}
    for i, (stage, _, in_ch, stride, spec) in enumerate(layout):
      rate = self.drop_path_rate * i / len(layout)  # deeper blocks drop more
      stages.setdefault(stage, []).append((in_ch, stride, spec, rate))
    for stage, blocks in stages.items():
      x = features[stage] = Stage(tuple(blocks), norm, self.dtype, self.padding,
                                  name=stage)(x, train)
    x = ConvBN(TOP_CHANNELS, 1, 1, norm, self.dtype, name="top")(x, train)
    features["pre_logits"] = jnp.mean(x, axis=(1, 2))
    return features


def efficientnet_lite(name: str, **kwargs) -> EfficientNetLite:
  """The backbone ``name`` (a key of ``LITE_SCALING``)."""
  width, depth, _, _ = LITE_SCALING[name]
  return EfficientNetLite(width=width, depth=depth, **kwargs)


def mobilenet_v2(**kwargs) -> EfficientNetLite:
  """MobileNetV2 (width 1.0); pass ``padding``/``bn_epsilon`` of the weights' framework."""
  return EfficientNetLite(base=MOBILENET_V2_STAGES, **kwargs)
