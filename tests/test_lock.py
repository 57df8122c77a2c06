"""One writer per workdir: a second writer fails at once naming the holder; a dead holder's lock is taken over."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tl_jax.errors import LockHeld
from tl_jax.train import trainer, workdir_lock

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HOLD = ("import sys, time; from tl_jax.train import workdir_lock\n"
         "with workdir_lock.hold(sys.argv[1]):\n  print('held', flush=True); time.sleep(600)\n")


def _holder(workdir):
  proc = subprocess.Popen([sys.executable, "-c", _HOLD, workdir], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_second_writer_fails_at_once_naming_the_holder(tmp_path, quickstart_config):
  workdir = str(tmp_path / "run")
  proc = _holder(workdir)
  try:
    info = json.load(open(os.path.join(workdir, workdir_lock.INFO)))
    assert info["pid"] == proc.pid and info["host"] and info["started"]
    # The trainer refuses before loading data or building a model.
    with pytest.raises(LockHeld, match=f"in use by pid {proc.pid} on host {info['host']}"):
      trainer.train_and_evaluate(quickstart_config, workdir)
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    # The script ends with that line and a non-zero status.
    out = subprocess.run([sys.executable, "scripts/train.py", f"--workdir={workdir}"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {workdir} is in use by pid {proc.pid}")
  finally:
    proc.kill(), proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
  workdir = str(tmp_path / "run")
  proc = _holder(workdir)
  os.kill(proc.pid, signal.SIGKILL), proc.wait()
  assert json.load(open(os.path.join(workdir, workdir_lock.INFO)))["pid"] == proc.pid  # left behind
  with workdir_lock.hold(workdir):
    assert json.load(open(os.path.join(workdir, workdir_lock.INFO)))["pid"] == os.getpid()
    with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):  # also within one process
      with workdir_lock.hold(workdir):
        pass
  assert f"stale lock of pid {proc.pid}" in caplog.text and "no longer running" in caplog.text
  assert not os.path.exists(os.path.join(workdir, workdir_lock.INFO))  # released
