"""A state evaluated over a whole split: the report (accuracy, top-5, per-class P/R/F1, loss,
calibration: ECE, classwise ECE, NLL, Brier), the confusion matrix and the split's logits;
``write_report`` puts the report, the confusion matrix and the reliability diagram into a folder."""

import json
import os
from typing import Any

import jax
from jax.sharding import Mesh
import numpy as np

from tl_jax import data as data_lib, sharding
from tl_jax.metrics import calibration, classification as metrics, plots

PREDICTIONS = "predictions.npz"


def evaluate_split(eval_fn, state, split: data_lib.Split, batch_size: int, num_classes: int,
                   mesh: Mesh | None = None) -> dict[str, Any]:
  """Runs ``eval_fn`` over a whole split; returns the report, the confusion matrix and, when
  ``eval_fn`` returns ``logits``, the ``(N, C)`` float32 logits with the calibration in the report.

  With a ``mesh``, each process feeds its rows of every batch and ``eval_fn``
  must return replicated outputs (every process then sees all predictions).
  """
  preds, hits, losses, logits = [], [], [], []
  for batch, n in data_lib.eval_batches(split, batch_size):
    if mesh is not None:
      batch = sharding.put_batch({k: v[sharding.host_rows(batch_size)] for k, v in batch.items()}, mesh)
    out = jax.device_get(eval_fn(state, batch))
    preds.append(out["pred"][:n]), hits.append(out["top_k"][:n]), losses.append(out["loss"][:n])
    if "logits" in out:
      logits.append(np.asarray(out["logits"][:n], np.float32))
  pred = np.concatenate(preds).astype(np.int32)
  confusion = metrics.confusion_matrix(split.labels, pred, num_classes)
  top5 = np.concatenate(hits) if num_classes > 5 else None  # top-5 of <= 5 classes is always 1
  report = metrics.classification_report(confusion, top5_correct=top5)
  report["loss"] = float(np.concatenate(losses).mean())
  result = {"report": report, "confusion": confusion, "pred": pred,
            "labels": np.asarray(split.labels, np.int32)}
  if logits:
    result["logits"] = np.concatenate(logits)
    report.update(calibration.calibration_report(result["logits"], split.labels))
  return result


def write_report(out_dir: str, result: dict[str, Any], class_names: list[str], title: str) -> str:
  """``report.json``, ``confusion_matrix.png``, ``predictions.npz`` (per image: ``labels``, ``pred``;
  what paired tests between runs on the same images need) and (with calibration)
  ``reliability_diagram.png`` into ``out_dir``; returns the json path."""
  os.makedirs(out_dir, exist_ok=True)
  report = dict(result["report"])
  for entry, name in zip(report["per_class"], class_names):
    entry["name"] = name
  report["confusion_matrix"] = result["confusion"].tolist()
  if "pred" in result:
    np.savez(os.path.join(out_dir, PREDICTIONS), labels=result["labels"], pred=result["pred"])
  path = os.path.join(out_dir, "report.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=1)
  plots.plot_confusion_matrix(result["confusion"], class_names,
                              os.path.join(out_dir, "confusion_matrix.png"), title=title)
  if "reliability" in report:
    plots.plot_reliability_diagram(report["reliability"], os.path.join(out_dir, "reliability_diagram.png"),
                                   ece=report["ece"], title=title)
  return path
