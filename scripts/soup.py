r"""Uniform and greedy model soups of runs that fine-tuned one pretrained model, beside the best run.

  python scripts/soup.py --workdirs runs/sweep/lr1e-3,runs/sweep/lr3e-3,runs/sweep/lr1e-2 --out runs/sweep/soup

Each run's best checkpoint is an ingredient (--checkpoint); the runs must share config.model,
config.init (and seed for a random start) and classes. Greedy: by validation accuracy, an
ingredient stays if the soup's validation accuracy does not drop (tl_jax.evaluate.soups).
"""

from absl import app, flags, logging

from tl_jax.evaluate import soups

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Workdirs of the runs (comma-separated).", required=True)
_OUT = flags.DEFINE_string("out", "", "Folder for soup.json.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a step number, in every run.")
_WEIGHTS = flags.DEFINE_enum("weights", "raw", ["raw", "ema"], "The runs' raw weights or their moving averages.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  r = soups.soup(_WORKDIRS.value, _OUT.value or None, _CHECKPOINT.value, _WEIGHTS.value)
  for row in r["ingredients"]:
    print(f"  {row['workdir']}: val {row['val_accuracy']:.4f}  test {row['test_accuracy']:.4f}")
  print(f"best single: test {r['best_single']['test_accuracy']:.4f}")
  print(f"uniform soup: val {r['uniform']['val_accuracy']:.4f}  test {r['uniform']['test_accuracy']:.4f}")
  print(f"greedy soup ({len(r['greedy']['members'])} runs): val {r['greedy']['val_accuracy']:.4f}  "
        f"test {r['greedy']['test_accuracy']:.4f}")


if __name__ == "__main__":
  app.run(main)
