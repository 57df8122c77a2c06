"""k-fold evaluation (issue 33 item 2): stratified folds that test every image once, and a compare
sweep that pools the folds' predictions."""

import csv

import ml_collections
import numpy as np
import pytest

from tests import tiny
from tl_jax import data as data_lib
from tl_jax.studies import compare

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def test_folds_are_disjoint_stratified_and_cover_every_image():
  labels = np.repeat(np.arange(5), [103, 50, 7, 11, 29])  # uneven classes, some not divisible by k
  for k in (2, 5):
    fold = data_lib.stratified_folds(labels, k, seed=3)
    assert fold.shape == labels.shape and set(np.unique(fold)) == set(range(k))  # one fold per image
    for c in range(5):
      counts = np.bincount(fold[labels == c], minlength=k)
      assert counts.max() - counts.min() <= 1, (k, c, counts)  # each class spread evenly
    sizes = np.bincount(fold, minlength=k)
    assert sizes.max() - sizes.min() <= 1, sizes  # and the folds as even as the classes allow
  np.testing.assert_array_equal(data_lib.stratified_folds(labels, 5, 3), data_lib.stratified_folds(labels, 5, 3))
  assert not np.array_equal(data_lib.stratified_folds(labels, 5, 3), data_lib.stratified_folds(labels, 5, 4))
  with pytest.raises(ValueError, match="k >= 2"):
    data_lib.stratified_folds(labels, 1, 0)


def test_loaded_test_splits_of_the_folds_partition_the_dataset(tmp_path):
  cfg = tiny.config(tiny.write_npz(tmp_path / "d.npz", n=200)).data
  cfg.folds, seen = 4, []
  for f in range(4):
    cfg.fold = f
    ds = data_lib.load(cfg)
    test, train = ds.splits["test"], ds.splits["train"]
    assert len(test) + len(train) + len(ds.splits["val"]) == 200
    # Rows identify images (the digits have no duplicates among the first 200).
    seen += [img.tobytes() for img in np.asarray(test.images)]
    assert not {i.tobytes() for i in np.asarray(test.images)} & {i.tobytes() for i in np.asarray(train.images)}
  assert len(seen) == len(set(seen)) == 200  # every image tested exactly once over the folds
  cfg.fold = 4
  with pytest.raises(ValueError, match="not one of the 4 folds"):
    data_lib.load(cfg)


def test_compare_with_folds_pools_every_image_into_one_table(tmp_path):
  cfg = tiny.config(tiny.write_npz(tmp_path / "d.npz", n=160), **{"train.compilation_cache_dir": ""})
  cfg.compare = ml_collections.ConfigDict(dict(
      strategies=dict(probe=dict(), probe_slow=dict(optim=dict(lr=1e-4))), images_per_class=(0,),
      num_epochs=(2,), folds=2))
  rows = compare.sweep(cfg, str(tmp_path / "sweep"))
  assert [(r["strategy"], r["test_images"]) for r in rows] == [("probe", 160), ("probe_slow", 160)]
  with open(tmp_path / "sweep" / "folds.csv") as f:
    per_fold = list(csv.DictReader(f))
  assert [(r["strategy"], r["fold"]) for r in per_fold] == [("probe", "0"), ("probe", "1"), ("probe_slow", "0"),
                                                           ("probe_slow", "1")]
  for r in rows:  # the pooled accuracy is the folds' accuracies weighted by their test images
    mine = [p for p in per_fold if p["strategy"] == r["strategy"]]
    assert sum(int(p["test_images"]) for p in mine) == 160
    want = sum(float(p["test_accuracy"]) * int(p["test_images"]) for p in mine) / 160
    assert r["test_accuracy"] == pytest.approx(want, abs=1e-6)
    assert r["test_accuracy_low"] < r["test_accuracy"] < r["test_accuracy_high"]
  with np.load(rows[0]["predictions"]) as f:
    assert len(f["labels"]) == 160 and sorted(np.bincount(f["labels"])) == sorted(
        np.bincount(np.load(tmp_path / "d.npz")["y"]))  # the whole dataset's labels, once each
  assert "160 test images" in (tmp_path / "sweep" / "results.md").read_text()
  with open(tmp_path / "sweep" / "paired.csv") as f:
    (pair,) = list(csv.DictReader(f))
  assert (pair["a"], pair["b"], pair["test_images"]) == ("probe", "probe_slow", "160")

