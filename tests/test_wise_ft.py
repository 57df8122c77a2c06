"""WiSE-FT: interpolation by hand on toy trees; a tiny run's start rebuilt exactly."""

import json
import os

import jax
import numpy as np
import pytest

from tl_jax.evaluate import wise_ft

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def test_interpolate_keeps_the_head():
  start = {"backbone": {"w": np.zeros(3, np.float32), "b": np.ones(2, np.float32)},
           "head": {"kernel": np.zeros(2, np.float32)}}
  fine = {"backbone": {"w": np.full(3, 4.0, np.float32), "b": np.full(2, 3.0, np.float32)},
          "head": {"kernel": np.full(2, 7.0, np.float32)}}
  mixed = wise_ft.interpolate(start, fine, 0.25)
  np.testing.assert_allclose(mixed["backbone"]["w"], 1.0)
  np.testing.assert_allclose(mixed["backbone"]["b"], 0.75 * 1 + 0.25 * 3)
  np.testing.assert_allclose(mixed["head"]["kernel"], 7.0)
  for a in (0.0, 1.0):
    np.testing.assert_allclose(wise_ft.interpolate(start, fine, a)["backbone"]["w"], 4.0 * a)
  with pytest.raises(ValueError, match="not the same model"):
    wise_ft.interpolate({"backbone": start["backbone"]}, fine, 0.5)


@pytest.fixture
def tiny_run(tiny_run_copy):
  """A copy of the session's tiny run (conftest), written into here: its workdir."""
  return tiny_run_copy[1]


def test_wise_ft_on_a_linear_probe(tiny_run):
  from tl_jax.evaluate import evaluation
  from tl_jax.train import state as state_lib
  run = evaluation.restore(tiny_run, "best")
  start, _ = state_lib.create_state(run.config, len(run.class_names), 1)
  # a linear probe never moves its backbone: the rebuilt start is the checkpoint's backbone
  for s, f in zip(jax.tree.leaves(start.params["backbone"]), jax.tree.leaves(run.state.params["backbone"])):
    np.testing.assert_array_equal(np.asarray(s), np.asarray(f))
  r = wise_ft.wise_ft(tiny_run, "best", alphas=(0.0, 0.5, 1.0))
  test = evaluation.evaluate_checkpoint(tiny_run, "best", "test")
  assert r["test"]["accuracy"] == [test["accuracy"]] * 3  # so every alpha is the checkpoint
  assert r["best_alpha"] == 1.0
  # The shifted copy of the test split (Gaussian noise, severity 3) beside it, one figure per alpha.
  shifted = r["test_shifted"]["accuracy"]
  assert len(shifted) == 3 and len(set(shifted)) == 1 and 0 <= shifted[0] <= 1
  assert r["test_at_best"]["test_shifted"] == shifted[0]
  # The chosen alpha against alpha 1, image by image: the same predictions, so no difference.
  same = r["chosen_vs_finetuned"]["test"]
  assert same["difference"] == 0 and same["mcnemar_p"] == 1.0 and not same["separated"]
  with open(r["path"]) as f:
    assert json.load(f)["alphas"] == [0.0, 0.5, 1.0]
  assert os.path.exists(os.path.join(os.path.dirname(r["path"]), "wise_ft.png"))


@pytest.mark.slow  # ~95 s on 2 cores: a fine-tune compiles the backbone's backward pass
def test_wise_ft_on_a_full_fine_tune(tmp_path):
  """The backbone moves: alpha 1 is the checkpoint, alpha 0 the start with the fine-tuned head,
  and the chosen alpha has the best validation accuracy."""
  from tests import tiny
  from tl_jax.evaluate import evaluation
  from tl_jax.train import state as state_lib, trainer

  cfg = tiny.config(tiny.write_npz(tmp_path / "digits.npz"), **{"train.compilation_cache_dir": "",
                                                                 "train.num_epochs": 2, "optim.lr": 1e-2})
  cfg.param_groups = dict(preset=dict(name="full"), head=dict(lr_mult=1.0), backbone=dict(lr_mult=1.0, bn="running"))
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(cfg, workdir)
  run = evaluation.restore(workdir, "best")
  start, _ = state_lib.create_state(run.config, len(run.class_names), 1)
  moved = [float(np.max(np.abs(np.asarray(s) - np.asarray(f)))) for s, f in
           zip(jax.tree.leaves(start.params["backbone"]), jax.tree.leaves(run.state.params["backbone"]))]
  assert max(moved) > 1e-3  # fine-tuned, not a probe
  r = wise_ft.wise_ft(workdir, "best", alphas=(0.0, 0.5, 1.0))
  test = evaluation.evaluate_checkpoint(workdir, "best", "test")
  assert r["test"]["accuracy"][-1] == test["accuracy"]
  best = int(np.argmax(r["val"]["accuracy"][::-1]))  # ties to the larger alpha
  assert r["best_alpha"] == (0.0, 0.5, 1.0)[::-1][best]
  assert r["val"]["accuracy"][[0.0, 0.5, 1.0].index(r["best_alpha"])] == max(r["val"]["accuracy"])
