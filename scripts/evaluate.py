r"""Evaluates a saved checkpoint of a run in a fresh process.

  python scripts/evaluate.py --workdir runs/quickstart [--checkpoint best|latest|STEP] [--split test|val]
      [--weights raw|ema]

Prints accuracy, top-5 (more than 5 classes), macro F1 and per-class
precision/recall/F1; writes report.json and confusion_matrix.png.
"""

import logging as std_logging

from absl import app, flags, logging

from tl_jax import trainer

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a tl_jax run.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_WEIGHTS = flags.DEFINE_enum("weights", "raw", ["raw", "ema"],
                             "raw: the trained weights; ema: their moving average (runs with train.ema_decay).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  r = trainer.evaluate_checkpoint(_WORKDIR.value, _CHECKPOINT.value, _SPLIT.value, _WEIGHTS.value)
  print(f"{r['split']} @ step {r['step']} ({r['weights']} weights): accuracy {r['accuracy']:.4f}"
        + (f", top-5 {r['top5_accuracy']:.4f}" if "top5_accuracy" in r else "")
        + f", macro F1 {r['macro_f1']:.4f} ({r['num_examples']} examples)")
  for c in r["per_class"]:
    print(f"  {c['name']:>12}  precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
          f"f1 {c['f1']:.3f}  n={c['support']}")
  print(f"report: {r['report_path']} (+ confusion_matrix.png)")


if __name__ == "__main__":
  app.run(main)
