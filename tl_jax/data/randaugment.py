"""RandAugment and TrivialAugmentWide on the device, with torchvision's op set and bins.

torchvision's ``RandAugment`` / ``TrivialAugmentWide`` run their ops on PIL
images, so each op here reproduces the PIL call torchvision makes (its
``_apply_op``): ``Image.transform(AFFINE, NEAREST)`` for the geometric ops,
``ImageEnhance`` (``Image.blend``, truncating to uint8) for brightness, colour,
contrast and sharpness, ``ImageOps`` for posterize, solarize, autocontrast and
equalize. Pixels stay integer-valued between ops, as in a uint8 PIL image.

Every image draws its own op(s) and magnitude bin; a batch costs one affine
warp (``augment.warp``) and one batched pass of every colour op per applied op,
each image keeping its own op's result. The key is the train step's, hence
determined by ``(seed, step)``.

``config.randaugment`` keys (``DEFAULTS``): ``policy`` ("" off, "randaugment",
"trivialaugment"), ``num_ops`` and ``magnitude`` (RandAugment's N and M, a bin
index), ``num_magnitude_bins`` and ``fill`` (pixel value of areas a geometric
op uncovers; torchvision's default 0).
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax.data import augment

DEFAULTS = dict(policy="", num_ops=2, magnitude=9, num_magnitude_bins=31, fill=0.0)
POLICIES = ("", "randaugment", "trivialaugment")
# torchvision's op order (the index an op draws); the first six are affine.
OP_NAMES = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
            "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
_GEOMETRIC = 6


def magnitude_bins(policy: str, num_bins: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """torchvision's ``_augmentation_space``: (num_ops, num_bins) magnitudes and whether each op is signed."""
  wide = policy == "trivialaugment"
  lin = lambda hi: np.linspace(0.0, hi, num_bins)
  const = lambda v: np.full(num_bins, v, np.float64)
  bits = 8 - np.round(np.arange(num_bins) / ((num_bins - 1) / (6 if wide else 4)))
  space = {
      "identity": (const(0.0), False),
      "shear_x": (lin(0.99 if wide else 0.3), True),
      "shear_y": (lin(0.99 if wide else 0.3), True),
      "translate_x": (lin(32.0 if wide else 150.0 / 331.0 * width), True),
      "translate_y": (lin(32.0 if wide else 150.0 / 331.0 * height), True),
      "rotate": (lin(135.0 if wide else 30.0), True),
      **{k: (lin(0.99 if wide else 0.9), True) for k in ("brightness", "color", "contrast", "sharpness")},
      "posterize": (bits, False),
      "solarize": (np.linspace(255.0, 0.0, num_bins), False),
      "autocontrast": (const(0.0), False),
      "equalize": (const(0.0), False),
  }
  return (np.stack([space[k][0] for k in OP_NAMES]).astype(np.float32),
          np.array([space[k][1] for k in OP_NAMES]))


def pil_affine_matrix(op: int, magnitude, height: int, width: int) -> jnp.ndarray:
  """PIL's AFFINE coefficients (a, b, c, d, e, f) torchvision passes for geometric op ``op``.

  An output point (x, y) (continuous, x = column) samples the input at
  ``(a x + b y + c, d x + e y + f)``.
  """
  m = jnp.asarray(magnitude, jnp.float32)
  one, zero = jnp.ones(()), jnp.zeros(())
  # F.affine(shear=degrees(atan(m)), center=[0, 0]): the inverse shear is tan(atan(m)) = m.
  shear_x = jnp.stack([one, m, zero, zero, one, zero])
  shear_y = jnp.stack([one, zero, zero, m, one, zero])
  # F.affine(translate=[int(m), 0]) about the centre: input = output - t.
  t = jnp.trunc(m)
  translate_x = jnp.stack([one, zero, -t, zero, one, zero])
  translate_y = jnp.stack([one, zero, zero, zero, one, -t])
  # Image.rotate(m) (counter-clockwise degrees) about (width / 2, height / 2).
  th = -jnp.deg2rad(m)
  a, b, d, e = jnp.cos(th), jnp.sin(th), -jnp.sin(th), jnp.cos(th)
  cx, cy = width / 2, height / 2
  rotate = jnp.stack([a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy])
  identity = jnp.stack([one, zero, zero, zero, one, zero])
  table = jnp.stack([identity, shear_x, shear_y, translate_x, translate_y, rotate])
  return table[jnp.clip(op, 0, _GEOMETRIC - 1)]


def geometric(image: jnp.ndarray, coeffs: jnp.ndarray, fill) -> jnp.ndarray:
  """``Image.transform(AFFINE, coeffs, NEAREST, fillcolor=fill)`` through ``augment.warp``."""
  h, w = image.shape[:2]
  a, b, c, d, e, f = (coeffs[i] for i in range(6))
  # PIL samples at pixel centres (+0.5) and takes floor(): in index coordinates
  # that is warp's nearest tap, floor(index + 0.5).
  matrix = jnp.array([[e, d, 0.5 * (d + e) + f - 0.5], [b, a, 0.5 * (a + b) + c - 0.5], [0.0, 0.0, 1.0]])
  out = augment.warp(image, matrix, fill_mode="nearest", interpolation="nearest")
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                            indexing="ij")
  x, y = a * cols + b * rows + c, d * cols + e * rows + f
  # PIL's bounds test: the tap floor(x) lies in [0, w) (warp clamps it instead).
  inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
  return jnp.where(inside[..., None], out, fill)


# The colour ops take a batch (N, H, W, C) and magnitudes shaped (N, 1, 1, 1).


def _blend(degenerate, image, factor):
  """``Image.blend(degenerate, image, factor)`` on uint8: clipped, then truncated."""
  return jnp.floor(jnp.clip(degenerate + factor * (image - degenerate), 0.0, 255.0))


def _gray(images):
  """``convert("L")``: ITU-R 601-2 luma in PIL's 16-bit fixed point, rounded; (N, H, W, 1)."""
  rgb = images.astype(jnp.int32)
  luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 32768) >> 16
  return luma.astype(jnp.float32)[..., None]


def brightness(images, m):
  return _blend(jnp.zeros_like(images), images, 1.0 + m)


def color(images, m):
  return _blend(_gray(images), images, 1.0 + m)


def contrast(images, m):
  mean = jnp.floor(jnp.mean(_gray(images), axis=(1, 2, 3), keepdims=True) + 0.5)
  return _blend(mean, images, 1.0 + m)


def sharpness(images, m):
  # ImageFilter.SMOOTH: [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, rounded; the
  # one-pixel border keeps the input (so blending leaves it unchanged).
  _, h, w, _ = images.shape
  acc = sum(images[:, i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3)) + 4 * images[:, 1:-1, 1:-1]
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  # pad + where, not .at[].set: a scatter costs 30x more on CPU.
  interior = jnp.pad(jnp.ones((1, h - 2, w - 2, 1), bool), pad)
  smooth = jnp.where(interior, jnp.pad(jnp.floor(acc / 13.0 + 0.5), pad), images)
  return _blend(smooth, images, 1.0 + m)


def posterize(images, bits):
  step = jnp.exp2(8.0 - jnp.trunc(bits))  # ImageOps.posterize: keep the top `bits` bits
  return jnp.floor(images / step) * step


def solarize(images, threshold):
  # ImageOps.solarize: invert every pixel at or above the threshold (exact on integer pixels).
  return jnp.where(images < threshold, images, 255.0 - images)


def autocontrast(images, m):
  del m
  lo, hi = images.min(axis=(1, 2), keepdims=True), images.max(axis=(1, 2), keepdims=True)
  # ImageOps.autocontrast(cutoff=0): per channel, lut(i) = int((i - lo) * 255 / (hi - lo)).
  out = jnp.floor(jnp.clip((images - lo) * 255.0 / jnp.maximum(hi - lo, 1.0), 0.0, 255.0))
  return jnp.where(hi > lo, out, images)


def equalize(images, m):
  """``ImageOps.equalize``: per image and channel, PIL's integer histogram lookup table."""
  del m
  n, h, w, c = images.shape
  # Histograms laid out (image, value, channel): one flat scatter-add builds
  # them all (4x faster on CPU than a vmapped one) and the same flat index
  # reads the lookup table back, with no transposes.
  ids = ((jnp.arange(n).reshape(n, 1, 1, 1) * 256 + images.astype(jnp.int32)) * c + jnp.arange(c)).reshape(-1)
  hist = jnp.zeros(n * 256 * c, jnp.int32).at[ids].add(1).reshape(n, 256, c)
  last = 255 - jnp.argmax(hist[:, ::-1] > 0, axis=1, keepdims=True)  # the highest value present
  step = (h * w - jnp.take_along_axis(hist, last, 1)) // 255
  lut = jnp.clip((step // 2 + jnp.cumsum(hist, 1) - hist) // jnp.maximum(step, 1), 0, 255)
  lut = jnp.where(step > 0, lut, jnp.arange(256).reshape(1, 256, 1))
  return lut.reshape(-1)[ids].reshape(images.shape).astype(jnp.float32)


_COLOUR_OPS = (brightness, color, contrast, sharpness, posterize, solarize, autocontrast, equalize)


def apply_ops(images: jnp.ndarray, ops: jnp.ndarray, magnitudes: jnp.ndarray, fill=0.0) -> jnp.ndarray:
  """Image i of ``images`` (N, H, W, C) through op ``ops[i]`` at signed ``magnitudes[i]``.

  Every op runs on the whole batch and each image keeps its own op's result
  (a masked select): the colour ops are cheap, and batched they are faster
  than a per-image ``lax.switch``, which ``vmap`` would turn into the same
  select. The affine ops share one warp.
  """
  _, h, w, _ = images.shape
  coeffs = jax.vmap(pil_affine_matrix, (0, 0, None, None))(ops, magnitudes, h, w)
  out = jax.vmap(geometric, (0, 0, None))(images, coeffs, fill)  # the identity for colour ops
  m = magnitudes.reshape(-1, 1, 1, 1)
  for k, fn in enumerate(_COLOUR_OPS, start=_GEOMETRIC):
    out = jnp.where((ops == k).reshape(-1, 1, 1, 1), fn(images, m), out)
  return out


def apply_op(image: jnp.ndarray, op, magnitude, fill=0.0) -> jnp.ndarray:
  """Op ``op`` (an index of ``OP_NAMES``) at signed ``magnitude`` on one (H, W, C) image."""
  as1 = lambda v, dtype: jnp.asarray(v, dtype).reshape(1)
  return apply_ops(image[None], as1(op, jnp.int32), as1(magnitude, jnp.float32), fill)[0]


def check_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
  """``cfg`` merged over ``DEFAULTS``; unknown keys and bad values are errors."""
  cfg = dict(cfg or {})
  unknown = set(cfg) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown randaugment option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  cfg = {**DEFAULTS, **cfg}
  if cfg["policy"] not in POLICIES:
    raise ValueError(f"randaugment.policy={cfg['policy']!r}; choose one of {POLICIES} ('' = off).")
  if not 0 <= cfg["magnitude"] < cfg["num_magnitude_bins"]:
    raise ValueError(f"randaugment.magnitude={cfg['magnitude']} must be a bin index in "
                     f"[0, num_magnitude_bins={cfg['num_magnitude_bins']}).")
  if cfg["num_ops"] < 1:
    raise ValueError(f"randaugment.num_ops={cfg['num_ops']} must be >= 1.")
  return cfg


def rand_augment(rng: jax.Array, images: jnp.ndarray, cfg: Mapping[str, Any]) -> jnp.ndarray:
  """Augments a batch (N, H, W, C) with ``cfg``'s policy, a draw per image; float32 out."""
  cfg = check_config(cfg)
  n, h, w, _ = images.shape
  table, signed = magnitude_bins(cfg["policy"], cfg["num_magnitude_bins"], h, w)
  table, signed = jnp.asarray(table), jnp.asarray(signed)
  trivial = cfg["policy"] == "trivialaugment"
  images = jnp.clip(jnp.round(images.astype(jnp.float32)), 0, 255)  # uint8 images, as PIL's
  for k in jax.random.split(rng, 1 if trivial else cfg["num_ops"]):
    k_op, k_bin, k_sign = jax.random.split(k, 3)
    ops = jax.random.randint(k_op, (n,), 0, len(OP_NAMES))
    bins = jax.random.randint(k_bin, (n,), 0, cfg["num_magnitude_bins"]) if trivial else cfg["magnitude"]
    sign = jnp.where(signed[ops] & jax.random.bernoulli(k_sign, shape=(n,)), -1.0, 1.0)
    images = apply_ops(images, ops, sign * table[ops, bins], cfg["fill"])
  return images


def from_config(cfg: Mapping[str, Any] | None, then: Callable | None = None) -> Callable | None:
  """``augment_fn(rng, images)``: ``then`` (the ``augment`` one, may be None) and then the policy.

  torchvision's recipes crop and flip before RandAugment; None when both are off.
  """
  cfg = check_config(cfg)
  if not cfg["policy"]:
    return then

  def fn(rng, images):
    if then is not None:
      images = then(jax.random.fold_in(rng, 0), images)
    return rand_augment(jax.random.fold_in(rng, 1), images, cfg)

  return fn
