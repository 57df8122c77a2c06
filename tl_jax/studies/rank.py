"""Ranking pretrained models, and their cut points, for a dataset before training any of them.

``rank(data, models, workdir=...)`` runs each model once over the labelled images of ``data`` (a
spec of ``tl_jax.evaluate.evaluation``: ``folder:PATH``, ``npz:PATH``, ``tfds:NAME:SPLIT``, or
``digits``), keeping the pooled features of its cut points (``stem``, ``stage1..N``,
``pre_logits``; only ``pre_logits`` unless ``stages``) and, where the weights have one, the
source head's probabilities; then scores every (model, cut point) with
``tl_jax.studies.transferability``. Writes ``rank.csv``, ``rank.md`` and ``rank.png`` into
``workdir``; ``scripts/rank.py`` is the command.

LEEP and NCE depend on the source head only, so they are given on each model's ``pre_logits``
row (the features the head reads) and left empty on its other cut points.
"""

import csv
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from tl_jax import data as data_lib
from tl_jax.data import in_package
from tl_jax.evaluate import evaluation
from tl_jax.studies import probe_sweep, transferability
from tl_jax.train import feature_cache, workdir as workdir_lib

SOURCE = "source_logits"  # the key of the source head's logits among the pooled outputs
COLUMNS = ("model", "cut_point", "dim", "images", *transferability.SCORES, *transferability.SOURCE_SCORES,
           "forward_s", "score_s")


def load_images(spec: str, image_size: int, *, per_class: int = 0, seed: int = 0,
                cache_dir: str = "") -> data_lib.Split:
  """The labelled images of ``spec`` at ``image_size`` (``per_class`` > 0: that many per class).

  ``digits`` is scikit-learn's digits (all 1,797); anything else goes through
  ``evaluation.load_data``, sized as a run's own data would be.
  """
  if spec == "digits":
    images, labels, _ = in_package.digits()
    split = data_lib.Split(data_lib.sized(images, {"name": "digits", "image_size": image_size}), labels)
  else:
    split = evaluation.load_data(spec, {"image_size": image_size, "cache_dir": cache_dir}).split
  if per_class:
    idx = probe_sweep.subset(split.labels, per_class, seed)
    split = data_lib.Split(np.asarray(split.images[idx]), split.labels[idx])
  return split


def _outputs(apply_fn, variables, split, image_size: int, stages: bool, batch_size: int):
  has_head = "head" in variables["params"]

  def outputs(v, x):  # the source logits ride along with the features: still one forward pass
    logits, feats = apply_fn(v, x)
    return logits, {**feats, SOURCE: logits} if has_head else feats

  probe = jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
  found = jax.eval_shape(lambda v, x: apply_fn(v, x)[1], variables, probe)
  keys = probe_sweep.feature_order(found) if stages else ["pre_logits"]
  pooled = feature_cache.pooled_features(outputs, variables, split, batch_size,
                                         tuple(keys) + ((SOURCE,) if has_head else ()))
  probs = special.softmax(pooled.pop(SOURCE).astype(np.float64), axis=1) if has_head else None
  return pooled, probs


def model_outputs(name: str, split: data_lib.Split, image_size: int, *, stages: bool = False,
                  source: str = "", path: str = "", batch_size: int = 64):
  """``({cut point: (N, D) pooled features}, (N, Z) source probabilities or None)``: one pass.

  The features are ``probe_sweep``'s (``backbone_variables``, ``feature_cache.pooled_features``);
  the model keeps its own head here when its weights have one.
  """
  apply_fn, variables = probe_sweep.backbone_variables(name, image_size, path, source, head=True)
  return _outputs(apply_fn, variables, split, image_size, stages, batch_size)


def checkpoint_outputs(workdir: str, split: data_lib.Split, *, which: str | int = "best",
                       stages: bool = False, batch_size: int = 64):
  """``model_outputs`` of checkpoint ``which`` of an earlier tl_jax run: its backbone's features
  and its own head's probabilities (its classes are the "source" classes of LEEP and NCE).
  ``split`` must be at the run's ``config.data.image_size``."""
  restored = evaluation.restore(workdir, which)
  variables = {"params": restored.state.params, "batch_stats": restored.state.batch_stats}
  return _outputs(restored.state.apply_fn, variables, split, restored.config.data.image_size, stages, batch_size)


def score_model(features: dict[str, np.ndarray], labels: np.ndarray,
                source_probs: np.ndarray | None = None, scores=None) -> list[dict[str, Any]]:
  """One row per cut point: every feature score (``scores``: names, default all), and LEEP/NCE on
  ``pre_logits`` when ``source_probs`` is given."""
  names = list(scores or transferability.SCORES)
  rows = []
  for key in probe_sweep.feature_order(features):
    t0 = time.time()
    row = {"cut_point": key, "dim": features[key].shape[1], "images": len(labels)}
    row.update({s: transferability.SCORES[s](features[key], labels) for s in names
                if s in transferability.SCORES})
    if source_probs is not None and key == "pre_logits":
      row["leep"] = transferability.leep(source_probs, labels)
      row["nce"] = transferability.nce(source_probs.argmax(axis=1), labels)
    row["score_s"] = round(time.time() - t0, 3)
    rows.append(row)
  return rows


def rank(data: str, model_names, *, workdir: str, checkpoints=(), stages: bool = False,
         image_size: int = 224, per_class: int = 0, seed: int = 0, by: str = "logme", batch_size: int = 64,
         cache_dir: str = "", log=print) -> list[dict[str, Any]]:
  """Scores every model of ``model_names`` and every run in ``checkpoints`` (workdirs: their best
  checkpoint, images at the run's own size), and with ``stages`` every cut point, on ``data``.

  Returns the rows (model order, then depth), also written to ``workdir/rank.{csv,md,png}``;
  ``top(rows, by)`` is the best one.
  """
  if by not in COLUMNS[4:-2]:
    raise ValueError(f"by={by!r}: rank by one of {COLUMNS[4:-2]}.")
  splits: dict[int, data_lib.Split] = {}

  def images(size):  # the same images (same subset) at every size a candidate needs
    if size not in splits:
      splits[size] = load_images(data, size, per_class=per_class, seed=seed, cache_dir=cache_dir)
      log(f"{data}: {len(splits[size])} images, {len(np.unique(splits[size].labels))} classes, {size} px")
    return splits[size]

  candidates = [(n, image_size, lambda split, n=n: model_outputs(n, split, image_size, stages=stages,
                                                                batch_size=batch_size)) for n in model_names]
  for w in checkpoints:
    candidates.append((w, workdir_lib.load_config(w).data.image_size,
                       lambda split, w=w: checkpoint_outputs(w, split, stages=stages, batch_size=batch_size)))
  if not candidates:
    raise ValueError("Nothing to rank: give zoo model names, run workdirs (checkpoints), or both.")
  rows = []
  for name, size, outputs in candidates:
    split = images(size)
    labels = np.asarray(split.labels)
    t0 = time.time()
    feats, probs = outputs(split)
    forward = round(time.time() - t0, 2)
    mine = score_model(feats, labels, probs)
    for r in mine:
      rows.append({"model": name, **r, "forward_s": forward})
    log(f"{name}: forward {forward:.1f} s, scores {sum(r['score_s'] for r in mine):.1f} s"
        + ("" if probs is not None else " (no source head: no LEEP/NCE)"))
  os.makedirs(workdir, exist_ok=True)
  write(rows, workdir, by, title=f"{data}, {len(labels)} images")
  return rows


def top(rows, by: str = "logme") -> dict[str, Any]:
  """The row with the highest ``by``."""
  scored = [r for r in rows if r.get(by) is not None and np.isfinite(r[by])]
  if not scored:
    raise ValueError(f"No row has a {by} score.")
  return max(scored, key=lambda r: r[by])


def _fmt(v) -> str:
  if v is None:
    return ""
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def write(rows, workdir: str, by: str = "logme", title: str = "") -> None:
  """``rank.csv`` (every row), ``rank.md`` (sorted by ``by``, with its rank) and ``rank.png``."""
  order = sorted(rows, key=lambda r: -r[by] if r.get(by) is not None else np.inf)
  with open(os.path.join(workdir, "rank.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  cols = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]
  lines = [f"Ranked by {by} (higher is better){': ' + title if title else ''}", "",
           "| rank | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  lines += [f"| {i + 1 if r.get(by) is not None else ''} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |"
            for i, r in enumerate(order)]
  with open(os.path.join(workdir, "rank.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  plot(rows, os.path.join(workdir, "rank.png"), title)


def plot(rows, path: str, title: str = "") -> str:
  """One panel per score: its value per cut point (or per model), one line per model."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  scores = [s for s in COLUMNS[4:-2] if any(r.get(s) is not None for r in rows)]
  models = list(dict.fromkeys(r["model"] for r in rows))
  cuts = probe_sweep.feature_order(dict.fromkeys(r["cut_point"] for r in rows))
  by_cut = len(cuts) > 1
  cols = min(3, len(scores))
  rows_ = -(-len(scores) // cols)
  fig = Figure(figsize=(4.2 * cols, 3.4 * rows_), layout="constrained")
  axes = fig.subplots(rows_, cols, squeeze=False).ravel()
  for ax in axes[len(scores):]:
    ax.set_visible(False)
  for ax, s in zip(axes, scores):
    for i, m in enumerate(models):
      pts = [(cuts.index(r["cut_point"]) if by_cut else i, r[s]) for r in rows
             if r["model"] == m and r.get(s) is not None]
      if pts:
        ax.plot(*zip(*pts), marker="o", label=m)
    ticks = cuts if by_cut else models
    ax.set_xticks(range(len(ticks)), [t.replace("efficientnet_", "") for t in ticks], rotation=45, ha="right")
    ax.set_title(s)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize="small")
  if title:
    fig.suptitle(title)
  FigureCanvasAgg(fig).print_png(path)
  return path
