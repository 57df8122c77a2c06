"""Data parallel on 8 (forced host) CPU devices gives the 1-device result.

JAX fixes the device count when it starts, so the check runs this file as a
script in a subprocess with ``--xla_force_host_platform_device_count=8``.

Tolerances are measured, not tuned: a third run on 1 device whose batches hold
the same rows in another order differs from the first only in float32 reduction
order. How far apart those two end is the noise floor of this machine's
numerics; 8 devices must land within a small multiple of it (tests/noise.py). A real sharding
bug (per-device BatchNorm statistics, a lost or doubled gradient shard) moves
results by orders of magnitude more (see ``test_noise_reference_catches_a_sharding_bug``).
"""

import json
import os
import pathlib
import subprocess
import sys

import noise
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 3


# Rows of each batch in another order: the same math, another reduction order.
PERMUTATION = np.random.default_rng(0).permutation(16)


def run_with_devices(mesh_devices: int, permute: bool = False, local_bn: bool = False) -> dict:
  """Trains STEPS steps on a mesh of ``mesh_devices`` devices (runs in the subprocess).

  ``permute`` reorders the rows of every batch; ``local_bn`` simulates a
  sharding bug for the sensitivity check: the step sees one device's 2 rows
  (BatchNorm statistics and gradient of one shard instead of the global batch).
  """
  import functools
  import itertools

  import jax

  from configs import quickstart  # PYTHONPATH is ROOT
  from tl_jax import data as data_lib, partition, sharding
  from tl_jax.train import steps, trainer

  cfg = quickstart.get_config()
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.train.batch_size = 16
  # Batch statistics in training: BatchNorm must reduce over the global batch.
  cfg.param_groups.backbone = dict(lr_mult=0.1, bn="batch")
  # Dropout masks are drawn per row position: reordering rows would change the math.
  cfg.model.dropout_rate = 0.0
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
  losses, compiled = [], None
  for batch in itertools.islice(data_lib.train_batches(split, 16, cfg.seed), STEPS):
    if permute:
      batch = {k: v[PERMUTATION] for k, v in batch.items()}
    if local_bn:  # what a per-device BatchNorm would compute: statistics of 2 rows
      batch = {k: v[:16 // 8] for k, v in batch.items()}
    batch = sharding.put_batch(batch, mesh)
    shards = len(batch["image"].addressable_shards)
    # One compilation serves the steps and the HLO read below (lowering again would compile again).
    compiled = compiled or train_fn.lower(state, batch, rng).compile()
    state, m = compiled(state, batch, rng)
    losses.append(float(m["loss"]))
  hlo = compiled.as_text()
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

  from tests import tiny
  from tl_jax import sharding
  from tl_jax.train import trainer

  trainer.enable_compilation_cache(tiny.jax_cache_dir())  # "one" and "permuted" compile one program

  try:
    sharding.check_batch_size(12, sharding.make_mesh())
    error = ""
  except ValueError as e:
    error = str(e)
  print(json.dumps({"devices": jax.device_count(), "one": run_with_devices(1), "eight": run_with_devices(8),
                    "permuted": run_with_devices(1, permute=True), "error": error}))


def _quantities(run: dict) -> dict:
  """The losses (one entry) and each parameter leaf of a run."""
  return {"losses": run["losses"], **run["params"]}


def _run(*args) -> dict:
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=str(ROOT),
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_eight_devices_match_one_device():
  result = _run()
  one, eight = result["one"], result["eight"]
  assert result["devices"] == 8
  # The batch really is split, and the step really reduces across devices.
  assert (one["shards"], eight["shards"]) == (1, 8)
  assert eight["all_reduce"] and not one["all_reduce"]
  # Same loss curve and final parameters within the measured reduction-order noise.
  noise.assert_within(_quantities(eight), _quantities(one), noise.bounds(_quantities(one), _quantities(result["permuted"])))
  assert len(set(np.round(one["losses"], 4))) == STEPS  # it learns: losses change step to step
  # BatchNorm statistics moved, and equally: they are the global batch's, not one device's 2 images.
  assert one["stats_moved"] > 1e-3
  for k in one["stats"]:
    np.testing.assert_allclose(eight["stats"][k], one["stats"][k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert "train.batch_size=12 does not split evenly over the 8 devices" in result["error"]
  assert "multiple of 8" in result["error"]


@pytest.mark.slow
def test_noise_reference_catches_a_sharding_bug():
  """The bounds are tight enough: a step that sees one device's 2 of 16 rows (its
  BatchNorm statistics and gradient) breaks them by far."""
  result = _run("--bug")
  one = _quantities(result["one"])
  allowed = noise.bounds(one, _quantities(result["permuted"]))
  buggy = _quantities(result["buggy"])
  worst = max(np.abs(np.subtract(buggy[k], v)).max() / allowed[k] for k, v in one.items())
  assert worst > 10, worst


def main_bug() -> None:
  print(json.dumps({"one": run_with_devices(1), "permuted": run_with_devices(1, permute=True),
                    "buggy": run_with_devices(1, local_bn=True)}))


if __name__ == "__main__":
  main_bug() if "--bug" in sys.argv else main()
