"""WiSE-FT: interpolation by hand on toy trees; a tiny run's start rebuilt exactly."""

import json
import os

import jax
import numpy as np
import pytest

from tl_jax.evaluate import wise_ft


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  from tests import tiny
  from tl_jax.train import trainer
  tmp = tmp_path_factory.mktemp("wise_ft_run")
  cfg = tiny.config(tiny.write_npz(tmp / "digits.npz"), **{"train.compilation_cache_dir": ""})
  workdir = str(tmp / "run")
  trainer.train_and_evaluate(cfg, workdir)
  return workdir


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
  with open(r["path"]) as f:
    assert json.load(f)["alphas"] == [0.0, 0.5, 1.0]
  assert os.path.exists(os.path.join(os.path.dirname(r["path"]), "wise_ft.png"))
