r"""Averages a run's last checkpoints (or given steps) into a new run that evaluates like any other.

  python scripts/average_checkpoints.py --workdir runs/quickstart --out runs/quickstart_avg3 --last 3
  python scripts/average_checkpoints.py --workdir runs/quickstart --out runs/quickstart_avg \
      --steps 40,48,56 --batch_norm recompute --num_batches 50
  python scripts/evaluate.py --workdir runs/quickstart_avg3 --checkpoint latest

--batch_norm average (default) averages the running statistics like the weights; recompute measures
those of the averaged weights on --num_batches training batches (tl_jax.evaluate.averaging).
"""

import logging as std_logging

from absl import app, flags, logging

from tl_jax.evaluate import averaging

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a tl_jax run.", required=True)
_OUT = flags.DEFINE_string("out", None, "New workdir for the averaged checkpoint.", required=True)
_LAST = flags.DEFINE_integer("last", 3, "Average the last k verified checkpoints.")
_STEPS = flags.DEFINE_list("steps", [], "Instead of --last: these checkpoint steps.")
_BATCH_NORM = flags.DEFINE_enum("batch_norm", "average", list(averaging.BATCH_NORM),
                                "BatchNorm statistics: averaged, or recomputed over training batches.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 50, "Training batches for --batch_norm recompute.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  r = averaging.average(_WORKDIR.value, _OUT.value, last=None if _STEPS.value else _LAST.value,
                        steps=[int(s) for s in _STEPS.value], batch_norm=_BATCH_NORM.value,
                        num_batches=_NUM_BATCHES.value)
  print(f"averaged steps {r['steps']} (BatchNorm: {r['batch_norm']}) -> {r['workdir']} step {r['step']}")
  print(f"evaluate: python scripts/evaluate.py --workdir {r['workdir']} --checkpoint latest")


if __name__ == "__main__":
  app.run(main)
