r"""A run's checkpoint as a serving artifact (StableHLO through jax.export; tl_jax.evaluate.export).

  python scripts/export.py --workdir runs/quickstart --checkpoint best --output model.stablehlo
  tl-jax export --workdir runs/quickstart --checkpoint best --output model.stablehlo   # installed
  python scripts/export.py --workdir runs/quickstart --format onnx --output model.onnx  # pip install 'tl_jax[onnx]'

The artifact takes uint8 images (b, size, size, 3), any batch b, and returns float32 logits; the
class names and the preprocessing are in model.stablehlo.json (model.onnx.json) beside it. Load it
with jax.export.deserialize(open("model.stablehlo", "rb").read()).call(images), or with
onnxruntime.InferenceSession("model.onnx").run(None, {"images": images})[0].
"""

import os

from absl import flags, logging

from tl_jax import errors
from tl_jax.evaluate import export

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number.")
_FORMAT = flags.DEFINE_enum("format", "stablehlo", list(export.FORMATS), "The artifact's format.")
_OUTPUT = flags.DEFINE_string("output", "", "The artifact's path (default: WORKDIR/export/step<N>.<format>).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print the full traceback of a failure.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  with errors.report_failure(os.path.join(_WORKDIR.value, "export", "error.log"), _VERBOSE.value):
    meta = export.EXPORTERS[_FORMAT.value](_WORKDIR.value, _CHECKPOINT.value, _OUTPUT.value)
  print(f"{meta['model']} step {meta['step']}: {meta['path']} (input uint8 {meta['input']['shape']}, "
        f"{len(meta['class_names'])} classes; metadata in {meta['path']}.json)")

