"""Preemption: SIGTERM or SIGINT sent to a training process (between steps, during a save) saves
the step under way and exits 75 with the step and the resume command as its last line; the
printed command resumes, and the run ends equal to an uninterrupted one. A second SIGINT aborts
at once (130). Two processes stop at the same step through JAX's preemption sync point.

Signals are real; tests/signal_at.py chooses their moment inside the training process, so the
step they land on is known.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest
import tiny

from tl_jax.train import checkpoint, preemption, trainer, workdir as workdir_lib, workdir_lock

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

_TIMING = ("elapsed_s", "epoch_s", "input_wait_ms", "train_images_per_s")  # wall-clock fields differ


@pytest.fixture(scope="module")
def reference(shared_tiny_run):
  """An uninterrupted tiny run (3 epochs of 4 steps): (npz path, workdir, summary).

  Conftest's ``shared_tiny_run``, only read here."""
  return shared_tiny_run


def _signal_at(npz, workdir, moment, step, signals, *flags):
  """scripts/train.py on the tiny config, ``signals`` sent to it at ``moment`` ``step``."""
  train = tiny.command(npz, workdir, *flags)
  command = [train[0], "tests/signal_at.py", moment, str(step), signals, "--", *train[1:]]
  return subprocess.run(command, cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True, timeout=900)


def _last_line(proc):
  return proc.stderr.strip().splitlines()[-1]


def _records(workdir):
  return [{k: v for k, v in r.items() if k not in _TIMING} for r in workdir_lib.read_metrics(workdir)]


def _assert_same_run(workdir, reference_dir, steps=12):
  assert [r["step"] for r in _records(workdir)] == [4, 8, 12]  # no record repeated, none lost
  assert _records(workdir) == _records(reference_dir)
  target = trainer.abstract_state(trainer.load_config(reference_dir), 10, steps, 0)
  got = jax.device_get(checkpoint.Checkpoints(workdir).restore(steps, target))
  want = jax.device_get(checkpoint.Checkpoints(reference_dir).restore(steps, target))
  jax.tree.map(np.testing.assert_array_equal, got, want)


def _resume(line):
  """Runs the command the last line names; returns the finished run's summary."""
  command = line.split("Resume with: ", 1)[1]
  proc = subprocess.run(command, shell=True, env=tiny.env(), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout[proc.stdout.index("{\n"):proc.stdout.rindex("}") + 1])


@pytest.mark.parametrize("name", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow)])
def test_signal_between_steps_saves_that_step_and_the_printed_command_resumes(reference, tmp_path, name):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  # As step 6 (1-based: mid-epoch 2) starts: it finishes, is saved, and the run stops.
  proc = _signal_at(npz, workdir, "step", 5, name)
  assert proc.returncode == preemption.EXIT_STATUS == 75, proc.stderr[-3000:]
  line = _last_line(proc)
  assert re.fullmatch(rf"preempted: {name} received; step 6 saved\. Resume with: cd \S+ && \S*python\S* "
                      r"scripts/train\.py --config=tests/tiny_config\.py .*", line), line
  ckpts = checkpoint.Checkpoints(workdir)
  assert ckpts.latest_step() == 6 and ckpts.metrics(6) == {}  # verified, saved without evaluating
  assert len(ckpts.window(6)["loss"]) == 2  # steps 5 and 6: the step-8 record averages them too
  assert [r["step"] for r in workdir_lib.read_metrics(workdir)] == [4]
  assert not os.path.exists(os.path.join(workdir, workdir_lock.INFO))  # the lock is released
  events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
  assert events and all(os.path.getsize(os.path.join(workdir, f)) for f in events)  # flushed
  again = _resume(line)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


def test_second_sigint_aborts_at_once_and_the_rerun_resumes(reference, tmp_path):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  # Ctrl-C twice while checkpoint 8 is being saved: gone before its manifest is written.
  proc = _signal_at(npz, workdir, "save", 8, "SIGINT,SIGINT")
  assert proc.returncode == preemption.ABORT_STATUS == 130, proc.stderr[-3000:]
  assert _last_line(proc).startswith("aborted: second SIGINT; nothing saved since the last checkpoint.")
  assert checkpoint.Checkpoints(workdir).steps() == [4]  # 8 never counts: no manifest
  again = trainer.train_and_evaluate(tiny.config(npz), workdir)  # sets step 8 aside, resumes at 4
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


@pytest.mark.slow
def test_sigterm_during_a_save_finishes_it_and_stops(reference, tmp_path):
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  proc = _signal_at(npz, workdir, "save", 8, "SIGTERM")
  assert proc.returncode == 75, proc.stderr[-3000:]
  assert "step 8 saved" in _last_line(proc)
  assert checkpoint.Checkpoints(workdir).latest_step() == 8
  assert [r["step"] for r in workdir_lib.read_metrics(workdir)] == [4, 8]  # its record is written
  again = _resume(_last_line(proc))
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


@pytest.mark.slow
def test_sigterm_from_outside_at_random_moments(reference, tmp_path):
  """The scheduler's way: SIGTERM from another process once training is under way."""
  npz, reference_dir, summary = reference
  workdir = str(tmp_path / "run")
  for delay in (0.0, 0.3, 0.7):
    proc = subprocess.Popen(tiny.command(npz, workdir), cwd=tiny.ROOT, env=tiny.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    saved = len(checkpoint.Checkpoints(workdir).steps())
    while proc.poll() is None and len(checkpoint.Checkpoints(workdir).steps()) <= saved:
      time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=900)
    if proc.returncode == 0:
      break
    assert proc.returncode == 75, err[-3000:]
    step = int(re.search(r"step (\d+) saved", err.strip().splitlines()[-1]).group(1))
    assert checkpoint.Checkpoints(workdir).latest_step() == step
  again = trainer.train_and_evaluate(tiny.config(npz), workdir)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  _assert_same_run(workdir, reference_dir)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _two_processes(npz, workdir, *flags, signal_process1_at=None):
  """The tiny run in 2 processes on localhost (tests/test_multihost.py's set-up); process 1 gets
  SIGTERM as step ``signal_process1_at`` starts. Returns (exit status, stdout, stderr) of each."""
  port = _free_port()
  env = {**tiny.env(), "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  procs = []
  for i in range(2):
    command = tiny.command(npz, workdir, *flags, f"--coordinator_address=localhost:{port}", "--num_processes=2",
                           f"--process_id={i}")
    if i == 1 and signal_process1_at is not None:
      command = [command[0], "tests/signal_at.py", "step", str(signal_process1_at), "SIGTERM", "--", *command[1:]]
    out = [open(f"{workdir}.{i}.{stream}", "w+") for stream in ("out", "err")]
    procs.append((subprocess.Popen(command, cwd=tiny.ROOT, env=env, stdout=out[0], stderr=out[1], text=True), out))
  results = []
  for proc, out in procs:
    rc = proc.wait(timeout=900)
    texts = []
    for f in out:
      f.seek(0)
      texts.append(f.read())
      f.close()
    results.append((rc, *texts))
  return results


_LONGER = ("--config.train.num_epochs=6",)  # 24 steps: the sync point comes well before the end


def test_two_processes_stop_at_the_same_step(tmp_path):
  npz = tiny.write_npz(tmp_path / "digits.npz")
  workdir = str(tmp_path / "run")
  results = _two_processes(npz, workdir, *_LONGER, signal_process1_at=5)
  assert [rc for rc, _, _ in results] == [75, 75], "\n".join(err[-2000:] for _, _, err in results)
  line = results[0][2].strip().splitlines()[-1]  # process 0 prints it
  step = int(re.search(r"preempted: .*; step (\d+) saved\. Resume with \(on every host", line).group(1))
  assert 6 <= step < 24
  # JAX's sync point: both processes saved that step, as one checkpoint, and stopped there
  # (the resume, equal to an uninterrupted 2-process run, is the slow test below).
  assert checkpoint.Checkpoints(workdir).latest_step() == step


@pytest.mark.slow
def test_two_processes_preempted_equal_two_uninterrupted(tmp_path):
  npz = tiny.write_npz(tmp_path / "digits.npz")
  single, resumed = str(tmp_path / "uninterrupted"), str(tmp_path / "resumed")
  assert [rc for rc, _, _ in _two_processes(npz, single, *_LONGER)] == [0, 0]
  assert [rc for rc, _, _ in _two_processes(npz, resumed, *_LONGER, signal_process1_at=5)] == [75, 75]
  assert [rc for rc, _, _ in _two_processes(npz, resumed, *_LONGER)] == [0, 0]
  assert [r["step"] for r in _records(single)] == [4, 8, 12, 16, 20, 24]
  assert _records(resumed) == _records(single)
  # Saved on 2 processes' devices; read back onto this process's device.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = trainer.abstract_state(trainer.load_config(single), 10, 24, 0, device)
  got = jax.device_get(checkpoint.Checkpoints(resumed).restore(24, target))
  want = jax.device_get(checkpoint.Checkpoints(single).restore(24, target))
  jax.tree.map(np.testing.assert_array_equal, got, want)
