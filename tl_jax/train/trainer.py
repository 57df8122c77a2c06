"""``train_and_evaluate(config, workdir)``: the only impure loop, and its evaluator.

``train_and_evaluate`` is four named steps, read top to bottom: ``_set_up``
(data, the state of the phase to resume, jitted steps), ``_restore`` (the
newest checkpoint, if any), ``_train`` (step; at the points of ``train.cadence``:
evaluate, checkpoint, record; on SIGTERM/SIGINT: checkpoint, stop, ``train.preemption``)
and ``_final_evaluation`` (test the final and the best checkpoint). What a workdir
holds is listed in ``tl_jax.train.workdir``; the train state is built in ``tl_jax.train.state``.
"""

from collections.abc import Callable
import dataclasses
import functools
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

from tl_jax import data as data_lib, partition, sharding
from tl_jax.data import mixing, randaugment
from tl_jax.errors import Preempted
from tl_jax.freezing import inspect_groups, optim
from tl_jax.freezing.plan import Plan
from tl_jax.metrics import plots

# Public API of the trainer, defined next to what they belong to.
from tl_jax.metrics.report import evaluate_split, write_report  # noqa: F401
from tl_jax.train import (
  cadence as cadence_lib,
  checkpoint,
  config_checks,
  ema,
  feature_cache,
  guard as guard_lib,
  preemption,
  steps,
  tensorboard_log,
  wandb_log,
  window as window_lib,
  workdir as workdir_lib,
  workdir_lock,
)
from tl_jax.train.state import (  # noqa: F401
  _model,
  abstract_state,
  build_state,
  create_state,
  next_phase,
  plan_of,
)
from tl_jax.train.workdir import load_config  # noqa: F401

log = logging.getLogger(__name__)


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



def _log_groups(state, groups: optim.ParamGroups, frozen_bn: int) -> None:
  flat = partition.flatten(state.params)
  sizes: dict[str, int] = {}
  for path, label in groups.labels.items():
    sizes[label] = sizes.get(label, 0) + int(flat[path].size)
  for label, n in sorted(sizes.items()):
    s = groups.settings[label]
    kind = f"trainable, lr x{s.lr_mult:g}" if s.trainable else "frozen"
    log.info("param group %-10s %10s params  %s", label, f"{n:,}", kind)
  log.info("BatchNorm layers using running statistics: %d", frozen_bn)





@dataclasses.dataclass
class _Run:
  """What the steps of ``train_and_evaluate`` share; only the phase changes after ``_set_up``."""

  config: ml_collections.ConfigDict
  workdir: str
  mesh: Mesh
  dataset: data_lib.Dataset
  val_name: str  # the split that picks the best checkpoint
  ckpts: checkpoint.Checkpoints
  steps_per_epoch: int
  total_steps: int
  cadence: cadence_lib.Cadence  # when to evaluate, when to checkpoint
  cached: bool  # the head trains on cached backbone features
  evaluate: Callable[[Any, data_lib.Split], dict[str, Any]]
  new_train_fn: Callable[[], Callable]  # a fresh jitted train step
  guard: guard_lib.Guard
  plan: Plan
  phase: int
  train_fns: dict[int, Callable]  # one jitted step per phase: each compiles once
  t_start: float  # the call
  t0: float  # training (feature extraction included)
  schedule: Callable[[Any], Any] = None  # the run schedule (step -> base lr)
  writer: tensorboard_log.MetricsWriter | None = None  # TensorBoard events; opened by ``_train``
  watch: preemption.Watch = dataclasses.field(default_factory=preemption.Watch)  # SIGTERM/SIGINT
  window: list = dataclasses.field(default_factory=list)  # step metrics since the last evaluation

  @property
  def groups(self) -> optim.ParamGroups:
    return self.plan.groups[self.phase]

  def lr(self, state) -> float:
    """The run schedule's learning rate of the last step ``state`` applied (x ``lr_mult`` per group)."""
    return float(self.schedule(jnp.maximum(optim.run_count(state.opt_state) - 1, 0)))

  @property
  def main_process(self) -> bool:
    return jax.process_index() == 0


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Fine-tunes ``config.model`` on ``config.data``; resumes if ``workdir`` has checkpoints.

  Data parallel over all devices of all processes (see ``sharding``): a
  multi-process run calls ``sharding.initialize_distributed`` first and every
  process runs this function with the same arguments.

  Returns test accuracies of the final and of the best (by validation) checkpoint.
  On SIGTERM or SIGINT it saves the step under way and raises ``Preempted`` (``train.preemption``).
  """
  config = data_lib.resolve(config)  # the input the weights expect, where the config leaves it to them
  config_checks.check(config)
  watch = preemption.Watch()
  with workdir_lock.hold(workdir), watch.installed():  # one writer per workdir
    run, state = _set_up(config, workdir)
    run.watch = watch
    state = _restore(run, state)
    state = _train(run, state)
    return _final_evaluation(run, state)


def _set_up(config, workdir: str) -> tuple[_Run, Any]:
  """Checks the workdir and the data; builds the state of the phase to resume and the jitted steps."""
  t_start, tcfg = time.time(), config.train
  enable_compilation_cache(tcfg.get("compilation_cache_dir", ""))
  workdir_lib.check_config(config, workdir)
  mesh = sharding.make_mesh()
  dataset = data_lib.load(config.data)
  config_checks.check_splits(config, dataset)
  workdir_lib.check_class_names(workdir, dataset.class_names)  # readers of the run take its classes from there
  val_name = "val" if "val" in dataset.splits else "test"
  if val_name == "test":
    log.warning("No validation split (data.val_fraction=0): the best checkpoint is chosen on test.")
  sharding.check_batch_size(tcfg.batch_size, mesh)
  sharding.check_batch_size(tcfg.eval_batch_size, mesh, "train.eval_batch_size")
  steps_per_epoch = len(dataset.splits["train"]) // tcfg.batch_size
  total_steps = tcfg.get("num_steps", 0) or tcfg.num_epochs * steps_per_epoch  # num_steps: exactly
  ckpts = checkpoint.Checkpoints(workdir, keep=tcfg.keep_checkpoints, metric=ema.metric_name(tcfg))
  ckpts.set_aside_rejected()  # never restored, never deleted: moved out of the way of new saves
  plan = plan_of(config, dataset.num_classes)  # the config's freezing, read once
  phase = plan.phase_of_checkpoint(ckpts.latest_step() or 0)
  state, groups = create_state(config, dataset.num_classes, total_steps, phase=phase, plan=plan)
  if jax.process_index() == 0:  # every phase's parameter-group table, as scripts/inspect_groups.py prints it
    inspect_groups.write(workdir, plan, state.params)
  not_cached = feature_cache.reasons_not(config, plan, dataset.splits["train"], state.apply_fn,
                                         {"params": state.params, "batch_stats": state.batch_stats})
  cached = not not_cached
  if plan.backbone_fixed() and not_cached:
    log.info("Backbone frozen, features not cached: %s.", "; ".join(not_cached))
  t0 = time.time()
  if cached:  # part of the first epoch's cost, whose time includes it
    # Only process 0 writes the files; the others extract their own copy rather
    # than read one that may be half written.
    dataset = feature_cache.extract_all(state, dataset, tcfg.eval_batch_size,
                                        os.path.join(workdir, "feature_cache") if jax.process_index() == 0
                                        else None)
    state = feature_cache.on_features(state)
    log.info("Backbone frozen: training the head on cached features (%.1f s).", time.time() - t0)
  log.info("data %s: %s; %d classes; %d steps of batch %d; %d px, data.resize=%s%s", config.data.name,
           ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items()), dataset.num_classes,
           total_steps, tcfg.batch_size, config.data.image_size, config.data.resize,
           "" if config.data.resize == "squash" else
           f" (train {config.data.stream.train_crop}, eval crop {config.data.stream.crop_fraction:.3f} "
           f"{config.data.stream.interpolation})")
  _log_groups(state, groups, len(plan.frozen_bn(phase)))

  on_nonfinite = tcfg.get("on_nonfinite", "stop")
  lr = optim.schedule(config.optim, total_steps)
  guard = guard_lib.Guard(on_nonfinite, lr, ckpts.latest_step)
  loss_fn = functools.partial(steps.cross_entropy, label_smoothing=tcfg.label_smoothing)
  # Each None when its options are off.
  augment_fn = randaugment.from_config(config.get("randaugment"), data_lib.augment.from_config(config.get("augment")))
  toolkit = dict(augment_fn=augment_fn, mix_fn=mixing.from_config(config.get("mixup")), ema_fn=ema.from_config(tcfg),
                 grad_accum_steps=tcfg.get("grad_accum_steps", 1), skip_nonfinite=on_nonfinite == "skip_step")
  # Replicated outputs: every process can read the new state and the metrics.
  new_train_fn = lambda: jax.jit(functools.partial(steps.train_step, loss_fn=loss_fn, **toolkit),
                                 donate_argnums=0, out_shardings=sharding.replicated(mesh))
  eval_fn = jax.jit(steps.eval_step, out_shardings=sharding.replicated(mesh))
  evaluate = functools.partial(evaluate_split, eval_fn, batch_size=tcfg.eval_batch_size,
                               num_classes=dataset.num_classes, mesh=mesh)
  run = _Run(config, workdir, mesh, dataset, val_name, ckpts, steps_per_epoch, total_steps,
             cadence_lib.Cadence.from_config(tcfg, steps_per_epoch, total_steps), cached, evaluate,
             new_train_fn, guard, plan, phase, {phase: new_train_fn()}, t_start, t0, lr)
  # The guard names the largest learning rate in use: the schedule times the largest multiplier.
  guard.lr = lambda step: lr(step) * run.plan.max_lr_mult(run.phase)
  return run, sharding.replicate(state, mesh)


def _restore(run: _Run, state):
  """``state`` from the newest checkpoint, if there is one (it saved in ``run.phase``)."""
  step = run.ckpts.latest_step()
  if run.main_process:  # one record per evaluated step: those after ``step`` come again
    workdir_lib.resume_metrics(run.workdir, step or 0, (run.ckpts.metrics(step) or None) if step else None)
  if step is None:
    return state
  state = run.ckpts.restore(step, state)
  run.window = window_lib.from_json(run.ckpts.window(step))  # saved without evaluation: its window
  log.info("Resumed from %s at step %d.", run.workdir, int(state.step))
  return state


def _train(run: _Run, state):
  """Trains from ``state.step`` to the end; evaluates, checkpoints and records at the points of
  ``run.cadence`` (and after the last step); on SIGTERM/SIGINT saves the step done and stops."""
  config, tcfg = run.config, run.config.train
  start = int(state.step)
  # The loader's position is the restored step: resumed runs see the same batches.
  # Each process reads only its rows of every global batch (the pipeline's host shard).
  batches = data_lib.pipeline.DevicePrefetch(data_lib.train_batches(
      run.dataset.splits["train"], tcfg.batch_size, config.seed, start,
      loading=data_lib.pipeline.Loading(**config.data.get("loading", {}))), run.mesh)  # on the devices 2 steps ahead
  rng = sharding.replicate(jax.random.key(config.seed), run.mesh)
  # TensorBoard, and W&B with the same scalars when log.wandb is on (process 0 only).
  wandb = wandb_log.start(run.workdir, config.get("log"), config.to_dict()) if run.main_process else None
  run.writer = tensorboard_log.MetricsWriter(run.workdir, enabled=run.main_process, start_step=start,
                                             batch_size=tcfg.batch_size, wandb=wandb)
  # Step metrics since the last evaluation, on device; a checkpoint saved without one restored its own.
  window: list[dict[str, jax.Array]] = run.window
  window_start = start - len(window)  # the step of window[0]
  t_epoch = run.t0
  with tqdm.tqdm(total=run.total_steps, initial=start, desc="train", unit="step", dynamic_ncols=True) as bar:
    for step in range(start, run.total_steps):
      state = _enter_phase(run, state, step)
      state, m = run.train_fns[run.phase](state, next(batches), rng)
      if step == start:
        jax.block_until_ready(m)
        log.info("First step done %.1f s after start (compiling included).", time.time() - run.t_start)
        batches.take_stats()  # the epoch's input wait and images/s leave compiling out
      window.append(m)
      bar.update()
      done, evaluates = step + 1, run.cadence.evaluates(step + 1)
      stop = run.watch.reached(done)  # every process, every step: multi-process runs agree on it
      if not evaluates and done % tcfg.log_every_steps == 0:  # reading values syncs: not every step
        run.guard.check(window, window_start)
        bar.set_postfix(loss=f"{float(m['loss']):.3f}", acc=f"{float(m['accuracy']):.3f}")
        run.writer.train(done, window, run.groups, run.lr(state))
      if not (stop or run.cadence.checkpoints(done)):
        continue
      run.guard.check(window, window_start)  # before the save: a diverged state is never saved
      if not evaluates:  # the window goes with it: the next record averages the same steps
        run.ckpts.save(done, state, {}, window_lib.to_json(window))
      else:
        # input_wait_ms, train_images_per_s: taken before the evaluation's time
        record = _evaluate_and_save(run, state, done, done // run.steps_per_epoch, window, t_epoch,
                                    batches.take_stats())
        window, window_start, t_epoch = [], done, time.time()
        run.guard.new_window()
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_accuracy']:.4f}")
        when = f"epoch {record['epoch']}" if done % run.steps_per_epoch == 0 else \
            f"step {done} (epoch {done / run.steps_per_epoch:.2f})"
        tqdm.tqdm.write(f"{when}: train loss {record['train_loss']:.4f} "
                        f"acc {record['train_accuracy']:.4f} | {run.val_name} loss {record['val_loss']:.4f} "
                        f"acc {record['val_accuracy']:.4f} | {record['train_images_per_s']:.1f} img/s, "
                        f"input wait {record['input_wait_ms']:.1f} ms/step"
                        + (f" | EMA acc {record['val_accuracy_ema']:.4f}" if "val_accuracy_ema" in record else ""))
      if stop or run.watch.requested():  # requested during this save: the step saved is this one
        _stop(run, done)
  return state


def _stop(run: _Run, step: int):
  """Ends a preempted run after checkpoint ``step`` committed: TensorBoard flushed, ``Preempted``."""
  run.writer.close()
  log.warning("Stopped by %s after saving step %d.", run.watch.received or "a preemption notice", step)
  raise Preempted(step, run.watch.received or "a preemption notice (SIGTERM)")


def _enter_phase(run: _Run, state, step: int):
  """``state`` switched to the phase of ``step`` if that is a new one (with its own jitted step)."""
  phase = run.plan.phase_at(step)
  if phase == run.phase:
    return state
  run.phase = phase
  state, _ = next_phase(run.config, state, run.dataset.num_classes, run.total_steps, phase, run.plan)
  run.train_fns[phase] = run.new_train_fn()
  tqdm.tqdm.write(f"step {step}: phase {phase + 1}")
  _log_groups(state, run.groups, len(run.plan.frozen_bn(phase)))
  return sharding.replicate(state, run.mesh)


def _evaluate_and_save(run: _Run, state, step: int, epoch: int, window, t_epoch: float,
                       loop: dict[str, float]) -> dict[str, Any]:
  """Evaluates on the validation split, checkpoints ``step`` and appends its record to metrics.jsonl."""
  host = jax.device_get(window)
  host = [w for w in host if not w["nonfinite"]] or host  # skipped steps' losses are not finite
  result = run.evaluate(state, run.dataset.splits[run.val_name])
  has_ema = run.config.train.get("ema_decay", 0.0) > 0
  if has_ema:
    result_ema = run.evaluate(ema.weights(state, "ema"), run.dataset.splits[run.val_name])
  record = {
      "step": step, "epoch": epoch, "lr": run.lr(state),
      "train_loss": float(np.mean([w["loss"] for w in host])),
      "train_accuracy": float(np.mean([w["accuracy"] for w in host])),
      "val_loss": result["report"]["loss"], "val_accuracy": result["report"]["accuracy"],
      "elapsed_s": round(time.time() - run.t0, 1), "epoch_s": round(time.time() - t_epoch, 3), **loop,
  }
  if has_ema:
    record |= {"val_loss_ema": result_ema["report"]["loss"], "val_accuracy_ema": result_ema["report"]["accuracy"]}
  if run.guard.mode == "skip_step":
    record["skipped_steps"] = run.guard.skipped
  run.ckpts.save(step, state, record)  # the record is kept with it: see workdir.resume_metrics
  if run.main_process:  # after the checkpoint commits: a resume never repeats the record
    workdir_lib.append_metrics(run.workdir, record)
  run.writer.evaluation(record, result, run.dataset.class_names)
  return record


def _final_evaluation(run: _Run, state) -> dict[str, Any]:
  """Tests the final model (the fixed recipe's result) and the best one by validation
  accuracy (noisy on small validation splits); writes reports, curves and summary.json."""
  if run.main_process:
    plots.plot_training_curves(workdir_lib.read_metrics(run.workdir), os.path.join(run.workdir, "curves.png"))
  summary = {"final_step": run.total_steps, "best_step": run.ckpts.best_step(), "cached_features": run.cached,
             "test_weights": run.config.train.get("best_by", "raw"),
             "train_step_compiles": [fn._cache_size() for fn in run.train_fns.values()],
             "skipped_steps": sum(r.get("skipped_steps", 0) for r in workdir_lib.read_metrics(run.workdir))}
  for name, step in (("final", run.total_steps), ("best", summary["best_step"])):
    if run.watch.requested():  # every step is saved: the rerun does only this evaluation
      _stop(run, run.total_steps)
    result = run.evaluate(ema.weights(_restore_at(run, state, step), summary["test_weights"]),
                          run.dataset.splits["test"])
    out = os.path.join(run.workdir, "eval", f"test_step{step}")
    if run.main_process:
      write_report(out, result, run.dataset.class_names, f"test, step {step}")
    run.writer.report(f"test_{name}", step, result, run.dataset.class_names)
    summary |= {f"{name}_val_accuracy": run.ckpts.metrics(step)[run.ckpts.metric],
                f"{name}_test_accuracy": result["report"]["accuracy"],
                f"{name}_test_macro_f1": result["report"]["macro_f1"], f"{name}_report_dir": out}
  summary["train_time_s"] = round(time.time() - run.t0, 1)
  run.writer.close()
  if run.main_process:
    workdir_lib.write_summary(run.workdir, summary)
  return summary


def _restore_at(run: _Run, state, step: int):
  """Checkpoint ``step`` in the state structure of the phase that saved it."""
  phase = run.plan.phase_of_checkpoint(step)
  if phase == run.phase:
    return run.ckpts.restore(step, state)
  return run.ckpts.restore(step, abstract_state(run.config, run.dataset.num_classes, run.total_steps, phase,
                                                sharding.replicated(run.mesh), run.plan))
