"""How sure is an accuracy, and is A really better than B? Intervals and paired tests, numpy/scipy.

- ``wilson``: the Wilson score interval of a binomial proportion (Wilson 1927), the interval for one
  accuracy on ``n`` test images; unlike the normal (Wald) interval it stays inside [0, 1] and keeps
  its coverage near 0 and 1.
- ``mcnemar_exact``: McNemar's exact test of two classifiers on the same test images: a two-sided
  exact binomial test, p = 1/2, on the discordant pairs (the images exactly one of them gets right).
- ``paired_bootstrap``: the percentile bootstrap interval of the accuracy difference A - B,
  resampling test images (pairs stay together).
- ``seed_spread``: mean and sample standard deviation of a figure across seeds, reported beside
  (never merged into) the per-run intervals over test images.
"""

import numpy as np
from scipy import stats


def _z(confidence: float) -> float:
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
  """Wilson score interval of ``correct / n``.

  Args:
    correct: number of correct predictions, ``0 <= correct <= n``.
    n: number of test images, ``> 0``.
    confidence: two-sided coverage, 0.95 for a 95% interval.

  Returns:
    ``(low, high)``, within [0, 1].
  """
  if n <= 0:
    raise ValueError(f"the Wilson interval needs n > 0 test images, got n={n}")
  if not 0 <= correct <= n:
    raise ValueError(f"correct must be in [0, n={n}], got {correct}")
  z = _z(confidence)
  p = correct / n
  denom = 1.0 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  low, high = float(centre - half), float(centre + half)
  # On paper the bound is exactly 0 at p = 0 and 1 at p = 1; rounding leaves an ulp.
  return (0.0 if correct == 0 else max(0.0, low)), (1.0 if correct == n else min(1.0, high))


def _paired(a_correct, b_correct) -> tuple[np.ndarray, np.ndarray]:
  a = np.asarray(a_correct).astype(bool).ravel()
  b = np.asarray(b_correct).astype(bool).ravel()
  if a.shape != b.shape:
    raise ValueError(f"paired predictions must cover the same test images: {a.size} vs {b.size}")
  if a.size == 0:
    raise ValueError("paired predictions are empty")
  return a, b


def _fractions(correct) -> np.ndarray:
  c = np.asarray(correct, np.float64).ravel()
  if c.size and (c.min() < 0 or c.max() > 1):
    raise ValueError("per-image correctness must be booleans or fractions of seeds in [0, 1]")
  return c


def mcnemar_exact(a_correct, b_correct) -> float:
  """McNemar's exact test (two-sided) that A and B have the same accuracy on these test images.

  Only the discordant pairs carry information: ``n01`` images B alone gets right, ``n10`` A alone.
  Under the null each discordant image goes either way with probability 1/2, so the p-value is the
  two-sided exact binomial test of ``n10`` out of ``n01 + n10`` (``min(1, 2 * P[X <= min])``).

  Args:
    a_correct, b_correct: boolean arrays, per test image, whether A / B predicted it right.

  Returns:
    The p-value; 1.0 when there are no discordant pairs.
  """
  a, b = _paired(a_correct, b_correct)
  n10 = int(np.sum(a & ~b))
  n01 = int(np.sum(~a & b))
  if n10 + n01 == 0:
    return 1.0
  return float(min(1.0, 2.0 * stats.binom.cdf(min(n10, n01), n10 + n01, 0.5)))


def paired_bootstrap(a_correct, b_correct, n: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> tuple[float, float, float]:
  """Percentile bootstrap of the accuracy difference A - B over test images.

  Each of ``n`` replicates draws the test images with replacement (one index set for both models,
  so the pairing is kept) and takes the difference of the two accuracies.

  Args:
    a_correct, b_correct: per test image, whether A / B predicted it right (booleans), or the
      fraction of A's / B's seeds that did (the seed-averaged difference over the same images).
    n: number of bootstrap replicates.
    seed: seed of the resampling (the same seed gives the same interval).
    confidence: two-sided coverage of the interval.

  Returns:
    ``(difference, low, high)``: the observed accuracy difference and its percentile interval.
    An interval that contains 0 means A and B are not separated.
  """
  a, b = _fractions(a_correct), _fractions(b_correct)
  _paired(a, b)  # same shape, not empty
  if n <= 0:
    raise ValueError(f"paired_bootstrap needs n > 0 replicates, got {n}")
  _z(confidence)
  diff = a - b
  rng = np.random.default_rng(seed)
  replicates = np.empty(n)
  # Chunks keep the index array small on large test sets.
  chunk = max(1, 2_000_000 // diff.size)
  for start in range(0, n, chunk):
    stop = min(n, start + chunk)
    idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
    replicates[start:stop] = diff[idx].mean(axis=1)
  tail = (1.0 - confidence) / 2.0
  low, high = np.quantile(replicates, [tail, 1.0 - tail])
  return float(diff.mean()), float(low), float(high)


def paired_table(runs: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
  """Every pair of ``runs`` (``{name: (labels, correct)}``, per test image) tested on the same images
  (equal labels): ``{a, b, a_accuracy, b_accuracy, difference, difference_low, difference_high,
  mcnemar_p, separated, test_images}`` with A - B's paired-bootstrap 95% interval and McNemar's p.
  ``correct`` may be the fraction of several seeds right per image (seeds pooled): the interval is
  then that of the seed-averaged difference, and ``mcnemar_p`` NaN (McNemar needs one run each)."""
  out, names = [], list(runs)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      (labels_a, ca), (labels_b, cb) = runs[a], runs[b]
      if np.shape(labels_a) != np.shape(labels_b) or not np.array_equal(labels_a, labels_b):
        continue  # not the same test images
      diff, low, high = paired_bootstrap(ca, cb)
      out.append({"a": a, "b": b, "a_accuracy": float(np.mean(ca)), "b_accuracy": float(np.mean(cb)),
                  "difference": diff, "difference_low": low, "difference_high": high,
                  "mcnemar_p": (mcnemar_exact(ca, cb) if _is_binary(ca) and _is_binary(cb)
                                else float("nan")), "separated": bool(low > 0 or high < 0),
                  "test_images": int(np.size(ca))})
  return out


def _is_binary(correct) -> bool:
  c = np.asarray(correct)
  return c.dtype == bool or bool(np.all((c == 0) | (c == 1)))


def seed_spread(values) -> tuple[float, float]:
  """Mean and sample standard deviation (``ddof=1``) of one figure across seeds.

  Returns:
    ``(mean, std)``; ``std`` is NaN for a single seed (one run says nothing about the spread).
  """
  v = np.asarray(values, np.float64).ravel()
  if v.size == 0:
    raise ValueError("seed_spread needs at least one value")
  std = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
  return float(v.mean()), std


def wilson_of_accuracy(accuracy: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
  """The Wilson interval of an accuracy measured on ``n`` test images (its count of correct rounded)."""
  return wilson(int(round(accuracy * n)), n, confidence)


def error_bar(mean: float, std: float | None = None, seeds: int = 1,
              test_images: int | None = None) -> float | tuple[float, float]:
  """A plotted accuracy's bar, as ``accuracy_cell`` writes its cell: ±``std`` over several seeds; a
  single run's 95% Wilson interval over ``test_images`` as ``(low, high)``; else 0 (nothing known)."""
  if seeds > 1 and std is not None:
    return float(std)
  if test_images:
    return wilson_of_accuracy(mean, int(test_images))
  return 0.0


def accuracy_cell(mean: float, std: float | None = None, test_images: int | None = None, unit: str = "%") -> str:
  """A table cell: ``81.0%``, or ``52.3 ± 1.2%`` with a seed ``std``; with ``test_images``, the 95%
  Wilson interval of the (mean) accuracy after it: ``81.0% [78.4, 83.3]``. ``unit=""`` for tables
  whose header says "%"."""
  cell = f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "") + unit
  if test_images:
    low, high = wilson_of_accuracy(mean, test_images)
    cell += f" [{100 * low:.1f}, {100 * high:.1f}]"
  return cell
