"""The files of a run's workdir besides its checkpoints.

A workdir holds everything a run leaves behind::

  config.json         the resolved config (a rerun must match it, then resumes)
  class_names.json    the classes of the head, in label order, as the run loaded them
  events.out.tfevents.*  TensorBoard: the records, train curves, lr per group, confusion matrices
  metrics.jsonl       one JSON record per evaluation
  checkpoints/<step>  Orbax checkpoints: the latest k and the best by val accuracy
  feature_cache/      backbone features per split, when only the head trains
  param_groups.txt    every parameter's group, lr multiplier, BatchNorm mode (+ .json)
  curves.png          training curves
  summary.json        test accuracies of the final and the best checkpoint
  eval/<split>_step<N>/{report.json,confusion_matrix.png}
"""

import json
import logging
import os
from typing import Any

import jax
import ml_collections

from tl_jax import partition

log = logging.getLogger(__name__)


def _placement(key: str) -> bool:
  """Options a rerun may change, the run staying the same: where it logs (``log.*``: Weights &
  Biases) and where compiled programs are cached (another machine's path)."""
  return key.startswith("log/") or key == "train/compilation_cache_dir"


def check_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Saves the config, or checks that a rerun uses the same one (then it resumes)."""
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    flat_saved, flat_current = partition.flatten(saved), partition.flatten(current)
    # Options added to tl_jax since the run was saved: it resumes, with their values now.
    added = sorted(set(flat_current) - set(flat_saved))
    diff = sorted(k for k in set(flat_saved) | set(flat_current)
                  if k not in added and not _placement(k) and flat_saved.get(k) != flat_current.get(k))
    if added and not diff:
      log.warning("%s was saved before options %s existed: resuming with %s.", workdir, ", ".join(added),
                  ", ".join(f"{k}={flat_current[k]!r}" for k in added))
    if diff:
      raise ValueError(
          f"{workdir} holds a run with another config (differs in: {', '.join(diff)}). "
          "Use a new --workdir, or rerun with the saved config to resume."
      )
    return
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:  # atomic: other processes may be reading it
    _write_atomic(path, config.to_json(indent=1))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``workdir``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} the workdir of a tl_jax run?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def class_names_path(workdir: str) -> str:
  return os.path.join(workdir, "class_names.json")


def check_class_names(workdir: str, class_names: list[str]) -> None:
  """Saves the classes the run trains on, or checks that a rerun has the same ones.

  Stored because the data cannot be trusted to give them again: a folder with
  an empty class folder loads without it (``data.on_error="skip"``) but a
  rescan (``data.class_names``) keeps it, and folders change after a run.
  Readers of the run take its classes from here (``read_class_names``).
  """
  saved = read_class_names(workdir)
  class_names = [str(n) for n in class_names]  # numpy strings from some sources
  if saved is not None and saved != class_names:
    raise ValueError(
        f"{workdir} holds a run trained on {len(saved)} classes {saved}; the data now gives "
        f"{len(class_names)}: {class_names}. Use a new --workdir, or restore the run's data.")
  if saved is None and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    _write_atomic(class_names_path(workdir), json.dumps(class_names))


def read_class_names(workdir: str) -> list[str] | None:
  """The classes a run trained on, label i first; None for runs from before the file."""
  if not os.path.exists(class_names_path(workdir)):
    return None
  with open(class_names_path(workdir)) as f:
    return [str(n) for n in json.load(f)]


def metrics_path(workdir: str) -> str:
  return os.path.join(workdir, "metrics.jsonl")


def append_metrics(workdir: str, record: dict[str, Any]) -> None:
  """Appends one evaluation record to ``metrics.jsonl``."""
  with open(metrics_path(workdir), "a") as f:
    f.write(json.dumps(record) + "\n")


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of ``metrics.jsonl`` (none if there is no file yet).

  A line cut short by a kill during its write is left out.
  """
  if not os.path.exists(metrics_path(workdir)):
    return []
  records = []
  with open(metrics_path(workdir)) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except ValueError:
        continue
  return records


def resume_metrics(workdir: str, step: int, record: dict[str, Any] | None) -> None:
  """Makes ``metrics.jsonl`` hold one record per evaluated step up to ``step``, the resumed one.

  Records of later steps (their checkpoint was lost) and cut lines go;
  ``record``, the one stored with checkpoint ``step``, is added if a kill came
  between the checkpoint's commit and the record's append.
  """
  if not os.path.exists(metrics_path(workdir)) and record is None:
    return
  kept = [r for r in read_metrics(workdir) if r["step"] <= step]
  if record is not None and not any(r["step"] == step for r in kept):
    kept.append(record)
  _write_atomic(metrics_path(workdir), "".join(json.dumps(r) + "\n" for r in kept))


def write_summary(workdir: str, summary: dict[str, Any]) -> None:
  _write_atomic(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=1))


def _write_atomic(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
