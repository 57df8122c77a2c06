"""Divergence guard: a non-finite step is caught on the device, stops the run naming the step, the lr
and the last good checkpoint (nothing non-finite is saved), or is dropped with on_nonfinite=skip_step."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny

from tl_jax.errors import Diverged
from tl_jax.train import checkpoint, guard, steps, trainer


class _Linear(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3, name="head")(x.reshape(len(x), -1).astype(jnp.float32) / 255), {}


def _toy_state(lr):
  model = _Linear()
  params = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3), jnp.uint8))["params"]
  return steps.TrainState.create(apply_fn=model.apply, params=params, batch_stats={}, tx=optax.sgd(lr))


def _batch():
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (4, 4, 4, 3), dtype=np.uint8), "label": np.array([0, 1, 2, 0])}


# The injected inf overflows the float16/bfloat16 casts on purpose.
OVERFLOW = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


@OVERFLOW
@pytest.mark.parametrize("skip", [False, True])
def test_step_flags_nonfinite_and_skip_drops_the_update(skip):
  step = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.key(0), skip_nonfinite=skip))
  state = _toy_state(0.1)
  state, m = step(state, _batch())
  assert int(m["nonfinite"]) == 0 and int(state.step) == 1
  before = jax.device_get(state.params)
  # An update that overflows float32 (lr 1e39 is inf): flagged in the step's metrics.
  bad = state.replace(tx=optax.sgd(1e39), opt_state=optax.sgd(1e39).init(state.params))
  after, m = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.key(0), skip_nonfinite=skip))(bad, _batch())
  assert int(m["nonfinite"]) == 1 and int(after.step) == 2
  finite = all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(after.params)))
  assert finite == skip
  if skip:  # dropped: the params are those before the step
    jax.tree.map(np.testing.assert_array_equal, before, jax.device_get(after.params))


@OVERFLOW
@pytest.mark.parametrize("where", ["small", "large", "bfloat16", "int", "none"])
def test_all_finite_sees_one_bad_value_in_any_leaf(where):
  """Small leaves are checked together as one vector, large ones apart: either way one NaN or
  inf anywhere is seen, in any float dtype; integer leaves (step counts) are not read."""
  trees = [{"bias": np.zeros(7, np.float32), "kernel": np.zeros((300, 300), np.float32)},
           {"scale": np.ones(5, jnp.bfloat16), "count": np.zeros((), np.int32)}]
  if where == "small":
    trees[0]["bias"][3] = np.nan
  if where == "large":
    trees[0]["kernel"][299, 299] = -np.inf
  if where == "bfloat16":
    trees[1]["scale"][0] = np.float32(1e39)  # overflows to inf in the cast
  if where == "int":
    trees[1]["count"] = np.int32(-1)
  expected = where in ("int", "none")
  assert bool(jax.jit(guard.all_finite)(*trees)) == expected
  assert bool(guard.all_finite(*trees, jnp.float32(np.nan))) is False


def test_guard_reads_flags_once_and_names_step_lr_and_checkpoint():
  g = guard.Guard("stop", lambda step: 0.5 * step, lambda: 40)
  window = [{"nonfinite": jnp.asarray(0)} for _ in range(3)]
  g.check(window, 40)  # fine
  window += [{"nonfinite": jnp.asarray(0)}, {"nonfinite": jnp.asarray(1)}]
  with pytest.raises(Diverged, match=r"at step 45 \(lr 22\).*Last good checkpoint: step 40"):
    g.check(window, 40)
  skip = guard.Guard("skip_step", lambda step: 1.0, lambda: None)
  skip.check(window, 0), skip.check(window, 0)  # each flag is counted once
  assert skip.skipped == 1
  with pytest.raises(ValueError, match="on_nonfinite='sometimes'"):
    guard.Guard("sometimes", None, None)


@OVERFLOW
def test_run_turning_nan_midway_stops_and_saves_nothing_nonfinite(tmp_path):
  """A phase with an infinite learning rate from step 7 on: NaN exactly at step 7 of 12."""
  npz = tiny.write_npz(tmp_path / "digits.npz")
  cfg = tiny.config(npz, phases=((0, {}), (6, {"head": {"lr_mult": 1e40}})))
  workdir = str(tmp_path / "run")
  with pytest.raises(Diverged, match=r"at step 7 \(lr inf\).*Last good checkpoint: step 4"):
    trainer.train_and_evaluate(cfg, workdir)
  ckpts = checkpoint.Checkpoints(workdir)
  assert ckpts.steps() == [4]  # epoch 1 only: no state after step 7 was saved
  state = ckpts.restore(4, trainer.abstract_state(cfg, 10, 12, 0))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state)) if x.dtype.kind == "f")
  assert [r["step"] for r in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))] == [4]


@pytest.mark.slow
@OVERFLOW
def test_skip_step_drops_the_nonfinite_updates_and_finishes(tmp_path):
  npz = tiny.write_npz(tmp_path / "digits.npz")
  cfg = tiny.config(npz, phases=((0, {}), (6, {"head": {"lr_mult": 1e40}})), **{"train.on_nonfinite": "skip_step"})
  summary = trainer.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert summary["skipped_steps"] == 6 and np.isfinite(summary["final_test_accuracy"])
  ckpts = checkpoint.Checkpoints(str(tmp_path / "run"))
  params = [jax.device_get(ckpts.restore(s, trainer.abstract_state(cfg, 10, 12, trainer.plan_of(cfg, 10).phase_of_checkpoint(s))).params)
            for s in (8, 12)]
  jax.tree.map(np.testing.assert_array_equal, *params)  # nothing changed after step 6
