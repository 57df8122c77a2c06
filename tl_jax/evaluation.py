"""Evaluation: a state over a whole split (``evaluate_split``, ``write_report``), and a
run's checkpoint on data it was not trained with (restore, load, align classes, evaluate).

``evaluate(workdir, "folder:/data/new_test")`` evaluates the best checkpoint
on any labelled data, given as a spec:

- ``folder:PATH``: ``PATH/<class>/<image>`` (as ``config.data.name='folder'``);
- ``npz:PATH``: ``x`` (N,H,W,C uint8), ``y`` and optional ``label_names``;
- ``tfds:NAME:SPLIT``: a prepared TFDS split (slicing syntax, e.g. ``test[:50%]``).

Images are resized to the run's ``config.data.image_size`` as its own data
was. The data's class names must be the run's (any order: labels are mapped by
name); otherwise the error lists the difference. Reports go to
``workdir/eval/<data name>_step<N>/`` like the trainer's own.
"""

import dataclasses
import json
import os
import re
from typing import Any

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from tl_jax import checkpoint, data as data_lib, ema, metrics, plots, sharding, steps, strategies, workdir as workdir_lib
from tl_jax.data import image_folder, in_package, tfds_source

def evaluate_split(eval_fn, state, split: data_lib.Split, batch_size: int, num_classes: int,
                   mesh: Mesh | None = None) -> dict[str, Any]:
  """Runs ``eval_fn`` over a whole split; returns the report and the confusion matrix.

  With a ``mesh``, each process feeds its rows of every batch and ``eval_fn``
  must return replicated outputs (every process then sees all predictions).
  """
  preds, hits, losses = [], [], []
  for batch, n in data_lib.eval_batches(split, batch_size):
    if mesh is not None:
      batch = sharding.put_batch({k: v[sharding.host_rows(batch_size)] for k, v in batch.items()}, mesh)
    out = jax.device_get(eval_fn(state, batch))
    preds.append(out["pred"][:n]), hits.append(out["top_k"][:n]), losses.append(out["loss"][:n])
  confusion = metrics.confusion_matrix(split.labels, np.concatenate(preds), num_classes)
  top5 = np.concatenate(hits) if num_classes > 5 else None  # top-5 of <= 5 classes is always 1
  report = metrics.classification_report(confusion, top5_correct=top5)
  report["loss"] = float(np.concatenate(losses).mean())
  return {"report": report, "confusion": confusion}


def write_report(out_dir: str, result: dict[str, Any], class_names: list[str], title: str) -> str:
  """``report.json`` and ``confusion_matrix.png`` into ``out_dir``; returns the json path."""
  os.makedirs(out_dir, exist_ok=True)
  report = dict(result["report"])
  for entry, name in zip(report["per_class"], class_names):
    entry["name"] = name
  report["confusion_matrix"] = result["confusion"].tolist()
  path = os.path.join(out_dir, "report.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=1)
  plots.plot_confusion_matrix(result["confusion"], class_names,
                              os.path.join(out_dir, "confusion_matrix.png"), title=title)
  return path


KINDS = ("folder", "npz", "tfds")


@dataclasses.dataclass(frozen=True)
class Restored:
  """A checkpoint of a run, ready to evaluate or predict with."""

  config: ml_collections.ConfigDict
  state: steps.TrainState
  step: int
  class_names: list[str]  # label i of the run's head is class_names[i]


def restore(workdir: str, which: str | int = "best") -> Restored:
  """Restores checkpoint ``which`` (``best``, ``latest`` or a step) of the run in ``workdir``.

  Only shapes are built: no pretrained weights are read, no data is resized.
  """
  from tl_jax import trainer  # the trainer imports this module for evaluate_split

  config = workdir_lib.load_config(workdir)
  names = data_lib.class_names(config.data)
  ckpts = checkpoint.Checkpoints(workdir, metric=ema.metric_name(config.train))  # a reader
  step = ckpts.resolve(which)
  phase = strategies.phase_at(config, max(step - 1, 0))  # the structure of the phase that saved it
  return Restored(config, ckpts.restore(step, trainer.abstract_state(config, len(names), 1, phase)), step, names)


@dataclasses.dataclass(frozen=True)
class EvalData:
  """Labelled images from a spec, labels in the data's own class order."""

  name: str  # for the report folder: eval/<name>_step<N>
  split: data_lib.Split
  class_names: list[str]


def parse_spec(spec: str) -> tuple[str, list[str]]:
  """``'tfds:mnist:test[:10%]'`` -> ``('tfds', ['mnist', 'test[:10%]'])``."""
  kind, _, rest = spec.partition(":")
  args = rest.split(":", 1) if kind == "tfds" else [rest]
  if kind not in KINDS or not all(args) or (kind == "tfds" and len(args) != 2):
    raise ValueError(f"--data {spec!r}: expected folder:PATH, npz:PATH or tfds:NAME:SPLIT.")
  return kind, args


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "data"


def load_data(spec: str, data_cfg) -> EvalData:
  """The images of ``spec`` at ``data_cfg.image_size`` (decoded via the run's cache settings)."""
  kind, args = parse_spec(spec)
  size, cache_dir = data_cfg["image_size"], data_cfg.get("cache_dir", "")
  if kind == "folder":
    path = args[0]
    images, labels, names, _ = image_folder.load(path, size, on_error=data_cfg.get("on_error", "fail"),
                                                 cache_dir=cache_dir)
    name = os.path.basename(os.path.normpath(path))
  elif kind == "npz":
    path = args[0]
    images, labels, names = in_package.npz(path)
    images = data_lib.resize(images, size)
    name = os.path.splitext(os.path.basename(path))[0]
  else:
    tname, split = args
    t = dict(data_cfg.get("tfds") or {})
    images, labels, names = tfds_source.load(
        tname, split, size, data_dir=t.get("data_dir", ""), image_key=t.get("image_key", "image"),
        label_key=t.get("label_key", "label"), cache_dir=cache_dir)
    name = f"{tname}_{split}"
  return EvalData(_safe(name), data_lib.Split(images, np.asarray(labels, np.int32)), list(names))


def align(data: EvalData, class_names: list[str]) -> data_lib.Split:
  """``data``'s split with labels renumbered to ``class_names``' order.

  Raises:
    ValueError: the two sets of class names differ; lists what is missing on each side.
  """
  missing, extra = sorted(set(class_names) - set(data.class_names)), sorted(set(data.class_names) - set(class_names))
  if missing or extra or len(set(data.class_names)) != len(data.class_names):
    raise ValueError(
        f"The class names of the data {data.name!r} differ from the run's.\n"
        f"  in the run, not in the data: {missing}\n  in the data, not in the run: {extra}\n"
        f"  the run's classes: {class_names}\n"
        "Rename the data's classes (folder names, npz label_names) to the run's; their order may differ.")
  to_run = np.array([class_names.index(n) for n in data.class_names], np.int32)
  return data_lib.Split(data.split.images, to_run[data.split.labels])


def evaluate(workdir: str, spec: str, which: str | int = "best", weights: str = "raw") -> dict[str, Any]:
  """Evaluates checkpoint ``which`` of ``workdir`` on the data ``spec`` (see the module doc).

  Writes ``report.json`` and ``confusion_matrix.png`` (in the run's class
  order) under ``workdir/eval/<data name>_step<N>/`` and returns the report
  with ``step``, ``split`` (the data name) and ``report_path``.
  """
  run = restore(workdir, which)
  data = load_data(spec, run.config.data)
  split = align(data, run.class_names)
  result = evaluate_split(jax.jit(steps.eval_step), ema.weights(run.state, weights), split,
                          run.config.train.eval_batch_size, len(run.class_names))
  out = os.path.join(workdir, "eval", f"{data.name}_step{run.step}" + ("_ema" if weights == "ema" else ""))
  path = write_report(out, result, run.class_names, f"{data.name}, step {run.step}, {weights} weights")
  return {"step": run.step, "split": data.name, "weights": weights, "report_path": path, **result["report"]}


def confident_errors(probs: np.ndarray, labels: np.ndarray, n: int = 12) -> np.ndarray:
  """Indices of the ``n`` misclassified examples with the most confident (wrong) prediction."""
  pred = probs.argmax(-1)
  wrong = np.flatnonzero(pred != labels)
  return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:n]
