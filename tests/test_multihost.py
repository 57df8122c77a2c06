"""Two processes on localhost (CPU collectives) train like one, and resume.

Every run is ``scripts/train.py`` in its own process: the real entry point,
with ``jax.distributed.initialize`` driven by its flags.

Tolerances are measured, not tuned on one CPU: one process with two devices
computes the same global-batch math as one device, in another reduction order.
How far those two runs end apart is this machine's float32 noise; two processes
must land within a small multiple of it (tests/noise.py).
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import jax
import noise
import numpy as np
import orbax.checkpoint as ocp

from tl_jax import partition
from tl_jax.data import in_package

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _train(workdir, data_path, cache_dir, processes: int = 1, devices: int = 1) -> None:
  args = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(ROOT / "configs" / "quickstart.py"),
          f"--workdir={workdir}", "--config.data.name=npz", f"--config.data.path={data_path}",
          "--config.data.image_size=32", "--config.train.num_epochs=2", "--config.train.batch_size=16",
          "--config.train.eval_batch_size=32", f"--config.train.compilation_cache_dir={cache_dir}",
          # A small random-init ResNet whose BatchNorm trains on batch statistics:
          # each step's mean/variance span both processes' rows.
          "--config.model.name=resnet18", "--config.init.pretrained=False", "--config.param_groups.backbone.bn=batch",
          # SGD keeps parameter differences proportional to gradient differences
          # (Adam turns reduction-order noise in near-zero gradients into lr-sized
          # steps). At lr 0.05 this net amplifies reduction-order noise to 4e-3 in
          # the epoch-2 loss, as much between 1 and 2 devices of one process.
          "--config.optim.name=sgd", "--config.optim.lr=0.01"]
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device per process
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  if processes == 1:
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
  else:
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen(args + [f"--coordinator_address={address}", f"--num_processes={processes}",
                                      f"--process_id={i}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(processes)]
  outputs = [p.communicate(timeout=900)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-4000:]


def _records(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _params(workdir, step: int) -> dict[str, np.ndarray]:
  path = os.path.join(workdir, "checkpoints", str(step), "default")
  checkpointer = ocp.StandardCheckpointer()
  # Saved on 1 or 2 processes' devices; read back onto this process's device.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata)
  return partition.flatten(jax.device_get(checkpointer.restore(path, target)["params"]))


def _quantities(workdir) -> dict:
  """Train and validation losses and each final parameter leaf of a run."""
  records = _records(workdir)
  return {"train_loss": [r["train_loss"] for r in records], "val_loss": [r["val_loss"] for r in records],
          **_params(workdir, records[-1]["step"])}


def _assert_same_run(run, reference, allowed: dict[str, float]) -> None:
  """``run`` equals ``reference`` within the ``allowed`` (measured) differences."""
  assert [r["step"] for r in _records(run)] == [r["step"] for r in _records(reference)]
  got, want = _quantities(run), _quantities(reference)
  assert set(got) == set(want)
  noise.assert_within(got, want, allowed)


# ~1.5 min on the 2-core CPU (trainer runs: 1 process, 1 process on 2 devices, 2, 2 resumed).
def test_two_processes_match_one_and_resume(tmp_path):
  # 120 real digits: 4 steps of 16 per epoch, 2 epochs.
  images, labels, _ = in_package.digits()
  data = tmp_path / "digits.npz"
  np.savez(data, x=images[:120], y=labels[:120])
  cache = tmp_path / "jax_cache"
  single, two_devices, double = tmp_path / "single", tmp_path / "two_devices", tmp_path / "double"
  _train(single, data, cache)
  _train(two_devices, data, cache, devices=2)
  allowed = noise.bounds(_quantities(single), _quantities(two_devices))
  _train(double, data, cache, processes=2)
  # One checkpoint tree for both processes, written once.
  assert sorted(os.listdir(double / "checkpoints")) == sorted(os.listdir(single / "checkpoints"))
  _assert_same_run(double, single, allowed)
  assert _records(single)[-1]["train_loss"] < _records(single)[0]["train_loss"]

  # Interrupted after epoch 1: the last checkpoint and its record are gone.
  records = _records(double)
  shutil.rmtree(double / "checkpoints" / str(records[-1]["step"]))
  with open(double / "metrics.jsonl", "w") as f:
    f.write(json.dumps(records[0]) + "\n")
  _train(double, data, cache, processes=2)
  _assert_same_run(double, single, allowed)
