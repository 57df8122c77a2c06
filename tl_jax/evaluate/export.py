"""A run's checkpoint as a serving artifact: StableHLO through ``jax.export``.

The artifact takes a batch of uint8 RGB images at the run's size, ``(b, size, size, 3)`` with a
symbolic batch ``b``, and returns float32 logits ``(b, classes)``: the weights' preprocessing is
inside (tl_jax models normalise their own input), so a server feeds decoded, resized pixels. It is
lowered on XLA's native convolutions (what GPUs and TPUs run; no CPU routing) for CPU and CUDA.
Beside it, ``<output>.json`` holds the class names (label i is ``class_names[i]``), the input
size, the run's preprocessing and where the weights came from.

  artifact = export.stablehlo("runs/quickstart", "best", "model.stablehlo")
  exported = jax.export.deserialize(open("model.stablehlo", "rb").read())
  logits = exported.call(images_uint8)
"""

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp

from tl_jax import models
from tl_jax.evaluate import evaluation
from tl_jax.models import layers

PLATFORMS = ("cpu", "cuda")
FORMATS = ("stablehlo",)


def _serve_fn(run: evaluation.Restored):
  variables = {"params": run.state.params, "batch_stats": run.state.batch_stats}

  def serve(images):
    logits, _ = run.state.apply_fn(variables, images, train=False)
    return logits.astype(jnp.float32)

  return serve


def stablehlo(workdir: str, which: str | int = "best", output: str = "", platforms=PLATFORMS) -> dict[str, Any]:
  """Exports checkpoint ``which`` of ``workdir`` to ``output`` (default
  ``workdir/export/step<N>.stablehlo``) and its metadata to ``output + ".json"``; returns the
  metadata with ``path``."""
  run = evaluation.restore(workdir, which)
  size = run.config.data.image_size
  output = output or os.path.join(workdir, "export", f"step{run.step}.stablehlo")
  batch = jax.export.symbolic_shape("b")[0]
  with layers.impl("native"):  # portable: the CPU-routed forms are for training on CPU
    exported = jax.export.export(jax.jit(_serve_fn(run)), platforms=platforms)(
        jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8))
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "wb") as f:
    f.write(exported.serialize())
  meta = {"format": "stablehlo", "workdir": os.path.abspath(workdir), "step": run.step,
          "model": run.config.model.name, "input": {"shape": ["b", size, size, 3], "dtype": "uint8"},
          "output": {"shape": ["b", len(run.class_names)], "dtype": "float32", "meaning": "logits"},
          "class_names": list(run.class_names), "platforms": list(platforms),
          # Normalisation is inside the artifact; resize and crop are the server's, as the weights had them.
          "preprocessing": dataclasses.asdict(models.preprocessing(
              run.config.model.name, run.config.init.get("source", "") or None)),
          "path": os.path.abspath(output)}
  meta = json.loads(json.dumps(meta))  # as load() will read it back (tuples become lists)
  with open(output + ".json", "w") as f:
    json.dump(meta, f, indent=1)
  return meta


def load(path: str) -> tuple[jax.export.Exported, dict[str, Any]]:
  """The deserialized artifact at ``path`` and its metadata."""
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  with open(path + ".json") as f:
    return exported, json.load(f)
