"""Image folders of real files written here: decoding, colour modes, bad input, the cache, a training run."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from tl_jax import data
from tl_jax.data import image_folder
from tl_jax.train import trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (210, 30, 30)}


def write_class_images(root, n_per_class, size=20, seed=0):
  """Noisy flat-colour images, a different format per index; returns {path: array written}."""
  rng = np.random.default_rng(seed)
  written = {}
  for name, colour in COLOURS.items():
    os.makedirs(root / name, exist_ok=True)
    for i in range(n_per_class):
      pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
      ext = ("png", "jpg", "bmp", "webp")[i % 4]
      path = str(root / name / f"{i:03d}.{ext}")
      Image.fromarray(pixels).save(path, **({"lossless": True} if ext == "webp" else {}))
      written[path] = pixels
  return written


def test_classes_formats_and_colour_modes(tmp_path):
  root = tmp_path / "images"
  written = write_class_images(root, 4, size=16)
  grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
  Image.fromarray(grey, "L").save(root / "blue" / "grey.png")
  palette = Image.fromarray(np.array(COLOURS["green"], np.uint8)[None, None].repeat(16, 0).repeat(16, 1))
  palette.convert("P", palette=Image.Palette.ADAPTIVE).save(root / "green" / "palette.png")
  rgba = np.dstack([np.full((16, 16, 3), COLOURS["red"], np.uint8), np.full((16, 16), 128, np.uint8)])
  Image.fromarray(rgba, "RGBA").save(root / "red" / "rgba.png")
  os.makedirs(root / "red" / "more")  # images in sub-folders belong to the class
  Image.fromarray(rgba[..., :3]).save(root / "red" / "more" / "nested.png")

  squash = {"resize": "squash"}  # the decoded pixels themselves (the crop recipe: tests/data/test_photos.py)
  images, labels, names, report = image_folder.load(str(root), 16, cache_dir=str(tmp_path / "cache"),
                                                    stream_cfg=squash)
  assert names == ["blue", "green", "red"]  # sorted folder names, label = index
  assert images.shape == (4 * 3 + 4, 16, 16, 3) and images.dtype == np.uint8 and report["skipped"] == []
  np.testing.assert_array_equal(np.bincount(labels), [5, 5, 6])
  by_path = dict(zip([p for p, _ in image_folder.scan(str(root)).files], images))
  for path, pixels in written.items():
    if path.endswith(".jpg"):  # lossy: what the file holds, and near what was written
      np.testing.assert_array_equal(by_path[path], np.asarray(Image.open(path)))
      assert np.abs(by_path[path].mean((0, 1)) - pixels.mean((0, 1))).max() < 10
    else:
      np.testing.assert_array_equal(by_path[path], pixels)
  np.testing.assert_array_equal(by_path[str(root / "blue" / "grey.png")], np.dstack([grey] * 3))
  np.testing.assert_array_equal(by_path[str(root / "green" / "palette.png")][0, 0], COLOURS["green"])
  np.testing.assert_array_equal(by_path[str(root / "red" / "rgba.png")], rgba[..., :3])
  # Resizing happens on decode, with Pillow's antialiased bilinear filter.
  small, *_ = image_folder.load(str(root), 8, cache_dir=str(tmp_path / "cache"), stream_cfg=squash)
  expected = np.asarray(Image.fromarray(written[str(root / "blue" / "000.png")]).resize((8, 8), Image.BILINEAR))
  np.testing.assert_array_equal(small[0], expected)


def make_bad_folder(root):
  write_class_images(root, 3, size=12)
  (root / "red" / "notes.txt").write_text("not an image")
  (root / "green" / "random.png").write_bytes(os.urandom(300))
  whole = root / "blue" / "000.png"
  (root / "blue" / "truncated.png").write_bytes(whole.read_bytes()[:-40])
  jpg = (root / "red" / "001.jpg").read_bytes()
  (root / "red" / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
  (root / ".DS_Store").write_bytes(b"\0")  # hidden files are not data and not errors
  os.makedirs(root / "yellow")


def test_bad_files_are_named_or_skipped(tmp_path, caplog):
  root = tmp_path / "images"
  make_bad_folder(root)
  cache_dir = str(tmp_path / "cache")
  # One run lists every problem: the empty class, the non-image and the undecodable files.
  with pytest.raises(ValueError, match="empty class folder") as e:
    image_folder.load(str(root), 12, cache_dir=cache_dir)
  message = str(e.value)
  assert "without an image extension" in message and "3 file(s) that cannot be decoded" in message
  for name in ("yellow", "red/notes.txt", "green/random.png", "blue/truncated.png", "red/truncated.jpg"):
    assert str(root / name) in message
  assert "on_error='skip'" in message

  # "skip" leaves the files out and the empty folder is no class (no dead logit), and says so.
  images, labels, names, report = image_folder.load(str(root), 12, on_error="skip", cache_dir=cache_dir)
  assert names == ["blue", "green", "red"]
  assert len(images) == 9 and list(np.bincount(labels)) == [3, 3, 3]
  assert sorted(report["skipped"]) == sorted(str(root / n) for n in (
      "red/notes.txt", "green/random.png", "blue/truncated.png", "red/truncated.jpg"))
  assert "empty class folder" in caplog.text and str(root / "yellow") in caplog.text


def test_layout_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    image_folder.load(str(tmp_path / "missing"), 8)
  flat = tmp_path / "flat"
  os.makedirs(flat)
  Image.new("RGB", (4, 4)).save(flat / "a.png")
  with pytest.raises(ValueError, match="no class folders.*root/<class name>/<image files>"):
    image_folder.load(str(flat), 8)
  with pytest.raises(ValueError, match="on_error='ignore'"):
    image_folder.load(str(flat), 8, on_error="ignore")
  write_class_images(tmp_path / "train", 2, size=8)
  write_class_images(tmp_path / "val", 1, size=8)
  os.makedirs(tmp_path / "val" / "purple")
  Image.new("RGB", (4, 4)).save(tmp_path / "val" / "purple" / "a.png")
  cfg = dict(name="folder", path=str(tmp_path / "train"), val_path=str(tmp_path / "val"), image_size=8,
             test_fraction=0.5, cache_dir=str(tmp_path / "cache"))
  with pytest.raises(ValueError, match=r"class folders \['purple'\] that the training folder lacks"):
    data.load(cfg)


def test_cache_skips_decoding_and_tracks_changes(tmp_path, monkeypatch):
  root = tmp_path / "images"
  write_class_images(root, 2, size=8)
  cache_dir = str(tmp_path / "cache")
  first, labels, _, report = image_folder.load(str(root), 8, cache_dir=cache_dir)
  assert isinstance(first.read.images, np.memmap)  # the crop recipe's pictures, memory-mapped
  monkeypatch.setattr(image_folder.streaming.decode, "open_rgb", lambda *a: pytest.fail("decoded again"))
  again, labels2, _, report2 = image_folder.load(str(root), 8, cache_dir=cache_dir)
  np.testing.assert_array_equal(again, first), np.testing.assert_array_equal(labels2, labels)
  assert report2["cache_entry"] == report["cache_entry"]
  monkeypatch.undo()
  Image.new("RGB", (8, 8), (255, 255, 255)).save(root / "red" / "new.png")  # a new file: a new entry
  grown, *_, report3 = image_folder.load(str(root), 8, cache_dir=cache_dir)
  assert len(grown) == len(first) + 1 and report3["cache_entry"] != report["cache_entry"]


def test_train_on_a_generated_folder_end_to_end(quickstart_config, tmp_path):
  """Real PNG/JPEG/BMP/WebP files, some corrupt, separate val folder, augmentation on: it learns."""
  root = tmp_path / "train"
  write_class_images(root, 16, size=40)
  (root / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
  (root / "red" / "readme.txt").write_text("a stray file")
  write_class_images(tmp_path / "val", 4, size=40, seed=1)
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.update(name="folder", path=str(root), val_path=str(tmp_path / "val"), on_error="skip",
                  cache_dir=str(tmp_path / "cache"), image_size=32, test_fraction=0.25)
  cfg.augment.update(rotation=15.0, width_shift=0.1, height_shift=0.1, zoom=0.1, horizontal_flip=True)
  cfg.train.update(num_epochs=3, batch_size=12, eval_batch_size=16)
  cfg.optim.lr = 1e-2  # few steps: a larger step than the quickstart's
  summary = trainer.train_and_evaluate(cfg, str(tmp_path / "run"))
  # 48 images decoded, 12 held out for test, 36 train -> 3 steps per epoch.
  assert summary["final_step"] == 9
  records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  assert [r["epoch"] for r in records] == [1, 2, 3] and records[-1]["train_loss"] < records[0]["train_loss"]
  # Flat colours are trivially separable for ImageNet features: far above chance (1/3).
  assert summary["final_test_accuracy"] >= 0.9, summary
