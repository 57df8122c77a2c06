r"""Transfer vs. scratch on the 5,085-image CIFAR-10 subset (EfficientNet-Lite0, ImageNet weights).

  python scripts/compare.py --config configs/compare_cifar10.py --workdir runs/compare_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz

Split (seed 0): 1,000 images held out for test (stratified), 10% of the rest
for validation, and 10, 50 or 200 training images per class (200 = the "all"
setting of 2,000 images); 3 seeds at 10 and 50 per class. Strategies as in
compare_digits.strategies() but scratch (configs/scratch_cifar10.py is that baseline), at
64 px (the 32 px images upsampled: fine-tuning at 224 px does not fit the
2-core CPU budget), plus the linear probe at 224 px on cached features, checked
against scikit-learn's LogisticRegression on the same features. Results and
wall times: BENCHMARKS.md, "Transfer vs. scratch (CIFAR-10 subset)"; expected
final test accuracy at 200 images per class: ~81% full fine-tuning, ~89% the
224 px linear probe.
"""

import ml_collections

from configs import compare_digits as digits


def get_config() -> ml_collections.ConfigDict:
  c = digits.get_config()
  c.data.update(dict(name="npz", path="../shared/data/cifar10_subset_train.npz", image_size=64,
                     test_fraction=1000 / 5085, val_fraction=0.1))
  c.train.batch_size = 32
  strategies = digits.strategies()
  # Scratch with this budget (60-124 steps, BatchNorm momentum 0.99) predicts one class: the
  # converged scratch baseline is configs/scratch_cifar10.py (recipe chosen on validation).
  del strategies["scratch"]
  # Its 10/class run shows the cached probe's cost; 200/class is the LogisticRegression check.
  probe224 = dict(strategies["linear_probe"], data=dict(image_size=224), images_per_class=(10, 200))
  c.compare = dict(
      strategies=dict(linear_probe_224px=probe224, **strategies),
      images_per_class=(10, 50, 200),
      num_epochs=(20, 4, 2),  # 60, 60 and 124 steps of 32
      evals_per_run=1,
      seeds=(0, 1, 2),  # at 10 and 50 per class (seed: init of the head, data order, augmentation)
      seeds_up_to=50,
      logreg=True,
      title="EfficientNet-Lite0 on the CIFAR-10 subset (64 px; probe also at 224 px)",
  )
  return c
