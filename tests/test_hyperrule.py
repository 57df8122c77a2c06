"""BiT-HyperRule: the rule's table (Kolesnikov et al. 2020, Sec. 3.3; big_transfer bit_hyperrule.py),
the optax schedule against big_transfer's get_lr, and the config it writes."""

import numpy as np
import pytest

from tl_jax.freezing import hyperrule, optim


@pytest.mark.parametrize("n, hw, precrop, crop, supports, alpha", [
    (1_000, (28, 28), 160, 128, (100, 200, 300, 400, 500), 0.0),  # < 20k, < 96x96 area
    (19_999, (96, 96), 448, 384, (100, 200, 300, 400, 500), 0.0),  # area 96x96 is not below
    (20_000, (95, 97), 160, 128, (500, 3000, 6000, 9000, 10_000), 0.1),
    (50_000, (32, 32), 160, 128, (500, 3000, 6000, 9000, 10_000), 0.1),  # CIFAR-10
    (499_999, (224, 224), 448, 384, (500, 3000, 6000, 9000, 10_000), 0.1),
    (1_281_167, (224, 224), 448, 384, (500, 6000, 12_000, 18_000, 20_000), 0.1),  # ImageNet
])
def test_rule_table(n, hw, precrop, crop, supports, alpha):
  r = hyperrule.rule(n, *hw)
  assert (r.precrop, r.crop, r.supports, r.mixup_alpha, r.steps) == (precrop, crop, supports, alpha,
                                                                     supports[-1])


def test_rule_rejects_empty_dataset():
  with pytest.raises(ValueError, match="positive dataset size"):
    hyperrule.rule(0, 32, 32)


@pytest.mark.parametrize("n", [1_000, 50_000, 1_000_000])
def test_staircase_schedule_is_big_transfers_get_lr(n):
  s = hyperrule.supports(n)
  sched = optim.schedule(dict(lr=hyperrule.BASE_LR, schedule="staircase", warmup_steps=s[0],
                              boundaries=s[1:-1]), s[-1])
  # Every support and its neighbours, and a stride through the rest (each call runs eagerly).
  steps = np.unique(np.concatenate([np.arange(0, s[-1], 37)] + [np.array([b - 1, b, b + 1]) for b in s[:-1]]))
  ours = np.asarray([sched(int(t)) for t in steps])
  theirs = np.asarray([hyperrule.lr(int(t), n) for t in steps])
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-12)  # optax's float32 warm-up
  assert hyperrule.lr(s[-1], n) is None and hyperrule.lr(s[0], n) == hyperrule.BASE_LR
  assert np.isclose(theirs[-1], hyperrule.BASE_LR / 1000)


def test_config_applies_the_rule():
  import importlib.util
  import pathlib
  path = pathlib.Path(__file__).parents[1] / "configs" / "bit_hyperrule.py"
  spec = importlib.util.spec_from_file_location("bit_hyperrule", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("50000,32,32")
  assert c.model.name == "bit_m_r50x1" and c.data.image_size == 128 and c.hyperrule.mixup_alpha == 0.1 == c.mixup.alpha
  assert c.optim.warmup_steps == 500 and tuple(c.optim.boundaries) == (3000, 6000, 9000)
  assert c.train.batch_size == 512 and c.train.num_epochs * 50_000 >= 10_000 * 512
  assert np.allclose(c.augment.crop_scale, (0.64, 0.64)) and c.augment.horizontal_flip
  small = module.get_config("5000,500,500")
  assert small.data.image_size == 384 and small.hyperrule.steps == 500 and small.hyperrule.mixup_alpha == 0
