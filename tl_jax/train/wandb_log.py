"""Weights & Biases beside TensorBoard: the same scalars, one W&B run per workdir.

With ``log.wandb=True`` the run's ``tensorboard_log.MetricsWriter`` sends every scalar it writes to
TensorBoard to W&B as well (one place: the same tags, values and steps; the images stay in
TensorBoard). ``log.wandb_project``, ``log.wandb_entity`` and ``log.wandb_name`` ("" = W&B's own
defaults) name the run; the run's config goes with it. Only process 0 logs.

A resumed run continues the same W&B run: the id is kept in ``<workdir>/wandb_run_id`` and passed
back (``id=..., resume="allow"``). W&B's files go to ``$WANDB_DIR``, else the workdir (``wandb/``);
``WANDB_MODE=offline`` writes them without a network (``wandb sync <dir>`` uploads them later).

W&B's own step only grows, while TensorBoard takes events at any step (``test_best`` at the best
step after the final one; a resumed run writes again the steps after its checkpoint). So each W&B
row carries the training step as the metric ``step``, every other metric is plotted against it
(``define_metric``), and W&B's ``_step`` just counts the rows.

wandb is optional: imported at use (``pip install wandb``, or the ``tracking`` extra).
"""

import os
import secrets
import string
from collections.abc import Mapping
from typing import Any

STEP = "step"  # the x axis of every metric
ID_FILE = "wandb_run_id"  # in the workdir: the W&B run a resumed run continues
DEFAULTS = dict(wandb=False, wandb_project="tl_jax", wandb_entity="", wandb_name="")


class Run:
  """An open W&B run: ``log(step, scalars)`` and ``finish()``."""

  def __init__(self, run):
    self.run = run  # the wandb run
    self.id = run.id

  def log(self, step: int, values: Mapping[str, float]) -> None:
    self.run.log({**{k: float(v) for k, v in values.items()}, STEP: int(step)})

  def finish(self) -> None:
    self.run.finish()


def run_id(workdir: str) -> str:
  """The W&B run id of ``workdir``: the saved one, or a new one saved for the runs that resume it."""
  path = os.path.join(workdir, ID_FILE)
  if os.path.exists(path):
    with open(path) as f:
      return f.read().strip()
  new = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # as W&B's own ids
  with open(path + ".tmp", "w") as f:
    f.write(new)
  os.replace(path + ".tmp", path)
  return new


def start(workdir: str, log_cfg: Mapping[str, Any] | None, config: dict[str, Any]) -> Run | None:
  """The W&B run of ``workdir`` when ``log_cfg`` (the config's ``log``) turns it on, else None.

  Raises:
    ImportError: ``log.wandb=True`` without the wandb package; the message says what to install.
    ValueError: an unknown ``log`` option.
  """
  cfg = dict(log_cfg or {})
  unknown = set(cfg) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown log option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  cfg = {**DEFAULTS, **cfg}
  if not cfg["wandb"]:
    return None
  try:
    import wandb
  except ImportError:
    raise ImportError("log.wandb=True needs the wandb package: pip install wandb "
                      "(or pip install 'tl_jax[tracking]'); or set log.wandb=False.") from None
  run = wandb.init(project=cfg["wandb_project"] or None, entity=cfg["wandb_entity"] or None,
                   name=cfg["wandb_name"] or None, id=run_id(workdir), resume="allow", config=config,
                   dir=None if os.environ.get("WANDB_DIR") else workdir)
  run.define_metric(STEP)
  run.define_metric("*", step_metric=STEP)
  return Run(run)
