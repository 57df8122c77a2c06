"""Model soups (Wortsman et al., ICML 2022): the weights of several fine-tunes of one pretrained
model averaged, evaluated beside the best single run.

- uniform soup: every ingredient's weights (params and BatchNorm statistics) averaged;
- greedy soup: ingredients sorted by validation accuracy, best first; each is added (the soup is
  the uniform average of those kept) only if the soup's validation accuracy does not drop.

Ingredients are checkpoints (``which``, default ``best``) of runs whose model (``config.model``),
start (``config.init``, and ``seed`` for a random start) and classes are the same; otherwise a
``ValueError`` names the run and what differs. Validation and test data are the first run's splits.
"""

import json
import os
from typing import Any, Sequence

import jax
import ml_collections

from tl_jax import data as data_lib
from tl_jax.evaluate import averaging, evaluation, tta as tta_lib
from tl_jax.metrics.report import evaluate_split
from tl_jax.train import ema


def _start(config: ml_collections.ConfigDict) -> dict[str, Any]:
  init = dict(config.init)
  return {"init": init, **({} if init.get("pretrained") else {"seed": config.get("seed")})}


def check_ingredients(workdirs: Sequence[str], runs: Sequence[evaluation.Restored]) -> None:
  """Raises ``ValueError`` unless every run shares the first's model, start and classes."""
  first = runs[0]
  for w, r in zip(workdirs[1:], runs[1:]):
    for what, a, b in (("model (config.model)", dict(first.config.model), dict(r.config.model)),
                       ("pretrained start (config.init / seed)", _start(first.config), _start(r.config)),
                       ("classes", first.class_names, r.class_names)):
      if a != b:
        raise ValueError(f"{w} cannot join a soup with {workdirs[0]}: its {what} differs:\n  {b}\n  vs {a}")
    if jax.tree.structure(r.state.params) != jax.tree.structure(first.state.params):
      raise ValueError(f"{w} cannot join a soup with {workdirs[0]}: its parameter tree differs.")


def _mix(states):
  return states[0].replace(params=averaging.mean_tree([s.params for s in states]),
                           batch_stats=averaging.mean_tree([s.batch_stats for s in states]))


def soup(workdirs: Sequence[str], out: str | None = None, which: str | int = "best",
         weights: str = "raw") -> dict[str, Any]:
  """Uniform and greedy soups of ``workdirs``' checkpoints ``which`` (their ``weights``).

  Returns (and writes to ``out/soup.json`` when given) ``{"ingredients": [{"workdir", "step",
  "val_accuracy", "test_accuracy"}] (by validation accuracy), "best_single", "uniform", "greedy":
  {"val_accuracy", "test_accuracy", ["members"]}}``.
  """
  if len(workdirs) < 2:
    raise ValueError("A soup needs at least two runs (--workdirs a,b,...).")
  runs = [evaluation.restore(w, which) for w in workdirs]
  check_ingredients(workdirs, runs)
  config, names = runs[0].config, runs[0].class_names
  dataset = data_lib.load(config.data)
  splits = {}
  for name in ("val", "test"):
    if name not in dataset.splits:
      raise ValueError(f"A soup is chosen on val and tested on test; {workdirs[0]} has {sorted(dataset.splits)}.")
    split = dataset.splits[name]
    if dataset.class_names != names:
      split = evaluation.align(evaluation.EvalData(name, split, dataset.class_names), names)
    splits[name] = split
  eval_fn = tta_lib.eval_fn("none")

  def accuracy(state, name):
    return evaluate_split(eval_fn, state, splits[name], config.train.eval_batch_size, len(names))["report"]["accuracy"]

  states = [ema.weights(r.state, weights) for r in runs]
  rows = [{"workdir": w, "step": r.step, "val_accuracy": accuracy(s, "val"), "test_accuracy": accuracy(s, "test")}
          for w, r, s in zip(workdirs, runs, states)]
  order = sorted(range(len(runs)), key=lambda i: -rows[i]["val_accuracy"])  # stable: ties keep the given order
  kept, best_val = [order[0]], rows[order[0]]["val_accuracy"]
  for i in order[1:]:
    val = accuracy(_mix([states[j] for j in kept + [i]]), "val")
    if val >= best_val:
      kept, best_val = kept + [i], val
  uniform = _mix(states)
  greedy = _mix([states[j] for j in kept])
  result = {"ingredients": [rows[i] for i in order], "best_single": rows[order[0]],
            "uniform": {"val_accuracy": accuracy(uniform, "val"), "test_accuracy": accuracy(uniform, "test")},
            "greedy": {"val_accuracy": best_val, "test_accuracy": accuracy(greedy, "test"),
                       "members": [workdirs[j] for j in kept]}}
  if out:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "soup.json"), "w") as f:
      json.dump(result, f, indent=1)
  return result
