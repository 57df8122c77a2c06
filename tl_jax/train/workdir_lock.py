"""One writer per workdir: a ``filelock`` lock held for the whole run.

``<workdir>/.lock`` is the OS-level lock (``filelock.FileLock``: the kernel
releases it when its process dies, even by ``kill -9``); ``<workdir>/lock.json``
says who holds it (pid, host, start time). A second writer fails at once with
``LockHeld`` naming the holder. A ``lock.json`` left by a process that died is
taken over with a warning. In a multi-host run process 0 holds the lock for
all. Readers (``scripts/evaluate.py``) take none.
"""

import contextlib
import datetime
import json
import logging
import os
import socket

import filelock
import jax

from tl_jax.errors import LockHeld

log = logging.getLogger(__name__)

LOCK, INFO = ".lock", "lock.json"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process
    return True
  return True


def _holder(workdir: str) -> dict:
  try:
    with open(os.path.join(workdir, INFO)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _describe(info: dict) -> str:
  if not info:
    return "an unknown process"
  return f"pid {info.get('pid')} on host {info.get('host')} (since {info.get('started')})"


@contextlib.contextmanager
def hold(workdir: str):
  """Holds ``workdir``'s writer lock in the ``with`` block (process 0 only).

  Raises:
    LockHeld: another live process holds it.
  """
  if jax.process_index() != 0:
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  lock = filelock.FileLock(os.path.join(workdir, LOCK), timeout=0)
  try:
    lock.acquire()
  except filelock.Timeout:
    raise LockHeld(f"{workdir} is in use by {_describe(_holder(workdir))}: one writer per workdir. "
                   "Wait for that run to end (or stop it), or use another --workdir.") from None
  try:
    previous, host = _holder(workdir), socket.gethostname()
    if previous:  # its owner died without releasing: the kernel freed the lock, lock.json stayed
      how = "no longer running" if previous.get("host") == host and not _alive(previous.get("pid", -1)) \
          else "gone (lock released)"
      log.warning("Taking over the stale lock of %s in %s: that process is %s.", _describe(previous), workdir, how)
    info = {"pid": os.getpid(), "host": host,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with open(os.path.join(workdir, INFO + ".tmp"), "w") as f:
      json.dump(info, f)
    os.replace(os.path.join(workdir, INFO + ".tmp"), os.path.join(workdir, INFO))
    yield
  finally:
    with contextlib.suppress(OSError):
      os.remove(os.path.join(workdir, INFO))
    lock.release()
