"""The real trainer on the real in-package dataset: learns, checkpoints, writes TensorBoard events
that agree with metrics.jsonl, resumes, evaluates."""

import io
import json
import os

import numpy as np
from PIL import Image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tl_jax.evaluate import evaluation
from tl_jax.train import trainer


def _assert_events_match(workdir, summary, records, log_every):
  """The run's TensorBoard events: every metrics.jsonl field at its record's step, train curves at
  the log cadence, per-group learning rates, confusion matrices and reliability diagrams."""
  acc = EventAccumulator(workdir, size_guidance={"scalars": 0, "images": 0})
  acc.Reload()
  scalar = lambda tag: {e.step: e.value for e in acc.Scalars(tag)}  # noqa: E731
  evals = [r["step"] for r in records]
  for r in records:
    for key, value in r.items():
      if key != "step":
        tag = "val/" + key[4:] if key.startswith("val_") else "epoch/" + key
        assert scalar(tag)[r["step"]] == pytest.approx(value, rel=1e-6), tag
    assert scalar("val/macro_f1")[r["step"]] > 0
  # Train curves every log_every steps; an evaluation step logs its epoch's record instead.
  logged = [s for s in range(log_every, evals[-1] + 1, log_every) if s not in evals]
  assert sorted(scalar("train/loss")) == logged and len(logged) >= 3
  assert 0 <= min(scalar("train/accuracy").values()) <= max(scalar("train/accuracy").values()) <= 1
  assert sorted(scalar("train/images_per_s")) == logged[1:]  # the first interval compiles
  assert min(scalar("train/images_per_s").values()) > 0
  # Per-group learning rates: the quickstart's head at lr, backbone at 0.1 x lr (cosine decay).
  head, backbone = scalar("lr/head"), scalar("lr/backbone")
  assert head[logged[0]] > head[logged[-1]] > 0
  assert backbone[logged[1]] == pytest.approx(0.1 * head[logged[1]], rel=1e-6)
  # A confusion matrix image at each evaluation, and for the two closing test evaluations.
  images = acc.Images("val/confusion_matrix")
  assert [e.step for e in images] == evals
  image = Image.open(io.BytesIO(images[-1].encoded_image_string))
  assert image.size == (images[-1].width, images[-1].height) and np.asarray(image).std() > 0
  assert scalar("test_final/accuracy")[evals[-1]] == pytest.approx(summary["final_test_accuracy"], rel=1e-6)
  # Calibration beside accuracy: the report's ECE, NLL and Brier, and the reliability diagram.
  report = json.load(open(os.path.join(summary["final_report_dir"], "report.json")))
  for metric in ("ece", "nll", "brier"):
    assert scalar(f"test_final/{metric}")[evals[-1]] == pytest.approx(report[metric], rel=1e-6), metric
  assert [e.step for e in acc.Images("val/reliability_diagram")] == evals
  assert {"test_final/confusion_matrix", "test_best/confusion_matrix"} <= set(acc.Tags()["images"])


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
  _assert_events_match(workdir, summary, records, cfg.train.log_every_steps)  # before a rerun adds events
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
