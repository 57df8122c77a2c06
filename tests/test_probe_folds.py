"""The probe by stratified k-fold (tl_jax.studies.probe_folds): every image tested once, pooled."""

import os

import numpy as np
import pytest

from tl_jax import models
from tl_jax.metrics import intervals
from tl_jax.studies import probe_folds, probe_sweep

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _cache(config, name, x, y):
  """Writes ``(x, y)`` as ``name``'s cached features, dealt over train/val/test as a sweep would."""
  root = os.path.join(config.probe.cache_dir, probe_sweep.data_key(config.data),
                      f"{name}-{models.REGISTRY[name].weights}")
  os.makedirs(root)
  for split, part in zip(probe_sweep.SPLITS, np.array_split(np.arange(len(y)), 3)):
    np.savez(os.path.join(root, f"{split}.npz"), labels=y[part], **{"features/pre_logits": x[part]})


def test_every_image_is_tested_once_and_models_are_paired(tmp_path, load_config):
  config = load_config("probe_digits")
  config.unlock()
  config.probe.cache_dir = str(tmp_path / "cache")
  config.probe.models = ("efficientnet_lite0", "efficientnet_lite1")
  config.probe.l2_grid = dict(lo=1e-4, hi=1e-1, num=4)
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(3), 40)
  centres = rng.normal(size=(3, 8)) * 3
  good = centres[y] + rng.normal(size=(len(y), 8))  # separable
  bad = centres[y] * 0.2 + rng.normal(size=(len(y), 8))  # mostly noise
  _cache(config, "efficientnet_lite0", good.astype(np.float32), y)
  _cache(config, "efficientnet_lite1", bad.astype(np.float32), y)

  rows, pairs = probe_folds.probe_folds(config, str(tmp_path / "out"), k=4, log=lambda *_: None)
  a, b = rows
  assert a["test_images"] == b["test_images"] == len(y)  # the k test folds cover the dataset
  folds = [float(v) for v in a["fold_accuracies"].split()]
  assert len(folds) == 4 and a["accuracy"] == pytest.approx(np.mean(folds), abs=1e-6)  # equal-sized folds
  assert (a["accuracy_low"], a["accuracy_high"]) == intervals.wilson(round(a["accuracy"] * len(y)), len(y))
  assert a["accuracy"] > 0.9 and b["accuracy"] < a["accuracy"]
  (p,) = pairs
  assert (p["a"], p["b"]) == ("efficientnet_lite0 pre_logits", "efficientnet_lite1 pre_logits")
  assert p["difference"] == pytest.approx(a["accuracy"] - b["accuracy"]) and p["separated"]
  assert p["test_images"] == len(y)
  md = (tmp_path / "out" / "probe_folds.md").read_text()
  assert "4-fold (every image tested once)" in md and "over 120" in md
  assert "separated" in (tmp_path / "out" / "paired.md").read_text()
