"""The linear probe tested by stratified k-fold: every image of a small dataset tested once.

``probe_folds(config, workdir, k)`` takes the cached features of every model of ``config.probe``
(``probe_sweep.cached_features``: train, val and test together are all the dataset's images),
deals them into ``k`` stratified folds (``data.stratified_folds``, seeded by ``config.data.seed``)
and, for each fold, runs ``probe.protocol`` with that fold as the test set, the penalty selected on
a stratified tenth of the rest and the probe refit on the rest. The per-image results of the k
folds are pooled, so each model's accuracy is over the whole dataset (the CIFAR-10 subset: 5,085
images instead of 1,000), with its Wilson interval, the per-fold accuracies beside it, and a paired
test (bootstrap interval of the difference, McNemar's exact p) for every pair of models.
``python scripts/compare.py --config <probe config> --config.probe.folds=5`` writes
``probe_folds.{csv,md}`` and ``paired.{csv,md}``.
"""

import os
from typing import Any

import numpy as np

from tl_jax import data as data_lib
from tl_jax.metrics import intervals
from tl_jax.studies import compare, probe, probe_sweep

FIELDS = ("model", "feature", "folds", "test_images", "accuracy", "accuracy_low", "accuracy_high",
          "fold_accuracies", "l2s")


def probe_folds(config, workdir: str, k: int | None = None, log=print) -> tuple[list[dict[str, Any]], list]:
  """Rows per (model, feature) of ``config.probe`` (all images, pooled over ``k`` folds), and the
  paired tests between every two (model, feature)s (``"<model> <feature>"``)."""
  pcfg = config.probe
  k = k or pcfg.folds
  grid = probe.l2_grid(**dict(pcfg.l2_grid))
  kw = dict(standardize=pcfg.standardize, tol=pcfg.tol, max_iter=pcfg.max_iter)
  rows, correct = [], {}
  for name in pcfg.models:
    feats = probe_sweep.cached_features(config, name, log=log)
    labels = np.concatenate([feats[s][1] for s in probe_sweep.SPLITS])
    fold = data_lib.stratified_folds(labels, k, config.data.seed)
    keys = probe_sweep.feature_order(feats["train"][0]) if tuple(pcfg.features) == ("all",) else pcfg.features
    for key in keys:
      x = np.concatenate([feats[s][0][key] for s in probe_sweep.SPLITS])
      right, accs, l2s = np.zeros(len(labels), bool), [], []
      for f in range(k):
        test, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        is_val = data_lib.stratified_folds(labels[rest], 10, config.data.seed + 1) == 0
        train, val = rest[~is_val], rest[is_val]
        r = probe.protocol((x[train], labels[train]), (x[val], labels[val]), (x[test], labels[test]), grid,
                           **kw, pad_rows=len(rest))
        right[test] = r.test_correct
        accs.append(r.test_accuracy)
        l2s.append(r.l2)
      low, high = intervals.wilson(int(right.sum()), len(right))
      rows.append({"model": name, "feature": key, "folds": k, "test_images": len(right),
                   "accuracy": float(right.mean()), "accuracy_low": low, "accuracy_high": high,
                   "fold_accuracies": " ".join(f"{a:.4f}" for a in accs), "l2s": " ".join(f"{v:.0e}" for v in l2s)})
      correct[f"{name} {key}"] = (labels, right)
      log(f"{name} {key}: {100 * right.mean():.1f}% [{100 * low:.1f}, {100 * high:.1f}] over {len(right)} "
          f"images ({k} folds: {', '.join(f'{100 * a:.1f}' for a in accs)})")
  pairs = [{"images_per_class": "all", "seed": 0, **p} for p in intervals.paired_table(correct)]
  os.makedirs(workdir, exist_ok=True)
  compare.write_csv(rows, os.path.join(workdir, "probe_folds.csv"), FIELDS)
  lines = [f"{pcfg.get('title', '')}, {k}-fold (every image tested once)\n",
           "| model | feature | accuracy [95% Wilson] | per fold |", "|---|---|---|---|"]
  lines += [f"| {r['model']} | {r['feature']} | {100 * r['accuracy']:.1f}% [{100 * r['accuracy_low']:.1f}, "
            f"{100 * r['accuracy_high']:.1f}] over {r['test_images']} | {r['fold_accuracies']} |" for r in rows]
  with open(os.path.join(workdir, "probe_folds.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  compare.write_paired(pairs, workdir)
  return rows, pairs
