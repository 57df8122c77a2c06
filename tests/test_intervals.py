"""Intervals and paired tests against scipy, statsmodels (when installed), a closed form written here
and Newcombe's (1998) published Wilson intervals."""

import numpy as np
import pytest
from scipy import stats

from tl_jax.metrics import intervals


def _wilson_closed_form(k, n, z):
  """(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), written from Wilson (1927)."""
  p = k / n
  centre = p + z * z / (2 * n)
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


CASES = [(81, 263), (15, 148), (0, 20), (1, 29), (20, 20), (902, 1000), (5085, 5085), (3, 7)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_reference(k, n, confidence):
  low, high = intervals.wilson(k, n, confidence)
  try:
    from statsmodels.stats.proportion import proportion_confint
  except ImportError:
    z = stats.norm.ppf(0.5 + confidence / 2)
    ref = _wilson_closed_form(k, n, z)
  else:
    ref = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
  np.testing.assert_allclose((low, high), ref, rtol=0, atol=1e-12)
  assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_newcombe_table():
  # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score).
  np.testing.assert_allclose(intervals.wilson(81, 263), (0.2553, 0.3662), atol=5e-5)
  np.testing.assert_allclose(intervals.wilson(15, 148), (0.0624, 0.1605), atol=5e-5)


def test_wilson_edges():
  assert intervals.wilson(0, 10)[0] == 0.0
  assert intervals.wilson(10, 10)[1] == 1.0
  assert intervals.wilson(10, 10)[0] < 1.0  # all correct still has a lower bound below 1
  with pytest.raises(ValueError, match="n > 0"):
    intervals.wilson(0, 0)
  with pytest.raises(ValueError):
    intervals.wilson(11, 10)
  with pytest.raises(ValueError):
    intervals.wilson(5, 10, confidence=1.0)


def _pairs(seed, n=400, pa=0.9, pb=0.85):
  rng = np.random.default_rng(seed)
  return rng.random(n) < pa, rng.random(n) < pb


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_matches_binomtest(seed):
  a, b = _pairs(seed, n=60 + 40 * seed)
  n10, n01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
  ref = stats.binomtest(n10, n10 + n01, 0.5, alternative="two-sided").pvalue
  np.testing.assert_allclose(intervals.mcnemar_exact(a, b), ref, rtol=1e-12)
  # Symmetric in A and B.
  np.testing.assert_allclose(intervals.mcnemar_exact(b, a), ref, rtol=1e-12)


def test_mcnemar_matches_statsmodels():
  contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
  for seed in range(6):
    a, b = _pairs(seed)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    ref = contingency.mcnemar(table, exact=True).pvalue
    np.testing.assert_allclose(intervals.mcnemar_exact(a, b), ref, rtol=1e-12)


def test_mcnemar_hand_computed():
  # 10 discordant pairs, 1 for B: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024.
  a = np.array([True] * 9 + [False] + [True] * 5)
  b = np.array([False] * 9 + [True] + [True] * 5)
  np.testing.assert_allclose(intervals.mcnemar_exact(a, b), 22 / 1024, rtol=1e-12)


def test_mcnemar_no_discordant_pairs():
  same = np.array([True, False, True, True])
  assert intervals.mcnemar_exact(same, same) == 1.0
  assert intervals.mcnemar_exact(np.ones(5, bool), np.ones(5, bool)) == 1.0
  with pytest.raises(ValueError, match="same test images"):
    intervals.mcnemar_exact(np.ones(3, bool), np.ones(4, bool))
  with pytest.raises(ValueError, match="empty"):
    intervals.mcnemar_exact(np.ones(0, bool), np.ones(0, bool))


def test_paired_bootstrap_covers_true_difference():
  # Simulated: A right on 90%, B on 85% of a large population; the test set is a sample of it.
  rng = np.random.default_rng(7)
  n = 2000
  u = rng.random(n)
  a, b = u < 0.90, u < 0.85  # correlated like two models on the same images; true difference 0.05
  diff, low, high = intervals.paired_bootstrap(a, b, n=2000, seed=0)
  np.testing.assert_allclose(diff, a.mean() - b.mean())
  assert low < 0.05 < high
  assert low < diff < high
  assert low > 0.0  # separated


def test_paired_bootstrap_not_separated_when_equal():
  a, b = _pairs(3, n=300, pa=0.8, pb=0.8)
  _, low, high = intervals.paired_bootstrap(a, b, n=1000, seed=1)
  assert low < 0.0 < high


def test_paired_bootstrap_deterministic_per_seed():
  a, b = _pairs(0)
  first = intervals.paired_bootstrap(a, b, n=500, seed=3)
  assert intervals.paired_bootstrap(a, b, n=500, seed=3) == first
  assert intervals.paired_bootstrap(a, b, n=500, seed=4) != first


def test_paired_bootstrap_all_correct():
  ones = np.ones(50, bool)
  assert intervals.paired_bootstrap(ones, ones, n=200) == (0.0, 0.0, 0.0)
  diff, low, high = intervals.paired_bootstrap(ones, np.zeros(50, bool), n=200)
  assert (diff, low, high) == (1.0, 1.0, 1.0)


def test_seed_spread():
  mean, std = intervals.seed_spread([0.90, 0.91, 0.93])
  np.testing.assert_allclose(mean, np.mean([0.90, 0.91, 0.93]))
  np.testing.assert_allclose(std, np.std([0.90, 0.91, 0.93], ddof=1))
  mean, std = intervals.seed_spread([0.9])
  assert mean == 0.9 and np.isnan(std)
  with pytest.raises(ValueError):
    intervals.seed_spread([])


def test_accuracy_cell_shows_the_wilson_interval_of_the_mean():
  assert intervals.accuracy_cell(0.81) == "81.0%"
  assert intervals.accuracy_cell(0.523, 0.012) == "52.3 ± 1.2%"
  low, high = intervals.wilson(810, 1000)
  assert intervals.accuracy_cell(0.81, None, 1000) == f"81.0% [{100 * low:.1f}, {100 * high:.1f}]"
  assert intervals.accuracy_cell(0.81, 0.02, 1000, unit="") == f"81.0 ± 2.0 [{100 * low:.1f}, {100 * high:.1f}]"
  assert intervals.wilson_of_accuracy(0.81, 1000) == (low, high)


def test_probe_table_carries_intervals(tmp_path):
  from tl_jax.studies import probe_sweep

  rows = [{"model": "m", "imagenet_top1": None, "feature": "pre_logits", "dim": 8, "images_per_class": 10,
           "train_images": 100, "seed": s, "l2": 1e-3, "test_accuracy": a, "test_images": 500,
           "best_val_accuracy": a, "wall_s": 1.0, "max_iterations": 5, "converged": True, "sklearn_l2": None,
           "sklearn_test_accuracy": None, "sklearn_wall_s": None, "sklearn_converged": None}
          for s, a in ((0, 0.60), (1, 0.64))]
  rows.append({**rows[0], "feature": "stage3", "test_accuracy": 0.5})  # one seed: its Wilson interval
  probe_sweep.write_results(rows, str(tmp_path))
  low, high = intervals.wilson(310, 500)  # the mean, 0.62, over the 500 test images
  assert f"| 62.0 ± 2.8 [{100 * low:.1f}, {100 * high:.1f}] |" in (tmp_path / "probe_results.md").read_text()
  assert (tmp_path / "probe_vs_cut_point.png").stat().st_size > 0  # bars of both kinds drawn


def test_paired_bootstrap_takes_fractions_of_seeds_and_rejects_other_values():
  # Booleans and their 0/1 fractions give the same interval; a value outside [0, 1] is no correctness.
  rng = np.random.default_rng(3)
  a, b = rng.random(300) < 0.8, rng.random(300) < 0.7
  assert intervals.paired_bootstrap(a, b) == intervals.paired_bootstrap(a * 1.0, b * 1.0)
  with pytest.raises(ValueError, match=r"fractions of seeds in \[0, 1\]"):
    intervals.paired_bootstrap(a * 2.0, b)
  table = intervals.paired_table({"a": (np.zeros(300), a * 0.5), "b": (np.zeros(300), b * 1.0)})
  assert np.isnan(table[0]["mcnemar_p"])  # McNemar needs one run per model


def test_error_bar_is_the_seed_std_or_a_single_runs_wilson_interval():
  assert intervals.error_bar(0.9, 0.01, seeds=3, test_images=1000) == 0.01
  assert intervals.error_bar(0.93, 0.0, seeds=1, test_images=1000) == intervals.wilson(930, 1000)
  assert intervals.error_bar(0.93, test_images="1000") == intervals.wilson(930, 1000)  # CSV text
  assert intervals.error_bar(0.93) == 0.0  # one run, no image count: nothing to draw
