import importlib
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest

import tiny

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One persistent JAX compilation cache for the test session, shared by the xdist workers, so that
# tests building the same tiny programs load them instead of compiling them again (fresh per
# session: no result depends on an older tree's executables). On by default: on the tiny-config
# test files it cut 518 s to 377 s (BENCHMARKS.md, "Where the default run's time goes").
# TL_JAX_TEST_JAX_CACHE=0 turns it off (e.g. to time compilation itself).
JAX_CACHE = tiny.JAX_CACHE


def pytest_configure(config):
  setting = os.environ.get(JAX_CACHE, "1")
  if setting in ("", "0"):
    return
  if setting == "1":  # the controller (or a run without xdist): the workers inherit the dir
    os.environ[JAX_CACHE] = tempfile.mkdtemp(prefix="tl_jax_test_jax_cache_")
    config._tl_jax_cache_owner = True
  from tl_jax.train import trainer

  trainer.enable_compilation_cache(os.environ[JAX_CACHE])  # before this process compiles anything


def pytest_collection_modifyitems(config, items):
  """Tests that share a fixture built once per module or session (one of tests/'s own, e.g. a
  trained run) share a pytest-xdist worker (``--dist loadgroup``), so the fixture is built once
  rather than once per worker: a file whose tests use such a fixture is one group, and files
  sharing a session fixture (``digits_run``) join one group. An explicit ``xdist_group`` stays."""
  shared: dict[str, set[str]] = {}  # file -> its tests' shared fixtures ("session:<name>" or the file)
  for item in items:
    for defs in item._fixtureinfo.name2fixturedefs.values():
      fixture = defs[-1]
      if fixture.scope in ("module", "session") and fixture.baseid.startswith("tests"):
        key = f"session:{fixture.argname}" if fixture.scope == "session" else item.nodeid.split("::")[0]
        shared.setdefault(str(item.path), set()).add(key)
  group = {f: min(keys) for f, keys in shared.items()}
  for _ in range(len(group)):  # files joined through a session fixture take one name
    for f, keys in shared.items():
      group[f] = min([group[f]] + [group[g] for g, other in shared.items() if keys & other])
  for item in items:
    if str(item.path) in group and not item.get_closest_marker("xdist_group"):
      item.add_marker(pytest.mark.xdist_group(group[str(item.path)]))


def pytest_unconfigure(config):
  if getattr(config, "_tl_jax_cache_owner", False) and os.environ.get(JAX_CACHE):
    shutil.rmtree(os.environ.pop(JAX_CACHE), ignore_errors=True)


def _load_config(name: str):
  return importlib.import_module(f"configs.{name}").get_config()  # the package at ROOT (pytest's cwd)


def _random_batch(n: int = 8, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, n).astype(np.int32)}


@pytest.fixture(scope="module")
def unrendered_plots():
  """``tiny.unrendered_plots()`` for a module: ``pytestmark = pytest.mark.usefixtures("unrendered_plots")``
  in a file whose runs' plots no test looks at (set up before the module's own run fixtures)."""
  with tiny.unrendered_plots():
    yield


@pytest.fixture(scope="session")
def shared_tiny_run(tmp_path_factory):
  """The tiny config's run (tests/tiny_config.py on 256 digits; plots unrendered), trained once
  per session for the tests that read it: ``(npz, workdir, summary)``. A test that writes into a
  run (evaluations, a temperature) takes ``tiny_run_copy``."""
  from tl_jax.train import trainer

  root = tmp_path_factory.mktemp("shared_tiny_run")
  npz = tiny.write_npz(root / "digits.npz")
  with tiny.unrendered_plots():
    summary = trainer.train_and_evaluate(tiny.config(npz), str(root / "run"))
  return npz, str(root / "run"), summary


@pytest.fixture
def tiny_run_copy(shared_tiny_run, tmp_path):
  """``shared_tiny_run`` with its workdir copied into the test's ``tmp_path``: ``(npz, workdir, summary)``."""
  npz, workdir, summary = shared_tiny_run
  shutil.copytree(workdir, tmp_path / "tiny_run")
  return npz, str(tmp_path / "tiny_run"), summary


@pytest.fixture
def quickstart_config():
  """The quickstart config, unlocked copy."""
  return _load_config("quickstart")


@pytest.fixture
def load_config():
  """``load_config(name)``: ``configs/<name>.py``'s config."""
  return _load_config


@pytest.fixture
def random_batch():
  """``random_batch(n=8, size=32, seed=0)``: uint8 images and labels of 10 classes."""
  return _random_batch


@pytest.fixture
def run_steps():
  """``run_steps(state, n)``: ``n`` jitted train steps on random batches; ``(before, after)`` on host."""
  import jax

  from tl_jax.train import steps

  def run(state, n):
    before, step = jax.device_get(state), jax.jit(steps.train_step)
    for i in range(n):
      state, _ = step(state, _random_batch(seed=i), jax.random.key(0))
    return before, jax.device_get(state)

  return run


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
  """A finished tiny run (linear probe of Lite0 on digits, 32 px): ``(workdir, config)``.

  Shared by the evaluation, prediction and inspector tests: the head trains on
  cached features, so the whole run costs one backbone forward compile.
  """
  from tl_jax.train import trainer

  cfg = _load_config("quickstart")
  cfg.unlock()
  cfg.data.update(image_size=32, train_per_class=30, cache_dir=str(tmp_path_factory.mktemp("cache")))
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  cfg.optim.lr = 1e-2
  cfg.train.update(num_epochs=5, batch_size=32)
  workdir = str(tmp_path_factory.mktemp("digits_run") / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  return workdir, cfg, summary


@pytest.fixture
def server():
  """A loopback HTTP server (tests/loopback.py): ``server.routes``, ``server.app``, ``server.hits``."""
  import loopback

  srv = loopback.start()
  yield srv
  loopback.stop(srv)


@pytest.fixture
def hub(server, tmp_path, monkeypatch):
  """``server`` as the Hugging Face hub: ``HF_ENDPOINT`` points at it, an empty hub cache, no token."""
  from huggingface_hub import constants

  monkeypatch.setenv("HF_ENDPOINT", server.url)
  monkeypatch.setenv("NO_PROXY", "127.0.0.1")
  monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
  monkeypatch.delenv("HF_TOKEN", raising=False)
  return server
