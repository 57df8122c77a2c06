"""Readers beside a writer: evaluation, prediction and ``--checkpoint latest`` on the workdir of a run
that is still training read only committed, verified checkpoints, take no lock, write nothing a
resume could trip on (only their reports under eval/), and survive the writer's retention deleting
the step they read."""

import os
import shutil
import subprocess
import time

import jax.numpy as jnp
import numpy as np
import pytest
import tiny

from tl_jax.evaluate import evaluation, predict
from tl_jax.train import checkpoint, trainer, workdir_lock

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _state(step):
  return {"w": jnp.arange(64, dtype=jnp.float32) + step}


def _files(workdir):
  """Every file under ``workdir`` but the readers' reports (eval/), relative."""
  out = set()
  for root, _, names in os.walk(workdir):
    rel = os.path.relpath(root, workdir)
    if rel.split(os.sep)[0] != "eval":
      out |= {os.path.normpath(os.path.join(rel, n)) for n in names}
  return out


def test_a_reader_makes_no_folder_and_no_orbax_manager(tmp_path):
  ckpts = checkpoint.Checkpoints(str(tmp_path / "run"))  # a run that has not saved yet
  assert ckpts.latest_step() is None and ckpts.best_step() is None
  with pytest.raises(FileNotFoundError, match="No checkpoint 'latest'"):
    ckpts.resolve("latest")
  assert not os.path.exists(tmp_path / "run")


def test_best_is_chosen_among_evaluated_steps(tmp_path):
  ckpts = checkpoint.Checkpoints(str(tmp_path), keep=2)
  ckpts.save(1, _state(1), {}, {"loss": [2.0], "accuracy": [0.5], "nonfinite": [0]})
  assert ckpts.best_step() is None  # nothing evaluated yet
  ckpts.save(2, _state(2), {"step": 2, "val_accuracy": 0.5})
  for step in (3, 4, 5):  # saved without evaluation: never best, and the best stays
    ckpts.save(step, _state(step), {}, {"loss": [1.0], "accuracy": [0.5], "nonfinite": [0]})
  assert ckpts.steps() == [2, 4, 5] and ckpts.best_step() == 2
  assert ckpts.metrics(5) == {} and ckpts.window(5) == {"loss": [1.0], "accuracy": [0.5], "nonfinite": [0]}
  assert ckpts.window(2) is None


def test_a_step_deleted_while_read_is_resolved_again(tmp_path):
  writer = checkpoint.Checkpoints(str(tmp_path), keep=2)
  for step in (1, 2):
    writer.save(step, _state(step), {"step": step, "val_accuracy": 0.1 * step})
  reader = checkpoint.Checkpoints(str(tmp_path))
  target = {"w": jnp.zeros(64, jnp.float32)}

  def restore_as_retention_deletes(step):  # the writer saves 3 and its retention deletes 2 mid-read
    if step == 2:
      writer.save(3, _state(3), {"step": 3, "val_accuracy": 0.3})
      writer.save(4, _state(4), {"step": 4, "val_accuracy": 0.4})
      raise OSError("file vanished")
    return reader.restore(step, target)

  step, state = reader.read("latest", restore_as_retention_deletes)
  assert step == 4 and np.array_equal(state["w"], _state(4)["w"])
  with pytest.raises(FileNotFoundError, match="was deleted while read"):
    reader.read(3, lambda s: (shutil.rmtree(os.path.join(tmp_path, "checkpoints", "3")), 1 / 0))


def test_a_step_vanishing_while_verified_is_skipped_not_an_error(tmp_path, monkeypatch):
  writer = checkpoint.Checkpoints(str(tmp_path))
  writer.save(1, _state(1), {"step": 1, "val_accuracy": 0.1})
  step_dir = os.path.join(tmp_path, "checkpoints", "1")

  def deleted_meanwhile(path):  # the file existed a moment ago; retention removed it since
    raise FileNotFoundError(2, "No such file or directory", path)

  monkeypatch.setattr(checkpoint, "_sha256", deleted_meanwhile)
  assert "vanished while read" in checkpoint.verify(step_dir)
  assert checkpoint.Checkpoints(str(tmp_path)).steps() == []


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run with a checkpoint every 2 steps: (npz, workdir)."""
  root = tmp_path_factory.mktemp("readers")
  npz = tiny.write_npz(root / "digits.npz")
  workdir = str(root / "run")
  trainer.train_and_evaluate(tiny.config(npz, **{"train.checkpoint_every_steps": 2}), workdir)
  return npz, workdir


def test_readers_beside_a_held_lock_and_a_save_in_progress(finished, tmp_path):
  """The writer's lock is held and a newer step is half written (committed by Orbax, no manifest
  yet): readers read the newest verified step, move nothing, write only eval/; the writer then
  resumes as if no reader had been there."""
  npz, done = finished
  workdir = str(tmp_path / "run")
  shutil.copytree(done, workdir)
  os.remove(os.path.join(workdir, "summary.json"))
  ckpts = os.path.join(workdir, "checkpoints")
  # Step 12 is being saved again: its manifest is not written yet (a writer mid-save).
  os.remove(os.path.join(ckpts, "12", checkpoint.MANIFEST))
  os.makedirs(os.path.join(ckpts, "14.orbax-checkpoint-tmp-1"))  # and an Orbax temporary folder
  before = _files(workdir)
  with workdir_lock.hold(workdir):  # the writer holds the lock: readers never wait for it
    run = evaluation.restore(workdir, "latest")
    report = evaluation.evaluate_checkpoint(workdir, "latest")
    predictor = predict.from_workdir(workdir, "latest")
    holder = open(os.path.join(workdir, workdir_lock.INFO)).read()
  assert run.step == report["step"] == 10  # 12 is not verified yet
  assert predictor.source.endswith("step 10")
  assert str(os.getpid()) in holder  # still the writer's lock
  assert _files(workdir) == before  # nothing moved, nothing added but eval/ reports
  assert os.path.exists(os.path.join(workdir, "eval", "test_step10", "report.json"))
  shutil.rmtree(os.path.join(ckpts, "14.orbax-checkpoint-tmp-1"))
  again = trainer.train_and_evaluate(tiny.config(npz, **{"train.checkpoint_every_steps": 2}), workdir)
  assert again["final_step"] == 12
  # Only the step left half saved above is set aside: nothing of the readers'.
  assert [n.split(".")[0] for n in os.listdir(os.path.join(workdir, "rejected_checkpoints"))] == ["12"]


def _wait_for_checkpoint(workdir, proc):
  while proc.poll() is None and not checkpoint.Checkpoints(workdir).steps():
    time.sleep(0.1)


@pytest.mark.slow
def test_readers_while_a_run_trains(tmp_path):
  """A training subprocess checkpoints every step (saves and retention deletes all the time);
  this process evaluates and predicts its ``latest`` until it ends. The writer is never blocked
  and ends as an uninterrupted run does; every read is of a verified step."""
  npz = tiny.write_npz(tmp_path / "digits.npz")
  workdir = str(tmp_path / "run")
  flags = ("--config.train.num_epochs=8", "--config.train.checkpoint_every_steps=1")
  proc = subprocess.Popen(tiny.command(npz, workdir, *flags), cwd=tiny.ROOT, env=tiny.env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  _wait_for_checkpoint(workdir, proc)
  reads, during = [], 0
  while proc.poll() is None or not reads:
    running = proc.poll() is None
    report = evaluation.evaluate_checkpoint(workdir, "latest", split="val")
    predictor = predict.from_workdir(workdir, "latest")
    reads.append((report["step"], predictor.source))
    during += running
  script = subprocess.run(tiny.command(npz, workdir, *flags)[:1] + ["scripts/evaluate.py", f"--workdir={workdir}",
                                                                   "--checkpoint=latest"],
                          cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True)
  _, err = proc.communicate()
  assert proc.returncode == 0, err[-3000:]
  assert during >= 1 and script.returncode == 0, script.stderr[-3000:]
  assert not os.path.exists(os.path.join(workdir, "rejected_checkpoints")) or \
      not os.listdir(os.path.join(workdir, "rejected_checkpoints"))
  records = [r["step"] for r in trainer.workdir_lib.read_metrics(workdir)]
  assert records == [4, 8, 12, 16, 20, 24, 28, 32]
