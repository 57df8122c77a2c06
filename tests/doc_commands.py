"""Documented commands, read and parsed: shared by test_configs.py (config docstrings) and test_docs.py.

A documented ``python scripts/X.py ...`` command (or ``tl-jax COMMAND ...``, ``python -m tl_jax
COMMAND ...``) is checked by parsing it with the flags its command defines (absl, ``config_flags``),
without running the command's ``main``: an unknown flag, an unknown ``--config.a.b`` key or a
value of the wrong type fails as it would for a user.
"""

import pathlib
import re
import runpy
import shlex
import sys
from typing import Any, NamedTuple
from unittest import mock

from absl import flags

from tl_jax.cli import main as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def join_continuations(text: str) -> str:
  """``text`` with shell line continuations (a trailing backslash) joined into one line."""
  return re.sub(r"\\\n\s*", " ", text)


def script_commands(doc: str) -> list[list[str]]:
  """The ``python scripts/...`` commands in a docstring, continuation lines joined."""
  return [shlex.split(line.strip(), comments=True) for line in join_continuations(doc).splitlines()
          if line.strip().startswith("python scripts/")]


def fenced_blocks(markdown: str, languages: tuple[str, ...]) -> list[str]:
  """The bodies of the fenced code blocks of ``markdown`` whose info string is one of ``languages``."""
  pattern = r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$"
  return [m["body"] for m in re.finditer(pattern, markdown, re.S | re.M) if m["lang"] in languages]


def shell_commands(block: str) -> list[list[str]]:
  """Every simple command of a shell block: continuations joined, comments dropped, split on ``&&``/``;``."""
  out = []
  for line in join_continuations(block).splitlines():
    words = shlex.split(line, comments=True)
    command: list[str] = []
    for word in words + ["&&"]:
      if word in ("&&", ";", "||"):
        if command:
          out.append(command)
        command = []
      else:
        command.append(word)
  return out


class Parsed(NamedTuple):
  """A command line parsed by its script: the values of the flags it defines, and its positionals."""

  flags: dict[str, Any]
  args: list[str]


# scripts/<module>.py of a command: a shim that runs tl_jax/cli/<module>.py.
_SHIMS = {module for module, _ in cli.COMMANDS.values()}


def _flags_source(argv: list[str]) -> tuple[str | None, str, list[str]]:
  """(the tl_jax.cli module or None, the script file or program name, the flags) of a command."""
  if argv[0] == "tl-jax" or argv[1:3] == ["-m", "tl_jax"]:
    command, args = (argv[1], argv[2:]) if argv[0] == "tl-jax" else (argv[3], argv[4:])
    return f"tl_jax.cli.{cli.COMMANDS[command][0]}", argv[0], args
  stem = pathlib.PurePath(argv[1]).stem
  module = f"tl_jax.cli.{stem}" if argv[1] == f"scripts/{stem}.py" and stem in _SHIMS else None
  return module, str(ROOT / argv[1]), argv[2:]


def parse_script(argv: list[str]) -> Parsed:
  """Parses ``argv`` (``python scripts/X.py ...``, ``tl-jax COMMAND ...`` or ``python -m tl_jax
  COMMAND ...``) with the flags its command defines, without running its main.

  Run from the repository root: ``--config configs/x.py`` is read relative to the working directory;
  ``--config NAME`` is a packaged config, as the command reads it (``tl_jax.cli.main.resolve_configs``).
  """
  module, script, args = _flags_source(argv)
  before = set(flags.FLAGS)
  try:
    with mock.patch.object(sys, "argv", [script, *cli.resolve_configs(args)]):  # config_flags reads overrides there
      if module:  # executed afresh (not the imported module), so that its flags are defined again
        runpy.run_module(module, run_name="tl_jax_config_test")
      else:
        runpy.run_path(script, run_name="tl_jax_config_test")  # defines the flags; __main__ guard skips main
      args = flags.FLAGS(sys.argv)[1:]
    defined = set(flags.FLAGS) - before
    return Parsed({name: flags.FLAGS[name].value for name in defined}, args)
  finally:
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - before:  # the script's flags and config_flags' override flags
      delattr(flags.FLAGS, name)
