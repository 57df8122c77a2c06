"""A run's checkpoint as a serving artifact: StableHLO through ``jax.export``, or ONNX through
``jax2onnx`` (the ``onnx`` extra: ``pip install 'tl_jax[onnx]'``).

Either artifact takes a batch of uint8 RGB images at the run's size, ``(b, size, size, 3)`` with a
symbolic batch ``b``, and returns float32 logits ``(b, classes)``: the weights' preprocessing is
inside (tl_jax models normalise their own input), so a server feeds decoded, resized pixels. It is
traced on XLA's native layer forms (what GPUs and TPUs run; no CPU routing); StableHLO is lowered
for CPU and CUDA. Beside it, ``<output>.json`` holds the class names (label i is
``class_names[i]``), the input size, the run's preprocessing and where the weights came from.

  artifact = export.stablehlo("runs/quickstart", "best", "model.stablehlo")
  exported = jax.export.deserialize(open("model.stablehlo", "rb").read())
  logits = exported.call(images_uint8)

  export.onnx("runs/quickstart", "best", "model.onnx")
  logits = onnxruntime.InferenceSession("model.onnx").run(None, {"images": images_uint8})[0]

``save_stablehlo`` / ``save_onnx`` export a ``Servable`` (a classifier, its variables, class names
and preprocessing) that need not come from a workdir.
"""

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

from tl_jax import errors, models
from tl_jax.evaluate import evaluation

PLATFORMS = ("cpu", "cuda")
FORMATS = ("stablehlo", "onnx")  # the keys of EXPORTERS
# One ONNX file up to this size; above it the weights go to <output>.data (protobuf's 2 GiB cap).
ONNX_SINGLE_FILE_BYTES = 1 << 30


class OnnxUnsupported(errors.RunError):
  """jax2onnx cannot express the model (an op, or a graph onnxruntime refuses or computes otherwise)."""


@dataclasses.dataclass(frozen=True)
class Servable:
  """What an artifact is made of: a ``models.create`` classifier, its variables, and what a server
  must know. ``servable(run)`` makes one of a checkpoint; any registry model with variables is one."""

  name: str  # the registry name (models.REGISTRY)
  model: nn.Module  # uint8 NHWC images -> (logits, features); has a ``layer_impl`` field
  variables: dict[str, Any]  # params and batch_stats
  image_size: int
  class_names: list[str]
  preprocessing: dict[str, Any]  # ``preprocessing(run)``: normalisation inside, resize and crop the server's
  workdir: str | None = None  # where it came from, for the metadata
  step: int | None = None


def servable(run: evaluation.Restored, workdir: str | None = None) -> Servable:
  """Checkpoint ``run`` (of ``workdir``) as a ``Servable``."""
  return Servable(run.config.model.name, run.state.apply_fn.__self__,  # the run's model.apply (train/state.py)
                  {"params": run.state.params, "batch_stats": run.state.batch_stats},
                  run.config.data.image_size, list(run.class_names), preprocessing(run),
                  workdir and os.path.abspath(workdir), run.step)


def _serve_fn(s: Servable):
  # The run's model keeps its config's layer_impl ("auto": CPU-routed forms when traced on a CPU
  # host), and the model's own setting beats an outer layers.impl: an artifact is for any platform.
  model = s.model.clone(layer_impl="native")

  def serve(images):
    logits, _ = model.apply(s.variables, images, train=False)
    return logits.astype(jnp.float32)

  return serve


def preprocessing(run: evaluation.Restored) -> dict[str, Any]:
  """The input the run's weights expect (``models.preprocessing`` of its model and ``init.source``):
  size, resize, interpolation, mean, std, bgr, crop. tl_jax models normalise their own input."""
  return dataclasses.asdict(models.preprocessing(run.config.model.name, run.config.init.get("source", "") or None))


def stablehlo(workdir: str, which: str | int = "best", output: str = "", platforms=PLATFORMS) -> dict[str, Any]:
  """Exports checkpoint ``which`` of ``workdir`` to ``output`` (default
  ``workdir/export/step<N>.stablehlo``) and its metadata to ``output + ".json"``; returns the
  metadata with ``path``."""
  run = evaluation.restore(workdir, which)
  return save_stablehlo(servable(run, workdir),
                        output or os.path.join(workdir, "export", f"step{run.step}.stablehlo"), platforms)


def _input_spec(s: Servable) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((jax.export.symbolic_shape("b")[0], s.image_size, s.image_size, 3), jnp.uint8)


def _save_metadata(s: Servable, fmt: str, output: str, **extra) -> dict[str, Any]:
  """Writes and returns ``output + ".json"``: what a server needs beside artifact ``output``."""
  size = s.image_size
  meta = {"format": fmt, "workdir": s.workdir, "step": s.step, "model": s.name,
          "input": {"shape": ["b", size, size, 3], "dtype": "uint8"},
          "output": {"shape": ["b", len(s.class_names)], "dtype": "float32", "meaning": "logits"},
          "class_names": list(s.class_names), **extra,
          # Normalisation is inside the artifact; resize and crop are the server's, as the weights had them.
          "preprocessing": s.preprocessing,
          "path": os.path.abspath(output)}
  meta = json.loads(json.dumps(meta))  # as load() will read it back (tuples become lists)
  with open(output + ".json", "w") as f:
    json.dump(meta, f, indent=1)
  return meta


def save_stablehlo(s: Servable, output: str, platforms=PLATFORMS) -> dict[str, Any]:
  """``s`` as a ``jax.export`` artifact at ``output``, its metadata at ``output + ".json"``."""
  exported = jax.export.export(jax.jit(_serve_fn(s)), platforms=platforms)(_input_spec(s))
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "wb") as f:
    f.write(exported.serialize())
  return _save_metadata(s, "stablehlo", output, platforms=list(platforms))


def load(path: str) -> tuple[jax.export.Exported, dict[str, Any]]:
  """The deserialized artifact at ``path`` and its metadata."""
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  with open(path + ".json") as f:
    return exported, json.load(f)


def onnx(workdir: str, which: str | int = "best", output: str = "") -> dict[str, Any]:
  """Exports checkpoint ``which`` of ``workdir`` as ONNX to ``output`` (default
  ``workdir/export/step<N>.onnx``) and its metadata to ``output + ".json"``; returns the metadata
  with ``path``. Needs the ``onnx`` extra."""
  run = evaluation.restore(workdir, which)
  return save_onnx(servable(run, workdir), output or os.path.join(workdir, "export", f"step{run.step}.onnx"))


def _onnx_libraries():
  try:
    import jax2onnx
    import onnx as onnx_lib
    import onnxruntime
  except ImportError as e:
    raise ImportError(f"ONNX export needs jax2onnx, onnx and onnxruntime ({e}): pip install 'tl_jax[onnx]'") from e
  return jax2onnx, onnx_lib, onnxruntime


def save_onnx(s: Servable, output: str, check: bool = True) -> dict[str, Any]:
  """``s`` as an ONNX model at ``output`` (input ``images``, output ``logits``, the batch dynamic),
  its metadata at ``output + ".json"``.

  With ``check``, onnxruntime runs it on two images and must give JAX's logits (1e-3 of their
  scale). ``OnnxUnsupported`` (naming the model and the op, or the difference) otherwise.
  """
  jax2onnx, onnx_lib, ort = _onnx_libraries()
  serve, spec = _serve_fn(s), _input_spec(s)
  # Traced here, jax2onnx sees lax primitives only: its tracing-time stand-ins for flax layers
  # never run (they take other arguments than tl_jax's models pass, and lay out some differently).
  closed = jax.make_jaxpr(serve)(spec)
  try:
    proto = jax2onnx.to_onnx(lambda images: _eval_jaxpr(closed.jaxpr, closed.consts, images)[0], [spec],
                             model_name=s.name, input_names=["images"], output_names=["logits"])
  except Exception as e:  # whatever jax2onnx trips on, the way out is the same
    raise OnnxUnsupported(f"jax2onnx cannot express {s.name}: {_first_line(e)}. "
                          "Export it with --format stablehlo (export.stablehlo) instead.") from e
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  data = None
  if sum(x.nbytes for x in jax.tree.leaves(s.variables)) > ONNX_SINGLE_FILE_BYTES:
    data = os.path.basename(output) + ".data"
  onnx_lib.save_model(proto, output, save_as_external_data=data is not None, all_tensors_to_one_file=True,
                      location=data)
  if check:
    _check_onnx(s, serve, output, ort)
  opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
  return _save_metadata(s, "onnx", output, opset=opset, input_name="images", output_name="logits",
                        external_data=data)


def _check_onnx(s: Servable, serve, path: str, ort) -> None:
  images = np.random.default_rng(0).integers(0, 256, (2, s.image_size, s.image_size, 3), dtype=np.uint8)
  try:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    got = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
  except Exception as e:  # a graph it refuses: the same way out
    raise OnnxUnsupported(f"onnxruntime cannot run the ONNX model of {s.name}: {_first_line(e)}. "
                          "Export it with --format stablehlo (export.stablehlo) instead.") from e
  want = np.asarray(jax.jit(serve)(images))
  diff = float(np.abs(got - want).max())
  if not diff <= 1e-3 * (1 + np.abs(want).max()):
    raise OnnxUnsupported(f"onnxruntime's logits of the ONNX model of {s.name} differ from JAX's by {diff:.3g}. "
                          "Export it with --format stablehlo (export.stablehlo) instead.")


def _first_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__


_POOLS = {lax.reduce_window_max_p: (lax.max, -np.inf), lax.reduce_window_sum_p: (lax.add, 0.0)}


def _eval_jaxpr(jaxpr, consts, *args) -> list[Any]:
  """``jax.core.eval_jaxpr`` with pools (NHWC window reductions) as a pad and strided slices, and
  pads as concatenated borders: jax2onnx makes a (1, kh, kw, 1) window a MaxPool over 4 axes, which
  onnxruntime refuses, and its Pad cannot take a symbolic batch."""
  env = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, args))

  def read(v):
    return v.val if isinstance(v, jex.Literal) else env[v]

  for eqn in jaxpr.eqns:
    inputs, window = [read(v) for v in eqn.invars], eqn.params.get("window_dimensions")
    if eqn.primitive in _POOLS and len(window) == 4 and window[0] == window[3] == 1:
      outputs = [_pool(eqn.primitive, inputs[0], **eqn.params)]
    elif eqn.primitive is lax.pad_p and all(lo >= 0 and hi >= 0 and not inner for lo, hi, inner
                                            in eqn.params["padding_config"]):
      outputs = [_pad(inputs[0], inputs[1], eqn.params["padding_config"])]
    elif eqn.primitive.name in ("pjit", "jit"):  # a jitted function's own jaxpr may hold pools
      outputs = _eval_jaxpr(eqn.params["jaxpr"].jaxpr, eqn.params["jaxpr"].consts, *inputs)
    else:
      params = eqn.primitive.get_bind_params(eqn.params)
      subfuns, params = params if isinstance(params, tuple) else ((), params)  # older jax: a pair
      outputs = eqn.primitive.bind(*subfuns, *inputs, **params)
      outputs = outputs if eqn.primitive.multiple_results else [outputs]
    env.update(zip(eqn.outvars, outputs))
  return [read(v) for v in jaxpr.outvars]


def _pool(primitive, x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  if (set(base_dilation) | set(window_dilation) != {1} or window_strides[0] != 1 or window_strides[3] != 1
      or min(min(p) for p in padding) < 0):
    raise NotImplementedError(f"{primitive.name} with dilation, negative padding or strides across the batch or channels")
  op, fill = _POOLS[primitive]
  x = _pad(x, fill, [(lo, hi, 0) for lo, hi in padding])
  (_, kh, kw, _), (_, sh, sw, _) = window_dimensions, window_strides
  oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  parts = [x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
  out = parts[0]
  for part in parts[1:]:
    out = op(out, part)
  return out


def _pad(x, value, padding_config):
  """``lax.pad`` (no interior padding) as borders concatenated to ``x``."""
  for axis, (lo, hi, _) in enumerate(padding_config):
    if lo or hi:
      edge = lax.slice_in_dim(x, 0, 1, axis=axis)
      # A border of ``value`` shaped like ``edge``, without a broadcast to the symbolic batch;
      # -inf (a max-pool's) by a minimum, as the edge may hold -inf already and -inf * 0 is nan.
      concrete = isinstance(value, (int, float, np.generic, np.ndarray))
      blank = jnp.minimum(edge, value) if concrete and value == -np.inf else edge * 0 + value
      x = lax.concatenate([blank] * lo + [x] + [blank] * hi, axis)
  return x


# What scripts/export.py --format runs: (workdir, which, output) -> metadata.
EXPORTERS = {"stablehlo": stablehlo, "onnx": onnx}
