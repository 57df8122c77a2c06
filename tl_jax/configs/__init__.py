"""The configs a user starts from, shipped with the package: one ``get_config()`` per module.

``quickstart`` (Lite0 fine-tuned on scikit-learn's digits), ``linear_probe_digits`` (the linear
probe on cached features), ``compare_digits`` (the strategies presets, ``strategies()``, and their
CI-sized sweep), ``bit_hyperrule`` (BiT-HyperRule from the dataset's size) and ``finetune_modern``
(the timm / DeiT-style toolkit). Each docstring gives the command and the expected result.

The commands take them by bare name: ``tl-jax train --config quickstart`` reads ``path("quickstart")``
(``tl_jax.cli.main``); a path (``--config configs/x.py``) is read as a file, as before. The
repository's ``configs/`` holds the experiments and re-exports these modules under the same names
(``from configs import quickstart`` is this ``quickstart``). A config built on one of these imports
it from here (``from tl_jax.configs import quickstart``).
"""

import os

NAMES = ("quickstart", "linear_probe_digits", "compare_digits", "bit_hyperrule", "finetune_modern")


def path(name: str) -> str:
  """The file of the packaged config ``name`` (one of ``NAMES``), for ``--config``.

  Raises:
    KeyError: ``name`` is not a packaged config; the message lists those that are.
  """
  if name not in NAMES:
    raise KeyError(f"no packaged config {name!r}; the packaged configs are {', '.join(NAMES)} "
                   "(or give a config file's path)")
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
