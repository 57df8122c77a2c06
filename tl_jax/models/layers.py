"""Layers shared by the backbones, and the switch between their native and CPU-routed forms.

Two layers compute differently on CPU: :func:`conv_general_dilated` (1x1 and
small-map convolutions as matmuls) and :class:`DepthwiseConv` (a sum of
shifted copies). XLA:CPU runs the native forms of those slowly; accelerators
run them well. :func:`impl` picks the form: ``"auto"`` (the default: routed
when ``jax.default_backend()`` is ``"cpu"``, native elsewhere), ``"native"``
or ``"cpu_routed"``, on any backend. Both forms compute the same values and
gradients up to float rounding (``tests/test_layer_impl.py``).
"""

import contextlib
import functools
from collections.abc import Set
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from tl_jax.models.cpu_kernels import conv_tap_grad, depthwise_pads, depthwise_shifted, im2col_conv
from tl_jax.models.padding import conv_padding, same_padding

__all__ = ["IMPLS", "impl", "routed", "bn_momentum", "BatchNorm", "DropPath", "Conv", "DepthwiseConv",
           "conv_general_dilated", "conv_padding", "same_padding", "depthwise_shifted"]

IMPLS = ("auto", "native", "cpu_routed")
# Part of jit's cache key: a function jitted under one implementation is traced
# again under another, never silently reused.
_IMPL = jax.make_user_context("auto")
# 0.0 = each BatchNorm keeps the momentum its family gives it (that of the weights' framework).
_BN_MOMENTUM = jax.make_user_context(0.0)


def check_impl(name: str) -> str:
  """``name`` if it is one of ``IMPLS``; a ValueError naming the choices otherwise."""
  if name not in IMPLS:
    raise ValueError(f"Unknown layer implementation {name!r} (model.layer_impl); use one of {', '.join(IMPLS)}.")
  return name


@contextlib.contextmanager
def impl(name: str):
  """Traces the layers inside the block with implementation ``name`` (one of ``IMPLS``).

  The choice is made when a function is traced, e.g.
  ``with layers.impl("native"): jax.jit(model.apply)(variables, x)``.
  ``model.layer_impl`` in a config sets it for the trainer's model.
  """
  with _IMPL(check_impl(name)):
    yield


def routed() -> bool:
  """Whether layers traced now take their CPU-routed form (see :func:`impl`)."""
  name = _IMPL.value
  return name == "cpu_routed" or (name == "auto" and jax.default_backend() == "cpu")


@contextlib.contextmanager
def bn_momentum(momentum: float):
  """BatchNorm layers built inside the block use running-statistics ``momentum`` (Flax's:
  the weight of the old value; torch's ``momentum=0.1`` is 0.9); 0 keeps each family's own.

  A pretrained family's momentum is its framework's (0.99 for TF-trained weights), which
  suits fine-tuning; a model trained from scratch for a few hundred steps needs a smaller
  one, or its running statistics still describe the random init when it is evaluated.
  ``model.bn_momentum`` in a config sets it.
  """
  if not 0.0 <= momentum < 1.0:
    raise ValueError(f"BatchNorm momentum must be in [0, 1) (model.bn_momentum), got {momentum}.")
  with _BN_MOMENTUM(float(momentum)):
    yield


class BatchNorm(nn.BatchNorm):
  """BatchNorm whose statistics can be frozen layer by layer.

  A layer whose path (``'/'``-joined from the model root, e.g.
  ``backbone/stage2/block1/expand_bn``) is in ``frozen`` always normalises with
  its running statistics and never updates them, even in training: a frozen
  layer group needs this (Keras' ``trainable=False``), since masking the
  parameters alone would let the statistics drift.
  """

  frozen: Set[str] = frozenset()
  # Two-pass variance: E[x^2] - E[x]^2 cancels catastrophically on flat inputs
  # (e.g. white paper), and the error then depends on the reduction order, so
  # 1 and 8 devices would disagree.
  use_fast_variance: bool = False

  def __post_init__(self):
    if _BN_MOMENTUM.value:  # layers are built while their parent is traced, inside bn_momentum()
      object.__setattr__(self, "momentum", _BN_MOMENTUM.value)
    super().__post_init__()

  def __call__(self, x, use_running_average: bool | None = None, **kwargs):
    if "/".join(self.path) in self.frozen:
      use_running_average = True
    return super().__call__(x, use_running_average=use_running_average, **kwargs)


class DropPath(nn.Module):
  """Stochastic depth: drops a residual branch per example (rng stream 'dropout')."""

  rate: float

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
    return jnp.where(mask, x / keep, 0).astype(x.dtype)


# Output maps up to this many pixels keep XLA's own kxk kernel gradient (it ties the tap scan
# at 8x8 and beats it at 7x7 on 512 channels); larger ones take ``conv_tap_grad``'s.
_NATIVE_KERNEL_GRAD_MAX_MAP = 64


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None,
                         preferred_element_type=None):
  """``lax.conv_general_dilated`` that routes what XLA:CPU runs slowly when :func:`routed` (on CPU).

  1. Feature maps smaller than the kernel. XLA:CPU swaps the operands of such
     a convolution (e.g. ResNet-50's 3x3 convolutions on the 2x2 maps of
     stage 4 at 64 px) and runs the swapped form at ~1 GFLOP/s: 140 ms for one
     512->512 layer of batch 16, against 2 ms as im2col + matmul. The backward
     pass meets the same case when the *output* is smaller than the window.
  2. 1x1 convolutions: as a dot they run faster forward, and their backward
     pass becomes two dots instead of convolutions with transposed copies.
  3. Other kxk convolutions with outputs over 8x8: the native convolution,
     with the kernel gradient of :func:`cpu_kernels.conv_tap_grad` (XLA:CPU's
     own runs at 20-60 GFLOP/s on large maps).

  Everything else, and the ``"native"`` implementation (every accelerator
  under ``"auto"``), uses the native convolution; values and gradients match
  it to float rounding. Used by :class:`Conv`.
  """
  native = functools.partial(
      lax.conv_general_dilated, window_strides=window_strides, padding=padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  plain = (feature_group_count == 1 and lhs.ndim == 4
           and dn == lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
           and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ())))
  # Decided at trace time (lax.platform_dependent would trace both branches and
  # linearize a switch per layer: +7 s per Lite0 trace). Either path is
  # correct anywhere; only speed differs.
  if not plain or not routed():
    return native(lhs, rhs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  out = [(n + lo + hi - k) // s + 1
         for n, k, s, (lo, hi) in zip(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)]
  # The backward pass convolves the output gradient with the kernel: small outputs matter too.
  small = not all(n >= k and o >= k for n, o, k in zip(lhs.shape[1:3], out, rhs.shape[:2]))
  if not (small or rhs.shape[0] == rhs.shape[1] == 1):
    if out[0] * out[1] <= _NATIVE_KERNEL_GRAD_MAX_MAP:
      return native(lhs, rhs)
    return conv_tap_grad(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)), precision,
                         preferred_element_type)
  return im2col_conv(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)), precision=precision,
                      preferred_element_type=preferred_element_type)


class Conv(nn.Conv):
  """``nn.Conv`` (same parameters and paths) with the CPU-safe ``conv_general_dilated``."""

  conv_general_dilated: Any = conv_general_dilated


class DepthwiseConv(nn.Module):
  """kxk depthwise convolution; kernel (k, k, 1, C), optional bias (C,); padding as ``conv_padding``.

  Same parameters and paths as ``nn.Conv(C, (k, k), feature_group_count=C,
  kernel_dilation=dilation, use_bias=use_bias)``; computes with
  ``depthwise_shifted`` when :func:`routed` (on CPU), else with the native
  grouped conv. ``"SAME"``/``"torch"`` padding applies to the dilated
  window's extent ``dilation * (k - 1) + 1``.
  """

  kernel_size: int
  stride: int = 1
  dtype: Any = jnp.float32
  padding: str = "SAME"
  use_bias: bool = False
  dilation: int = 1

  @nn.compact
  def __call__(self, x):
    c, k, s, d = x.shape[-1], self.kernel_size, self.stride, self.dilation
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32) if self.use_bias else None
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)

    if routed():  # decided at trace time, as in conv_general_dilated
      y = depthwise_shifted(x, kernel, s, self.padding, d)
    else:
      y = lax.conv_general_dilated(x, kernel, (s, s), depthwise_pads(x.shape, k, s, self.padding, d),
                                   rhs_dilation=(d, d), feature_group_count=c,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if bias is None else y + bias.astype(self.dtype)
