"""One config key switches sources; TFDS through ``tfds.data_source`` on TFDS's mock data."""

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from tl_jax import data
from tl_jax.data import streaming, tfds_source


def base_config(quickstart_config, tmp_path):
  cfg = quickstart_config.data
  cfg.unlock()
  cfg.update(image_size=16, cache_dir=str(tmp_path / "cache"), val_fraction=0.0, test_fraction=0.25)
  return cfg


def test_one_key_switches_between_sources(quickstart_config, tmp_path):
  cfg = base_config(quickstart_config, tmp_path)
  rng = np.random.default_rng(0)
  x, y = rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8), np.arange(40, dtype=np.int32) % 4
  np.savez(tmp_path / "d.npz", x=x, y=y)
  for c in range(4):
    (tmp_path / "folder" / f"c{c}").mkdir(parents=True)
    for i in range(5):
      Image.fromarray(x[c * 5 + i]).save(tmp_path / "folder" / f"c{c}" / f"{i}.png")
  cfg.tfds.update(name="tf_flowers", train="train", test="")
  expected = {"digits": (1797, 10), "npz": (40, 4), "folder": (20, 4), "tfds": (12, 5)}
  with tfds.testing.mock_data(num_examples=12):
    for name, (n, classes) in expected.items():
      cfg.update(name=name, path={"npz": str(tmp_path / "d.npz"), "folder": str(tmp_path / "folder")}.get(name, ""))
      ds = data.load(cfg)
      assert sum(len(s) for s in ds.splits.values()) == n and ds.num_classes == classes, name
      for split in ds.splits.values():
        assert split.images.shape[1:] == (16, 16, 3) and split.images.dtype == np.uint8, name
        assert split.labels.max() < classes
  cfg.name = "imagenet"
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet' .*'folder', 'npz', 'tfds'"):
    data.load(cfg)


def test_tfds_splits_decode_and_resize(quickstart_config, tmp_path):
  cfg = base_config(quickstart_config, tmp_path)
  cfg.update(name="tfds", image_size=24)
  cfg.tfds.update(name="tf_flowers", train="train[:80%]", val="train[80%:]", test="")
  with tfds.testing.mock_data(num_examples=10):
    ds = data.load(cfg)
    source = tfds.data_source("tf_flowers", split="train[:80%]")
    records = [source[i] for i in range(len(source))]
  assert ds.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
  # Given splits are kept; the missing test split is held out of train.
  assert len(ds.splits["val"]) == 10 and len(ds.splits["train"]) + len(ds.splits["test"]) == 10
  assert {r["image"].shape for r in records} != {(24, 24, 3)}  # mock images come in random sizes
  pool = np.concatenate([ds.splits["train"].images, ds.splits["test"].images])
  labels = np.concatenate([ds.splits["train"].labels, ds.splits["test"].labels])
  # data.resize unset: the crop recipe's evaluation view (shorter side 27 = 24 / 0.875, central 24).
  expected = {streaming.eval_view(Image.fromarray(r["image"]), 24, 0.875, "bilinear").tobytes(): r["label"]
              for r in records}
  assert {im.tobytes(): l for im, l in zip(pool, labels)} == expected


def test_tfds_grayscale_and_missing_feature(tmp_path):
  with tfds.testing.mock_data(num_examples=5):
    images, labels, names = tfds_source.load("mnist", "test", 12, cache_dir=str(tmp_path))
    assert images.shape == (5, 12, 12, 3) and names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey -> equal RGB channels
    with pytest.raises(ValueError, match="no feature 'img'.*'image', 'label'"):
      tfds_source.load("mnist", "test", 12, image_key="img", cache_dir=str(tmp_path))


def test_unprepared_tfds_dataset_says_what_to_install(tmp_path):
  with pytest.raises(ValueError, match=r"(?s)not prepared.*pip install 'tl_jax\[prepare\]'.*tfds build mnist "
                                       r"--file_format=array_record --data_dir="):
    tfds_source.load("mnist", "train", 8, data_dir=str(tmp_path / "tfds"), cache_dir=str(tmp_path))
  with pytest.raises(ValueError, match="TFDS has no dataset 'no_such_dataset'"):
    tfds_source.load("no_such_dataset", "train", 8, data_dir=str(tmp_path / "tfds"))
