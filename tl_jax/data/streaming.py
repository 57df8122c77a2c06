"""Streaming decode: images decoded per example at load time, for datasets too large to cache.

A folder or TFDS source whose decoded cache would pass ``data.cache_limit_gb``
(or any, with ``data.cache=False``) is not decoded up front. Its split holds a
:class:`Streamed` array instead: a lazy, picklable view of the encoded
examples that grain's worker processes decode batch by batch.

* Training batches take an Inception-style random-resized crop of the
  *original-resolution* image (torchvision's ``RandomResizedCrop``: area
  fraction in ``crop_scale``, log-uniform aspect ratio in ``crop_ratio``, ten
  tries, then a central crop), resized to ``image_size``. Its randomness
  comes from ``(seed, step, example index)`` alone, so a resumed run sees the
  same pixels as an uninterrupted one.
* Evaluation (and anything that reads the array, ``np.asarray(view)``) gets
  resize-then-center-crop: the shorter side to ``image_size / crop_fraction``,
  then the central ``image_size`` square, with ``interpolation`` (``eval_view``).
  Unset (0, ""), both are the weights' published ones (``models.preprocessing``:
  256 -> 224 bilinear for torchvision's ResNets, 320 -> 300 bicubic for its
  EfficientNet-B3), filled in by ``tl_jax.data.resolve``.
"""

from collections.abc import Sequence
from concurrent import futures
import dataclasses
import math

import numpy as np
from PIL import Image

DEFAULTS = dict(
    train_crop="random_resized",  # or "center": the evaluation crop in training too
    crop_scale=(0.08, 1.0),  # area fraction of the train crop (torchvision's default)
    crop_ratio=(3 / 4, 4 / 3),  # aspect ratio (width / height) of the train crop
    crop_fraction=0.0,  # evaluation: central crop_fraction of the resized shorter side; 0 = the weights'
    interpolation="",  # "bilinear" | "bicubic"; "" = the weights' (models.preprocessing)
)
RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
TRAIN_CROPS = ("random_resized", "center")


def rgb(image: Image.Image) -> Image.Image:
  """Any PIL mode -> RGB (alpha dropped; palette images through RGBA, as ``cache.fit`` does)."""
  if image.mode == "RGB":
    return image
  return image.convert("RGBA" if image.mode == "P" else image.mode).convert("RGB")


def random_resized_box(rng: np.random.Generator, width: int, height: int, scale: Sequence[float],
                       ratio: Sequence[float]) -> tuple[int, int, int, int]:
  """torchvision ``RandomResizedCrop.get_params`` as a ``(left, top, right, bottom)`` box."""
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
      return left, top, left + w, top + h
  aspect = width / height  # fallback: the whole image, its aspect clamped into ratio
  if aspect < min(ratio):
    w, h = width, round(width / min(ratio))
  elif aspect > max(ratio):
    w, h = round(height * max(ratio)), height
  else:
    w, h = width, height
  top, left = (height - h) // 2, (width - w) // 2
  return left, top, left + w, top + h


def center_box(width: int, height: int, size: int, crop_fraction: float) -> tuple[float, float, float, float]:
  """The box that resize-shorter-side-to-``size / crop_fraction``-then-center-crop-``size`` keeps.

  One resample of that box equals the two-step resize and crop (to a pixel's
  fraction at the box edges) and reads less.
  """
  shorter = round(size / crop_fraction)
  scale = shorter / min(width, height)
  w, h = min(size / scale, width), min(size / scale, height)
  left, top = (width - w) / 2, (height - h) / 2
  return left, top, left + w, top + h


def eval_view(image: Image.Image, size: int, crop_fraction: float, interpolation: str,
              crop: str = "center") -> np.ndarray:
  """``image`` (RGB) as a network evaluates it: ``crop="center"`` resizes its shorter side to
  ``size / crop_fraction`` and keeps the central ``size`` square (one resample of that box);
  ``"squash"`` resizes the whole image to ``size x size``."""
  w, h = image.size
  box = center_box(w, h, size, crop_fraction) if crop == "center" else (0, 0, w, h)
  return np.asarray(image.resize((size, size), RESAMPLE[interpolation], box=box), np.uint8)


class FileReader:
  """Index -> encoded image file, for a folder source."""

  def __init__(self, paths: Sequence[str]):
    self.paths = list(paths)

  def __call__(self, i: int) -> Image.Image:
    return Image.open(self.paths[i])

  def name(self, i: int) -> str:
    return self.paths[i]


@dataclasses.dataclass(frozen=True)
class Streamed:
  """A lazy ``(N, size, size, 3)`` uint8 array of encoded examples.

  Indexing returns another view (``view[idx]``, ``view[a:b]``); ``np.asarray``
  decodes it with the evaluation crop. ``train_batch`` decodes with the
  training crop.
  """

  read: FileReader  # or tfds_source.TfdsReader: index -> PIL image, name(index)
  indices: np.ndarray  # the examples of this view, as indices into ``read``
  size: int
  train_crop: str = DEFAULTS["train_crop"]
  crop_scale: tuple[float, float] = DEFAULTS["crop_scale"]
  crop_ratio: tuple[float, float] = DEFAULTS["crop_ratio"]
  crop_fraction: float = 0.875
  interpolation: str = "bilinear"
  threads: int = 4  # decoding threads of one np.asarray (Pillow releases the GIL)

  def __post_init__(self):
    if self.train_crop not in TRAIN_CROPS:
      raise ValueError(f"data.stream.train_crop={self.train_crop!r}; use one of {TRAIN_CROPS}.")
    if not 0 < self.crop_fraction <= 1:
      raise ValueError(f"data.stream.crop_fraction={self.crop_fraction} must be in (0, 1].")
    if self.interpolation not in RESAMPLE:
      raise ValueError(f"data.stream.interpolation={self.interpolation!r}: use one of {sorted(RESAMPLE)}.")

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.indices), self.size, self.size, 3)

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, key):
    if isinstance(key, (int, np.integer)):
      return self._decode(int(self.indices[key]), None)
    return dataclasses.replace(self, indices=np.asarray(self.indices[key]).reshape(-1))

  def __array__(self, dtype=None, copy=None):
    out = self._batch(self.indices, [None] * len(self.indices))
    return out if dtype is None else out.astype(dtype)

  def train_batch(self, positions: np.ndarray, seed: int, step: int) -> np.ndarray:
    """Training crops of the examples at ``positions`` of this view, for batch ``step``.

    Example ``i``'s crop is drawn from ``np.random.default_rng([seed, step, i])``
    (``i`` its index in the source): the same batch at the same step always
    has the same pixels, however the batches are spread over workers.
    """
    indices = self.indices[np.asarray(positions)]
    if self.train_crop == "center":
      return self._batch(indices, [None] * len(indices))
    return self._batch(indices, [np.random.default_rng([seed, step, int(i)]) for i in indices])

  def _batch(self, indices, rngs) -> np.ndarray:
    out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
    if len(indices) == 0:
      return out

    def one(k):
      out[k] = self._decode(int(indices[k]), rngs[k])

    with futures.ThreadPoolExecutor(max(1, min(self.threads, len(indices)))) as pool:
      list(pool.map(one, range(len(indices))))
    return out

  def _decode(self, i: int, rng: np.random.Generator | None) -> np.ndarray:
    try:
      with self.read(i) as image:
        image = rgb(image)
        if rng is None:
          return eval_view(image, self.size, self.crop_fraction, self.interpolation)
        box = random_resized_box(rng, *image.size, self.crop_scale, self.crop_ratio)
        return np.asarray(image.resize((self.size, self.size), RESAMPLE[self.interpolation], box=box), np.uint8)
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's ways of failing on a bad file
      raise ValueError(f"Cannot decode {self.read.name(i)} ({type(e).__name__}: {e}) while streaming: "
                       "fix or remove it (a streamed source cannot skip files mid-run).") from e


def decoded_gb(n: int, size: int) -> float:
  """Size of the decoded uint8 cache of ``n`` images at ``size x size``."""
  return n * size * size * 3 / 1e9


def applies(cfg, n: int) -> bool:
  """Whether a source of ``n`` images streams: ``data.cache`` off, or its cache over ``data.cache_limit_gb``."""
  return not cfg.get("cache", True) or decoded_gb(n, cfg["image_size"]) > cfg.get("cache_limit_gb", 20.0)


def streamed(cfg, read, n: int) -> Streamed:
  """A :class:`Streamed` over ``n`` examples of ``read`` with ``cfg.image_size`` and ``cfg.stream``."""
  opts = {**DEFAULTS, **dict(cfg.get("stream", {}) or {})}
  unknown = set(opts) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown data.stream option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  return Streamed(read, np.arange(n), cfg["image_size"], opts["train_crop"], tuple(opts["crop_scale"]),
                  tuple(opts["crop_ratio"]), float(opts["crop_fraction"] or 0.875),
                  opts["interpolation"] or "bilinear")
