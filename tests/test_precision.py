"""Mixed precision from config: bfloat16 compute, float32 parameters and optimizer state."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import data as data_lib
from tl_jax.train import steps, trainer

STEPS = 4


def _train(cfg, dtype: str):
  cfg.model.dtype = dtype
  state, _ = trainer.create_state(cfg, 10, STEPS)
  train_fn = jax.jit(functools.partial(steps.train_step, loss_fn=steps.cross_entropy))
  split = data_lib.load(cfg.data).splits["train"]
  losses = []
  for batch in itertools.islice(data_lib.train_batches(split, cfg.train.batch_size, cfg.seed), STEPS):
    state, m = train_fn(state, batch, jax.random.key(0))
    losses.append(float(m["loss"]))
  return state, losses, train_fn.lower(state, batch, jax.random.key(0)).as_text()


def test_bfloat16_matches_float32(quickstart_config):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.train.batch_size = 16
  cfg.optim.lr = 3e-3  # steps big enough that the losses move well beyond bf16 rounding
  state16, losses16, hlo16 = _train(cfg, "bfloat16")
  state32, losses32, hlo32 = _train(cfg, "float32")
  # Computation really is in bfloat16 (and really is not in the float32 run).
  assert "bf16" in hlo16 and "bf16" not in hlo32
  # Master weights and Adam moments stay float32.
  for tree in (state16.params, state16.opt_state, state16.batch_stats):
    dtypes = {x.dtype for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}, dtypes
  assert losses32[-1] < losses32[0] - 0.02, losses32  # it learns
  # bf16 keeps 8 bits of mantissa (~0.4%): the curves agree to about 1%.
  np.testing.assert_allclose(losses16, losses32, rtol=2e-2)
