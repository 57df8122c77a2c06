r"""Kornblith et al. (2019) linear probe: EfficientNet-Lite0/1/2 (ImageNet weights), CIFAR-10 subset, 224 px.

  python scripts/compare.py --config configs/probe_cifar10.py --workdir runs/probe_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz

The split of configs/compare_cifar10.py (seed 0: 1,000 stratified test images,
10% of the rest val, 3,677 train), the 32 px images upsampled to 224 px; the
protocol of configs/probe_digits.py. Expected test accuracy with all 3,677
training images: Lite0 90.0%, Lite1 89.1%, Lite2 86.9% (scikit-learn's: the
same; the 10 and 50/class rows were not run yet).
Results: BENCHMARKS.md, "Linear probe (Kornblith et al. protocol)".
"""

import ml_collections

from configs import probe_digits


def get_config() -> ml_collections.ConfigDict:
  c = probe_digits.get_config()
  c.unlock()
  c.data.update(dict(name="npz", path="../shared/data/cifar10_subset_train.npz",
                     test_fraction=1000 / 5085, val_fraction=0.1))
  c.probe.title = "Linear probe on the CIFAR-10 subset (224 px)"
  c.lock()
  return c
