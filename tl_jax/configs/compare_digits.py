r"""Transfer vs. scratch on scikit-learn's digits: the CI-sized sweep.

  python scripts/compare.py --config configs/compare_digits.py --workdir runs/compare_digits
  tl-jax compare --config compare_digits --workdir runs/compare_digits

Six strategies (scratch, linear probe, top-2 stages, full, L2-SP, LP-FT) x 10
and 50 images per class at 32 px, a few epochs each: a smoke test of the whole
sweep (minutes on a 2-core CPU), not a benchmark; configs/compare_cifar10.py
is the real experiment. ``strategies()`` is shared with it. Expected: a
results.md table of 6 strategies x 2 sizes in which every pretrained strategy
is far above scratch (~10%, chance); tests/test_feature_cache.py checks the
linear probe beats scratch by > 10 points at 10 images per class.
"""

import ml_collections


def strategies(lr: float = 1e-3) -> dict:
  """Config overrides per strategy (recipes fixed beforehand, none tuned on test)."""
  head_backbone = dict(head=dict(lr_mult=1.0), backbone=dict(lr_mult=0.3, bn="running"))
  return dict(
      # Same architecture, random init; BatchNorm must learn its statistics.
      scratch=dict(init=dict(pretrained=False), optim=dict(lr=lr),
                   param_groups=dict(preset=dict(name="scratch"), backbone=dict(lr_mult=1.0, bn="batch"))),
      # The head only, on cached features: epochs cost ~nothing, so 5x as many, at a larger LR.
      linear_probe=dict(optim=dict(lr=10 * lr), param_groups=dict(preset=dict(name="linear_probe")),
                        epochs_mult=5),
      top2_stages=dict(param_groups=dict(preset=dict(name="top_k_stages", k=2), **head_backbone)),
      full=dict(param_groups=dict(preset=dict(name="full"), **head_backbone)),
      l2sp=dict(param_groups=dict(preset=dict(name="full"), **head_backbone),
                optim=dict(l2sp=dict(alpha=0.1, beta=0.01))),
      # Linear probe for the first half, then everything at a tenth of the LR.
      lp_ft=dict(param_groups=dict(preset=dict(name="linear_probe"), **head_backbone),
                 phases=((0, dict()),
                         (0.5, dict(preset=dict(name="full"), head=dict(lr_mult=0.1),
                                    backbone=dict(lr_mult=0.1))))),
  )


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(name="digits", path="", image_size=32, test_fraction=0.3, val_fraction=0.1, seed=0,
                train_per_class=0)
  c.model = dict(name="efficientnet_lite0", dropout_rate=0.2, drop_path_rate=0.0, layer_impl="auto",
                 bn_momentum=0.0)
  c.init = dict(pretrained=True, path="", source="", dont_load=("head/.*",))
  c.param_groups = dict(rules=(("head/.*", "head"), (".*", "backbone")))  # every strategy overrides
  c.optim = dict(name="adam", lr=1e-3, schedule="cosine", warmup_steps=0, kwargs={},
                 l2sp=dict(alpha=0.0, beta=0.0), weight_decay=0.0)
  c.train = dict(num_epochs=1, batch_size=16, eval_batch_size=128, eval_every_epochs=1,
                 log_every_steps=10, keep_checkpoints=1, label_smoothing=0.0, cache_features=True)
  c.compare = dict(
      strategies=strategies(),
      images_per_class=(10, 50),
      num_epochs=(4, 1),  # per size: ~ the same number of steps
      evals_per_run=1,  # validation + checkpoint: only at the end of each run
      logreg=False,  # also fit scikit-learn's LogisticRegression on linear-probe features
      title="EfficientNet-Lite0 on digits (32 px)",
  )
  c.lock()
  return c
