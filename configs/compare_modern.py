r"""The modern recipe (configs/finetune_modern.py) against the quickstart recipe, same epochs.

  # 1. choose the modern recipe's settings on validation, at 64 px (cheap):
  python scripts/compare.py --config configs/compare_modern.py:select --workdir runs/modern_select \
      --config.data.path=../shared/data/cifar10_subset_train.npz
  # 2. the comparison at 224 px: quickstart vs the chosen modern recipe:
  python scripts/compare.py --config configs/compare_modern.py --workdir runs/compare_modern \
      --config.data.path=../shared/data/cifar10_subset_train.npz

Lite0 with ImageNet weights on the CIFAR-10 subset (compare_cifar10's seed-0
split: 200 training images per class, 409 for validation, 1,000 for test), 2
epochs of batch 32 (124 steps) for every recipe: a full fine-tuning step at
224 px costs ~0.2 s per image on a 2-core CPU (BENCHMARKS.md), so this is the
budget that fits. ``quickstart`` is configs/quickstart.py's recipe unchanged
(Adam, head 1e-3 / backbone 1e-4, frozen BatchNorm statistics, no
augmentation); ``modern`` is finetune_modern.OVERRIDES; ``modern_*`` drop one
of its parts. Step 1 picks, by
validation accuracy, which parts the modern recipe keeps (``CHOSEN``); test
accuracy is never looked at for that. Results: BENCHMARKS.md, "Modern
fine-tuning recipe".
"""

import ml_collections

from configs import finetune_modern, quickstart

_MODERN = finetune_modern.OVERRIDES
VARIANTS = dict(
    modern=_MODERN,
    # The parts most likely to hurt at 2,000 images and 124 steps.
    modern_no_mixing=dict(_MODERN, mixup=dict(alpha=0.0, cutmix_alpha=0.0)),
    modern_no_randaugment=dict(_MODERN, randaugment=dict(policy="")),
    modern_no_ema=dict(_MODERN, train=dict(_MODERN["train"], ema_decay=0.0, best_by="raw")),
    # The quickstart's backbone learning rate (a tenth of the head's), under the layer decay.
    modern_backbone_lr_01=dict(_MODERN, param_groups=dict(_MODERN["param_groups"],
                                                          backbone=dict(lr_mult=0.1, bn="batch"))),
    # BatchNorm statistics of 32 augmented images per step instead of ImageNet's (the quickstart's).
    modern_bn_running=dict(_MODERN, param_groups=dict(_MODERN["param_groups"],
                                                      backbone=dict(lr_mult=1.0, bn="running"))),
)
CHOSEN = "modern"


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """``arg``: "" = the 224 px comparison; "select" = every variant at 64 px."""
  if arg not in ("", "select"):
    raise ValueError(f"configs/compare_modern.py:{arg}: use no argument or ':select'.")
  c = quickstart.get_config()
  c.unlock()
  finetune_modern.cifar10_subset(c)
  c.data.image_size = 64 if arg else 224
  strategies = dict(quickstart={}, **(VARIANTS if arg else {CHOSEN: VARIANTS[CHOSEN]}))
  c.compare = dict(
      strategies=strategies,
      images_per_class=(200,),
      num_epochs=(2,),
      evals_per_run=2,
      logreg=False,
      title=f"Lite0 on the CIFAR-10 subset, {c.data.image_size} px: quickstart vs modern recipe",
  )
  c.lock()
  return c
