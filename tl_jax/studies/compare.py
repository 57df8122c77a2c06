"""Sweeps transfer strategies x training-set sizes and tabulates test accuracy.

``config.compare`` holds ``strategies`` (name -> config overrides),
``images_per_class`` (0 = all training images) and ``num_epochs`` (one per
size: small sets need more epochs to take the same number of steps). Besides
config keys, an override may hold ``images_per_class`` (the sizes this
strategy runs at) and ``epochs_mult`` (a multiplier of the epochs). A phase
start in ``(0, 1)`` (in an override's ``phases``) is a fraction of the run's
steps. Each run is an ordinary ``train_and_evaluate`` in
``workdir/<strategy>/ipc<N>``; a run that finished before is read back, so a
rerun of an interrupted sweep continues where it stopped. ``seeds`` (default
``(0,)``) repeats every run at ``images_per_class <= seeds_up_to`` (``seeds_up_to <= 0``: at every
size, all images too) once per seed (``config.seed`` + that offset: initialisation, data order, augmentation; the
split stays fixed) in ``ipc<N>_seed<S>``; tables show mean ± std over seeds.
Each accuracy carries its 95% Wilson interval over the test images (``test_accuracy_low`` /
``_high`` in results.csv, ``[low, high]`` in results.md, error bars in the plot). Each pair of
strategies tested on the same images (same size and seed) gets a paired test in paired.{csv,md}:
the accuracy difference with its paired-bootstrap 95% interval and McNemar's exact p-value, read
from each run's per-image ``predictions.npz``; an interval containing 0 is "not separated".
``folds`` (k >= 2; small datasets) trains every run k times, testing on each fold of a stratified
k-fold partition of the whole dataset (``data.folds``, ``data.fold``) in ``..._fold<F>``: the tables
then pool the k folds' predictions, so every image is tested once (the CIFAR subset: 5,085 test
images instead of ~1,500); per-fold figures go to folds.csv.
``soup=True``: the runs of one size, seed (and fold) that share a model and start are also
souped (``tl_jax.evaluate.soups``: uniform and greedy soup beside the best single run) into
``soups/`` and soups.md.
Two strategies whose runs have the same config (a trial, and the recipe chosen
from it) share one run. ``cut_points=True`` (configs/cut_points.py), with a
``probe`` block swept first by ``tl_jax.studies.probe_sweep``: ``write_cut_points`` puts
the probe of each cut point's features beside the fine-tune frozen up to it.
"""

import copy
import csv
import json
import os
import time
from typing import Any

import ml_collections
import numpy as np
import tqdm

from tl_jax import data as data_lib
from tl_jax.evaluate import soups
from tl_jax.metrics import intervals, plots
from tl_jax.metrics import report as report_lib
from tl_jax.studies import probe_sweep
from tl_jax.train import trainer

FIELDS = ("strategy", "model", "images_per_class", "seed", "fold", "train_images", "steps", "test_accuracy",
          "best_val_accuracy", "best_test_accuracy", "wall_s", "logreg_test_accuracy",
          "test_images", "test_accuracy_low", "test_accuracy_high")


def run_config(config, overrides, per_class: int, num_epochs: int, train_images: int):
  """The config of one run: the base, the strategy's overrides, the data size."""
  cfg = copy.deepcopy(config)
  cfg.unlock()
  del cfg["compare"]
  if "probe" in cfg:  # the probe half of a cut-point sweep: not a trainer setting
    del cfg["probe"]
  overrides = ml_collections.ConfigDict(overrides).to_dict()
  overrides.pop("images_per_class", None)  # the sizes this strategy runs at
  num_epochs *= overrides.pop("epochs_mult", 1)  # cheap strategies (cached features) can train longer
  steps = num_epochs * (train_images // cfg.train.batch_size)
  phases = overrides.pop("phases", None)
  preset = overrides.get("param_groups", {}).pop("preset", None)
  cfg.update(overrides)
  if preset is not None:  # replaced, not merged key by key as update() would
    cfg.param_groups.preset = dict(preset)
    cfg.param_groups.rules = ()
  if phases:
    cfg.phases = tuple((int(round(s * steps)) if 0 < s < 1 else int(s), dict(o)) for s, o in phases)
  cfg.data.train_per_class = per_class
  cfg.train.num_epochs = num_epochs
  # Evaluating (and checkpointing) every epoch would dominate short runs.
  cfg.train.eval_every_epochs = max(1, num_epochs // config.compare.get("evals_per_run", num_epochs))
  return cfg, steps


def logreg_accuracy(workdir: str) -> float | None:
  """scikit-learn's LogisticRegression on the features a linear probe trained on."""
  cache = os.path.join(workdir, "feature_cache")
  if not os.path.exists(os.path.join(cache, "train.npz")):
    return None
  from sklearn.linear_model import LogisticRegression  # the baseline only
  from sklearn.preprocessing import StandardScaler

  (xtr, ytr), (xte, yte) = [(f["features"], f["labels"]) for f in
                            (np.load(os.path.join(cache, f"{s}.npz")) for s in ("train", "test"))]
  scaler = StandardScaler().fit(xtr)
  clf = LogisticRegression(max_iter=2000).fit(scaler.transform(xtr), ytr)
  return float((clf.predict(scaler.transform(xte)) == yte).mean())


def sweep(config, workdir: str) -> list[dict[str, Any]]:
  """Runs every (strategy, size); writes results.csv, results.md and the plot."""
  ccfg = config.compare
  sizes, epochs = tuple(ccfg.images_per_class), tuple(ccfg.num_epochs)
  if len(sizes) != len(epochs):
    raise ValueError(f"compare.num_epochs {epochs} needs one entry per images_per_class {sizes}.")
  # Size-major: the small-data results, the point of the comparison, come first.
  seeds, up_to = tuple(ccfg.get("seeds", (0,))), ccfg.get("seeds_up_to", 50)
  runs = [(name, n, e, seed) for n, e in zip(sizes, epochs) for name in ccfg.strategies
          if n in tuple(dict(ccfg.strategies[name]).get("images_per_class", sizes))
          for seed in (seeds if up_to <= 0 or 0 < n <= up_to else seeds[:1])]
  folds = ccfg.get("folds", 0)
  if folds:
    config = copy.deepcopy(config)
    config.unlock()
    config.data.folds = folds
  dataset = data_lib.load(config.data)
  train_size = lambda per_class: per_class * dataset.num_classes or len(dataset.splits["train"])
  test_images = len(dataset.splits["test"])
  rows, finished = [], {}  # the same run under two names (a trial and the recipe it chose) runs once
  planned = []
  for (name, per_class, num_epochs, seed), fold in ((r, f) for r in runs for f in range(max(folds, 1))):
    run_dir = os.path.join(workdir, name, f"ipc{per_class or 'all'}" + (f"_seed{seed}" if seed else "")
                           + (f"_fold{fold}" if folds else ""))
    cfg, steps = run_config(config, ccfg.strategies[name], per_class, num_epochs, train_size(per_class))
    cfg.seed = config.seed + seed
    if folds:
      cfg.data.fold = fold
    planned.append((name, per_class, seed, run_dir, cfg, steps,
                    json.dumps(cfg.to_dict(), sort_keys=True, default=str)))
  for _, _, _, run_dir, _, _, same in planned:  # finished earlier, maybe under another name
    if same not in finished and os.path.exists(os.path.join(run_dir, "summary.json")):
      with open(os.path.join(run_dir, "summary.json")) as f:
        finished[same] = json.load(f)
  for name, per_class, seed, run_dir, cfg, steps, same in tqdm.tqdm(planned, desc="sweep", unit="run",
                                                                     dynamic_ncols=True):
    summary_path = os.path.join(run_dir, "summary.json")
    if same in finished:
      summary = finished[same]
    else:
      t0 = time.time()
      summary = trainer.train_and_evaluate(cfg, run_dir)
      summary["wall_s"] = round(time.time() - t0, 1)
      with open(summary_path, "w") as f:
        json.dump(summary, f, indent=1)
    finished[same] = summary
    rows.append({
        "strategy": name, "model": cfg.model.name, "fold": cfg.data.fold if folds else None,
        "images_per_class": per_class or train_size(0) // dataset.num_classes,
        "seed": seed, "train_images": train_size(per_class), "steps": steps,
        "test_accuracy": summary["final_test_accuracy"], "best_val_accuracy": summary["best_val_accuracy"],
        "best_test_accuracy": summary["best_test_accuracy"],
        "wall_s": summary["wall_s"],
        "logreg_test_accuracy": logreg_accuracy(run_dir) if ccfg.get("logreg") else None,
        "test_images": test_images,
        "predictions": os.path.join(summary["final_report_dir"], report_lib.PREDICTIONS)
                       if summary.get("final_report_dir") else "",
        "workdir": run_dir if os.path.exists(summary_path) else _run_dir_of(planned, same),
        "soup_key": json.dumps([cfg.model.to_dict(), cfg.init.to_dict()], sort_keys=True, default=str),
    })
    if folds and os.path.exists(rows[-1]["predictions"]):  # this fold's own test images
      with np.load(rows[-1]["predictions"]) as f:
        rows[-1]["test_images"] = len(f["labels"])
    rows[-1]["test_accuracy_low"], rows[-1]["test_accuracy_high"] = intervals.wilson_of_accuracy(
        summary["final_test_accuracy"], rows[-1]["test_images"])
    tqdm.tqdm.write(f"{name} @ {per_class or 'all'}/class, seed {seed}" + (f", fold {cfg.data.fold}" if folds else "")
                    + ": test accuracy "
                    f"{rows[-1]['test_accuracy']:.4f} (best-val checkpoint {rows[-1]['best_test_accuracy']:.4f})")
    shown = pool_folds(rows, workdir) if folds else rows
    if shown:
      write_results(shown, workdir, title=ccfg.get("title", ""))
  if ccfg.get("soup"):
    write_soups(rows, workdir)
  if folds:
    write_csv(rows, os.path.join(workdir, "folds.csv"), FIELDS)
    rows = pool_folds(rows, workdir)
  write_paired(paired_tests(rows), workdir)
  if ccfg.get("top1"):
    plot_vs_imagenet(rows, dict(ccfg.top1), workdir, ccfg.get("probe_results", ""), ccfg.get("title", ""))
  return rows


def plot_vs_imagenet(rows, top1: dict[str, float], workdir: str, probe_results: str = "",
                     title: str = "") -> str:
  """accuracy_vs_imagenet_top1.png (Kornblith et al.'s Figure 1): test accuracy of the strategies
  in ``top1`` (strategy -> its model's published ImageNet top-1) against that top-1; with
  ``probe_results`` (a probe sweep's ``probe_results.csv``), the ``pre_logits`` probe of the same
  models on the same sizes beside the fine-tunes. Bars: ±std over seeds, or a single run's 95%
  interval (its half-width)."""
  rows = [r for r in rows if r["strategy"] in top1]
  sizes = sorted({r["images_per_class"] for r in rows})
  cells: dict[tuple, list] = {}
  for r in rows:  # seeds of one (strategy, size) are one point: their mean, a ±std bar
    cells.setdefault((r["images_per_class"], r["strategy"]), []).append(r)

  def point(c):
    acc = [r["test_accuracy"] for r in c]
    return (top1[c[0]["strategy"]], float(np.mean(acc)),
            intervals.error_bar(float(np.mean(acc)), float(np.std(acc)), len(c), c[0].get("test_images")))
  series = {f"fine-tune, {s}/class": [point(c) for (size, _), c in cells.items() if size == s] for s in sizes}
  model_top1 = {r["model"]: top1[r["strategy"]] for r in rows}
  if probe_results and os.path.exists(probe_results):
    with open(probe_results) as f:
      probe_rows = [probe_sweep.typed(r) for r in csv.DictReader(f)]
    stats = probe_sweep.aggregate(probe_rows)
    images = {r["model"]: r.get("test_images") for r in probe_rows}
    for s in sizes:
      series[f"linear probe, {s}/class"] = [(t, stats[(m, "pre_logits", s)][0],
                                             intervals.error_bar(*stats[(m, "pre_logits", s)], images.get(m)))
                                            for m, t in model_top1.items() if (m, "pre_logits", s) in stats]
  return plots.plot_accuracy_lines({k: v for k, v in series.items() if v},
                                   os.path.join(workdir, "accuracy_vs_imagenet_top1.png"),
                                   xlabel="ImageNet top-1 (%, published)", title=title,
                                   xticks=[(t, f"{m.removeprefix('efficientnet_')} ({t})")
                                           for m, t in model_top1.items()])


def _run_dir_of(planned, same: str) -> str:
  """The folder of the run that ran config ``same`` (a strategy sharing another's run has none)."""
  return next(p[3] for p in planned if p[6] == same and os.path.exists(os.path.join(p[3], "summary.json")))


def write_soups(rows: list[dict[str, Any]], workdir: str) -> list[dict[str, Any]]:
  """Soups of the runs of each (size, seed, fold) that share a model and start; soups.md lists them."""
  groups: dict[tuple, list[str]] = {}
  for r in rows:
    members = groups.setdefault((r["images_per_class"], r["seed"], r.get("fold"), r["soup_key"]), [])
    if r["workdir"] not in members:  # two strategies sharing one run are one ingredient
      members.append(r["workdir"])
  results, lines = [], ["| size/class | seed | fold | runs | best single (test) | uniform soup | greedy soup |",
                        "|---" * 7 + "|"]
  for i, ((size, seed, fold, _), dirs) in enumerate(groups.items()):
    if len(dirs) < 2:
      continue
    r = soups.soup(dirs, os.path.join(workdir, "soups", f"ipc{size}_seed{seed}" + ("" if fold is None else
                                                                                 f"_fold{fold}") + f"_{i}"))
    results.append(r)
    pct = lambda a: f"{100 * a:.1f}%"
    lines.append(f"| {size} | {seed} | {'' if fold is None else fold} | {len(dirs)} | "
                 f"{pct(r['best_single']['test_accuracy'])} | {pct(r['uniform']['test_accuracy'])} | "
                 f"{pct(r['greedy']['test_accuracy'])} ({len(r['greedy']['members'])} runs) |")
  if results:
    with open(os.path.join(workdir, "soups.md"), "w") as f:
      f.write("\n".join(lines) + "\n\nBest single: the run of best validation accuracy. Greedy: "
              "by validation accuracy, a run stays if the soup's validation accuracy does not drop.\n")
  return results


def pool_folds(rows: list[dict[str, Any]], workdir: str) -> list[dict[str, Any]]:
  """One row per (strategy, size, seed): the folds' test predictions pooled (every image tested once)
  into ``<strategy>/ipc<N>[_seed<S>]_pooled/predictions.npz``, accuracy and Wilson interval over them;
  steps and wall time summed over the folds."""
  pooled = []
  for key in dict.fromkeys((r["strategy"], r["images_per_class"], r["seed"]) for r in rows):
    mine = [r for r in rows if (r["strategy"], r["images_per_class"], r["seed"]) == key]
    if not all(os.path.exists(r["predictions"]) for r in mine):
      continue  # a fold not run yet (a partial sweep)
    parts = [np.load(r["predictions"]) for r in mine]
    labels, pred = (np.concatenate([p[k] for p in parts]) for k in ("labels", "pred"))
    out = os.path.join(workdir, key[0], f"ipc{key[1]}" + (f"_seed{key[2]}" if key[2] else "") + "_pooled")
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, report_lib.PREDICTIONS), labels=labels, pred=pred)
    accuracy, n = float((labels == pred).mean()), len(labels)
    low, high = intervals.wilson(int((labels == pred).sum()), n)
    pooled.append({**mine[0], "fold": f"pooled {len(mine)}", "test_accuracy": accuracy, "test_images": n,
                   "test_accuracy_low": low, "test_accuracy_high": high,
                   "best_val_accuracy": float(np.mean([r["best_val_accuracy"] for r in mine])),
                   "best_test_accuracy": None, "logreg_test_accuracy": None,
                   "steps": sum(r["steps"] for r in mine), "wall_s": sum(r["wall_s"] for r in mine),
                   "predictions": os.path.join(out, report_lib.PREDICTIONS)})
  return pooled


def write_csv(rows: list[dict[str, Any]], path: str, fields) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def write_results(rows: list[dict[str, Any]], workdir: str, title: str = "") -> None:
  write_csv(rows, os.path.join(workdir, "results.csv"), FIELDS)
  sizes = list(dict.fromkeys(r["images_per_class"] for r in rows))
  test_images = rows[0].get("test_images") if rows else None
  lines = ["| strategy | " + " | ".join(f"{s}/class" for s in sizes) + " | wall (s) |",
           "|---" * (len(sizes) + 2) + "|"]
  for name in dict.fromkeys(r["strategy"] for r in rows):
    mine = [r for r in rows if r["strategy"] == name]
    cells = [accuracy_cell([r["test_accuracy"] for r in mine if r["images_per_class"] == s], test_images)
             for s in sizes]
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(r['wall_s'] for r in mine):.0f} |")
  if test_images:
    lines.append(f"\n[low, high]: 95% Wilson interval of the accuracy over the {test_images} test images.")
  if any(r.get("seed") for r in rows):
    lines.append("\nCells with several seeds: mean ± std (population) over seeds, the interval that of the mean.")
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  plots.plot_accuracy_vs_data(rows, os.path.join(workdir, "accuracy_vs_images_per_class.png"), title=title)


PAIRED_FIELDS = ("images_per_class", "seed", "a", "b", "a_accuracy", "b_accuracy", "difference",
                 "difference_low", "difference_high", "mcnemar_p", "separated", "test_images")


def paired_tests(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Every pair of runs on the same test images (same size and seed): A - B with its paired-bootstrap
  95% interval and McNemar's exact p. Runs without ``predictions.npz`` (older runs) are left out.

  Where a size has several seeds, one more row per pair (seed ``"mean"``): the seed-averaged
  difference, its interval from the bootstrap over test images of each image's fraction of seeds
  right (the seed spread is in results.md), when both strategies have every seed on the same images."""
  out, per_seed = [], {}
  for key in dict.fromkeys((r["images_per_class"], r["seed"]) for r in rows):
    runs = {}
    for r in rows:
      if (r["images_per_class"], r["seed"]) == key and os.path.exists(r.get("predictions", "")):
        with np.load(r["predictions"]) as f:
          runs[r["strategy"]] = (f["labels"], f["pred"] == f["labels"])
    per_seed[key] = runs
    out += [{"images_per_class": key[0], "seed": key[1], **p} for p in intervals.paired_table(runs)]
  for size in dict.fromkeys(s for s, _ in per_seed):
    seeds = [runs for (s, _), runs in per_seed.items() if s == size]
    if len(seeds) < 2:
      continue
    pooled = {}
    for name in (n for n in seeds[0] if all(n in runs for runs in seeds)):
      labels = seeds[0][name][0]
      if all(np.array_equal(runs[name][0], labels) for runs in seeds):
        pooled[name] = (labels, np.mean([runs[name][1] for runs in seeds], axis=0))
    out += [{"images_per_class": size, "seed": "mean", **p} for p in intervals.paired_table(pooled)]
  return out


def write_paired(pairs: list[dict[str, Any]], workdir: str) -> None:
  """paired.csv and paired.md (nothing when no two runs share their test images)."""
  if not pairs:
    return
  write_csv(pairs, os.path.join(workdir, "paired.csv"), PAIRED_FIELDS)
  lines = ["| size/class | seed | A | B | A − B (points) | 95% interval | McNemar p | |", "|---" * 8 + "|"]
  lines += [f"| {p['images_per_class']} | {p['seed']} | {p['a']} | {p['b']} | {100 * p['difference']:+.1f} | "
            f"[{100 * p['difference_low']:+.1f}, {100 * p['difference_high']:+.1f}] | "
            f"{'—' if np.isnan(p['mcnemar_p']) else format(p['mcnemar_p'], '.3g')} | "
            f"{'separated' if p['separated'] else 'not separated'} |" for p in pairs]
  lines.append(f"\nPaired over the same {pairs[0]['test_images']} test images: the difference's 95% paired-"
               "bootstrap interval (2,000 resamples) and McNemar's exact test; \"not separated\": the "
               "interval contains 0, so the data do not tell A and B apart. Seed \"mean\": the seeds' average "
               "difference, bootstrapped over images from each image's fraction of seeds right (no McNemar).")
  with open(os.path.join(workdir, "paired.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def accuracy_cell(accuracies: list[float], test_images: int | None = None) -> str:
  """``81.0%``, or ``52.3 ± 1.2%`` over seeds (population std), then the 95% Wilson interval of the
  (mean) accuracy over ``test_images``: ``81.0% [78.4, 83.3]``. "" for none."""
  if not accuracies:
    return ""
  a = np.asarray(accuracies)
  return intervals.accuracy_cell(float(a.mean()), float(a.std()) if len(a) > 1 else None, test_images)


def write_cut_points(probe_rows: list[dict[str, Any]], rows: list[dict[str, Any]], workdir: str,
                     title: str = "") -> list[dict[str, Any]]:
  """cut_points.{csv,md,png}: per cut point, the probe of its features and the fine-tune frozen to it.

  ``probe_rows``: ``probe_sweep`` rows (``feature`` = the cut point); ``rows``:
  this module's rows of ``ft_frozen_to_<cut point>`` strategies (``none``: nothing frozen).
  """
  ft = {r["strategy"].removeprefix("ft_frozen_to_"): r for r in rows if r["strategy"].startswith("ft_frozen_to_")}
  probe = {feature: stat for (_, feature, _), stat in probe_sweep.aggregate(probe_rows).items()}  # one model, one size
  cuts = ["none"] + probe_sweep.feature_order({*probe, *ft} - {"none"})
  none = (None, 0.0, 0)
  table = [{"cut_point": c, "probe_test_accuracy": probe.get(c, none)[0], "probe_std": probe.get(c, none)[1],
            "probe_seeds": probe.get(c, none)[2],
            "finetune_test_accuracy": ft[c]["test_accuracy"] if c in ft else None,
            "finetune_wall_s": ft[c]["wall_s"] if c in ft else None} for c in cuts]
  with open(os.path.join(workdir, "cut_points.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, list(table[0]))
    writer.writeheader()
    writer.writerows(table)
  n_probe = next((r.get("test_images") for r in probe_rows if r.get("test_images")), None)
  n_ft = next((r.get("test_images") for r in rows if r.get("test_images")), None)
  pct = lambda a, sd=None, n=1, images=None: "" if a is None else intervals.accuracy_cell(
      a, sd if n > 1 else None, images)
  lines = ["| cut point (frozen up to) | linear probe of its features | fine-tune, frozen up to it | "
           "fine-tune wall (s) |", "|---|---:|---:|---:|"]
  lines += [f"| {r['cut_point']} | {pct(r['probe_test_accuracy'], r['probe_std'], r['probe_seeds'], n_probe)} | "
            f"{pct(r['finetune_test_accuracy'], images=n_ft)} | "
            f"{'' if r['finetune_wall_s'] is None else round(r['finetune_wall_s'])} |" for r in table]
  lines.append("\n[low, high]: the 95% Wilson interval of the (mean) accuracy over the test images.")
  with open(os.path.join(workdir, "cut_points.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  bar = {"probe_test_accuracy": lambda r: intervals.error_bar(r["probe_test_accuracy"], r["probe_std"],
                                                              r["probe_seeds"], n_probe),
         "finetune_test_accuracy": lambda r: intervals.error_bar(r["finetune_test_accuracy"], test_images=n_ft)}
  series = {name: [(i, r[key], bar[key](r)) for i, r in enumerate(table) if r[key] is not None]
            for name, key in (("linear probe of the cut point's features", "probe_test_accuracy"),
                              ("fine-tune, frozen up to the cut point", "finetune_test_accuracy"))}
  plots.plot_accuracy_lines({k: v for k, v in series.items() if v}, os.path.join(workdir, "cut_points.png"),
                            xlabel="cut point", xticks=list(enumerate(cuts)), title=title)
  return table
