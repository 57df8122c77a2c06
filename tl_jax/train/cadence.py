"""When the loop evaluates and when it checkpoints: the epoch cadence, the step cadence, the last step.

After ``done`` steps the loop evaluates on the validation split, checkpoints and appends a
``metrics.jsonl`` record if ``done`` ends every ``train.eval_every_epochs``-th epoch, is a multiple
of ``train.eval_every_steps``, or is the run's last step. It checkpoints without evaluating at
multiples of ``train.checkpoint_every_steps`` (and when preempted): such checkpoints carry the step
metrics since the last evaluation instead of a record (``train.window``), and are never ``best``,
which is chosen among evaluated steps. 0 turns a cadence off.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Cadence:
  steps_per_epoch: int
  total_steps: int
  eval_every_epochs: int = 1
  eval_every_steps: int = 0
  checkpoint_every_steps: int = 0

  @classmethod
  def from_config(cls, tcfg, steps_per_epoch: int, total_steps: int) -> "Cadence":
    """``config.train``'s cadences (keys a config from before them lacks are off)."""
    return cls(steps_per_epoch, total_steps, tcfg.get("eval_every_epochs", 1), tcfg.get("eval_every_steps", 0),
               tcfg.get("checkpoint_every_steps", 0))

  def evaluates(self, done: int) -> bool:
    """Evaluate, checkpoint and record after ``done`` steps."""
    epoch, in_epoch = divmod(done, self.steps_per_epoch)
    by_epoch = self.eval_every_epochs and not in_epoch and epoch % self.eval_every_epochs == 0
    return bool(done == self.total_steps or by_epoch or _multiple(done, self.eval_every_steps))

  def checkpoints(self, done: int) -> bool:
    """Checkpoint after ``done`` steps (with an evaluation or without)."""
    return self.evaluates(done) or _multiple(done, self.checkpoint_every_steps)


def _multiple(done: int, every: int) -> bool:
  return bool(every) and done % every == 0
