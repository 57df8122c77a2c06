"""Evaluating a run's checkpoint tests, by default, the weights the run chose its best checkpoint by.

A run with ``train.best_by="ema"`` picks "best" by the EMA's validation
accuracy and tests the EMA (summary ``test_weights``); ``evaluate --checkpoint
best`` must then evaluate the EMA too, unless ``--weights`` says otherwise.
"""

import json
import os
import subprocess
import sys

import pytest
import tiny

from tl_jax.evaluate import evaluation
from tl_jax.train import trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("ema_run")
  cfg = tiny.config(tiny.write_npz(tmp / "digits.npz"), **{
      "train.ema_decay": 0.9, "train.best_by": "ema", "train.compilation_cache_dir": ""})
  workdir = str(tmp / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  assert summary["test_weights"] == "ema"
  return workdir, summary


def test_checkpoint_best_tests_the_weights_the_run_chose_by(ema_run):
  workdir, summary = ema_run
  default = evaluation.evaluate_checkpoint(workdir, "best", "test")
  ema = evaluation.evaluate_checkpoint(workdir, "best", "test", weights="ema")
  raw = evaluation.evaluate_checkpoint(workdir, "best", "test", weights="raw")  # explicit wins
  assert default["weights"] == "ema" and raw["weights"] == "raw"
  assert default["loss"] == ema["loss"] != raw["loss"]
  assert default["report_path"] == ema["report_path"] != raw["report_path"]
  # What the run itself tested as its best checkpoint.
  assert default["step"] == summary["best_step"]
  assert default["accuracy"] == pytest.approx(summary["best_test_accuracy"])
  assert default["macro_f1"] == pytest.approx(summary["best_test_macro_f1"])


def test_other_data_defaults_to_the_same_weights(ema_run, tmp_path):
  workdir, _ = ema_run
  spec = f"npz:{tiny.write_npz(tmp_path / 'more.npz', 64)}"
  default, raw = evaluation.evaluate(workdir, spec), evaluation.evaluate(workdir, spec, weights="raw")
  assert default["weights"] == "ema" and raw["weights"] == "raw" and default["loss"] != raw["loss"]
  assert default["loss"] == evaluation.evaluate(workdir, spec, weights="ema")["loss"]


def test_script_default_and_explicit_weights(ema_run):
  workdir, summary = ema_run
  out = subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={workdir}"], cwd=tiny.ROOT,
                       env=tiny.env(), capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"@ step {summary['best_step']} (ema weights): accuracy {summary['best_test_accuracy']:.4f}" in out.stdout


def test_a_run_without_best_by_defaults_to_raw(ema_run, tmp_path):
  # Configs from before train.best_by: the run chose and tested raw weights.
  workdir, _ = ema_run
  config = json.load(open(os.path.join(workdir, "config.json")))
  del config["train"]["best_by"]
  assert evaluation.default_weights(config) == "raw"
  config["train"]["best_by"] = "ema"
  assert evaluation.default_weights(config) == "ema"


def test_predictions_of_the_run_use_the_same_weights(ema_run):
  workdir, _ = ema_run
  from tl_jax import data
  from tl_jax.evaluate import predict
  images = data.load(evaluation.restore(workdir).config.data).splits["test"].images[:8]
  probs = {w: predict.probabilities(predict.from_workdir(workdir, weights=w), images) for w in (None, "ema", "raw")}
  assert (probs[None] == probs["ema"]).all() and not (probs[None] == probs["raw"]).all()
  assert predict.from_workdir(workdir).source.endswith("ema weights")
