"""Photos as the network sees them: one recipe whether decoded once into the cache or per batch.

A folder or TFDS split is a :class:`Streamed` view: a lazy, picklable
``(N, image_size, image_size, 3)`` uint8 array that grain's workers read batch
by batch. Its pictures come from a ``read``er: the files (``FileReader``, TFDS
records), decoded per batch, or the decode cache's store of the same pictures
(``StoreReader``, memory-mapped), so ``data.cache`` and ``data.cache_limit_gb``
change how fast a split is read, never what the model sees.

``data.resize="crop"`` (photo sources' default; torchvision/timm):

* every picture is first sized by ``decode.shorter_side``: its shorter side to
  ``R = round(image_size / crop_fraction)`` (the weights' published resize,
  ``models.preprocessing``: 256 for 224 at 0.875), its longer side center-cropped
  to at most ``R * MAX_ASPECT``; the cache stores exactly these pixels;
* training takes an Inception-style random-resized crop of that picture
  (torchvision's ``RandomResizedCrop``: area fraction in ``crop_scale``, log-uniform
  aspect ratio in ``crop_ratio``, ten tries, then a central crop) resized to
  ``image_size`` with ``interpolation``. Its randomness comes from ``(seed, step,
  example index)`` alone: a resumed run, and a cached and a streamed run, draw the
  same boxes; ``train_crop="center"`` trains on the evaluation crop;
* evaluation (and anything that reads the array, ``np.asarray(view)``) takes the
  central ``image_size`` square: torchvision's ``Resize(R)`` + ``CenterCrop``.

``data.resize="squash"`` (arrays' default; Keras' ``flow_from_directory``): the
whole picture resized to ``image_size x image_size`` in training and evaluation;
a cached split is then a plain memory-mapped array.
"""

from collections.abc import Sequence
from concurrent import futures
import dataclasses
import math

import numpy as np
from PIL import Image

from tl_jax.data import decode

DEFAULTS = dict(
    train_crop="random_resized",  # or "center": the evaluation crop in training too
    crop_scale=(0.08, 1.0),  # area fraction of the train crop (torchvision's default)
    crop_ratio=(3 / 4, 4 / 3),  # aspect ratio (width / height) of the train crop
    crop_fraction=0.0,  # evaluation: central crop_fraction of the resized shorter side; 0 = the weights'
    interpolation="",  # "bilinear" | "bicubic"; "" = the weights' (models.preprocessing)
)
TRAIN_CROPS = ("random_resized", "center")
RESIZES = ("crop", "squash")
# The longest side kept, as a multiple of the shorter: 4:3 camera photos whole, wider ones
# center-cropped to 4:3 (RandomResizedCrop's widest box is 4:3 too).
MAX_ASPECT = 4 / 3


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


def store_sides(size: int, crop_fraction: float) -> tuple[int, int]:
  """``(shorter, longest)`` side of the pictures the crop recipe works on."""
  short = max(size, round(size / crop_fraction))
  return short, round(short * MAX_ASPECT)


def eval_view(image: Image.Image, size: int, crop_fraction: float, interpolation: str,
              crop: str = "center") -> np.ndarray:
  """RGB ``image`` as the evaluation input: ``crop="center"`` (``"crop"``) the central ``size``
  square of ``decode.shorter_side``'s picture, ``"squash"`` the whole image resized."""
  if crop == "squash":
    return decode.squash(image, size, interpolation)
  picture = decode.shorter_side(image, *store_sides(size, crop_fraction), interpolation)
  return np.ascontiguousarray(decode.center_crop(np.asarray(picture, np.uint8), size))


class FileReader:
  """Index -> image file, for a folder source."""

  decodes = True  # each read decodes a file: worth worker processes

  def __init__(self, paths: Sequence[str]):
    self.paths = list(paths)

  def __call__(self, i: int) -> str:
    return self.paths[i]

  def name(self, i: int) -> str:
    return self.paths[i]


class ArrayReader:
  """Index -> an image of an in-memory array source (digits, npz) under ``data.resize="crop"``."""

  def __init__(self, images: np.ndarray):
    self.images = images

  def __call__(self, i: int) -> Image.Image:
    return Image.fromarray(np.asarray(self.images[i], np.uint8))

  def name(self, i: int) -> str:
    return f"array image {i}"


class StoreReader:
  """Index -> the cached picture: ``images`` ``(N, R, L, 3)`` with ``extents`` ``(N, 3)``
  = (rows, columns, transposed): portrait pictures are stored transposed."""

  sized = True  # its pictures are already decode.shorter_side's

  def __init__(self, images: np.ndarray, extents: np.ndarray):
    self.images, self.extents = images, np.asarray(extents)

  def __getstate__(self):  # worker processes map the file again instead of copying it
    path = getattr(self.images, "filename", None)
    return {"images": path or self.images, "extents": self.extents}

  def __setstate__(self, state):
    images = state["images"]
    self.images = np.load(images, mmap_mode="r") if isinstance(images, str) else images
    self.extents = state["extents"]

  def __call__(self, i: int) -> Image.Image:
    rows, cols, transposed = (int(v) for v in self.extents[i])
    a = self.images[i, :rows, :cols]
    return Image.fromarray(np.ascontiguousarray(a.transpose(1, 0, 2) if transposed else a))

  def name(self, i: int) -> str:
    return f"cached picture {i}"


def to_store(picture: Image.Image, short: int, long_max: int) -> tuple[np.ndarray, tuple[int, int, int]]:
  """A sized picture as a ``(short, long_max, 3)`` store row and its extents."""
  a = np.asarray(picture, np.uint8)
  transposed = a.shape[0] > a.shape[1]
  if transposed:
    a = a.transpose(1, 0, 2)
  row = np.zeros((short, long_max, 3), np.uint8)
  row[:a.shape[0], :a.shape[1]] = a
  return row, (a.shape[0], a.shape[1], int(transposed))


@dataclasses.dataclass(frozen=True)
class Streamed:
  """A lazy ``(N, size, size, 3)`` uint8 array of pictures (module docstring).

  Indexing returns another view (``view[idx]``, ``view[a:b]``); ``np.asarray``
  gives the evaluation crops. ``train_batch`` gives the training crops.
  """

  read: FileReader  # or StoreReader, tfds_source.TfdsReader: index -> image, name(index)
  indices: np.ndarray  # the examples of this view, as indices into ``read``
  size: int
  train_crop: str = DEFAULTS["train_crop"]
  crop_scale: tuple[float, float] = DEFAULTS["crop_scale"]
  crop_ratio: tuple[float, float] = DEFAULTS["crop_ratio"]
  crop_fraction: float = 0.875
  interpolation: str = "bilinear"
  resize: str = "crop"
  threads: int = 4  # decoding threads of one np.asarray (Pillow releases the GIL)

  def __post_init__(self):
    if self.train_crop not in TRAIN_CROPS:
      raise ValueError(f"data.stream.train_crop={self.train_crop!r}; use one of {TRAIN_CROPS}.")
    if not 0 < self.crop_fraction <= 1:
      raise ValueError(f"data.stream.crop_fraction={self.crop_fraction} must be in (0, 1].")
    if self.interpolation not in decode.RESAMPLE:
      raise ValueError(f"data.stream.interpolation={self.interpolation!r}: use one of {sorted(decode.RESAMPLE)}.")
    if self.resize not in RESIZES:
      raise ValueError(f"data.resize={self.resize!r}: use one of {RESIZES}.")

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.indices), self.size, self.size, 3)

  @property
  def decodes(self) -> bool:
    """Whether reading decodes files (then grain reads it in worker processes)."""
    return getattr(self.read, "decodes", False)

  @property
  def deterministic(self) -> bool:
    """Whether training sees the same pixels every epoch (no random crops)."""
    return self.resize == "squash" or self.train_crop == "center"

  dtype = np.dtype(np.uint8)
  ndim = 4

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, key):
    if isinstance(key, (int, np.integer)):
      return self._decode(int(self.indices[key]), None)
    if isinstance(key, tuple):  # pixel indexing (view[..., 0]): of the evaluation crops
      return np.asarray(self)[key]
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
    if self.deterministic:
      return self._batch(indices, [None] * len(indices))
    return self._batch(indices, [np.random.default_rng([seed, step, int(i)]) for i in indices])

  def picture(self, i: int) -> Image.Image:
    """Example ``i`` of the source as the crop recipe's picture (``decode.shorter_side``)."""
    if getattr(self.read, "sized", False):
      return self.read(i)
    image = decode.open_rgb(self.read(i), self.read.name(i))
    if self.resize == "squash":
      return image
    return decode.shorter_side(image, *store_sides(self.size, self.crop_fraction), self.interpolation)

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
      picture = self.picture(i)
    except decode.BadImage as e:
      raise ValueError(f"{e} It is read while training: fix or remove it (a split read per batch "
                       "cannot skip files mid-run).") from e
    if self.resize == "squash":
      return decode.squash(picture, self.size, self.interpolation)
    if rng is None:
      return np.ascontiguousarray(decode.center_crop(np.asarray(picture, np.uint8), self.size))
    box = random_resized_box(rng, *picture.size, self.crop_scale, self.crop_ratio)
    return np.asarray(picture.resize((self.size, self.size), decode.RESAMPLE[self.interpolation], box=box),
                      np.uint8)


def options(cfg) -> dict:
  """``cfg.stream`` over ``DEFAULTS``, unknown keys refused, unset values at their fallbacks."""
  opts = {**DEFAULTS, **dict(cfg.get("stream", {}) or {})}
  unknown = set(opts) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown data.stream option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  return {**opts, "crop_fraction": float(opts["crop_fraction"] or 0.875),
          "interpolation": opts["interpolation"] or "bilinear"}


def resize_mode(cfg) -> str:
  """``cfg.resize``; unset: "crop" (photo sources: folder, tfds)."""
  mode = cfg.get("resize") or "crop"
  if mode not in RESIZES:
    raise ValueError(f"data.resize={mode!r}: use one of {RESIZES}.")
  return mode


def decoded_gb(n: int, cfg) -> float:
  """Size of the decode cache of ``n`` images under ``cfg`` (``data``)."""
  size = cfg["image_size"]
  if resize_mode(cfg) == "squash":
    return n * size * size * 3 / 1e9
  short, long_max = store_sides(size, options(cfg)["crop_fraction"])
  return n * short * long_max * 3 / 1e9


def applies(cfg, n: int) -> bool:
  """Whether a source of ``n`` images streams: ``data.cache`` off, or its cache over ``data.cache_limit_gb``."""
  return not cfg.get("cache", True) or decoded_gb(n, cfg) > cfg.get("cache_limit_gb", 20.0)


def view(cfg, read, n: int) -> Streamed:
  """A :class:`Streamed` over ``n`` examples of ``read`` with ``cfg.image_size``, ``cfg.resize``, ``cfg.stream``."""
  opts = options(cfg)
  return Streamed(read, np.arange(n), cfg["image_size"], opts["train_crop"], tuple(opts["crop_scale"]),
                  tuple(opts["crop_ratio"]), opts["crop_fraction"], opts["interpolation"], resize_mode(cfg))


def build_store(cfg, n: int, open_one, name_of, workers: int = 4) -> tuple[np.ndarray, np.ndarray | None, list]:
  """The decode cache's arrays of ``n`` images: ``open_one(i)`` -> what ``decode.open_rgb`` reads.

  Returns ``(images, extents, bad)``: "squash" ``(n_good, S, S, 3)`` and no extents; "crop" the
  ``decode.shorter_side`` pictures as ``(n_good, R, L, 3)`` rows with their ``(n_good, 3)``
  extents (``StoreReader``); ``bad``: ``[(name, reason)]`` of the images that failed to decode.
  """
  size, mode, opts = cfg["image_size"], resize_mode(cfg), options(cfg)
  short, long_max = store_sides(size, opts["crop_fraction"])

  def one(i):
    try:
      image = decode.open_rgb(open_one(i), name_of(i))
    except decode.BadImage as e:
      return str(e)
    if mode == "squash":
      return decode.squash(image, size), None
    return to_store(decode.shorter_side(image, short, long_max, opts["interpolation"]), short, long_max)

  with futures.ThreadPoolExecutor(max(1, workers)) as pool:
    done = list(pool.map(one, range(n)))
  good = [d for d in done if not isinstance(d, str)]
  bad = [(name_of(i), d) for i, d in enumerate(done) if isinstance(d, str)]
  shape = (size, size, 3) if mode == "squash" else (short, long_max, 3)
  images = np.stack([g[0] for g in good]) if good else np.zeros((0, *shape), np.uint8)
  extents = None if mode == "squash" else np.array([g[1] for g in good], np.int32).reshape(-1, 3)
  return images, extents, bad


def store_key(cfg) -> dict:
  """What the decode cache's arrays depend on besides the files (its cache key part)."""
  mode, opts = resize_mode(cfg), options(cfg)
  if mode == "squash":
    return {"size": cfg["image_size"], "resize": mode}
  return {"resize": mode, "sides": store_sides(cfg["image_size"], opts["crop_fraction"]),
          "interpolation": opts["interpolation"]}


def from_store(cfg, images: np.ndarray, extents) -> np.ndarray | Streamed:
  """The split over a decode-cache entry: the array itself ("squash"), or the crop recipe's view."""
  if resize_mode(cfg) == "squash":
    return images
  return view(cfg, StoreReader(images, np.asarray(extents, np.int32).reshape(-1, 3)), len(images))
