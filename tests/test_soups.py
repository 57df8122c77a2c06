"""Model soups of two tiny runs: the uniform soup by hand, the greedy rule, refused ingredients."""

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from tl_jax.evaluate import soups
from tl_jax.studies import compare

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


@pytest.fixture(scope="module")
def two_runs(shared_tiny_run, tmp_path_factory):
  """Tiny runs at lr 3e-2 (the session's, copied) and 1e-2 on the same data: (workdirs, folder)."""
  from tests import tiny
  from tl_jax.train import trainer
  npz, run, _ = shared_tiny_run
  tmp = tmp_path_factory.mktemp("soup_runs")
  workdirs = [str(tmp / "lr0.03"), str(tmp / "lr0.01")]
  assert trainer.load_config(run).optim.lr == 3e-2
  shutil.copytree(run, workdirs[0])
  trainer.train_and_evaluate(tiny.config(npz, **{"optim.lr": 1e-2}), workdirs[1])
  return workdirs, tmp


def test_uniform_and_greedy_soups(two_runs):
  from tl_jax.evaluate import evaluation
  workdirs, tmp = two_runs
  r = soups.soup(workdirs, out=str(tmp / "soup"))
  vals = [row["val_accuracy"] for row in r["ingredients"]]
  assert vals == sorted(vals, reverse=True) and r["best_single"] == r["ingredients"][0]
  assert r["greedy"]["val_accuracy"] >= r["best_single"]["val_accuracy"]  # it never drops
  assert r["greedy"]["members"][0] == r["best_single"]["workdir"]
  for row in r["ingredients"]:  # single runs evaluated as evaluate_checkpoint does
    assert row["test_accuracy"] == evaluation.evaluate_checkpoint(row["workdir"], "best", "test")["accuracy"]
  # the uniform soup is the mean of the heads (the probes' backbones are the same frozen start)
  a, b = (evaluation.restore(w).state.params for w in workdirs)
  mixed = soups._mix([evaluation.restore(w).state for w in workdirs]).params
  for m, x, y in zip(jax.tree.leaves(mixed), jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(m, (np.asarray(x, np.float64) + np.asarray(y, np.float64)) / 2, rtol=1e-6, atol=1e-7)
  with open(tmp / "soup" / "soup.json") as f:
    assert json.load(f)["uniform"] == r["uniform"]


def test_ingredients_must_share_model_and_start(two_runs):
  workdirs, tmp = two_runs
  for key, value in (("model", {"name": "resnet18"}), ("seed", 7)):
    other = str(tmp / f"other_{key}")
    shutil.copytree(workdirs[1], other)
    with open(os.path.join(other, "config.json")) as f:
      config = json.load(f)
    config[key] = {**config[key], **value} if isinstance(value, dict) else value
    with open(os.path.join(other, "config.json"), "w") as f:
      json.dump(config, f)
    with pytest.raises(ValueError, match="cannot join a soup"):
      soups.check_ingredients([workdirs[0], other], [_restored(workdirs[0]), _config_only(other)])
  with pytest.raises(ValueError, match="at least two"):
    soups.soup(workdirs[:1])


def _restored(workdir):
  from tl_jax.evaluate import evaluation
  return evaluation.restore(workdir)


def _config_only(workdir):
  """The run's config and classes with the first run's state (the check reads config first)."""
  from tl_jax.evaluate import evaluation
  from tl_jax.train import workdir as workdir_lib
  r = evaluation.restore(workdir.replace("other_model", "lr0.01").replace("other_seed", "lr0.01"))
  return evaluation.Restored(workdir_lib.load_config(workdir), r.state, r.step, r.class_names)


def test_compare_soup_option_soups_runs_of_one_model_and_start(tmp_path):
  from tests import tiny

  cfg = tiny.config(tiny.write_npz(tmp_path / "d.npz"), **{"train.compilation_cache_dir": ""})
  cfg.compare = ml_collections.ConfigDict(dict(
      strategies=dict(lr_high=dict(), lr_low=dict(optim=dict(lr=3e-3)), other_model=dict(
          model=dict(name="mobilenet_v2"))),
      images_per_class=(0,), num_epochs=(2,), soup=True))
  rows = compare.sweep(cfg, str(tmp_path / "sweep"))
  (soup_dir,) = os.listdir(tmp_path / "sweep" / "soups")  # one group: the two Lite0 runs; MobileNet alone
  with open(tmp_path / "sweep" / "soups" / soup_dir / "soup.json") as f:
    result = json.load(f)
  assert sorted(os.path.basename(os.path.dirname(i["workdir"])) for i in result["ingredients"]) == ["lr_high",
                                                                                                  "lr_low"]
  best = max(result["ingredients"], key=lambda i: i["val_accuracy"])
  by_dir = {r["workdir"]: r for r in rows}
  assert result["best_single"]["test_accuracy"] == pytest.approx(by_dir[best["workdir"]]["test_accuracy"], abs=1e-6)
  assert 0 <= result["uniform"]["test_accuracy"] <= 1 and result["greedy"]["members"][0] == best["workdir"]
  assert "| 2 |" in (tmp_path / "sweep" / "soups.md").read_text()
