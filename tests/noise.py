"""Equivalence tolerances measured from the numerics, not tuned on one CPU.

Two runs that differ only in float32 reduction order (rows in another order, a
batch split over two devices) show how far this machine's rounding moves a
result. A run under test (sharded, multi-process) must land within
``FACTOR`` times that noise. The noise is measured per quantity, relative to its
scale, with a floor of a few float32 ulps so that a leaf whose noise happens to
round to zero does not get a zero bound.
"""

import numpy as np

FACTOR = 20.0
FLOOR = 8 * float(np.finfo(np.float32).eps)  # ~1e-6 of the quantity's scale


def relative_noise(reference, noisy) -> float:
  """max |noisy - reference| / max |reference|, at least FLOOR."""
  reference, noisy = np.asarray(reference, np.float64), np.asarray(noisy, np.float64)
  scale = np.abs(reference).max()
  return max(float(np.abs(noisy - reference).max() / scale) if scale else 0.0, FLOOR)


def bounds(reference: dict, noisy: dict) -> dict[str, float]:
  """Per key: the largest |difference| allowed from ``reference``."""
  return {k: FACTOR * relative_noise(v, noisy[k]) * float(np.abs(np.asarray(v)).max()) for k, v in reference.items()}


def assert_within(got: dict, reference: dict, allowed: dict[str, float]) -> None:
  for k, v in reference.items():
    diff = float(np.abs(np.asarray(got[k], np.float64) - np.asarray(v, np.float64)).max())
    assert diff <= allowed[k], f"{k}: |difference| {diff:.3g} > bound {allowed[k]:.3g}"
