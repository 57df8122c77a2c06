"""``train_and_evaluate(config, workdir)``: the only impure loop, and its evaluator.

A workdir holds everything a run leaves behind::

  config.json         the resolved config (a rerun must match it, then resumes)
  metrics.jsonl       one JSON record per evaluation
  checkpoints/<step>  Orbax checkpoints: the latest k and the best by val accuracy
  feature_cache/      backbone features per split, when only the head trains
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

from tl_jax import (checkpoint, data as data_lib, feature_cache, metrics, models, optim, partition, plots,
                    sharding, steps, strategies, weights)

log = logging.getLogger(__name__)


def _model(config, num_classes: int, **kwargs):
  """``config.model``; its ``dtype`` is the compute dtype: "bfloat16" keeps
  float32 parameters and optimizer state (mixed precision)."""
  mcfg = config.model
  return models.create(mcfg.name, num_classes, dropout_rate=mcfg.dropout_rate, drop_path_rate=mcfg.drop_path_rate,
                       dtype=jnp.dtype(mcfg.get("dtype", "float32")), layer_impl=mcfg.get("layer_impl", "auto"),
                       **kwargs)


def create_state(config, num_classes: int, total_steps: int, *, pretrained: bool = True, phase: int = 0):
  """Model, initial (pretrained) variables, parameter groups and optimizer.

  Returns ``(state, groups)`` for phase ``phase`` of ``config.phases``.
  """
  mcfg, size = config.model, config.data.image_size
  model, images = _model(config, num_classes), jnp.zeros((1, size, size, 3), jnp.uint8)
  loaded = {}
  if pretrained and config.init.pretrained:
    loaded = weights.load_pretrained(mcfg.name, path=config.init.path or None,
                                     source=config.init.source or None)

  # One jit (op-by-op init compiles every primitive apart: ~15 s for a ResNet-18
  # on CPU) whose loaded outputs are its inputs, so XLA drops their random init.
  def init(key, loaded):
    variables = model.init(key, images)
    return weights.merge(variables, loaded, dont_load=config.init.dont_load) if loaded else variables

  return build_state(config, num_classes, jax.jit(init)(jax.random.key(config.seed), loaded), total_steps, phase)


def build_state(config, num_classes: int, variables, total_steps: int, phase: int = 0):
  """``(state, groups)`` of phase ``phase`` on ``variables``, with a fresh optimizer.

  The model is built once the labels are known: BatchNorm layers of
  ``running``-statistics groups are frozen in it.
  """
  groups = optim.ParamGroups.from_config(variables["params"], strategies.phase_groups(config, phase),
                                         strict=len(strategies.phases(config)) == 1)
  model = _model(config, num_classes, frozen_bn=groups.frozen_bn(variables.get("batch_stats", {})))
  state = steps.TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=optim.make_optimizer(config.optim, groups, total_steps),
  )
  # create() leaves step a weakly typed Python 0; the first train step returns
  # an int32 array, whose new signature would compile the step a second time.
  return state.replace(step=jnp.zeros((), jnp.int32)), groups


def next_phase(config, state, num_classes: int, total_steps: int, phase: int):
  """Switches ``state`` to phase ``phase``: same params, batch_stats and step;
  the optimizer state of groups that stay trainable carries over."""
  new, groups = build_state(config, num_classes, {"params": state.params, "batch_stats": state.batch_stats},
                            total_steps, phase)
  return new.replace(step=state.step, opt_state=strategies.carry_opt_state(state.opt_state, new.opt_state)), groups


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
  main_process = jax.process_index() == 0
  dataset = data_lib.load(config.data)
  val_name = "val" if "val" in dataset.splits else "test"
  if val_name == "test":
    log.warning("No validation split (data.val_fraction=0): the best checkpoint is chosen on test.")
  tcfg = config.train
  sharding.check_batch_size(tcfg.batch_size, mesh)
  sharding.check_batch_size(tcfg.eval_batch_size, mesh, "train.eval_batch_size")
  steps_per_epoch = len(dataset.splits["train"]) // tcfg.batch_size
  total_steps = tcfg.num_epochs * steps_per_epoch
  ckpts = checkpoint.Checkpoints(workdir, keep=tcfg.keep_checkpoints)
  phase_of = lambda step: strategies.phase_at(config, max(step - 1, 0))  # of the step that saved it
  phase = phase_of(ckpts.latest_step() or 0)
  state, groups = create_state(config, dataset.num_classes, total_steps, phase=phase)
  cached = feature_cache.applies(config, groups, state.batch_stats)
  t0 = time.time()
  if cached:  # part of the first epoch's cost, whose time includes it
    # Only process 0 writes the files; the others extract their own copy rather
    # than read one that may be half written.
    dataset = feature_cache.extract_all(state, dataset, tcfg.eval_batch_size,
                                        os.path.join(workdir, "feature_cache") if main_process else None)
    state = feature_cache.on_features(state)
    log.info("Backbone frozen: training the head on cached features (%.1f s).", time.time() - t0)
  train, test = dataset.splits["train"], dataset.splits["test"]
  log.info("data %s: %s; %d classes; %d steps of batch %d", config.data.name,
           ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items()), dataset.num_classes,
           total_steps, tcfg.batch_size)
  _log_groups(state, groups)

  state = sharding.replicate(state, mesh)
  if ckpts.latest_step() is not None:
    state = ckpts.restore(ckpts.latest_step(), state)
    log.info("Resumed from %s at step %d.", workdir, int(state.step))
  loss_fn = functools.partial(steps.cross_entropy, label_smoothing=tcfg.label_smoothing)
  augment_fn = data_lib.augment.from_config(config.get("augment"))  # None: all options off
  # One jitted step per phase: each compiles once (its state has its own structure).
  # Replicated outputs: every process can read the new state and the metrics.
  new_train_fn = lambda: jax.jit(
      functools.partial(steps.train_step, loss_fn=loss_fn, augment_fn=augment_fn), donate_argnums=0,
      out_shardings=sharding.replicated(mesh))
  train_fns = {phase: new_train_fn()}
  eval_fn = jax.jit(steps.eval_step, out_shardings=sharding.replicated(mesh))
  evaluate = functools.partial(evaluate_split, eval_fn, batch_size=tcfg.eval_batch_size,
                               num_classes=dataset.num_classes, mesh=mesh)
  lr = optim.schedule(config.optim, total_steps)
  rng = sharding.replicate(jax.random.key(config.seed), mesh)

  start = int(state.step)
  # The loader's position is the restored step: resumed runs see the same batches.
  # Each process reads only its rows of every global batch (the pipeline's host shard).
  batches = data_lib.train_batches(train, tcfg.batch_size, config.seed, start,
                                   loading=data_lib.pipeline.Loading(**config.data.get("loading", {})))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  window: list[dict[str, jax.Array]] = []
  t_epoch = t0
  with tqdm.tqdm(total=total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True) as bar:
    for step in range(start, total_steps):
      if strategies.phase_at(config, step) != phase:
        phase = strategies.phase_at(config, step)
        state, groups = next_phase(config, state, dataset.num_classes, total_steps, phase)
        state = sharding.replicate(state, mesh)
        train_fns[phase] = new_train_fn()
        tqdm.tqdm.write(f"step {step}: phase {phase + 1}")
        _log_groups(state, groups)
      state, m = train_fns[phase](state, sharding.put_batch(next(batches), mesh), rng)
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
          "elapsed_s": round(time.time() - t0, 1), "epoch_s": round(time.time() - t_epoch, 3),
      }
      t_epoch = time.time()
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
  summary = {"final_step": total_steps, "best_step": ckpts.best_step(), "cached_features": cached,
             "train_step_compiles": [fn._cache_size() for fn in train_fns.values()]}

  def restore(step):  # into the state structure of the phase that saved it
    if phase_of(step) == phase:
      return ckpts.restore(step, state)
    abstract = jax.eval_shape(lambda: create_state(config, dataset.num_classes, total_steps,
                                                   pretrained=False, phase=phase_of(step))[0])
    replicated = sharding.replicated(mesh)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    return ckpts.restore(step, abstract)

  for name, step in (("final", total_steps), ("best", summary["best_step"])):
    result = evaluate(restore(step), test)
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
  phase = strategies.phase_at(config, max(step - 1, 0))
  abstract = jax.eval_shape(lambda: create_state(config, dataset.num_classes, 1, pretrained=False,
                                                 phase=phase)[0])
  state = ckpts.restore(step, abstract)
  result = evaluate_split(jax.jit(steps.eval_step), state, dataset.splits[split],
                          config.train.eval_batch_size, dataset.num_classes)
  out = os.path.join(workdir, "eval", f"{split}_step{step}")
  path = write_report(out, result, dataset.class_names, f"{split}, step {step}")
  return {"step": step, "split": split, "report_path": path, **result["report"]}
