"""What the GPU check carries to the lent GPU image, derived from tl_jax's own dependencies.

The device machine reaches no registry: every package tl_jax needs that its image lacks travels as a
Python 3.12 x86-64 wheel in the git-ignored ``.accel/whl``, beside the fine-tune data in ``.accel/data``.
The list is tl_jax's requirements (pyproject.toml) and theirs, read from this machine's installed
metadata, minus the image's packages (``IMAGE``, as the device tool's KINDS.md lists them) and minus
what tl_jax imports only at use and the check never uses (``AT_USE``). Each wheel is pinned to the
version installed here, so the simulation below runs what the GPU will run.

  python scripts/accelerator_prepare.py                # fills .accel/ (needs a registry), checks its size
  python scripts/accelerator_prepare.py --list         # the derived package list only
  python scripts/accelerator_prepare.py --simulate     # + a clean Python 3.12 venv holding only the
                                                       #   image's packages tl_jax touches, the carried
                                                       #   wheels installed as the GPU run installs them,
                                                       #   and `accelerator_check.sh --cpu` run inside it

``scripts/accelerator_check.sh --prepare`` calls the first form.
"""

import importlib.metadata as md
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

from absl import app, flags
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
ACCEL = ROOT / ".accel"
LIMIT = 64 << 20  # the device tool's limit on everything that travels (working tree + carried paths)
DATA = os.environ.get("TL_JAX_CIFAR_NPZ", str(ROOT.parent / "shared/data/cifar10_subset_train.npz"))

# The 'cuda' image of the device tool's nvidia-h200 kind: KINDS.md, package list read 2026-11-17
# (Python 3.12.3; jax 0.11.2 with jax-cuda13-plugin, torch 2.11.0+cu130, numpy 2.5.2).
IMAGE_DATE = "2026-11-17"
IMAGE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
# Imported where used, never by the check (it reads an .npz and downloads nothing).
AT_USE = {"tensorflow-datasets": "tl_jax/data/tfds_source.py", "pooch": "tl_jax/weights/download.py"}
# What the check itself runs beyond tl_jax: the tests' runner and the torch peer (both in the image).
CHECK_EXTRA = ["pytest", "torch"]
PIP_PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"] + [
    a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                "manylinux2014_x86_64", "manylinux1_x86_64", "any") for a in ("--platform", p)]


def norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements) -> list[str]:
  """Names of the requirements that hold on the image (Linux x86-64, Python 3.12; no extras)."""
  image = dict(sys_platform="linux", platform_system="Linux", platform_machine="x86_64",
               python_version="3.12", python_full_version="3.12.3", implementation_name="cpython",
               platform_python_implementation="CPython", os_name="posix", extra="")
  names = []
  for text in requirements or ():
    r = Requirement(text)
    if r.marker is None or r.marker.evaluate(image):
      names.append(norm(r.name))
  return names


def tl_jax_requirements() -> list[str]:
  return requirement_names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def carried() -> dict[str, str]:
  """{package: version installed here} for every package the image lacks and the check imports."""
  image, out, todo = {norm(n) for n in IMAGE}, {}, tl_jax_requirements()
  while todo:
    name = todo.pop()
    if name in image or name in out or name in AT_USE:
      continue
    try:
      out[name] = md.version(name)
    except md.PackageNotFoundError:
      sys.exit(f"{name} (a requirement of tl_jax) is not installed here: run `pip install -e .` first, "
               "so its version and requirements can be read.")
    todo += requirement_names(md.requires(name))
  return dict(sorted(out.items()))


def travelling_bytes() -> int:
  """The working tree the device tool sends (tracked + untracked-not-ignored files) plus .accel."""
  files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.split(b"\0")
  tree = sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())
  return tree + sum(p.stat().st_size for p in ACCEL.rglob("*") if p.is_file())


def prepare() -> None:
  packages = carried()
  shutil.rmtree(ACCEL / "whl", ignore_errors=True)
  (ACCEL / "data").mkdir(parents=True, exist_ok=True)
  if not os.path.exists(DATA):
    sys.exit(f"No fine-tune data at {DATA}: set TL_JAX_CIFAR_NPZ to an .npz with images and labels.")
  shutil.copy(DATA, ACCEL / "data/cifar10_subset_train.npz")
  subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PIP_PLATFORM, "-d",
                  str(ACCEL / "whl"), *(f"{n}=={v}" for n, v in packages.items())], check=True)
  size = travelling_bytes()
  print(f"carried for the {IMAGE_DATE} image: {', '.join(f'{n}=={v}' for n, v in packages.items())}")
  print(f"travels: {size / 2**20:.1f} MiB of the device tool's {LIMIT >> 20} MiB")
  if size > LIMIT:
    sys.exit(f"What travels ({size / 2**20:.1f} MiB) exceeds the device tool's {LIMIT >> 20} MiB: "
             "move large untracked files out of the checkout or git-ignore them.")


def simulate(venv: pathlib.Path) -> int:
  """Runs the check's CPU mode in a venv holding only image packages plus the carried wheels."""
  image = {norm(n) for n in IMAGE}
  needed, todo = set(), tl_jax_requirements() + CHECK_EXTRA
  while todo:  # the image's packages that tl_jax (or the check) reaches, directly or through a carried one
    name = todo.pop()
    if name in needed or name in AT_USE:
      continue
    needed.add(name)
    todo += requirement_names(md.requires(name)) if name not in image or name in CHECK_EXTRA else []
  from_image = sorted(needed & image)
  found = [p for p in [shutil.which("python3.12"), *map(str, pathlib.Path.home().glob(
      ".pyenv/versions/3.12*/bin/python3.12"))] if p and subprocess.run([p, "-V"], capture_output=True).returncode == 0]
  if not found:
    sys.exit("--simulate needs python3.12 (the image's Python): install it, e.g. `pyenv install 3.12`.")
  python = found[0]
  shutil.rmtree(venv, ignore_errors=True)
  subprocess.run([python, "-m", "venv", str(venv)], check=True)
  pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
  # torch as a CPU wheel (the image's is CUDA); jax as the newest the registry has (the image's 0.11.2).
  pins = {"torch": "torch==2.13.0", "jax": "jax==0.11.2", "jaxlib": "jaxlib==0.11.2", "numpy": "numpy==2.5.2"}
  subprocess.run(pip + [pins.get(n, n) for n in from_image], check=True)
  site = venv / "site"  # as the GPU run: --target, --no-deps, no index
  subprocess.run(pip + ["--no-index", "--no-deps", "--no-compile", "--target", str(site),
                        *map(str, (ACCEL / "whl").glob("*.whl"))], check=True)
  print(f"simulated image: {len(from_image)} image packages ({', '.join(from_image)}) + carried wheels")
  env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
             TL_JAX_ACCEL_SITE=str(site), PYTHONPATH="")
  return subprocess.run(["bash", "scripts/accelerator_check.sh", "--cpu", "/tmp/accel_simulated"],
                        cwd=ROOT, env=env).returncode


_LIST = flags.DEFINE_bool("list", False, "Print the carried packages and stop.")
_SIMULATE = flags.DEFINE_bool("simulate", False, "Prepare, then run the check in a clean venv (see above).")
_VENV = flags.DEFINE_string("venv", "/tmp/accel_venv", "Where --simulate builds its venv (replaced).")


def main(argv) -> None:
  del argv
  if _LIST.value:
    print("\n".join(f"{n}=={v}" for n, v in carried().items()))
    return
  prepare()
  if _SIMULATE.value:
    sys.exit(simulate(pathlib.Path(_VENV.value)))


if __name__ == "__main__":
  app.run(main)
