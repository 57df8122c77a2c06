r"""Evaluation figures (issue 29): calibration, TTA and soups of EfficientNet-Lite0 on the CIFAR subset.

  python scripts/compare.py --config configs/evaluation_cifar10.py --workdir runs/evaluation_cifar10

then `scripts/evaluate.py --workdir runs/evaluation_cifar10/probe_lr1e-2/ipcall` with `--calibrate`
(temperature scaling) and with `--tta flip`.

The CPU budget (2 cores): two linear probes at 224 px on cached features of the whole subset
(1,000 test images, 10% of the rest for validation), at two learning rates; the sweep soups them
(``compare.soup``: uniform and greedy soup beside the better run) and pairs them
(paired.md). WiSE-FT needs a moving backbone (a fine-tune at 224 px: hours here), so it is not in
this budget. Expected: ~89% test accuracy for the better probe (compare_cifar10's 224 px probe).
Figures: BENCHMARKS.md, "Calibration, TTA and soups".
"""

import ml_collections

from configs import compare_cifar10


def get_config() -> ml_collections.ConfigDict:
  c = compare_cifar10.get_config()
  c.data.image_size = 224
  probe = dict(param_groups=dict(preset=dict(name="linear_probe")))
  c.compare = dict(
      strategies={"probe_lr1e-2": dict(probe, optim=dict(lr=1e-2)),
                  "probe_lr1e-3": dict(probe, optim=dict(lr=1e-3))},
      images_per_class=(0,), num_epochs=(10,), evals_per_run=2, soup=True,
      title="EfficientNet-Lite0 linear probes on the CIFAR-10 subset, 224 px",
  )
  return c
