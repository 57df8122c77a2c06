"""A tiny real trainer run writes TensorBoard events that agree with metrics.jsonl."""

import io
import json
import os

import numpy as np
from PIL import Image
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tl_jax.train import trainer


def _events(workdir):
  acc = EventAccumulator(workdir, size_guidance={"scalars": 0, "images": 0})
  acc.Reload()
  return acc


def test_events_match_metrics_jsonl(quickstart_config, tmp_path):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.data.train_per_class = 12  # 120 images: 7 steps of 16 per epoch
  cfg.train.num_epochs = 2
  cfg.train.batch_size = 16
  cfg.train.log_every_steps = 2
  workdir = str(tmp_path / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records] == [7, 14]
  acc = _events(workdir)
  tags = acc.Tags()
  scalar = lambda tag: {e.step: e.value for e in acc.Scalars(tag)}

  # Each metrics.jsonl field, at its record's step.
  for r in records:
    for key, value in r.items():
      if key != "step":
        tag = "val/" + key[4:] if key.startswith("val_") else "epoch/" + key
        assert scalar(tag)[r["step"]] == pytest.approx(value, rel=1e-6), tag
    assert scalar("val/macro_f1")[r["step"]] > 0
  # Train curves at the log cadence (steps 2, 4, 6 then 8, 10, 12: eval steps 7 and 14 log there).
  assert sorted(scalar("train/loss")) == [2, 4, 6, 8, 10, 12]
  assert 0 <= min(scalar("train/accuracy").values()) <= max(scalar("train/accuracy").values()) <= 1
  assert sorted(scalar("train/images_per_s")) == [4, 6, 8, 10, 12]  # the first interval compiles
  assert min(scalar("train/images_per_s").values()) > 0
  # Per-group learning rates: the quickstart's head at lr, backbone at 0.1 x lr (cosine decay).
  head, backbone = scalar("lr/head"), scalar("lr/backbone")
  assert head[2] > head[12] > 0 and backbone[4] == pytest.approx(0.1 * head[4], rel=1e-6)
  # A confusion matrix image at each evaluation, and for the two closing test evaluations.
  assert [e.step for e in acc.Images("val/confusion_matrix")] == [7, 14]
  image = Image.open(io.BytesIO(acc.Images("val/confusion_matrix")[-1].encoded_image_string))
  assert image.size == (acc.Images("val/confusion_matrix")[-1].width, acc.Images("val/confusion_matrix")[-1].height)
  assert np.asarray(image).std() > 0
  assert scalar("test_final/accuracy")[14] == pytest.approx(summary["final_test_accuracy"], rel=1e-6)
  # Calibration beside accuracy: the report's ECE, NLL and Brier, and the reliability diagram.
  report = json.load(open(os.path.join(summary["final_report_dir"], "report.json")))
  for metric in ("ece", "nll", "brier"):
    assert scalar(f"test_final/{metric}")[14] == pytest.approx(report[metric], rel=1e-6), metric
  assert [e.step for e in acc.Images("val/reliability_diagram")] == [7, 14]
  assert {"test_final/confusion_matrix", "test_best/confusion_matrix"} <= set(tags["images"])
