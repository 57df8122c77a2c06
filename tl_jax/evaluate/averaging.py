"""Checkpoint averaging (timm ``avg_checkpoints.py``; SWA, Izmailov et al. 2018): the mean of the
weights of a run's last ``k`` verified checkpoints (or given steps), saved as a new, evaluable run.

``average(workdir, out, last=k)`` restores each step's weights (params, BatchNorm statistics and,
where the run keeps them, the EMA's), averages every leaf in float32 with equal weights and saves
the result as checkpoint ``<last averaged step>`` of a new workdir ``out`` that holds the run's
config and classes: ``evaluation.evaluate_checkpoint(out, "latest")``, ``scripts/evaluate.py
--workdir OUT --checkpoint latest`` and ``predict.from_workdir(out, "latest")`` read it as any run.
``out/averaged.json`` records the source run, the steps and the options.

BatchNorm statistics, ``batch_norm=``:

- ``"average"``: the running means and variances averaged like the weights (cheap; the statistics
  of the averaged network are not the average of the statistics, but close when the steps are).
- ``"recompute"``: the statistics of the averaged weights measured on ``num_batches`` training
  batches (the split's images, without the training augmentation), the mean over batches of each
  layer's batch mean and batch variance (torch's ``swa_utils.update_bn``). Each batch runs through
  the model in training mode twice, from the averaged statistics and from those statistics plus 1
  where the first pass moved them: a layer's update ``new = m * old + (1 - m) * batch`` then gives
  ``m`` and the batch statistic whatever the layer's momentum. BatchNorm layers the run froze
  (running statistics, never updated) keep the averaged values.
"""

import json
import os
import shutil
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import data as data_lib
from tl_jax.evaluate import evaluation
from tl_jax.train import checkpoint, ema, workdir as workdir_lib

BATCH_NORM = ("average", "recompute")
_PAIRS = (("params", "batch_stats"), ("ema_params", "ema_batch_stats"))


def select_steps(ckpts: checkpoint.Checkpoints, last: int | None = None,
                 steps: Sequence[int] | None = None) -> list[int]:
  """The verified steps to average: the ``last`` ones, or exactly ``steps`` (each must verify)."""
  verified = ckpts.steps()
  if steps:
    bad = [s for s in steps if s not in verified]
    if bad:
      raise ValueError(f"Steps {bad} are not verified checkpoints of {ckpts.workdir}; verified: {verified}.")
    return sorted(set(int(s) for s in steps))
  if not last or last < 1:
    raise ValueError("Give last=k (k >= 1) or the steps to average.")
  if len(verified) < last:
    raise ValueError(f"{ckpts.workdir} has {len(verified)} verified checkpoints {verified}, fewer than {last} "
                     "(train.keep_checkpoints sets how many a run keeps).")
  return verified[-last:]


def mean_tree(trees: Sequence[Any]) -> Any:
  """The leafwise mean of trees of one structure (float32 accumulation; dtypes kept)."""
  structure = jax.tree.structure(trees[0])
  for t in trees[1:]:
    if jax.tree.structure(t) != structure:
      raise ValueError("The checkpoints hold different parameter trees (another architecture or phase "
                       "layout): they cannot be averaged.")
  # On the host: eager jnp compiled each op for each leaf shape (~10 s for a ResNet's ~50 shapes).
  return jax.tree.map(lambda *xs: (sum(np.asarray(x, np.float32) for x in xs) / len(xs)).astype(xs[0].dtype),
                      *trees)


def _batch_statistics(apply_fn, params, stats, images, rng):
  """Per BatchNorm leaf: this batch's statistic, or None where the layer did not update (frozen)."""
  run = lambda s: apply_fn({"params": params, "batch_stats": s}, images, train=True, mutable=["batch_stats"],
                           rngs={"dropout": rng})[1]["batch_stats"]
  first = run(stats)
  moved = jax.tree.map(lambda a, s: a != s, first, stats)
  second = run(jax.tree.map(lambda s, m: jnp.where(m, s + 1, s), stats, moved))
  m = jax.tree.map(lambda a, b: b - a, first, second)  # new = m * old + (1 - m) * batch
  batch = jax.tree.map(lambda a, mm, s, mv: jnp.where(mv, (a - mm * s) / (1 - mm), s), first, m, stats, moved)
  return batch, moved


def recompute_batch_stats(apply_fn, params, stats, images: np.ndarray, batch_size: int,
                          num_batches: int, seed: int = 0) -> Any:
  """``stats`` with every updating BatchNorm layer's statistics re-measured under ``params``: the
  mean over up to ``num_batches`` full batches of ``images`` of the batch mean and variance."""
  step = jax.jit(lambda s, x, r: _batch_statistics(apply_fn, params, s, x, r))
  total, count, moved = None, 0, None
  for i in range(min(num_batches, len(images) // batch_size)):
    batch, moved = jax.device_get(step(stats, jnp.asarray(images[i * batch_size:(i + 1) * batch_size]),
                                       jax.random.key(seed + i)))
    total = batch if total is None else jax.tree.map(np.add, total, batch)  # on the host, as mean_tree
    count += 1
  if not count:
    raise ValueError(f"Recomputing BatchNorm statistics needs one full batch of {batch_size} training images; "
                     f"the split has {len(images)}.")
  return jax.tree.map(lambda t, s, mv: np.where(mv, t / count, np.asarray(s)).astype(np.asarray(s).dtype),
                      total, stats, moved)


def average(workdir: str, out: str, *, last: int | None = None, steps: Sequence[int] | None = None,
            batch_norm: str = "average", num_batches: int = 50) -> dict[str, Any]:
  """Averages checkpoints of ``workdir`` into the new run ``out`` (see the module doc); returns
  ``{"workdir": out, "step", "steps", "batch_norm"}``."""
  if batch_norm not in BATCH_NORM:
    raise ValueError(f"batch_norm={batch_norm!r}; choose one of {BATCH_NORM}.")
  if os.path.exists(os.path.join(out, "checkpoints")):
    raise FileExistsError(f"{out} already holds checkpoints: give a new folder.")
  config = workdir_lib.load_config(workdir)
  chosen = select_steps(checkpoint.Checkpoints(workdir, metric=ema.metric_name(config.train)), last, steps)
  runs = [evaluation.restore(workdir, s) for s in chosen]
  last_state = runs[-1].state
  fields = {k: mean_tree([getattr(r.state, k) for r in runs]) for pair in _PAIRS for k in pair
            if getattr(last_state, k, None) is not None}
  if batch_norm == "recompute":
    images = data_lib.load(config.data).splits["train"].images
    for p, s in _PAIRS:
      if fields.get(s):
        fields[s] = recompute_batch_stats(last_state.apply_fn, fields[p], fields[s], images,
                                          config.train.batch_size, num_batches)
  os.makedirs(out, exist_ok=True)
  for name in ("config.json", "class_names.json"):
    if os.path.exists(os.path.join(workdir, name)):
      shutil.copy(os.path.join(workdir, name), os.path.join(out, name))
  saved = {"step": jnp.asarray(last_state.step), **fields}
  checkpoint.Checkpoints(out, keep=1).save(chosen[-1], saved, {})
  record = {"source": os.path.abspath(workdir), "steps": chosen, "batch_norm": batch_norm,
            "num_batches": num_batches if batch_norm == "recompute" else 0}
  with open(os.path.join(out, "averaged.json"), "w") as f:
    json.dump(record, f, indent=1)
  return {"workdir": out, "step": chosen[-1], **record}
