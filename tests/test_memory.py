"""Memory is bounded by the batch, not the dataset (issue 26, item 3).

Each case runs in a fresh process and reads its peak resident set (``ru_maxrss``) before and
after the work, every program compiled beforehand: the growth must stay below what one batch
and the outputs (N x feature dimension) explain, far below a float32 copy of the images (4x
their uint8 size), which is what last round's 11.8 GB was (``data.resize`` kept the float32
pixels of every image, three times over).
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 2 ** 20

# The child: ``task n size`` -> {"growth": bytes, "images": bytes, "features": bytes} on stdout.
CHILD = r"""
import json, resource, sys, tempfile, os
import numpy as np

def peak():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes

task, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
from tl_jax import data as data_lib
if task == "load":  # an npz of small images upsampled on load, as the CIFAR subset at 224 px
  path = os.path.join(tempfile.mkdtemp(), "x.npz")
  np.savez(path, x=rng.integers(0, 256, (n, 8, 8, 3), np.uint8), y=np.arange(n, dtype=np.int32) % 10)
  cfg = dict(name="npz", path=path, image_size=size, test_fraction=0.2, val_fraction=0.1, seed=0)
  data_lib.resize(np.zeros((3, 8, 8, 3), np.uint8), size)  # the runtime, before the baseline
  before = peak()
  dataset = data_lib.load(cfg)
  growth = peak() - before
  print(json.dumps({"growth": growth, "images": sum(s.images.nbytes for s in dataset.splits.values()),
                    "features": 0}))
else:  # the backbone's features (trainer and probe), then the evaluation, over n images
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import optax
  from tl_jax.metrics.report import evaluate_split
  from tl_jax.train import feature_cache, steps

  class Backbone(nn.Module):  # the model's interface ((logits, features)) at a fraction of its cost
    @nn.compact
    def __call__(self, x, train=False):
      stem = nn.Conv(8, (4, 4), strides=4, name="stem")(x.astype(jnp.float32) / 255)
      pre_logits = stem.mean((1, 2))
      return nn.Dense(10, name="head")(pre_logits), {"stem": stem, "pre_logits": pre_logits}

  model, batch = Backbone(), 64
  params = model.init(jax.random.key(0), np.zeros((1, size, size, 3), np.uint8))["params"]
  state = steps.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1), batch_stats={})
  images = rng.integers(0, 256, (n, size, size, 3), np.uint8)
  split = data_lib.Split(images, np.arange(n, dtype=np.int32) % 10)
  variables, keys, eval_fn = {"params": params}, ("stem", "pre_logits"), jax.jit(steps.eval_step)

  def work(split):
    pooled = feature_cache.pooled_features(model.apply, variables, split, batch, keys)
    features = feature_cache.extract(state, split, batch).images
    evaluate_split(eval_fn, state, split, batch, 10)
    return features.nbytes + sum(v.nbytes for v in pooled.values())

  work(data_lib.Split(images[:batch], split.labels[:batch]))  # compiles every program used below
  before = peak()
  features = work(split)
  print(json.dumps({"growth": peak() - before, "images": images.nbytes, "features": features}))
"""


def _measure(task: str, n: int, size: int) -> dict:
  out = subprocess.run([sys.executable, "-c", CHILD, task, str(n), str(size)], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=240)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_feature_extraction_and_evaluation_hold_one_batch_of_activations():
  # 4,096 images of 96 px: 108 MB uint8, a float32 copy 432 MB; the features are kilobytes.
  got = _measure("extract", 4096, 96)
  # Outputs twice (their concatenation), a few batches in float32 (in flight, allocator slack).
  bound = 2 * got["features"] + 6 * 64 * 96 * 96 * 3 * 4 + 16 * MB
  assert got["growth"] < bound, (f"features and evaluation of 4,096 images grew the peak by "
                                 f"{got['growth'] / MB:.0f} MB; outputs and one batch explain "
                                 f"{bound / MB:.0f} MB (the images are {got['images'] / MB:.0f} MB)")


def test_loading_holds_the_resized_images_once():
  # 4,000 images of 8 px upsampled to 96 px: 110 MB uint8; the float32 pixels of all: 442 MB.
  got = _measure("load", 4000, 96)
  # The uint8 images once, the float32 pixels of one batch of 256 (and XLA's copy of them).
  bound = 1.25 * got["images"] + 3 * 256 * 96 * 96 * 3 * 4 + 16 * MB
  assert got["growth"] < bound, (f"loading 4,000 images at 96 px grew the peak by {got['growth'] / MB:.0f} MB; "
                                 f"the uint8 images are {got['images'] / MB:.0f} MB (bound {bound / MB:.0f} MB)")
