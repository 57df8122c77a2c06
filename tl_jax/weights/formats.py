"""Weight files by extension: PyTorch, safetensors, Keras .h5, numpy .npz (BiT), and tl_jax's converted files.

A converted file holds the already-mapped ``{'params/...': array}`` dict plus the model and source
it was made for, so training reads it directly instead of converting again: a ``.msgpack``
(``scripts/convert_weights.py``), or a ``.safetensors`` whose metadata has a ``tl_jax`` entry (a run
pushed to the Hugging Face hub, ``tl_jax.evaluate.hub``; ``safetensors_bytes`` writes one).
"""

import json
import os

import flax.serialization
import numpy as np

from tl_jax.weights import h5, pth

CONVERTED_SUFFIX = ".msgpack"
# The metadata entry of a safetensors file in tl_jax's path layout: JSON of its model, source, ...
# One entry: safetensors writes several in no fixed order, and the same weights should be the same bytes.
TL_JAX_KEY = "tl_jax"
SUFFIXES = {
    ".pth": "pytorch", ".pt": "pytorch", ".bin": "pytorch", ".safetensors": "safetensors",
    ".h5": "keras", ".hdf5": "keras", ".npz": "npz", CONVERTED_SUFFIX: "converted",
}


def kind(path: str) -> str:
  """The format of ``path`` from its suffix: pytorch, safetensors, keras or converted."""
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in SUFFIXES:
    raise ValueError(f"Unknown weight file type {suffix!r} ({path}); supported: "
                     f"{', '.join(sorted(SUFFIXES))}.")
  return SUFFIXES[suffix]


def safetensors_info(path: str) -> dict | None:
  """What a tl_jax-layout ``.safetensors`` file says of itself (model, source, ...); None for other files."""
  from safetensors import safe_open

  with safe_open(path, "np") as f:
    entry = (f.metadata() or {}).get(TL_JAX_KEY)
  return None if entry is None else json.loads(entry)


def is_converted(path: str) -> bool:
  """Whether ``path`` holds weights already in tl_jax's layout (a converted file)."""
  k = kind(path)
  return k == "converted" or (k == "safetensors" and safetensors_info(path) is not None)


def safetensors_bytes(loaded: dict[str, np.ndarray], *, model: str, source: str, **info) -> bytes:
  """Mapped weights as a tl_jax-layout ``.safetensors`` file's bytes; ``info`` (JSON values) joins what
  it says of itself (``safetensors_info``). The same weights and info give the same bytes."""
  from safetensors.numpy import save

  entry = json.dumps({"model": model, "source": source, **info}, sort_keys=True)
  return save({k: np.ascontiguousarray(v) for k, v in loaded.items()}, metadata={TL_JAX_KEY: entry})


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """A ``.safetensors`` file as numpy arrays (no torch needed)."""
  from safetensors.numpy import load_file

  try:
    return dict(load_file(path))
  except Exception as e:  # the package raises its own (Rust) error types
    raise ValueError(f"Cannot read {path!r} as safetensors: {e}") from e


def read_npz(path: str) -> dict[str, np.ndarray]:
  """A numpy ``.npz`` archive (big_transfer's BiT files: ``resnet/block1/unit01/...``)."""
  try:
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError) as e:  # an empty file raises EOFError
    raise ValueError(f"Cannot read {path!r} as a numpy .npz archive ({e or type(e).__name__}): "
                     "is the download complete?") from e


def read_source(path: str) -> dict[str, np.ndarray]:
  """The raw ``{source key: array}`` of a PyTorch, safetensors, Keras or .npz file."""
  reader = {"pytorch": pth.load_state_dict, "safetensors": read_safetensors,
            "keras": h5.read_keras_h5, "npz": read_npz}.get(kind(path))
  if reader is None:
    raise ValueError(f"{path!r} is a converted tl_jax file: read it with read_converted.")
  return reader(path)


def write_converted(path: str, loaded: dict[str, np.ndarray], *, model: str, source: str) -> None:
  """Writes mapped weights once, so later runs skip reading and converting the original."""
  if not path.endswith(CONVERTED_SUFFIX):
    raise ValueError(f"Converted weights are written as {CONVERTED_SUFFIX} files, got {path!r}.")
  blob = {"model": model, "source": source, "weights": {k: np.asarray(v) for k, v in loaded.items()}}
  with open(path, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(blob))


def read_converted(path: str, model: str) -> dict[str, np.ndarray]:
  """Reads a converted file (``is_converted``), refusing one made for another architecture."""
  if kind(path) == "safetensors":
    meta = safetensors_info(path) or {}
    if meta.get("model") != model:
      raise ValueError(f"{path!r} holds weights for {meta.get('model')!r} (source {meta.get('source')!r}), "
                       f"not {model!r}: set model.name={meta.get('model')!r}.")
    return read_safetensors(path)
  with open(path, "rb") as f:
    blob = flax.serialization.msgpack_restore(f.read())
  if not isinstance(blob, dict) or "weights" not in blob:
    raise ValueError(f"{path!r} is not a tl_jax converted weight file "
                     "(write one with scripts/convert_weights.py).")
  if blob["model"] != model:
    raise ValueError(f"{path!r} holds weights for {blob['model']!r} (source {blob['source']!r}), "
                     f"not {model!r}: convert the file for {model!r} or pick model {blob['model']!r}.")
  return {k: np.asarray(v) for k, v in blob["weights"].items()}
