"""Each transferability score against an independent float64 reference written from its paper."""

import numpy as np
import pytest
from scipy import stats
from sklearn.covariance import LedoitWolf

from tl_jax.studies import transferability as tr


def _data(n=60, d=8, c=3, seed=0):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  f = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(c, d))[y]  # class structure + noise
  return f, y


def _ref_evidence(f, y, alpha, beta):
  """You et al. (2021) Eq. (2), with A = alpha I + beta F^T F and m = beta A^-1 F^T y written out."""
  n, d = f.shape
  a = alpha * np.eye(d) + beta * f.T @ f
  m = beta * np.linalg.solve(a, f.T @ y)
  return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
          - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - 0.5 * np.linalg.slogdet(a)[1]), m, a


def _ref_logme(f, y, tol=1e-6, max_iter=100):
  """Algorithm 1 of You et al. (2021) with explicit matrices, one class at a time."""
  n = len(f)
  eig = np.clip(np.linalg.eigvalsh(f.T @ f), 0, None)  # rounding leaves tiny negatives
  out = []
  for c in np.unique(y):
    t_y = (y == c).astype(np.float64)
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
      _, m, _ = _ref_evidence(f, t_y, alpha, beta)
      gamma = np.sum(beta * eig / (alpha + beta * eig))
      new_alpha, new_beta = gamma / (m @ m), (n - gamma) / np.sum((f @ m - t_y) ** 2)
      done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) <= tol
      alpha, beta = new_alpha, new_beta
      if done:
        break
    out.append(_ref_evidence(f, t_y, alpha, beta)[0] / n)
  return np.mean(out)


def _ref_leep(theta, y):
  """Nguyen et al. (2020) Eq. (1)-(2), with loops over classes."""
  n, z = theta.shape
  joint = np.zeros((y.max() + 1, z))
  for i in range(n):
    joint[y[i]] += theta[i] / n
  cond = joint / joint.sum(axis=0)
  return np.mean([np.log(sum(cond[y[i], k] * theta[i, k] for k in range(z))) for i in range(n)])


def _ref_nce(z, y):
  """Tran et al. (2019): -H(Y|Z) = sum_{y,z} P(y,z) log P(y|z), by counting pairs."""
  n, total = len(y), 0.0
  for zz in np.unique(z):
    pz = np.mean(z == zz)
    for yy in np.unique(y):
      pyz = np.mean((z == zz) & (y == yy))
      if pyz > 0:
        total += pyz * np.log(pyz / pz)
  return total


def _ref_between(f, y):
  g = np.stack([f[y == c].mean(axis=0) for c in y])  # every feature replaced by its class mean
  return np.cov(g, rowvar=False, bias=True)


def _ref_h_score(f, y):
  """Bao et al. (2019): tr(cov(f)^-1 cov(E[f|y]))."""
  return np.trace(np.linalg.pinv(np.cov(f, rowvar=False, bias=True)) @ _ref_between(f, y))


def _ref_regularized_h_score(f, y):
  """Ibrahim et al. (2022): the Ledoit-Wolf estimate (scikit-learn's) in place of cov(f)."""
  lw = LedoitWolf().fit(f)
  return np.trace(np.linalg.pinv(lw.covariance_) @ ((1 - lw.shrinkage_) * _ref_between(f, y)))


def _ref_transrate(f, y, eps=1e-4):
  """Huang et al. (2022) Eq. (4)-(6) with determinants of d x d matrices."""
  z = f - f.mean(axis=0)
  n, d = z.shape
  rate = lambda zz: 0.5 * np.linalg.slogdet(np.eye(d) + d / (len(zz) * eps ** 2) * zz.T @ zz)[1]
  return rate(z) - sum(np.sum(y == c) / n * rate(z[y == c]) for c in np.unique(y))


@pytest.mark.parametrize("n,d,c,seed", [(60, 8, 3, 0), (200, 32, 10, 1), (40, 100, 4, 2)])
def test_feature_scores_match_references(n, d, c, seed):
  f, y = _data(n, d, c, seed)
  refs = {"logme": _ref_logme, "h_score": _ref_h_score, "regularized_h_score": _ref_regularized_h_score,
          "transrate": _ref_transrate}
  for name, ref in refs.items():
    if name == "h_score" and d > n:
      continue  # the pseudo-inverse of a singular cov is not stable enough to compare at 1e-6
    np.testing.assert_allclose(tr.SCORES[name](f, y), ref(f, y), rtol=1e-6, atol=1e-6, err_msg=name)


def test_ledoit_wolf_matches_sklearn():
  f, _ = _data(50, 12, 3, 4)
  cov, a = tr.ledoit_wolf(f)
  lw = LedoitWolf().fit(f)
  np.testing.assert_allclose(a, lw.shrinkage_, rtol=1e-9)
  np.testing.assert_allclose(cov, lw.covariance_, rtol=1e-9, atol=1e-12)


def test_leep_and_nce_match_references():
  rng = np.random.default_rng(3)
  y = np.arange(90) % 4
  logits = rng.normal(size=(90, 7)) + 2 * rng.normal(size=(4, 7))[y]
  theta = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  np.testing.assert_allclose(tr.leep(theta, y), _ref_leep(theta, y), rtol=1e-9)
  z = theta.argmax(axis=1)
  np.testing.assert_allclose(tr.nce(z, y), _ref_nce(z, y), rtol=1e-9)
  assert tr.nce(y, y) == pytest.approx(0.0)  # source labels that determine the target: H(Y|Z) = 0
  assert tr.leep(np.eye(4)[y], y) == pytest.approx(0.0)


def test_logme_evidence_is_the_gaussian_marginal_likelihood():
  """Closed form: with alpha, beta fixed, y ~ N(0, I/beta + F F^T/alpha) (tiny problem, scipy)."""
  rng = np.random.default_rng(5)
  for n, d in ((6, 3), (4, 7)):  # more images than dimensions, and fewer
    f, t = rng.normal(size=(n, d)), rng.normal(size=n)
    for alpha, beta in ((1.0, 1.0), (0.3, 4.0), (7.0, 0.2)):
      direct = stats.multivariate_normal(np.zeros(n), np.eye(n) / beta + f @ f.T / alpha).logpdf(t)
      np.testing.assert_allclose(tr.evidence(f, t, alpha, beta)[0] * n, direct, rtol=1e-9)
      np.testing.assert_allclose(_ref_evidence(f, t, alpha, beta)[0], direct, rtol=1e-9)


def test_logme_fixed_point_maximises_the_evidence():
  f, y = _data(80, 6, 2, 6)
  score, ev, alpha, beta = tr.logme(f, y, per_class=True)
  t = (y == 0).astype(float)
  for da, db in ((1.1, 1), (0.9, 1), (1, 1.1), (1, 0.9)):
    assert tr.evidence(f, t, alpha[0] * da, beta[0] * db)[0] < ev[0]
  assert score == pytest.approx(ev.mean())


def test_degenerate_inputs_give_finite_scores():
  f, y = _data(30, 5, 3, 7)
  y = y.copy()
  y[0] = 9  # a class with a single image
  wide, _ = _data(20, 64, 2, 8)
  yw = np.arange(20) % 2
  const = np.ones((30, 5)) * 3.0
  zero = np.zeros((30, 5))
  for name, score in tr.SCORES.items():
    for feats, labels in ((f, y), (wide, yw), (const, y), (zero, y)):
      assert np.isfinite(score(feats, labels)), (name, feats.shape)
  assert tr.h_score(const, y) == 0.0 and tr.regularized_h_score(const, y) == 0.0
  assert tr.transrate(const, y) == 0.0
  # More dimensions than images: every labelling is linearly explained, H-score saturates at C - 1.
  assert tr.h_score(wide, yw) == pytest.approx(1.0)
  # Constant features carry no information: LogME falls to that of a zero design.
  assert tr.logme(const, y) <= tr.logme(f, y)


def test_bad_inputs_raise_clear_errors():
  f, y = _data(10, 3, 2, 9)
  with pytest.raises(ValueError, match="one row per label"):
    tr.logme(f, y[:-1])
  with pytest.raises(ValueError, match="NaN"):
    tr.h_score(np.full_like(f, np.nan), y)
  with pytest.raises(ValueError, match="No labels"):
    tr.transrate(f[:0], y[:0])
  with pytest.raises(ValueError, match="probabilities"):
    tr.leep(-np.ones((10, 3)), y)
