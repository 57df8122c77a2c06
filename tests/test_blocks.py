"""Shared blocks: activations match their definitions; squeeze-excite and stochastic depth behave."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax.models import blocks


def test_activations_match_their_definitions():
  x = jnp.linspace(-6.0, 6.0, 49)
  relu6 = jnp.clip(x + 3, 0, 6) / 6
  want = {"hard_sigmoid": relu6, "hard_swish": x * relu6, "swish": x / (1 + jnp.exp(-x)),
          "relu6": jnp.clip(x, 0, 6),
          "gelu": 0.5 * x * (1 + jax.scipy.special.erf(x / np.sqrt(2)))}
  for name, y in want.items():
    np.testing.assert_allclose(blocks.activation(name)(x), y, atol=1e-6, err_msg=name)
  with pytest.raises(ValueError, match="Unknown activation 'mish'.*hard_swish"):
    blocks.activation("mish")


def test_squeeze_excite_widths_and_gate():
  se = blocks.SqueezeExcite(reduced=3, act="relu", gate="hard_sigmoid")
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 8))
  variables = se.init(jax.random.key(1), x)
  shapes = jax.tree.map(jnp.shape, variables["params"])
  assert shapes == {"reduce": {"kernel": (1, 1, 8, 3), "bias": (3,)},
                    "expand": {"kernel": (1, 1, 3, 8), "bias": (8,)}}
  p = variables["params"]
  s = jnp.maximum(x.mean((1, 2)) @ p["reduce"]["kernel"][0, 0] + p["reduce"]["bias"], 0)
  gate = jnp.clip(s @ p["expand"]["kernel"][0, 0] + p["expand"]["bias"] + 3, 0, 6) / 6
  np.testing.assert_allclose(se.apply(variables, x), x * gate[:, None, None], atol=1e-5)


def test_drop_path_drops_whole_examples_and_keeps_the_mean():
  x = jnp.ones((4000, 2, 2, 3))
  y = blocks.DropPath(0.25).apply({}, x, False, rngs={"dropout": jax.random.key(0)})
  per_example = np.asarray(y).reshape(4000, -1)
  assert np.all(np.isclose(per_example, 0.0) | np.isclose(per_example, 1 / 0.75))
  assert np.all(per_example.min(1) == per_example.max(1))  # all or nothing per example
  assert abs(per_example.mean() - 1.0) < 0.05
  np.testing.assert_array_equal(blocks.DropPath(0.25).apply({}, x, True), x)
