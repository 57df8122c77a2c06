r"""Evaluates a saved checkpoint of a run in a fresh process.

  python scripts/evaluate.py --workdir runs/quickstart [--checkpoint best|latest|STEP] [--split test|val]
  python scripts/evaluate.py --workdir runs/quickstart --data folder:PATH|npz:PATH|tfds:NAME:SPLIT
      [--weights raw|ema] [--tta flip]
  python scripts/evaluate.py --workdir runs/quickstart --calibrate   # temperature scaling
  python scripts/evaluate.py --workdir runs/quickstart --wise_ft      # WiSE-FT over alpha 0, 0.1, ..., 1
  tl-jax evaluate --workdir runs/quickstart [...]   # installed: the same flags

--weights defaults to the weights the run chose its best checkpoint by and
tested (``train.best_by``: raw, or ema for a run that picked by its moving
average). The run's classes are those it trained on (its class_names.json).

Prints accuracy, top-5 (more than 5 classes), macro F1 and per-class
precision/recall/F1; writes report.json and confusion_matrix.png. With
--data, on any labelled data whose class names are the run's (tl_jax.evaluate.evaluation),
into W/eval/<data name>_step<N>/. A checkpoint that fails verification is an
error naming it and the file at fault (exit 1; traceback in
<workdir>/eval/error.log, or printed with --verbose).

Every report has the calibration: ECE and classwise ECE (15 bins), NLL, Brier score, and
reliability_diagram.png. --calibrate fits one temperature on the run's val split (saved as
W/calibration.json, used by scripts/predict.py for that checkpoint) and prints the test split's
calibration before and after (report in W/eval/test_step<N>[_ema]_calibrated/).
"""

import logging as std_logging
import os

from absl import flags, logging

from tl_jax import errors
from tl_jax.evaluate import evaluation, temperature, tta, wise_ft
from tl_jax.train import trainer

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a tl_jax run.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_DATA = flags.DEFINE_string("data", "", "Other data instead of a split: folder:PATH, npz:PATH or tfds:NAME:SPLIT.")
_CALIBRATE = flags.DEFINE_bool("calibrate", False, "Fit a temperature on the val split, save it with the run, "
                               "report the test split before and after.")
_TTA = flags.DEFINE_enum("tta", "none", list(tta.MODES), "Test-time augmentation, logits averaged: flip "
                         "(five_crop/ten_crop need the larger picture: scripts/predict.py on image files).")
_WISE_FT = flags.DEFINE_bool("wise_ft", False, "Interpolate the backbone between the pretrained start and the "
                             "checkpoint (alpha 0..1, head kept); accuracy per alpha on val and test.")
_ALPHAS = flags.DEFINE_list("alphas", [str(a) for a in wise_ft.ALPHAS], "--wise_ft: the alphas evaluated.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print the full traceback of a failure.")
_WEIGHTS = flags.DEFINE_enum("weights", None, ["raw", "ema"],
                             "raw: the trained weights; ema: their moving average (runs with train.ema_decay). "
                             "Default: those the run chose its best checkpoint by (config.train.best_by).")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  with errors.report_failure(os.path.join(_WORKDIR.value, "eval", "error.log"), _VERBOSE.value):
    if _WISE_FT.value:
      w = wise_ft.wise_ft(_WORKDIR.value, _CHECKPOINT.value, [float(a) for a in _ALPHAS.value],
                          weights=_WEIGHTS.value)
      for i, a in enumerate(w["alphas"]):
        print(f"  alpha {a:.2f}: val accuracy {w['val']['accuracy'][i]:.4f}  "
              f"test accuracy {w['test']['accuracy'][i]:.4f}")
      print(f"chosen on val: alpha {w['best_alpha']:g}, test accuracy {w['test_at_best']['test']:.4f}")
      for split, p in w.get("chosen_vs_finetuned", {}).items():
        print(f"  {split}: alpha {w['best_alpha']:g} - alpha 1 = {100 * p['difference']:+.1f} points, 95% paired interval "
              f"[{100 * p['low']:+.1f}, {100 * p['high']:+.1f}], McNemar p {p['mcnemar_p']:.3g}: "
              + ("separated" if p["separated"] else "not separated"))
      print(f"curve and plot: {w['path']} (and wise_ft.png beside it)")
      return
    if _CALIBRATE.value:
      c = temperature.calibrate(_WORKDIR.value, _CHECKPOINT.value, _WEIGHTS.value, test_split=_SPLIT.value)
      print(f"temperature {c['temperature']:.4f} (fitted on val, step {c['step']}, {c['weights']} weights) "
            f"-> {c['calibration_path']}")
      for when in ("before", "after"):
        m = c[when]
        print(f"  {_SPLIT.value} {when:>6}: ECE {m['ece']:.4f}  classwise ECE {m['classwise_ece']:.4f}  "
              f"NLL {m['nll']:.4f}  Brier {m['brier']:.4f}")
      print(f"report: {c['report_path']} (+ reliability_diagram.png)")
      return
    if _DATA.value:
      r = evaluation.evaluate(_WORKDIR.value, _DATA.value, _CHECKPOINT.value, _WEIGHTS.value, _TTA.value)
    else:
      r = evaluation.evaluate_checkpoint(_WORKDIR.value, _CHECKPOINT.value, _SPLIT.value, _WEIGHTS.value,
                                         _TTA.value)
  print(f"{r['split']} @ step {r['step']} ({r['weights']} weights): accuracy {r['accuracy']:.4f}"
        + (f", top-5 {r['top5_accuracy']:.4f}" if "top5_accuracy" in r else "")
        + f", macro F1 {r['macro_f1']:.4f} ({r['num_examples']} examples)")
  for c in r["per_class"]:
    print(f"  {c['name']:>12}  precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
          f"f1 {c['f1']:.3f}  n={c['support']}")
  if "ece" in r:
    print(f"calibration: ECE {r['ece']:.4f}  classwise ECE {r['classwise_ece']:.4f}  NLL {r['nll']:.4f}  "
          f"Brier {r['brier']:.4f}")
  print(f"report: {r['report_path']} (+ confusion_matrix.png, reliability_diagram.png)")

