"""The fine-tuning toolkit in the train step: accumulation, clipping, EMA (and its resume), mixed accuracy.

A tiny conv + BatchNorm + head model keeps each compile to a second.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tl_jax.data import mixing
from tl_jax.freezing import optim
from tl_jax.train import checkpoint, ema, steps


class Tiny(nn.Module):
  running_bn: bool = True  # BatchNorm with running statistics in training too

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(4, (3, 3), name="conv")(x.astype(jnp.float32) / 255.0)
    x = nn.BatchNorm(use_running_average=self.running_bn or not train, momentum=0.9, name="bn")(x)
    return nn.Dense(10, name="head")(nn.relu(x).mean((1, 2))), {}


def make_state(running_bn=True, tx=None, ema_decay=0.0):
  model = Tiny(running_bn)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  # Non-trivial running statistics, so that "running" differs from "batch".
  stats = jax.tree.map(lambda s: s + 0.3, variables["batch_stats"])
  state = steps.TrainState.create(apply_fn=model.apply, params=variables["params"], batch_stats=stats,
                                  tx=tx or optax.adam(1e-2))
  return ema.init(state.replace(step=jnp.zeros((), jnp.int32)), dict(ema_decay=ema_decay))


def batch(n=32, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": jnp.asarray(rng.integers(0, 256, (n, 8, 8, 3)), jnp.uint8),
          "label": jnp.asarray(rng.integers(0, 10, n), jnp.int32)}


def step_fn(**kw):
  return jax.jit(functools.partial(steps.train_step, **kw))


def test_four_micro_batches_of_8_equal_one_batch_of_32_with_running_bn():
  b, key = batch(), jax.random.key(1)
  one, m1 = step_fn()(make_state(), b, key)
  four, m4 = step_fn(grad_accum_steps=4)(make_state(), b, key)
  chex_close = functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=1e-7)
  jax.tree.map(chex_close, jax.device_get(four.params), jax.device_get(one.params))
  jax.tree.map(chex_close, jax.device_get(four.opt_state), jax.device_get(one.opt_state))
  assert float(m4["loss"]) == pytest.approx(float(m1["loss"]), rel=1e-5)
  assert float(m4["accuracy"]) == float(m1["accuracy"])
  # With batch statistics the micro-batches normalise by their own 8 images
  # (and update the running averages 4 times): the update is not the same.
  one, _ = step_fn()(make_state(running_bn=False), b, key)
  four, _ = step_fn(grad_accum_steps=4)(make_state(running_bn=False), b, key)
  assert not np.allclose(four.params["conv"]["kernel"], one.params["conv"]["kernel"], rtol=1e-3)
  assert not np.allclose(four.batch_stats["bn"]["mean"], one.batch_stats["bn"]["mean"], rtol=1e-3)
  with pytest.raises(ValueError, match="grad_accum_steps=5"):
    step_fn(grad_accum_steps=5)(make_state(), b, key)


def test_clip_by_global_norm_before_group_multipliers_and_over_trainable_only():
  params = {"head": {"w": jnp.ones(3)}, "backbone": {"w": jnp.ones(4)}, "old": {"w": jnp.ones(2)}}
  cfg = dict(rules=(("head/.*", "head"), ("backbone/.*", "backbone"), (".*", "frozen")),
             backbone=dict(lr_mult=0.1))
  groups = optim.ParamGroups.from_config(params, cfg)
  tx = optim.make_optimizer(dict(name="sgd", lr=1.0, schedule="constant", clip_grad_norm=2.0), groups, 10)
  grads = {"head": {"w": jnp.full(3, 3.0)}, "backbone": {"w": jnp.full(4, 4.0)}, "old": {"w": jnp.full(2, 1e6)}}
  updates, _ = tx.update(grads, tx.init(params), params)
  norm = np.sqrt(3 * 9 + 4 * 16)  # the frozen gradient does not count
  np.testing.assert_allclose(updates["head"]["w"], -3.0 * 2.0 / norm, rtol=1e-6)
  np.testing.assert_allclose(updates["backbone"]["w"], -0.1 * 4.0 * 2.0 / norm, rtol=1e-6)
  np.testing.assert_array_equal(updates["old"]["w"], 0.0)
  # Below the threshold nothing changes.
  small = jax.tree.map(lambda g: g * 1e-3, grads)
  updates, _ = tx.update(small, tx.init(params), params)
  np.testing.assert_allclose(updates["head"]["w"], -3e-3, rtol=1e-6)


def _timm_decay(step, decay, warmup):
  """timm ModelEmaV3.get_decay (update_after_step=0, gamma=1, power=2/3, min_decay=0)."""
  step = max(0, step - 1)
  if step <= 0:
    return 0.0
  return max(min(1 - (1 + step) ** (-2 / 3), decay), 0.0) if warmup else decay


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_decay_is_timms(warmup):
  for step in (0, 1, 2, 3, 10, 1000, 10 ** 6):
    assert float(ema.decay_at(step, 0.999, warmup=warmup)) == pytest.approx(_timm_decay(step, 0.999, warmup),
                                                                              rel=1e-5)


def test_ema_follows_the_recurrence_of_params_and_batch_stats():
  decay = 0.8
  train = step_fn(ema_fn=functools.partial(ema.update, decay=decay, warmup=True))
  state, key = make_state(running_bn=False, ema_decay=decay), jax.random.key(0)
  want = None
  for i in range(4):
    state, _ = train(state, batch(16, seed=i), key)
    new = jax.device_get({"p": state.params, "s": state.batch_stats})
    d = _timm_decay(i + 1, decay, True)
    want = new if want is None else jax.tree.map(lambda a, b: d * a + (1 - d) * b, want, new)
  got = jax.device_get({"p": state.ema_params, "s": state.ema_batch_stats})
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7), got, want)
  assert not np.allclose(got["p"]["conv"]["kernel"], new["p"]["conv"]["kernel"])
  evaluated = ema.weights(state, "ema")
  assert evaluated.params is state.ema_params and evaluated.batch_stats is state.ema_batch_stats
  with pytest.raises(ValueError, match="no EMA"):
    ema.weights(make_state(), "ema")


def test_ema_checkpoint_resumes_exactly(tmp_path):
  train = step_fn(ema_fn=functools.partial(ema.update, decay=0.9), mix_fn=mixing.from_config(dict(alpha=0.4)))
  key = jax.random.key(3)
  straight = make_state(running_bn=False, ema_decay=0.9)
  for i in range(4):
    straight, _ = train(straight, batch(16, seed=i), key)
  resumed = make_state(running_bn=False, ema_decay=0.9)
  for i in range(2):
    resumed, _ = train(resumed, batch(16, seed=i), key)
  ckpts = checkpoint.Checkpoints(str(tmp_path), metric="val_accuracy_ema")
  ckpts.save(2, resumed, {"val_accuracy": 0.1, "val_accuracy_ema": 0.2})
  resumed = ckpts.restore(2, make_state(running_bn=False, ema_decay=0.9))  # a fresh process's state
  for i in range(2, 4):
    resumed, _ = train(resumed, batch(16, seed=i), key)
  for a, b in zip(jax.tree.leaves(jax.device_get(straight)), jax.tree.leaves(jax.device_get(resumed))):
    np.testing.assert_array_equal(a, b)
  assert ckpts.best_step() == 2 and ckpts.metrics(2)["val_accuracy_ema"] == 0.2


def test_train_accuracy_under_mixing_is_against_the_dominant_label():
  mix_fn = mixing.from_config(dict(alpha=1.0, cutmix_alpha=1.0))
  state, b, train = make_state(), batch(16), step_fn(mix_fn=mix_fn)

  @jax.jit
  def replay(key):  # the step's own mixing: its key is fold_in(fold_in(key, step), 2)
    mixed = mix_fn(jax.random.fold_in(jax.random.fold_in(key, 0), 2), b["image"], b["label"])
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, mixed.images)[0]
    return jnp.mean(jnp.argmax(logits, -1) == mixing.dominant_labels(mixed))

  for seed in range(3):
    key = jax.random.key(seed)
    _, m = train(state, b, key)
    want = replay(key)
    assert float(m["accuracy"]) == pytest.approx(want)
