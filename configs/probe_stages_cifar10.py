r"""A linear probe on the pooled output of every Lite0 stage, CIFAR-10 subset at 224 px.

  python scripts/compare.py --config configs/probe_stages_cifar10.py --workdir runs/probe_stages_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz

configs/probe_stages.py on the split of configs/compare_cifar10.py (Lite0's
features are in the cache of configs/probe_cifar10.py). Expected test
accuracy with all training images (``--config.probe.images_per_class='(0,)'``,
the only rows measured so far): stem 33.7%, stage4 60.2%, stage7 89.7%,
pre_logits 90.0%. Results: BENCHMARKS.md, "Linear probe per stage".
"""

import ml_collections

from configs import probe_cifar10, probe_stages


def get_config() -> ml_collections.ConfigDict:
  c = probe_cifar10.get_config()
  c.unlock()
  c.probe.update({k: v for k, v in probe_stages.get_config().probe.items() if k in ("models", "features", "sklearn")})
  c.probe.title = "Lite0 linear probe per stage, CIFAR-10 subset (224 px)"
  c.lock()
  return c
