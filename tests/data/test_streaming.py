"""Streamed folder/TFDS splits: decode per batch, Inception crop of the original image, exact resume."""

import numpy as np
import pytest
from PIL import Image

from tl_jax import data
from tl_jax.data import pipeline, streaming

SIZE = 16


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
  """3 classes x 5 JPEGs of assorted sizes (landscape, portrait, square)."""
  root = tmp_path_factory.mktemp("jpegs")
  rng = np.random.default_rng(0)
  for c in range(3):
    (root / f"class{c}").mkdir()
    for i in range(5):
      w, h = [(50, 38), (30, 44), (40, 40), (64, 48), (36, 27)][i]
      pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg", quality=95)
  return str(root)


def _cfg(quickstart_config, root, **data_kwargs):
  cfg = quickstart_config.data
  cfg.update(dict(name="folder", path=root, image_size=SIZE, test_fraction=0.2, val_fraction=0.0, **data_kwargs))
  return cfg


def test_cache_limit_and_cache_off_stream(quickstart_config, jpeg_folder, tmp_path):
  cached = data.load(_cfg(quickstart_config, jpeg_folder, cache_dir=str(tmp_path)))
  assert isinstance(cached.splits["train"].images.read, streaming.StoreReader)  # the cache's pictures
  for extra in (dict(cache=False), dict(cache_limit_gb=1e-6)):  # 15 pictures x 18x24x3 = 1.9e-5 GB
    ds = data.load(_cfg(quickstart_config, jpeg_folder, cache_dir=str(tmp_path), **extra))
    train, test = ds.splits["train"], ds.splits["test"]
    assert isinstance(train.images, streaming.Streamed) and train.images.shape == (12, SIZE, SIZE, 3)
    assert len(test) == 3 and ds.class_names == ["class0", "class1", "class2"]
    np.testing.assert_array_equal(test.labels, cached.splits["test"].labels)
    batch, n = next(data.eval_batches(test, 4))  # padded to 4: the view decodes through np.asarray
    assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.uint8 and n == 3


def test_same_seed_and_step_same_batches_and_exact_resume(quickstart_config, jpeg_folder):
  train = data.load(_cfg(quickstart_config, jpeg_folder, cache=False)).splits["train"]

  def take(start, count, **loading):
    return [b["image"] for b in pipeline.train_batches(train, 4, 3, start, num_steps=count,
                                                       loading=pipeline.Loading(**loading))]

  first = take(0, 6)  # streamed: decodes in a grain worker process by default
  again = take(0, 6, threads=1)
  resumed = take(4, 2, workers=2)
  assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
  assert all(np.array_equal(a, b) for a, b in zip(first[4:], resumed, strict=True))
  # Random crops: the same examples at another step (steps 0 and 3 are the same epoch position
  # of different epochs, 3 batches per epoch) get other pixels.
  assert not np.array_equal(first[0], first[3])


def test_train_crop_is_the_inception_crop_of_the_picture(jpeg_folder, quickstart_config):
  train = data.load(_cfg(quickstart_config, jpeg_folder, cache=False)).splits["train"]
  view = train.images
  got = view.train_batch(np.array([0, 5]), seed=7, step=11)
  short, long_max = streaming.store_sides(SIZE, 0.875)  # 18, 24
  for row, pos in enumerate((0, 5)):
    index = int(view.indices[pos])
    with Image.open(view.read.paths[index]) as image:
      picture = image.convert("RGB").resize(_shorter(image.size, short), Image.Resampling.BILINEAR)
    w, h = picture.size
    if max(w, h) > long_max:  # the longer side center-cropped to 4:3
      off = int(round((max(w, h) - long_max) / 2))
      picture = picture.crop((off, 0, off + long_max, h) if w > h else (0, off, w, off + long_max))
    box = streaming.random_resized_box(np.random.default_rng([7, 11, index]), *picture.size, (0.08, 1.0),
                                       (3 / 4, 4 / 3))
    np.testing.assert_array_equal(got[row], picture.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box))
    want = np.asarray(picture.crop(box).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    assert np.abs(got[row].astype(int) - want).mean() < 2  # crop-then-resize = resize of the box
  # Boxes follow torchvision's RandomResizedCrop: area and aspect within range, inside the image.
  rng = np.random.default_rng(0)
  for _ in range(500):
    left, top, right, bottom = streaming.random_resized_box(rng, 500, 375, (0.08, 1.0), (3 / 4, 4 / 3))
    w, h = right - left, bottom - top
    assert 0 <= left and 0 <= top and right <= 500 and bottom <= 375
    assert 0.08 * 0.99 <= w * h / (500 * 375) <= 1.0 and 3 / 4 * 0.97 <= w / h <= 4 / 3 * 1.03
  # Impossible ranges fall back to the central crop with the aspect clamped, as torchvision does.
  assert streaming.random_resized_box(rng, 400, 100, (1.0, 1.0), (1.0, 1.0)) == (150, 0, 250, 100)


def _shorter(size, short):
  """torchvision's Resize(short) output size (w, h)."""
  w, h = size
  return (short, int(short * h / w)) if w <= h else (int(short * w / h), short)


def test_eval_is_torchvisions_resize_then_center_crop():
  y, x = np.mgrid[:375, :500].astype(np.float32)
  image = Image.fromarray(np.stack([x / 2, y / 1.5, 128 + 100 * np.sin(x / 20 + y / 30)], -1).astype(np.uint8))
  for interpolation, resample in (("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC)):
    got = streaming.eval_view(image, 224, 0.875, interpolation)
    resized = image.resize((341, 256), resample)  # Resize(256): the longer side int(256 * 500 / 375)
    want = np.asarray(resized.crop((58, 16, 282, 240)))  # CenterCrop(224): int(round(58.5)), 16
    np.testing.assert_array_equal(got, want)
  # A portrait photo and a published 320 -> 300 (torchvision EfficientNet-B3).
  tall = image.transpose(Image.Transpose.TRANSPOSE)
  want = np.asarray(tall.resize(_shorter(tall.size, 320), Image.Resampling.BICUBIC).crop((10, 63, 310, 363)))
  np.testing.assert_array_equal(streaming.eval_view(tall, 300, 300 / 320, "bicubic"), want)


def test_streamed_tfds_split(quickstart_config):
  import tensorflow_datasets as tfds

  cfg = quickstart_config.data
  cfg.update(dict(name="tfds", image_size=SIZE, cache=False, test_fraction=0.25, val_fraction=0.0))
  cfg.tfds.update(name="tf_flowers", train="train", test="")
  with tfds.testing.mock_data(num_examples=8):
    ds = data.load(cfg)
    train = ds.splits["train"]
    assert isinstance(train.images, streaming.Streamed) and len(train) + len(ds.splits["test"]) == 8
    a = train.images.train_batch(np.arange(3), 0, 5)
    np.testing.assert_array_equal(a, train.images.train_batch(np.arange(3), 0, 5))
    assert np.asarray(train.images).shape == (len(train), SIZE, SIZE, 3)


def test_bad_options_are_explained(quickstart_config, jpeg_folder):
  with pytest.raises(ValueError, match="train_crop='inception'"):
    data.load(_cfg(quickstart_config, jpeg_folder, cache=False, stream=dict(train_crop="inception")))
