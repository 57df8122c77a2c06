"""Calibration metrics and temperature scaling against independent float64 hand computations,
scipy's scalar minimiser and netcal (a test dependency); the evaluation script's reports."""

import json
import os

import numpy as np
import pytest
from scipy import optimize, special

from tl_jax.evaluate import temperature
from tl_jax.metrics import calibration


def _logits(seed=0, n=500, c=7, scale=3.0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, c, n)
  logits = rng.normal(size=(n, c)) * scale
  logits[np.arange(n), labels] += rng.normal(2.0, 1.0, n) * scale  # over-confident, mostly right
  return logits, labels


def _ref_binned(scores, targets, bins=15):
  """Written from the definition: sum_b |B_b| / N |mean target - mean score| over [lo, hi) bins."""
  total = 0.0
  for b in range(bins):
    lo, hi = b / bins, (b + 1) / bins
    inside = (scores >= lo) & ((scores < hi) if b < bins - 1 else (scores <= hi))
    if inside.any():
      total += inside.sum() / len(scores) * abs(targets[inside].mean() - scores[inside].mean())
  return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_against_a_hand_computation(seed):
  logits, labels = _logits(seed)
  p = special.softmax(logits.astype(np.float64), axis=1)
  conf, correct = p.max(1), (p.argmax(1) == labels).astype(float)
  r = calibration.calibration_report(logits.astype(np.float32), labels)
  np.testing.assert_allclose(r["ece"], _ref_binned(conf, correct), rtol=1e-6)
  np.testing.assert_allclose(r["classwise_ece"], np.mean(
      [_ref_binned(p[:, k], (labels == k).astype(float)) for k in range(p.shape[1])]), rtol=1e-6)
  np.testing.assert_allclose(r["nll"], -np.mean(np.log(p[np.arange(len(labels)), labels])), rtol=1e-6)
  np.testing.assert_allclose(r["brier"], np.mean([sum((p[i, k] - (k == labels[i])) ** 2 for k in range(p.shape[1]))
                                                  for i in range(len(labels))]), rtol=1e-6)
  bins = r["reliability"]
  assert sum(bins["count"]) == len(labels)
  # ECE is the count-weighted gap of the diagram's bars.
  gap = sum(n * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"])) / len(labels)
  np.testing.assert_allclose(gap, r["ece"], rtol=1e-9)


def test_perfect_and_worst_cases():
  labels = np.array([0, 1, 2, 0])
  sure = np.eye(3)[labels] * 100.0
  r = calibration.calibration_report(sure, labels)
  assert r["ece"] < 1e-9 and r["brier"] < 1e-9 and r["nll"] < 1e-9
  wrong = np.eye(3)[(labels + 1) % 3] * 100.0
  r = calibration.calibration_report(wrong, labels)
  np.testing.assert_allclose([r["ece"], r["brier"]], [1.0, 2.0], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_ece_matches_netcal(seed):
  netcal = pytest.importorskip("netcal.metrics")
  logits, labels = _logits(seed, n=2000, c=10)
  p = calibration.softmax(logits)
  np.testing.assert_allclose(calibration.ece(p, labels), netcal.ECE(bins=15).measure(p, labels), atol=1e-9)
  # and on the temperature-scaled probabilities
  q = calibration.softmax(logits / temperature.fit(logits, labels))
  np.testing.assert_allclose(calibration.ece(q, labels), netcal.ECE(bins=15).measure(q, labels), atol=1e-9)


@pytest.mark.parametrize("seed,scale", [(0, 3.0), (1, 0.3), (2, 1.0), (4, 8.0)])
def test_temperature_is_the_nll_minimum(seed, scale):
  logits, labels = _logits(seed, scale=scale)
  z = logits.astype(np.float64)

  def nll_of_log_t(log_t):
    s = z / np.exp(log_t)
    return np.mean(special.logsumexp(s, axis=1) - s[np.arange(len(labels)), labels])

  ref = optimize.minimize_scalar(nll_of_log_t, bounds=(np.log(temperature.T_MIN), np.log(temperature.T_MAX)),
                                 method="bounded", options={"xatol": 1e-10})
  t = temperature.fit(logits.astype(np.float32), labels)
  np.testing.assert_allclose(t, np.exp(ref.x), rtol=1e-5)
  assert nll_of_log_t(np.log(t)) <= ref.fun + 1e-12
  assert calibration.nll(logits / t, labels) <= calibration.nll(logits, labels)


def test_temperature_bounds_and_argmax():
  labels = np.array([0, 1, 2, 1])
  assert temperature.fit(np.eye(3)[labels] * 5.0, labels) == temperature.T_MIN  # separable: colder is better
  assert temperature.fit(np.eye(3)[(labels + 1) % 3] * 5.0, labels) == temperature.T_MAX  # always wrong


def test_saved_temperature_is_for_its_checkpoint(tmp_path):
  assert temperature.load(str(tmp_path)) is None
  temperature.save(str(tmp_path), 1.7, step=12, weights="raw")
  assert temperature.load(str(tmp_path), 12, "raw") == 1.7
  assert temperature.load(str(tmp_path), 8, "raw") is None
  assert temperature.load(str(tmp_path), 12, "ema") is None


def test_reliability_diagram_png(tmp_path):
  from tl_jax.metrics import plots
  logits, labels = _logits()
  r = calibration.calibration_report(logits, labels)
  path = plots.plot_reliability_diagram(r["reliability"], tmp_path / "r.png", ece=r["ece"], title="t")
  assert os.path.getsize(path) > 1000


@pytest.fixture
def tiny_run(tiny_run_copy):
  """A copy of the session's tiny run (conftest), written into here: its workdir."""
  return tiny_run_copy[1]


def test_reports_have_calibration_and_a_reliability_diagram(tiny_run):
  from tl_jax.evaluate import evaluation
  r = evaluation.evaluate_checkpoint(tiny_run, "best", "test")
  folder = os.path.dirname(r["report_path"])
  assert os.path.exists(os.path.join(folder, "reliability_diagram.png"))
  with open(r["report_path"]) as f:
    saved = json.load(f)
  for key in ("ece", "classwise_ece", "nll", "brier"):
    assert 0 <= saved[key] and np.isfinite(saved[key])
  np.testing.assert_allclose(saved["nll"], saved["loss"], rtol=1e-4)  # the same cross-entropy


def test_calibrate_saves_and_predict_uses_it(tiny_run):
  from tl_jax.evaluate import evaluation, predict
  c = temperature.calibrate(tiny_run, "best")
  assert temperature.T_MIN <= c["temperature"] <= temperature.T_MAX
  with open(os.path.join(tiny_run, temperature.FILE)) as f:
    saved = json.load(f)
  assert saved["step"] == c["step"] and saved["nll_after"] <= saved["nll_before"] + 1e-9
  assert os.path.exists(os.path.join(os.path.dirname(c["report_path"]), "reliability_diagram.png"))
  run = evaluation.restore(tiny_run, "best")
  images = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
  plain = predict.probabilities(predict.from_run(run, "raw"), images)
  scaled = predict.probabilities(predict.from_workdir(tiny_run, "best", "raw"), images)
  expected = calibration.softmax(np.log(plain.astype(np.float64)) / c["temperature"])
  np.testing.assert_allclose(scaled, expected, atol=1e-5)
