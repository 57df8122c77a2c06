"""TFDS datasets through ``tfds.data_source``: random access to array_record files.

Reading a prepared dataset needs no TensorFlow. Preparing one (download and
encode into array_record) does, for most image datasets; it is a separate,
one-off step, never done implicitly during training::

  pip install 'tl_jax[prepare]'   # tensorflow-cpu
  tfds build tf_flowers --file_format=array_record [--data_dir=DIR]

Records are decoded and sized once into the decode cache (``data/cache.py``; the
crop recipe's pictures or squashed, ``data.resize``), keyed by name, split, version and sizes: after re-preparing a dataset under the
same version, delete its entries (``<cache_dir>/tfds``).
"""

import os

import numpy as np
from PIL import Image

from tl_jax.data import cache, labels as labels_lib, streaming

PREPARE_HINT = ("Prepare it once (this needs TensorFlow): pip install 'tl_jax[prepare]' && "
                "tfds build {name} --file_format=array_record{dir_flag}")


def open_split(name: str, split: str, data_dir: str = "", **kwargs):
  """``tfds.data_source(name, split, **kwargs)``, with an error that says how to prepare the data."""
  import tensorflow_datasets as tfds  # imported here: only this source needs it

  dir_flag = f" --data_dir={data_dir}" if data_dir else ""
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None, download=False, **kwargs)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f"TFDS has no dataset {name!r} (config: data.tfds.name): {e}") from e
  except (AssertionError, FileNotFoundError, NotImplementedError, ValueError) as e:
    where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    raise ValueError(
        f"TFDS dataset {name!r}, split {split!r}, is not prepared as array_record in {where} ({e}).\n"
        + PREPARE_HINT.format(name=name, dir_flag=dir_flag)) from e


class TfdsReader:
  """Index -> image of a TFDS ``data_source`` record; opens the source lazily in each process.

  Records are read with the image left encoded (``tfds.decode.SkipDecoding``:
  labels then cost no decode, and Pillow decodes the bytes); where TFDS cannot
  do that without TensorFlow (its mock data), they are read decoded.
  """

  decodes = True  # each read decodes a record: worth worker processes

  def __init__(self, name: str, split: str, data_dir: str, image_key: str):
    self.args, self.image_key, self._source = (name, split, data_dir), image_key, None

  def __getstate__(self):  # worker processes open their own source
    return {**self.__dict__, "_source": None}

  def source(self):
    """The split's records (images encoded where possible)."""
    import tensorflow_datasets as tfds

    if self._source is None:
      try:
        self._source = open_split(*self.args, decoders={self.image_key: tfds.decode.SkipDecoding()})
        if len(self._source):
          self._source[0]  # noqa: B018  (fails here if TFDS needs TensorFlow for it)
      except ImportError:
        self._source = open_split(*self.args)
    return self._source

  def __call__(self, i: int) -> bytes | Image.Image:
    """Record ``i``'s image: its encoded bytes, or a PIL image where TFDS decoded it."""
    image = self.source()[int(i)][self.image_key]
    return image if isinstance(image, bytes) else _picture(image)

  def name(self, i: int) -> str:
    return f"tfds {self.args[0]} {self.args[1]} record {i}"



def load(name: str, split: str, size: int, *, data_dir: str = "", image_key: str = "image",
         label_key: str = "label", cache_dir: str = "", stream_cfg=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """One split (TFDS slicing syntax, e.g. ``train[:90%]``) as resized uint8 images and labels.

  With ``stream_cfg`` (``config.data``) a split that ``streaming.applies`` to
  is not decoded: its images are a ``streaming.Streamed`` view of the records.

  Returns:
    images (N, size, size, 3) uint8 (memory-mapped, or a ``streaming.Streamed``), labels (N,) int32,
    class names.
  """
  source = open_split(name, split, data_dir)
  features = source.dataset_info.features
  for key in (image_key, label_key):
    if key not in features:
      raise ValueError(f"TFDS dataset {name!r} has no feature {key!r} (config: data.tfds.image_key / "
                       f"label_key); its features are {sorted(features.keys())}.")
  names = list(features[label_key].names)
  info = source.dataset_info
  cfg = {**dict(stream_cfg or {}), "image_size": size}
  key = {"name": name, "split": split, "data_dir": os.path.abspath(data_dir) if data_dir else "",
         "version": str(info.version), "n": len(source), **streaming.store_key(cfg), "image_key": image_key,
         "label_key": label_key}
  where = f"TFDS {name!r} split {split!r} (feature {label_key!r})"
  reader = TfdsReader(name, split, data_dir, image_key)
  records = reader.source()  # images left encoded where TFDS can: labels cost no decode
  labels = labels_lib.check(np.asarray([records[i][label_key] for i in range(len(source))]), len(source),
                            len(names), where)
  if streaming.applies(cfg, len(source)):
    return streaming.view(cfg, reader, len(source)), labels, names

  def build():
    # The reader streaming uses: a cached and a streamed split decode the same bytes the same way.
    images, extents, bad = streaming.build_store(cfg, len(source), reader, reader.name)
    if bad:
      raise ValueError(f"{len(bad)} record(s) of {where} cannot be decoded: {bad[:5]}")
    return images, labels, {} if extents is None else {"extents": extents.tolist()}

  images, labels, meta = cache.cached("tfds", key, build, cache_dir)
  return streaming.from_store(cfg, images, meta.get("extents")), labels, names


def _picture(image) -> Image.Image:
  """A TFDS image feature (an array, (H, W, 1) for grayscale) as a PIL image."""
  image = np.asarray(image)
  return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)

