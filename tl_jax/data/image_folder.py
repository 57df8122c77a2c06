"""Image folders, ``root/<class>/<image>``: Keras' ``flow_from_directory`` layout.

Class names are the sorted sub-folder names (label i = i-th name). Images
(JPEG, PNG, BMP, GIF, TIFF, WebP, any case, via Pillow: ``decode.open_rgb``) are decoded and
sized once into the on-disk cache (``data/cache.py``): the crop recipe's pictures, or squashed
(``data.resize``, ``data.streaming``); reruns with the same files read it memory-mapped. Empty class folders, files that are not images and files that
fail to decode (corrupt, truncated) are listed by name, all in one message:
``on_error="fail"`` raises with the lists, ``on_error="skip"`` leaves them out
(an empty class folder of the training folder is then no class) and logs them.
"""

import dataclasses
import logging
import os

import numpy as np

from tl_jax.data import cache, labels as labels_lib, streaming
from tl_jax.errors import InvalidInput

log = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ON_ERROR = ("fail", "skip")
_MAX_LISTED = 20  # files named in one error message


@dataclasses.dataclass(frozen=True)
class Listing:
  """What ``scan`` found under a root."""

  class_names: list[str]
  files: list[tuple[str, int]]  # (path, label) of files with an image extension
  not_images: list[str]  # files without an image extension
  empty_classes: list[str]  # class folders holding no image file


def _listed(paths: list[str]) -> str:
  more = f"\n  ... and {len(paths) - _MAX_LISTED} more" if len(paths) > _MAX_LISTED else ""
  return "\n  " + "\n  ".join(paths[:_MAX_LISTED]) + more


def scan(root: str, class_names: list[str] | None = None) -> Listing:
  """Lists ``root/<class>/**`` (sub-folders of a class folder belong to it).

  Args:
    root: the folder holding one sub-folder per class.
    class_names: the classes to expect (a val/test folder must use the train
      folder's); None = the sorted sub-folders of ``root``.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Image folder {root!r} does not exist or is not a folder (config: data.path).")
  found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  if not found:
    raise ValueError(f"{root!r} holds no class folders: expected root/<class name>/<image files>, "
                     "one sub-folder per class (Keras' flow_from_directory layout).")
  if class_names is None:
    class_names = found
  elif set(found) - set(class_names):
    raise ValueError(f"{root!r} has class folders {sorted(set(found) - set(class_names))} that the "
                     f"training folder lacks; its classes are {class_names}.")
  files, not_images, empty = [], [], []
  for label, name in enumerate(class_names):
    n = len(files)
    for folder, _, names in sorted(os.walk(os.path.join(root, name))):
      for fname in sorted(names):
        if fname.startswith("."):  # .DS_Store and friends are not data
          continue
        path = os.path.join(folder, fname)
        if fname.lower().endswith(EXTENSIONS):
          files.append((path, label))
        else:
          not_images.append(path)
    if len(files) == n:
      empty.append(os.path.join(root, name))
  return Listing(class_names, files, not_images, empty)


def _report(root: str, problems: list[tuple[list[str], str, str]], on_error: str) -> None:
  """Every kind of problem found under ``root`` in one message: ``(paths, what, fix)`` each."""
  found = [(paths, what, fix) for paths, what, fix in problems if paths]
  if not found:
    return
  if on_error == "fail":
    counts = ", ".join(f"{len(paths)} {what.split(' (')[0]}" for paths, what, _ in found)
    raise InvalidInput("\n".join(f"{len(paths)} {what}:{_listed(paths)}\n  -> {fix}" for paths, what, fix in found)
                       + f"\nImage folder {root!r} has {counts} (listed above): fix them, "
                       "or set data.on_error='skip' to leave them out.")
  for paths, what, _ in found:
    log.warning("Skipping %d %s:%s", len(paths), what, _listed(paths))


def _drop_empty(listing: Listing) -> Listing:
  """``listing`` without its empty class folders as classes (labels renumbered)."""
  empty = {os.path.basename(p) for p in listing.empty_classes}
  kept = [n for n in listing.class_names if n not in empty]
  new = {listing.class_names.index(n): i for i, n in enumerate(kept)}
  return dataclasses.replace(listing, class_names=kept, files=[(p, new[label]) for p, label in listing.files])


def load(root: str, size: int, *, class_names: list[str] | None = None, on_error: str = "fail",
         cache_dir: str = "", workers: int = 4, stream_cfg=None) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
  """Decodes (or reads from the cache) every image under ``root`` at ``size x size``.

  Args:
    root: ``root/<class>/<image>``.
    size: output height and width.
    class_names: the label order to use (a val/test folder must share train's).
    on_error: "fail" raises on empty class folders, non-image files and files
      that do not decode, naming them; "skip" leaves them out with a warning.
    cache_dir: root of the decode cache; "" = ``cache.default_dir()``.
    workers: decoding threads (Pillow releases the GIL while decoding).
    stream_cfg: ``config.data`` (``resize``, ``stream``, ``cache``, ``cache_limit_gb``); None: the
      defaults. If ``streaming.applies`` to the folder, nothing is decoded now: the images are a
      ``streaming.Streamed`` view of the files (a file that fails to decode then raises when a
      batch reads it); else the decode cache's (a view of its pictures for ``resize="crop"``).

  Returns:
    images (N, size, size, 3) uint8 (memory-mapped for "squash", else a ``streaming.Streamed``), labels (N,) int32,
    the class names, and a report dict (``skipped``: the files left out and why).
  """
  if on_error not in ON_ERROR:
    raise ValueError(f"data.on_error={on_error!r}; choose one of {ON_ERROR}.")
  listing = scan(root, class_names)
  if on_error == "skip" and class_names is None and listing.empty_classes:
    listing = _drop_empty(listing)
    log.warning("Leaving out %d empty class folder(s) as classes (data.on_error='skip'):%s; classes: %s",
                len(listing.empty_classes), _listed(listing.empty_classes), listing.class_names)
  if not listing.files:
    raise ValueError(f"{root!r} holds no image files with extensions {EXTENSIONS}.")
  cfg = {**dict(stream_cfg or {}), "image_size": size}
  paths = [p for p, _ in listing.files]
  if streaming.applies(cfg, len(paths)):
    labels = np.array([label for _, label in listing.files], np.int32)
    return streaming.view(cfg, streaming.FileReader(paths), len(paths)), labels, listing.class_names, {
        "skipped": listing.not_images, "cache_entry": None}
  key = {"root": os.path.abspath(root), **streaming.store_key(cfg), "classes": listing.class_names,
         "files": [(p, label, os.path.getsize(p), os.path.getmtime(p)) for p, label in listing.files]}
  # A cached entry only ever holds files that decoded; the failures are in its meta.
  images, labels, meta = cache.cached("folder", key, lambda: _build(listing, cfg, workers), cache_dir)
  images = streaming.from_store(cfg, images, meta.get("extents"))
  _report(root, [
      (listing.empty_classes if class_names is not None or on_error == "fail" else [],
       "empty class folder(s) (no image files)", "put images in them or remove them"),
      (listing.not_images, f"file(s) without an image extension {EXTENSIONS}", "remove or convert them"),
      ([f"{p} ({why})" for p, why in meta["bad_files"]], "file(s) that cannot be decoded as images",
       "fix or remove them")], on_error)
  labels = labels_lib.check(labels, len(images), len(listing.class_names), f"image folder {root!r}")
  skipped = listing.not_images + [p for p, _ in meta["bad_files"]]
  if len(labels) == 0:
    raise ValueError(f"No image under {root!r} could be decoded; {len(skipped)} file(s) failed.")
  return images, labels, listing.class_names, {"skipped": skipped, "cache_entry": meta["cache_entry"]}


def _build(listing: Listing, cfg, workers: int):
  paths = [p for p, _ in listing.files]
  images, extents, bad = streaming.build_store(cfg, len(paths), paths.__getitem__, paths.__getitem__, workers)
  bad_paths = {p for p, _ in bad}
  labels = np.array([label for p, label in listing.files if p not in bad_paths], np.int32)
  meta = {"bad_files": [(p, why.removeprefix(p).strip(" :")) for p, why in bad]}
  if extents is not None:
    meta["extents"] = extents.tolist()
  return images, labels, meta
