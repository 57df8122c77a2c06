r"""Transfer vs. scratch: sweeps strategies x training-set sizes, writes a table and a plot.

  python scripts/compare.py --config configs/compare_cifar10.py --workdir runs/compare_cifar10
  tl-jax compare --config compare_digits --workdir runs/compare_digits   # installed

Writes results.csv, results.md and accuracy_vs_images_per_class.png into the
workdir (one run directory per strategy and size); rerun to continue a sweep.
A config with a ``probe`` block (configs/probe_*.py) runs the Kornblith et al.
linear-probe sweep (``tl_jax.studies.probe_sweep``): probe_results.{csv,md} and plots;
with both blocks (configs/cut_points.py) the probe runs first, then the
fine-tunes, then cut_points.{csv,md,png} puts them side by side.
``--config.probe.folds=5``: the probe tested by stratified 5-fold over all the images instead
(``tl_jax.studies.probe_folds``): probe_folds.{csv,md} and the models' paired tests, paired.{csv,md}.
"""

import logging as std_logging

from absl import flags, logging
from ml_collections import config_flags

from tl_jax import configs
from tl_jax.studies import compare, probe_folds, probe_sweep

_CONFIG = config_flags.DEFINE_config_file("config", configs.path("compare_digits"),
                                          "Sweep config: a file, or the name of a packaged one (tl_jax.configs).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare_digits", "Where runs and results go.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO
  std_logging.getLogger("tl_jax").setLevel(std_logging.WARNING)
  config, workdir = _CONFIG.value, _WORKDIR.value
  probe_rows = None
  if "probe" in config and config.probe.get("folds"):  # every image tested once; no sizes, no seeds
    probe_folds.probe_folds(config, workdir)
    print(open(f"{workdir}/probe_folds.md").read() + "\n" + open(f"{workdir}/paired.md").read())
  elif "probe" in config:
    probe_rows = probe_sweep.sweep(config, workdir)
    print(open(f"{workdir}/probe_results.md").read())
  if "compare" not in config:
    return
  rows = compare.sweep(config, workdir)
  print(open(f"{workdir}/results.md").read())
  if probe_rows is not None and config.compare.get("cut_points"):
    compare.write_cut_points(probe_rows, rows, workdir, title=config.compare.get("title", ""))
    print(open(f"{workdir}/cut_points.md").read())

