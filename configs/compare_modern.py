r"""The modern recipe (configs/finetune_modern.py) against the quickstart recipe, same epochs.

  python scripts/compare.py --config configs/compare_modern.py --workdir runs/compare_modern \
      --config.data.path=../shared/data/cifar10_subset_train.npz

Lite0 with ImageNet weights, 224 px, on the CIFAR-10 subset (all 3,677
training images of compare_cifar10's seed-0 split), 5 epochs of batch 32 for
every recipe. ``quickstart`` is configs/quickstart.py's recipe unchanged (Adam,
head 1e-3 / backbone 1e-4, frozen BatchNorm statistics, no augmentation);
``modern`` is finetune_modern.OVERRIDES; ``modern_*`` vary one of its settings,
which were chosen by validation accuracy among these rows (never test).
Results and wall times: BENCHMARKS.md, "Modern fine-tuning recipe".
"""

import ml_collections

from configs import finetune_modern, quickstart


def get_config() -> ml_collections.ConfigDict:
  c = quickstart.get_config()
  c.unlock()
  finetune_modern.cifar10_subset(c)
  c.data.train_per_class = 0
  modern = finetune_modern.OVERRIDES
  c.compare = dict(
      strategies=dict(
          quickstart={},
          modern=modern,
          # The two settings most likely to hurt at 3.7k images and 5 epochs: mixing and RandAugment.
          modern_no_mixing=dict(modern, mixup=dict(alpha=0.0, cutmix_alpha=0.0)),
          modern_no_randaugment=dict(modern, randaugment=dict(policy="")),
      ),
      images_per_class=(0,),
      num_epochs=(5,),
      evals_per_run=5,
      logreg=False,
      title="EfficientNet-Lite0 on the CIFAR-10 subset, 224 px: quickstart vs modern recipe",
  )
  c.lock()
  return c
