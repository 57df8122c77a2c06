r"""Do the transferability scores rank cut points as the probe does? Lite0/1/2, every stage.

  python scripts/rank_study.py stages --dataset digits --workdir runs/rank_stages_digits
  python scripts/rank_study.py stages --dataset cifar10 --workdir runs/rank_stages_cifar10

Issue 28 item 4(a) and (b): ``configs/probe_stages.py``'s per-stage probe (224 px, the Kornblith
et al. protocol, all training images) for the three Lites, on digits or on the CIFAR-10 subset
(``configs/probe_stages_cifar10.py``'s split); the scores are computed on the same cached training
features. The same probe sweep, run by ``scripts/compare.py`` with this config, shares the cache
and the results.
"""

import ml_collections

from configs import probe_digits, probe_stages, probe_stages_cifar10


def get_config(dataset: str = "digits") -> ml_collections.ConfigDict:
  """``dataset``: digits or cifar10."""
  if dataset not in ("digits", "cifar10"):
    raise ValueError(f"configs/rank_stages.py:<dataset> takes digits or cifar10, got {dataset!r}.")
  c = probe_stages.get_config() if dataset == "digits" else probe_stages_cifar10.get_config()
  c.unlock()
  c.probe.models = tuple(probe_digits.LITE_TOP1)
  c.probe.images_per_class = (0,)
  c.probe.title = f"Lite0/1/2 linear probe per stage, {dataset} (224 px)"
  c.lock()
  return c
