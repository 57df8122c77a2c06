"""Temperature scaling (Guo et al., ICML 2017): one ``T > 0`` fitted on the validation split by
minimising the NLL of ``softmax(logits / T)``; it changes the confidence, never the prediction.

``fit(logits, labels)`` works on ``b = 1 / T``, where the NLL ``mean(logsumexp(b z) - b z_y)`` is
convex with derivatives ``mean(E_p[z] - z_y)`` and ``mean(Var_p[z])``: Newton steps kept inside a
shrinking bracket (bisection where Newton leaves it) reach the optimum to machine precision.
``T`` is bounded to ``[T_MIN, T_MAX]``: separable validation logits have their optimum at ``T -> 0``.

The fitted temperature is saved with the run, ``workdir/calibration.json``
(``{"temperature", "step", "weights", "split", "nll_before", "nll_after", ...}``), for the
checkpoint and weights it was fitted on; ``load`` returns it for that checkpoint only.
"""

import json
import logging
import os
from typing import Any

import numpy as np

FILE = "calibration.json"
T_MIN, T_MAX = 0.05, 20.0

log = logging.getLogger(__name__)


def _derivatives(b: float, z: np.ndarray, zy: np.ndarray) -> tuple[float, float]:
  """First and second derivative in ``b`` of the mean NLL of ``softmax(b z)``."""
  s = b * z
  p = np.exp(s - s.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  mean = (p * z).sum(-1)
  return float((mean - zy).mean()), float(((p * z * z).sum(-1) - mean ** 2).mean())


def fit(logits: np.ndarray, labels: np.ndarray, *, tol: float = 1e-12, max_steps: int = 100) -> float:
  """The temperature minimising the mean NLL of ``softmax(logits / T)`` over ``[T_MIN, T_MAX]``."""
  z = np.asarray(logits, np.float64)
  z = z - z.mean(-1, keepdims=True)  # softmax is shift-invariant; smaller numbers
  zy = z[np.arange(len(z)), np.asarray(labels)]
  lo, hi = 1 / T_MAX, 1 / T_MIN
  if _derivatives(lo, z, zy)[0] >= 0:  # the NLL rises from the hottest temperature allowed
    return T_MAX
  if _derivatives(hi, z, zy)[0] <= 0:  # still falling at the coldest: (nearly) separable logits
    return T_MIN
  b = 1.0 if lo < 1.0 < hi else (lo + hi) / 2
  for _ in range(max_steps):
    g, h = _derivatives(b, z, zy)
    if g > 0:
      hi = b
    else:
      lo = b
    if abs(g) <= tol or hi - lo <= tol * b:
      break
    step = b - g / h if h > 0 else None
    b = step if step is not None and lo < step < hi else (lo + hi) / 2
  return float(1 / b)


def save(workdir: str, temperature: float, *, step: int, weights: str, split: str = "val",
         **extra: Any) -> str:
  """Writes ``workdir/calibration.json`` for checkpoint ``step``'s ``weights``; returns its path."""
  path = os.path.join(workdir, FILE)
  with open(path + ".tmp", "w") as f:
    json.dump({"temperature": float(temperature), "step": int(step), "weights": weights, "split": split,
               **extra}, f, indent=1)
  os.replace(path + ".tmp", path)
  return path


def load(workdir: str, step: int | None = None, weights: str | None = None) -> float | None:
  """The saved temperature, if any and fitted on checkpoint ``step`` with ``weights`` (None: any);
  None otherwise (a temperature for another checkpoint is ignored, with a warning)."""
  path = os.path.join(workdir, FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  if (step is not None and saved["step"] != step) or (weights is not None and saved["weights"] != weights):
    log.warning("%s was fitted on step %s (%s weights), not step %s (%s weights): not applied.",
                path, saved["step"], saved["weights"], step, weights)
    return None
  return float(saved["temperature"])


def calibrate(workdir: str, which: str | int = "best", weights: str | None = None, *,
              fit_split: str = "val", test_split: str = "test") -> dict[str, Any]:
  """Fits the temperature of checkpoint ``which`` on ``fit_split``, saves it with the run and
  evaluates ``test_split`` before and after.

  Writes the calibrated report (accuracy unchanged; ``ece``, ``classwise_ece``, ``nll``, ``brier``
  after scaling, ``uncalibrated`` before, ``temperature``) with its reliability diagram under
  ``workdir/eval/<test_split>_step<N>[_ema]_calibrated/``; returns ``{"temperature", "step",
  "weights", "before", "after", "report_path", "calibration_path"}``.
  """
  import jax  # the evaluation stack: only this entry point needs it
  from tl_jax import data as data_lib
  from tl_jax.evaluate import evaluation
  from tl_jax.metrics import calibration
  from tl_jax.metrics.report import evaluate_split, write_report
  from tl_jax.train import ema, steps

  run = evaluation.restore(workdir, which)
  weights = weights or evaluation.default_weights(run.config)
  dataset = data_lib.load(run.config.data)
  missing = [s for s in (fit_split, test_split) if s not in dataset.splits]
  if missing:
    raise ValueError(f"Temperature scaling needs the splits {missing}; this run has {sorted(dataset.splits)} "
                     "(give the run a validation split: data.val_fraction).")
  state, eval_fn = ema.weights(run.state, weights), jax.jit(steps.eval_step)
  results = {}
  for name in (fit_split, test_split):
    split = dataset.splits[name]
    if dataset.class_names != run.class_names:
      split = evaluation.align(evaluation.EvalData(name, split, dataset.class_names), run.class_names)
    results[name] = (evaluate_split(eval_fn, state, split, run.config.train.eval_batch_size, len(run.class_names)),
                     split.labels)
  (fitted, fit_labels), (tested, test_labels) = results[fit_split], results[test_split]
  t = fit(fitted["logits"], fit_labels)
  keys = ("ece", "classwise_ece", "nll", "brier")
  before = {k: tested["report"][k] for k in keys}
  scaled = calibration.calibration_report(tested["logits"] / t, test_labels)
  after = {k: scaled[k] for k in keys}
  calibration_path = save(workdir, t, step=run.step, weights=weights, split=fit_split,
                          nll_before=calibration.nll(fitted["logits"], fit_labels),
                          nll_after=calibration.nll(fitted["logits"] / t, fit_labels))
  report = {**tested["report"], **scaled, "uncalibrated": before, "temperature": t}
  out = os.path.join(workdir, "eval", f"{test_split}_step{run.step}" + ("_ema" if weights == "ema" else "")
                     + "_calibrated")
  path = write_report(out, {**tested, "report": report}, run.class_names,
                      f"{test_split}, step {run.step}, T={t:.3f}")
  return {"temperature": t, "step": run.step, "weights": weights, "before": before, "after": after,
          "report_path": path, "calibration_path": calibration_path}
