"""Exponential moving average of the parameters and BatchNorm statistics (timm's ``ModelEmaV3``).

``config.train.ema_decay`` (0 = off) is the decay; ``train.ema_warmup``
ramps it as timm does, ``min(decay, 1 - (1 + t / gamma) ** -power)`` with
gamma 1 and power 2/3 at the t-th update. As in timm the first update copies
the weights (decay 0), and the BatchNorm running statistics are averaged like
the parameters. The averages are fields of the train state
(``ema_params``, ``ema_batch_stats``), so checkpoints hold them and a resumed
run continues them exactly. ``train.best_by`` ("raw" or "ema") chooses which
weights pick the best checkpoint and are tested at the end.
"""

from collections.abc import Callable, Mapping
import functools
from typing import Any

import jax
import jax.numpy as jnp

WEIGHTS = ("raw", "ema")


def decay_at(count, decay: float, *, warmup: bool = False, gamma: float = 1.0, power: float = 2 / 3):
  """timm ``ModelEmaV3.get_decay(step=count)`` for the ``count``-th update (1-based)."""
  t = jnp.maximum(jnp.asarray(count, jnp.float32) - 1.0, 0.0)
  d = jnp.minimum(1.0 - (1.0 + t / gamma) ** -power, decay) if warmup else jnp.asarray(decay, jnp.float32)
  return jnp.where(t <= 0, 0.0, jnp.maximum(d, 0.0))


def update(state, *, decay: float, warmup: bool = False):
  """``state`` with its averages moved towards its (just updated) weights.

  ``state.step`` counts the updates done, so it is timm's ``step`` argument.
  """
  d = decay_at(state.step, decay, warmup=warmup)
  lerp = lambda avg, new: (d * avg + (1.0 - d) * new).astype(avg.dtype)
  return state.replace(ema_params=jax.tree.map(lerp, state.ema_params, state.params),
                       ema_batch_stats=jax.tree.map(lerp, state.ema_batch_stats, state.batch_stats))


def init(state, train_cfg: Mapping[str, Any]):
  """``state`` with averages equal to its weights when ``train_cfg.ema_decay`` is set."""
  if not train_cfg.get("ema_decay", 0.0):
    return state
  copy = lambda tree: jax.tree.map(jnp.copy, tree)  # own buffers: the weights' are donated
  return state.replace(ema_params=copy(state.params), ema_batch_stats=copy(state.batch_stats))


def check_config(train_cfg: Mapping[str, Any]) -> None:
  decay, best_by = train_cfg.get("ema_decay", 0.0), train_cfg.get("best_by", "raw")
  if not 0 <= decay < 1:
    raise ValueError(f"train.ema_decay={decay} must be in [0, 1) (0 = no EMA; timm uses 0.9998).")
  if best_by not in WEIGHTS:
    raise ValueError(f"train.best_by={best_by!r}; choose one of {WEIGHTS}.")
  if best_by == "ema" and not decay:
    raise ValueError("train.best_by='ema' needs an EMA: set train.ema_decay (e.g. 0.999).")


def from_config(train_cfg: Mapping[str, Any]) -> Callable | None:
  """``ema_fn(state)`` for ``steps.train_step``, or None without ``train.ema_decay``."""
  check_config(train_cfg)
  if not train_cfg.get("ema_decay", 0.0):
    return None
  return functools.partial(update, decay=float(train_cfg["ema_decay"]), warmup=bool(train_cfg.get("ema_warmup")))


def weights(state, which: str):
  """``state`` evaluating with its ``which`` ("raw" or "ema") weights."""
  if which not in WEIGHTS:
    raise ValueError(f"weights={which!r}; choose one of {WEIGHTS}.")
  if which == "raw":
    return state
  if state.ema_params is None:
    raise ValueError("This run keeps no EMA weights (train.ema_decay was 0): use weights='raw'.")
  return state.replace(params=state.ema_params, batch_stats=state.ema_batch_stats)


def metric_name(train_cfg: Mapping[str, Any]) -> str:
  """The checkpoint metric that picks the best step."""
  return "val_accuracy_ema" if train_cfg.get("best_by", "raw") == "ema" else "val_accuracy"
