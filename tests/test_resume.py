"""Crashes and restarts: kill -9 at random moments, then a resume equal to an uninterrupted run,
with one metrics.jsonl record per evaluated step; a corrupted latest checkpoint falls back."""

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import pytest
import tiny

from tl_jax.train import checkpoint, trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

_TIMING = ("elapsed_s", "epoch_s", "input_wait_ms", "train_images_per_s")  # wall-clock fields differ run to run


@pytest.fixture(scope="module")
def reference(shared_tiny_run):
  """An uninterrupted tiny run: (npz path, workdir, summary); conftest's ``shared_tiny_run``, only read here."""
  return shared_tiny_run


def _records(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _assert_same_run(workdir, reference_dir):
  records, expected = _records(workdir), _records(reference_dir)
  assert [r["step"] for r in records] == [4, 8, 12]  # no step repeated, none lost
  for r, e in zip(records, expected):
    assert {k: v for k, v in r.items() if k not in _TIMING} == {k: v for k, v in e.items() if k not in _TIMING}
  cfg = trainer.load_config(reference_dir)
  target = trainer.abstract_state(cfg, 10, 12, 0)
  got = jax.device_get(checkpoint.Checkpoints(workdir).restore(12, target))
  want = jax.device_get(checkpoint.Checkpoints(reference_dir).restore(12, target))
  jax.tree.map(np.testing.assert_array_equal, got, want)


def _kill_at_random_moments(npz, workdir, kills, seed):
  """Starts the run ``kills`` times and kills -9 each at a random moment; returns the moments."""
  rng, moments = random.Random(seed), []
  for _ in range(kills):
    proc = subprocess.Popen(tiny.command(npz, workdir), cwd=tiny.ROOT, env=tiny.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once training is under way (the first commit, or a later one), a random time after.
    t0, committed = time.time(), len(checkpoint.Checkpoints(workdir).steps()) if os.path.isdir(workdir) else 0
    while proc.poll() is None and time.time() - t0 < 300:
      if os.path.isdir(os.path.join(workdir, "checkpoints")) and len(os.listdir(os.path.join(workdir, "checkpoints"))) > committed:
        break
      time.sleep(0.05)
    time.sleep(rng.uniform(0, 1.0))
    moments.append(round(time.time() - t0, 2))
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
    proc.wait()
  return moments


def test_kill9_then_resume_equals_uninterrupted(reference, tmp_path):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  _kill_at_random_moments(npz, workdir, kills=1, seed=0)
  again = trainer.train_and_evaluate(tiny.config(npz), workdir)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


@pytest.mark.slow
def test_many_kills_at_random_moments_then_resume(reference, tmp_path):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  for seed in range(5):
    _kill_at_random_moments(npz, workdir, kills=1, seed=seed)
    if os.path.exists(os.path.join(workdir, "summary.json")):
      break
  again = trainer.train_and_evaluate(tiny.config(npz), workdir)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, caplog):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(reference_dir, workdir)
  os.remove(os.path.join(workdir, "summary.json"))
  step_dir = os.path.join(workdir, "checkpoints", "12")
  data = max((os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs if "/d/" in r + "/"),
             key=os.path.getsize)
  with open(data, "r+b") as f:  # 64 garbled bytes in the middle of the array data
    f.seek(os.path.getsize(data) // 2)
    f.write(os.urandom(64))
  caplog.set_level(logging.INFO, "tl_jax")
  again = trainer.train_and_evaluate(tiny.config(npz), workdir)
  assert "Checkpoint 12 skipped" in caplog.text and "does not match its sha256" in caplog.text
  assert "Resumed from" in caplog.text and "at step 8" in caplog.text
  # The bad files are kept aside, not deleted; the run redid epoch 3 and matches the reference.
  (aside,) = os.listdir(os.path.join(workdir, "rejected_checkpoints"))
  assert os.path.exists(os.path.join(workdir, "rejected_checkpoints", aside, os.path.relpath(data, step_dir)))
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


def test_a_run_saved_before_an_option_existed_resumes_but_a_changed_value_does_not(tmp_path):
  import json

  import ml_collections
  import pytest

  from tl_jax.train import workdir as workdir_lib

  old = {"data": {"image_size": 64, "stream": {"crop_fraction": 0.875}}, "train": {"batch_size": 8}}
  (tmp_path / "config.json").write_text(json.dumps(old))
  new = ml_collections.ConfigDict({**old, "data": {"image_size": 64, "resize": "crop",
                                                   "stream": {"crop_fraction": 0.875, "interpolation": "bicubic"}}})
  workdir_lib.check_config(new, str(tmp_path))  # only added options: resumes
  new.data.image_size = 32
  with pytest.raises(ValueError, match=r"another config \(differs in: data/image_size\)"):
    workdir_lib.check_config(new, str(tmp_path))
