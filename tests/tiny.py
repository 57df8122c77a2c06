"""Helpers for runs of ``tests/tiny_config.py``: its data, its config in-process, its command line."""

import contextlib
import importlib.util
import io
import os
import sys
from unittest import mock

import numpy as np

from tl_jax.data import in_package

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The test session's JAX compilation cache (tests/conftest.py sets it: a directory, or "0" = off).
JAX_CACHE = "TL_JAX_TEST_JAX_CACHE"


def jax_cache_dir() -> str:
  """The session's compilation cache directory (in-process and in a test's subprocesses), "" when
  off or unset."""
  setting = os.environ.get(JAX_CACHE, "")
  return "" if setting in ("", "0", "1") else setting


def write_npz(path, n: int = 256) -> str:
  """The first ``n`` digits as an .npz dataset."""
  x, y, names = in_package.digits()
  np.savez(path, x=x[:n], y=y[:n], label_names=names)
  return str(path)


def config(npz_path: str, **extra):
  """The tiny config (unlocked) on ``npz_path``; ``extra``: more ``{"a.b": value}`` settings.

  Programs compile into the session's cache (``jax_cache_dir``), never the user's ~/.cache."""
  spec = importlib.util.spec_from_file_location("tiny_config", os.path.join(ROOT, "tests", "tiny_config.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.unlock()
  for key, value in ({"data.path": npz_path, "train.compilation_cache_dir": jax_cache_dir()} | extra).items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def command(npz_path: str, workdir: str, *flags: str) -> list[str]:
  """``scripts/train.py`` on the tiny config, as a subprocess command (run it with cwd=ROOT)."""
  # The session's compilation cache (not the user's ~/.cache): in-process runs of the config fill it.
  return [sys.executable, "scripts/train.py", "--config=tests/tiny_config.py", f"--workdir={workdir}",
          f"--config.data.path={npz_path}", f"--config.train.compilation_cache_dir={jax_cache_dir()}", *flags]


def env() -> dict:
  return {**os.environ, "PYTHONPATH": ROOT}


@contextlib.contextmanager
def unrendered_plots():
  """tl_jax's figures are built (their data checked) but not rendered: every PNG is 1x1 pixel.

  For runs whose tests never look at a plot: a tiny run draws ~15 figures, a third of its ~20 s.
  Rendering is tested by test_plots and by the runs of test_trainer (TensorBoard's images too) and
  test_calibration, which draw theirs.
  """
  from PIL import Image

  from tl_jax.metrics import plots

  png = io.BytesIO()
  Image.new("L", (1, 1)).save(png, "PNG")

  def save(fig, path):
    if hasattr(path, "write"):
      path.write(png.getvalue())
    else:
      os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
      with open(path, "wb") as f:
        f.write(png.getvalue())
    fig.clear()
    return path if hasattr(path, "write") else os.fspath(path)

  with mock.patch.object(plots, "_save", save):
    yield

