r"""Transfer vs. scratch: sweeps strategies x training-set sizes, writes a table and a plot.

  python scripts/compare.py --config configs/compare_cifar10.py --workdir runs/compare_cifar10

Writes results.csv, results.md and accuracy_vs_images_per_class.png into the
workdir (one run directory per strategy and size); rerun to continue a sweep.
A config with a ``probe`` block (configs/probe_*.py) runs the Kornblith et al.
linear-probe sweep instead (``tl_jax.probe_sweep``): probe_results.{csv,md}
and plots.
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from tl_jax import compare, probe_sweep

_CONFIG = config_flags.DEFINE_config_file("config", "configs/compare_digits.py", "Sweep config file.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare_digits", "Where runs and results go.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.WARNING)
  if "probe" in _CONFIG.value:
    probe_sweep.sweep(_CONFIG.value, _WORKDIR.value)
    print(open(f"{_WORKDIR.value}/probe_results.md").read())
    return
  compare.sweep(_CONFIG.value, _WORKDIR.value)
  print(open(f"{_WORKDIR.value}/results.md").read())


if __name__ == "__main__":
  app.run(main)
