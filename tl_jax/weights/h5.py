"""Read Keras ``.h5`` weight files into ``{key: numpy array}`` with h5py.

Keys follow ``tl_jax.weights.keras``: ``<layer>/<layer>/kernel`` for the
legacy layout (the group named by each entry of the file's ``layer_names``
attribute, its datasets by ``weight_names``; ``:0`` suffixes stripped) and the
dataset paths themselves (``layers/conv2d/vars/0``) for Keras 3 files.
"""

import os

import numpy as np

SUPPORTED_DTYPES = (np.float16, np.float32, np.float64)
# Integer state Keras saves beside weights (Normalization's sample ``count``): read so the
# mapping table can account for it; ``apply_mapping`` still refuses integers as weights.
COUNTER_DTYPES = (np.int32, np.int64)


def _text(x) -> str:
  return x.decode("utf8") if isinstance(x, bytes) else str(x)


def _array(key: str, dataset) -> np.ndarray:
  if dataset.dtype not in SUPPORTED_DTYPES + COUNTER_DTYPES:
    raise ValueError(f"Unsupported dtype {dataset.dtype} for {key!r}: expected float16/32/64 "
                     "weights (is this a Keras weight file?).")
  return np.asarray(dataset[()])


def layout(path: str) -> str:
  """``"legacy"`` or ``"keras3"``: which Keras wrote the file."""
  import h5py

  with h5py.File(path, "r") as f:
    root = f["model_weights"] if "model_weights" in f else f
    return "legacy" if "layer_names" in root.attrs else "keras3"


def read_keras_h5(path: str) -> dict[str, np.ndarray]:
  """All weights of a Keras ``.h5`` file (``save_weights`` or a full-model save).

  Raises:
    ValueError: the file is not HDF5, holds no Keras weights, or has
      non-float weights.
  """
  import h5py  # only needed for Keras sources

  if not h5py.is_hdf5(path):
    raise ValueError(f"{path!r} is not an HDF5 file; Keras weights are read from .h5 files "
                     "written by `model.save_weights`.")
  out = {}
  with h5py.File(path, "r") as f:
    root = f["model_weights"] if "model_weights" in f else f  # model.save() nests weights
    if "layer_names" in root.attrs:
      for layer in map(_text, root.attrs["layer_names"]):
        group = root[layer]
        for name in map(_text, group.attrs.get("weight_names", [])):
          out[f"{layer}/{name.removesuffix(':0')}"] = _array(name, group[name])
    else:
      def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
          out[name] = _array(name, obj)
      root.visititems(visit)
  if not out:
    raise ValueError(f"No weights in {os.path.basename(path)!r}: expected Keras `save_weights` "
                     "output (legacy `layer_names` groups or Keras 3 `layers/.../vars`).")
  return out
