"""Pure train and eval steps. Dependencies are bound with ``functools.partial``."""

from typing import Any

from flax.training import train_state
import jax
import jax.numpy as jnp
import optax

from tl_jax import guard, metrics


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the BatchNorm statistics."""

  batch_stats: Any = None


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, label_smoothing: float = 0.0) -> jnp.ndarray:
  """Mean softmax cross-entropy with integer labels and optional smoothing."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def train_step(state: TrainState, batch: dict[str, jnp.ndarray], rng: jax.Array, *, loss_fn=cross_entropy,
               augment_fn=None, skip_nonfinite: bool = False):
  """One optimizer step on ``batch = {'image', 'label'}``; returns (state, metrics).

  ``augment_fn(rng, images)`` (``data.augment.from_config``), if given, runs
  here on the device, with a key of its own derived from ``rng`` and the step.
  ``metrics['nonfinite']`` is 1 if the loss, gradients or update were not
  finite; ``skip_nonfinite`` then drops the update (``guard.guarded``).
  """
  rng = jax.random.fold_in(rng, state.step)
  images = batch["image"] if augment_fn is None else augment_fn(jax.random.fold_in(rng, 1), batch["image"])

  def objective(params):
    variables = {"params": params, "batch_stats": state.batch_stats}
    (logits, _), updates = state.apply_fn(
        variables, images, train=True, mutable=["batch_stats"], rngs={"dropout": rng}
    )
    return loss_fn(logits, batch["label"]), (logits, updates.get("batch_stats", state.batch_stats))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  new_state, nonfinite = guard.guarded(state, new_state, loss, grads, skip=skip_nonfinite)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return new_state, {"loss": loss, "accuracy": accuracy, "nonfinite": nonfinite}


def eval_step(state: TrainState, batch: dict[str, jnp.ndarray], *, top_k: int = 5) -> dict[str, jnp.ndarray]:
  """Per-example predictions, top-k hits and losses (the host drops padding)."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  logits, _ = state.apply_fn(variables, batch["image"], train=False)
  labels = batch["label"]
  return {
      "pred": jnp.argmax(logits, -1),
      "top_k": metrics.topk_correct(logits, labels, min(top_k, logits.shape[-1])),
      "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels),
  }
