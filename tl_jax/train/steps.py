"""Pure train and eval steps. Dependencies are bound with ``functools.partial``."""

import functools
from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

from tl_jax.data import mixing
from tl_jax.metrics import classification as metrics
from tl_jax.train import guard


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the BatchNorm statistics."""

  batch_stats: Any = None
  # Weight averages (``ema``); None without train.ema_decay.
  ema_params: Any = None
  ema_batch_stats: Any = None


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, label_smoothing: float = 0.0) -> jnp.ndarray:
  """Mean softmax cross-entropy with integer labels and optional smoothing."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def train_step(state: TrainState, batch: dict[str, jnp.ndarray], rng: jax.Array, *, loss_fn=cross_entropy,
               augment_fn=None, mix_fn=None, ema_fn=None, grad_accum_steps: int = 1,
               skip_nonfinite: bool = False):
  """One optimizer step on ``batch = {'image', 'label'}``; returns (state, metrics).

  ``augment_fn(rng, images)`` (``data.randaugment.from_config``) and
  ``mix_fn(rng, images, labels)`` (``data.mixing.from_config``), if given,
  run here on the device, each with a key of its own derived from ``rng`` and
  the step. The gradient is the mean over ``grad_accum_steps`` equal
  micro-batches of the batch, run one after the other (``accumulate``).
  ``ema_fn(state)`` (``ema.from_config``) then updates the weight averages.
  ``accuracy`` is against each image's dominant label when mixing.
  ``metrics['nonfinite']`` is 1 if the loss, gradients or update were not
  finite; ``skip_nonfinite`` then drops the update (``guard.guarded``).
  """
  rng = jax.random.fold_in(rng, state.step)
  images = batch["image"] if augment_fn is None else augment_fn(jax.random.fold_in(rng, 1), batch["image"])
  mixed = (mixing.unmixed(images, batch["label"]) if mix_fn is None
           else mix_fn(jax.random.fold_in(rng, 2), images, batch["label"]))
  grads, (loss, logits, batch_stats) = accumulate(functools.partial(_objective, state.apply_fn, loss_fn=loss_fn),
                                                  state.params, state.batch_stats, mixed, rng, grad_accum_steps)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  new_state, nonfinite = guard.guarded(state, new_state, loss, skip=skip_nonfinite)
  if ema_fn is not None:  # after the guard: a dropped update leaves the averages finite
    new_state = ema_fn(new_state)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == mixing.dominant_labels(mixed))
  return new_state, {"loss": loss, "accuracy": accuracy, "nonfinite": nonfinite}


def _objective(apply_fn, params, batch_stats, mixed: mixing.Mixed, rng, *, loss_fn):
  variables = {"params": params, "batch_stats": batch_stats}
  (logits, _), updates = apply_fn(
      variables, mixed.images, train=True, mutable=["batch_stats"], rngs={"dropout": rng}
  )
  return mixing.loss(loss_fn, logits, mixed), (logits, updates.get("batch_stats", batch_stats))


def accumulate(objective, params, batch_stats, mixed: mixing.Mixed, rng: jax.Array, k: int):
  """Mean gradient of ``objective`` over ``k`` micro-batches of ``mixed``, in a scan.

  ``objective(params, batch_stats, micro_batch, rng) -> (loss, (logits,
  batch_stats))``; each micro-batch starts from the statistics the previous
  one left (as k steps of a framework that accumulates). Returns ``(grads,
  (mean loss, logits of the whole batch, batch_stats))``. Only one
  micro-batch's activations are alive at a time.
  """
  grad_fn = jax.value_and_grad(objective, has_aux=True)
  if k == 1:
    (loss, (logits, batch_stats)), grads = grad_fn(params, batch_stats, mixed, rng)
    return grads, (loss, logits, batch_stats)
  n = mixed.images.shape[0]
  if n % k:
    raise ValueError(f"The batch of {n} does not split into train.grad_accum_steps={k} equal micro-batches.")
  # Micro-batch j holds rows j, j + k, ...: on a data-parallel mesh each one
  # stays spread over all devices.
  split = lambda x: jnp.swapaxes(x.reshape(n // k, k, *x.shape[1:]), 0, 1)
  micro = mixing.Mixed(split(mixed.images), split(mixed.labels), split(mixed.labels_b),
                       jnp.broadcast_to(mixed.lam, (k,)))

  def body(carry, xs):
    total, stats = carry
    batch, i = xs
    (loss, (logits, stats)), grads = grad_fn(params, stats, batch, jax.random.fold_in(rng, 3 + i))
    return (jax.tree.map(jnp.add, total, grads), stats), (loss, logits)

  zeros = jax.tree.map(jnp.zeros_like, params)
  (total, batch_stats), (losses, logits) = jax.lax.scan(body, (zeros, batch_stats), (micro, jnp.arange(k)))
  grads = jax.tree.map(lambda g: g / k, total)
  return grads, (losses.mean(), jnp.swapaxes(logits, 0, 1).reshape(n, -1), batch_stats)


def eval_step(state: TrainState, batch: dict[str, jnp.ndarray], *, top_k: int = 5) -> dict[str, jnp.ndarray]:
  """Per-example predictions, top-k hits, losses and float32 logits (the host drops padding)."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  logits, _ = state.apply_fn(variables, batch["image"], train=False)
  return eval_outputs(logits, batch["label"], top_k=top_k)


def eval_outputs(logits: jnp.ndarray, labels: jnp.ndarray, *, top_k: int = 5) -> dict[str, jnp.ndarray]:
  """``eval_step``'s outputs from logits (also those averaged over test-time views)."""
  logits = logits.astype(jnp.float32)  # calibration is computed from them on the host
  return {
      "pred": jnp.argmax(logits, -1),
      "top_k": metrics.topk_correct(logits, labels, min(top_k, logits.shape[-1])),
      "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels),
      "logits": logits,
  }
