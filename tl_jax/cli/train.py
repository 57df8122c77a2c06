r"""Trains a config; rerun the same command to resume.

  python scripts/train.py --config configs/quickstart.py --workdir runs/quickstart \
      [--config.optim.lr=3e-4 ...]
  tl-jax train --config quickstart --workdir runs/quickstart   # installed: a packaged config by name

Data parallel over all local devices. Multi-host: start the same command on
every host with --coordinator_address=HOST0:PORT --num_processes=N
--process_id=i (or the JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID variables) and a --workdir all hosts share.

A failed run ends with one line naming the cause (``error: ...``); the full
traceback is in <workdir>/error.log, or printed with --verbose. SIGTERM or
Ctrl-C saves the step under way and exits with status 75 (requeue), the last
line naming the step saved and the command that resumes; a second Ctrl-C
aborts at once (130). See docs/training.md, "Preemption".
"""

import json
import logging as std_logging
import os

from absl import flags, logging
import jax
from ml_collections import config_flags

from tl_jax import configs, errors, sharding
from tl_jax.train import preemption, trainer

# Without --config: the packaged quickstart. An unknown --config.a.b key is reported before this
# module defines its flags (tl_jax.cli.main.run: config_flags would end in a traceback).
DEFAULT_CONFIG = configs.path("quickstart")
_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Experiment config: a file, or the "
                                          "name of a packaged one (tl_jax.configs: quickstart, ...).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Where checkpoints, metrics and reports go.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in a multi-host run (0: from env, else 1).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index (-1: from env).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Print the full traceback of a failure (always in error.log).")


def main(argv):
  del argv
  with errors.report_failure(os.path.join(_WORKDIR.value, "error.log"), _VERBOSE.value):
    sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
    std_logging.getLogger("tl_jax").setLevel(std_logging.INFO)
    try:
      summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except errors.Preempted as e:  # saved: not a failure
      preemption.exit_preempted(e)
  if jax.process_index():
    return
  print(json.dumps(summary, indent=1))
  print(f"\nResults in {_WORKDIR.value}: metrics.jsonl, curves.png, checkpoints/, "
        f"{summary['final_report_dir']}/(report.json, confusion_matrix.png)")

