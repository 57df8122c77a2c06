"""On-device augmentation: Keras' ImageDataGenerator set and random-resized-crop, in JAX.

Every example gets its own PRNG key and one 3x3 affine matrix that maps output
pixel coordinates ``(row, col, 1)`` to input coordinates, composed exactly as
Keras' ``ImageDataGenerator`` composes it (rotation @ shift @ shear @ zoom about
the image centre, then the flips). One resampling pass (bilinear or nearest,
with ``fill_mode`` nearest / reflect / constant, scipy's semantics) applies it,
so stacking ops costs no extra passes. The functions are pure and jit-able;
``from_config`` returns ``augment_fn(rng, images)`` for ``steps.train_step``.
Normalisation is not done here: ``models.Classifier`` normalises with its
backbone's mean and std, so the same pixels serve every backbone.
"""

from collections.abc import Callable, Mapping
import functools
from typing import Any

import jax
import jax.numpy as jnp

# Keys of ``config.augment``; every default is off, so {} is the identity.
DEFAULTS = dict(
    rotation=0.0,  # degrees: uniform in [-rotation, rotation]
    width_shift=0.0,  # < 1: fraction of the width; >= 1: pixels (Keras' width_shift_range)
    height_shift=0.0,
    shear=0.0,  # degrees, counter-clockwise shear angle (Keras' shear_range)
    zoom=0.0,  # zx, zy independent in [1 - zoom, 1 + zoom]; > 1 zooms out, as in Keras
    horizontal_flip=False,
    vertical_flip=False,
    fill_mode="nearest",  # nearest | reflect | constant
    cval=0.0,  # the constant of fill_mode="constant", in pixel units (0..255)
    interpolation="bilinear",  # bilinear | nearest
    random_resized_crop=False,  # Inception crop of the input, resized back to its size
    crop_scale=(0.08, 1.0),  # area fraction of the crop
    crop_ratio=(3 / 4, 4 / 3),  # aspect ratio (width / height), sampled log-uniformly
)
FILL_MODES = ("nearest", "reflect", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


def check_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
  """``cfg`` merged over ``DEFAULTS``; unknown keys and bad values are errors."""
  cfg = dict(cfg or {})
  unknown = set(cfg) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown augment option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  cfg = {**DEFAULTS, **cfg}
  if cfg["fill_mode"] not in FILL_MODES:
    raise ValueError(f"augment.fill_mode={cfg['fill_mode']!r}; choose one of {FILL_MODES}.")
  if cfg["interpolation"] not in INTERPOLATIONS:
    raise ValueError(f"augment.interpolation={cfg['interpolation']!r}; choose one of {INTERPOLATIONS}.")
  for key in ("rotation", "width_shift", "height_shift", "shear", "zoom"):
    if cfg[key] < 0:
      raise ValueError(f"augment.{key}={cfg[key]} must be >= 0 (it is the half-width of a range).")
  return cfg


def is_identity(cfg: Mapping[str, Any]) -> bool:
  """True when no option of ``cfg`` changes an image."""
  cfg = check_config(cfg)
  return not any(cfg[k] for k in ("rotation", "width_shift", "height_shift", "shear", "zoom",
                                   "horizontal_flip", "vertical_flip", "random_resized_crop"))


@functools.partial(jax.jit, static_argnames=("height", "width"))
def keras_matrix(height: int, width: int, *, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0,
                 flip_h=False, flip_v=False) -> jnp.ndarray:
  """Keras' ``apply_affine_transform`` matrix plus its flips, output -> input (row, col).

  Built as Keras 3 builds it, in (x, y) = (col, row) coordinates: rotation @
  shift @ shear @ zoom about the image centre, so square images get exactly
  Keras' transform for the same ``theta``, ``shear``, ``zx`` (columns) and
  ``zy`` (rows). Two deliberate differences, both on what Keras documents:
  ``tx`` shifts rows and ``ty`` columns (Keras 3 shifts columns by ``tx``, the
  height shift), and the centre is the image centre when height != width.

  Args:
    height, width: image size.
    theta: rotation in degrees; tx, ty: shifts in pixels along rows and columns;
      shear: degrees; zx, zy: zoom along columns and rows (> 1 zooms out).
    flip_h, flip_v: flip after the transform, as ``ImageDataGenerator`` does.
  """
  theta, shear = jnp.deg2rad(theta), jnp.deg2rad(shear)
  one, zero = jnp.ones(()), jnp.zeros(())
  mat = lambda *rows: jnp.stack([jnp.stack([jnp.asarray(v, jnp.float32) for v in r]) for r in rows])
  rotation = mat((jnp.cos(theta), -jnp.sin(theta), zero), (jnp.sin(theta), jnp.cos(theta), zero), (zero, zero, one))
  shift = mat((one, zero, ty), (zero, one, tx), (zero, zero, one))
  shear_m = mat((one, -jnp.sin(shear), zero), (zero, jnp.cos(shear), zero), (zero, zero, one))
  zoom = mat((zx, zero, zero), (zero, zy, zero), (zero, zero, one))
  ox, oy = width / 2 - 0.5, height / 2 - 0.5
  from_centre = mat((one, zero, ox), (zero, one, oy), (zero, zero, one))
  to_centre = mat((one, zero, -ox), (zero, one, -oy), (zero, zero, one))
  xy = from_centre @ rotation @ shift @ shear_m @ zoom @ to_centre
  swap = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (x, y) <-> (row, col)
  # Flipping the output: out[r, c] = transformed[r, width-1-c] (and likewise rows).
  flip = mat((jnp.where(flip_v, -1.0, 1.0), zero, jnp.where(flip_v, height - 1.0, 0.0)),
             (zero, jnp.where(flip_h, -1.0, 1.0), jnp.where(flip_h, width - 1.0, 0.0)), (zero, zero, one))
  return swap @ xy @ swap @ flip


@functools.partial(jax.jit, static_argnames=("height", "width"))
def crop_matrix(height: int, width: int, top, left, crop_h, crop_w) -> jnp.ndarray:
  """Output (height x width) -> input coordinates of the crop at (top, left) of size (crop_h, crop_w).

  Pixel centres are aligned as in ``jax.image.resize`` (half-pixel convention).
  """
  sy, sx = crop_h / height, crop_w / width
  return jnp.array([[sy, 0.0, top + 0.5 * sy - 0.5], [0.0, sx, left + 0.5 * sx - 0.5], [0.0, 0.0, 1.0]],
                   jnp.float32)


def _reflect(i, n):
  """scipy's 'reflect' (half-sample symmetric): d c b a | a b c d | d c b a."""
  i = jnp.mod(i, 2 * n)
  return jnp.where(i >= n, 2 * n - 1 - i, i)


@functools.partial(jax.jit, static_argnames=("fill_mode", "interpolation"))
def warp(image: jnp.ndarray, matrix: jnp.ndarray, *, fill_mode: str = "nearest", cval: float = 0.0,
         interpolation: str = "bilinear") -> jnp.ndarray:
  """Resamples one (H, W, C) image at ``matrix @ (row, col, 1)`` of every output pixel.

  Matches ``scipy.ndimage.affine_transform(order=1 or 0, mode=fill_mode)`` per
  channel. Returns float32.
  """
  h, w = image.shape[:2]
  image = image.astype(jnp.float32)
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
  r = matrix[0, 0] * rows + matrix[0, 1] * cols + matrix[0, 2]
  c = matrix[1, 0] * rows + matrix[1, 1] * cols + matrix[1, 2]
  if interpolation == "nearest":
    # scipy rounds to the nearest tap (halves up for the coordinates that occur here).
    taps = [(jnp.floor(r + 0.5), jnp.floor(c + 0.5), jnp.ones_like(r))]
  else:
    r0, c0 = jnp.floor(r), jnp.floor(c)
    fr, fc = r - r0, c - c0
    taps = [(r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc),
            (r0 + 1, c0, fr * (1 - fc)), (r0 + 1, c0 + 1, fr * fc)]
  out = 0.0
  for ri, ci, weight in taps:
    ri, ci = ri.astype(jnp.int32), ci.astype(jnp.int32)
    if fill_mode == "reflect":
      ri, ci = _reflect(ri, h), _reflect(ci, w)
    # "nearest" clamps the taps; "constant" clamps them too and blanks whole
    # points outside the image below (scipy's 'constant': no interpolation with cval).
    out = out + image[jnp.clip(ri, 0, h - 1), jnp.clip(ci, 0, w - 1)] * weight[..., None]
  if fill_mode == "constant":
    # Border points computed a float32 rounding error (~1e-5 px) outside still count as inside.
    eps = 1e-4
    inside = (r > -eps) & (r < h - 1 + eps) & (c > -eps) & (c < w - 1 + eps)
    out = jnp.where(inside[..., None], out, cval)
  return out


def random_matrix(rng: jax.Array, cfg: Mapping[str, Any], height: int, width: int) -> jnp.ndarray:
  """One example's output -> input matrix, sampled with Keras' ranges."""
  keys = jax.random.split(rng, 9)
  u = lambda k, lo, hi: jax.random.uniform(k, (), jnp.float32, lo, hi)
  pixels = lambda frac, n: frac * n if frac < 1 else frac
  tx = u(keys[1], -1, 1) * pixels(cfg["height_shift"], height)
  ty = u(keys[2], -1, 1) * pixels(cfg["width_shift"], width)
  z = cfg["zoom"]
  m = keras_matrix(height, width, theta=u(keys[0], -1, 1) * cfg["rotation"], tx=tx, ty=ty,
                   shear=u(keys[3], -1, 1) * cfg["shear"], zx=u(keys[4], 1 - z, 1 + z),
                   zy=u(keys[5], 1 - z, 1 + z),
                   flip_h=cfg["horizontal_flip"] & jax.random.bernoulli(keys[6]),
                   flip_v=cfg["vertical_flip"] & jax.random.bernoulli(keys[7]))
  if cfg["random_resized_crop"]:
    m = _random_crop(keys[8], cfg, height, width) @ m
  return m


def _random_crop(rng, cfg, height, width):
  """Inception-style crop (area and log-aspect uniform), clipped to fit the image."""
  k_area, k_ratio, k_top, k_left = jax.random.split(rng, 4)
  area = jax.random.uniform(k_area, (), jnp.float32, *cfg["crop_scale"]) * height * width
  log_lo, log_hi = jnp.log(jnp.asarray(cfg["crop_ratio"], jnp.float32))
  ratio = jnp.exp(jax.random.uniform(k_ratio, (), jnp.float32, log_lo, log_hi))
  crop_w = jnp.clip(jnp.sqrt(area * ratio), 1.0, width)
  crop_h = jnp.clip(jnp.sqrt(area / ratio), 1.0, height)
  top = jax.random.uniform(k_top, (), jnp.float32) * (height - crop_h)
  left = jax.random.uniform(k_left, (), jnp.float32) * (width - crop_w)
  return crop_matrix(height, width, top, left, crop_h, crop_w)


def augment(rng: jax.Array, images: jnp.ndarray, cfg: Mapping[str, Any]) -> jnp.ndarray:
  """Augments a batch (N, H, W, C) with one key per example; returns float32 pixels."""
  cfg = check_config(cfg)
  _, h, w, _ = images.shape

  def one(key, image):
    return warp(image, random_matrix(key, cfg, h, w), fill_mode=cfg["fill_mode"], cval=cfg["cval"],
                interpolation=cfg["interpolation"])

  return jax.vmap(one)(jax.random.split(rng, images.shape[0]), images)


def from_config(cfg: Mapping[str, Any] | None) -> Callable[[jax.Array, jnp.ndarray], jnp.ndarray] | None:
  """``augment_fn(rng, images)`` for ``steps.train_step``, or None when ``cfg`` is all off."""
  cfg = check_config(cfg)
  if is_identity(cfg):
    return None  # skip the resampling pass entirely
  return lambda rng, images: augment(rng, images, cfg)
