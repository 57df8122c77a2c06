"""Step cadence: ``train.eval_every_steps`` and ``train.checkpoint_every_steps`` beside the epoch
cadence; checkpoints without evaluation carry the step metrics since the last one, so a resume
from a mid-epoch step writes the records and parameters of an uninterrupted run; best is chosen
among evaluated steps; bad values are named with their fix."""

import json
import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest
import tiny

from tl_jax.errors import InvalidInput
from tl_jax.train import cadence, checkpoint, config_checks, trainer, workdir as workdir_lib

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

_TIMING = ("elapsed_s", "epoch_s", "input_wait_ms", "train_images_per_s")  # wall-clock fields
# The tiny run: 4 steps per epoch, 3 epochs. Evaluations at the epoch ends and every 6 steps;
# checkpoints every 2 steps (odd epochs' middles: 2, 10), keep 2 + best.
_CADENCE = {"train.eval_every_steps": 6, "train.checkpoint_every_steps": 2}


def test_points():
  c = cadence.Cadence(steps_per_epoch=4, total_steps=14, eval_every_epochs=2, eval_every_steps=5,
                      checkpoint_every_steps=3)
  assert [s for s in range(1, 15) if c.evaluates(s)] == [5, 8, 10, 14]  # 14: the last step
  assert [s for s in range(1, 15) if c.checkpoints(s)] == [3, 5, 6, 8, 9, 10, 12, 14]
  by_steps = cadence.Cadence(4, 12, eval_every_epochs=0, eval_every_steps=5)
  assert [s for s in range(1, 13) if by_steps.evaluates(s)] == [5, 10, 12]


@pytest.mark.parametrize("key, value", [("eval_every_steps", -1), ("checkpoint_every_steps", 2.5),
                                        ("checkpoint_every_steps", True), ("eval_every_epochs", -2)])
def test_bad_cadences_name_key_and_fix(quickstart_config, key, value):
  plain = quickstart_config.to_dict()
  plain["train"][key] = value  # as from JSON or a dict: no ConfigDict type check
  with pytest.raises(InvalidInput, match=rf"train\.{key}={value!r}: it must be a whole number, 0 to turn it "
                                         rf"off \(e\.g\. --config\.train\.{key}="):
    config_checks.check(ml_collections.ConfigDict(plain))


def test_some_evaluation_cadence_is_required(quickstart_config):
  quickstart_config.train.eval_every_epochs = 0
  with pytest.raises(InvalidInput, match=r"or 0 with train\.eval_every_steps > 0"):
    config_checks.check(quickstart_config)
  quickstart_config.train.eval_every_steps = 100
  config_checks.check(quickstart_config)  # by steps only


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The tiny run with the step cadence, uninterrupted: (npz, workdir, summary)."""
  root = tmp_path_factory.mktemp("cadence")
  npz = tiny.write_npz(root / "digits.npz")
  summary = trainer.train_and_evaluate(tiny.config(npz, **_CADENCE), str(root / "run"))
  return npz, str(root / "run"), summary


def _records(workdir):
  return [{k: v for k, v in r.items() if k not in _TIMING} for r in workdir_lib.read_metrics(workdir)]


def test_checkpoints_without_evaluation_and_best_among_evaluated(reference):
  _, workdir, summary = reference
  assert [r["step"] for r in _records(workdir)] == [4, 6, 8, 12]
  ckpts = checkpoint.Checkpoints(workdir)
  assert ckpts.steps()[-2:] == [10, 12]  # the latest 2 (10 saved without evaluation) + the best
  assert ckpts.metrics(10) == {} and len(ckpts.window(10)["loss"]) == 2  # steps 9 and 10
  assert summary["best_step"] in (4, 6, 8, 12) and ckpts.best_step() == summary["best_step"]


def test_resume_from_a_mid_epoch_checkpoint_equals_uninterrupted(reference, tmp_path):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(reference_dir, workdir)
  # Interrupted after step 10 (mid-epoch 3, saved without evaluation): step 12 and its record are gone.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "12"))
  os.remove(os.path.join(workdir, "summary.json"))
  with open(workdir_lib.metrics_path(workdir), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in workdir_lib.read_metrics(reference_dir)[:-1])
  again = trainer.train_and_evaluate(tiny.config(npz, **_CADENCE), workdir)
  # The step-12 record averages steps 9-12, two of them from before the resume: equal, bit for bit.
  assert _records(workdir) == _records(reference_dir)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  target = trainer.abstract_state(trainer.load_config(reference_dir), 10, 12, 0)
  got = jax.device_get(checkpoint.Checkpoints(workdir).restore(12, target))
  want = jax.device_get(checkpoint.Checkpoints(reference_dir).restore(12, target))
  jax.tree.map(np.testing.assert_array_equal, got, want)
