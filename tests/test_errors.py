"""A failed run ends with one line naming the cause; the traceback goes to a log file."""

import errno
import os
import subprocess
import sys

from tl_jax import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cause_finds_disk_full_under_wrappers():
  try:
    try:
      raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints/35/default/d/ab")
    except OSError as e:
      raise ValueError("tensorstore: OUT_OF_RANGE: error writing") from e
  except ValueError as wrapped:
    assert errors.cause(wrapped) == ("Disk full (No space left on device) writing "
                                     "/runs/x/checkpoints/35/default/d/ab: free space, or use a --workdir on another disk.")
  assert errors.cause(RuntimeError("INTERNAL: ... No space left on device ...")).startswith("Disk full")
  assert errors.cause(errors.LockHeld("runs/x is in use by pid 1")) == "runs/x is in use by pid 1"
  assert errors.cause(KeyError("k")) == "KeyError: 'k'"


_SCRIPT = """
import sys, threading
from tl_jax import errors
with errors.report_failure(sys.argv[1], verbose=False):
  print("working", flush=True)
  raise errors.Diverged("Non-finite loss or gradients at step 7")
"""


def test_report_failure_ends_with_the_cause_and_logs_the_traceback(tmp_path):
  log = str(tmp_path / "run" / "error.log")
  out = subprocess.run([sys.executable, "-c", _SCRIPT, log], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 1 and out.stdout == "working\n"
  assert out.stderr.strip().splitlines()[-1] == "error: Non-finite loss or gradients at step 7"
  assert "Traceback" not in out.stderr and f"Full traceback in {log}" in out.stderr
  text = open(log).read()
  assert "Traceback (most recent call last)" in text and "tl_jax.errors.Diverged" in text
