"""A documented distribution shift of a split: ImageNet-C's Gaussian noise at a fixed severity.

Hendrycks & Dietterich (ICLR 2019), ``gaussian_noise``: pixels scaled to [0, 1], noise of standard
deviation ``SIGMAS[severity - 1]`` added, clipped back. Seeded, so every evaluation of a run sees
the same corrupted images; applied to the split's evaluation images (their crop at the run's size).
Used by WiSE-FT (``tl_jax.evaluate.wise_ft``) to show robustness beside in-distribution accuracy.
"""

import numpy as np

SIGMAS = (0.08, 0.12, 0.18, 0.26, 0.38)  # ImageNet-C gaussian_noise, severities 1..5
SEVERITY = 3  # the default shift: noticeable, far from destroying the images
SHIFTED = "test_shifted"  # the split's name in reports


def gaussian_noise(images: np.ndarray, severity: int = SEVERITY, seed: int = 0) -> np.ndarray:
  """uint8 ``images`` with ImageNet-C Gaussian noise of ``severity`` (1..5), as uint8."""
  if not 1 <= severity <= len(SIGMAS):
    raise ValueError(f"severity {severity}: use 1..{len(SIGMAS)} (ImageNet-C's scale).")
  rng = np.random.default_rng(seed)
  out = np.empty(images.shape, np.uint8)
  for i in range(0, len(images), 256):  # float32 one block at a time, not the whole split
    x = np.asarray(images[i:i + 256], np.float32) / 255.0
    x += rng.normal(0.0, SIGMAS[severity - 1], x.shape).astype(np.float32)
    out[i:i + 256] = np.round(np.clip(x, 0.0, 1.0) * 255.0)
  return out


def shifted(split, severity: int = SEVERITY, seed: int = 0):
  """A copy of ``split`` (a ``data.Split``) whose images carry :func:`gaussian_noise`."""
  return type(split)(gaussian_noise(np.asarray(split.images), severity, seed), split.labels)
