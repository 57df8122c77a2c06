r"""A scratch baseline that converged: EfficientNet-Lite0 from random init on the CIFAR-10 subset.

  # 1. the trials (200 images per class); pick CHOSEN by their validation accuracy:
  python scripts/compare.py --config configs/scratch_cifar10.py --workdir runs/scratch_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz \
      "--config.compare.images_per_class=(200,)" "--config.compare.num_epochs=(12,)"
  # 2. the chosen recipe at every size (the finished trials are read back):
  python scripts/compare.py --config configs/scratch_cifar10.py --workdir runs/scratch_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz

Same split, resolution (64 px) and architecture as configs/compare_cifar10.py,
whose ``scratch`` row (its transfer recipe: 2 epochs, BatchNorm momentum 0.99)
is not a baseline: its running statistics still describe the random init when
it is evaluated, so it predicts one class. Here:

* ``trial_*``, at 200 images per class: learning rate, BatchNorm momentum,
  augmentation and schedule length (12 epochs, or 24: ``_x2``), one change at a
  time from the first trial (validation accuracy every 2 epochs; the checkpoint
  with the best validation accuracy is also tested).
  The transfer strategies of compare_cifar10 each got one fixed recipe; scratch
  gets these trials, so if anything the comparison favours scratch.
* ``scratch``: the trial with the best validation accuracy (``CHOSEN``, picked by
  hand from the trial rows of BENCHMARKS.md, never from test), at 10 and 50 (3
  seeds each), 200 (the trial's own run) and all (367) images per class, with
  epochs scaled so that every size gets 300-1150 steps.
"""

import ml_collections

from configs import compare_cifar10


def _scratch(lr: float, momentum: float, augment: bool) -> dict:
  aug = dict(horizontal_flip=True, width_shift=4 / 32, height_shift=4 / 32) if augment else {}
  return dict(init=dict(pretrained=False), model=dict(bn_momentum=momentum), augment=aug,
              optim=dict(name="adamw", lr=lr, warmup_steps=60, kwargs=dict(weight_decay=0.05)),
              param_groups=dict(preset=dict(name="scratch"), backbone=dict(lr_mult=1.0, bn="batch")))


TRIALS = {
    "trial_lr3e-3_m09_aug": _scratch(3e-3, 0.9, True),
    "trial_lr1e-3_m09_aug": _scratch(1e-3, 0.9, True),
    "trial_lr3e-3_m09_noaug": _scratch(3e-3, 0.9, False),
    "trial_lr3e-3_m099_aug": _scratch(3e-3, 0.99, True),  # the pretrained weights' own momentum
    "trial_lr3e-3_m09_aug_x2": dict(_scratch(3e-3, 0.9, True), epochs_mult=2),  # twice the schedule
}
CHOSEN = "trial_lr3e-3_m09_aug"


def get_config() -> ml_collections.ConfigDict:
  c = compare_cifar10.get_config()
  c.unlock()
  c.train.update(dict(keep_checkpoints=1, cache_features=False))
  c.compare = dict(
      strategies=dict({k: dict(v, images_per_class=(200,)) for k, v in TRIALS.items()},
                      scratch=dict(TRIALS[CHOSEN], images_per_class=(10, 50, 200, 0))),
      images_per_class=(10, 50, 200, 0),
      num_epochs=(100, 20, 12, 10),  # 300, 300, 744 and 1150 steps of 32
      evals_per_run=6,
      seeds=(0, 1, 2),
      seeds_up_to=50,
      logreg=False,
      title="EfficientNet-Lite0 from scratch on the CIFAR-10 subset (64 px)",
  )
  c.lock()
  return c
