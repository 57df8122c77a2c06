"""The model zoo: path snapshots, declared metadata, and mapping tables that fill every model.

Set ``TL_JAX_UPDATE_SNAPSHOTS=1`` to rewrite tests/snapshots after a deliberate rename.
"""

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import pytest

from tl_jax import models, partition, weights
from tl_jax.models import layers
from tl_jax.weights import keras as keras_tables

SNAPSHOTS = pathlib.Path(__file__).parent / "snapshots"


@functools.lru_cache(maxsize=None)  # the snapshot and table tests share one trace per model
def abstract_variables(name, num_classes=10, size=32):
  """Traced with the native layers: a layer's implementation is picked at trace time inside the
  same module (``layers.impl``), so it cannot change a path, and the CPU-routed kernels' taps
  would make the trace ~40% slower (tests/test_layer_impl.py runs both on one variables tree)."""
  model = models.create(name, num_classes)
  with layers.impl("native"):
    return model, jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))


def _by_model(params):
  """``params`` (a name, or a tuple starting with one) grouped by model for pytest-xdist
  (``--dist loadgroup``): one worker traces a model once for all of its tests."""
  return [pytest.param(*(p if isinstance(p, tuple) else (p,)),
                       marks=pytest.mark.xdist_group(p[0] if isinstance(p, tuple) else p)) for p in params]


@pytest.mark.parametrize("name", _by_model(models.names()))
def test_parameter_paths_snapshot(name):
  """Paths are a public API: renames must update tests/snapshots deliberately."""
  model, variables = abstract_variables(name)
  paths = sorted(partition.flatten(variables))
  snapshot = SNAPSHOTS / f"{name}_paths.txt"
  if os.environ.get("TL_JAX_UPDATE_SNAPSHOTS"):
    snapshot.write_text("\n".join(paths) + "\n")
  assert paths == snapshot.read_text().split()
  head = models.REGISTRY[name].head
  assert f"params/{head}/kernel" in paths and f"params/{head}/bias" in paths


@pytest.mark.parametrize("name", ["resnet18", "keras_resnet50", "vgg11_bn_fc", "mobilenet_v2",
                                  "efficientnet_b0", "keras_efficientnet_v2_b0", "mobilenet_v3_small"])
def test_features_and_headless(name):
  model = models.create(name, 0)
  x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
  with layers.impl("native"):  # as abstract_variables
    (logits, features), variables = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))
  stages = sorted(k for k in features if k.startswith("stage"))
  assert set(features) == {"stem", "pre_logits", *stages}
  assert stages == sorted(f"stage{i}" for i in range(1, len(stages) + 1)) and len(stages) >= 4
  assert logits.shape == features["pre_logits"].shape
  assert "head" not in variables["params"]


def _table_paths(name, source):
  spec = weights.SOURCES[(name, source)]
  tables = [spec.table([])]
  if source == "keras":  # both key layouts
    tables.append(spec.table(["layers/conv2d/vars/0"]))
  return [{dst for dst, _ in t.values() if dst} for t in tables]


@pytest.mark.parametrize("name, source", _by_model(sorted(weights.SOURCES)))
def test_every_source_table_fills_its_model(name, source):
  """Structure of every (model, source) pair, including those too big for a parity run."""
  _, variables = abstract_variables(name)  # paths do not depend on the number of classes
  expected = set(partition.flatten(variables))
  if name.startswith(("vgg", "keras_vgg")) and not name.endswith("_fc"):
    # A pooled top has no layer for the source's classifier (it sits on fc2).
    expected = {p for p in expected if "/head/" not in p}
  for paths in _table_paths(name, source):
    assert paths == expected, (name, source)


def test_keras_layout_names():
  table = keras_tables.table(keras_tables.resnet_layers(50), "keras3")
  # A block with a projection: Keras' conv order is _1, _2, _0 (shortcut), _3.
  assert table["layers/conv2d_3/vars/0"][0] == "params/backbone/stage1/block1/downsample_conv/kernel"
  assert table["layers/batch_normalization_4/vars/3"][0] == "batch_stats/backbone/stage1/block1/bn3/var"
  with pytest.raises(ValueError, match="Unknown Keras weight layout"):
    keras_tables.table([], "keras2")


def test_registry_errors():
  with pytest.raises(ValueError, match="Unknown model 'resnet51'; known models: .*resnet50"):
    models.create("resnet51", 10)
  with pytest.raises(ValueError, match="Unknown source 'keras' for 'resnet50'; known: "
                                       r"\['torchvision', 'timm'\]"):
    weights.load_pretrained("resnet50", source="keras")
  with pytest.raises(ValueError, match="drop_path_rate must be 0"):
    models.create("vgg11", 10, drop_path_rate=0.1).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_missing_file_says_what_to_get_and_where(tmp_path, monkeypatch):
  monkeypatch.setenv("TL_JAX_WEIGHTS", str(tmp_path))
  monkeypatch.setenv("TL_JAX_OFFLINE", "1")  # else the file is downloaded (tests/weights/test_download.py)
  with pytest.raises(FileNotFoundError) as e:
    weights.load_pretrained("resnet50")
  assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in str(e.value)
  assert str(tmp_path / "resnet50-0676ba61.pth") in str(e.value)
  with pytest.raises(FileNotFoundError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
    weights.load_pretrained("keras_resnet50")
