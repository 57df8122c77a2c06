"""StableHLO export of a run (issue 31 item 1): the deserialized artifact, at any batch size, gives
the checkpoint's logits; the script writes it and its metadata."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import tiny
from tl_jax.evaluate import evaluation, export
from tl_jax.models import layers


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  from tl_jax.train import trainer

  tmp = tmp_path_factory.mktemp("export_run")
  cfg = tiny.config(tiny.write_npz(tmp / "digits.npz"), **{"train.compilation_cache_dir": "",
                                                          "train.num_epochs": 1})
  trainer.train_and_evaluate(cfg, str(tmp / "run"))
  return str(tmp / "run")


def test_exported_artifact_matches_the_checkpoint_at_any_batch(tiny_run, tmp_path):
  meta = export.stablehlo(tiny_run, "best", str(tmp_path / "m.stablehlo"))
  exported, saved = export.load(str(tmp_path / "m.stablehlo"))
  assert saved == meta and saved["input"] == {"shape": ["b", 16, 16, 3], "dtype": "uint8"}
  run = evaluation.restore(tiny_run, "best")
  assert saved["class_names"] == run.class_names and saved["step"] == run.step
  rng = np.random.default_rng(0)
  for n in (1, 5):  # the batch is symbolic
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    with layers.impl("native"):
      want, _ = run.state.apply_fn({"params": run.state.params, "batch_stats": run.state.batch_stats}, images,
                                   train=False)
    got = exported.call(images)
    assert got.shape == (n, len(run.class_names)) and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)
  assert set(exported.platforms) == {"cpu", "cuda"}  # lowered for GPU serving too
  with pytest.raises(Exception):  # a wrong input type is refused, not converted
    exported.call(rng.random((1, 16, 16, 3), dtype=np.float32))


def test_export_script(tiny_run, tmp_path):
  out = tmp_path / "a" / "model.stablehlo"
  r = subprocess.run([sys.executable, "scripts/export.py", f"--workdir={tiny_run}", "--checkpoint=latest",
                      f"--output={out}"], cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.getsize(out) > 0 and json.loads((tmp_path / "a" / "model.stablehlo.json").read_text())["step"] > 0
  assert str(out) in r.stdout
  bad = subprocess.run([sys.executable, "scripts/export.py", f"--workdir={tmp_path / 'none'}"], cwd=tiny.ROOT,
                       env=tiny.env(), capture_output=True, text=True, timeout=600)
  assert bad.returncode == 1 and "none" in (bad.stdout + bad.stderr).strip().splitlines()[-1]
