"""One photo pipeline: a folder trains and evaluates the same whether cached or streamed (issue 32).

Real photographs (scikit-image's and scikit-learn's) written as files in landscape, portrait,
square and panorama shapes, in several formats and colour modes.
"""

import json

import numpy as np
from PIL import Image
import pytest

from tl_jax import data
from tl_jax.data import image_folder, streaming
from tl_jax.train import trainer

skdata = pytest.importorskip("skimage.data")

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot
SIZE = 24


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
  """2 classes x 6 real photos of assorted shapes (one portrait, one 2:1 panorama per class)."""
  root = tmp_path_factory.mktemp("photos")
  sources = {"cat": skdata.chelsea(), "cup": skdata.coffee()}
  for name, photo in sources.items():
    (root / name).mkdir()
    image = Image.fromarray(photo).reduce(4)  # ~110 x 75 / 150 x 100
    w, h = image.size
    shapes = [image, image.transpose(Image.Transpose.TRANSPOSE), image.crop((0, 0, h, h)),
              image.crop((0, h // 4, w, h // 4 + w // 2)), image.rotate(10), image.crop((5, 5, w - 9, h - 3))]
    for i, shape in enumerate(shapes):
      ext = ("jpg", "png", "webp", "bmp", "jpg", "png")[i]
      shape = shape.convert("L") if i == 4 else shape  # a greyscale JPEG
      shape.save(root / name / f"{i}.{ext}", **({"lossless": True} if ext == "webp" else {}))
  return str(root)


def _cfg(quickstart_config, root, tmp_path, **kw):
  cfg = quickstart_config.data
  cfg.update(dict(name="folder", path=root, image_size=SIZE, test_fraction=0.25, val_fraction=0.0,
                  cache_dir=str(tmp_path / "cache"), **kw))
  return cfg


def test_cached_and_streamed_give_the_same_pixels(quickstart_config, photo_folder, tmp_path):
  """Pixel-equal: evaluation inputs, and training crops for the same (seed, step, index)."""
  cached = data.load(_cfg(quickstart_config, photo_folder, tmp_path))
  streamed = data.load(_cfg(quickstart_config, photo_folder, tmp_path, cache=False))
  assert isinstance(cached.splits["train"].images.read, streaming.StoreReader)
  assert isinstance(streamed.splits["train"].images.read, streaming.FileReader)
  for name in ("train", "test"):
    a, b = cached.splits[name], streamed.splits[name]
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
  positions = np.arange(len(cached.splits["train"]))
  for step in (0, 1, 7):
    got = cached.splits["train"].images.train_batch(positions, seed=3, step=step)
    np.testing.assert_array_equal(got, streamed.splits["train"].images.train_batch(positions, seed=3, step=step))
  assert not np.array_equal(got, np.asarray(cached.splits["train"].images))  # random crops, not the eval view
  # The store keeps each picture once: shorter side 27 (24 / 0.875), longer side at most 36 (4:3),
  # portraits transposed; the panorama's longer side was center-cropped to 36.
  store = cached.splits["train"].images.read
  assert store.images.shape[1:] == (27, 36, 3) and store.extents[:, 0].max() == 27
  transposed, long = store.extents[:, 2], store.extents[:, 1]
  assert set(np.unique(transposed)) == {0, 1}, transposed  # landscapes as they are, portraits transposed
  assert (long == 36).any() and (long < 36).any(), long  # wide pictures cropped to 36, squares kept at 27
  # Stored rows are always the shorter side (portraits transposed), columns between it and 36.
  assert (store.extents[:, 0] == 27).all() and ((store.extents[:, 1] >= 27) & (store.extents[:, 1] <= 36)).all()


def test_eval_view_is_the_weights_published_resize_and_crop(quickstart_config, photo_folder, tmp_path):
  """The cached evaluation input of each photo is torchvision's Resize(R) + CenterCrop(S) of the file."""
  cfg = _cfg(quickstart_config, photo_folder, tmp_path)
  cfg.stream.update(crop_fraction=0.8, interpolation="bicubic")
  test = data.load(cfg).splits["test"]
  files = [p for p, _ in image_folder.scan(photo_folder).files]
  for got, index in zip(np.asarray(test.images), test.images.indices):
    with Image.open(files[int(index)]) as image:
      want = streaming.eval_view(image.convert("RGB"), SIZE, 0.8, "bicubic")
    np.testing.assert_array_equal(got, want)


def test_squash_stays_available_and_is_keras_semantics(quickstart_config, photo_folder, tmp_path):
  cfg = _cfg(quickstart_config, photo_folder, tmp_path, resize="squash")
  cached = data.load(cfg)
  assert not isinstance(cached.splits["train"].images, streaming.Streamed)  # a plain array
  streamed = data.load(_cfg(quickstart_config, photo_folder, tmp_path, resize="squash", cache=False))
  for name in ("train", "test"):
    np.testing.assert_array_equal(np.asarray(cached.splits[name].images), np.asarray(streamed.splits[name].images))
  files = [p for p, _ in image_folder.scan(photo_folder).files]
  pool = {x.tobytes() for split in cached.splits.values() for x in np.asarray(split.images)}
  for path in files:  # every photo whole, aspect lost
    with Image.open(path) as image:
      assert np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)).tobytes() in pool
  with pytest.raises(ValueError, match="data.resize='stretch'"):
    data.load(_cfg(quickstart_config, photo_folder, tmp_path, resize="stretch"))


def test_a_runs_metrics_do_not_depend_on_the_cache(quickstart_config, photo_folder, tmp_path):
  """Same config, data.cache on and off: the same records and the same final parameters."""
  summaries, records = [], []
  for cache in (True, False):
    cfg = quickstart_config.copy_and_resolve_references()
    cfg.unlock()
    _cfg(cfg, photo_folder, tmp_path, cache=cache)
    cfg.init.pretrained = False
    cfg.model.dropout_rate = 0.0
    cfg.param_groups = dict(preset=dict(name="linear_probe"), head=dict(lr_mult=1.0),
                            backbone=dict(lr_mult=0.1, bn="running"))
    cfg.train.update(num_epochs=2, batch_size=3, eval_batch_size=4)
    workdir = tmp_path / f"run_cache_{cache}"
    summaries.append(trainer.train_and_evaluate(cfg, str(workdir)))
    records.append([{k: v for k, v in json.loads(line).items() if not k.endswith(("_s", "_ms", "per_s"))}
                    for line in open(workdir / "metrics.jsonl")])
    saved = json.load(open(workdir / "config.json"))
    assert saved["data"]["resize"] == "crop" and saved["data"]["stream"]["interpolation"] == "bicubic"
  assert records[0] == records[1]
  assert summaries[0]["final_test_accuracy"] == summaries[1]["final_test_accuracy"]
