"""Divergence guard: non-finite loss, gradients or updates never reach a checkpoint.

On the device, ``guarded`` (called inside the pure train step) checks the
step's loss, gradients and new state; the step's metrics carry the result as
``nonfinite`` (0 or 1). With ``skip=True`` (``train.on_nonfinite="skip_step"``)
a non-finite update is dropped in the step itself, with ``jnp.where``: the
step counter still advances, so the data order is unchanged.

On the host, ``Guard.check`` reads those flags only where the loop already
syncs (log and evaluation points), so it adds no per-step host sync. With
``"stop"`` it raises ``Diverged`` naming the first bad step, its learning rate
and the last good checkpoint; the state is never saved after a bad step.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax.errors import Diverged

MODES = ("stop", "skip_step")


# Leaves of at most this many elements are checked together, as one vector: one reduction per
# leaf compiled to one XLA:CPU kernel each, 3.4 s of a Lite0 train step's 12 s compile for its
# ~550 leaves (params, statistics, Adam's moments). Copying the small ones costs nothing
# measurable; copying the large ones would (+250 ms a ResNet-50 step), so they keep their own.
_CHECKED_TOGETHER = 1 << 16


def all_finite(*trees: Any) -> jax.Array:
  """A scalar bool: every inexact leaf of ``trees`` is finite."""
  leaves = [jnp.asarray(x) for t in trees for x in jax.tree.leaves(t)]
  leaves = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
  together = lambda x: x.size <= _CHECKED_TOGETHER and jnp.issubdtype(x.dtype, jnp.floating)
  small = [jnp.ravel(x).astype(jnp.float32) for x in leaves if together(x)]
  checks = [jnp.all(jnp.isfinite(x)) for x in leaves if not together(x)]
  if small:
    checks.append(jnp.all(jnp.isfinite(jnp.concatenate(small))))
  return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def guarded(old_state, new_state, loss: jax.Array, *, skip: bool) -> tuple[Any, jax.Array]:
  """``(state, nonfinite)``: ``new_state``, or with ``skip`` and a non-finite step, ``old_state``'s
  params, statistics and optimizer state (with the new step count).

  Gradients are checked through what they produce (the new params and optimizer
  state): a non-finite gradient of a trained parameter makes its update
  non-finite. Checking the raw gradients would make XLA compute those of
  frozen parameters too, a whole backward pass through a frozen backbone
  (tests/test_freezing.py counts the convolutions).
  """
  ok = all_finite(loss, new_state.params, new_state.batch_stats, new_state.opt_state)
  if skip:
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)
    new_state = new_state.replace(params=keep(new_state.params, old_state.params),
                                  batch_stats=keep(new_state.batch_stats, old_state.batch_stats),
                                  opt_state=keep(new_state.opt_state, old_state.opt_state))
  return new_state, jnp.logical_not(ok).astype(jnp.int32)


class Guard:
  """Reads the ``nonfinite`` flags of the loop's step metrics at its sync points.

  Args:
    mode: ``"stop"`` or ``"skip_step"`` (``train.on_nonfinite``).
    lr: the learning-rate schedule (step -> lr), for the message.
    last_checkpoint: () -> the last good checkpoint step (None: none yet).
  """

  def __init__(self, mode: str, lr: Callable[[int], Any], last_checkpoint: Callable[[], int | None]):
    if mode not in MODES:
      raise ValueError(f"train.on_nonfinite={mode!r}; use one of {MODES}.")
    self.mode, self.lr, self.last_checkpoint = mode, lr, last_checkpoint
    self.skipped = 0  # steps of the current window whose update was dropped (skip_step)
    self._seen = 0  # window entries already read

  def check(self, window: Sequence[dict[str, jax.Array]], first_step: int) -> None:
    """Reads the flags of ``window`` (the metrics of steps ``first_step``, ...) not read yet.

    Raises:
      Diverged: a step was non-finite and the mode is ``"stop"``.
    """
    flags = np.asarray(jax.device_get([m["nonfinite"] for m in window[self._seen:]]), np.int64)
    start, self._seen = first_step + self._seen, len(window)
    if not flags.any():
      return
    if self.mode == "skip_step":
      self.skipped += int(flags.sum())
      return
    step = start + int(np.argmax(flags))  # 0-based index of the optimizer step
    last = self.last_checkpoint()
    raise Diverged(
        f"Non-finite loss or gradients at step {step + 1} (lr {float(self.lr(step)):.3g}); stopped without "
        f"saving it. Last good checkpoint: {'step %d' % last if last is not None else 'none'}. Lower optim.lr, "
        "or set train.on_nonfinite=skip_step to drop such steps.")

  def new_window(self) -> None:
    """The loop started a new window of step metrics."""
    self._seen = self.skipped = 0
