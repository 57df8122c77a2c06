"""``scripts/accelerator_check.sh --cpu`` runs every step of the GPU check end to end (tiny settings)."""

import importlib.util
import json
import os
import pathlib
import subprocess

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "cifar10_subset_train.npz"


@pytest.mark.slow  # ~5 min on 2 CPU cores: a parity test, a benchmark row, a fine-tune, a profile
def test_cpu_mode_runs_end_to_end(tmp_path):
  npz = os.environ.get("TL_JAX_CIFAR_NPZ", str(NPZ))
  if not os.path.exists(npz):  # a fresh clone has no ../shared: random pixels of its shape run every step
    rng = np.random.default_rng(0)
    npz = str(tmp_path / "cifar_like.npz")
    np.savez(npz, x=rng.integers(0, 256, (5085, 32, 32, 3), dtype=np.uint8),
             y=(np.arange(5085) % 10).astype(np.int32), label_names=np.array([f"c{i}" for i in range(10)]))
  out = tmp_path / "out"
  run = subprocess.run([str(ROOT / "scripts" / "accelerator_check.sh"), "--cpu", str(out)], cwd=ROOT,
                       env={**os.environ, "TL_JAX_CIFAR_NPZ": npz}, capture_output=True, text=True, timeout=1800)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  files = sorted(p.name for p in out.iterdir())
  assert files == ["benchmark.json", "benchmark.log", "env.txt", "finetune.log", "input.log", "profile.tar.gz",
                   "summary.json", "tests.log"]  # <= 8 files: all come back from a device tool's $OUT
  assert '"what": "train_step"' in (out / "input.log").read_text()  # the input benchmark's last rows
  summary = json.loads((out / "summary.json").read_text())
  assert "passed" in summary["tests"] and "failed" not in summary["tests"]
  row = summary["benchmark"][0]
  assert row["img_per_s"]["tl_jax"] > 0 and row["img_per_s"]["torch_cl"] > 0
  assert 0 < summary["finetune"]["final_test_accuracy"] <= 1 and summary["finetune"]["wall_s"] > 0
  assert summary["finetune_epochs"][0]["train_images_per_s"] > 0  # the trainer's loop timing


@pytest.mark.parametrize("mode", ["frozen", "full"])
def test_the_benchmark_config_builds_a_train_state(mode):
  """``scripts/benchmark.py``'s config, which the GPU check's report and the NNX benchmark build on too,
  is a whole config for ``trainer.create_state`` (traced, not compiled): a key it lacked
  (``init.dont_load``) once stopped every benchmark row at its start."""
  from tl_jax.train import trainer

  spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
  benchmark = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(benchmark)
  state = trainer.abstract_state(benchmark.tl_jax_config("efficientnet_lite0", 32, mode), benchmark.CLASSES, 100, 0)
  assert state.params["head"]["kernel"].shape[-1] == benchmark.CLASSES

