"""Checkpoint integrity: every kind of checkpoint file garbled or truncated, and a step without
Orbax's commit markers, is never restored, never latest/best, never deletes a good one."""

import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax.errors import CorruptCheckpoint
from tl_jax.train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _state(step):
  return {"w": jnp.arange(2000, dtype=jnp.float32) + step, "b": {"c": jnp.full((3, 3), float(step))}}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A workdir with verified steps 1, 2, 3 (val_accuracy 0.5, 0.9, 0.7; keep=3)."""
  workdir = str(tmp_path_factory.mktemp("pristine"))
  ckpts = checkpoint.Checkpoints(workdir, keep=3)
  for step, acc in ((1, 0.5), (2, 0.9), (3, 0.7)):
    ckpts.save(step, _state(step), {"val_accuracy": acc})
  return workdir


def _copy(pristine, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(pristine, workdir)
  return workdir


def _kinds(step_dir):
  """One file of each kind in a step directory (data files: the largest, where the arrays are)."""
  files = checkpoint._files(step_dir) + [checkpoint.MANIFEST]
  kinds = {}
  for rel in sorted(files, key=lambda p: -os.path.getsize(os.path.join(step_dir, p))):
    kind = "data" if "/d/" in "/" + rel else rel
    kinds.setdefault(kind, rel)
  return sorted(kinds.values())


def _garble(path):
  data = bytearray(open(path, "rb").read())
  at = len(data) // 2
  data[at:at + 64] = bytes((b ^ 0x5A) for b in data[at:at + 64]) or b"x"
  open(path, "wb").write(bytes(data))


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def test_pristine_steps_verify(pristine):
  ckpts = checkpoint.Checkpoints(pristine, keep=3)
  assert ckpts.steps() == [1, 2, 3] and ckpts.latest_step() == 3 and ckpts.best_step() == 2
  assert ckpts.metrics(2) == {"val_accuracy": 0.9}
  restored = ckpts.restore(3, _state(0))
  np.testing.assert_array_equal(restored["w"], _state(3)["w"])
  # Kinds covered below: Orbax's markers and metadata, the array store, tl_jax's manifest.
  kinds = _kinds(os.path.join(pristine, "checkpoints", "3"))
  assert {"commit_success.txt", "_CHECKPOINT_METADATA", "default/_METADATA", checkpoint.MANIFEST} <= set(kinds)
  assert any("/d/" in "/" + k for k in kinds), kinds


@pytest.mark.parametrize("damage", [_garble, _truncate])
def test_each_kind_of_damaged_file_is_caught(pristine, tmp_path, damage):
  step_dir = os.path.join(pristine, "checkpoints", "3")
  for i, rel in enumerate(_kinds(step_dir)):
    workdir = _copy(pristine, tmp_path / str(i))
    bad_dir = os.path.join(workdir, "checkpoints", "3")
    damage(os.path.join(bad_dir, rel))
    ckpts = checkpoint.Checkpoints(workdir, keep=3)
    problem = ckpts.problem(3)
    assert problem is not None and (rel in problem or checkpoint.MANIFEST in problem), (rel, problem)
    # Never latest or best; the newest good one is.
    assert ckpts.steps() == [1, 2] and ckpts.latest_step() == 2 and ckpts.best_step() == 2
    assert ckpts.resolve("latest") == 2
    with pytest.raises(CorruptCheckpoint, match=f"checkpoints/3 is not usable: .*{rel if rel != checkpoint.MANIFEST else ''}"):
      ckpts.resolve(3)
    with pytest.raises(CorruptCheckpoint, match="checkpoints/3"):
      ckpts.restore(3, _state(0))
    # Nothing is deleted by a failed verification, and the bad step blocks no save.
    assert os.path.exists(os.path.join(bad_dir, rel))


def test_step_without_markers_is_skipped_and_retention_keeps_good_ones(pristine, tmp_path):
  workdir = _copy(pristine, tmp_path)
  ck_dir = os.path.join(workdir, "checkpoints")
  # A newer step directory that never committed (a copy without Orbax's markers).
  shutil.copytree(os.path.join(ck_dir, "3"), os.path.join(ck_dir, "9"))
  for marker in checkpoint.MARKERS:
    os.remove(os.path.join(ck_dir, "9", marker))
  ckpts = checkpoint.Checkpoints(workdir, keep=2)
  assert ckpts.latest_step() == 3 and "commit marker" in ckpts.rejected()[9]
  # Saving more steps (keep 2 + best): retention looks at verified steps only.
  ckpts.save(4, _state(4), {"val_accuracy": 0.1})
  assert ckpts.steps() == [2, 3, 4]  # 1 dropped; best (2) and the latest two kept
  assert os.path.isdir(os.path.join(ck_dir, "9"))  # never deleted
  # The writer moves the bad step aside (not deleted) so that step 9 can be saved again.
  assert list(ckpts.set_aside_rejected()) == [9]
  aside = os.listdir(os.path.join(workdir, "rejected_checkpoints"))
  assert len(aside) == 1 and aside[0].startswith("9.")
  assert os.path.exists(os.path.join(workdir, "rejected_checkpoints", aside[0], "default", "_METADATA"))
  ckpts.save(9, _state(9), {"val_accuracy": 0.2})
  assert ckpts.steps() == [2, 4, 9] and ckpts.latest_step() == 9


def test_evaluate_script_names_the_bad_checkpoint_and_file(pristine, tmp_path, quickstart_config):
  """``scripts/evaluate.py --checkpoint X`` for a corrupted X: exit 1, last line names X and the file."""
  workdir = _copy(pristine, tmp_path)
  rel = next(k for k in _kinds(os.path.join(workdir, "checkpoints", "3")) if "/d/" in "/" + k)
  _garble(os.path.join(workdir, "checkpoints", "3", rel))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(quickstart_config.to_json())
  out = subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={workdir}", "--checkpoint=3"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 1, out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: Checkpoint ") and "checkpoints/3" in last and rel in last, out.stderr
