r"""Ranks pretrained models, and with --stages their cut points, for a dataset: no training.

  python scripts/rank.py --data digits --models efficientnet_lite0,efficientnet_lite1,efficientnet_lite2
  tl-jax rank --data digits --models efficientnet_lite0,efficientnet_lite1   # installed: the same flags
  python scripts/rank.py --data folder:/data/my_images --models resnet50,efficientnet_lite0 --stages \
      --workdir runs/rank_mine [--image_size 224] [--per_class 50] [--by logme]
  python scripts/rank.py --data digits --models efficientnet_lite0 --checkpoints runs/quickstart,runs/other

--data: ``digits``, ``folder:PATH``, ``npz:PATH`` or ``tfds:NAME:SPLIT`` (as scripts/evaluate.py).
Each model, or run's best checkpoint, runs once over the images (its own ImageNet head, or the
run's head, kept where there is one);
every cut point is scored by LogME, H-score, regularised H-score and TransRate, and each model by
LEEP and NCE from its head (tl_jax.studies.transferability). Writes rank.csv, rank.md and
rank.png into --workdir and prints the table and the top choice (highest --by).
"""

from absl import flags

from tl_jax.studies import rank

_DATA = flags.DEFINE_string("data", None, "digits, folder:PATH, npz:PATH or tfds:NAME:SPLIT.", required=True)
_MODELS = flags.DEFINE_list("models", [], "Comma-separated zoo model names.")
_CHECKPOINTS = flags.DEFINE_list("checkpoints", [], "Comma-separated workdirs of earlier tl_jax runs "
                                 "(their best checkpoint; images at each run's own size).")
_STAGES = flags.DEFINE_bool("stages", False, "Score every cut point (stem, stage1..N, pre_logits).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/rank", "Where rank.{csv,md,png} go.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input size the models see.")
_PER_CLASS = flags.DEFINE_integer("per_class", 0, "Images per class scored (0: all).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the per-class subset.")
_BY = flags.DEFINE_enum("by", "logme", list(rank.COLUMNS[4:-2]), "The score that picks the top choice.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per forward batch.")


def main(argv):
  del argv
  rows = rank.rank(_DATA.value, _MODELS.value, workdir=_WORKDIR.value, checkpoints=_CHECKPOINTS.value,
                   stages=_STAGES.value,
                   image_size=_IMAGE_SIZE.value, per_class=_PER_CLASS.value, seed=_SEED.value,
                   by=_BY.value, batch_size=_BATCH.value)
  with open(f"{_WORKDIR.value}/rank.md") as f:
    print(f.read())
  best = rank.top(rows, _BY.value)
  print(f"Top choice by {_BY.value}: {best['model']} at cut point {best['cut_point']} "
        f"({_BY.value} {best[_BY.value]:.4g}); table and plot in {_WORKDIR.value}/rank.{{md,csv,png}}")

