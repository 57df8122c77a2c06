"""Does a transferability score predict the accuracy reached? Rank agreement of scores and results.

``agreement(rows, accuracy)`` gives, per score, Kendall's tau-b (``scipy.stats.kendalltau``, with
its p-value) and the weighted tau (``scipy.stats.weightedtau``, hyperbolic weights on the ranks,
the statistic of the LogME benchmark, thuml/Transfer-Learning-Library
``examples/model_selection``) between the score and the accuracy over the candidates (models, cut
points or both), and what choosing by it would have cost: the accuracy of its top candidate beside
the best one. ``stage_rows`` scores every cut point of a probe sweep's cached features (the
training split; ``scripts/rank_study.py stages``), ``pool_rows`` every start of a fine-tune sweep
(``configs/rank_pool.py``, ``scripts/rank_study.py pool``); ``write`` puts a table beside them.
"""

import csv
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from tl_jax import data as data_lib
from tl_jax.metrics import intervals
from tl_jax.studies import probe_sweep, rank, transferability

SCORE_NAMES = (*transferability.SCORES, *transferability.SOURCE_SCORES)
FIELDS = ("candidates", "score", "n", "tau", "p_value", "weighted_tau", "top_by_score", "top_accuracy",
          "best", "best_accuracy", "top_interval", "best_interval", "pick_cost")


def agreement(rows: Sequence[dict[str, Any]], accuracy: str = "accuracy", scores: Sequence[str] = SCORE_NAMES,
              name: str = "candidate", label: str = "") -> list[dict[str, Any]]:
  """One row per score with at least 3 finite values: tau, its p-value, weighted tau, and the top pick."""
  out = []
  for s in scores:
    rs = [r for r in rows if r.get(s) not in (None, "") and np.isfinite(float(r[s]))]
    if len(rs) < 3:
      continue
    x = np.array([float(r[s]) for r in rs])
    y = np.array([float(r[accuracy]) for r in rs])
    tau, p = stats.kendalltau(x, y)
    top, best = rs[int(np.argmax(x))], rs[int(np.argmax(y))]
    out.append({"candidates": label, "score": s, "n": len(rs), "tau": float(tau), "p_value": float(p),
                "weighted_tau": float(stats.weightedtau(x, y).statistic),
                "top_by_score": top[name], "top_accuracy": float(top[accuracy]),
                "best": best[name], "best_accuracy": float(best[accuracy]), **_pick_cost(top, best, accuracy)})
  return out


def _pick_cost(top, best, accuracy: str) -> dict[str, Any]:
  """The top pick against the best candidate: each accuracy's 95% Wilson interval over its test
  images (rows' ``test_images``) and whether the gap is within noise (the intervals overlap; the
  rows hold no predictions for a paired test). Empty when the rows do not say how many images."""
  if top is best:
    return {"pick_cost": "none (the best)"}
  if not (top.get("test_images") and best.get("test_images")):
    return {}
  (tl, th), (bl, bh) = (intervals.wilson_of_accuracy(float(r[accuracy]), int(r["test_images"]))
                        for r in (top, best))
  gap = 100 * (float(best[accuracy]) - float(top[accuracy]))
  return {"top_interval": f"[{100 * tl:.1f}, {100 * th:.1f}]", "best_interval": f"[{100 * bl:.1f}, {100 * bh:.1f}]",
          "pick_cost": f"{gap:.1f} points, " + ("within noise" if th >= bl else "separated")}


def stage_rows(config, probe_rows: Sequence[dict[str, Any]], log=print) -> list[dict[str, Any]]:
  """Every (model, cut point) of a probe sweep (``config.probe``, all training images): the scores
  on its cached training features and the probe's test accuracy (``accuracy``)."""
  acc = {(r["model"], r["feature"]): r for r in probe_rows if r["seed"] == 0}
  rows = []
  for name in config.probe.models:
    feats, labels = probe_sweep.cached_features(config, name, log=log)["train"]
    t0 = time.time()
    for r in rank.score_model(feats, labels):
      if (name, r["cut_point"]) in acc:
        probe = acc[(name, r["cut_point"])]
        rows.append({"model": name, "candidate": f"{name}/{r['cut_point']}", **r,
                     "accuracy": probe["test_accuracy"], "test_images": probe.get("test_images")})
    log(f"{name}: {len(feats)} cut points scored in {time.time() - t0:.1f} s")
  return rows


def pool_rows(candidates: dict[str, tuple[str, str]], split: data_lib.Split, image_size: int,
              results: Sequence[dict[str, Any]], log=print) -> list[dict[str, Any]]:
  """Every start of ``candidates`` (``{name: (model, weight file or "")}``, ``configs/rank_pool.py``)
  scored on ``split`` (the target's training images; one forward pass each, the start's own head
  for LEEP and NCE) beside its fine-tuned test accuracy in ``results`` (``compare.sweep`` rows)."""
  acc = {r["strategy"]: r for r in results}
  labels = np.asarray(split.labels)
  rows = []
  for name, (model, path) in candidates.items():
    t0 = time.time()
    feats, probs = rank.model_outputs(model, split, image_size, path=path)
    forward = time.time() - t0
    r = rank.score_model(feats, labels, probs)[0]
    rows.append({"candidate": name, "model": model, **r, "forward_s": round(forward, 2),
                 "accuracy": acc[name]["test_accuracy"], "test_images": acc[name].get("test_images"),
                 "finetune_wall_s": acc[name]["wall_s"]})
    log(f"{name}: forward {forward:.1f} s, scores {r['score_s']:.1f} s, fine-tuned "
        f"{100 * rows[-1]['accuracy']:.1f}% in {rows[-1]['finetune_wall_s']:.0f} s")
  return rows


def _fmt(v) -> str:
  return f"{v:.3f}" if isinstance(v, float) else str(v)


def write(rows: Sequence[dict[str, Any]], path: str, fields: Sequence[str] | None = None, title: str = "") -> None:
  """``path`` (.csv) and the same table as Markdown beside it (.md)."""
  fields = list(fields or dict.fromkeys(k for r in rows for k in r))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  with open(path.removesuffix(".csv") + ".md", "w") as f:
    f.write((f"{title}\n\n" if title else "") + "| " + " | ".join(fields) + " |\n|" + "---|" * len(fields) + "\n")
    f.writelines("| " + " | ".join(_fmt(r.get(k, "")) for k in fields) + " |\n" for r in rows)
