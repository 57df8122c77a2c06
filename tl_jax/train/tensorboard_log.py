"""A run's TensorBoard event files, beside its ``metrics.jsonl`` records.

Events go to the workdir itself, so ``tensorboard --logdir runs/`` lists every
run by its directory. They are written with TensorBoard's own event-file writer
and protos (the ones ``torch.utils.tensorboard`` builds on): no TensorFlow, and
unlike tensorboardX no ``import torch`` at start-up when torch happens to be
installed. Tags:

  train/loss, train/accuracy  mean over the steps since the previous log point
                              (every ``train.log_every_steps``)
  train/images_per_s          training throughput over the same steps (not for
                              the first interval, whose time includes compiling)
  lr/<group>                  each trainable group's learning rate at the log
                              point: schedule x ``lr_mult`` (``layer_decay``
                              scales parameters within a group further)
  epoch/<key>                 every other field of each metrics.jsonl record
                              (train_loss, train_accuracy, lr, epoch, epoch_s, ...)
  val/<metric>                each evaluation's report: loss, accuracy, macro_f1,
                              top5_accuracy (> 5 classes), ...
  val/confusion_matrix        the confusion matrix as an image, at each evaluation
  test_final/..., test_best/...  the same for the closing test evaluations

Only the process that ``enabled`` writes (process 0 in multi-host runs). Every scalar goes
through ``_scalars``, which also sends it to Weights & Biases when the run logs there
(``log.wandb``: ``tl_jax.train.wandb_log``).
"""

import io
import struct
import time
from typing import Any, Sequence

import jax
import numpy as np

from tl_jax.metrics import plots


def _tag(key: str) -> str:
  return "val/" + key[len("val_"):] if key.startswith("val_") else "epoch/" + key


class MetricsWriter:
  """Writes TensorBoard events for a run's steps and evaluations (``metrics.jsonl`` is
  written by ``tl_jax.train.workdir``, the same records).

  Args:
    workdir: the run's directory.
    enabled: whether this process writes (False: every method is a no-op).
    start_step: the step a (resumed) run starts from, its checkpoint's step;
      TensorBoard drops the events an interrupted earlier attempt wrote past it.
    batch_size: global batch size, for images/s.
    wandb: a ``wandb_log.Run`` that gets the same scalars (None: TensorBoard only); finished by ``close``.
  """

  def __init__(self, workdir: str, *, enabled: bool = True, start_step: int = 0, batch_size: int = 0,
               wandb=None):
    self._batch_size, self._wandb = batch_size, wandb
    self._last_step, self._clock, self._first = start_step, time.time(), True
    self._events = None
    if enabled:
      from tensorboard.compat.proto import event_pb2
      from tensorboard.summary.writer.event_file_writer import EventFileWriter

      self._event_pb2 = event_pb2
      self._events = EventFileWriter(workdir, flush_secs=30)
      if start_step:
        self._events.add_event(event_pb2.Event(
            step=start_step + 1, wall_time=time.time(),
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

  def _scalars(self, step: int, values: dict[str, float]) -> None:
    from tensorboard.compat.proto import summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                                         for k, v in values.items()])
    self._events.add_event(self._event_pb2.Event(step=step, wall_time=time.time(), summary=summary))
    if self._wandb is not None:
      self._wandb.log(step, values)

  def _image(self, step: int, tag: str, png: bytes) -> None:
    from tensorboard.compat.proto import summary_pb2

    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
    self._events.add_event(self._event_pb2.Event(step=step, wall_time=time.time(), summary=summary))

  def train(self, step: int, window: Sequence[dict[str, Any]], groups, lr: float) -> None:
    """Train scalars at a log point, ``step`` steps done.

    Args:
      step: steps done.
      window: per-step metrics (``loss``, ``accuracy``; device arrays are
        fine) of the steps since the last evaluation, the newest last.
      groups: the ``optim.ParamGroups`` in force.
      lr: the base schedule's learning rate at this step.
    """
    if self._events is None:
      return
    n = min(step - self._last_step, len(window))
    host = jax.device_get(list(window[len(window) - n:]))
    values = {"train/loss": np.mean([m["loss"] for m in host]),
              "train/accuracy": np.mean([m["accuracy"] for m in host])}
    now = time.time()
    if not self._first and step > self._last_step:
      values["train/images_per_s"] = (step - self._last_step) * self._batch_size / (now - self._clock)
    values |= {f"lr/{label}": s.lr_mult * lr for label, s in sorted(groups.settings.items()) if s.trainable}
    self._scalars(step, values)
    self._last_step, self._clock, self._first = step, now, False

  def report(self, prefix: str, step: int, result: dict[str, Any], class_names: Sequence[str]) -> None:
    """An evaluation's scalar metrics as ``<prefix>/<metric>`` (calibration's ECE, NLL and Brier among
    them) and its confusion matrix and reliability diagram as images."""
    if self._events is None:
      return
    self._scalars(step, {f"{prefix}/{k}": v for k, v in result["report"].items()
                         if isinstance(v, (int, float)) and k != "num_examples"})
    png = io.BytesIO()
    plots.plot_confusion_matrix(result["confusion"], class_names, png, title=f"{prefix}, step {step}")
    self._image(step, f"{prefix}/confusion_matrix", png.getvalue())
    if "reliability" in result["report"]:
      png = io.BytesIO()
      plots.plot_reliability_diagram(result["report"]["reliability"], png, ece=result["report"]["ece"],
                                     title=f"{prefix}, step {step}")
      self._image(step, f"{prefix}/reliability_diagram", png.getvalue())
    self._events.flush()

  def evaluation(self, record: dict[str, Any], result: dict[str, Any], class_names: Sequence[str]) -> None:
    """Writes a metrics.jsonl ``record``, its validation report and confusion matrix as events."""
    if self._events is None:
      return
    step = record["step"]
    self._scalars(step, {_tag(k): v for k, v in record.items()
                         if k != "step" and not k.startswith("val_") and isinstance(v, (int, float))})
    self.report("val", step, result, class_names)
    # Evaluation time is not training time: the next images/s interval starts now.
    self._last_step, self._clock = max(self._last_step, step), time.time()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None
