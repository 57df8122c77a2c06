"""Inputs checked before any training: labels of every source (npz, folder, TFDS) and the
settings that used to crash late or obscurely, each error naming the file/split or key and the fix."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from tl_jax import data
from tl_jax.data import image_folder, in_package, tfds_source
from tl_jax.errors import InvalidInput
from tl_jax.train import config_checks, trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _npz(path, y, n=None, names=("a", "b", "c")):
  x = np.zeros((len(y) if n is None else n, 8, 8, 3), np.uint8)
  kwargs = {"label_names": np.array(names)} if names is not None else {}
  np.savez(path, x=x, y=y, **kwargs)
  return str(path)


@pytest.mark.parametrize("y, message", [
    (np.array([0, 1, 2, 4]), r"labels must be \[0, 3\) for 3 class names; found 4 \(1 image\)"),
    (np.array([0, 1, -1, -1]), r"found -1 \(2 images\)"),
    (np.array([0, 1, np.nan, 2]), r"dtype float64 with 1 non-finite \(NaN/inf\)"),
    (np.array([0, 1.5, 2, 1]), r"dtype float64 and 1 fractional values, e.g. \[1.5\]"),
    (np.array([[0, 1], [1, 0], [0, 1], [1, 0]]), r"must be 1-D, one per image; got shape \(4, 2\) \(one-hot\?"),
    (np.array(["a", "b", "c", "a"]), r"labels must be integers 0..K-1; got dtype <U1"),
])
def test_bad_npz_labels_fail_on_load_naming_the_file(tmp_path, y, message):
  path = _npz(tmp_path / "bad.npz", y)
  with pytest.raises(InvalidInput, match=message) as e:
    in_package.npz(path)
  assert f"data.path={path} (y)" in str(e.value)


def test_npz_object_labels_and_length_mismatch(tmp_path):
  path = str(tmp_path / "objects.npz")
  np.savez(path, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, "b"], dtype=object))
  with pytest.raises(InvalidInput, match=f"{path}: cannot read its arrays .*integer class indices"):
    in_package.npz(path)
  with pytest.raises(InvalidInput, match="3 labels for 5 images"):
    in_package.npz(_npz(tmp_path / "short.npz", np.array([0, 1, 2]), n=5))
  x, y, names = in_package.npz(_npz(tmp_path / "good.npz", np.array([0, 1, 2, 1], np.int64), names=None))
  assert y.dtype == np.int32 and names == ["0", "1", "2"]


def test_tfds_labels_out_of_range_name_the_split(monkeypatch, tmp_path):
  records = [{"image": np.zeros((6, 6, 3), np.uint8), "label": label} for label in (0, 1, 7)]
  features = {"image": None, "label": types.SimpleNamespace(names=["cat", "dog"])}
  info = types.SimpleNamespace(features=features, version="1.0.0")
  source = types.SimpleNamespace(dataset_info=info, __len__=None)
  fake = type("Source", (), {"dataset_info": info, "__len__": lambda self: len(records),
                             "__getitem__": lambda self, i: records[i]})()
  del source
  monkeypatch.setattr(tfds_source, "open_split", lambda *a, **k: fake)
  with pytest.raises(InvalidInput, match=r"TFDS 'pets' split 'train\[:50%\]' \(feature 'label'\): labels must be "
                                         r"\[0, 2\) for 2 class names; found 7"):
    tfds_source.load("pets", "train[:50%]", 8, cache_dir=str(tmp_path))
  assert not os.path.exists(tmp_path / "tfds") or not any(  # nothing bad was cached
      os.path.exists(os.path.join(tmp_path, "tfds", e, "meta.json")) for e in os.listdir(tmp_path / "tfds"))


def test_folder_labels_are_checked(tmp_path, monkeypatch):
  from PIL import Image

  for name in ("a", "b"):
    os.makedirs(tmp_path / name)
    Image.new("RGB", (4, 4)).save(tmp_path / name / "1.png")
  _, labels, names, _ = image_folder.load(str(tmp_path), 4, cache_dir=str(tmp_path / ".cache"))
  assert names == ["a", "b"] and list(labels) == [0, 1]


@pytest.mark.parametrize("key, value", [
    ("batch_size", 0), ("batch_size", -32), ("num_epochs", 0), ("eval_batch_size", 0),
    ("eval_every_epochs", 0), ("log_every_steps", 0),
])
def test_bad_settings_name_key_and_fix(quickstart_config, tmp_path, key, value):
  cfg = quickstart_config
  cfg.unlock()
  cfg.train[key] = value
  with pytest.raises(InvalidInput, match=rf"train\.{key}={value!r}: it must be a positive integer "
                                         rf"\(e\.g\. --config\.train\.{key}="):
    trainer.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")  # refused before anything was written


def test_each_split_needs_a_batch(quickstart_config):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 8
  dataset = data.load(cfg.data)
  cfg.train.batch_size = len(dataset.splits["train"]) + 1
  with pytest.raises(InvalidInput, match=rf"train.batch_size={cfg.train.batch_size} but the train split has "
                                         rf"only {len(dataset.splits['train'])} images: lower train.batch_size"):
    config_checks.check_splits(cfg, dataset)
  cfg.train.batch_size = 32
  empty = data.Dataset({**dataset.splits, "val": data.Split(dataset.splits["val"].images[:0],
                                                           dataset.splits["val"].labels[:0])}, dataset.class_names)
  with pytest.raises(InvalidInput, match="The val split is empty: raise data.val_fraction"):
    config_checks.check_splits(cfg, empty)


def test_unknown_override_is_one_line_with_the_closest_keys():
  argv = ["train.py", "--config=configs/quickstart.py", "--config.train.ema_rate=0.99"]
  message = config_checks.unknown_override(argv, "configs/quickstart.py")
  assert message.startswith("Unknown config key 'train.ema_rate'") and "did you mean train.ema_decay" in message
  far = config_checks.unknown_override(["x", "--config.train.zzzz=1"], "configs/quickstart.py")
  assert "the keys under train are" in far, far
  assert "did you mean optim.lr?" in config_checks.unknown_override(["x", "--config.optim.lrr=1"], "configs/quickstart.py")
  assert "train.batch_size" in config_checks.unknown_override(["x", "--config.trian.batch_size", "3"],
                                                              "configs/quickstart.py")
  assert config_checks.unknown_override(["x", "--config.optim.lr=1"], "configs/quickstart.py") is None
  out = subprocess.run([sys.executable, "scripts/train.py", "--config.train.ema_rate=0.99", "--workdir=/nonexistent"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
  from tl_jax import configs  # no --config: the packaged quickstart, named by its file
  default = config_checks.unknown_override(argv[::2], configs.path("quickstart"))
  assert default.startswith("Unknown config key 'train.ema_rate'") and configs.path("quickstart") in default
  assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"error: {default}"]
