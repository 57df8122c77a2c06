r"""BiT-HyperRule fine-tuning (Kolesnikov et al., ECCV 2020, Sec. 3.3; big_transfer's
``bit_hyperrule.py``) of BiT-M R50x1 on any dataset: the rule picks resolution, schedule length
and mixup from the number of training examples and their size (``tl_jax.freezing.hyperrule``).

The config argument is ``<train examples>,<height>,<width>`` (default CIFAR-10's 50000,32,32):

  python scripts/train.py --config configs/bit_hyperrule.py:50000,32,32 \
      --config.data.name=tfds --config.data.tfds.name=cifar10 --workdir runs/bit_cifar10
  tl-jax train --config bit_hyperrule:50000,32,32 ...   # the same flags, installed anywhere

  CIFAR-10 (50k examples, 32 px): 128 px crops (resize 160, crop 128), exactly 10,000 steps
  (train.num_steps; whole epochs of the 45k train split would give 103 x 87 = 8,961), batch 512,
  SGD momentum 0.9, lr 0.003 with 500 warm-up steps and /10 at 3k, 6k and 9k. The paper
  reports 97.6% top-1 for BiT-M-R50x1 on CIFAR-10 with this rule (Table 6 of the paper's
  appendix); not reproduced here (no network for the weights; days on a 2-core CPU).

Weights: BiT-M-R50x1.npz from https://storage.googleapis.com/bit_models/ (init.path=...).
Mixup: the rule's alpha (0.1 above 20k examples, else off) goes to ``config.mixup``.
"""

import math

from tl_jax.configs import quickstart
from tl_jax.freezing import hyperrule


def get_config(arg: str = "50000,32,32"):
  n, h, w = (int(v) for v in arg.split(","))
  r = hyperrule.rule(n, h, w)
  c = quickstart.get_config()
  c.unlock()
  c.hyperrule = dict(dataset_size=n, height=h, width=w, precrop=r.precrop, crop=r.crop,
                     steps=r.steps, mixup_alpha=r.mixup_alpha)
  c.model.name, c.model.dropout_rate = "bit_m_r50x1", 0.0
  c.init.source = "big_transfer"
  c.data.image_size = r.crop  # eval: resize to the crop size (big_transfer's eval transform)
  # Training: resize to precrop, random crop to crop == a random (crop/precrop)-side square of the
  # crop-size image resized back; then a horizontal flip.
  side = (r.crop / r.precrop) ** 2
  c.augment.update(random_resized_crop=True, crop_scale=(side, side), crop_ratio=(1.0, 1.0),
                   horizontal_flip=True)
  c.param_groups = dict(rules=((".*", "all"),), all=dict(lr_mult=1.0, bn="batch"))  # no BatchNorm
  c.optim = dict(name="sgd", lr=hyperrule.BASE_LR, schedule="staircase", warmup_steps=r.supports[0],
                 boundaries=r.supports[1:-1], kwargs=dict(momentum=hyperrule.MOMENTUM))
  c.mixup.update(alpha=r.mixup_alpha, prob=1.0)  # alpha 0: off
  c.train.batch_size = hyperrule.BATCH_SIZE
  # The rule's steps exactly: epochs drop each one's remainder and would end short of them.
  c.train.num_steps = r.steps
  # Unused for the length (num_steps sets it); eval_every_epochs still counts in these epochs.
  c.train.num_epochs = max(1, math.ceil(r.steps * hyperrule.BATCH_SIZE / n))
  c.lock()
  return c
