"""The real trainer on the real in-package dataset: learns, checkpoints, resumes, evaluates."""

import json
import os

import pytest

from tl_jax.evaluate import evaluation
from tl_jax.train import trainer


def test_train_resume_and_evaluate_best(quickstart_config, tmp_path):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.train.num_epochs = 2
  cfg.train.batch_size = 64
  workdir = str(tmp_path / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  # Pretrained features make even 2 short epochs at 32 px far better than chance (10%).
  assert summary["final_test_accuracy"] > 0.7, summary
  records = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["epoch"] for r in records] == [1, 2]
  assert all(r["input_wait_ms"] >= 0 and r["train_images_per_s"] > 0 for r in records)  # DevicePrefetch's timing
  for name in ("curves.png", "summary.json", "eval/test_step%d/confusion_matrix.png" % summary["best_step"],
               "eval/test_step%d/report.json" % summary["final_step"]):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  # The best checkpoint, restored in a fresh state, gives the logged accuracies.
  val = evaluation.evaluate_checkpoint(workdir, "best", "val")
  assert val["accuracy"] == pytest.approx(summary["best_val_accuracy"], abs=1e-9)
  test = evaluation.evaluate_checkpoint(workdir, "best", "test")
  assert test["accuracy"] == pytest.approx(summary["best_test_accuracy"], abs=1e-9)
  # Rerunning the same command resumes: nothing left to train, same result.
  again = trainer.train_and_evaluate(cfg, workdir)
  assert again["final_test_accuracy"] == summary["final_test_accuracy"]
  assert len(open(os.path.join(workdir, "metrics.jsonl")).readlines()) == 2
  # A different config on the same workdir is refused, and nothing saved is lost.
  cfg.optim.lr = 0.5
  with pytest.raises(ValueError, match="differs in: optim.lr"):
    trainer.train_and_evaluate(cfg, workdir)
  assert evaluation.evaluate_checkpoint(workdir, "latest", "test")["step"] == records[-1]["step"]
