"""configs/finetune_modern.py runs through the real trainer: 2 steps at 32 px on a tiny npz.

Slow (80 s of CPU: Lite0's step with RandAugment, mixing and a 2-step
accumulation scan compiles, plus a fresh ``scripts/evaluate.py`` process).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tl_jax.evaluate import evaluation
from tl_jax.train import trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_modern_recipe_smoke(load_config, tmp_path):
  rng = np.random.default_rng(0)
  path = str(tmp_path / "tiny.npz")
  np.savez(path, x=rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8), y=np.arange(60) % 10)
  cfg = load_config("finetune_modern")
  assert cfg.randaugment.policy and cfg.mixup.alpha and cfg.mixup.cutmix_alpha and cfg.train.ema_decay
  assert cfg.optim.name == "adamw" and cfg.param_groups.layer_decay and cfg.train.label_smoothing
  cfg.unlock()
  cfg.data.update(dict(path=path, image_size=32, test_fraction=0.2, val_fraction=0.25))  # 36 train
  cfg.train.update(dict(num_epochs=1, batch_size=16, eval_batch_size=16, grad_accum_steps=2,
                        compilation_cache_dir=""))
  cfg.init.pretrained = False  # no weights needed to show the recipe runs
  workdir = str(tmp_path / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  assert summary["final_step"] == 2 and summary["test_weights"] == "ema"
  record = json.loads(open(os.path.join(workdir, "metrics.jsonl")).read())
  assert np.isfinite(record["train_loss"]) and {"val_accuracy", "val_accuracy_ema"} <= set(record)
  # Evaluation never mixes or augments: a fresh process's evaluation of either
  # weights gives what the run logged, and the best step was picked by the EMA.
  for weights, key in (("raw", "val_accuracy"), ("ema", "val_accuracy_ema")):
    r = evaluation.evaluate_checkpoint(workdir, "best", "val", weights=weights)
    assert r["accuracy"] == pytest.approx(record[key], abs=1e-9)
  assert summary["best_val_accuracy"] == record["val_accuracy_ema"]
  out = subprocess.run([sys.executable, "scripts/evaluate.py", "--workdir", workdir, "--split", "val",
                        "--weights", "ema"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 0, out.stderr
  assert "(ema weights)" in out.stdout and f"accuracy {record['val_accuracy_ema']:.4f}" in out.stdout
