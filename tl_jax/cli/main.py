"""``tl-jax COMMAND [flags]`` and ``python -m tl_jax COMMAND [flags]``: one entry point, seven commands.

``main`` is the console script (``[project.scripts]`` in pyproject.toml); ``run(command)`` runs one
command's module with absl (``scripts/<module>.py`` call it too, so both faces parse the same flags).
A ``--config`` that is a bare name, with or without its argument (``quickstart``,
``bit_hyperrule:50000,32,32``), is a packaged config (``tl_jax.configs``); anything else is a file.
"""

import os
import re
import sys

from absl import app

from tl_jax import configs
from tl_jax.train import config_checks

# command -> (its module in tl_jax.cli, what it does). A module is imported only when its command
# runs: each defines its own absl flags (--config, --workdir, ...), and two would clash.
COMMANDS = {
    "train": ("train", "fine-tune a config; rerun the same command to resume"),
    "evaluate": ("evaluate", "evaluate a run's checkpoint on a split or on any labelled data"),
    "predict": ("predict", "top-k classes of image files, from a run or a pretrained model"),
    "inspect": ("inspect_groups", "which parameter trains in which group, without training"),
    "compare": ("compare", "sweep transfer strategies x training-set sizes, and linear probes"),
    "rank": ("rank", "rank pretrained models and their cut points for a dataset, without training"),
    "export": ("export", "a run's checkpoint as a StableHLO serving artifact"),
}


def _module(name: str):
  """The command module ``name``, imported (and so its flags defined) on first use."""
  match name:
    case "train":
      from tl_jax.cli import train as module
    case "evaluate":
      from tl_jax.cli import evaluate as module
    case "predict":
      from tl_jax.cli import predict as module
    case "inspect_groups":
      from tl_jax.cli import inspect_groups as module
    case "compare":
      from tl_jax.cli import compare as module
    case "rank":
      from tl_jax.cli import rank as module
    case "export":
      from tl_jax.cli import export as module
    case _:
      raise KeyError(name)
  return module


def usage(prog: str = "tl-jax") -> str:
  """The command list, as ``tl-jax`` without a command prints it."""
  width = max(map(len, COMMANDS))
  return "\n".join([f"usage: {prog} COMMAND [flags]   ({prog} COMMAND --help: the command's flags)", "",
                    *(f"  {c:<{width}}  {about}" for c, (_, about) in COMMANDS.items()), "",
                    f"Packaged configs (--config NAME): {', '.join(configs.NAMES)}; or a config file's path."])


def _config_file(spec: str) -> str:
  """``spec`` (``NAME[:ARG]`` or ``PATH[:ARG]``) as the file config_flags reads."""
  file, colon, arg = spec.partition(":")
  if re.fullmatch(r"[A-Za-z_]\w*", file):  # a bare name: no file is named like that
    return configs.path(file) + colon + arg
  # A config in a package folder (the repository's configs/) imports its siblings
  # (`from configs import quickstart`): the folder above the package goes on the path.
  package = os.path.dirname(os.path.abspath(file))
  root = os.path.dirname(package)
  if (os.path.isfile(os.path.join(package, "__init__.py")) and not os.path.isfile(os.path.join(root, "__init__.py"))
      and root not in sys.path):
    sys.path.insert(0, root)
  return spec


def resolve_configs(argv: list[str]) -> list[str]:
  """``argv`` with each ``--config`` value a file: packaged configs' names replaced by their files.

  Raises:
    KeyError: a bare name that is no packaged config (the message lists those that are).
  """
  out = list(argv)
  for i, arg in enumerate(out):
    if arg in ("--config", "-config") and i + 1 < len(out):
      out[i + 1] = _config_file(out[i + 1])
    elif m := re.fullmatch(r"(--?config=)(.+)", arg):
      out[i] = m[1] + _config_file(m[2])
  return out


def _fail(message: str) -> None:
  sys.stderr.write(f"error: {message}\n")
  sys.exit(2)


def run(command: str, argv: list[str] | None = None) -> None:
  """Runs ``command`` (a key of ``COMMANDS``) on ``argv``: the program's name, then its flags
  (default ``sys.argv``). absl parses the flags, calls the module's ``main`` and exits."""
  argv = list(sys.argv if argv is None else argv)
  try:
    argv = resolve_configs(argv)
  except KeyError as e:
    _fail(f"--config: {e.args[0]}")
  # Before train's flags exist: config_flags applies overrides as it defines the flag (default
  # config) or parses it, and its error for an unknown key is a traceback.
  if command == "train" and (problem := config_checks.unknown_override(argv, configs.path("quickstart"))):
    _fail(problem)
  module = _module(COMMANDS[command][0])
  main_module = sys.modules.get("__main__")
  if main_module is not None:  # absl's --help prints the __main__ module's docstring
    main_module.__doc__ = module.__doc__
  app.run(module.main, argv=argv)


def main(argv: list[str] | None = None, prog: str = "tl-jax") -> None:
  """The ``tl-jax`` console script: ``argv[1]`` names the command, the rest are its flags."""
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage(prog))
    sys.exit(0 if len(argv) >= 2 else 2)
  if argv[1] not in COMMANDS:
    _fail(f"unknown command {argv[1]!r}; the commands are {', '.join(COMMANDS)} ({prog} --help)")
  run(argv[1], [f"{prog} {argv[1]}", *argv[2:]])
