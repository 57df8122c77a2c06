"""Datasets as in-memory uint8 images + int labels, split and batched by seed.

``load(config.data)`` returns a ``Dataset`` whose splits are ``train``, ``val``
(optional) and ``test``. Images are resized once, on load, to
``config.data.image_size``; models normalise pixels themselves.
"""

from collections.abc import Iterator, Mapping
import dataclasses
from typing import Any

import jax
import numpy as np

from tl_jax.data import in_package


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # (N, H, W, 3) uint8
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


# Plain-dict registry: config.data.name -> loader(config.data) -> (images, labels, class names).
SOURCES = {
    "digits": lambda cfg: in_package.digits(),
    "npz": lambda cfg: in_package.npz(cfg["path"]),
}


def resize(images: np.ndarray, size: int, batch: int = 256) -> np.ndarray:
  """Bilinear resize to ``size x size`` (antialiased when shrinking), uint8 in and out."""
  if images.shape[1:3] == (size, size):
    return images
  fn = jax.jit(lambda x: jax.image.resize(x.astype(np.float32), (x.shape[0], size, size, 3), "bilinear"))
  out = [np.asarray(fn(images[i:i + batch])) for i in range(0, len(images), batch)]
  return np.clip(np.round(np.concatenate(out)), 0, 255).astype(np.uint8)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices (rest, held_out) with ``fraction`` of every class held out."""
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    held.append(idx[: int(round(fraction * len(idx)))])
  held = np.sort(np.concatenate(held))
  return np.setdiff1d(np.arange(len(labels)), held), held


def load(cfg: Mapping[str, Any]) -> Dataset:
  """Loads ``cfg.name``, resizes to ``cfg.image_size`` and splits by seed.

  ``cfg.test_fraction`` of every class goes to ``test``, then ``cfg.val_fraction``
  of the rest to ``val`` (0 = no validation split).
  """
  if cfg["name"] not in SOURCES:
    raise ValueError(f"Unknown dataset {cfg['name']!r}; known: {sorted(SOURCES)}.")
  images, labels, names = SOURCES[cfg["name"]](cfg)
  images = resize(images, cfg["image_size"])
  seed = cfg.get("seed", 0)
  train, test = stratified_split(labels, cfg["test_fraction"], seed)
  splits = {"test": Split(images[test], labels[test])}
  if cfg.get("val_fraction", 0):
    rest, val = stratified_split(labels[train], cfg["val_fraction"], seed + 1)
    train, splits["val"] = train[rest], Split(images[train[val]], labels[train[val]])
  splits["train"] = Split(images[train], labels[train])
  return Dataset(splits, names)


def train_batches(split: Split, batch_size: int, seed: int, start_step: int = 0,
                  rows: slice = slice(None)) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled batches (remainder dropped), resumable at any step.

  The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed at
  ``start_step`` sees exactly the batches an uninterrupted run would. ``rows``
  selects this process's part of every global batch (multi-host runs).
  """
  per_epoch = len(split) // batch_size
  if per_epoch == 0:
    raise ValueError(f"Batch size {batch_size} exceeds the {len(split)} training examples.")
  step = start_step
  while True:
    epoch, i = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(split))
    idx = np.sort(order[i * batch_size:(i + 1) * batch_size])[rows]
    yield {"image": split.images[idx], "label": split.labels[idx]}
    step += 1


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """Batches in order, the last one padded to full size; yields (batch, valid count)."""
  for start in range(0, len(split), batch_size):
    images, labels = split.images[start:start + batch_size], split.labels[start:start + batch_size]
    n, pad = len(labels), batch_size - len(labels)
    if pad:  # a fixed shape compiles once
      images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
      labels = np.concatenate([labels, np.zeros((pad,), labels.dtype)])
    yield {"image": images, "label": labels}, n
