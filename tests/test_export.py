"""StableHLO and ONNX export of a run (issue 31 item 1): the deserialized artifact, or onnxruntime on
the ONNX model, at any batch size, gives the checkpoint's logits; one model of each family converts
to ONNX; the script writes either and its metadata."""

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import tiny
from tl_jax import models
from tl_jax.evaluate import evaluation, export
from tl_jax.models import layers

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  from tl_jax.train import trainer

  tmp = tmp_path_factory.mktemp("export_run")
  cfg = tiny.config(tiny.write_npz(tmp / "digits.npz"), **{"train.compilation_cache_dir": "",
                                                          "train.num_epochs": 1})
  trainer.train_and_evaluate(cfg, str(tmp / "run"))
  return str(tmp / "run")


def test_exported_artifact_matches_the_checkpoint_at_any_batch(tiny_run, tmp_path):
  meta = export.stablehlo(tiny_run, "best", str(tmp_path / "m.stablehlo"))
  exported, saved = export.load(str(tmp_path / "m.stablehlo"))
  assert saved == meta and saved["input"] == {"shape": ["b", 16, 16, 3], "dtype": "uint8"}
  run = evaluation.restore(tiny_run, "best")
  assert saved["class_names"] == run.class_names and saved["step"] == run.step
  rng = np.random.default_rng(0)
  # One jit per batch size (op by op, every primitive would compile apart); native, as exported.
  forward = jax.jit(lambda v, x: run.state.apply_fn(v, x, train=False)[0])
  for n in (1, 5):  # the batch is symbolic
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    with layers.impl("native"):  # read while tracing: the jit's trace is native
      want = forward({"params": run.state.params, "batch_stats": run.state.batch_stats}, images)
    got = exported.call(images)
    assert got.shape == (n, len(run.class_names)) and got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)
  assert set(exported.platforms) == {"cpu", "cuda"}  # lowered for GPU serving too
  with pytest.raises(Exception):  # a wrong input type is refused, not converted
    exported.call(rng.random((1, 16, 16, 3), dtype=np.float32))


def test_export_script(tiny_run, tmp_path):
  out = tmp_path / "a" / "model.stablehlo"
  r = subprocess.run([sys.executable, "scripts/export.py", f"--workdir={tiny_run}", "--checkpoint=latest",
                      f"--output={out}"], cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.getsize(out) > 0 and json.loads((tmp_path / "a" / "model.stablehlo.json").read_text())["step"] > 0
  assert str(out) in r.stdout
  bad = subprocess.run([sys.executable, "scripts/export.py", f"--workdir={tmp_path / 'none'}"], cwd=tiny.ROOT,
                       env=tiny.env(), capture_output=True, text=True, timeout=600)
  assert bad.returncode == 1 and "none" in (bad.stdout + bad.stderr).strip().splitlines()[-1]


def _session(path):
  ort = pytest.importorskip("onnxruntime")
  options = ort.SessionOptions()
  options.log_severity_level = 3
  return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_onnx_model_matches_the_checkpoint_at_any_batch(tiny_run, tmp_path):
  pytest.importorskip("jax2onnx")
  meta = export.onnx(tiny_run, "best", str(tmp_path / "m.onnx"))
  saved = json.loads((tmp_path / "m.onnx.json").read_text())
  assert saved == meta and saved["format"] == "onnx" and saved["input"] == {"shape": ["b", 16, 16, 3], "dtype": "uint8"}
  run = evaluation.restore(tiny_run, "best")
  assert saved["class_names"] == run.class_names and saved["step"] == run.step
  # One metadata for both formats: only the format's own entries differ.
  hlo = export.stablehlo(tiny_run, "best", str(tmp_path / "m.stablehlo"))
  own = {"format", "path", "platforms", "opset", "input_name", "output_name", "external_data"}
  assert {k: v for k, v in saved.items() if k not in own} == {k: v for k, v in hlo.items() if k not in own}
  session = _session(tmp_path / "m.onnx")
  (inp,), (out,) = session.get_inputs(), session.get_outputs()
  assert (inp.name, inp.type, out.name) == ("images", "tensor(uint8)", "logits")
  assert isinstance(inp.shape[0], str) and inp.shape[1:] == [16, 16, 3]  # a dynamic batch
  rng = np.random.default_rng(0)
  for n in (1, 5):
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    with layers.impl("native"):
      want, _ = run.state.apply_fn({"params": run.state.params, "batch_stats": run.state.batch_stats}, images,
                                   train=False)
    got = session.run(None, {"images": images})[0]
    assert got.shape == (n, len(run.class_names)) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-4, rtol=1e-4)
  with pytest.raises(Exception, match="(?i)type"):  # a wrong input type is refused, not converted
    session.run(None, {"images": rng.random((1, 16, 16, 3), dtype=np.float32)})


def test_export_script_onnx(tiny_run, tmp_path):
  pytest.importorskip("jax2onnx")
  out = tmp_path / "model.onnx"
  r = subprocess.run([sys.executable, "scripts/export.py", f"--workdir={tiny_run}", "--format=onnx",
                      f"--output={out}"], check=False, cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True,
                     timeout=900)
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.getsize(out) > 0 and json.loads((tmp_path / "model.onnx.json").read_text())["format"] == "onnx"
  assert str(out) in r.stdout


class _Toy(nn.Module):
  """A 'classifier' with no parameters: ``op`` of the float pixels."""

  op: Callable
  layer_impl: str | None = None  # what export sets

  def __call__(self, images, train: bool = False):
    return self.op(images.astype(jnp.float32)), {}


def _toy(op, size: int = 8) -> export.Servable:
  return export.Servable("toy", _Toy(op), {}, size, ["a"], {})


def test_onnx_pools_are_flax_pools(tmp_path):
  """Pools (window reductions) are rewritten for onnxruntime: same values as Flax's, any padding."""
  pytest.importorskip("jax2onnx")

  def pools(x):
    return jnp.concatenate([p.reshape(x.shape[0], -1) for p in (
        nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1))), nn.max_pool(x, (3, 3), (2, 2), padding="SAME"),
        nn.max_pool(x, (2, 2), (2, 2)), nn.avg_pool(x, (2, 2), (2, 2)),
        nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False))], axis=1)

  export.save_onnx(_toy(pools, 9), str(tmp_path / "pools.onnx"))  # check=True: onnxruntime agrees with JAX
  images = np.random.default_rng(0).integers(0, 256, (3, 9, 9, 3), dtype=np.uint8)
  got = _session(tmp_path / "pools.onnx").run(None, {"images": images})[0]
  np.testing.assert_allclose(got, np.asarray(pools(jnp.asarray(images, jnp.float32))), rtol=1e-6)


def test_onnx_errors_name_the_op_and_stablehlo(tmp_path, monkeypatch):
  pytest.importorskip("jax2onnx")
  def callback(x):  # a host callback: no ONNX op
    return jax.pure_callback(np.tanh, jax.ShapeDtypeStruct((x.shape[0], 3), jnp.float32), x.mean((1, 2)))

  with pytest.raises(export.OnnxUnsupported, match=r"toy.*'pure_callback'.*--format stablehlo"):
    export.save_onnx(_toy(callback), str(tmp_path / "toy.onnx"))
  # jax2onnx converts igammac, but onnxruntime computes nan: the check on writing catches it.
  with pytest.raises(export.OnnxUnsupported, match=r"toy differ from JAX's by nan.*--format stablehlo"):
    export.save_onnx(_toy(lambda x: lax.igammac(x.mean((1, 2)) + 1.0, x.mean((1, 2)) + 2.0)),
                     str(tmp_path / "toy2.onnx"))
  assert not os.path.exists(tmp_path / "toy.onnx.json") and not os.path.exists(tmp_path / "toy2.onnx.json")
  monkeypatch.setitem(sys.modules, "jax2onnx", None)  # the extra not installed
  with pytest.raises(ImportError, match=r"pip install 'tl_jax\[onnx\]'"):
    export.save_onnx(_toy(jnp.tanh), str(tmp_path / "t.onnx"))


# The smallest registry model of each family (the tiny run covers EfficientNet-Lite0); resnetv2 twice:
# Keras' BatchNorm layout and BiT's GroupNorm with standardized weights.
FAMILY_MODELS = {"resnet18": 32, "mobilenet_v3_small": 32, "vgg11": 32, "densenet121": 32, "convnext_tiny": 32,
                 "regnet_y_400mf": 32, "keras_resnet50v2": 32, "bit_m_r50x1": 32, "inception_v3": 75,
                 "keras_xception": 71}


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_onnx_model_of_each_family_matches_jax(name, tmp_path):
  """Random weights (head and BatchNorm statistics too, so that neither is a no-op) through the
  exporter's own path; onnxruntime's logits are JAX's to 1e-4."""
  pytest.importorskip("jax2onnx")
  size, model = FAMILY_MODELS[name], models.create(name, 4)
  variables = jax.jit(lambda key: model.init(key, jnp.zeros((1, size, size, 3), jnp.uint8)))(jax.random.key(0))
  variables = jax.tree.map(np.asarray, dict(variables))
  rng = np.random.default_rng(1)
  head = variables["params"]["head"]["kernel"]
  variables["params"]["head"]["kernel"] = rng.normal(0, head.shape[0] ** -0.5, head.shape).astype(np.float32)
  if "batch_stats" in variables:
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, x: (rng.uniform(0.5, 1.5, x.shape) if path[-1].key == "var" else rng.normal(0, 0.1, x.shape))
        .astype(np.float32), variables["batch_stats"])
  s = export.Servable(name, model, variables, size, ["a", "b", "c", "d"],
                      json.loads(json.dumps(dataclasses.asdict(models.preprocessing(name)))))
  meta = export.save_onnx(s, str(tmp_path / f"{name}.onnx"), check=False)
  assert meta["model"] == name and meta["external_data"] is None
  images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  with layers.impl("native"):
    want, _ = jax.jit(lambda x: model.apply(variables, x, train=False))(images)
  got = _session(tmp_path / f"{name}.onnx").run(None, {"images": images})[0]
  np.testing.assert_allclose(got, np.asarray(want), atol=1e-4, rtol=1e-4)
