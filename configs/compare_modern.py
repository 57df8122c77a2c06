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
augmentation). Step 1 starts from a candidate (the toolkit's usual settings,
BatchNorm on batch statistics) and changes one part per row; the row with the
best validation accuracy (``CHOSEN``; test accuracy is never looked at) is
finetune_modern.OVERRIDES, the ``modern`` row of step 2. Results: BENCHMARKS.md, "Modern
fine-tuning recipe".
"""

import ml_collections

from configs import finetune_modern, quickstart

# The candidate the selection started from: the toolkit's usual settings, BatchNorm on batch
# statistics; each candidate_* row changes one part. finetune_modern.OVERRIDES is the winner.
_CANDIDATE = dict(finetune_modern.OVERRIDES,
                  param_groups=dict(finetune_modern.OVERRIDES["param_groups"],
                                    backbone=dict(lr_mult=1.0, bn="batch")))
VARIANTS = dict(
    candidate=_CANDIDATE,
    # The parts most likely to hurt at 2,000 images and 124 steps.
    candidate_no_mixing=dict(_CANDIDATE, mixup=dict(alpha=0.0, cutmix_alpha=0.0)),
    candidate_no_randaugment=dict(_CANDIDATE, randaugment=dict(policy="")),
    candidate_no_ema=dict(_CANDIDATE, train=dict(_CANDIDATE["train"], ema_decay=0.0, best_by="raw")),
    # The quickstart's backbone learning rate (a tenth of the head's), under the layer decay.
    candidate_backbone_lr_01=dict(_CANDIDATE, param_groups=dict(_CANDIDATE["param_groups"],
                                                                backbone=dict(lr_mult=0.1, bn="batch"))),
    # ImageNet's BatchNorm statistics instead of those of 32 augmented images (the quickstart's).
    candidate_bn_running=finetune_modern.OVERRIDES,
)
CHOSEN = "candidate_bn_running"  # the best validation accuracy of the select rows


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """``arg``: "" = the 224 px comparison; "select" = every variant at 64 px."""
  if arg not in ("", "select"):
    raise ValueError(f"configs/compare_modern.py:{arg}: use no argument or ':select'.")
  c = quickstart.get_config()
  c.unlock()
  finetune_modern.cifar10_subset(c)
  c.data.image_size = 64 if arg else 224
  strategies = dict(quickstart={}, **(VARIANTS if arg else {"modern": VARIANTS[CHOSEN]}))
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
