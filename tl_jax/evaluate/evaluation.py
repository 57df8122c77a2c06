"""A run's checkpoints evaluated after the fact: on its own splits (``evaluate_checkpoint``) or
on data it was not trained with (restore, load, align classes, evaluate).

``evaluate(workdir, "folder:/data/new_test")`` evaluates the best checkpoint
on any labelled data, given as a spec:

- ``folder:PATH``: ``PATH/<class>/<image>`` (as ``config.data.name='folder'``);
- ``npz:PATH``: ``x`` (N,H,W,C uint8), ``y`` and optional ``label_names``;
- ``tfds:NAME:SPLIT``: a prepared TFDS split (slicing syntax, e.g. ``test[:50%]``).

Images are sized to the run's ``config.data.image_size`` as its own data
was (``data.resize``: the evaluation crop of the crop recipe, or squashed). The data's class names must be the run's (any order: labels are mapped by
name); otherwise the error lists the difference. Reports go to
``workdir/eval/<data name>_step<N>/`` like the trainer's own.

The run's classes are those it trained on, stored in its workdir
(``class_names.json``, ``workdir.read_class_names``), not those its data gives
today: a folder with an empty class folder trains without it
(``data.on_error="skip"``) but a rescan keeps it. Runs from before the file
fall back to the rescan (``data.class_names``).

The weights evaluated are, unless given, those the run chose its best
checkpoint by and tested (``config.train.best_by``: "raw", or "ema" for the
moving average; "raw" for runs without the key): ``default_weights``.
"""

import dataclasses
import os
import re
from typing import Any

import ml_collections
import numpy as np

from tl_jax import data as data_lib
from tl_jax.data import image_folder, in_package, tfds_source
from tl_jax.evaluate import tta as tta_lib
from tl_jax.metrics.report import evaluate_split, write_report
from tl_jax.train import checkpoint, ema, steps, trainer, workdir as workdir_lib

KINDS = ("folder", "npz", "tfds")


def _restore_weights(ckpts: checkpoint.Checkpoints, step: int, config, num_classes: int) -> steps.TrainState:
  """Checkpoint ``step``'s weights (params, statistics, averages) in the structure of the phase that
  saved it; the optimizer state is not read (evaluating needs none)."""
  plan = trainer.plan_of(config, num_classes)
  abstract = trainer.abstract_state(config, num_classes, 1, plan.phase_of_checkpoint(step), plan=plan)
  return ckpts.restore(step, abstract, weights_only=True)


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
  config = workdir_lib.load_config(workdir)
  names = workdir_lib.read_class_names(workdir)
  names = data_lib.class_names(config.data) if names is None else names  # a run from before the file
  ckpts = checkpoint.Checkpoints(workdir, metric=ema.metric_name(config.train))  # a reader
  step, state = ckpts.read(which, lambda s: _restore_weights(ckpts, s, config, len(names)))  # a running run's too
  return Restored(config, state, step, names)


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
  # Sized as the run's own data was (data.resize: the crop recipe, or squashed), with its settings.
  run_cfg = {**dict(data_cfg), "resize": data_lib.default_resize(data_cfg)}
  if kind == "folder":
    path = args[0]
    images, labels, names, _ = image_folder.load(path, size, on_error=data_cfg.get("on_error", "fail"),
                                                 cache_dir=cache_dir, stream_cfg=run_cfg)
    name = os.path.basename(os.path.normpath(path))
  elif kind == "npz":
    path = args[0]
    images, labels, names = in_package.npz(path)
    images = data_lib.sized(images, run_cfg)
    name = os.path.splitext(os.path.basename(path))[0]
  else:
    tname, split = args
    t = dict(data_cfg.get("tfds") or {})
    images, labels, names = tfds_source.load(
        tname, split, size, data_dir=t.get("data_dir", ""), image_key=t.get("image_key", "image"),
        label_key=t.get("label_key", "label"), cache_dir=cache_dir, stream_cfg=run_cfg)
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


def default_weights(config) -> str:
  """The weights a run chose its best checkpoint by and tested: ``train.best_by`` ("raw" if absent)."""
  return config["train"].get("best_by", "raw")


def evaluate(workdir: str, spec: str, which: str | int = "best", weights: str | None = None,
             tta: str = "none") -> dict[str, Any]:
  """Evaluates checkpoint ``which`` of ``workdir`` on the data ``spec`` (see the module doc).

  ``weights``: "raw" or "ema"; None = ``default_weights`` of the run. ``tta``: "none" or "flip"
  (``tta.eval_fn``; report folder suffix ``_tta-flip``).

  Writes ``report.json`` and ``confusion_matrix.png`` (in the run's class
  order) under ``workdir/eval/<data name>_step<N>/`` and returns the report
  with ``step``, ``split`` (the data name) and ``report_path``.
  """
  tta_lib.eval_fn(tta)  # an unknown or crop mode fails before anything is loaded
  run = restore(workdir, which)
  weights = weights or default_weights(run.config)
  data = load_data(spec, run.config.data)
  split = align(data, run.class_names)
  result = evaluate_split(tta_lib.eval_fn(tta), ema.weights(run.state, weights), split,
                          run.config.train.eval_batch_size, len(run.class_names))
  out = os.path.join(workdir, "eval", f"{data.name}_step{run.step}" + _suffix(weights, tta))
  path = write_report(out, result, run.class_names, f"{data.name}, step {run.step}, {weights} weights")
  return {"step": run.step, "split": data.name, "weights": weights, "report_path": path, **result["report"]}


def confident_errors(probs: np.ndarray, labels: np.ndarray, n: int = 12) -> np.ndarray:
  """Indices of the ``n`` misclassified examples with the most confident (wrong) prediction."""
  pred = probs.argmax(-1)
  wrong = np.flatnonzero(pred != labels)
  return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:n]


def _suffix(weights: str, tta: str) -> str:
  return ("_ema" if weights == "ema" else "") + ("" if tta == "none" else f"_tta-{tta}")


def evaluate_checkpoint(workdir: str, which: str | int = "best", split: str = "test",
                        weights: str | None = None, tta: str = "none") -> dict[str, Any]:
  """Restores a checkpoint of a finished or running run and evaluates its ``weights`` ("raw" or "ema";
  None = ``default_weights``: what the run chose its best checkpoint by).

  Writes ``report.json`` and ``confusion_matrix.png`` under
  ``workdir/eval/<split>_step<N>[_ema]/`` and returns the report plus its location.
  """
  config = workdir_lib.load_config(workdir)
  weights = weights or default_weights(config)
  # A reader: keeps and deletes nothing; "best" by the metric the run chose by.
  ckpts = checkpoint.Checkpoints(workdir, metric=ema.metric_name(config.train))
  step = ckpts.resolve(which)  # verified, before the data is loaded
  step_fn = tta_lib.eval_fn(tta)  # an unknown or crop mode fails before the data is loaded
  dataset = data_lib.load(config.data)
  if split not in dataset.splits:
    raise ValueError(f"Unknown split {split!r}; this run has {sorted(dataset.splits)}.")
  names, data = workdir_lib.read_class_names(workdir), dataset.splits[split]
  if names is None:  # a run from before class_names.json
    names = dataset.class_names
  elif names != dataset.class_names:  # the data changed since the run: labels by name, or an error
    data = align(EvalData(split, data, dataset.class_names), names)
  # Only shapes are needed: no pretrained weights are read to evaluate.
  step, state = ckpts.read(which, lambda s: _restore_weights(ckpts, s, config, len(names)))  # a running run's too
  result = evaluate_split(step_fn, ema.weights(state, weights), data, config.train.eval_batch_size, len(names))
  out = os.path.join(workdir, "eval", f"{split}_step{step}" + _suffix(weights, tta))
  path = write_report(out, result, names, f"{split}, step {step}, {weights} weights")
  return {"step": step, "split": split, "weights": weights, "report_path": path, **result["report"]}
