"""Label checks every source runs on load, naming the file or split at fault.

Labels must be integers, one per image (1-D, as many as images), in
``[0, num_classes)``. Caught here, a bad label fails before any training
instead of at the final evaluation (or, cast silently, not at all).
"""

import numpy as np

from tl_jax.errors import InvalidInput

_SHOWN = 5  # offending values named in a message


def check(labels: np.ndarray, num_images: int, num_classes: int | None, where: str) -> np.ndarray:
  """``labels`` as int32 after the checks; ``num_classes=None``: any non-negative value.

  Args:
    labels: the source's labels.
    num_images: how many images they label.
    num_classes: the number of class names, if the source has them.
    where: the file or split, for the message (e.g. ``"data.path=x.npz (y)"``).

  Raises:
    InvalidInput: naming ``where``, the problem and the fix.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    hint = " (one-hot? store the class index: y.argmax(-1))" if labels.ndim == 2 else ""
    raise InvalidInput(f"{where}: labels must be 1-D, one per image; got shape {labels.shape}{hint}.")
  if len(labels) != num_images:
    raise InvalidInput(f"{where}: {len(labels)} labels for {num_images} images; give one label per image.")
  if not np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_:
    what = f"dtype {labels.dtype}"
    if np.issubdtype(labels.dtype, np.floating):
      bad = ~np.isfinite(labels)
      frac = np.isfinite(labels) & (labels != np.round(np.nan_to_num(labels)))
      what += (f" with {int(bad.sum())} non-finite (NaN/inf)" if bad.any() else "") + \
              (f" and {int(frac.sum())} fractional values, e.g. {labels[frac][:_SHOWN].tolist()}" if frac.any() else "")
    raise InvalidInput(f"{where}: labels must be integers 0..K-1; got {what}. Store class indices "
                       "(e.g. y.astype(np.int64) if they are whole numbers; class names go in label_names).")
  low = labels < 0
  high = labels >= num_classes if num_classes is not None else np.zeros_like(low)
  if low.any() or high.any():
    values, counts = np.unique(labels[low | high], return_counts=True)
    listed = ", ".join(f"{v} ({c} image{'s' if c > 1 else ''})" for v, c in zip(values[:_SHOWN], counts[:_SHOWN]))
    valid = f"[0, {num_classes})" if num_classes is not None else "non-negative"
    names = f" for {num_classes} class names" if num_classes is not None else ""
    raise InvalidInput(f"{where}: labels must be {valid}{names}; found {listed}. Fix the labels"
                       + (" or the class names." if num_classes is not None else "."))
  return labels.astype(np.int32)
