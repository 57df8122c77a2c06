"""The wheel works anywhere: built, installed into a fresh venv, run from a directory that is not the repository.

Isolation without the registry: the venv is made without system site packages and given one
``.pth`` line naming this interpreter's site-packages. The dependencies (jax, flax, the Lite0
weights package, ...) then import, but the .pth files *inside* that site-packages are not run (only
a site directory's own .pth files are): the editable install's finder, which maps ``tl_jax`` and
the repository's ``configs`` to this checkout, stays out. The wheel goes in with
``pip --python <venv> install --no-deps --no-index``, so ``tl_jax`` and the ``tl-jax`` command are
the wheel's alone (checked: ``tl_jax.__file__`` lies in the venv and ``configs`` does not import).
The wheel is built from a copy of ``tl_jax/``, ``configs/``, pyproject.toml and README.md (no build
files in the checkout) with this machine's setuptools (``--no-build-isolation --no-index``).
"""

import importlib.util
import json
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _check_build_tools() -> None:
  """pip, scikit-image and the build backend (setuptools >= 68) are test dependencies: a missing
  one fails the test with its name instead of skipping it."""
  assert importlib.util.find_spec("pip") is not None, "pip is needed to build and install the wheel"
  assert importlib.util.find_spec("skimage") is not None, "scikit-image (the photo) is a test dependency"
  assert importlib.util.find_spec("setuptools") is not None, (
      "setuptools (the build backend, in the test extra) is missing: pip install -e '.[test]'")
  from importlib.metadata import version

  assert int(version("setuptools").split(".")[0]) >= 68, (
      f"setuptools {version('setuptools')} < 68 (pyproject.toml's build requirement): pip install -e '.[test]'")


def _run(argv, cwd, **kwargs) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout on the path
  out = subprocess.run(argv, cwd=cwd, env=dict(env, PYTHONNOUSERSITE="1"), capture_output=True, text=True,
                       check=False, **kwargs)
  assert out.returncode == 0, f"{argv}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
  return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  _check_build_tools()
  tmp = tmp_path_factory.mktemp("wheel")
  src = tmp / "src"
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
  for folder in ("tl_jax", "configs"):  # configs/ too: the wheel must leave it out
    shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
  for file in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / file, src / file)
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", str(src),
        "-w", str(tmp / "dist")], cwd=tmp, timeout=600)
  (path,) = (tmp / "dist").glob("tl_jax-*.whl")
  return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
  """A venv holding the wheel, seeing this machine's dependencies but not the editable tl_jax."""
  root = tmp_path_factory.mktemp("venv") / "v"
  _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent, timeout=300)
  purelib = pathlib.Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
  (purelib / "_tl_jax_test_base_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
  python = root / "bin" / "python"
  _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
       cwd=root.parent, timeout=600)
  return root


def test_wheel_holds_tl_jax_alone_with_configs_and_the_command(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
  assert not [n for n in names if n.startswith("configs/")], "the repository's configs/ is in the wheel"
  assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"tl_jax"}
  for name in ("quickstart", "linear_probe_digits", "compare_digits", "bit_hyperrule", "finetune_modern"):
    assert f"tl_jax/configs/{name}.py" in names, name
  assert {"tl_jax/__main__.py", "tl_jax/cli/main.py", "tl_jax/cli/train.py"} <= set(names)
  assert any(n.startswith("tl_jax/resources/") and n.endswith(".txt") for n in names)  # ImageNet classes
  assert "tl-jax = tl_jax.cli.main:main" in entry_points


def test_installed_command_predicts_and_trains_from_anywhere(venv, tmp_path):
  from PIL import Image
  from skimage import data as skdata

  python, command = venv / "bin" / "python", str(venv / "bin" / "tl-jax")
  code = "import importlib.util, tl_jax; print(tl_jax.__file__); print(importlib.util.find_spec('configs'))"
  where = _run([str(python), "-c", code], cwd=tmp_path).stdout.split()
  assert pathlib.Path(where[0]).is_relative_to(venv), where  # the wheel's copy, not the checkout's
  assert where[1] == "None", where  # the repository's configs do not import

  usage = _run([str(python), "-m", "tl_jax", "--help"], cwd=tmp_path).stdout
  assert all(c in usage for c in ("train", "evaluate", "predict", "inspect", "compare", "rank", "export"))

  Image.fromarray(skdata.chelsea()).save(tmp_path / "chelsea.png")
  out = _run([command, "predict", "--model", "efficientnet_lite0", "--top_k", "1", "--output", "top.json",
              "chelsea.png"], cwd=tmp_path, timeout=600)
  (top,) = json.loads((tmp_path / "top.json").read_text())[0]["top_k"]
  assert top["index"] in range(281, 286) and top["class"] in out.stdout, (top, out.stdout)  # a domestic cat

  _run([command, "train", "--config", "quickstart", "--workdir", "W", "--config.train.num_steps=2"],
       cwd=tmp_path, timeout=900)
  summary = json.loads((tmp_path / "W" / "summary.json").read_text())
  assert summary["final_step"] == 2, summary
  assert "2" in [p.name for p in (tmp_path / "W" / "checkpoints").iterdir()], "no checkpoint of step 2"
