r"""Peak resident memory of a linear probe and of an evaluation over N synthetic images (issue 26).

  PYTHONPATH=. python scripts/benchmark_memory.py --task probe --images 5000,50000 [--size 224]
  PYTHONPATH=. python scripts/benchmark_memory.py --task evaluate --images 5000,50000 [--size 224]

Writes N random 32 px images of 10 classes to an .npz (the CIFAR subset's form), then runs the
command a user runs, in a child process, and reads the child's peak resident set (``os.wait4``'s
``ru_maxrss``, what ``/usr/bin/time -v`` prints as "Maximum resident set size"):

- ``probe``: ``scripts/compare.py --config configs/probe_cifar10.py`` with EfficientNet-Lite0
  only, every training image, one seed, no scikit-learn check: the images upsampled to
  ``--size`` by ``data.load``, the pooled features of every split, the L-BFGS grid and refit
  (3 penalties, at most 50 steps: the memory of the fit does not depend on either);
- ``evaluate``: ``scripts/evaluate.py --data npz:PATH`` on a run of Lite0 at ``--size`` (a
  1-step linear probe trained first on 100 images; not measured): the images upsampled, the
  checkpoint's logits batch by batch, the report.

Prints one JSON line per run: peak RSS, wall time, and the two sizes the peak should be made of
beside a constant (runtime, compiled programs, weights, one batch): the uint8 images held once
(N x size^2 x 3 B) and the pooled features (N x 1280 x 4 B). BENCHMARKS.md ("Memory bounded by
the batch") holds the figures measured on the dev machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = "efficientnet_lite0"


def synthetic_npz(path: str, n: int, side: int = 32, classes: int = 10, seed: int = 0) -> None:
  """``n`` random ``side`` px RGB images, labels cycling over ``classes`` (every class equally)."""
  rng = np.random.default_rng(seed)
  np.savez(path, x=rng.integers(0, 256, (n, side, side, 3), np.uint8), y=np.arange(n, dtype=np.int32) % classes)


def peak_rss(cmd: list[str], log_path: str) -> tuple[float, float]:
  """Runs ``cmd`` in ``ROOT``; returns (its peak resident set in GB, wall seconds)."""
  env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax"}
  t0 = time.time()
  with open(log_path, "w") as log:
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
  wall = time.time() - t0
  if os.waitstatus_to_exitcode(status):
    with open(log_path) as f:
      sys.exit(f"{' '.join(cmd)} failed:\n" + "".join(f.readlines()[-30:]))
  return usage.ru_maxrss / 1e6, wall  # Linux: kilobytes


def probe_cmd(tmp: str, npz: str, size: int) -> list[str]:
  return [sys.executable, "scripts/compare.py", "--config", "configs/probe_cifar10.py",
          "--workdir", os.path.join(tmp, "probe"), f"--config.data.path={npz}", f"--config.data.image_size={size}",
          f"--config.probe.models=('{MODEL}',)", "--config.probe.images_per_class=(0,)",
          "--config.probe.seeds=(0,)", "--config.probe.sklearn=False",
          # 3 penalties, 50 L-BFGS steps: the fit's memory (features, a grid's logits) does not
          # depend on either, its time does (17 x 500 steps over 50,000 images: hours on a CPU).
          "--config.probe.l2_grid.num=3", "--config.probe.max_iter=50",
          f"--config.probe.cache_dir={os.path.join(tmp, 'feature_cache')}"]


def trained_run(tmp: str, size: int) -> str:
  """A 1-step linear-probe run of Lite0 at ``size`` px on 100 synthetic images: what evaluate restores."""
  workdir, npz = os.path.join(tmp, "run"), os.path.join(tmp, "train100.npz")
  synthetic_npz(npz, 100, seed=1)
  peak_rss([sys.executable, "scripts/train.py", "--config", "configs/linear_probe_digits.py", "--workdir", workdir,
            "--config.data.name=npz", f"--config.data.path={npz}", f"--config.data.image_size={size}",
            "--config.train.num_steps=1"], os.path.join(tmp, "train.log"))
  return workdir


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--task", choices=("probe", "evaluate"), required=True)
  parser.add_argument("--images", default="5000,50000", help="comma-separated numbers of images")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--tmp", default="", help="scratch folder (default: a new temporary one)")
  args = parser.parse_args()
  tmp = args.tmp or tempfile.mkdtemp(prefix="tl_jax_memory_")
  os.makedirs(tmp, exist_ok=True)
  workdir = trained_run(tmp, args.size) if args.task == "evaluate" else None
  for n in map(int, args.images.split(",")):
    npz = os.path.join(tmp, f"synthetic{n}.npz")
    synthetic_npz(npz, n)
    cmd = (probe_cmd(os.path.join(tmp, f"n{n}"), npz, args.size) if args.task == "probe" else
           [sys.executable, "scripts/evaluate.py", "--workdir", workdir, f"--data=npz:{npz}"])
    gb, wall = peak_rss(cmd, os.path.join(tmp, f"{args.task}{n}.log"))
    os.remove(npz)
    print(json.dumps({"task": args.task, "images": n, "size": args.size, "peak_rss_gb": round(gb, 3),
                      "uint8_images_gb": round(n * args.size ** 2 * 3 / 1e9, 3),
                      "features_gb": round(n * 1280 * 4 / 1e9, 3), "wall_s": round(wall, 1)}), flush=True)


if __name__ == "__main__":
  main()
