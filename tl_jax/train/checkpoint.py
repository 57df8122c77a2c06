"""Checkpoints of a run: Orbax writes them, this module decides which ones to trust.

After Orbax commits step ``N`` (``checkpoints/N/`` with its ``commit_success.txt``
and ``_CHECKPOINT_METADATA`` markers), process 0 writes ``checkpoints/N/tl_jax_manifest.json``:
the size and sha256 of every file of the step and its metrics. Only then does
the step count. A step *verifies* when it has both markers and its files match
the manifest; only verified steps are restored, are ``latest`` or ``best``, and
are ever deleted by retention (the latest ``keep`` verified steps and the best
one stay). A step that fails is reported with the file at fault and never
deleted: the writer moves it to ``<workdir>/rejected_checkpoints/`` so that
training can save that step again.

Readers (evaluation, prediction) of a run that is still training read the same way and write
nothing: no Orbax manager (it would create folders), no lock. A step the writer has not finished
does not verify yet and is skipped; one its retention deletes while read is resolved again
(``read``).
"""

from collections.abc import Callable
import hashlib
import json
import logging
import os
import shutil
import time
from typing import Any

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import orbax.checkpoint as ocp

from tl_jax.errors import CorruptCheckpoint

# What a train state holds besides the optimizer state (``restore(weights_only=True)``).
_WEIGHTS = ("step", "params", "batch_stats", "ema_params", "ema_batch_stats")

log = logging.getLogger(__name__)

MANIFEST = "tl_jax_manifest.json"
MARKERS = ("commit_success.txt", "_CHECKPOINT_METADATA")  # written by Orbax when a save commits


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(step_dir: str) -> list[str]:
  """Paths of the step's files relative to ``step_dir``, sorted, the manifest left out."""
  out = []
  for root, _, names in os.walk(step_dir):
    out += [os.path.relpath(os.path.join(root, n), step_dir) for n in names]
  return sorted(p for p in out if p != MANIFEST)


def write_manifest(step_dir: str, metrics: dict[str, float], window: dict[str, list] | None = None) -> None:
  """Records every file's size and sha256 (atomically: a half-written manifest never exists), the
  step's ``metrics`` record ({} for a step saved without evaluation) and its ``window``."""
  files = {p: {"size": os.path.getsize(os.path.join(step_dir, p)), "sha256": _sha256(os.path.join(step_dir, p))}
           for p in _files(step_dir)}
  path = os.path.join(step_dir, MANIFEST)
  with open(path + ".tmp", "w") as f:
    json.dump({"files": files, "metrics": metrics} | ({"window": window} if window else {}), f, indent=1)
  os.replace(path + ".tmp", path)


def verify(step_dir: str) -> str | None:
  """None if ``step_dir`` is a complete, intact checkpoint; else why not, naming the file."""
  try:
    return _verify(step_dir)
  except FileNotFoundError as e:  # deleted under a reader by the writer's retention
    return f"{os.path.relpath(e.filename or step_dir, step_dir)} vanished while read (deleted by the run's retention)"


def _verify(step_dir: str) -> str | None:
  for marker in MARKERS:
    if not os.path.exists(os.path.join(step_dir, marker)):
      return f"no Orbax commit marker {marker} (the save never committed)"
  try:
    with open(os.path.join(step_dir, MANIFEST)) as f:
      files = json.load(f)["files"]
  except FileNotFoundError:
    return f"no {MANIFEST} (the save did not finish, or an older tl_jax wrote it)"
  except (ValueError, KeyError) as e:
    return f"{MANIFEST} is unreadable ({e})"
  for rel, want in files.items():
    path = os.path.join(step_dir, rel)
    if not os.path.exists(path):
      return f"{rel} is missing"
    size = os.path.getsize(path)
    if size != want["size"]:
      return f"{rel} has {size} bytes, {want['size']} when saved (truncated or overwritten)"
    if _sha256(path) != want["sha256"]:
      return f"{rel} does not match its sha256 (corrupted since it was saved)"
  return None


class Checkpoints:
  """Checkpoints of a run under ``<workdir>/checkpoints``.

  Keeps the ``keep`` latest verified steps and the best verified step by
  ``metric`` (higher is better), whatever its age.
  """

  def __init__(self, workdir: str, *, keep: int = 2, metric: str = "val_accuracy"):
    self.workdir, self.keep, self.metric = os.path.abspath(workdir), keep, metric
    self.directory = os.path.join(self.workdir, "checkpoints")
    self._checked: dict[int, tuple[float, str | None]] = {}  # step -> (manifest mtime, verify())
    self._manager = None

  @property
  def manager(self) -> ocp.CheckpointManager:
    """The writer's Orbax manager, made on first use: a reader never makes one (it creates folders)."""
    if self._manager is None:
      # No Orbax retention or best-tracking: it would count unverified steps.
      self._manager = ocp.CheckpointManager(
          self.directory, options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False))
    return self._manager

  def _dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def _on_disk(self) -> list[int]:
    if not os.path.isdir(self.directory):
      return []
    return sorted(int(n) for n in os.listdir(self.directory) if n.isdigit())

  def problem(self, step: int) -> str | None:
    """Why step ``step`` is not to be trusted (None: it verifies). Cached until its manifest changes."""
    manifest = os.path.join(self._dir(step), MANIFEST)
    mtime = os.path.getmtime(manifest) if os.path.exists(manifest) else -1.0
    if self._checked.get(step, (None,))[0] != mtime:
      self._checked[step] = (mtime, verify(self._dir(step)))
    return self._checked[step][1]

  def steps(self) -> list[int]:
    """Verified steps, oldest first."""
    return [s for s in self._on_disk() if self.problem(s) is None]

  def rejected(self) -> dict[int, str]:
    """Step directories that fail verification -> why."""
    return {s: p for s in self._on_disk() if (p := self.problem(s)) is not None}

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def best_step(self) -> int | None:
    """The verified step with the highest ``metric`` among the evaluated ones (ties: the later)."""
    scored = [(m[self.metric], s) for s in self.steps() if self.metric in (m := self._manifest(s).get("metrics", {}))]
    return max(scored)[1] if scored else None

  def _manifest(self, step: int) -> dict[str, Any]:
    try:
      with open(os.path.join(self._dir(step), MANIFEST)) as f:
        return json.load(f)
    except FileNotFoundError:  # deleted by the writer's retention since it verified
      return {}

  def metrics(self, step: int) -> dict[str, float]:
    """Step ``step``'s ``metrics.jsonl`` record; {} if it was saved without an evaluation."""
    return self._manifest(step).get("metrics", {})

  def window(self, step: int) -> dict[str, list] | None:
    """The step metrics since the last evaluation, kept with a step saved without one (``window``)."""
    return self._manifest(step).get("window")

  def read(self, which: str | int, restore: Callable[[int], Any]) -> tuple[int, Any]:
    """``(step, restore(step))`` for the step ``which`` resolves to, for readers of a run that may
    be training: if the writer's retention deletes ``latest`` or ``best`` while it is read,
    resolves again (a newer step then exists); a numbered step deleted meanwhile is an error."""
    for attempt in range(5):
      step = self.resolve(which)
      try:
        return step, restore(step)
      except Exception:
        if os.path.isdir(self._dir(step)):
          raise
        if str(which) not in ("latest", "best") or attempt == 4:
          raise FileNotFoundError(f"Checkpoint {self._dir(step)} was deleted while read: the run keeps "
                                  f"only its latest {self.keep} and its best. Use --checkpoint latest or best.") from None
        log.info("Checkpoint %d was deleted by the running writer while read; resolving %r again.", step, which)
    raise AssertionError("unreachable")

  def resolve(self, which: str | int) -> int:
    """``'latest'``, ``'best'`` or a step number -> a verified step.

    Raises:
      CorruptCheckpoint: the step exists but fails verification (names the file).
      FileNotFoundError: there is no such step.
    """
    if str(which) in ("latest", "best"):
      step = self.latest_step() if which == "latest" else self.best_step()
      for skipped, why in self.rejected().items():
        log.warning("Checkpoint %d skipped: %s.", skipped, why)
    else:
      step = int(which)
      if step in self._on_disk() and self.problem(step):
        raise CorruptCheckpoint(f"Checkpoint {self._dir(step)} is not usable: {self.problem(step)}. "
                                f"Verified checkpoints: {self.steps() or 'none'}.")
    if step is None or step not in self.steps():
      skipped = "; ".join(f"{s}: {p}" for s, p in self.rejected().items())
      raise FileNotFoundError(f"No checkpoint {which!r} in {self.directory}; verified steps: "
                              f"{self.steps() or 'none'}" + (f" (skipped {skipped})" if skipped else "") + ".")
    return step

  def set_aside_rejected(self) -> dict[int, str]:
    """Writer only: moves every step that fails verification to ``<workdir>/rejected_checkpoints/``
    (never deletes), logging why; returns them. Training can then save those steps again."""
    rejected = self.rejected()
    if rejected and jax.process_index() == 0:
      aside = os.path.join(self.workdir, "rejected_checkpoints")
      os.makedirs(aside, exist_ok=True)
      for step, why in rejected.items():
        dest = os.path.join(aside, f"{step}.{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(self._dir(step), dest)
        log.warning("Checkpoint %d skipped: %s. Moved to %s.", step, why, dest)
    if rejected and jax.process_count() > 1:
      multihost_utils.sync_global_devices("tl_jax: rejected checkpoints set aside")
    self._checked.clear()
    self.manager.reload()
    return rejected

  def save(self, step: int, state: Any, metrics: dict[str, float], window: dict[str, list] | None = None) -> None:
    """Saves ``step`` with its ``metrics`` record (or, saved without evaluation, {} and the
    ``window`` of step metrics since the last one); it counts once its manifest is written.
    Then applies retention."""
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()
    if jax.process_index() == 0:
      write_manifest(self._dir(step), metrics, window)
    if jax.process_count() > 1:  # every process sees the manifest before going on
      multihost_utils.sync_global_devices(f"tl_jax: checkpoint {step} committed")
    self._apply_retention()

  def _apply_retention(self) -> None:
    steps = self.steps()
    keep = set(steps[-self.keep:]) | {self.best_step()}
    if jax.process_index() == 0:  # deletes that a kill interrupted
      for name in os.listdir(self.directory):
        if name.startswith(".deleting-"):
          shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    for step in steps:
      if step not in keep and jax.process_index() == 0:
        # Renamed first: a kill during the delete leaves no half step that looks like a checkpoint.
        trash = os.path.join(self.directory, f".deleting-{step}")
        os.replace(self._dir(step), trash)
        shutil.rmtree(trash)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("tl_jax: retention applied")
    self.manager.reload()

  def restore(self, step: int, abstract_state: Any, *, weights_only: bool = False) -> Any:
    """Restores verified ``step`` into the structure (and shardings) of ``abstract_state``.

    With ``weights_only`` the optimizer state is neither read nor checked (``opt_state`` comes
    back as in ``abstract_state``): an evaluation needs none, and a checkpoint whose optimizer
    had another shape (an older tl_jax) still evaluates.

    Raises:
      CorruptCheckpoint: ``step`` fails verification (its files are left as they are).
    """
    # Verified again, not from the cache: the files may have changed since.
    problem = verify(self._dir(step)) if step in self._on_disk() else "no such step directory"
    if problem:
      raise CorruptCheckpoint(f"Checkpoint {self._dir(step)} is not usable: {problem}.")
    if not weights_only:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    # Orbax's partial restore reads the named subtrees of the step's item and nothing else.
    target = {k: getattr(abstract_state, k) for k in _WEIGHTS if getattr(abstract_state, k, None) is not None}
    got = ocp.PyTreeCheckpointer().restore(
        os.path.join(self._dir(step), "default"),
        args=ocp.args.PyTreeRestore(item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                                    partial_restore=True))
    put = lambda x, a: jax.device_put(x, a.sharding) if getattr(a, "sharding", None) is not None else jnp.asarray(x)
    return abstract_state.replace(**jax.tree.map(put, got, target))

