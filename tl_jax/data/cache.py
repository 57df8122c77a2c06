"""Decode-and-resize once: an on-disk cache of uint8 image arrays, memory-mapped on reuse.

Sources whose images must be decoded (image folders, TFDS) build their arrays
once and store them under ``<cache_dir>/<key hash>/``; later runs and later
epochs read them memory-mapped instead of decoding again. The key holds
whatever changes the result (the file list with sizes and mtimes, the sizes and
resampling of ``streaming.store_key``), so an edited folder gets a new entry.
"""

from collections.abc import Callable
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

# Bump when the way entries are built changes, so stale entries are not reused.
VERSION = 2  # 2: data.resize (crop pictures with extents, or squashed), decode.open_rgb


def default_dir() -> str:
  """``$TL_JAX_CACHE``, else ``~/.cache/tl_jax``."""
  return os.environ.get("TL_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tl_jax")


def cached(kind: str, key: dict[str, Any], build: Callable[[], tuple[np.ndarray, np.ndarray, dict]],
           cache_dir: str = "") -> tuple[np.ndarray, np.ndarray, dict]:
  """Returns ``(images, labels, meta)`` from the cache, building the entry on a miss.

  Args:
    kind: a folder name for the source (``folder``, ``tfds``).
    key: JSON-able description of everything the arrays depend on.
    build: ``() -> (images uint8 (N,H,W,3), labels int32 (N,), meta dict)``.
    cache_dir: root of the cache; "" = ``default_dir()``.

  Returns:
    images memory-mapped read-only, labels, and the JSON ``meta`` saved with them.
  """
  blob = json.dumps({"version": VERSION, **key}, sort_keys=True).encode()
  entry = os.path.join(cache_dir or default_dir(), kind, hashlib.sha256(blob).hexdigest()[:20])
  if not os.path.exists(os.path.join(entry, "meta.json")):
    images, labels, meta = build()
    os.makedirs(os.path.dirname(entry), exist_ok=True)
    # Write to a temporary folder and rename: a killed run never leaves a half entry.
    tmp = tempfile.mkdtemp(dir=os.path.dirname(entry), prefix=".tmp-")
    np.save(os.path.join(tmp, "images.npy"), images)
    np.save(os.path.join(tmp, "labels.npy"), labels)
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump({"key": json.loads(blob), **meta}, f, indent=1)
    try:
      os.rename(tmp, entry)
    except OSError:  # another process built it first
      shutil.rmtree(tmp, ignore_errors=True)
  with open(os.path.join(entry, "meta.json")) as f:
    meta = json.load(f)
  meta["cache_entry"] = entry
  return np.load(os.path.join(entry, "images.npy"), mmap_mode="r"), np.load(os.path.join(entry, "labels.npy")), meta
