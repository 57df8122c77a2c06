"""Rank agreement of scores and accuracy (tl_jax.studies.rank_check): Kendall's tau by hand."""

import itertools

import numpy as np
import pytest

from tl_jax.studies import rank_check

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _tau_by_hand(x, y):
  """(concordant - discordant) / pairs, no ties."""
  s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in itertools.combinations(range(len(x)), 2))
  return s / (len(x) * (len(x) - 1) / 2)


def _rows(score, acc):
  return [{"candidate": f"c{i}", "logme": s, "accuracy": a} for i, (s, a) in enumerate(zip(score, acc))]


def test_tau_and_top_pick_match_a_hand_count():
  rng = np.random.default_rng(0)
  score, acc = rng.normal(size=9), rng.uniform(size=9)
  (row,) = rank_check.agreement(_rows(score, acc), scores=("logme",))
  assert row["tau"] == pytest.approx(_tau_by_hand(score, acc), abs=1e-12)
  assert row["n"] == 9 and 0 <= row["p_value"] <= 1
  assert row["top_by_score"] == f"c{np.argmax(score)}" and row["top_accuracy"] == acc[np.argmax(score)]
  assert row["best"] == f"c{np.argmax(acc)}" and row["best_accuracy"] == acc.max()


def test_weighted_tau_weighs_the_top_of_the_ranking():
  acc = np.arange(8.0)
  same = rank_check.agreement(_rows(acc, acc), scores=("logme",))[0]
  assert same["tau"] == pytest.approx(1.0) and same["weighted_tau"] == pytest.approx(1.0)
  top_swapped, bottom_swapped = acc.copy(), acc.copy()
  top_swapped[[6, 7]] = top_swapped[[7, 6]]
  bottom_swapped[[0, 1]] = bottom_swapped[[1, 0]]
  top = rank_check.agreement(_rows(top_swapped, acc), scores=("logme",))[0]
  bottom = rank_check.agreement(_rows(bottom_swapped, acc), scores=("logme",))[0]
  assert top["tau"] == pytest.approx(bottom["tau"])  # plain tau: one discordant pair either way
  assert top["weighted_tau"] < bottom["weighted_tau"] < 1.0  # an error at the top costs more


def test_missing_and_nonfinite_scores_are_dropped_and_short_lists_skipped():
  rows = _rows([1.0, 2.0, float("nan"), 3.0, None], [0.1, 0.2, 0.9, 0.3, 0.5])
  (row,) = rank_check.agreement(rows, scores=("logme", "leep"))  # no leep anywhere: no row
  assert row["n"] == 3 and row["tau"] == pytest.approx(1.0)
  assert rank_check.agreement(rows[:2], scores=("logme",)) == []


def test_write_gives_csv_and_markdown(tmp_path):
  rows = rank_check.agreement(_rows([1.0, 3.0, 2.0], [0.1, 0.3, 0.2]), scores=("logme",), label="toy")
  rank_check.write(rows, str(tmp_path / "agreement.csv"), rank_check.FIELDS, title="toy")
  assert (tmp_path / "agreement.csv").read_text().splitlines()[0] == ",".join(rank_check.FIELDS)
  md = (tmp_path / "agreement.md").read_text()
  assert md.startswith("toy\n") and "| toy | logme | 3 | 1.000 |" in md


def test_the_picks_cost_carries_wilson_intervals_and_says_when_it_is_noise():
  """BENCHMARKS' rank-pool case: the scores' pick at 59.3%, the best start at 62.9%, 1,000 test
  images each: 95% Wilson [56.2, 62.3] vs [59.9, 65.8], overlapping, so within noise."""
  rows = [{**r, "test_images": 1000} for r in _rows([3.0, 1.0, 2.0], [0.593, 0.629, 0.40])]
  (row,) = rank_check.agreement(rows, scores=("logme",))
  assert (row["top_interval"], row["best_interval"]) == ("[56.2, 62.3]", "[59.9, 65.8]")
  assert row["pick_cost"] == "3.6 points, within noise"
  rows[0]["accuracy"] = 0.45  # the pick now far below the best
  assert rank_check.agreement(rows, scores=("logme",))[0]["pick_cost"] == "17.9 points, separated"
  rows[1]["logme"] = 9.0  # the score picks the best
  assert rank_check.agreement(rows, scores=("logme",))[0]["pick_cost"] == "none (the best)"
  # Without image counts (rows from elsewhere) nothing is claimed.
  assert "pick_cost" not in rank_check.agreement(_rows([3.0, 1.0, 2.0], [0.593, 0.629, 0.4]), scores=("logme",))[0]
