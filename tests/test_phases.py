"""Mask schedules: a phase change keeps params, statistics and the optimizer state of groups
that stay trainable, and every phase compiles its step once."""

import jax
import numpy as np
import pytest

from tl_jax import partition
from tl_jax.evaluate import evaluation
from tl_jax.freezing import optim, strategies
from tl_jax.train import steps, trainer, workdir as workdir_lib

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _lp_ft(cfg):
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.param_groups = dict(preset=dict(name="linear_probe"), head=dict(lr_mult=1.0),
                          backbone=dict(lr_mult=0.1, bn="running"))
  cfg.phases = ((0, {}), (2, dict(preset=dict(name="top_k_stages", k=1), head=dict(lr_mult=0.1))))
  return cfg


def test_phase_change_carries_optimizer_state(quickstart_config, random_batch):
  cfg = _lp_ft(quickstart_config)
  assert [strategies.phase_at(cfg, s) for s in range(4)] == [0, 0, 1, 1]
  state, _ = trainer.create_state(cfg, 10, 10)
  step = jax.jit(steps.train_step)
  for i in range(2):
    state, _ = step(state, random_batch(seed=i), jax.random.key(0))
  old = jax.device_get(state)
  new, groups = trainer.next_phase(cfg, state, 10, 10, 1)
  assert groups.settings["head"].lr_mult == 0.1 and groups.trainable("backbone/stage7/block1/expand_conv/kernel")
  assert int(new.step) == 2
  for a, b in ((old.params, new.params), (old.batch_stats, new.batch_stats)):
    jax.tree.map(np.testing.assert_array_equal, a, jax.device_get(b))
  old_head = old.opt_state[3].inner_states["head"].inner_state[0]  # slot 3 of the chain: the groups
  new_opt = jax.device_get(new.opt_state[3].inner_states)
  # Parameters trained from phase 1 on are their own optimizer group: fresh moments and count.
  new_head, new_backbone = new_opt["head"].inner_state[0], new_opt["backbone@1"].inner_state[0]
  assert int(new_head.count) == 2 and int(new_backbone.count) == 0
  assert int(optim.run_count(new.opt_state)) == 2  # the run schedule goes on from the run's step
  jax.tree.map(np.testing.assert_array_equal, old_head.mu["head"], new_head.mu["head"])
  assert np.any(new_head.mu["head"]["kernel"] != 0)
  assert all(not np.any(x) for x in jax.tree.leaves(new_backbone.mu))  # newly trained: fresh moments
  # Real steps in the new phase move stage 7 but not stage 6.
  after = jax.device_get(jax.jit(steps.train_step)(new, random_batch(seed=5), jax.random.key(0))[0].params)
  p0, p1 = partition.flatten(old.params), partition.flatten(after)
  assert not np.array_equal(p0["backbone/stage7/block1/expand_conv/kernel"],
                            p1["backbone/stage7/block1/expand_conv/kernel"])
  assert np.array_equal(p0["backbone/stage6/block1/expand_conv/kernel"],
                        p1["backbone/stage6/block1/expand_conv/kernel"])


def test_gradual_unfreezing_in_the_trainer_compiles_once_per_phase(quickstart_config, tmp_path):
  cfg = _lp_ft(quickstart_config)
  cfg.data.train_per_class = 8  # 80 images, 5 steps of 16
  cfg.train.batch_size = 16
  cfg.train.num_epochs = 3
  cfg.optim.lr = 1e-2
  cfg.phases = ((0, {}), (5, dict(preset=dict(name="top_k_stages", k=1))),
                (10, dict(preset=dict(name="top_k_stages", k=2))))
  summary = trainer.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert summary["train_step_compiles"] == [1, 1, 1]
  assert summary["final_test_accuracy"] > 0.2  # chance is 0.1
  # The final checkpoint belongs to phase 3; the evaluator rebuilds that structure.
  report = evaluation.evaluate_checkpoint(str(tmp_path / "run"), "latest", "test")
  assert report["accuracy"] == summary["final_test_accuracy"]
  # The logged learning rate is the run schedule's at the record's last step, in every phase.
  schedule = optim.schedule(cfg.optim, 15)
  for record in workdir_lib.read_metrics(str(tmp_path / "run")):
    assert record["lr"] == float(schedule(record["step"] - 1))
