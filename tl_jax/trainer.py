"""``train_and_evaluate(config, workdir)``: the only impure loop, and its evaluator.

A workdir holds everything a run leaves behind::

  config.json         the resolved config (a rerun must match it, then resumes)
  metrics.jsonl       one JSON record per evaluation
  checkpoints/<step>  Orbax checkpoints: the latest k and the best by val accuracy
  curves.png          training curves
  eval/<split>_step<N>/{report.json,confusion_matrix.png}
"""

import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np
import tqdm

from tl_jax import checkpoint, data as data_lib, metrics, models, optim, partition, plots, sharding, steps, weights

log = logging.getLogger(__name__)


def create_state(config, num_classes: int, total_steps: int, *, pretrained: bool = True):
  """Model, initial (pretrained) variables, parameter groups and optimizer.

  Returns ``(state, groups)``. The model is built twice: once to get the
  variable tree, then with the BatchNorm layers of ``running``-statistics
  groups frozen, which needs the labels of that tree.
  """
  mcfg, size = config.model, config.data.image_size
  # model.dtype is the compute dtype: "bfloat16" keeps float32 parameters and
  # optimizer state (mixed precision).
  build = functools.partial(models.create, mcfg.name, num_classes, dropout_rate=mcfg.dropout_rate,
                            drop_path_rate=mcfg.drop_path_rate, dtype=jnp.dtype(mcfg.get("dtype", "float32")))
  variables = build().init(jax.random.key(config.seed), jnp.zeros((1, size, size, 3), jnp.uint8))
  if pretrained and config.init.pretrained:
    loaded = weights.load_pretrained(mcfg.name, path=config.init.path or None,
                                     source=config.init.source or None)
    variables = weights.merge(variables, loaded, dont_load=config.init.dont_load)
  groups = optim.ParamGroups.from_config(variables["params"], config.param_groups)
  model = build(frozen_bn=groups.frozen_bn(variables.get("batch_stats", {})))
  state = steps.TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=optim.make_optimizer(config.optim, groups, total_steps),
  )
  return state, groups


def evaluate_split(eval_fn, state, split: data_lib.Split, batch_size: int, num_classes: int,
                   mesh: Mesh | None = None) -> dict[str, Any]:
  """Runs ``eval_fn`` over a whole split; returns the report and the confusion matrix.

  With a ``mesh``, each process feeds its rows of every batch and ``eval_fn``
  must return replicated outputs (every process then sees all predictions).
  """
  preds, hits, losses = [], [], []
  for batch, n in data_lib.eval_batches(split, batch_size):
    if mesh is not None:
      batch = sharding.put_batch({k: v[sharding.host_rows(batch_size)] for k, v in batch.items()}, mesh)
    out = jax.device_get(eval_fn(state, batch))
    preds.append(out["pred"][:n]), hits.append(out["top_k"][:n]), losses.append(out["loss"][:n])
  confusion = metrics.confusion_matrix(split.labels, np.concatenate(preds), num_classes)
  top5 = np.concatenate(hits) if num_classes > 5 else None  # top-5 of <= 5 classes is always 1
  report = metrics.classification_report(confusion, top5_correct=top5)
  report["loss"] = float(np.concatenate(losses).mean())
  return {"report": report, "confusion": confusion}


def write_report(out_dir: str, result: dict[str, Any], class_names: list[str], title: str) -> str:
  """``report.json`` and ``confusion_matrix.png`` into ``out_dir``; returns the json path."""
  os.makedirs(out_dir, exist_ok=True)
  report = dict(result["report"])
  for entry, name in zip(report["per_class"], class_names):
    entry["name"] = name
  report["confusion_matrix"] = result["confusion"].tolist()
  path = os.path.join(out_dir, "report.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=1)
  plots.plot_confusion_matrix(result["confusion"], class_names,
                              os.path.join(out_dir, "confusion_matrix.png"), title=title)
  return path


def _check_workdir_config(config, workdir: str) -> None:
  """Saves the config, or checks that a rerun uses the same one (then it resumes)."""
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved != current:
      diff = sorted(k for k in set(partition.flatten(saved)) | set(partition.flatten(current))
                    if partition.flatten(saved).get(k) != partition.flatten(current).get(k))
      raise ValueError(
          f"{workdir} holds a run with another config (differs in: {', '.join(diff)}). "
          "Use a new --workdir, or rerun with the saved config to resume."
      )
    return
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:  # atomic: other processes may be reading it
    with open(path + ".tmp", "w") as f:
      f.write(config.to_json(indent=1))
    os.replace(path + ".tmp", path)


def enable_compilation_cache(cache_dir: str) -> None:
  """JAX's persistent compilation cache in ``cache_dir`` ("" leaves it off).

  A rerun of the same config then loads its executables instead of compiling
  them. Thresholds are zero so CPU executables, small and quick to build, are
  cached too. Takes effect only if nothing has been compiled in this process yet.
  """
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``workdir``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} the workdir of a tl_jax run?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _log_groups(state, groups: optim.ParamGroups) -> None:
  flat = partition.flatten(state.params)
  sizes: dict[str, int] = {}
  for path, label in groups.labels.items():
    sizes[label] = sizes.get(label, 0) + int(flat[path].size)
  frozen_bn = len(groups.frozen_bn(state.batch_stats))
  for label, n in sorted(sizes.items()):
    s = groups.settings[label]
    kind = f"trainable, lr x{s.lr_mult:g}" if s.trainable else "frozen"
    log.info("param group %-10s %10s params  %s", label, f"{n:,}", kind)
  log.info("BatchNorm layers using running statistics: %d", frozen_bn)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Fine-tunes ``config.model`` on ``config.data``; resumes if ``workdir`` has checkpoints.

  Data parallel over all devices of all processes (see ``sharding``): a
  multi-process run calls ``sharding.initialize_distributed`` first and every
  process runs this function with the same arguments.

  Returns test accuracies of the final and of the best (by validation) checkpoint.
  """
  t_start = time.time()
  enable_compilation_cache(config.train.get("compilation_cache_dir", ""))
  _check_workdir_config(config, workdir)
  mesh = sharding.make_mesh()
  dataset = data_lib.load(config.data)
  train, test = dataset.splits["train"], dataset.splits["test"]
  val_name = "val" if "val" in dataset.splits else "test"
  if val_name == "test":
    log.warning("No validation split (data.val_fraction=0): the best checkpoint is chosen on test.")
  tcfg = config.train
  sharding.check_batch_size(tcfg.batch_size, mesh)
  sharding.check_batch_size(tcfg.eval_batch_size, mesh, "train.eval_batch_size")
  steps_per_epoch = len(train) // tcfg.batch_size
  total_steps = tcfg.num_epochs * steps_per_epoch
  state, groups = create_state(config, dataset.num_classes, total_steps)
  log.info("data %s: %s; %d classes; %d steps of batch %d", config.data.name,
           ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items()), dataset.num_classes,
           total_steps, tcfg.batch_size)
  _log_groups(state, groups)

  state = sharding.replicate(state, mesh)
  ckpts = checkpoint.Checkpoints(workdir, keep=tcfg.keep_checkpoints)
  if ckpts.latest_step() is not None:
    state = ckpts.restore(ckpts.latest_step(), state)
    log.info("Resumed from %s at step %d.", workdir, int(state.step))
  loss_fn = functools.partial(steps.cross_entropy, label_smoothing=tcfg.label_smoothing)
  # Replicated outputs: every process can read the new state and the metrics.
  train_fn = jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn), donate_argnums=0,
                     out_shardings=sharding.replicated(mesh))
  eval_fn = jax.jit(steps.eval_step, out_shardings=sharding.replicated(mesh))
  evaluate = functools.partial(evaluate_split, eval_fn, batch_size=tcfg.eval_batch_size,
                               num_classes=dataset.num_classes, mesh=mesh)
  lr = optim.schedule(config.optim, total_steps)
  rng = sharding.replicate(jax.random.key(config.seed), mesh)
  main_process = jax.process_index() == 0

  start = int(state.step)
  batches = data_lib.train_batches(train, tcfg.batch_size, config.seed, start,
                                   rows=sharding.host_rows(tcfg.batch_size))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  window: list[dict[str, jax.Array]] = []
  t0 = time.time()
  with tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True) as bar:
    for step in range(start, total_steps):
      state, m = train_fn(state, sharding.put_batch(next(batches), mesh), rng)
      if step == start:
        jax.block_until_ready(m)
        log.info("First step done %.1f s after start (compiling included).", time.time() - t_start)
      window.append(m)
      bar.update()
      epoch, in_epoch = divmod(step + 1, steps_per_epoch)
      last = step + 1 == total_steps
      if in_epoch or not (epoch % tcfg.eval_every_epochs == 0 or last):
        if (step + 1) % tcfg.log_every_steps == 0:  # reading values syncs: not every step
          bar.set_postfix(loss=f"{float(m['loss']):.3f}", acc=f"{float(m['accuracy']):.3f}")
        continue
      host, window = jax.device_get(window), []
      result = evaluate(state, dataset.splits[val_name])
      record = {
          "step": step + 1, "epoch": epoch, "lr": float(lr(step)),
          "train_loss": float(np.mean([w["loss"] for w in host])),
          "train_accuracy": float(np.mean([w["accuracy"] for w in host])),
          "val_loss": result["report"]["loss"], "val_accuracy": result["report"]["accuracy"],
          "elapsed_s": round(time.time() - t0, 1),
      }
      if main_process:
        with open(metrics_path, "a") as f:
          f.write(json.dumps(record) + "\n")
      ckpts.save(step + 1, state, {"val_accuracy": record["val_accuracy"]})
      bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_accuracy']:.4f}")
      tqdm.tqdm.write(f"epoch {epoch}: train loss {record['train_loss']:.4f} "
                      f"acc {record['train_accuracy']:.4f} | {val_name} loss {record['val_loss']:.4f} "
                      f"acc {record['val_accuracy']:.4f}")

  if main_process:
    with open(metrics_path) as f:
      plots.plot_training_curves([json.loads(line) for line in f], os.path.join(workdir, "curves.png"))
  # Test both the final model (the fixed recipe's result) and the best one by
  # validation accuracy (noisy on small validation splits).
  summary = {"final_step": total_steps, "best_step": ckpts.best_step()}
  for name, step in (("final", total_steps), ("best", summary["best_step"])):
    result = evaluate(ckpts.restore(step, state), test)
    out = os.path.join(workdir, "eval", f"test_step{step}")
    if main_process:
      write_report(out, result, dataset.class_names, f"test, step {step}")
    summary |= {f"{name}_val_accuracy": ckpts.metrics(step)["val_accuracy"],
                f"{name}_test_accuracy": result["report"]["accuracy"],
                f"{name}_test_macro_f1": result["report"]["macro_f1"], f"{name}_report_dir": out}
  summary["train_time_s"] = round(time.time() - t0, 1)
  if main_process:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1)
  return summary


def evaluate_checkpoint(workdir: str, which: str | int = "best", split: str = "test") -> dict[str, Any]:
  """Restores a checkpoint of a finished or running run and evaluates it.

  Writes ``report.json`` and ``confusion_matrix.png`` under
  ``workdir/eval/<split>_step<N>/`` and returns the report plus its location.
  """
  config = load_config(workdir)
  dataset = data_lib.load(config.data)
  if split not in dataset.splits:
    raise ValueError(f"Unknown split {split!r}; this run has {sorted(dataset.splits)}.")
  ckpts = checkpoint.Checkpoints(workdir, keep=config.train.keep_checkpoints)
  step = ckpts.resolve(which)
  # Only shapes are needed: no pretrained weights are read to evaluate.
  abstract = jax.eval_shape(lambda: create_state(config, dataset.num_classes, 1, pretrained=False)[0])
  state = ckpts.restore(step, abstract)
  result = evaluate_split(jax.jit(steps.eval_step), state, dataset.splits[split],
                          config.train.eval_batch_size, dataset.num_classes)
  out = os.path.join(workdir, "eval", f"{split}_step{step}")
  path = write_report(out, result, dataset.class_names, f"{split}, step {step}")
  return {"step": step, "split": split, "report_path": path, **result["report"]}
