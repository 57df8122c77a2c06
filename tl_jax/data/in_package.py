"""Datasets that need no download: scikit-learn's digits and ``.npz`` files."""

import os

import numpy as np

from tl_jax.data import labels as labels_lib
from tl_jax.errors import InvalidInput


def digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
  """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) as uint8 RGB."""
  from sklearn import datasets  # imported here: only this source needs scikit-learn

  d = datasets.load_digits()
  # Ink values 0..16 -> dark digit on white paper, the look of photographed writing.
  grey = (255 - np.round(d.images * (255 / 16))).astype(np.uint8)
  images = np.repeat(grey[..., None], 3, axis=-1)
  return images, d.target.astype(np.int32), [str(n) for n in d.target_names]


def npz(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """An ``.npz`` with ``x`` (N,H,W,C uint8), ``y`` (N,) and optional ``label_names``."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"Dataset file {path!r} does not exist (config: data.path).")
  with np.load(path, allow_pickle=False) as f:
    missing = {"x", "y"} - set(f.files)
    if missing:
      raise ValueError(f"{path} lacks array(s) {sorted(missing)}: an .npz dataset needs x "
                       f"(N,H,W,C uint8) and y (N,) int labels; it has {f.files}.")
    try:
      x, y = f["x"], f["y"]
      names = [str(n) for n in f["label_names"]] if "label_names" in f.files else None
    except ValueError as e:  # object arrays (e.g. Python strings) need pickle, which is off
      raise InvalidInput(f"{path}: cannot read its arrays ({e}); store x as uint8, y as integer "
                         "class indices and label_names as a string array (not objects).") from None
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.dtype != np.uint8 or x.shape[-1] not in (1, 3):
    raise InvalidInput(f"{path}: x must be (N,H,W,1|3) uint8; got x {x.shape} {x.dtype}.")
  y = labels_lib.check(y, len(x), len(names) if names else None, f"data.path={path} (y)")
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x, y, names or [str(i) for i in range(int(y.max()) + 1)]
