"""TFDS datasets through ``tfds.data_source``: random access to array_record files.

Reading a prepared dataset needs no TensorFlow. Preparing one (download and
encode into array_record) does, for most image datasets; it is a separate,
one-off step, never done implicitly during training::

  pip install 'tl_jax[prepare]'   # tensorflow-cpu
  tfds build tf_flowers --file_format=array_record [--data_dir=DIR]

Records are decoded and resized once into the decode cache (``data/cache.py``),
keyed by name, split, version and size: after re-preparing a dataset under the
same version, delete its entries (``<cache_dir>/tfds``).
"""

import io
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

  def __call__(self, i: int) -> Image.Image:
    image = self.source()[int(i)][self.image_key]
    if isinstance(image, bytes):
      return Image.open(io.BytesIO(image))
    image = np.asarray(image)
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)

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
  key = {"name": name, "split": split, "data_dir": os.path.abspath(data_dir) if data_dir else "",
         "version": str(info.version), "n": len(source), "size": size, "image_key": image_key,
         "label_key": label_key}

  def build():
    images = np.zeros((len(source), size, size, 3), np.uint8)
    labels = []
    for i in range(len(source)):
      record = source[i]
      image = np.asarray(record[image_key])
      images[i] = cache.fit(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), size)
      labels.append(record[label_key])
    # Checked before the cache stores them: a cast to int32 would hide bad values.
    return images, labels_lib.check(np.asarray(labels), len(images), len(names), where), {}

  where = f"TFDS {name!r} split {split!r} (feature {label_key!r})"
  if stream_cfg is not None and streaming.applies(stream_cfg, len(source)):
    reader = TfdsReader(name, split, data_dir, image_key)
    labels = np.asarray([reader.source()[i][label_key] for i in range(len(source))])
    return (streaming.streamed(stream_cfg, reader, len(source)),
            labels_lib.check(labels, len(source), len(names), where), names)
  images, labels, _ = cache.cached("tfds", key, build, cache_dir)
  return images, labels_lib.check(labels, len(images), len(names), where), names
