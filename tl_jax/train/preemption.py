"""Preemption: SIGTERM or SIGINT ends a run at the next step, saved, with a status a scheduler requeues.

A preempted cloud VM and most schedulers send SIGTERM, a person Ctrl-C (SIGINT). ``Watch``, held
around the run, turns either into a request: the loop finishes the step under way, checkpoints it
(verified, with the step metrics the next record averages: ``train.window``), flushes its logs and
TensorBoard, and raises ``Preempted`` naming the step. ``scripts/train.py`` then ends with
``exit_preempted``: the last line names the step saved and the command that resumes, and the exit
status is ``EXIT_STATUS`` (75, sysexits' EX_TEMPFAIL: "try again"), distinct from a failure (1)
and from a process killed before it saved anything (143 for SIGTERM, 130 for SIGINT). A second
SIGINT aborts at once (status 130, nothing more saved: the rerun resumes from the last checkpoint).

Multi-process runs stop at one step on every process through JAX's preemption service:
``jax.distributed.initialize`` installs its SIGTERM notifier and every process asks
``multihost_utils.reached_preemption_sync_point(step)`` after each step; the service propagates
a notice to all processes and picks the same step for all (one past the furthest one), which all
save. A SIGINT is handed to that notifier as a SIGTERM to the process itself.
"""

import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
from typing import NoReturn

import jax
from jax.experimental import multihost_utils

from tl_jax.errors import Preempted

log = logging.getLogger(__name__)

EXIT_STATUS = 75  # EX_TEMPFAIL: saved, try again (requeue)
ABORT_STATUS = 128 + signal.SIGINT  # a second Ctrl-C: gone at once, as a shell reports a SIGINT death


class Watch:
  """What the loop asks after each step: has a stop been requested (``reached``)?"""

  def __init__(self):
    self.received: str | None = None  # the first signal's name
    self._installed: dict[int, object] = {}

  @property
  def multiprocess(self) -> bool:
    return jax.process_count() > 1

  def reached(self, steps_done: int) -> bool:
    """Whether to save ``steps_done`` and stop. Every process calls it after every step, with
    the same ``steps_done``: in a multi-process run it is JAX's preemption sync point."""
    if self.multiprocess:
      return multihost_utils.reached_preemption_sync_point(steps_done)
    return self.received is not None

  def requested(self) -> bool:
    """Whether a stop is asked outside the steps (the closing evaluation); single process only:
    processes could disagree there, and their collectives would then wait for each other."""
    return self.received is not None and not self.multiprocess

  def _on_signal(self, signum, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.received is not None:
      if signum == signal.SIGINT:  # a second Ctrl-C: now
        sys.stderr.write(f"\naborted: second {name}; nothing saved since the last checkpoint. "
                         "Rerun the same command to resume from it.\n")
        sys.stderr.flush()
        os._exit(ABORT_STATUS)
      return
    self.received = name
    if self.multiprocess:  # JAX's notifier takes it from here, for every process
      os.kill(os.getpid(), signal.SIGTERM)
    log.warning("%s received: finishing the current step, then saving it (a second Ctrl-C aborts "
                "without saving).", name)

  @contextlib.contextmanager
  def installed(self):
    """Handles SIGTERM and SIGINT inside the block (from the main thread; elsewhere Python
    allows no handlers, and signals keep their effect). In a multi-process run SIGTERM stays
    with JAX's preemption notifier."""
    if threading.current_thread() is not threading.main_thread():
      log.info("Not on the main thread: SIGTERM/SIGINT are not turned into a saved stop.")
      yield self
      return
    signums = [signal.SIGINT] + ([] if self.multiprocess else [signal.SIGTERM])
    try:
      for s in signums:
        self._installed[s] = signal.signal(s, self._on_signal)
      yield self
    finally:
      for s, previous in self._installed.items():
        signal.signal(s, previous)
      self._installed.clear()


def resume_command(argv: list[str] | None = None) -> str:
  """The command line that reruns this process (the same command resumes a run)."""
  argv = list(sys.argv if argv is None else argv)
  command = shlex.join([sys.executable, *argv])
  if not os.path.isabs(argv[0]):
    command = f"cd {shlex.quote(os.getcwd())} && {command}"
  return command


def exit_preempted(error: Preempted) -> NoReturn:
  """Ends a preempted script: the step saved and the command that resumes as its last line,
  exit status ``EXIT_STATUS``. Every process of a multi-process run calls it."""
  count, index = jax.process_count(), jax.process_index()
  if count > 1:
    jax.distributed.shutdown()  # together: a process that leaves first would fail the others
  hosts = " (on every host, each with its own --process_id)" if count > 1 else ""
  sys.stdout.flush()
  if index == 0:
    sys.stderr.write(f"{error} Resume with{hosts}: {resume_command()}\n")
  sys.stderr.flush()
  logging.shutdown()
  os._exit(EXIT_STATUS)
