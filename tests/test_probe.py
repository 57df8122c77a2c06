"""tl_jax's linear probe (Kornblith protocol) against scikit-learn's L-BFGS LogisticRegression."""

import numpy as np
import pytest

from tl_jax import data as data_lib
from tl_jax.studies import probe, probe_sweep

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _blobs(n, d=12, classes=4, seed=0):
  """Overlapping Gaussian classes: the penalty matters and no fit is perfect."""
  rng = np.random.default_rng(seed)
  centers = np.random.default_rng(99).normal(0, 1.0, (classes, d))
  y = rng.integers(0, classes, n)
  x = centers[y] + rng.normal(0, 1.5, (n, d)) + 3.0  # offset and scale: standardisation matters
  return (x * np.linspace(0.5, 4, d)).astype(np.float32), y.astype(np.int32)


def test_grid_fit_matches_sklearn_and_selection_agrees():
  from sklearn.linear_model import LogisticRegression

  train, val, test = _blobs(160, seed=1), _blobs(80, seed=2), _blobs(200, seed=3)
  grid = probe.l2_grid(1e-4, 1e0, 5)
  scale = probe.standardizer(train[0])
  (w, b), iters, gmax = probe.fit_grid(scale(train[0]), train[1], grid.astype(np.float32), num_classes=4,
                                       tol=1e-5, max_iter=500)
  assert (np.asarray(gmax) <= 1e-5).all() and (np.asarray(iters) < 500).all()
  xt = scale(test[0])
  for g, l2 in enumerate(grid):
    ref = LogisticRegression(C=1 / (l2 * len(train[1])), tol=1e-8, max_iter=5000).fit(scale(train[0]), train[1])
    logits = xt @ np.asarray(w[g]) + np.asarray(b[g])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # Same objective, same optimum: probabilities agree far below any decision margin.
    np.testing.assert_allclose(p, ref.predict_proba(xt), atol=2e-3)
  # The strongest penalty fits a different model than the weakest (the grid is not a no-op).
  assert np.abs(np.asarray(w[0])).max() > 5 * np.abs(np.asarray(w[-1])).max()

  ours = probe.protocol(train, val, test, grid, pad_rows=300)  # weight-0 rows: the sweep's one shape
  ref = probe.sklearn_protocol(train, val, test, grid)
  np.testing.assert_allclose(ours.val_accuracy, ref.val_accuracy, atol=1 / 80 + 1e-6)
  assert ours.l2 == pytest.approx(ref.l2, rel=1e-5) and ours.converged and ref.converged
  assert abs(ours.test_accuracy - ref.test_accuracy) <= 0.005


def test_protocol_rejects_mismatched_features():
  train, val = _blobs(40), _blobs(20, seed=2)
  with pytest.raises(ValueError, match="feature sizes differ"):
    probe.protocol(train, (val[0][:, :5], val[1]), val, probe.l2_grid(1e-3, 1e-1, 2))
  with pytest.raises(ValueError, match="0 < lo < hi"):
    probe.l2_grid(1.0, 1e-3)


def test_subset_is_the_trainers_train_per_class_subset():
  cfg = dict(name="digits", path="", image_size=8, test_fraction=0.3, val_fraction=0.1, seed=0)
  full = data_lib.load({**cfg, "train_per_class": 0}).splits["train"]
  small = data_lib.load({**cfg, "train_per_class": 10}).splits["train"]
  idx = probe_sweep.subset(full.labels, 10, cfg["seed"] + 2)  # seed 0 of a probe sweep
  np.testing.assert_array_equal(full.images[idx], small.images)
  np.testing.assert_array_equal(full.labels[idx], small.labels)
  other = probe_sweep.subset(full.labels, 10, cfg["seed"] + 3)
  assert np.bincount(full.labels[other]).tolist() == [10] * 10 and set(other) != set(idx)
