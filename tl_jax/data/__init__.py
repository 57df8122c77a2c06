"""Datasets as uint8 images + int labels, split and batched by seed.

``load(config.data)`` returns a ``Dataset`` whose splits are ``train``, ``val``
(optional) and ``test``. ``config.data.name`` picks the source (``SOURCES``):
``digits`` and ``npz`` (in memory), ``tfds`` (``tfds.data_source``) and
``folder`` (``root/<class>/<image>``); the last two decode once into an
on-disk cache and are memory-mapped. Images are resized once, on load, to
``config.data.image_size``; models normalise pixels themselves, and
augmentation runs on the device (``data.augment``). A folder or TFDS split
whose cache would pass ``data.cache_limit_gb`` (or with ``data.cache=False``)
streams instead: decoded per batch, with a random-resized crop of the
original image in training (``data.streaming``). ``resolve(config)`` fills the input settings a
config leaves to its weights (``data.image_size`` 0, ``data.stream.crop_fraction`` 0,
``data.stream.interpolation`` "") from ``models.preprocessing``, and ``data.resize`` ("crop" or
"squash") from the source.

Sources: ``in_package`` (digits, npz), ``tfds_source``, ``image_folder``; ``cache`` (the decode
cache), ``labels``; ``pipeline`` (grain batches, device prefetch); on-device ``augment``,
``randaugment`` and ``mixing`` (mixup/CutMix); ``shift`` (a documented distribution shift of a split:
ImageNet-C Gaussian noise, for WiSE-FT's robustness check).
"""

from collections.abc import Iterator, Mapping
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tl_jax import models
from tl_jax.data import augment, image_folder, in_package, pipeline, streaming, tfds_source


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # (N, H, W, 3) uint8; memory-mapped for cached (folder, tfds) sources, or streaming.Streamed
  labels: np.ndarray  # (N,) int32

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
  splits: dict[str, Split]
  class_names: list[str]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


Pools = dict[str, tuple[np.ndarray, np.ndarray]]  # split name -> (images, labels)


def _tfds(cfg) -> tuple[Pools, list[str]]:
  t = cfg["tfds"]
  pools, names = {}, []
  for split in ("train", "val", "test"):
    if t.get(split):
      *pools[split], names = tfds_source.load(
          t["name"], t[split], cfg["image_size"], data_dir=t.get("data_dir", ""),
          image_key=t.get("image_key", "image"), label_key=t.get("label_key", "label"),
          cache_dir=cfg.get("cache_dir", ""), stream_cfg=cfg)
  return pools, names


def _folder(cfg) -> tuple[Pools, list[str]]:
  pools, names = {}, None
  for split, key in (("train", "path"), ("val", "val_path"), ("test", "test_path")):
    if cfg.get(key):
      images, labels, names, _ = image_folder.load(
          cfg[key], cfg["image_size"], class_names=names, on_error=cfg.get("on_error", "fail"),
          cache_dir=cfg.get("cache_dir", ""), stream_cfg=cfg)
      pools[split] = (images, labels)
  if not pools:
    raise ValueError("data.name='folder' needs data.path: the root of <class>/<image> folders.")
  return pools, names


def _pool(images, labels, names) -> tuple[Pools, list[str]]:
  return {"train": (images, labels)}, names


# Plain-dict registry: config.data.name -> loader(config.data) -> (pools, class names).
# A source gives "train" and, if it has them, "val" and "test"; missing ones
# are held out of "train" by ``load``.
SOURCES = {
    "digits": lambda cfg: _pool(*in_package.digits()),
    "npz": lambda cfg: _pool(*in_package.npz(cfg["path"])),
    "tfds": _tfds,
    "folder": _folder,
}


def class_names(cfg: Mapping[str, Any]) -> list[str]:
  """The class names ``load(cfg)`` would give, reading as little as the source allows."""
  if cfg["name"] == "folder" and cfg.get("path"):
    return image_folder.scan(cfg["path"]).class_names
  if cfg["name"] == "tfds":
    t = cfg["tfds"]
    source = tfds_source.open_split(t["name"], t["train"], t.get("data_dir", ""))
    return list(source.dataset_info.features[t.get("label_key", "label")].names)
  if cfg["name"] not in SOURCES:
    raise ValueError(f"Unknown dataset {cfg['name']!r} (config: data.name); known: {sorted(SOURCES)}.")
  return SOURCES[cfg["name"]](cfg)[1]


PHOTO_SOURCES = ("folder", "tfds")  # data.resize "crop" by default; arrays (digits, npz) "squash"


def default_resize(cfg, prep=None) -> str:
  """``data.resize`` unset: "crop" for photo sources (folder, tfds), unless the weights' own
  preprocessing squashes (timm's crop_mode, ``prep``); "squash" for arrays (digits, npz)."""
  if cfg.get("resize"):
    return cfg["resize"]
  if cfg.get("name") not in PHOTO_SOURCES:
    return "squash"
  return "squash" if prep is not None and prep.crop == "squash" else "crop"


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with what it leaves to its weights filled in: ``data.image_size`` (0 or absent),
  ``data.stream.crop_fraction`` (0) and ``data.stream.interpolation`` ("") from the preprocessing
  of ``model.name``'s weights (``init.source``; ``models.preprocessing``). A copy; values the
  config sets are kept."""
  prep = models.preprocessing(config.model.name, config.get("init", {}).get("source") or None)
  out = ml_collections.ConfigDict(config.to_dict())
  if not out.data.get("image_size"):
    out.data.image_size = prep.size
  if not out.data.get("resize"):
    out.data.resize = default_resize(out.data, prep)
  stream = dict(out.data.get("stream") or {})
  stream["crop_fraction"] = stream.get("crop_fraction") or prep.crop_fraction
  stream["interpolation"] = stream.get("interpolation") or prep.interpolation
  out.data.stream = stream
  return out


@functools.partial(jax.jit, static_argnums=1)
def _resize_batch(x, size: int):
  y = jax.image.resize(x.astype(jnp.float32), (x.shape[0], size, size, x.shape[3]), "bilinear")
  return jnp.clip(jnp.round(y), 0, 255).astype(jnp.uint8)


def resize(images: np.ndarray, size: int, batch: int = 256) -> np.ndarray:
  """Bilinear resize to ``size x size`` (antialiased when shrinking), uint8 in and out.

  Batch by batch into one uint8 array: the float32 pixels of one batch exist at a time, never
  those of the whole set (4x its uint8 size, and as many copies as numpy steps over it).
  """
  if images.shape[1:3] == (size, size):
    return images
  out = np.empty((len(images), size, size, images.shape[3]), np.uint8)
  for i in range(0, len(images), batch):
    out[i:i + batch] = _resize_batch(images[i:i + batch], size)
  return out


def sized(images: np.ndarray, cfg):
  """Array images at ``cfg.image_size``: resized whole ("squash"), or the crop recipe's view."""
  if default_resize(cfg) == "squash":
    return resize(images, cfg["image_size"])
  return streaming.view(cfg, streaming.ArrayReader(images), len(images))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices (rest, held_out) with ``fraction`` of every class held out."""
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    held.append(idx[: int(round(fraction * len(idx)))])
  held = np.sort(np.concatenate(held))
  return np.setdiff1d(np.arange(len(labels)), held), held


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
  """The fold (0..k-1) of every image: each class dealt round-robin in a seeded order, so every fold
  holds ``len(class) / k`` images of each class (give or take one) and every image is in one fold."""
  if k < 2:
    raise ValueError(f"k-fold evaluation needs k >= 2 folds, got {k} (data.folds).")
  rng, fold = np.random.default_rng(seed), np.empty(len(labels), np.int32)
  offset = 0
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    fold[idx] = (np.arange(len(idx)) + offset) % k  # offset: the remainders spread over the folds
    offset += len(idx)
  return fold


def load(cfg: Mapping[str, Any]) -> Dataset:
  """Loads ``cfg.name``, resizes to ``cfg.image_size`` and splits by seed.

  Splits the source does not provide are held out of its train split:
  ``cfg.test_fraction`` of every class goes to ``test`` (with ``cfg.folds = k``
  instead: fold ``cfg.fold`` of a stratified k-fold partition, so that k runs
  test every image once), then
  ``cfg.val_fraction`` of the rest to ``val`` (0 = no validation split).
  ``cfg.train_per_class`` (0 = all) then keeps that many training images of
  every class (seeded), to study how transfer depends on the amount of data.
  """
  if cfg["name"] not in SOURCES:
    raise ValueError(f"Unknown dataset {cfg['name']!r} (config: data.name); known: {sorted(SOURCES)}.")
  pools, names = SOURCES[cfg["name"]](cfg)
  squash = cfg["name"] not in PHOTO_SOURCES and default_resize(cfg) == "squash"
  if cfg["name"] not in PHOTO_SOURCES and not squash:  # arrays on request: the crop recipe's lazy view
    pools = {k: (sized(x, cfg), y) for k, (x, y) in pools.items()}
  images, labels = pools["train"]
  seed = cfg.get("seed", 0)
  train = np.arange(len(labels))
  splits = {}
  if "test" in pools:
    splits["test"] = Split(*pools["test"])
  else:
    if cfg.get("folds", 0):
      if not 0 <= cfg.get("fold", 0) < cfg["folds"]:
        raise ValueError(f"data.fold={cfg.get('fold')} is not one of the {cfg['folds']} folds (0..{cfg['folds'] - 1}).")
      in_test = stratified_folds(labels, cfg["folds"], seed) == cfg.get("fold", 0)
      train, test = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    else:
      train, test = stratified_split(labels, cfg["test_fraction"], seed)
    splits["test"] = Split(images[test], labels[test])
  if "val" in pools:
    splits["val"] = Split(*pools["val"])
  elif cfg.get("val_fraction", 0):
    rest, val = stratified_split(labels[train], cfg["val_fraction"], seed + 1)
    train, splits["val"] = train[rest], Split(images[train[val]], labels[train[val]])
  per_class = cfg.get("train_per_class", 0)
  if per_class:
    rng = np.random.default_rng(seed + 2)
    keep = [rng.permutation(train[labels[train] == c])[:per_class] for c in np.unique(labels[train])]
    short = [len(k) for k in keep if len(k) < per_class]
    if short:
      raise ValueError(f"data.train_per_class={per_class} but some classes have only {min(short)} "
                       "training images: lower it (0 = all).")
    train = np.sort(np.concatenate(keep))
  # A source's own train split stays as it is (memory-mapped), not copied by indexing.
  splits["train"] = Split(images, labels) if len(train) == len(labels) else Split(images[train], labels[train])
  if squash:  # resized once split: each kept image once, never the whole pool beside copies of it
    splits = {k: Split(resize(s.images, cfg["image_size"]), s.labels) for k, s in splits.items()}
  return Dataset(splits, names)


def train_batches(split: Split, batch_size: int, seed: int, start_step: int = 0,
                  **kwargs) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled batches (remainder dropped), resumable at any step.

  The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed at
  ``start_step`` sees exactly the batches an uninterrupted run would. Keyword
  arguments go to ``pipeline.train_batches`` (read-ahead, host sharding).
  """
  return pipeline.train_batches(split, batch_size, seed, start_step, **kwargs)


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """Batches in order, the last one padded to full size; yields (batch, valid count)."""
  for start in range(0, len(split), batch_size):
    # np.asarray: a streamed split decodes here (its evaluation crop).
    images, labels = np.asarray(split.images[start:start + batch_size]), split.labels[start:start + batch_size]
    n, pad = len(labels), batch_size - len(labels)
    if pad:  # a fixed shape compiles once
      images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
      labels = np.concatenate([labels, np.zeros((pad,), labels.dtype)])
    yield {"image": images, "label": labels}, n
