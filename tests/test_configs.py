"""Every config file loads, locks, derives from others by import, and its documented command parses."""

import ast
import importlib
import re

import ml_collections
import pytest

import doc_commands

ROOT = doc_commands.ROOT
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__")


def test_every_config_file_is_covered():
  assert {"quickstart", "linear_probe_digits", "compare_digits", "compare_cifar10"} <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_locks_and_its_command_parses(name, monkeypatch):
  source = (ROOT / "configs" / f"{name}.py").read_text()
  # A config built on another imports it (configs is a package): no import paths built by hand.
  assert not re.search(r"importlib|spec_from_file_location|sys\.path|__file__", source), name
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  assert isinstance(config, ml_collections.ConfigDict) and config.is_locked, name
  with pytest.raises(AttributeError):  # locked: a misspelt key is an error, not a new key
    config.no_such_key = 1
  doc = module.__doc__ or ""
  commands = doc_commands.script_commands(doc)
  assert commands, f"configs/{name}.py: the docstring gives no `python scripts/...` command"
  assert re.search(r"[Ee]xpected|accuracy|%", doc), f"configs/{name}.py: the docstring gives no expected result"
  monkeypatch.chdir(ROOT)  # the documented commands run from the repository root
  for argv in commands:
    # ``--config configs/x.py`` or ``configs/x.py:ARG`` (the argument goes to get_config).
    spec = next((a for a in argv if re.fullmatch(rf"configs/{name}\.py(:.+)?", a)), None)
    assert spec, argv
    expected = module.get_config(spec.split(":", 1)[1]) if ":" in spec else config
    parsed = doc_commands.parse_script(argv).flags["config"]
    assert parsed.to_dict() == _with_overrides(expected, argv).to_dict()


def _with_overrides(config, argv):
  # The command's --config.a.b=v overrides, applied by hand to the loaded config.
  config = ml_collections.ConfigDict(config.to_dict())
  for arg in argv:
    if m := re.fullmatch(r"--config\.([\w.]+)=(.*)", arg):
      *path, key = m[1].split(".")
      node = config
      for p in path:
        node = node[p]
      old = node[key]
      node[key] = ast.literal_eval(m[2]) if isinstance(old, (tuple, list)) else type(old)(m[2])
  return config
