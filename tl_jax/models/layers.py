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
import os
from collections.abc import Set
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp


IMPLS = ("auto", "native", "cpu_routed")
# Part of jit's cache key: a function jitted under one implementation is traced
# again under another, never silently reused.
_IMPL = jax.make_user_context("auto")


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


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF "SAME" padding (the extra pixel goes after), as lax's ``'SAME'`` does."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_padding(padding: str, size: int, kernel: int, stride: int) -> tuple[int, int]:
  """Padding of one spatial axis: ``"SAME"`` (TF/Keras) or ``"torch"`` (k//2 both sides).

  The two agree except for strided convolutions on even sizes, where TF puts
  the one padding pixel after; weights only fit the convention they were
  trained with.
  """
  if padding == "SAME":
    return same_padding(size, kernel, stride)
  if padding == "torch":
    return kernel // 2, kernel // 2
  raise ValueError(f"Unknown padding {padding!r}; use 'SAME' (TF/Keras) or 'torch'.")


def _shifted_taps(x: jnp.ndarray, window: tuple[int, int], strides: tuple[int, int],
                  pads, dilation: int = 1) -> list[jnp.ndarray]:
  """The kh*kw shifted (strided, dilated) views of NHWC ``x`` that a convolution window weighs, row-major.

  Strided taps read a polyphase view (space-to-depth): no strided slice.
  Tap ``i`` of a window dilated by ``d`` sits ``i * d`` pixels in.
  """
  (kh, kw), (sh, sw), ((top, bottom), (left, right)), d = window, strides, pads, dilation
  n, h, w, c = x.shape
  oh, ow = (h + top + bottom - d * (kh - 1) - 1) // sh + 1, (w + left + right - d * (kw - 1) - 1) // sw + 1
  hp, wp = -(-(h + top + bottom) // sh) * sh, -(-(w + left + right) // sw) * sw
  x = jnp.pad(x, ((0, 0), (top, hp - h - top), (left, wp - w - left), (0, 0)))
  x = x.reshape(n, hp // sh, sh, wp // sw, sw, c)
  return [x[:, i * d // sh:i * d // sh + oh, i * d % sh, j * d // sw:j * d // sw + ow, j * d % sw, :]
          for i in range(kh) for j in range(kw)]


def _depthwise_pads(shape, k: int, s: int, padding: str, dilation: int):
  """``conv_padding`` of both spatial axes for the dilated window's extent ``d*(k-1)+1``."""
  return [conv_padding(padding, n, dilation * (k - 1) + 1, s) for n in shape[1:3]]


def _depthwise_taps(x: jnp.ndarray, k: int, s: int, padding: str, dilation: int = 1) -> list[jnp.ndarray]:
  """The k*k taps of a kxk depthwise conv with ``conv_padding`` ``padding``."""
  return _shifted_taps(x, (k, k), (s, s), _depthwise_pads(x.shape, k, s, padding, dilation), dilation)


def _depthwise_sum(x, kernel, stride, padding, dilation=1):
  k = kernel.shape[0]
  return sum(t * kernel[i // k, i % k, 0] for i, t in enumerate(_depthwise_taps(x, k, stride, padding, dilation)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def depthwise_shifted(x: jnp.ndarray, kernel: jnp.ndarray, stride: int,
                      padding: str = "SAME", dilation: int = 1) -> jnp.ndarray:
  """Depthwise convolution as a sum of k*k shifted, scaled copies of the input.

  XLA:CPU runs grouped convolutions through a slow generic path (20-60x slower
  than this on EfficientNet's layer shapes, forward and backward). The kernel
  gradient has its own rule: see ``_depthwise_kernel_grad``.
  """
  return _depthwise_sum(x, kernel, stride, padding, dilation)


def _depthwise_fwd(x, kernel, stride, padding, dilation):
  return _depthwise_sum(x, kernel, stride, padding, dilation), (x, kernel)


def _depthwise_kernel_grad(x, g, k: int, stride: int, padding: str, dilation: int = 1):
  """dL/dkernel: per tap, sum over batch and space of tap * g.

  Autodiff emits k*k separate reductions, each streaming all of ``x`` and
  ``g`` from memory (~1 GFLOP/s on the 2-core CPU). A scan over slices of
  the batch keeps each slice cache-resident across its k*k taps: 3-5x faster
  on EfficientNet-Lite's layer shapes. A slice of one image per CPU core
  measured best (2 cores: slices of 2 beat 1, 4 and 8).
  """
  n = x.shape[0]
  chunk = max(d for d in range(1, min(n, os.cpu_count() or 1) + 1) if n % d == 0)

  def body(acc, xg):
    taps = _depthwise_taps(xg[0], k, stride, padding, dilation)
    return acc + jnp.stack([jnp.sum(t * xg[1], axis=(0, 1, 2), dtype=jnp.float32) for t in taps]), None

  xs = x.reshape(n // chunk, chunk, *x.shape[1:])
  gs = g.reshape(n // chunk, chunk, *g.shape[1:])
  acc, _ = lax.scan(body, jnp.zeros((k * k, x.shape[-1]), jnp.float32), (xs, gs))  # f32 also under bf16
  return acc.reshape(k, k, 1, -1)


def _depthwise_bwd(stride, padding, dilation, residuals, g):
  x, kernel = residuals
  _, x_vjp = jax.vjp(lambda x: _depthwise_sum(x, kernel, stride, padding, dilation), x)  # linear in x
  dkernel = _depthwise_kernel_grad(x, g, kernel.shape[0], stride, padding, dilation)
  return x_vjp(g)[0], dkernel.astype(kernel.dtype)


depthwise_shifted.defvjp(_depthwise_fwd, _depthwise_bwd)


def _im2col_conv(x, kernel, strides, pads, precision=None, preferred_element_type=None):
  """NHWC x HWIO convolution as one matmul over the kh*kw shifted (strided) taps."""
  kh, kw, cin, cout = kernel.shape
  taps = _shifted_taps(x, (kh, kw), strides, pads)
  patches = jnp.concatenate(taps, axis=-1) if len(taps) > 1 else taps[0]
  return _matmul(patches, kernel.reshape(kh * kw * cin, cout), precision, preferred_element_type)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _matmul(x, w, precision=None, preferred_element_type=None):
  """``x @ w`` over the last axis of ``x``, whose weight gradient is one 2-D matmul.

  Autodiff contracts the batch and spatial axes of a 4-D ``x`` for the weight
  gradient; XLA:CPU then has the BatchNorm-backward fusion that feeds it write
  a transposed copy (143 ms for one 16x112x112x96 tensor of Lite0 at 224 px).
  Flattened to 2-D first it does not: Lite0 224 px full train 7.7 -> 10 img/s.
  """
  return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                         preferred_element_type=preferred_element_type)


def _matmul_fwd(x, w, precision, preferred_element_type):
  return _matmul(x, w, precision, preferred_element_type), (x, w)


def _matmul_bwd(precision, preferred_element_type, residuals, g):
  x, w = residuals
  dx = lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())), precision=precision)
  dw = lax.dot_general(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]), (((0,), (0,)), ((), ())),
                       precision=precision)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None,
                         preferred_element_type=None):
  """``lax.conv_general_dilated`` that routes two cases to a matmul when :func:`routed` (on CPU).

  1. Feature maps smaller than the kernel. XLA:CPU swaps the operands of such
     a convolution (e.g. ResNet-50's 3x3 convolutions on the 2x2 maps of
     stage 4 at 64 px) and runs the swapped form at ~1 GFLOP/s: 140 ms for one
     512->512 layer of batch 16, against 2 ms as im2col + matmul. The backward
     pass meets the same case when the *output* is smaller than the window.
  2. 1x1 convolutions: as a dot they run faster forward, and their backward
     pass becomes two dots instead of convolutions with transposed copies.

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
    return native(lhs, rhs)
  return _im2col_conv(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)), precision=precision,
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
      y = lax.conv_general_dilated(x, kernel, (s, s), _depthwise_pads(x.shape, k, s, self.padding, d),
                                   rhs_dilation=(d, d), feature_group_count=c,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if bias is None else y + bias.astype(self.dtype)
