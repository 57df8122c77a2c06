"""Every registry model under every BatchNorm mode: the plan, the model's frozen-BatchNorm set and
the optimizer are built for each (the class of ``keras_inception_v3``'s ``scale=False`` KeyError).

The default run reads each model's paths from its snapshot (tests/snapshots, checked against the
model by tests/test_models.py); the slow set creates the real state and takes a train step.
"""

import pathlib

import jax
import ml_collections
import numpy as np
import pytest

from tl_jax import models, partition
from tl_jax.freezing import optim
from tl_jax.freezing.plan import Plan
from tl_jax.train import steps, trainer

SNAPSHOTS = pathlib.Path(__file__).parent / "snapshots"
MODES = ("batch", "running", "train_affine")


def _variables(name):
  """Scalar stand-ins at every parameter and statistics path of ``name`` (from its snapshot)."""
  flat = {p: np.zeros((1,) * (2 if p.endswith("kernel") else 1), np.float32)
          for p in (SNAPSHOTS / f"{name}_paths.txt").read_text().split()}
  tree = partition.unflatten(flat)
  return {"params": tree["params"], "batch_stats": tree.get("batch_stats", {})}


def _configs(mode):
  """A frozen backbone and a trained one, both with BatchNorm ``mode``."""
  return {"frozen": dict(preset=dict(name="linear_probe"), frozen=dict(bn=mode)),
          "trained": dict(preset=dict(name="full"), backbone=dict(bn=mode))}


@pytest.mark.parametrize("name", models.names())
def test_plan_and_optimizer_for_every_bn_mode(name):
  variables = _variables(name)
  bn_layers = {p.rsplit("/", 1)[0] for p in partition.flatten(variables["batch_stats"])}
  params = partition.flatten(variables["params"])
  for mode in MODES:
    for which, pg in _configs(mode).items():
      config = ml_collections.ConfigDict({"param_groups": pg})
      plan = Plan.from_config(config, variables)
      groups = plan.groups[0]
      frozen_bn = plan.frozen_bn(0)
      expected_running = mode in ("running", "train_affine")
      assert frozen_bn == (bn_layers if expected_running else frozenset()), (name, mode, which)
      # train_affine trains every norm's scale/bias (those it has) even in the frozen group.
      if mode == "train_affine" and which == "frozen":
        norms = bn_layers | {p.rsplit("/", 1)[0] for p in params if p.endswith("/scale")}
        affine = {p for p in params if p.rsplit("/", 1)[0] in norms and p.rsplit("/", 1)[1] in ("scale", "bias")}
        assert all(groups.trainable(p) for p in affine) and (affine or not norms)
        tx = optim.make_optimizer(dict(name="adam", lr=1e-3), groups, 10)
        jax.eval_shape(tx.init, variables["params"])


def test_keras_inception_v3_trains_and_restores_with_frozen_and_trained_bn(tmp_path):
  """The reported case: Keras' Inception BatchNorm has no scale; create_state raised KeyError."""
  from configs import quickstart

  for mode in ("running", "batch"):
    cfg = quickstart.get_config()
    cfg.unlock()
    cfg.model.name, cfg.data.image_size, cfg.init.pretrained = "keras_inception_v3", 75, False
    cfg.param_groups = dict(preset=dict(name="linear_probe"), frozen=dict(bn=mode))
    state, _ = trainer.create_state(cfg, 3, 2)
    batch = {"image": np.zeros((2, 75, 75, 3), np.uint8), "label": np.array([0, 2], np.int32)}
    before = jax.device_get(state.batch_stats)
    state, m = jax.jit(steps.train_step)(state, batch, jax.random.key(0))
    assert np.isfinite(float(m["loss"]))
    moved = any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before),
                                                          jax.tree.leaves(jax.device_get(state.batch_stats))))
    assert moved == (mode == "batch")
    # The restore target of such a run builds too.
    trainer.abstract_state(cfg, 3, 2, 0)


@pytest.mark.slow  # every model's train step compiles: hours on 2 cores
@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("mode", MODES)
def test_every_model_steps_under_every_bn_mode(name, mode):
  from configs import quickstart

  cfg = quickstart.get_config()
  cfg.unlock()
  size = 75 if "inception" in name or "xception" in name else 32  # Keras' smallest input for those
  cfg.model.name, cfg.data.image_size, cfg.init.pretrained = name, size, False
  cfg.param_groups = dict(preset=dict(name="top_k_stages", k=1), frozen=dict(bn=mode), backbone=dict(bn=mode))
  state, _ = trainer.create_state(cfg, 3, 2)
  batch = {"image": np.zeros((2, size, size, 3), np.uint8), "label": np.array([0, 2], np.int32)}
  state, m = jax.jit(steps.train_step)(state, batch, jax.random.key(0))
  assert np.isfinite(float(m["loss"])) and int(state.step) == 1
