"""big_vision's few-shot least-squares protocol against a direct float64 solve."""

import numpy as np
import pytest

from tl_jax.studies import fewshot


def _direct(x, y, xt, yt, c, l2):
  """The regularised least squares of big_vision's fewshot_lsr, solved with np.linalg.solve."""
  mean, std = x.mean(axis=0), x.std(axis=0) + 1e-5
  a = np.hstack([(x - mean) / std, np.full((len(x), 1), 100.0)])
  at = np.hstack([(xt - mean) / std, np.full((len(xt), 1), 100.0)])
  t = 2.0 * np.eye(c)[y] - 1.0
  w = np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ t)
  return np.mean(np.argmax(at @ w, axis=1) == yt)


def _data(n, d, c, seed):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  return rng.normal(size=(n, d)) + rng.normal(size=(c, d))[y], y


@pytest.mark.parametrize("n,d", [(80, 6), (12, 40)])  # more images than dimensions, and fewer (Woodbury)
def test_lsr_matches_direct_solve(n, d):
  x, y = _data(n, d, 4, 0)
  xt, yt = _data(200, d, 4, 0)[0] + np.random.default_rng(1).normal(size=(200, d)), _data(200, d, 4, 0)[1]
  l2s = [2.0 ** -5, 1.0, 2.0 ** 10]
  got = fewshot.lsr_accuracy(x, y, xt, yt, 4, l2s)
  np.testing.assert_allclose(got, [_direct(x, y, xt, yt, 4, l2) for l2 in l2s])


def test_protocol_shots_seeds_and_the_fixed_penalty():
  x, y = _data(300, 16, 5, 2)
  xt, yt = _data(100, 16, 5, 2)
  rows = fewshot.protocol((x, y), (xt, yt))
  assert [(r["shots"], r["seed"]) for r in rows] == [(k, s) for s in (0, 1, 2) for k in fewshot.SHOTS]
  assert {r["l2"] for r in rows} == {2.0 ** 10}
  means = fewshot.summary(rows)
  assert means[(25, 1024.0)][0] > means[(1, 1024.0)][0] and means[(25, 1024.0)][2] == 3
  # A seed is one draw: its 1-shot images are the first of the 5-shot ones (big_vision's subsets).
  rng = np.random.default_rng(0)
  first = [rng.permutation(np.flatnonzero(y == c))[0] for c in range(5)]
  assert rows[0]["accuracy"] == fewshot.lsr_accuracy(x[first], y[first], xt, yt, 5)[0]
  with pytest.raises(ValueError, match="only"):
    fewshot.protocol((x[:20], y[:20]), (xt, yt))


def test_evaluate_run_on_a_checkpoint(digits_run):
  workdir = digits_run[0]
  rows = fewshot.evaluate_run(workdir, shots=(1, 25), seeds=(0, 1))
  assert len(rows) == 4
  means = fewshot.summary(rows)
  assert means[(25, fewshot.L2)][0] > 0.5  # digits on Lite0's pooled features: well above 10% chance
  assert means[(25, fewshot.L2)][0] >= means[(1, fewshot.L2)][0]
