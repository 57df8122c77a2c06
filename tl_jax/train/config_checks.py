"""Checks of a config before any work starts, each naming the key and the fix.

``check(config)``: settings that would crash late or obscurely (batch sizes,
epochs or steps, the evaluation and checkpoint cadences). ``check_splits(config, dataset)``: every split
gives at least one batch. ``unknown_override(argv)``: a ``--config.a.b=...`` key that
the config does not have, with the closest keys that it does.
"""

from collections.abc import Sequence
import difflib
import importlib.util
import re

from tl_jax.errors import InvalidInput
from tl_jax.train import guard

# (key, what it must be, test) for values under config.train.
_POSITIVE_INTS = ("batch_size", "eval_batch_size", "num_epochs", "log_every_steps", "keep_checkpoints")
# Cadences (train.cadence): 0 turns one off.
_CADENCES = ("eval_every_epochs", "eval_every_steps", "checkpoint_every_steps")


def check(config) -> None:
  """Raises ``InvalidInput`` naming the first bad setting of ``config`` and its fix."""
  tcfg = config.train
  for key in _POSITIVE_INTS:
    value = tcfg.get(key)
    if value is None:
      continue
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise InvalidInput(f"train.{key}={value!r}: it must be a positive integer "
                         f"(e.g. --config.train.{key}={_example(key)}).")
  _check_cadences(tcfg)
  num_steps = tcfg.get("num_steps", 0)
  if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
    raise InvalidInput(f"train.num_steps={num_steps!r}: it must be a whole number of steps, or 0 to train "
                       "train.num_epochs epochs (e.g. --config.train.num_steps=10000).")
  mode = tcfg.get("on_nonfinite", "stop")
  if mode not in guard.MODES:
    raise InvalidInput(f"train.on_nonfinite={mode!r}: use one of {', '.join(guard.MODES)}.")
  size = config.data.get("image_size")
  if isinstance(size, bool) or not isinstance(size, int) or size < 1:
    raise InvalidInput(f"data.image_size={size!r}: it must be a positive integer (e.g. 64).")
  for key in ("test_fraction", "val_fraction"):
    value = config.data.get(key, 0)
    if not 0 <= value < 1:
      raise InvalidInput(f"data.{key}={value!r}: it must be in [0, 1).")


def _check_cadences(tcfg) -> None:
  for key in _CADENCES:
    value = tcfg.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise InvalidInput(f"train.{key}={value!r}: it must be a whole number, 0 to turn it off "
                         f"(e.g. --config.train.{key}={_example(key)}).")
  if not tcfg.get("eval_every_epochs", 1) and not tcfg.get("eval_every_steps", 0):
    raise InvalidInput("train.eval_every_epochs=0: it must be a positive integer (e.g. "
                       "--config.train.eval_every_epochs=1), or 0 with train.eval_every_steps > 0 "
                       "(e.g. --config.train.eval_every_steps=1000): the run must evaluate on some cadence.")


def _example(key: str) -> int:
  return {"batch_size": 32, "eval_batch_size": 128, "num_epochs": 5, "log_every_steps": 10,
          "keep_checkpoints": 2, "eval_every_steps": 1000, "checkpoint_every_steps": 500}.get(key, 1)


def check_splits(config, dataset) -> None:
  """Raises ``InvalidInput`` unless the train split has a full batch and every split an example."""
  batch, n = config.train.batch_size, len(dataset.splits["train"])
  if n < batch:
    raise InvalidInput(f"train.batch_size={batch} but the train split has only {n} images: lower "
                       f"train.batch_size to at most {n} (or give it more data).")
  for name, split in dataset.splits.items():
    if not len(split):
      key = {"test": "data.test_fraction", "val": "data.val_fraction"}.get(name, "data")
      raise InvalidInput(f"The {name} split is empty: raise {key} (or give that split data).")


def _load(path: str):
  spec = importlib.util.spec_from_file_location("_tl_jax_config", path.split(":")[0])
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _keys(tree, prefix: str = "") -> list[str]:
  out = []
  for key, value in tree.items():
    out.append(prefix + key)
    if hasattr(value, "items"):
      out += _keys(value, prefix + key + ".")
  return out


def _suggest(key: str, under: str, node, known: list[str]) -> str:
  """"did you mean ..." from the keys next to the missing one, then the whole config."""
  if not hasattr(node, "items"):
    return f"{under} is a value, not a group of keys."
  leaf = key[len(under) + 1:] if under else key
  siblings = [f"{under}.{k}" if under else k for k in difflib.get_close_matches(leaf, list(node), n=3, cutoff=0.5)]
  same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
  close = list(dict.fromkeys(siblings + same_leaf + difflib.get_close_matches(key, known, n=3, cutoff=0.8)))[:3]
  if close:
    return f"did you mean {' or '.join(close)}?"
  return f"the keys under {under or 'the config'} are {', '.join(sorted(node))}."


def unknown_override(argv: Sequence[str], default_config: str) -> str | None:
  """The message for the first ``--config.a.b`` override of ``argv`` that names no key of the
  config (``--config=PATH`` in ``argv``, else ``default_config``); None if all exist."""
  path, overrides = default_config, []
  for i, arg in enumerate(argv[1:], 1):
    if m := re.fullmatch(r"--config=(.+)", arg):
      path = m.group(1)
    elif arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    elif m := re.fullmatch(r"--config\.([^=]+)(=.*)?", arg):
      overrides.append(m.group(1))
  if not overrides:
    return None
  try:
    config = _load(path)
  except Exception:  # the flag parser reports a bad config file itself
    return None
  known = _keys(config)
  for key in overrides:
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
      if not hasattr(node, "items") or part not in node:
        under = ".".join(parts[:i])
        return (f"Unknown config key {key!r} (--config.{key}): {path} has no {'.'.join(parts[:i + 1])}; "
                + _suggest(key, under, node, known))
      node = node[part]
  return None
