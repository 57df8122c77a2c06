"""Helpers for runs of ``tests/tiny_config.py``: its data, its config in-process, its command line."""

import importlib.util
import os
import sys

import numpy as np

from tl_jax.data import in_package

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_npz(path, n: int = 256) -> str:
  """The first ``n`` digits as an .npz dataset."""
  x, y, names = in_package.digits()
  np.savez(path, x=x[:n], y=y[:n], label_names=names)
  return str(path)


def config(npz_path: str, **extra):
  """The tiny config (unlocked) on ``npz_path``; ``extra``: more ``{"a.b": value}`` settings."""
  spec = importlib.util.spec_from_file_location("tiny_config", os.path.join(ROOT, "tests", "tiny_config.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.unlock()
  for key, value in ({"data.path": npz_path} | extra).items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def command(npz_path: str, workdir: str, *flags: str) -> list[str]:
  """``scripts/train.py`` on the tiny config, as a subprocess command (run it with cwd=ROOT)."""
  return [sys.executable, "scripts/train.py", "--config=tests/tiny_config.py", f"--workdir={workdir}",
          f"--config.data.path={npz_path}", *flags]


def env() -> dict:
  return {**os.environ, "PYTHONPATH": ROOT}
