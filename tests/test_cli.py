"""The command line (tl_jax/cli): one entry point, packaged configs by name, scripts/ as shims over it.

The installed wheel end to end (``tl-jax predict`` / ``tl-jax train`` from a temporary directory):
tests/test_wheel.py.
"""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import doc_commands
from tl_jax import configs
from tl_jax.cli import main

ROOT = doc_commands.ROOT


def test_bare_config_names_are_the_packaged_files_and_paths_stay_paths():
  path = configs.path("quickstart")
  assert pathlib.Path(path).is_file() and pathlib.Path(path).parent == ROOT / "tl_jax" / "configs"
  assert main.resolve_configs(["p", "--config", "quickstart", "--config.seed=1"]) == [
      "p", "--config", path, "--config.seed=1"]
  assert main.resolve_configs(["p", "--config=bit_hyperrule:1000,32,32"]) == [
      "p", f"--config={configs.path('bit_hyperrule')}:1000,32,32"]
  assert main.resolve_configs(["p", "--config", "tests/tiny_config.py"]) == ["p", "--config", "tests/tiny_config.py"]
  with pytest.raises(KeyError, match="no packaged config 'quickstrat'.*quickstart, linear_probe_digits"):
    main.resolve_configs(["p", "--config", "quickstrat"])


def test_a_config_in_a_package_folder_imports_its_siblings(tmp_path, monkeypatch):
  # The repository's configs/ is no installed package: `--config configs/x.py` puts the folder above it on the path.
  monkeypatch.setattr(sys, "path", list(sys.path))
  (tmp_path / "myconfigs").mkdir()
  (tmp_path / "myconfigs" / "__init__.py").write_text("")
  (tmp_path / "myconfigs" / "x.py").write_text("from myconfigs import y\n")
  main.resolve_configs(["p", "--config", str(tmp_path / "myconfigs" / "x.py")])
  assert sys.path[0] == str(tmp_path)
  main.resolve_configs(["p", f"--config={configs.path('quickstart')}"])  # inside tl_jax: nothing added
  assert str(ROOT / "tl_jax") not in sys.path


def test_packaged_configs_are_the_repository_configs():
  assert sorted(configs.NAMES) == sorted(p.stem for p in (ROOT / "tl_jax" / "configs").glob("*.py")
                                         if p.stem != "__init__")
  for name in configs.NAMES:
    packaged, repo = (importlib.import_module(f"{p}.{name}") for p in ("tl_jax.configs", "configs"))
    assert repo.get_config is packaged.get_config and repo.__doc__ == packaged.__doc__, name


@pytest.mark.parametrize("argv, name", [
    (["tl-jax", "train", "--workdir", "w"], "quickstart"),  # train's default: the packaged quickstart
    (["python", "-m", "tl_jax", "inspect", "--config", "linear_probe_digits"], "linear_probe_digits"),
    (["python", "scripts/compare.py", "--config=compare_digits"], "compare_digits"),
])
def test_commands_parse_packaged_configs_by_name(argv, name, monkeypatch):
  monkeypatch.chdir(ROOT)
  parsed = doc_commands.parse_script(argv).flags["config"]
  assert parsed.to_dict() == importlib.import_module(f"tl_jax.configs.{name}").get_config().to_dict()


def test_scripts_are_shims_over_the_cli_modules():
  for command, (module, _) in main.COMMANDS.items():
    script = ROOT / "scripts" / f"{module}.py"
    tree = ast.parse(script.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "main.run"]
    assert [ast.literal_eval(c.args[0]) for c in calls] == [command], script
    assert len(tree.body) == 3 and (ROOT / "tl_jax" / "cli" / f"{module}.py").is_file(), script


def test_unknown_command_and_no_command(capsys):
  with pytest.raises(SystemExit) as e:
    main.main(["tl-jax", "trian"])
  assert e.value.code == 2 and "unknown command 'trian'" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    main.main(["tl-jax"])
  out = capsys.readouterr().out
  assert e.value.code == 2 and all(f"  {c} " in out for c in main.COMMANDS), out


@pytest.mark.parametrize("argv, message", [
    (["scripts/train.py", "--config", "quickstart", "--config.optim.lrr=1"],
     "Unknown config key 'optim.lrr' (--config.optim.lrr)"),
    (["-m", "tl_jax", "train", "--config", "nosuch"], "--config: no packaged config 'nosuch'; the packaged"),
])
def test_command_errors_are_one_line(argv, message):
  out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith(f"error: {message}"), out.stderr
