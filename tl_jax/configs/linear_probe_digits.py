r"""Linear probe on cached features: ImageNet EfficientNet-Lite0 on scikit-learn's digits.

  python scripts/train.py --config configs/linear_probe_digits.py --workdir runs/linear_probe_digits
  tl-jax train --config linear_probe_digits --workdir runs/linear_probe_digits

The quickstart's data (64 px) with the ``linear_probe`` preset: the backbone is
frozen with running BatchNorm statistics and there is no augmentation, so the
trainer computes its features once (``feature_cache``) and the 10 epochs train
the head on them. ``metrics.jsonl`` records each epoch's wall time
(``epoch_s``, evaluation and checkpoint included; the first includes the
feature extraction). Expected: later epochs cost < 5% of the first; final test
accuracy ~94% (94.43% measured; BENCHMARKS.md, "Feature cache").
"""

from tl_jax.configs import quickstart


def get_config():
  c = quickstart.get_config()
  c.unlock()
  c.param_groups = dict(preset=dict(name="linear_probe"), rules=())
  c.optim.lr = 1e-2  # the head alone, on fixed features: a larger step is safe
  c.train.num_epochs = 10
  c.lock()
  return c
