"""Shared by the part-2 zoo parity tests: a ``keras.applications`` reference with random weights,
saved in both .h5 key layouts, converted and compared (logits and pooled features)."""

import contextlib
import os
from unittest import mock

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zoo_parity import compare, images  # noqa: E402


@contextlib.contextmanager
def reference_session(seed):
  """Build a Keras reference inside: a fresh Keras session (a second model in one process would
  name its layers ``normalization_1``, not the published files' names), seeded, whose random
  initialisers draw from numpy. Under the JAX backend each eager ``jax.random`` draw (and the
  arithmetic on it) compiles one small program per shape: ~20 s for EfficientNet-B0's truncated
  normals before the reference ran once. The weights only need to be seeded and random
  (``randomize`` then sets BatchNorms and biases); the draws keep Keras' distributions, and its
  truncation at two standard deviations."""
  keras = pytest.importorskip("keras")
  from keras.src.backend.jax import random as jax_random
  from keras.src.backend import config

  keras.backend.clear_session()
  keras.utils.set_random_seed(seed)
  rng = np.random.default_rng(seed)
  cast = lambda x, dtype: np.asarray(x, dtype or config.floatx())

  def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    z = rng.standard_normal(shape)
    while (out := np.abs(z) > 2.0).any():
      z[out] = rng.standard_normal(out.sum())
    return cast(z * stddev + mean, dtype)

  with mock.patch.multiple(
      jax_random, truncated_normal=truncated_normal,
      normal=lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: cast(rng.normal(mean, stddev, shape), dtype),
      uniform=lambda shape, minval=0.0, maxval=1.0, dtype=None, seed=None: cast(
          rng.uniform(minval, maxval, shape), dtype)):
    yield


def randomize(model, seed, he=False):
  """Seeded weights: non-trivial BatchNorm affines and statistics, random biases (a lost bias
  shows), Keras' own kernel init (its BatchNorms keep the scale) or, with ``he``, He-normal
  kernels (Xception's Glorot separable convs shrink the signal to a constant)."""
  keras = pytest.importorskip("keras")
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    values = layer.get_weights()
    if not values:
      continue
    if isinstance(layer, keras.layers.BatchNormalization):
      n = values[-1].shape
      full = [rng.uniform(0.4, 1.0, n), rng.normal(0, 0.1, n), rng.normal(0, 0.2, n),
              rng.uniform(0.5, 2.0, n)]
      values = full[-len(values):]  # scale=False: no gamma
    elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and len(values) == 2:
      values[1] = rng.normal(0, 0.1, values[1].shape)
    if he and isinstance(layer, keras.layers.SeparableConv2D):
      values = [rng.normal(0, np.sqrt(2.0 / np.prod(values[0].shape[:2])), values[0].shape),
                rng.normal(0, np.sqrt(2.0 / values[1].shape[2]), values[1].shape)]
    elif he and isinstance(layer, keras.layers.Conv2D):
      values[0] = rng.normal(0, np.sqrt(2.0 / np.prod(values[0].shape[:-1])), values[0].shape)
    if isinstance(layer, keras.layers.Dense):  # Glorot on 1000 outputs leaves logits at std ~0.05
      values[0] = rng.normal(0, np.sqrt(1.0 / values[0].shape[0]), values[0].shape)
    layer.set_weights([np.asarray(v, np.float32) for v in values])


def write_legacy_h5(model, path):
  """Keras 2's ``save_weights`` layout (the published files): ``<layer>/<layer>/<var>:0``."""
  h5py = pytest.importorskip("h5py")
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
    for layer in model.layers:
      group = f.create_group(layer.name)
      names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
      group.attrs["weight_names"] = [n.encode("utf8") for n in names]
      for name, w in zip(names, layer.weights):
        group.create_dataset(name, data=np.asarray(w))


def keras_check(name, app, preprocess, pooled_layer, tmp_path, size, seed=0, he=False):
  """``keras.applications.<app>(weights=None)`` randomised, saved both ways, vs tl_jax ``name``.

  ``preprocess``: the Keras ``preprocess_input`` module; ``pooled_layer``: the
  name of its global-pooling layer (the pooled features).
  """
  keras = pytest.importorskip("keras")
  with reference_session(seed):
    reference = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3),
                                                classifier_activation=None)
  randomize(reference, seed, he)
  x = images(seed, size)
  xin = getattr(keras.applications, preprocess).preprocess_input(x.copy())
  both = keras.Model(reference.input, [reference.output, reference.get_layer(pooled_layer).output])
  logits, pooled = both.predict(xin, verbose=0)  # jit-compiled once; eager calls compile per op
  logits, pooled = np.asarray(logits), np.asarray(pooled).reshape(len(xin), -1)
  files = {"keras3": tmp_path / "model.weights.h5", "legacy": tmp_path / "legacy.h5"}
  reference.save_weights(files["keras3"])
  write_legacy_h5(reference, files["legacy"])
  return compare(name, "keras", files, logits, pooled, x)
