"""Keras references build their random weights from numpy draws, in a fresh Keras session.

Under the JAX backend every eager ``jax.random`` draw (and the arithmetic on it) compiles one small
program per shape: building ``keras.applications.EfficientNetB0(weights=None)`` spent ~20 s
compiling truncated normals before the reference ran once. The references' weights only need to be
random and seeded (``keras_parity.randomize`` then sets the BatchNorms and biases), so numpy draws
them here, with the distributions and the clipping of Keras' own initialisers. A fresh session
keeps Keras' layer names those of the published files (a second model in one process would get
``normalization_1``).
"""

import numpy as np
import pytest


def _numpy_random(rng):
  from keras.src.backend import config

  def cast(x, dtype):
    import jax.numpy as jnp

    return jnp.asarray(np.asarray(x, np.float32), dtype or config.floatx())

  def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return cast(rng.normal(mean, stddev, shape), dtype)

  def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return cast(rng.uniform(minval, maxval, shape), dtype)

  def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    z = rng.standard_normal(shape)
    while (out := np.abs(z) > 2.0).any():  # Keras truncates at two standard deviations
      z[out] = rng.standard_normal(out.sum())
    return cast(z * stddev + mean, dtype)

  return {"normal": normal, "uniform": uniform, "truncated_normal": truncated_normal}


@pytest.fixture(autouse=True)
def keras_numpy_initialised(monkeypatch):
  try:
    import keras
    from keras.src.backend.jax import random as jax_random
  except ImportError:  # no Keras (or another backend): nothing to patch
    yield
    return
  keras.backend.clear_session()
  for name, fn in _numpy_random(np.random.default_rng(0)).items():
    monkeypatch.setattr(jax_random, name, fn)
  yield
