"""Transferability scores: how well a pretrained model suits a target dataset, from one forward pass.

Each score is a pure function of the target's features (``(N, D)``, e.g. the pooled output of a
cut point), its labels (``(N,)`` ints) and, for LEEP and NCE, the source model's own predictions
on the target images. Higher is better for every score. ``SCORES`` maps the names used by
``tl_jax.studies.rank`` to the feature-based ones.

- ``logme``: You et al. (2021), the log marginal likelihood of a Bayesian linear model per class,
  at its evidence-maximising fixed point;
- ``leep``: Nguyen et al. (2020), from the source head's probabilities;
- ``nce``: Tran et al. (2019), the negative conditional entropy of target given source labels;
- ``h_score``: Bao et al. (2019); ``regularized_h_score``: Ibrahim et al. (2022), with the
  Ledoit-Wolf shrinkage covariance;
- ``transrate``: Huang et al. (2022), coding rate of the features minus that given the labels.

All run in NumPy float64, vectorised over classes. None is jitted: each costs one SVD or
covariance of an ``(N, D)`` matrix per (model, cut point), which LAPACK does as fast as XLA on
CPU, and float64 (a process-wide switch in JAX) keeps the ill-conditioned cases (more
dimensions than images, near-constant features) meaningful.
"""

from collections.abc import Callable

import numpy as np


def _labels(labels) -> tuple[np.ndarray, int]:
  """Labels renumbered ``0..C-1`` (classes absent from ``labels`` dropped) and ``C``."""
  labels = np.asarray(labels).reshape(-1)
  if labels.size == 0:
    raise ValueError("No labels: a transferability score needs at least one image.")
  classes, inverse = np.unique(labels, return_inverse=True)
  return inverse, len(classes)


def _features(features, labels) -> np.ndarray:
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or len(f) != len(np.asarray(labels).reshape(-1)):
    raise ValueError(f"features must be (N, D) with one row per label; got {f.shape} for "
                     f"{np.asarray(labels).size} labels.")
  if not np.all(np.isfinite(f)):
    raise ValueError("features contain NaN or inf: check the backbone's output before scoring it.")
  return f


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  return (labels[:, None] == np.arange(num_classes)[None]).astype(np.float64)


_TINY = 1e-300  # floor of divisions that are 0/0 only when features or targets vanish


def _evidence_terms(n, sigma, x2, res_x2, t):
  """``m^T m``, ``||y - F m||^2``, ``gamma`` and ``N - gamma`` at ``t = alpha / beta``, per column.

  ``sigma``: (k, 1) squared singular values; ``x2``: (k, C) squared ``U^T y``; ``res_x2``: (C,)
  the part of ``||y||^2`` outside the span of ``U``; ``t``: (C,). ``N - gamma`` is summed
  directly (not subtracted): features that nearly interpolate ``y`` make it tiny.
  """
  shrink = sigma / (sigma + t)  # (k, C): the posterior mean keeps this fraction of each direction
  m2 = np.sum(shrink ** 2 * x2 / np.maximum(sigma, _TINY), axis=0)
  res2 = np.sum((1 - shrink) ** 2 * x2, axis=0) + res_x2
  rest = n - sigma.shape[0] + np.sum(t / (sigma + t), axis=0)
  return m2, res2, shrink.sum(axis=0), rest


def _log_evidence(n, sigma, m2, res2, alpha, beta):
  # D/2 log a - 1/2 log|a I + b F^T F| = -1/2 sum_i log(1 + b sigma_i / a): the D - k directions
  # with sigma = 0 cancel exactly, so more dimensions than images cost nothing spurious.
  return (n / 2 * np.log(beta) - 0.5 * np.sum(np.log1p(beta * sigma / alpha), axis=0)
          - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))


def _svd(f: np.ndarray, y: np.ndarray):
  u, s, _ = np.linalg.svd(f, full_matrices=False)
  sigma = (s ** 2)[:, None]
  x = u.T @ y
  return sigma, x ** 2, np.maximum(np.sum(y ** 2, axis=0) - np.sum(x ** 2, axis=0), 0.0)


def evidence(features, targets, alpha, beta) -> np.ndarray:
  """Log evidence ``log p(y | F, alpha, beta)`` of the LogME model per target column, per image.

  The model of You et al. (2021): ``y = F w + e``, ``w ~ N(0, I / alpha)``, ``e ~ N(0, I / beta)``,
  so ``y ~ N(0, I / beta + F F^T / alpha)``. ``targets``: (N,) or (N, C); ``alpha``, ``beta``:
  scalars or (C,). Returns (C,) values of ``log p / N``.
  """
  f = _features(features, np.zeros(len(features)))
  y = np.asarray(targets, np.float64).reshape(len(f), -1)
  sigma, x2, res_x2 = _svd(f, y)
  alpha, beta = np.broadcast_to(alpha, y.shape[1:]), np.broadcast_to(beta, y.shape[1:])
  m2, res2, _, _ = _evidence_terms(len(f), sigma, x2, res_x2, alpha / beta)
  return _log_evidence(len(f), sigma, m2, res2, alpha, beta) / len(f)


def logme(features, labels, *, tol: float = 1e-6, max_iter: int = 100, per_class: bool = False):
  """LogME of You, Liu, Wang & Long (2021), "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning" (ICML), Algorithm 1.

  For each class ``c`` the one-hot column ``y_c`` is modelled as ``F w + e`` with a Gaussian prior
  ``w ~ N(0, I / alpha)`` and noise ``e ~ N(0, I / beta)``; MacKay's fixed point
  ``gamma = sum_i beta sigma_i / (alpha + beta sigma_i)``, ``alpha = gamma / m^T m``,
  ``beta = (N - gamma) / ||F m - y||^2`` (from ``alpha = beta = 1``, all classes at once in the
  basis of ``F``'s SVD) runs until ``alpha / beta`` moves by less than ``tol`` (relative), and the
  score is the mean over classes of the log evidence per image at the final ``alpha``, ``beta``.

  Differences from the authors' code (``thuml/LogME``), stated: no ``1e-5`` added to ``m^T m`` and
  the residual, the evidence evaluated at the final ``(alpha, beta)`` (theirs mixes the last two
  iterates), and the ``D - k`` zero singular values of a wide ``F`` cancel in ``log|A|`` exactly.

  Returns:
    The score (float), or with ``per_class`` ``(score, (C,) evidences, (C,) alphas, (C,) betas)``.
  """
  y, num_classes = _labels(labels)
  f = _features(features, y)
  n = len(f)
  sigma, x2, res_x2 = _svd(f, _one_hot(y, num_classes))
  alpha, beta = np.ones(num_classes), np.ones(num_classes)
  active = np.ones(num_classes, bool)
  for _ in range(max_iter):
    m2, res2, gamma, rest = _evidence_terms(n, sigma, x2, res_x2, alpha / beta)
    new_alpha = np.where(active, gamma / np.maximum(m2, _TINY), alpha)
    new_beta = np.where(active, rest / np.maximum(res2, _TINY), beta)
    # A class whose features explain nothing (gamma = 0) keeps alpha > 0: its evidence does not
    # depend on alpha then (m = 0), only on beta.
    new_alpha = np.where(new_alpha > 0, new_alpha, alpha)
    t, new_t = alpha / beta, new_alpha / new_beta
    alpha, beta = new_alpha, new_beta
    active &= np.abs(new_t - t) / t > tol
    if not active.any():
      break
  m2, res2, _, _ = _evidence_terms(n, sigma, x2, res_x2, alpha / beta)
  ev = _log_evidence(n, sigma, m2, res2, alpha, beta) / n
  return (float(ev.mean()), ev, alpha, beta) if per_class else float(ev.mean())


def leep(source_probs, labels) -> float:
  """LEEP of Nguyen, Hassner, Seeger & Archambeau (2020), "LEEP: A New Measure to Evaluate
  Transferability of Learned Representations" (ICML), Eq. (1)-(2).

  ``source_probs``: (N, Z) the source model's softmax over its own classes (e.g. ImageNet's 1,000)
  on the target images. With the empirical joint ``P(y, z) = 1/N sum_{i: y_i = y} theta_z(x_i)``
  and ``P(y | z) = P(y, z) / P(z)``, LEEP is ``1/N sum_i log sum_z P(y_i | z) theta_z(x_i)``
  (the log-likelihood of the "expected empirical predictor"). At most 0.
  """
  y, num_classes = _labels(labels)
  theta = np.asarray(source_probs, np.float64)
  if theta.ndim != 2 or len(theta) != len(y) or np.any(theta < 0):
    raise ValueError(f"source_probs must be (N, Z) probabilities, one row per label; got {theta.shape}.")
  theta = theta / theta.sum(axis=1, keepdims=True)
  joint = _one_hot(y, num_classes).T @ theta / len(y)  # (C, Z)
  cond = joint / np.maximum(joint.sum(axis=0, keepdims=True), _TINY)  # P(y | z); 0 where P(z) = 0
  eep = np.sum(theta * cond[y], axis=1)  # sum_z theta_z(x_i) P(y_i | z)
  return float(np.mean(np.log(eep)))


def nce(source_labels, labels) -> float:
  """NCE of Tran, Nguyen & Hassner (2019), "Transferability and Hardness of Supervised
  Classification Tasks" (ICCV), Eq. (5)-(6): ``-H(Y | Z)`` of the empirical joint of target labels
  ``Y`` and the source model's hard labels ``Z`` on the same images. At most 0.
  """
  y, num_classes = _labels(labels)
  z, num_source = _labels(source_labels)
  if len(z) != len(y):
    raise ValueError(f"source_labels and labels differ in length: {len(z)} and {len(y)}.")
  joint = np.zeros((num_classes, num_source))
  np.add.at(joint, (y, z), 1.0 / len(y))
  pz = joint.sum(axis=0, keepdims=True)
  nz = joint > 0
  return float(np.sum(joint[nz] * np.log((joint / pz)[nz])))


def _centred_svd(f: np.ndarray):
  """``(U, s)`` of the centred features, with directions of (numerically) zero variance dropped
  as a pseudo-inverse drops them (singular values below ``max(N, D) * eps * s_max``)."""
  u, s, _ = np.linalg.svd(f - f.mean(axis=0), full_matrices=False)
  keep = s > (s[:1] * max(f.shape) * np.finfo(np.float64).eps if s.size else 0)
  keep &= s > 0
  return u[:, keep], s[keep]


def _between_weights(u: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
  """``||P u_i||^2`` per column ``u_i``, ``P`` replacing each entry by its class mean.

  With ``X_c = U S V^T`` (centred), ``cov(E[f | y]) = X_c^T P X_c / N``: in the basis ``V`` its
  diagonal is ``s_i^2 ||P u_i||^2 / N``, so neither D x D matrix is ever formed.
  """
  onehot = _one_hot(y, num_classes)
  counts = onehot.sum(axis=0)
  means = onehot.T @ u / counts[:, None]  # (C, k)
  return counts @ means ** 2


def h_score(features, labels) -> float:
  """H-score of Bao, Li, Huang, Zheng, Li & Zhang (2019), "An Information-Theoretic Approach to
  Transferability in Task Transfer Learning" (ICIP): ``tr(cov(f)^+ cov(E[f | y]))``.

  Covariances are the 1/N (maximum-likelihood) estimates and ``cov(f)^+`` the pseudo-inverse, so
  constant features score 0 and more dimensions than images give a finite (but unreliable: see
  ``regularized_h_score``) value. Computed in the SVD basis of the centred features, where it is
  ``sum_i ||P u_i||^2`` (``_between_weights``): O(N D min(N, D)), not O(D^3).
  """
  y, num_classes = _labels(labels)
  u, _ = _centred_svd(_features(features, y))
  return float(np.sum(_between_weights(u, y, num_classes)))


def _ledoit_wolf_shrinkage(x: np.ndarray, s: np.ndarray) -> tuple[float, float]:
  """``(a, mu)`` of Ledoit & Wolf (2004) for centred ``x`` (N x D) with singular values ``s``."""
  n, d = x.shape
  eig = s ** 2 / n  # the nonzero eigenvalues of S = x^T x / N
  mu = np.sum(eig) / d
  d2 = (np.sum(eig ** 2) - 2 * mu * np.sum(eig) + d * mu ** 2) / d  # ||S - mu I||_F^2 / D
  # sum_i ||x_i x_i^T - S||_F^2 = sum_i ||x_i||^4 - N ||S||_F^2
  b2 = (np.sum(np.sum(x ** 2, axis=1) ** 2) / n - np.sum(eig ** 2)) / (n * d)
  return (0.0 if d2 <= 0 else float(min(b2, d2) / d2)), float(mu)


def ledoit_wolf(features) -> tuple[np.ndarray, float]:
  """The Ledoit & Wolf (2004) shrinkage covariance ``(1 - a) S + a tr(S)/D I`` and its ``a``.

  ``S`` is the 1/N covariance of the centred features; ``a = min(b^2, d^2) / d^2`` with
  ``d^2 = ||S - mu I||_F^2 / D`` and ``b^2 = sum_i ||x_i x_i^T - S||_F^2 / (N^2 D)``.
  """
  x = np.asarray(features, np.float64)
  x = x - x.mean(axis=0)
  a, mu = _ledoit_wolf_shrinkage(x, np.linalg.svd(x, compute_uv=False))
  return (1 - a) * (x.T @ x / len(x)) + a * mu * np.eye(x.shape[1]), a


def regularized_h_score(features, labels) -> float:
  """Shrinkage-regularised H-score of Ibrahim, Ponomareva & Mazumder (2022), "Newer is not always
  better: Rethinking transferability metrics, their peculiarities, stability and performance"
  (ICLR 2022 / ECML-PKDD 2022): ``tr(cov_a(f)^+ (1 - a) cov(E[f | y]))`` with ``cov_a`` the
  Ledoit-Wolf shrinkage estimate (``ledoit_wolf``) and ``a`` its shrinkage.

  ``cov(E[f | y])`` lies in the span of the centred features, where ``cov_a`` has eigenvalues
  ``(1 - a) s_i^2 / N + a mu``: the trace is a sum over the SVD's directions, as ``h_score``.
  """
  y, num_classes = _labels(labels)
  f = _features(features, y)
  u, s = _centred_svd(f)
  a, mu = _ledoit_wolf_shrinkage(f - f.mean(axis=0), s)
  eig = s ** 2 / len(f)
  return float(np.sum((1 - a) * eig / ((1 - a) * eig + a * mu) * _between_weights(u, y, num_classes)))


def _coding_rate(z: np.ndarray, eps: float, dim: int) -> float:
  """``1/2 logdet(I_d + d / (n eps^2) Z^T Z)``, from the singular values of ``Z`` (n x d)."""
  # With U: LAPACK then takes its fast path for wide matrices (about 20x faster than uv=False).
  s = np.linalg.svd(z, full_matrices=False)[1]
  return 0.5 * float(np.sum(np.log1p(dim / (len(z) * eps ** 2) * s ** 2)))


def transrate(features, labels, eps: float = 1e-4) -> float:
  """TransRate of Huang, Huang, Niu, Fang, Li, Zhang & Tao (2022), "Frustratingly Easy
  Transferability Estimation" (ICML), Eq. (4)-(6), on centred features ``Z``:

  ``R(Z, eps) - R(Z, eps | Y)`` with ``R(Z, eps) = 1/2 logdet(I + d / (n eps^2) Z^T Z)`` and
  ``R(Z, eps | Y) = sum_y n_y / n * 1/2 logdet(I + d / (n_y eps^2) Z_y^T Z_y)`` (the coding rates
  of Ma et al. 2007). The authors' code simplifies the scaling to ``1 / (n eps)`` and weights the
  classes equally; this is the paper's form.
  """
  y, num_classes = _labels(labels)
  f = _features(features, y)
  z = f - f.mean(axis=0)
  n, d = z.shape
  given = sum(np.sum(y == c) / n * _coding_rate(z[y == c], eps, d) for c in range(num_classes))
  return float(_coding_rate(z, eps, d) - given)


SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "logme": logme,
    "h_score": h_score,
    "regularized_h_score": regularized_h_score,
    "transrate": transrate,
}
SOURCE_SCORES = ("leep", "nce")  # need the source model's own head
