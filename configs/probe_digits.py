r"""Kornblith et al. (2019) linear probe: EfficientNet-Lite0/1/2 (ImageNet weights) on digits at 224 px.

  python scripts/compare.py --config configs/probe_digits.py --workdir runs/probe_digits

Does ImageNet accuracy predict transfer accuracy? Each model's pooled
``pre_logits`` (224 px; the 8x8 digits upsampled), multinomial logistic
regression with an L2 penalty chosen on the validation split from a log-spaced
grid, refit on train+val, scored once on test; scikit-learn's L-BFGS
``LogisticRegression`` runs the same selection as the check. 10 and 50 images
per class: 3 seeds (training subsets; val and test fixed); all: 1.
Expected test accuracy with all 1,132 training images: Lite0 95.9%, Lite1
94.8%, Lite2 93.5% (scikit-learn's: the same); at 10/class 87.8 ± 2.1,
84.7 ± 3.6, 88.7 ± 1.1%. Results: BENCHMARKS.md, "Linear probe (Kornblith
et al. protocol)".
"""

import ml_collections

# Published ImageNet top-1 (%), TF EfficientNet-Lite README
# (github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite).
LITE_TOP1 = {"efficientnet_lite0": 75.1, "efficientnet_lite1": 76.7, "efficientnet_lite2": 77.6}


def probe(**overrides) -> dict:
  """The ``probe`` block shared by the probe configs."""
  return dict(
      models=tuple(LITE_TOP1), top1=dict(LITE_TOP1), features=("pre_logits",),
      images_per_class=(10, 50, 0), seeds=(0, 1, 2),
      l2_grid=dict(lo=1e-6, hi=1e2, num=17),  # penalty per training image, log-spaced
      standardize=True, sklearn=True, sklearn_seeds=1, tol=1e-4, max_iter=500,  # tol: max |gradient|, as sklearn
      cache_dir="runs/feature_cache", batch_size=64, title="",
      folds=0,  # k >= 2: the probe tested by stratified k-fold over all the images (tl_jax.studies.probe_folds)
  ) | overrides


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.data = dict(name="digits", path="", image_size=224, test_fraction=0.3, val_fraction=0.1, seed=0,
                train_per_class=0)
  c.init = dict(path="", source="")  # each model's default pretrained weights
  c.probe = probe(title="Linear probe on digits (224 px)")
  c.lock()
  return c
