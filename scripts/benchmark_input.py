r"""Input-pipeline throughput against the train step's, for EfficientNet-Lite0.

Measures, at each image size:
  * build: the one-off decode + resize of each source into memory / the cache
    (images/s), for digits, npz, an image folder of PNG files written from the
    npz, and TFDS (TFDS's mock records: no prepared dataset is needed);
  * loader: steady-state batches from the grain pipeline (images/s), per source;
  * augment: the on-device augmentation alone, jitted (images/s);
  * step: the Lite0 train step (BatchNorm frozen, as in the quickstart) with and
    without augmentation inside it (images/s, and the augmentation's overhead).

  python scripts/benchmark_input.py [--sizes 64,224] [--npz ../shared/data/cifar10_subset_train.npz]

``--stream``: the streaming decode instead (``data.streaming``): decoded
images/s per worker (one process, one thread) for generated ~500x375 JPEGs,
train crop (random-resized, to 224) and eval crop (resize + center crop), and
the grain loader with 1..``--workers`` processes; beside the 224 px full
train step of ResNet-50 and EfficientNet-Lite0 on this machine. It names the
workers a GPU step would need, for a GPU step of ``--gpu_tflops`` (default:
an H100's 989 dense bf16 TFLOP/s) at ``--gpu_mfu`` (0.10: ResNet-50 training
at an MLPerf-like ~3,700 img/s per H100 is ~9%) model FLOP utilisation, FLOPs
from XLA's cost analysis (train = 3x forward):

  python scripts/benchmark_input.py --stream [--jpegs 64] [--workers 2] [--batch_size 8]

Prints one JSON line per measurement; BENCHMARKS.md ("Input pipeline") holds
the figures measured on the dev machine.
"""

import argparse
import dataclasses
import functools
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmark.py

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tl_jax import data  # noqa: E402
from tl_jax.data import augment, pipeline  # noqa: E402
from tl_jax.train import steps, trainer

AUGMENT = dict(rotation=15.0, width_shift=0.1, height_shift=0.1, shear=5.0, zoom=0.1, horizontal_flip=True,
               fill_mode="reflect")


def report(**fields):
  print(json.dumps(fields), flush=True)


def timed(fn, repeats):
  """Seconds per call of ``fn`` (compile it before)."""
  t = time.perf_counter()
  for _ in range(repeats):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - t) / repeats


def write_folder(root, images, labels):
  for i, (image, label) in enumerate(zip(images, labels)):
    os.makedirs(os.path.join(root, str(label)), exist_ok=True)
    Image.fromarray(image).save(os.path.join(root, str(label), f"{i:05d}.png"))


def source_configs(args, size, tmp):
  base = dict(image_size=size, test_fraction=0.1, val_fraction=0.0, seed=0, cache_dir=os.path.join(tmp, "cache"),
              on_error="fail", path="", val_path="", test_path="",
              tfds=dict(name="tf_flowers", train="train", val="", test="", data_dir=""))
  return {"digits": {**base, "name": "digits"}, "npz": {**base, "name": "npz", "path": args.npz},
          "folder": {**base, "name": "folder", "path": os.path.join(tmp, "folder")},
          "tfds": {**base, "name": "tfds"}}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--npz", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                    "cifar10_subset_train.npz"))
  parser.add_argument("--max_images", type=int, default=1024, help="per source (the npz is cut to this)")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--steps", type=int, default=5, help="timed train steps per round")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best counts")
  parser.add_argument("--stream", action="store_true", help="benchmark the streaming decode (see above)")
  parser.add_argument("--jpegs", type=int, default=64)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--gpu_tflops", type=float, default=989.0)
  parser.add_argument("--gpu_mfu", type=float, default=0.10)
  args = parser.parse_args()
  if args.stream:
    return stream_benchmark(args)
  import tensorflow_datasets as tfds

  report(devices=str(jax.devices()), jax=jax.__version__, load_average=os.getloadavg(), cpus=os.cpu_count())
  with tempfile.TemporaryDirectory() as tmp:
    with np.load(args.npz) as f:
      x, y = f["x"][:args.max_images], f["y"][:args.max_images]
    np.savez(os.path.join(tmp, "cut.npz"), x=x, y=y)
    args.npz = os.path.join(tmp, "cut.npz")
    write_folder(os.path.join(tmp, "folder"), x, y)
    for size in map(int, args.sizes.split(",")):
      splits = {}
      for name, cfg in source_configs(args, size, tmp).items():
        with tfds.testing.mock_data(num_examples=args.max_images):
          t = time.perf_counter()
          dataset = data.load(cfg)
          build = time.perf_counter() - t
        splits[name] = dataset.splits["train"]
        n_built = sum(len(s) for s in dataset.splits.values())
        report(size=size, source=name, what="build", images_per_s=round(n_built / build, 1), images=round(n_built))
        batches = pipeline.train_batches(splits[name], args.batch_size, 0)
        next(batches)
        t, n = time.perf_counter(), 200
        for _ in range(n):
          next(batches)
        report(size=size, source=name, what="loader", images_per_s=round(n * args.batch_size / (time.perf_counter() - t), 1))

      images = jnp.asarray(splits["npz"].images[:args.batch_size])
      aug = jax.jit(augment.from_config(AUGMENT))
      jax.block_until_ready(aug(jax.random.key(0), images))
      sec = min(timed(lambda: aug(jax.random.key(0), images), 10) for _ in range(args.rounds))
      report(size=size, what="augment", images_per_s=round(args.batch_size / sec, 1))

      config = ml_collections.ConfigDict(_quickstart(size))
      state, _ = trainer.create_state(config, 10, 100)
      batch = {"image": images, "label": jnp.asarray(splits["npz"].labels[:args.batch_size])}
      runs = {}
      for name, fn in (("step", None), ("step+augment", augment.from_config(AUGMENT))):
        step = jax.jit(functools.partial(steps.train_step, augment_fn=fn))
        holder = [state]

        def run(step=step, holder=holder):
          holder[0], m = step(holder[0], batch, jax.random.key(0))
          return m["loss"]

        jax.block_until_ready(run())  # compile
        runs[name] = run
      # Other jobs share the CPU: alternate the two variants, keep each one's best round.
      best = dict.fromkeys(runs, float("inf"))
      for _ in range(args.rounds):
        for name, run in runs.items():
          best[name] = min(best[name], timed(run, args.steps))
      for name, sec in best.items():
        report(size=size, what=name, images_per_s=round(args.batch_size / sec, 1), step_s=round(sec, 3),
               overhead=round(sec / best["step"] - 1, 3))
  report(load_average_end=os.getloadavg())


def write_jpegs(root, n, seed=0):
  """``n`` photo-like 500x375 / 375x500 JPEGs (smooth shapes + noise; ~60-90 KB at quality 90)."""
  rng = np.random.default_rng(seed)
  for i in range(n):
    w, h = (500, 375) if i % 4 else (375, 500)
    y, x = np.mgrid[:h, :w].astype(np.float32)
    f = rng.uniform(5, 40, 3)
    base = np.stack([128 + 100 * np.sin(x / f[c] + y / f[(c + 1) % 3] + c) for c in range(3)], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    os.makedirs(os.path.join(root, str(i % 2)), exist_ok=True)
    Image.fromarray(pixels).save(os.path.join(root, str(i % 2), f"{i:04d}.jpg"), quality=90)


def stream_benchmark(args):
  import math

  import benchmark

  from tl_jax.data import image_folder, streaming

  report(devices=str(jax.devices()), jax=jax.__version__, load_average=os.getloadavg(), cpus=os.cpu_count())
  with tempfile.TemporaryDirectory() as tmp:
    write_jpegs(tmp, args.jpegs)
    listing = image_folder.scan(tmp)
    kb = np.mean([os.path.getsize(p) for p, _ in listing.files]) / 1e3
    cfg = dict(image_size=224, cache=False, stream={})
    view = streaming.view(cfg, streaming.FileReader([p for p, _ in listing.files]), len(listing.files))
    labels = np.array([label for _, label in listing.files], np.int32)
    one = dataclasses.replace(view, threads=1)  # one worker = one process, one thread
    idx = np.arange(len(one))
    per_worker, wall = {"train_crop": 0.0, "eval_crop": 0.0}, {"train_crop": 0.0, "eval_crop": 0.0}
    np.asarray(one)  # warm the page cache
    # Alternating rounds, best of each. CPU seconds of this process give what one dedicated core
    # (one worker) decodes, whatever else shares the machine; wall-clock rates are reported beside.
    for r in range(max(args.rounds, 4)):
      for what, fn in (("train_crop", lambda: one.train_batch(idx, 0, r)), ("eval_crop", lambda: np.asarray(one))):
        c, t = time.process_time(), time.perf_counter()
        fn()
        per_worker[what] = max(per_worker[what], len(one) / (time.process_time() - c))
        wall[what] = max(wall[what], len(one) / (time.perf_counter() - t))
    for what in per_worker:
      report(what=f"decode {what}", images_per_s_per_worker=round(per_worker[what], 1),
             wall_images_per_s=round(wall[what], 1), jpeg_kb=round(kb, 1), jpeg_px="500x375 (and 375x500)")
    split = data.Split(view, labels)
    for workers in range(1, args.workers + 1):
      batches = pipeline.train_batches(split, args.batch_size, 0, loading=pipeline.Loading(workers=workers))
      next(batches)  # workers started
      n = max(4, 2 * workers)
      t = time.perf_counter()
      for _ in range(n):
        next(batches)
      report(what="loader", workers=workers, images_per_s=round(n * args.batch_size / (time.perf_counter() - t), 1))
      del batches
  for model in ("resnet50", "efficientnet_lite0"):
    r = benchmark.bench_tl_jax(benchmark.Case(model, 224, "full", args.batch_size, "float32", args.steps))
    cpu_ips = args.batch_size / r["train_s"]
    train_flops = 3 * r["forward_flops_per_image"]
    gpu_ips = args.gpu_tflops * 1e12 * args.gpu_mfu / train_flops
    report(what="train_step", model=model, size=224, step_images_per_s=round(cpu_ips, 2),
           step_device=str(jax.devices()[0]),
           workers_needed=math.ceil(cpu_ips / per_worker["train_crop"]),
           train_gflop_per_image=round(train_flops / 1e9, 2), gpu_images_per_s_estimate=round(gpu_ips),
           gpu_workers_needed=math.ceil(gpu_ips / per_worker["train_crop"]))
  report(load_average_end=os.getloadavg())


def _quickstart(size):
  from configs import quickstart  # the repository root is on sys.path (above)

  config = quickstart.get_config().to_dict()
  config["data"]["image_size"] = size
  return config


if __name__ == "__main__":
  main()
