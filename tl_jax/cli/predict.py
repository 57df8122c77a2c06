r"""Top-k class names with probabilities for image files or folders.

  python scripts/predict.py --workdir runs/quickstart [--checkpoint best] [--top_k 5] IMAGE_OR_FOLDER...
  python scripts/predict.py --model efficientnet_lite0 photo.jpg          # pretrained ImageNet classes
      [--output predictions.csv|predictions.json] [--tta flip|five_crop|ten_crop]
  tl-jax predict --model efficientnet_lite0 photo.jpg   # installed: the same flags

Folders are searched recursively for the formats the image-folder source reads.
"""

import logging as std_logging
import os
import tempfile

from absl import app, flags, logging

from tl_jax import errors
from tl_jax.evaluate import predict, tta

_WORKDIR = flags.DEFINE_string("workdir", "", "Workdir of a tl_jax run (its classes).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number (with --workdir).")
_MODEL = flags.DEFINE_string("model", "", "Instead of --workdir: a model with pretrained ImageNet weights.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes shown per image.")
_TTA = flags.DEFINE_enum("tta", "none", list(tta.MODES), "Test-time augmentation: logits averaged over the "
                         "mirror (flip) or the corner and center crops of the resized picture (five_crop, "
                         "ten_crop: and their mirrors).")
_OUTPUT = flags.DEFINE_string("output", "", "Also write the predictions to this .csv or .json file.")


def main(argv):
  inputs = argv[1:]
  if bool(_WORKDIR.value) == bool(_MODEL.value) or not inputs:
    raise app.UsageError("Give --workdir W or --model NAME (not both), then image files or folders.")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  log = (os.path.join(_WORKDIR.value, "eval", "predict_error.log") if _WORKDIR.value
         else os.path.join(tempfile.gettempdir(), "tl_jax_predict_error.log"))
  with errors.report_failure(log):  # bad input: the cause as the last line, no traceback
    _predict(inputs)


def _predict(inputs):
  predictor = (predict.from_workdir(_WORKDIR.value, _CHECKPOINT.value) if _WORKDIR.value
               else predict.from_pretrained(_MODEL.value))
  paths = predict.list_images(inputs)
  results = predict.predict(predictor, paths, _TOP_K.value, tta=_TTA.value)
  bad = [r for r in results if r.get("error")]
  print(f"{predictor.source}: {len(results) - len(bad)} image(s)")
  for r in results:
    if not r.get("error"):
      print(r["path"])
      for t in r["top_k"]:
        print(f"  {t['probability']:.4f}  {t['class']}")
  if _OUTPUT.value:
    predict.write(results, _OUTPUT.value)
    print(f"predictions: {_OUTPUT.value}")
  if bad:
    print(f"{len(bad)} file(s) could not be read, the others were predicted:")
    for r in bad:
      print(f"  {r['error']}")
    if len(bad) == len(results):
      raise SystemExit(f"None of the {len(bad)} file(s) could be read as images (listed above): "
                       "check the paths and formats.")

