"""VGG (Simonyan & Zisserman, 2015), with or without BatchNorm.

Five stages of 3x3 convolutions (padding 1, bias), each closed by a 2x2
max-pool. Two tops, like Keras' ``include_top``:

* ``top="pool"``: global average pooling of the last stage (512 features);
  the original fully-connected layers are dropped.
* ``top="fc"``: the original ``fc1``/``fc2`` (4096 each, ReLU, dropout 0.5
  after ``fc1``; the classifier adds its own dropout before the head) on the
  flattened 7x7 map, loadable from the pretrained weights. Other input sizes
  are first average-pooled to 7x7 like torchvision's ``AdaptiveAvgPool2d``.

Parameter paths::

  backbone/stage{s}/conv{c}[, backbone/stage{s}/bn{c}]     (s = 1..5, c from 1)
  backbone/fc1, backbone/fc2                                (top="fc" only)
"""

from collections.abc import Set
import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models.layers import BatchNorm, Conv

# depth: convolutions per stage
DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
STAGE_CHANNELS = (64, 128, 256, 512, 512)
FC_CHANNELS = 4096
FC_GRID = 7  # the fc layers were trained on a 7x7x512 map (224 px input)
TOPS = ("pool", "fc")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  stage: int  # from 1: backbone/stage{stage}
  conv: int  # from 1 within the stage: conv{conv} (+ bn{conv})
  in_channels: int
  out_channels: int


def conv_layout(depth: int) -> list[ConvSpec]:
  """Every conv of VGG-``depth``, in order; the mapping tables iterate this."""
  layout, in_ch = [], 3
  for s, (n, ch) in enumerate(zip(DEPTHS[depth], STAGE_CHANNELS), start=1):
    for c in range(1, n + 1):
      layout.append(ConvSpec(s, c, in_ch, ch))
      in_ch = ch
  return layout


def adaptive_avg_pool(x: jnp.ndarray, size: int) -> jnp.ndarray:
  """torch's ``adaptive_avg_pool2d`` on NHWC: bin i spans [floor(i*H/n), ceil((i+1)*H/n))."""
  def bins(n_in):
    return [(i * n_in // size, -(-(i + 1) * n_in // size)) for i in range(size)]
  h, w = x.shape[1:3]
  if (h, w) == (size, size):
    return x
  rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bins(h)]
  x = jnp.stack(rows, axis=1)
  cols = [jnp.mean(x[:, :, a:b], axis=2) for a, b in bins(w)]
  return jnp.stack(cols, axis=2)


class Stage(nn.Module):
  """``n`` convolutions (+ BatchNorm), ReLU, then a 2x2 max-pool."""

  channels: int
  n: int
  batch_norm: bool
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    first = None
    for c in range(1, self.n + 1):
      x = Conv(self.channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                  kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                  name=f"conv{c}")(x)
      if self.batch_norm:
        x = BatchNorm(momentum=0.9, epsilon=1e-5, frozen=self.frozen_bn, dtype=self.dtype,
                      name=f"bn{c}")(x, not train)
      x = nn.relu(x)
      first = x if first is None else first
    return nn.max_pool(x, (2, 2), (2, 2)), first


class VGG(nn.Module):
  """VGG backbone.

  Takes normalised NHWC images and returns the features dict
  ``{"stem", "stage1".."stage5", "pre_logits"}``. VGG has no separate stem:
  ``stem`` is the activation of its first convolution (full resolution).
  """

  depth: int = 16
  batch_norm: bool = False
  top: str = "pool"
  fc_channels: int = FC_CHANNELS  # smaller only in tests (a tiny variant)
  fc_dropout_rate: float = 0.5
  drop_path_rate: float = 0.0  # no residual branches: accepted for the common API, must be 0
  frozen_bn: Set[str] = frozenset()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.top not in TOPS:
      raise ValueError(f"Unknown VGG top {self.top!r}; use one of {TOPS}.")
    if self.drop_path_rate:
      raise ValueError("VGG has no residual branches: drop_path_rate must be 0.")
    if min(x.shape[1:3]) < 32:
      raise ValueError(f"VGG needs inputs of at least 32x32 pixels (five 2x2 max-pools), got "
                       f"{x.shape[1]}x{x.shape[2]}: raise data.image_size.")
    features = {}
    for s, (n, ch) in enumerate(zip(DEPTHS[self.depth], STAGE_CHANNELS), start=1):
      x, first = Stage(ch, n, self.batch_norm, self.frozen_bn, self.dtype, name=f"stage{s}")(
          x, train)
      features.setdefault("stem", first)
      features[f"stage{s}"] = x
    if self.top == "pool":
      features["pre_logits"] = jnp.mean(x, axis=(1, 2))
      return features
    x = adaptive_avg_pool(x, FC_GRID)
    x = x.reshape(x.shape[0], -1)  # (h, w, c) order; converters permute torch's (c, h, w)
    x = nn.relu(nn.Dense(self.fc_channels, dtype=self.dtype, name="fc1")(x))
    x = nn.Dropout(self.fc_dropout_rate)(x, deterministic=not train)
    features["pre_logits"] = nn.relu(nn.Dense(self.fc_channels, dtype=self.dtype, name="fc2")(x))
    return features
