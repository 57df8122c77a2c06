"""A thin wrapper over Orbax's CheckpointManager: keep the latest k and the best."""

import os
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class Checkpoints:
  """Checkpoints of a run under ``<workdir>/checkpoints``.

  Keeps the ``keep`` latest steps and the best step by ``metric`` (higher is
  better), whatever its age.
  """

  def __init__(self, workdir: str, *, keep: int = 2, metric: str = "val_accuracy"):
    self.metric = metric
    get = lambda metrics: metrics[metric]
    options = ocp.CheckpointManagerOptions(
        best_fn=get,
        best_mode="max",
        preservation_policy=policies.AnyPreservationPolicy(
            [policies.LatestN(keep), policies.BestN(get_metric_fn=get, n=1)]
        ),
        enable_async_checkpointing=False,  # saves are small; keep failures synchronous
    )
    self.manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                         options=options)

  def save(self, step: int, state: Any, metrics: dict[str, float]) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
    self.manager.wait_until_finished()

  def steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def resolve(self, which: str | int) -> int:
    """``'latest'``, ``'best'`` or a step number -> an existing step."""
    step = {"latest": self.latest_step, "best": self.best_step}.get(str(which), lambda: int(which))()
    if step is None or step not in self.steps():
      raise FileNotFoundError(
          f"No checkpoint {which!r} in {self.manager.directory}; saved steps: {self.steps() or 'none'}."
      )
    return step

  def restore(self, step: int, abstract_state: Any) -> Any:
    """Restores ``step`` into the structure (and shardings) of ``abstract_state``."""
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def metrics(self, step: int) -> dict[str, float] | None:
    return self.manager.metrics(step)
