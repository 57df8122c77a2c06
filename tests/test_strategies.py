"""Transfer strategies: presets, BatchNorm modes, per-group LRs and layer decay, on real steps."""

import jax
import numpy as np
import pytest

from tl_jax import partition
from tl_jax.freezing import strategies
from tl_jax.train import steps, trainer


def _config(cfg, param_groups, *, lr=0.1, name="sgd", dropout=0.0):
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.model.dropout_rate = dropout
  cfg.param_groups = param_groups
  cfg.optim.update(dict(name=name, lr=lr, schedule="constant"))
  return cfg




@pytest.fixture(scope="module")
def lite0_paths():
  import jax.numpy as jnp

  from tl_jax import models
  shapes = jax.eval_shape(lambda: models.create("efficientnet_lite0", 10).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8)))
  return list(partition.flatten(shapes["params"]))


def _trained(paths, preset):
  labels = partition.label_paths(paths, strategies.rules({"preset": preset}, paths))
  return {p.split("/")[1] if p.startswith("backbone/") else p.split("/")[0]
          for p, label in labels.items() if label != "frozen"}


def test_presets_expand_to_rules(lite0_paths):
  assert strategies.backbone_units(lite0_paths) == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["top"]
  assert _trained(lite0_paths, dict(name="linear_probe")) == {"head"}
  assert _trained(lite0_paths, dict(name="top_k_stages", k=2)) == {"head", "stage6", "stage7", "top"}
  assert _trained(lite0_paths, dict(name="top_k_stages", k=0)) == {"head"}
  assert _trained(lite0_paths, dict(name="layers", patterns=("backbone/stage3/.*", "backbone/stem/bn/.*"))) == {
      "head", "stage3", "stem"}
  everything = {"head", "stem", "top"} | {f"stage{i}" for i in range(1, 8)}
  assert _trained(lite0_paths, dict(name="full")) == _trained(lite0_paths, dict(name="scratch")) == everything
  with pytest.raises(ValueError, match="k=8 but the backbone has 7 stages"):
    strategies.rules({"preset": dict(name="top_k_stages", k=8)}, lite0_paths)
  with pytest.raises(ValueError, match="Unknown preset 'probe'"):
    strategies.rules({"preset": dict(name="probe")}, lite0_paths)
  with pytest.raises(ValueError, match="exactly one of `rules`"):
    strategies.rules({"preset": dict(name="full"), "rules": ((".*", "x"),)}, lite0_paths)
  with pytest.raises(ValueError, match="got arguments"):
    strategies.rules({"preset": dict(name="full", k=3)}, lite0_paths)


def test_freeze_first_k(lite0_paths):
  everything = {"head", "stem", "top"} | {f"stage{i}" for i in range(1, 8)}
  assert _trained(lite0_paths, dict(name="freeze_first_k", k=0)) == everything
  assert _trained(lite0_paths, dict(name="freeze_first_k", k=1)) == everything - {"stem"}
  assert _trained(lite0_paths, dict(name="freeze_first_k", k=4)) == everything - {"stem", "stage1", "stage2",
                                                                                  "stage3"}
  assert _trained(lite0_paths, dict(name="freeze_first_k", k=8)) == {"head", "top"}
  with pytest.raises(ValueError, match="k=9 but the backbone has 8 units before its top"):
    strategies.rules({"preset": dict(name="freeze_first_k", k=9)}, lite0_paths)
  # stage1 must not match stage10+ nor the other way round: ResNets with many blocks, RegNets.
  paths = [f"backbone/stage{i}/conv/kernel" for i in range(1, 12)] + ["head/kernel"]
  assert _trained(paths, dict(name="freeze_first_k", k=1)) == {"head"} | {f"stage{i}" for i in range(2, 12)}


def _paths(name):
  import jax.numpy as jnp

  from tl_jax import models
  shapes = jax.eval_shape(lambda: models.create(name, 10).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8)))
  return list(partition.flatten(shapes["params"]))


@pytest.mark.parametrize("name, trained, deep", [
    # VGG's original top (fc1, fc2) sits after the last stage: trained with it.
    ("vgg11_fc", {"head", "stage5", "fc1", "fc2"}, "backbone/stage5/conv2/kernel"),
    ("efficientnet_b0", {"head", "stage7", "top"}, "backbone/stage7/block1/se/reduce/kernel"),
])
def test_presets_find_stages_in_every_family(name, trained, deep):
  paths = _paths(name)
  assert _trained(paths, dict(name="top_k_stages", k=1)) == trained
  units = strategies.backbone_units(paths)
  assert strategies.depth(deep, units) == len(trained) - 1  # behind the top units and the head


def test_depth_from_paths(lite0_paths):
  units = strategies.backbone_units(lite0_paths)
  assert [strategies.depth(p, units) for p in ("head/kernel", "backbone/top/conv/kernel",
                                               "backbone/stage7/block1/project_bn/scale",
                                               "backbone/stem/conv/kernel")] == [0, 1, 2, 9]


def test_lr_multipliers_and_layer_decay_scale_real_sgd_updates(quickstart_config, random_batch):
  # Plain SGD: the update of every parameter is -lr * lr_mult * decay**depth * grad.
  cfg = _config(quickstart_config, dict(preset=dict(name="full"), layer_decay=0.5,
                                        backbone=dict(lr_mult=0.2, bn="running")), lr=10.0)
  state, groups = trainer.create_state(cfg, 10, 10)
  step = jax.jit(steps.train_step)
  state = step(state, random_batch(seed=9), jax.random.key(0))[0]  # a non-zero head, so backbone grads
  batch = random_batch()

  def loss(params):  # what train_step differentiates: no dropout, running BatchNorm everywhere
    logits, _ = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, batch["image"])
    return steps.cross_entropy(logits, batch["label"])

  grads = partition.flatten(jax.device_get(jax.jit(jax.grad(loss))(state.params)))
  before = partition.flatten(jax.device_get(state.params))
  after = partition.flatten(jax.device_get(step(state, batch, jax.random.key(0))[0].params))
  expected = {"head/kernel": 1.0, "backbone/top/conv/kernel": 0.2 * 0.5,
              "backbone/stage7/block1/project_conv/kernel": 0.2 * 0.25,
              "backbone/stem/conv/kernel": 0.2 * 0.5 ** 9}
  for path, mult in expected.items():
    assert groups.lr_scale[path] * groups.settings[groups.labels[path]].lr_mult == pytest.approx(mult)
    want = -10.0 * mult * grads[path]
    err = np.linalg.norm((after[path] - before[path]) - want) / np.linalg.norm(want)
    assert err < 1e-2, (path, err)


def test_train_affine_trains_bn_scale_bias_but_not_statistics(quickstart_config, run_steps):
  cfg = _config(quickstart_config, dict(rules=(("head/.*", "head"), (".*", "frozen")),
                                        frozen=dict(bn="train_affine")), name="adam", lr=1e-2)
  state, groups = trainer.create_state(cfg, 10, 10)
  assert groups.settings["frozen_affine"].trainable and not groups.settings["frozen"].trainable
  before, after = run_steps(state, 2)
  p0, p1 = partition.flatten(before.params), partition.flatten(after.params)
  moved = {p for p in p0 if not np.array_equal(p0[p], p1[p])}
  norm_affine = {p for p in p0 if p.rsplit("/", 1)[0] + "/scale" in p0 and p.startswith("backbone/")}
  assert len(norm_affine) == 2 * 49
  assert moved == norm_affine | {"head/kernel", "head/bias"}
  s0, s1 = partition.flatten(before.batch_stats), partition.flatten(after.batch_stats)
  assert all(np.array_equal(s0[p], s1[p]) for p in s0)  # statistics frozen
  # Optimizer state (Adam: 2 moments) only for the head and the BatchNorm affines.
  trainable = sum(p0[p].size for p in norm_affine | {"head/kernel", "head/bias"})
  assert 2 * trainable <= partition.count(after.opt_state) <= 2 * trainable + 16


def test_bad_settings_are_explained(quickstart_config):
  cfg = _config(quickstart_config, dict(preset=dict(name="linear_probe"), head=dict(bn="affine")))
  with pytest.raises(ValueError, match="bn must be one of"):
    trainer.create_state(cfg, 10, 10, pretrained=False)
  cfg.param_groups = dict(preset=dict(name="linear_probe"), top=dict(lr_mult=2.0))
  with pytest.raises(ValueError, match="no rule yields the label 'top'"):
    trainer.create_state(cfg, 10, 10, pretrained=False)
