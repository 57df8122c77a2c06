"""Blocks shared by the backbone families: activations, conv-norm-act, squeeze-excite, stochastic
depth, GroupNorm and weight-standardised convolution.

Each block takes explicit widths from the family that uses it (timm
``_efficientnet_blocks.py``): EfficientNet's squeeze-excite reduces from the
block's input width, MobileNetV3's from the expanded width rounded to 8, so the
family computes ``reduced`` and the block does not guess.

Parameter paths (inside the block's own name)::

  ConvBNAct:      conv, bn
  SqueezeExcite:  reduce/{kernel,bias}, expand/{kernel,bias}
"""

from collections.abc import Callable
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from tl_jax.models.layers import Conv, DropPath, conv_padding

__all__ = ["ACTIVATIONS", "activation", "ConvBNAct", "SqueezeExcite", "DropPath", "GroupNorm",
           "StdConv"]


def _identity(x):
  return x


# Name -> function. The names are the ones the papers and the sources use; every
# source computes these the same way (checked by the parity tests).
ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "identity": _identity,
    "relu": nn.relu,
    "relu6": nn.relu6,
    "swish": nn.swish,  # = SiLU: x * sigmoid(x) (EfficientNet)
    "silu": nn.swish,
    "sigmoid": nn.sigmoid,
    "hard_swish": jax.nn.hard_swish,  # x * relu6(x + 3) / 6 (MobileNetV3; torch Hardswish)
    "hard_sigmoid": jax.nn.hard_sigmoid,  # relu6(x + 3) / 6 (torch Hardsigmoid, Keras' MobileNetV3)
    # torch nn.GELU and Keras' ConvNeXt use the exact erf form; jax's default is the tanh one.
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
}


def activation(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """The activation called ``name`` (a key of ``ACTIVATIONS``)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}.")
  return ACTIVATIONS[name]


class ConvBNAct(nn.Module):
  """kxk convolution (no bias), BatchNorm and an activation: submodules ``conv`` and ``bn``.

  ``norm`` is the family's BatchNorm constructor (epsilon and momentum bound),
  ``padding`` a ``conv_padding`` convention, ``act`` a key of ``ACTIVATIONS``.
  """

  features: int
  kernel: int | tuple[int, int]  # (kh, kw) for rectangular kernels (Inception's 1x7)
  stride: int
  norm: Any
  act: str = "relu6"
  dtype: Any = jnp.float32
  padding: str = "SAME"  # a conv_padding convention, or "VALID"
  groups: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    kh, kw = (self.kernel, self.kernel) if isinstance(self.kernel, int) else self.kernel
    s = self.stride
    if self.padding == "VALID":
      pads = [(0, 0), (0, 0)]
    else:
      pads = [conv_padding(self.padding, n, k, s) for n, k in zip(x.shape[1:3], (kh, kw))]
    x = Conv(self.features, (kh, kw), (s, s), padding=pads, use_bias=False,
             feature_group_count=self.groups, dtype=self.dtype, name="conv")(x)
    return activation(self.act)(self.norm(name="bn")(x, not train))


class SqueezeExcite(nn.Module):
  """Squeeze-and-excitation (Hu et al., 2018): channel gates from the pooled map.

  Global average pool, 1x1 conv to ``reduced`` channels (with bias), ``act``,
  1x1 conv back to the input width (with bias), ``gate``, and a per-channel
  scale of the input. The 1x1 convs keep the sources' kernel shapes
  ``(1, 1, in, out)``, so the conv weight transforms apply unchanged.
  """

  reduced: int
  act: str = "relu"
  gate: str = "sigmoid"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = Conv(self.reduced, (1, 1), dtype=self.dtype, name="reduce")(s)
    s = activation(self.act)(s)
    s = Conv(x.shape[-1], (1, 1), dtype=self.dtype, name="expand")(s)
    return x * activation(self.gate)(s)


class GroupNorm(nn.GroupNorm):
  """``nn.GroupNorm`` called like ``BatchNorm``: ``norm(x, use_running_average)``.

  GroupNorm has no running statistics, so the flag changes nothing; taking it
  lets a family pass either norm to one builder (ResNetV2 and BiT).
  """

  # Two-pass variance, as BatchNorm here: E[x^2]-E[x]^2 cancels on flat inputs.
  use_fast_variance: bool = False

  def __call__(self, x, use_running_average: bool | None = None):
    del use_running_average
    return super().__call__(x)


def standardize(w: jnp.ndarray, axis, epsilon: float) -> jnp.ndarray:
  """Zero mean, unit variance over ``axis`` (the fan-in of each output channel)."""
  w = w - jnp.mean(w, axis=axis, keepdims=True)
  return w / jnp.sqrt(jnp.mean(jnp.square(w), axis=axis, keepdims=True) + epsilon)


class StdConv(Conv):
  """Weight-standardised convolution (Qiao et al., 2019; BiT), as big_vision ``models/bit.py``:
  a subclass that standardises the kernel in ``param``, so its path stays ``<conv>/kernel``."""

  epsilon: float = 1e-10

  def param(self, name, *args, **kwargs):
    p = super().param(name, *args, **kwargs)
    if name == "kernel":
      p = standardize(p.astype(jnp.promote_types(p.dtype, jnp.float32)), (0, 1, 2), self.epsilon)
    return p
