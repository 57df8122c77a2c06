r"""Runs a script in this process with signals arranged to arrive at a chosen moment of training.

  python tests/signal_at.py MOMENT STEP SIGNALS -- scripts/train.py ARGS...

MOMENT ``step``: as the batch of step STEP (0-based, of a fresh run) is fetched, i.e. between
steps; ``save``: inside the save of checkpoint STEP, after Orbax committed it and before its
manifest is written. SIGNALS: names sent to this process one after the other (``SIGTERM``,
``SIGINT,SIGINT``). The signals are real (``os.kill``); only their moment is chosen.
"""

import os
import runpy
import signal
import sys

from tl_jax.data import pipeline
from tl_jax.train import checkpoint


def main():
  moment, at, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
  argv = sys.argv[sys.argv.index("--") + 1:]

  def fire():
    for name in names:
      os.kill(os.getpid(), getattr(signal, name))

  if moment == "step":
    original, calls = pipeline.DevicePrefetch.__next__, [0]

    def next_batch(self):
      if calls[0] == at:
        fire()
      calls[0] += 1
      return original(self)

    pipeline.DevicePrefetch.__next__ = next_batch
  elif moment == "save":
    original_manifest = checkpoint.write_manifest

    def write_manifest(step_dir, *args, **kwargs):
      if os.path.basename(step_dir) == str(at):
        fire()
      return original_manifest(step_dir, *args, **kwargs)

    checkpoint.write_manifest = write_manifest
  else:
    raise SystemExit(f"unknown moment {moment!r}: step or save")
  sys.argv = argv
  runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
  main()
