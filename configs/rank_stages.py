r"""Do the transferability scores rank cut points as the probe does? Lite0/1/2, every stage.

``scripts/rank_study.py stages --dataset digits|cifar10 --workdir runs/rank_stages_<dataset>``
runs (or reads back) this probe sweep, then scores the same features; the sweep alone:

  python scripts/compare.py --config configs/rank_stages.py:digits --workdir runs/rank_stages_digits

Issue 28 item 4(a) and (b): ``configs/probe_stages.py``'s per-stage probe (224 px, the Kornblith
et al. protocol, all training images) for the three Lites, on digits or on the CIFAR-10 subset
(``configs/probe_stages_cifar10.py``'s split); the scores are computed on the same cached training
features. The same probe sweep, run by ``scripts/compare.py`` with this config, shares the cache
and the results.
Expected on digits: probe accuracy with all training images 72-97% per cut point (pre_logits
94.8 / 95.0 / 93.7% for Lite0/1/2), and every feature score ranks the 27 cut points with Kendall
tau 0.69-0.79 against that accuracy (BENCHMARKS.md, "Choosing before training").
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
