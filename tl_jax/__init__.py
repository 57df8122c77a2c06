"""tl_jax: transfer learning of convolutional image classifiers in JAX/Flax.

The package is laid out by the jobs people come for; data flows down this list, never up
(``tests/test_layout.py`` checks it):

- ``cli/``: the command line, ``tl-jax train|evaluate|predict|inspect|compare|rank|export`` (``main``);
  ``python -m tl_jax`` and ``scripts/`` run the same modules.
- ``configs/``: the configs a user starts from, shipped (``quickstart``, ``linear_probe_digits``,
  ``compare_digits``, ``bit_hyperrule``, ``finetune_modern``); ``--config NAME`` finds them.
- ``studies/``: research built on runs (``compare`` sweeps, the linear ``probe`` and its sweeps).
- ``evaluate/``: checkpoints evaluated after the fact (``evaluation``) and ``predict``.
- ``train/``: ``train_and_evaluate`` (``trainer``), the pure steps, checkpoints, the workdir, logging.
- ``metrics/``: a split's metrics and report, and the plots.
- ``freezing/``: presets and phases, the run's ``plan``, parameter groups and the optimizer, the inspector.
- ``data/``: TFDS, image folders, in-package data; caching, streaming, augmentation.
- ``models/``: one file per backbone family and the registry.
- ``weights/``: file readers, per-source mapping tables, published ids, strict merge, downloads.

Three conventions every wing shares sit at the top: ``partition`` (parameter paths and
``(regex, label)`` rules), ``sharding`` (the device mesh) and ``errors``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
  """``tl_jax.nnx``: the Flax NNX face (``tl_jax.train.nnx``), imported on first use."""
  if name == "nnx":
    from tl_jax.train import nnx
    return nnx
  raise AttributeError(f"module 'tl_jax' has no attribute {name!r}")
