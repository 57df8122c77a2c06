r"""Prints which parameter lands in which group, without training.

  python scripts/inspect_groups.py --config configs/quickstart.py [--config.param_groups.layer_decay=0.8] \
      [--phase N] [--num_classes K] [--json]
  tl-jax inspect --config quickstart [--json]   # installed: a packaged config by name

One row per parameter: path, shape, size, group label, trainable, effective
learning-rate multiplier (the group's lr_mult x layer decay; 0 = frozen) and
the BatchNorm mode of its layer; then per-group totals. A run writes the same
tables into its workdir (param_groups.txt / .json).
"""

import json

from absl import flags, logging
from ml_collections import config_flags

from tl_jax import configs, data
from tl_jax.freezing import inspect_groups

_CONFIG = config_flags.DEFINE_config_file("config", configs.path("quickstart"),
                                          "Experiment config: a file, or the name of a packaged one (tl_jax.configs).")
_PHASE = flags.DEFINE_integer("phase", 0, "Index of the phase in config.phases (0 without phases).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 0, "Head size; 0 = the number of classes of config.data.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON ({'rows': [...], 'totals': {...}}) instead of a table.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  num_classes = _NUM_CLASSES.value or len(data.class_names(config.data))
  table = inspect_groups.inspect(config, _PHASE.value, num_classes)
  if _JSON.value:
    print(json.dumps(inspect_groups.to_json(table), indent=1))
  else:
    print(inspect_groups.format_table(table, f"{config.model.name}, phase {_PHASE.value}, {num_classes} classes"))

