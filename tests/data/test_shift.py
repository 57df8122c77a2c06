"""The WiSE-FT shift: ImageNet-C Gaussian noise at a fixed severity, seeded."""

import numpy as np
import pytest

from tl_jax import data as data_lib
from tl_jax.data import shift


def test_gaussian_noise_has_imagenet_c_sigma_and_is_seeded():
  gray = np.full((300, 16, 16, 3), 128, np.uint8)  # mid-gray: the noise is never clipped
  measured = []
  for severity in range(1, 6):
    noisy = shift.gaussian_noise(gray, severity, seed=1)
    assert noisy.dtype == np.uint8 and noisy.shape == gray.shape
    measured.append((noisy.astype(np.float64) - 128).std() / 255)
  # Severities 1-3 are within 2.8 sigma of both ends (hardly clipped); 4 and 5 clip, so only grow.
  np.testing.assert_allclose(measured[:3], shift.SIGMAS[:3], rtol=0.02)
  assert measured[2] < measured[3] < measured[4] < shift.SIGMAS[4]
  np.testing.assert_array_equal(shift.gaussian_noise(gray, 3, 1), shift.gaussian_noise(gray, 3, 1))
  assert not np.array_equal(shift.gaussian_noise(gray, 3, 1), shift.gaussian_noise(gray, 3, 2))
  extremes = shift.gaussian_noise(np.array([[[[0, 255, 0]]]], np.uint8), 5)
  assert extremes.min() >= 0 and extremes.max() <= 255  # clipped, not wrapped around
  with pytest.raises(ValueError, match="1..5"):
    shift.gaussian_noise(gray, 6)


def test_shifted_split_keeps_the_labels():
  rng = np.random.default_rng(0)
  split = data_lib.Split(rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), np.arange(10, dtype=np.int32))
  moved = shift.shifted(split)
  np.testing.assert_array_equal(moved.labels, split.labels)
  assert np.abs(moved.images.astype(int) - split.images).mean() > 10  # severity 3: ~0.18 * 255 before clipping
