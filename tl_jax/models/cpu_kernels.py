"""CPU kernels: convolutions XLA:CPU runs slowly, rewritten as sums of shifted copies and matmuls.

``tl_jax.models.layers`` chooses between these and the native convolutions
(``layers.impl``); both compute the same values and gradients up to float
rounding. Nothing here is CPU-only: the kernels run anywhere, they are only
worth it on XLA:CPU.
"""

import functools
import os

import jax
from jax import lax
import jax.numpy as jnp

from tl_jax.models.padding import conv_padding


def _polyphase(x: jnp.ndarray, window: tuple[int, int], strides: tuple[int, int], pads, dilation: int = 1):
  """NHWC ``x`` padded and split into its strided phases (space-to-depth), ``(n, h', sh, w', sw, c)``,
  with the output size ``(oh, ow)`` of the (strided, dilated) window: a tap is then a plain slice."""
  (kh, kw), (sh, sw), ((top, bottom), (left, right)), d = window, strides, pads, dilation
  n, h, w, c = x.shape
  oh, ow = (h + top + bottom - d * (kh - 1) - 1) // sh + 1, (w + left + right - d * (kw - 1) - 1) // sw + 1
  hp, wp = -(-(h + top + bottom) // sh) * sh, -(-(w + left + right) // sw) * sw
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, hp - h - top, 0), (left, wp - w - left, 0), (0, 0, 0)))
  return x.reshape(n, hp // sh, sh, wp // sw, sw, c), (oh, ow)


def _shifted_taps(x: jnp.ndarray, window: tuple[int, int], strides: tuple[int, int],
                  pads, dilation: int = 1) -> list[jnp.ndarray]:
  """The kh*kw shifted (strided, dilated) views of NHWC ``x`` that a convolution window weighs, row-major.

  Strided taps read a polyphase view (space-to-depth): no strided slice.
  Tap ``i`` of a window dilated by ``d`` sits ``i * d`` pixels in. Written in ``lax``:
  numpy indexing cost ~1 ms of tracing per tap (1,193 taps, 1.1 s of a Lite0 gradient's trace
  under cProfile), paid at every compile.
  """
  (kh, kw), (sh, sw), d = window, strides, dilation
  x, (oh, ow) = _polyphase(x, window, strides, pads, dilation)
  n, c = x.shape[0], x.shape[-1]
  if oh <= 0 or ow <= 0:  # the window is larger than the padded input (Inception at 32 px): empty maps
    return [jnp.zeros((n, max(oh, 0), max(ow, 0), c), x.dtype)] * (kh * kw)

  def tap(i, j):
    a, p, b, q = i * d // sh, i * d % sh, j * d // sw, j * d % sw
    return lax.squeeze(lax.slice(x, (0, a, p, b, q, 0), (n, a + oh, p + 1, b + ow, q + 1, c)), (2, 4))

  return [tap(i, j) for i in range(kh) for j in range(kw)]


def depthwise_pads(shape, k: int, s: int, padding: str, dilation: int):
  """``conv_padding`` of both spatial axes for the dilated window's extent ``d*(k-1)+1``."""
  return [conv_padding(padding, n, dilation * (k - 1) + 1, s) for n in shape[1:3]]


def _depthwise_taps(x: jnp.ndarray, k: int, s: int, padding: str, dilation: int = 1) -> list[jnp.ndarray]:
  """The k*k taps of a kxk depthwise conv with ``conv_padding`` ``padding``."""
  return _shifted_taps(x, (k, k), (s, s), depthwise_pads(x.shape, k, s, padding, dilation), dilation)


def _weighted_sum(taps, kernel):
  """``sum_t taps[t] * kernel[t]`` for a (k, k, 1, c) depthwise kernel, taps row-major."""
  weights = kernel.reshape(-1, kernel.shape[-1])
  return functools.reduce(lax.add, (t * lax.index_in_dim(weights, i, keepdims=False) for i, t in enumerate(taps)))


def _depthwise_sum(x, kernel, stride, padding, dilation=1):
  return _weighted_sum(_depthwise_taps(x, kernel.shape[0], stride, padding, dilation), kernel)


def _depthwise_input_grad(g, kernel, x_shape, stride: int, padding: str, dilation: int = 1):
  """dL/dx of ``_depthwise_sum``: the output gradient spread back to the input grid (interior zeros
  between strided positions, the forward's pads removed) and correlated with the flipped kernel,
  stride 1. One forward-shaped pass, where transposing the k*k taps pads and adds k*k full maps."""
  k, s, d = kernel.shape[0], stride, dilation
  ext = d * (k - 1)
  config = [(0, 0, 0)]
  for (lo, hi), n in zip(depthwise_pads(x_shape, k, s, padding, d), x_shape[1:3]):
    rem = (n + lo + hi - ext - 1) % s  # padded input rows the last window does not reach
    config.append((ext - lo, ext + rem - hi, s - 1))
  spread = lax.pad(g, jnp.zeros((), g.dtype), config + [(0, 0, 0)])
  return _weighted_sum(_shifted_taps(spread, (k, k), (1, 1), ((0, 0), (0, 0)), d), kernel[::-1, ::-1])


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


def _batch_chunk(n: int) -> int:
  """Images per slice when a kernel gradient scans the batch: the most, up to one per CPU core,
  that divide ``n`` (on 2 cores slices of 2 beat 1, 4 and 8, depthwise and kxk alike)."""
  return max(b for b in range(1, min(n, os.cpu_count() or 1) + 1) if n % b == 0)


def _depthwise_kernel_grad(x, g, k: int, stride: int, padding: str, dilation: int = 1):
  """dL/dkernel: per tap, sum over batch and space of tap * g.

  Autodiff emits k*k separate reductions, each streaming all of ``x`` and
  ``g`` from memory (~1 GFLOP/s on the 2-core CPU), and XLA:CPU compiles
  each as its own fusion (0.9 s for one 5x5 layer, most of a routed model's
  compile time). Here a scan over slices of the batch keeps each slice
  cache-resident, and a loop over the k*k taps inside it reads tap ``t`` as
  a dynamic slice: one reduction to compile whatever ``k``, and 1.3-2x faster
  to run than the unrolled taps (BENCHMARKS.md, "Compile time of the routed
  depthwise convolution"). A slice of one image per CPU core measured best
  (2 cores: slices of 2 beat 1, 4 and 8).
  """
  n, c, s, d = x.shape[0], x.shape[-1], stride, dilation
  chunk = _batch_chunk(n)
  pads = depthwise_pads(x.shape, k, s, padding, d)

  def body(acc, xg):
    xp, (oh, ow) = _polyphase(xg[0], (k, k), (s, s), pads, d)

    def tap(t, acc):
      i, j = t // k * d, t % k * d
      v = lax.dynamic_slice(xp, (0, i // s, i % s, j // s, j % s, 0), (chunk, oh, 1, ow, 1, c))
      return acc.at[t].add(jnp.sum(v.reshape(xg[1].shape) * xg[1], axis=(0, 1, 2), dtype=jnp.float32))

    return lax.fori_loop(0, k * k, tap, acc), None

  xs = x.reshape(n // chunk, chunk, *x.shape[1:])
  gs = g.reshape(n // chunk, chunk, *g.shape[1:])
  acc, _ = lax.scan(body, jnp.zeros((k * k, c), jnp.float32), (xs, gs))  # f32 also under bf16
  return acc.reshape(k, k, 1, -1)


def _depthwise_bwd(stride, padding, dilation, residuals, g):
  x, kernel = residuals
  dx = _depthwise_input_grad(g, kernel, x.shape, stride, padding, dilation)
  dkernel = _depthwise_kernel_grad(x, g, kernel.shape[0], stride, padding, dilation)
  return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


depthwise_shifted.defvjp(_depthwise_fwd, _depthwise_bwd)


def im2col_conv(x, kernel, strides, pads, precision=None, preferred_element_type=None):
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


def _native_conv(x, kernel, strides, pads, precision=None, preferred_element_type=None):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision, preferred_element_type=preferred_element_type)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_tap_grad(x, kernel, strides, pads, precision=None, preferred_element_type=None):
  """The native NHWC x HWIO convolution, whose kernel gradient is a scan of shifted-tap matmuls.

  XLA:CPU computes a kxk convolution's kernel gradient as a convolution fed by
  transposing copies, at 20-60 GFLOP/s on large maps (VGG16's and ResNet-50's
  3x3 layers, against ~150 for the forward). Here a scan over slices of the
  batch (``_batch_chunk``) sums, per tap, ``tap^T @ g`` as a 2-D matmul whose
  operands stay cache-resident: 1.5-3.5x faster on 3x3 layers of 14x14 and more,
  6.6x on ResNet's 224 px stem (BENCHMARKS.md, "kxk kernel gradients as a tap
  scan"). The input gradient stays native.
  """
  return _native_conv(x, kernel, strides, pads, precision, preferred_element_type)


def _conv_tap_fwd(x, kernel, strides, pads, precision, preferred_element_type):
  return conv_tap_grad(x, kernel, strides, pads, precision, preferred_element_type), (x, kernel)


def _conv_kernel_grad(x, g, shape, strides, pads, precision):
  kh, kw, cin, cout = shape
  n = x.shape[0]
  chunk = _batch_chunk(n)

  def body(acc, xg):
    gf = xg[1].reshape(-1, cout)
    return acc + jnp.stack([
        lax.dot_general(t.reshape(-1, cin), gf, (((0,), (0,)), ((), ())), precision=precision,
                        preferred_element_type=jnp.float32)  # f32 also under bf16
        for t in _shifted_taps(xg[0], (kh, kw), strides, pads)]), None

  xs = x.reshape(n // chunk, chunk, *x.shape[1:])
  gs = g.reshape(n // chunk, chunk, *g.shape[1:])
  acc, _ = lax.scan(body, jnp.zeros((kh * kw, cin, cout), jnp.float32), (xs, gs))
  return acc.reshape(shape)


def _conv_tap_bwd(strides, pads, precision, preferred_element_type, residuals, g):
  x, kernel = residuals
  _, x_vjp = jax.vjp(lambda x: _native_conv(x, kernel, strides, pads, precision, preferred_element_type), x)
  dt = jnp.promote_types(x.dtype, g.dtype)  # g is float32 where preferred_element_type asked for it
  dkernel = _conv_kernel_grad(x.astype(dt), g.astype(dt), kernel.shape, strides, pads, precision)
  return x_vjp(g)[0], dkernel.astype(kernel.dtype)


conv_tap_grad.defvjp(_conv_tap_fwd, _conv_tap_bwd)
