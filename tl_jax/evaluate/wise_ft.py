"""WiSE-FT (Wortsman et al., CVPR 2022): the backbone's weights interpolated between the run's
pretrained start and a fine-tuned checkpoint, ``(1 - alpha) * start + alpha * fine``, the
fine-tuned head kept; each ``alpha`` evaluated on validation and test, ``alpha`` chosen on validation.

The start is rebuilt as the trainer built it (``state.create_state``: the config's pretrained
weights, or its seeded random init when ``init.pretrained`` is off). BatchNorm running statistics
are interpolated like the weights (an approximation: the statistics of the interpolated network
are not measured). ``alpha = 1`` is the checkpoint; ``alpha = 0`` the pretrained backbone under the
fine-tuned head. ``test_shifted`` is the test split under ImageNet-C Gaussian noise of severity 3
(``tl_jax.data.shift``): WiSE-FT's robustness claim, checked beside in-distribution accuracy.
"""

import json
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import data as data_lib, models
from tl_jax.data import shift
from tl_jax.evaluate import evaluation, tta as tta_lib
from tl_jax.metrics import intervals, plots
from tl_jax.metrics.report import evaluate_split
from tl_jax.train import ema, state as state_lib

ALPHAS = tuple(np.round(np.linspace(0, 1, 11), 2))


def interpolate(start: Any, fine: Any, alpha: float, head: str = models.Classifier.HEAD) -> Any:
  """``(1 - alpha) * start + alpha * fine`` leafwise, except under the top-level key ``head``
  (the fine-tuned head is kept). Dtypes of ``fine``."""
  if jax.tree.structure(start) != jax.tree.structure(fine):
    raise ValueError("The pretrained start and the checkpoint hold different trees: not the same model.")

  def mix(path, s, f):
    if path and getattr(path[0], "key", None) == head:
      return f
    return ((1 - alpha) * jnp.asarray(s, jnp.float32) + alpha * jnp.asarray(f, jnp.float32)).astype(f.dtype)

  return jax.tree_util.tree_map_with_path(mix, start, fine)


def wise_ft(workdir: str, which: str | int = "best", alphas: Sequence[float] = ALPHAS,
            weights: str | None = None, splits: Sequence[str] = ("val", "test", shift.SHIFTED)) -> dict[str, Any]:
  """Evaluates checkpoint ``which`` of ``workdir`` interpolated with its start at every ``alpha``.

  Writes ``wise_ft.json`` and ``wise_ft.png`` (accuracy against alpha per split) under
  ``workdir/eval/wise_ft_step<N>[_ema]/``; returns ``{"step", "weights", "alphas", "<split>":
  {"accuracy": [...], "nll": [...]}, "best_alpha", "test_at_best", "chosen_vs_finetuned", "path"}``
  (``best_alpha``: the highest ``splits[0]`` accuracy, ties to the larger alpha;
  ``chosen_vs_finetuned``: per split, the paired test of ``best_alpha`` against ``alpha = 1``: the
  accuracy difference, its paired-bootstrap 95% interval, McNemar's p, ``separated``).
  """
  run = evaluation.restore(workdir, which)
  weights = weights or evaluation.default_weights(run.config)
  dataset = data_lib.load(run.config.data)
  if shift.SHIFTED in splits and "test" in dataset.splits:
    dataset.splits[shift.SHIFTED] = shift.shifted(dataset.splits["test"])
  missing = [s for s in splits if s not in dataset.splits]
  if missing:
    raise ValueError(f"WiSE-FT needs the splits {missing}; this run has {sorted(dataset.splits)}.")
  fine = ema.weights(run.state, weights)
  start, _ = state_lib.create_state(run.config, len(run.class_names), 1)
  eval_fn, out = tta_lib.eval_fn("none"), {"step": run.step, "weights": weights, "alphas": [float(a) for a in alphas]}
  data, correct = {}, {}
  for name in splits:
    split = dataset.splits[name]
    if dataset.class_names != run.class_names:
      split = evaluation.align(evaluation.EvalData(name, split, dataset.class_names), run.class_names)
    data[name], out[name] = split, {"accuracy": [], "nll": []}
  for alpha in alphas:
    mixed = fine.replace(params=interpolate(start.params, fine.params, alpha),
                         batch_stats=interpolate(start.batch_stats, fine.batch_stats, alpha))
    for name, split in data.items():
      result = evaluate_split(eval_fn, mixed, split, run.config.train.eval_batch_size, len(run.class_names))
      out[name]["accuracy"].append(result["report"]["accuracy"])
      out[name]["nll"].append(result["report"]["nll"])
      correct.setdefault(name, []).append(result["pred"] == result["labels"])
  chooser = out[splits[0]]["accuracy"]
  best = max(range(len(alphas)), key=lambda i: (chooser[i], alphas[i]))
  out["best_alpha"] = float(alphas[best])
  out["test_at_best"] = {s: out[s]["accuracy"][best] for s in splits}
  if 1.0 in out["alphas"]:  # the chosen alpha against the fine-tuned checkpoint, image by image
    fine_i = out["alphas"].index(1.0)
    out["chosen_vs_finetuned"] = {}
    for s in splits:
      diff, low, high = intervals.paired_bootstrap(correct[s][best], correct[s][fine_i])
      out["chosen_vs_finetuned"][s] = {"difference": diff, "low": low, "high": high,
                                       "mcnemar_p": intervals.mcnemar_exact(correct[s][best], correct[s][fine_i]),
                                       "separated": bool(low > 0 or high < 0)}
  folder = os.path.join(workdir, "eval", f"wise_ft_step{run.step}" + ("_ema" if weights == "ema" else ""))
  os.makedirs(folder, exist_ok=True)
  out["path"] = os.path.join(folder, "wise_ft.json")
  with open(out["path"], "w") as f:
    json.dump(out, f, indent=1)
  plots.plot_accuracy_lines({s: [(float(a), acc, intervals.error_bar(acc, test_images=len(correct[s][0])))
                                 for a, acc in zip(alphas, out[s]["accuracy"])] for s in splits},
                            os.path.join(folder, "wise_ft.png"), xlabel="alpha (0: pretrained backbone, 1: fine-tuned)",
                            title=f"WiSE-FT, step {run.step}, chosen alpha {out['best_alpha']:g}")
  return out
