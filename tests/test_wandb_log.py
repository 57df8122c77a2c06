"""Weights & Biases logging (``log.wandb``, ``tl_jax.train.wandb_log``), offline: a tiny run's W&B
history holds TensorBoard's scalars (same tags, steps and values), and a resumed run continues
the same W&B run.

The offline run is read from its own ``.wandb`` file: a LevelDB-style log of wandb's protobuf
``Record``s (wandb 0.31 ships no Python reader for it), parsed with wandb's own protobuf classes.
"""

import glob
import json
import os
import struct
import sys
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests import tiny
from tl_jax.train import trainer, wandb_log

wandb = pytest.importorskip("wandb")

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

_BLOCK, _HEADER = 32768, 7  # the log's block size; its record header: crc32, length, type


def _records(path, wait_s=60.0):
  """The ``Record``s of a .wandb file, in order, once the file holds its closing ``exit`` record.

  ``run.finish()`` may return before wandb's service has written the file out (seen under a loaded
  CI machine: a resumed run's file without its ``run`` record yet), so an incomplete file is read
  again for up to ``wait_s`` seconds.
  """
  deadline = time.monotonic() + wait_s
  while True:
    records = list(_parse(path))
    if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
      return records
    time.sleep(0.5)


def _parse(path):
  from wandb.proto import wandb_internal_pb2

  with open(path, "rb") as f:
    data = f.read()
  assert data[:4] == b":W&B", path
  pos, pending = _HEADER, b""  # after the file's own 7-byte header
  while pos + _HEADER <= len(data):
    left = _BLOCK - pos % _BLOCK
    if left < _HEADER:  # a block's tail too short for a header is padding
      pos += left
      continue
    _, n, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
    if n == 0 and kind == 0:
      pos += left
      continue
    if pos + _HEADER + n > len(data):  # a record still being written
      return
    pending += data[pos + _HEADER:pos + _HEADER + n]
    pos += _HEADER + n
    if kind in (1, 4):  # FULL, or the LAST piece of one
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      pending = b""
      yield record


def _offline_runs(wandb_dir):
  return sorted(glob.glob(os.path.join(wandb_dir, "wandb", "offline-run-*", "run-*.wandb")))


def _history(path) -> dict[tuple[str, int], float]:
  """``{(key, step): value}`` of the history rows of one offline run (W&B's own keys left out)."""
  out = {}
  for r in _records(path):
    if r.WhichOneof("record_type") == "history":
      row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
      step = row.pop(wandb_log.STEP)
      out |= {(k, step): v for k, v in row.items() if not k.startswith("_")}
  return out


def _run_ids(path) -> set[str]:
  return {r.run.run_id for r in _records(path) if r.WhichOneof("record_type") == "run"}


def _tensorboard(workdir) -> dict[tuple[str, int], float]:
  acc = EventAccumulator(workdir, size_guidance={"scalars": 0})
  acc.Reload()
  return {(tag, e.step): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}


def test_wandb_logs_tensorboards_scalars_and_a_resume_continues_its_run(tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
  monkeypatch.setenv("WANDB_SILENT", "true")
  os.makedirs(tmp_path / "wb")
  npz = tiny.write_npz(tmp_path / "digits.npz")
  cfg = tiny.config(npz, **{"train.compilation_cache_dir": "", "train.num_steps": 2, "train.log_every_steps": 1,
                            "log.wandb": True, "log.wandb_project": "tl_jax_tests", "log.wandb_name": "tiny"})
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(cfg, workdir)
  (first,) = _offline_runs(tmp_path / "wb")
  tensorboard, logged = _tensorboard(workdir), _history(first)
  # Train scalars at step 1, the evaluation record and val report at 2, test_final/test_best at 2.
  assert {("train/loss", 1), ("lr/head", 1), ("epoch/train_loss", 2), ("val/accuracy", 2),
          ("test_final/accuracy", 2), ("test_best/ece", 2)} <= set(tensorboard)
  assert set(logged) == set(tensorboard)
  for key, value in tensorboard.items():  # TensorBoard keeps float32
    assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
  run_id = wandb_log.run_id(workdir)  # the saved one
  assert _run_ids(first) == {run_id}

  # A rerun resumes the run (its last checkpoint: only the closing tests again) and its W&B run.
  trainer.train_and_evaluate(cfg, workdir)
  runs = _offline_runs(tmp_path / "wb")
  assert len(runs) == 2 and _run_ids(runs[1]) == {run_id}
  assert wandb_log.run_id(workdir) == run_id and os.path.exists(os.path.join(workdir, wandb_log.ID_FILE))
  assert {k for k, _ in _history(runs[1])} >= {"test_final/accuracy", "test_best/accuracy"}


def test_wandb_missing_or_unknown_options_are_clear_errors(tmp_path, monkeypatch):
  assert wandb_log.start(str(tmp_path), {"wandb": False}, {}) is None  # off: wandb is never imported
  with pytest.raises(ValueError, match=r"Unknown log option\(s\) \['wandb_projekt'\]"):
    wandb_log.start(str(tmp_path), {"wandb": True, "wandb_projekt": "x"}, {})
  monkeypatch.setitem(sys.modules, "wandb", None)  # import fails: not installed
  with pytest.raises(ImportError, match="pip install wandb"):
    wandb_log.start(str(tmp_path), {"wandb": True}, {})


def test_a_rerun_may_change_only_where_it_logs_and_caches(tmp_path):
  from tl_jax.train import workdir as workdir_lib

  cfg, workdir = tiny.config(str(tmp_path / "digits.npz")), str(tmp_path / "run")
  workdir_lib.check_config(cfg, workdir)
  cfg.log.update(wandb=True, wandb_name="resumed with W&B")  # turning W&B on for a run that exists
  cfg.train.compilation_cache_dir = str(tmp_path / "another machine's cache")
  workdir_lib.check_config(cfg, workdir)
  cfg.optim.lr *= 2
  with pytest.raises(ValueError, match=r"another config \(differs in: optim/lr\)"):
    workdir_lib.check_config(cfg, workdir)
