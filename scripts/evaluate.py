r"""Evaluates a saved checkpoint of a run in a fresh process.

  python scripts/evaluate.py --workdir runs/quickstart [--checkpoint best|latest|STEP] [--split test|val]
  python scripts/evaluate.py --workdir runs/quickstart --data folder:PATH|npz:PATH|tfds:NAME:SPLIT
      [--weights raw|ema]

--weights defaults to the weights the run chose its best checkpoint by and
tested (``train.best_by``: raw, or ema for a run that picked by its moving
average). The run's classes are those it trained on (its class_names.json).

Prints accuracy, top-5 (more than 5 classes), macro F1 and per-class
precision/recall/F1; writes report.json and confusion_matrix.png. With
--data, on any labelled data whose class names are the run's (tl_jax.evaluate.evaluation),
into W/eval/<data name>_step<N>/. A checkpoint that fails verification is an
error naming it and the file at fault (exit 1; traceback in
<workdir>/eval/error.log, or printed with --verbose).
"""

import logging as std_logging
import os

from absl import app, flags, logging

from tl_jax import errors
from tl_jax.evaluate import evaluation
from tl_jax.train import trainer

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a tl_jax run.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_DATA = flags.DEFINE_string("data", "", "Other data instead of a split: folder:PATH, npz:PATH or tfds:NAME:SPLIT.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print the full traceback of a failure.")
_WEIGHTS = flags.DEFINE_enum("weights", None, ["raw", "ema"],
                             "raw: the trained weights; ema: their moving average (runs with train.ema_decay). "
                             "Default: those the run chose its best checkpoint by (config.train.best_by).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  with errors.report_failure(os.path.join(_WORKDIR.value, "eval", "error.log"), _VERBOSE.value):
    if _DATA.value:
      r = evaluation.evaluate(_WORKDIR.value, _DATA.value, _CHECKPOINT.value, _WEIGHTS.value)
    else:
      r = evaluation.evaluate_checkpoint(_WORKDIR.value, _CHECKPOINT.value, _SPLIT.value, _WEIGHTS.value)
  print(f"{r['split']} @ step {r['step']} ({r['weights']} weights): accuracy {r['accuracy']:.4f}"
        + (f", top-5 {r['top5_accuracy']:.4f}" if "top5_accuracy" in r else "")
        + f", macro F1 {r['macro_f1']:.4f} ({r['num_examples']} examples)")
  for c in r["per_class"]:
    print(f"  {c['name']:>12}  precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
          f"f1 {c['f1']:.3f}  n={c['support']}")
  print(f"report: {r['report_path']} (+ confusion_matrix.png)")


if __name__ == "__main__":
  app.run(main)
