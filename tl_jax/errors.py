"""``RunError``: a failure whose message is the whole story.

The scripts print such a message as the last line of a failed run, without a
traceback (``scripts/train.py --verbose`` or the workdir's ``error.log`` keep it).
Subclasses name the cause; each message names what to look at and what to do.
``report_failure`` is how the scripts end a failed run.
"""

import contextlib
import errno
import os
import sys
import time
import traceback


class RunError(Exception):
  """A run cannot go on; ``str(error)`` says why and what to do."""


class LockHeld(RunError):
  """Another process writes to the workdir."""


class CorruptCheckpoint(RunError):
  """A checkpoint fails verification (its files, its manifest or Orbax's commit markers)."""


class Diverged(RunError):
  """The loss or gradients became non-finite (``train.on_nonfinite="stop"``)."""


class Preempted(RunError):
  """SIGTERM or SIGINT stopped the run after it saved step ``step`` (``train.preemption``): not a
  failure, the same command resumes."""

  def __init__(self, step: int | None, signal_name: str = "a signal"):
    self.step = step
    saved = f"step {step} saved" if step is not None else "no checkpoint saved yet"
    super().__init__(f"preempted: {signal_name} received; {saved}.")


class InvalidInput(RunError, ValueError):
  """Bad data or a bad setting, found before training starts."""


def _chain(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def cause(error: BaseException) -> str:
  """The message a failed run ends with: the cause, not the framework's wrapping of it."""
  for e in _chain(error):
    if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
      where = f" writing {e.filename}" if isinstance(e, OSError) and e.filename else ""
      return f"Disk full (No space left on device){where}: free space, or use a --workdir on another disk."
  for e in _chain(error):
    if isinstance(e, RunError):
      return str(e)
  text = str(error).strip()
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextlib.contextmanager
def report_failure(log_path: str, verbose: bool = False):
  """For a script's ``main``: on any exception, the traceback goes to ``log_path`` (and to
  stderr with ``verbose``) and the cause is the last line printed; then exits with status 1.

  Exits with ``os._exit``: the interpreter's shutdown would print Orbax's and
  asyncio's noise after the cause.
  """
  try:
    yield
  except (SystemExit, KeyboardInterrupt):
    raise
  except BaseException as e:  # noqa: BLE001 - every failure ends the same way
    trace = traceback.format_exc()
    logged = ""
    try:
      os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
      with open(log_path, "a") as f:
        f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n{trace}\n")
      logged = f" (traceback: {log_path})"
    except OSError:
      pass
    if verbose:
      sys.stderr.write(trace)
    sys.stdout.flush()
    message = cause(e)
    if not verbose and logged:  # the traceback's place, then the cause last
      sys.stderr.write(f"Full traceback in {log_path} (or rerun with --verbose).\n")
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(1)
