"""Classifier = backbone + new head: the model every tl_jax run trains."""

import contextlib
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tl_jax.models import layers


class Classifier(nn.Module):
  """A backbone, global-pooled features and a linear head named ``head``.

  ``__call__`` takes raw RGB pixels (uint8 or float in [0, 255], NHWC),
  normalises them as the registry entry declares (``mean``/``std`` per RGB
  channel, then BGR order if ``bgr``), so data pipelines stay model-agnostic,
  and returns ``(logits, features)``, where ``features`` holds
  ``stem``, ``stage1..N`` and ``pre_logits``. With ``num_classes=0`` there is
  no head and ``logits`` is ``pre_logits`` (timm's convention).
  ``layer_impl`` (``layers.IMPLS``) traces the backbone with that layer
  implementation; ``None`` keeps the one ``layers.impl`` sets around the call.
  ``bn_momentum`` overrides every BatchNorm's running-statistics momentum
  (``layers.bn_momentum``); 0 keeps the family's own.
  """

  backbone: nn.Module
  num_classes: int
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
  std: tuple[float, float, float] = (1.0, 1.0, 1.0)
  bgr: bool = False
  layer_impl: str | None = None
  bn_momentum: float = 0.0  # ``layers.bn_momentum``: 0 keeps each BatchNorm's own

  # Declared metadata: the path of the new head (tests check it against the tree).
  HEAD = "head"

  def setup(self):
    if self.num_classes:
      self.dropout = nn.Dropout(self.dropout_rate)
      # A zero head starts every class at the same logit: the first steps then
      # tune the head instead of undoing a random projection of good features.
      self.head = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, dtype=self.dtype)

  def __call__(self, images, train: bool = False):
    mean = jnp.asarray(self.mean, self.dtype)
    std = jnp.asarray(self.std, self.dtype)
    x = (images.astype(self.dtype) - mean) / std
    if self.bgr:  # Caffe-trained weights (Keras ResNet/VGG) expect BGR
      x = x[..., ::-1]
    with (layers.impl(self.layer_impl) if self.layer_impl else contextlib.nullcontext(),
          layers.bn_momentum(self.bn_momentum)):
      features = self.backbone(x, train)
    return self.from_pre_logits(features["pre_logits"], train)[0], features

  def from_pre_logits(self, pre_logits, train: bool = False):
    """The head alone on backbone features: ``(logits, {'pre_logits'})``.

    Same contract as ``__call__`` so that the train and eval steps run on
    cached features unchanged (``model.apply(..., method='from_pre_logits')``).
    """
    if not self.num_classes:
      return pre_logits, {"pre_logits": pre_logits}
    x = self.dropout(pre_logits, deterministic=not train)
    return self.head(x).astype(jnp.float32), {"pre_logits": pre_logits}
