r"""Linear probe on cached features: ImageNet EfficientNet-Lite0 on scikit-learn's digits.

  python scripts/train.py --config configs/linear_probe_digits.py --workdir runs/linear_probe_digits

The quickstart's data (64 px) with the ``linear_probe`` preset: the backbone is
frozen with running BatchNorm statistics and there is no augmentation, so the
trainer computes its features once (``feature_cache``) and the 10 epochs train
the head on them. ``metrics.jsonl`` records each epoch's wall time
(``epoch_s``, evaluation and checkpoint included; the first includes the
feature extraction): see BENCHMARKS.md for the measured figures.
"""

import importlib.util
import os


def get_config():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.py")
  spec = importlib.util.spec_from_file_location("quickstart", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.unlock()
  c.param_groups = dict(preset=dict(name="linear_probe"), rules=())
  c.optim.lr = 1e-2  # the head alone, on fixed features: a larger step is safe
  c.train.num_epochs = 10
  c.lock()
  return c
