r"""Do the transferability scores predict the accuracy actually reached? (issue 28 items 4 and 5)

  # (a, b) cut points: the per-stage probe of Lite0/1/2 (configs/rank_stages.py) against the scores;
  #        on digits also the fine-tunes frozen up to each cut point (docs/results/cut_points_digits.csv)
  python scripts/rank_study.py stages --dataset digits --workdir runs/rank_stages_digits
  python scripts/rank_study.py stages --dataset cifar10 --workdir runs/rank_stages_cifar10
  # (c) eight source models fine-tuned on each target (configs/rank_pool.py): sources, then targets
  python scripts/rank_study.py pool --workdir runs/rank_pool
  # big_vision's few-shot linear protocol on the cached pre_logits of the stage sweep
  python scripts/rank_study.py fewshot --dataset digits --workdir runs/rank_stages_digits

Writes agreement_*.{csv,md} (Kendall tau, weighted tau, p-value and the top pick per score),
scores_*.{csv,md} (every candidate's scores and accuracy) and fewshot.{csv,md} into --workdir.
Every part resumes: finished probe fits and runs are read back.
"""

import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repository's configs/ (not installed)

import jax
import numpy as np
from absl import app, flags, logging

from configs import rank_pool, rank_stages
from tl_jax import data as data_lib
from tl_jax import models, partition
from tl_jax.evaluate import evaluation
from tl_jax.metrics import intervals
from tl_jax.studies import compare, fewshot, probe_sweep, rank_check
from tl_jax.weights import formats

_PART = flags.DEFINE_enum("part", None, ["stages", "pool", "fewshot"], "Which part (or the first argument).")
_DATASET = flags.DEFINE_enum("dataset", "digits", ["digits", "cifar10"], "stages/fewshot: the dataset.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the sweeps and tables go.", required=True)
_MODELS = flags.DEFINE_list("models", [], "stages/fewshot: only these of the config's models (default: all).")
_CUT_POINTS = flags.DEFINE_string("cut_points", "docs/results/cut_points_digits.csv",
                                  "stages on digits: the fine-tune per cut point table (configs/cut_points.py).")
AGREEMENT = rank_check.FIELDS
SCORES = ("candidate", "dim", "images", *rank_check.SCORE_NAMES, "accuracy", "score_s")


def _print(path: str) -> None:
  with open(path) as f:
    print(f.read())


def _config(dataset: str):
  config = rank_stages.get_config(dataset)
  if _MODELS.value:
    config.unlock()
    config.probe.models = tuple(_MODELS.value)
    config.lock()
  return config


def stages(dataset: str, workdir: str) -> None:
  config = _config(dataset)
  rows = rank_check.stage_rows(config, probe_sweep.sweep(config, workdir))
  rank_check.write(rows, f"{workdir}/scores_stages.csv", SCORES, title=config.probe.title)
  models = config.probe.models
  agree = rank_check.agreement(rows, label=f"all {len(models)} models' cut points") if len(models) > 1 else []
  for name in models:
    agree += rank_check.agreement([r for r in rows if r["model"] == name], label=f"{name} cut points")
  if dataset == "digits" and os.path.exists(_CUT_POINTS.value):  # (b): fine-tuned, frozen up to the cut point
    with open(_CUT_POINTS.value) as f:
      tuned = {r["cut_point"]: float(r["finetune_test_accuracy"]) for r in csv.DictReader(f)}
    lite0 = [dict(r, accuracy=tuned[r["cut_point"]]) for r in rows
             if r["model"] == "efficientnet_lite0" and r["cut_point"] in tuned]
    agree += rank_check.agreement(lite0, label="efficientnet_lite0 cut points, fine-tuned frozen up to them")
  rank_check.write(agree, f"{workdir}/agreement_stages.csv", AGREEMENT,
                   title=f"Scores vs probe accuracy per cut point, {dataset}")
  _print(f"{workdir}/agreement_stages.md")


def fewshot_part(dataset: str, workdir: str) -> None:
  config = _config(dataset)
  rows = []
  for name in config.probe.models:
    feats = probe_sweep.cached_features(config, name)
    train, test = [(feats[s][0]["pre_logits"], feats[s][1]) for s in ("train", "test")]
    for (shots, l2), (mean, std, n) in fewshot.summary(fewshot.protocol(train, test)).items():
      low, high = intervals.wilson_of_accuracy(mean, len(test[1]))  # of the seeds' mean
      rows.append({"model": name, "shots": shots, "l2": l2, "accuracy": mean, "interval": f"[{low:.3f}, {high:.3f}]",
                   "std": std, "seeds": n, "test_images": len(test[1])})
  rank_check.write(rows, f"{workdir}/fewshot.csv",
                   title=f"Few-shot linear (big_vision fewshot_lsr), {dataset}, pre_logits at 224 px")
  _print(f"{workdir}/fewshot.md")


def write_source(workdir: str, out: str) -> None:
  """The best checkpoint of the run in ``workdir`` as a weight file (its head kept)."""
  restored = evaluation.restore(workdir, "best")
  flat = partition.flatten({"params": restored.state.params, "batch_stats": restored.state.batch_stats})
  formats.write_converted(out, jax.device_get(flat), model=restored.config.model.name, source="tl_jax_run")


def write_random(name: str, out: str, seed: int = 0) -> None:
  """Model ``name``'s seeded random initialisation (ImageNet's 1,000-class head shape) as a weight file."""
  model = models.create(name, 1000)
  variables = jax.jit(model.init)(jax.random.key(seed), np.zeros((1, 64, 64, 3), np.uint8))
  formats.write_converted(out, jax.device_get(partition.flatten(dict(variables))), model=name,
                          source="random")


def pool(root: str) -> None:
  os.makedirs(f"{root}/sources", exist_ok=True)
  random_file = rank_pool.SOURCE_FILE.format(root=root, name="lite0_random")
  if not os.path.exists(random_file):
    write_random(rank_pool.IMAGENET[0], random_file)
  for dataset in ("cifar10", "digits"):
    config = rank_pool.sources(dataset)
    for r in compare.sweep(config, f"{root}/sources_{dataset}"):
      out = rank_pool.SOURCE_FILE.format(root=root, name=f"{dataset}_{r['strategy']}")
      if not os.path.exists(out):
        write_source(r["workdir"], out)
  agree = []
  for target in ("digits", "cifar10"):
    config = rank_pool.get_config(f"{target},{root}")
    results = compare.sweep(config, f"{root}/{target}")
    split = data_lib.load(config.data).splits["train"]
    rows = rank_check.pool_rows(rank_pool.candidates(target, root), split, config.data.image_size, results)
    rank_check.write(rows, f"{root}/{target}/scores_pool.csv", (*SCORES, "forward_s", "finetune_wall_s"),
                     title=config.compare.title)
    agree += rank_check.agreement(rows, label=f"8 starts fine-tuned on {target}")
  rank_check.write(agree, f"{root}/agreement_pool.csv", AGREEMENT,
                   title="Scores vs fine-tuned accuracy over the pool (configs/rank_pool.py)")
  _print(f"{root}/agreement_pool.md")


def main(argv):
  logging.set_verbosity(logging.WARNING)
  part = _PART.value or (argv[1] if len(argv) > 1 else None)
  if part == "stages":
    stages(_DATASET.value, _WORKDIR.value)
  elif part == "fewshot":
    fewshot_part(_DATASET.value, _WORKDIR.value)
  elif part == "pool":
    pool(_WORKDIR.value)
  else:
    raise app.UsageError("Name a part: stages, pool or fewshot.")


if __name__ == "__main__":
  app.run(main)
