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

Prints one JSON line per measurement; BENCHMARKS.md ("Input pipeline") holds
the figures measured on the dev machine.
"""

import argparse
import functools
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tl_jax import data, steps, trainer  # noqa: E402
from tl_jax.data import augment, pipeline  # noqa: E402

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
  args = parser.parse_args()
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


def _quickstart(size):
  from configs import quickstart  # the repository root is on sys.path (above)

  config = quickstart.get_config().to_dict()
  config["data"]["image_size"] = size
  return config


if __name__ == "__main__":
  main()
