"""Data parallel on 8 (forced host) CPU devices gives the 1-device result.

JAX fixes the device count when it starts, so the check runs this file as a
script in a subprocess with ``--xla_force_host_platform_device_count=8``.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 3


def run_with_devices(mesh_devices: int) -> dict:
  """Trains STEPS steps on a mesh of ``mesh_devices`` devices (runs in the subprocess)."""
  import functools
  import itertools

  import jax

  from tl_jax import data as data_lib, partition, sharding, steps, trainer

  from configs import quickstart  # PYTHONPATH is ROOT

  cfg = quickstart.get_config()
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.train.batch_size = 16
  # Batch statistics in training: BatchNorm must reduce over the global batch.
  cfg.param_groups.backbone = dict(lr_mult=0.1, bn="batch")
  # SGD: Adam divides near-zero gradients by their own magnitude, which turns
  # float reduction-order noise into full-size updates and hides real errors.
  cfg.optim = dict(name="sgd", lr=0.02, schedule="constant", warmup_steps=0, kwargs={})
  mesh = sharding.make_mesh(devices=jax.devices()[:mesh_devices])
  sharding.check_batch_size(cfg.train.batch_size, mesh)
  state, _ = trainer.create_state(cfg, 10, STEPS)
  init_stats = partition.flatten(jax.device_get(state.batch_stats))
  state = sharding.replicate(state, mesh)
  train_fn = jax.jit(functools.partial(steps.train_step, loss_fn=steps.cross_entropy), donate_argnums=0,
                     out_shardings=sharding.replicated(mesh))
  rng = sharding.replicate(jax.random.key(0), mesh)
  split = data_lib.load(cfg.data).splits["train"]
  losses = []
  for batch in itertools.islice(data_lib.train_batches(split, 16, cfg.seed), STEPS):
    batch = sharding.put_batch(batch, mesh)
    shards = len(batch["image"].addressable_shards)
    state, m = train_fn(state, batch, rng)
    losses.append(float(m["loss"]))
  hlo = train_fn.lower(state, batch, rng).compile().as_text()
  stats = partition.flatten(jax.device_get(state.batch_stats))
  return {
      "losses": losses,
      "params": {k: np.asarray(v).tolist() for k, v in partition.flatten(jax.device_get(state.params)).items()
                 if k.startswith(("head", "backbone/stem", "backbone/top"))},
      "stats": {k: np.asarray(v).tolist() for k, v in stats.items() if k.startswith("backbone/stem")},
      "stats_moved": max(float(np.abs(stats[k] - init_stats[k]).max()) for k in stats),
      "shards": shards,
      "all_reduce": "all-reduce" in hlo,
  }


def main() -> None:
  import jax

  from tl_jax import sharding

  try:
    sharding.check_batch_size(12, sharding.make_mesh())
    error = ""
  except ValueError as e:
    error = str(e)
  print(json.dumps({"devices": jax.device_count(), "one": run_with_devices(1), "eight": run_with_devices(8),
                    "error": error}))


def test_eight_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=str(ROOT),
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  one, eight = result["one"], result["eight"]
  assert result["devices"] == 8
  # The batch really is split, and the step really reduces across devices.
  assert (one["shards"], eight["shards"]) == (1, 8)
  assert eight["all_reduce"] and not one["all_reduce"]
  # Same loss curve and final parameters within float32 reduction-order noise.
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=5e-5)
  assert len(set(np.round(one["losses"], 4))) == STEPS  # it learns: losses change step to step
  for k in one["params"]:
    p1, p8 = np.asarray(one["params"][k]), np.asarray(eight["params"][k])
    # The stem's gradient, behind BatchNorm on near-constant digit images, is
    # the least well-conditioned one: it sets this bound.
    assert np.abs(p8 - p1).max() <= 1e-3 * np.abs(p1).max(), k
  # BatchNorm statistics moved, and equally: they are the global batch's, not one device's 2 images.
  assert one["stats_moved"] > 1e-3
  for k in one["stats"]:
    np.testing.assert_allclose(eight["stats"][k], one["stats"][k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert "train.batch_size=12 does not split evenly over the 8 devices" in result["error"]
  assert "multiple of 8" in result["error"]


if __name__ == "__main__":
  main()
