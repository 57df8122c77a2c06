"""The Kornblith et al. (2019) linear-probe protocol over models x feature cut points x data sizes.

``config.probe`` (besides the usual ``data``, ``model`` and ``init``) holds:

- ``models``: model names (each with its registry's default pretrained source)
  and ``top1``: their published ImageNet top-1 (%), for the accuracy-vs-ImageNet plot;
- ``features``: the backbone outputs probed: ``("pre_logits",)``, or ``("all",)``
  for every one the model returns (``stem``, ``stage1..N``, ``pre_logits``:
  where transferability stops);
- ``images_per_class`` (0 = all training images) and ``seeds``: the training
  subsets (drawn from the fixed train split; the val and test splits never change);
- ``l2_grid``: the penalties searched (``tl_jax.studies.probe``), ``standardize``,
  ``sklearn``: also run scikit-learn's L-BFGS ``LogisticRegression`` with the
  same selection (the check of tl_jax's probe) on the first ``sklearn_seeds``
  seeds, ``cache_dir``.

The backbone runs once per (data, model): the pooled features of every output
are cached in ``cache_dir/<data key>/<model>/<split>.npz``; sweeps then cost
seconds. Results: ``workdir/probe_results.{csv,md}`` and plots.
"""

import csv
import hashlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import data as data_lib, models, weights
from tl_jax.metrics import intervals
from tl_jax.train import feature_cache

SPLITS = ("train", "val", "test")


def data_key(data_cfg) -> str:
  """A name for the split images: the data config without ``train_per_class`` (subsets come later)."""
  cfg = {k: v for k, v in dict(data_cfg).items() if k != "train_per_class"}
  for k in ("path", "val_path", "test_path"):  # the same file from any working directory
    if cfg.get(k):
      cfg[k] = os.path.abspath(cfg[k])
  digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:10]
  return f"{cfg['name']}_{cfg['image_size']}px_{digest}"


def backbone_variables(name: str, image_size: int, path: str = "", source: str = "", head: bool = False):
  """``(apply_fn, variables)`` of model ``name`` without a head, with its pretrained weights.

  ``head=True`` keeps the source's own classifier (e.g. ImageNet's 1,000 classes) where the
  weights have one (``variables["params"]`` then holds ``head``; LEEP and NCE score with it).
  """
  loaded = weights.load_pretrained(name, path=path or None, source=source or None)
  kernel = loaded.get("params/head/kernel") if head else None
  model = models.create(name, 0 if kernel is None else kernel.shape[-1], layer_impl="auto", source=source or None)
  return model.apply, weights.init_variables(model, image_size, jax.random.key(0), loaded,
                                             dont_load=() if kernel is not None else ("head/.*",))


def cached_features(config, name: str, dataset: data_lib.Dataset | None = None,
                    log=print) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
  """``{split: ({output: (N, D) features}, labels)}`` of model ``name``, extracted once.

  ``dataset`` (``data_lib.load(config.data)`` with every training image) is
  loaded here when not given and only if some split is not cached yet.
  """
  pcfg = config.probe
  source = config.init.get("source", "") or models.REGISTRY[name].weights  # its weights and normalisation
  root = os.path.join(pcfg.cache_dir, data_key(config.data), f"{name}-{source}")
  paths = {s: os.path.join(root, f"{s}.npz") for s in SPLITS}
  if not all(os.path.exists(p) for p in paths.values()):
    if dataset is None:
      dataset = data_lib.load({**dict(config.data), "train_per_class": 0})
    apply_fn, variables = backbone_variables(name, config.data.image_size, config.init.get("path", ""), source)
    probe = jnp.zeros((1, config.data.image_size, config.data.image_size, 3), jnp.uint8)
    keys = tuple(jax.eval_shape(lambda v, x: apply_fn(v, x)[1], variables, probe))
    os.makedirs(root, exist_ok=True)
    for split in SPLITS:
      if os.path.exists(paths[split]):
        continue
      t0 = time.time()
      feats = feature_cache.pooled_features(apply_fn, variables, dataset.splits[split],
                                            pcfg.get("batch_size", 64), keys)
      np.savez(paths[split] + ".tmp.npz", labels=dataset.splits[split].labels,
               extract_s=time.time() - t0, **{f"features/{k}": v for k, v in feats.items()})
      os.replace(paths[split] + ".tmp.npz", paths[split])  # a killed run leaves no half file
      log(f"{name}: {split} features ({len(dataset.splits[split])} images) in {time.time() - t0:.0f} s")
  out = {}
  for split, path in paths.items():
    with np.load(path) as f:
      out[split] = ({k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("features/")}, f["labels"])
  return out


def typed(row: dict[str, str]) -> dict[str, Any]:
  """A row read back from probe_results.csv with its numbers and flags."""
  out = {}
  for k, v in row.items():
    if v in ("", "None"):
      out[k] = None
    elif v in ("True", "False"):
      out[k] = v == "True"
    else:
      try:
        out[k] = int(v)
      except ValueError:
        try:
          out[k] = float(v)
        except ValueError:
          out[k] = v
  return out


def subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Positions of ``per_class`` training images of every class (all if 0).

  Seed ``s`` draws as ``data.load`` does with ``data.seed + 2 + s``: seed 0 is
  the subset of the trainer's ``train_per_class`` runs (``configs/compare_*``).
  """
  if not per_class:
    return np.arange(len(labels))
  rng = np.random.default_rng(seed)
  keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
  short = min(len(k) for k in keep)
  if short < per_class:
    raise ValueError(f"probe.images_per_class={per_class} but a class has only {short} training images.")
  return np.sort(np.concatenate(keep))


def feature_order(keys) -> list[str]:
  """``stem``, ``stage1..N``, ``pre_logits``: the backbone's depth order."""
  rank = lambda k: (0, 0) if k == "stem" else (2, 0) if k == "pre_logits" else (1, int(k[5:]))
  return sorted(keys, key=rank)


def sweep(config, workdir: str, log=print) -> list[dict[str, Any]]:
  """Runs the protocol for every (model, feature, size, seed); writes results and plots.

  Returns one row per run: test accuracy of tl_jax's probe and, if
  ``probe.sklearn``, of scikit-learn's, the selected penalties and wall times.
  """
  from tl_jax.studies import probe  # noqa: F401  (jit compiles on first use)
  pcfg = config.probe
  grid = probe.l2_grid(**dict(pcfg.l2_grid))
  os.makedirs(workdir, exist_ok=True)
  rows, dataset = [], None
  done = {}  # runs of an interrupted sweep, read back (a rerun continues where it stopped)
  path = os.path.join(workdir, "probe_results.csv")
  if os.path.exists(path):
    with open(path) as f:
      for r in csv.DictReader(f):
        done[(r["model"], r["feature"], int(r["train_images"]), int(r["seed"]))] = typed(r)
  for name in pcfg.models:
    feats = cached_features(config, name, dataset, log=log)
    keys = feature_order(feats["train"][0]) if tuple(pcfg.features) == ("all",) else list(pcfg.features)
    missing = set(keys) - set(feats["train"][0])
    if missing:
      raise ValueError(f"probe.features {sorted(missing)}: {name} returns {feature_order(feats['train'][0])} "
                       "(or use ('all',)).")
    ytr = feats["train"][1]
    for per_class in pcfg.images_per_class:
      for seed in (pcfg.seeds if per_class else pcfg.seeds[:1]):  # all images: one subset, one seed
        idx = subset(ytr, per_class, config.data.seed + 2 + seed)
        for key in keys:
          if (name, key, len(idx), seed) in done:
            rows.append(done[(name, key, len(idx), seed)])
            continue
          split = lambda s: (feats[s][0][key], feats[s][1])
          train = (feats["train"][0][key][idx], ytr[idx])
          kw = dict(standardize=pcfg.standardize, tol=pcfg.tol, max_iter=pcfg.max_iter)
          ours = probe.protocol(train, split("val"), split("test"), grid, **kw,
                                pad_rows=len(ytr) + len(feats["val"][1]))  # one shape for all sizes
          # The reference is the slow part: it runs on the first ``sklearn_seeds`` seeds only.
          check = pcfg.sklearn and seed in tuple(pcfg.seeds)[:pcfg.get("sklearn_seeds", len(pcfg.seeds))]
          ref = probe.sklearn_protocol(train, split("val"), split("test"), grid, **kw) if check else None
          rows.append({
              "model": name, "imagenet_top1": dict(pcfg.top1).get(name), "feature": key,
              "dim": train[0].shape[1], "images_per_class": per_class or len(idx) // len(np.unique(ytr)),
              "train_images": len(idx), "seed": seed, "l2": ours.l2, "test_accuracy": ours.test_accuracy,
              "test_images": len(feats["test"][1]),
              "best_val_accuracy": float(ours.val_accuracy.max()), "wall_s": round(ours.wall_s, 2),
              "max_iterations": int(ours.iterations.max()), "converged": ours.converged,
              "sklearn_l2": ref and ref.l2, "sklearn_test_accuracy": ref and ref.test_accuracy,
              "sklearn_wall_s": ref and round(ref.wall_s, 2), "sklearn_converged": ref and ref.converged,
          })
          r = rows[-1]
          log(f"{name} {key} {per_class or 'all'}/class seed {seed}: test {100 * r['test_accuracy']:.1f}% "
              f"(l2 {r['l2']:.0e}, {r['wall_s']:.1f} s)" + (
                  f"; sklearn {100 * r['sklearn_test_accuracy']:.1f}% (l2 {r['sklearn_l2']:.0e}, "
                  f"{r['sklearn_wall_s']:.1f} s)" if ref else ""))
          write_results(rows, workdir, pcfg.get("title", ""))  # after every run: partial sweeps count
  return rows


FIELDS = ("model", "imagenet_top1", "feature", "dim", "images_per_class", "train_images", "seed", "l2",
          "test_accuracy", "test_images", "best_val_accuracy", "wall_s", "max_iterations", "converged", "sklearn_l2",
          "sklearn_test_accuracy", "sklearn_wall_s", "sklearn_converged")


def aggregate(rows, key: str = "test_accuracy") -> dict[tuple[str, str, int], tuple[float, float, int]]:
  """``(model, feature, images_per_class) -> (mean, std, seeds)`` of ``key`` (std: ddof=1; 0 for one seed)."""
  groups: dict[tuple[str, str, int], list[float]] = {}
  for r in rows:
    if r.get(key) is not None:
      groups.setdefault((r["model"], r["feature"], r["images_per_class"]), []).append(r[key])
  return {g: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
          for g, v in groups.items()}


def _cell(stat, test_images: int | None = None) -> str:
  if stat is None:
    return ""
  mean, std, n = stat
  return intervals.accuracy_cell(mean, std if n > 1 else None, test_images, unit="")


def write_results(rows: list[dict[str, Any]], workdir: str, title: str = "") -> None:
  """``probe_results.csv`` (every run), ``probe_results.md`` (mean ± std over seeds) and plots."""
  from tl_jax.metrics import plots

  with open(os.path.join(workdir, "probe_results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  ours = aggregate(rows)
  sizes = list(dict.fromkeys(r["images_per_class"] for r in rows))
  lines = ["| model | ImageNet top-1 | feature | " + " | ".join(f"{s}/class" for s in sizes)
           + " | tl_jax s | sklearn s |", "|---" * (len(sizes) + 5) + "|"]
  for model, feature in dict.fromkeys((r["model"], r["feature"]) for r in rows):
    mine = [r for r in rows if (r["model"], r["feature"]) == (model, feature)]
    cells = [_cell(ours.get((model, feature, s)), mine[0].get("test_images")) for s in sizes]
    sk = sum(r["sklearn_wall_s"] or 0 for r in mine)
    lines.append(f"| {model} | {mine[0]['imagenet_top1'] or ''} | {feature} | " + " | ".join(cells)
                 + f" | {sum(r['wall_s'] for r in mine):.0f} | {f'{sk:.0f}' if sk else ''} |")
  checks = [r for r in rows if r["sklearn_test_accuracy"] is not None]
  if checks:  # the same runs (features, subset, grid, selection) with both implementations
    lines += ["", "| model | feature | images/class | seed | tl_jax test % (l2) | sklearn test % (l2) | "
              "difference | tl_jax s | sklearn s |", "|---" * 9 + "|"]
    lines += [f"| {r['model']} | {r['feature']} | {r['images_per_class']} | {r['seed']} | "
              f"{100 * r['test_accuracy']:.1f} ({r['l2']:.0e}) | {100 * r['sklearn_test_accuracy']:.1f} "
              f"({r['sklearn_l2']:.0e}) | {100 * (r['test_accuracy'] - r['sklearn_test_accuracy']):+.1f} | "
              f"{r['wall_s']:.0f} | {r['sklearn_wall_s']:.0f} |" for r in checks]
  with open(os.path.join(workdir, "probe_results.md"), "w") as f:
    f.write("Test accuracy (%) of tl_jax's probe, mean ± std over seeds, [95% Wilson interval of the mean "
            "over the test images]; then the scikit-learn check\n\n"
            + "\n".join(lines) + "\n")
  label = lambda s, model="": (f"{model} " if model else "") + f"{s}/class"
  images = {r["model"]: r.get("test_images") for r in rows}
  bar = lambda m, k, s: intervals.error_bar(*ours[(m, k, s)], images.get(m))  # noqa: E731
  models = list(dict.fromkeys(r["model"] for r in rows))
  top1 = {r["model"]: r["imagenet_top1"] for r in rows}
  if len(models) > 1 and all(top1.values()) and any(r["feature"] == "pre_logits" for r in rows):
    series = {label(s): [(top1[m], ours[(m, "pre_logits", s)][0], bar(m, "pre_logits", s)) for m in models
                         if (m, "pre_logits", s) in ours] for s in sizes}
    plots.plot_accuracy_lines(series, os.path.join(workdir, "probe_vs_imagenet_top1.png"),
                              xlabel="ImageNet top-1 (%, published)", title=title,
                              xticks=[(top1[m], f"{m.replace('efficientnet_', '')} ({top1[m]})") for m in models])
  features = feature_order(dict.fromkeys(r["feature"] for r in rows))
  if len(features) > 1:
    series = {label(s, m if len(models) > 1 else ""): [(i, ours[(m, k, s)][0], bar(m, k, s))
                                                       for i, k in enumerate(features) if (m, k, s) in ours]
              for m in models for s in sizes}
    plots.plot_accuracy_lines(series, os.path.join(workdir, "probe_vs_cut_point.png"),
                              xlabel="probed features (pooled output of)", title=title,
                              xticks=list(enumerate(features)))
