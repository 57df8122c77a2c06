r"""Trains a config; rerun the same command to resume.

  python scripts/train.py --config configs/quickstart.py --workdir runs/quickstart \
      [--config.optim.lr=3e-4 ...]
"""

import json
import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from tl_jax import trainer

_CONFIG = config_flags.DEFINE_config_file("config", "configs/quickstart.py", "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where checkpoints, metrics and reports go.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
  summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps(summary, indent=1))
  print(f"\nResults in {_WORKDIR.value}: metrics.jsonl, curves.png, checkpoints/, "
        f"{summary['final_report_dir']}/(report.json, confusion_matrix.png)")


if __name__ == "__main__":
  app.run(main)
