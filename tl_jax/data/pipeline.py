"""Training batches with ``grain``: seeded shuffling, prefetch, per-host sharding, exact resume.

The pipeline is random-access: batch ``k`` is a pure function of ``(seed, k)``
(epoch ``e``'s order depends only on ``(seed, e)``), so the iterator's whole
state is the step number, which every checkpoint already holds
(``TrainState.step``). A run restored at step ``k`` starts the loader at ``k``
and sees exactly the batches an uninterrupted run would. Grain reads batches
ahead on threads (``ReadOptions``) or worker processes (``mp_prefetch``).
"""

import collections
from collections.abc import Iterator
import dataclasses
import os
import time

from absl import flags
import grain
import jax
import numpy as np

from tl_jax import sharding


@dataclasses.dataclass(frozen=True)
class Loading:
  """How batches are read ahead; none of it changes which batches come out."""

  threads: int = 2  # reader threads (numpy gathers release the GIL)
  prefetch: int = 4  # batches buffered ahead of the train step
  workers: int = 0  # > 0: that many worker processes (grain mp_prefetch); 0: threads, or cpus-1 if streamed


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int,
                  shard: tuple[int, int] = (0, 1)) -> np.ndarray:
  """Sorted example indices of this host's part of global batch ``step``.

  Sorted, so a batch's row order carries no randomness: ``data.mixing`` draws
  each row's mixing partner from the step's key rather than by row position.

  Args:
    num_examples: size of the split; the remainder of each epoch is dropped.
    batch_size: the global batch size (all hosts together).
    seed: shuffling seed.
    step: global batch number from the start of training.
    shard: (this host's index, number of hosts); each host takes a contiguous
      slice of the global batch.
  """
  per_epoch = num_examples // batch_size
  if per_epoch == 0:
    raise ValueError(f"Batch size {batch_size} exceeds the {num_examples} training examples.")
  rows = sharding.host_rows(batch_size, shard)
  epoch, i = divmod(step, per_epoch)
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  # Sorted: memory-mapped images are then read in file order.
  return np.sort(order[i * batch_size:(i + 1) * batch_size])[rows]


class _Gather:
  """step -> batch; a picklable class (not a closure) so worker processes can run it."""

  def __init__(self, images, labels, batch_size, seed, shard):
    self.images, self.labels = images, labels
    self.batch_size, self.seed, self.shard = batch_size, seed, shard

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    idx = batch_indices(len(self.labels), self.batch_size, self.seed, step, self.shard)
    # A streamed split decodes here (in a worker process) with its training crop.
    images = self.images.train_batch(idx, self.seed, step) if hasattr(self.images, "train_batch") else self.images[idx]
    return {"image": np.asarray(images), "label": np.asarray(self.labels[idx])}


def train_batches(split, batch_size: int, seed: int, start_step: int = 0, *, num_steps: int | None = None,
                  loading: Loading = Loading(), shard: tuple[int, int] | None = None
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Shuffled batches from ``start_step`` on (endless unless ``num_steps``).

  Args:
    split: anything with ``images`` and ``labels`` arrays (``data.Split``).
    batch_size: global batch size; each host gets ``batch_size / hosts``.
    seed: shuffling seed.
    start_step: the step to resume at (the checkpoint's ``state.step``).
    num_steps: stop after this many batches; None = endless.
    loading: read-ahead settings.
    shard: (host index, host count); None = ``jax.process_index(), jax.process_count()``.
  """
  shard = shard or (jax.process_index(), jax.process_count())
  batch_indices(len(split.labels), batch_size, seed, 0, shard)  # fails early on bad sizes
  stop = start_step + num_steps if num_steps is not None else np.iinfo(np.int64).max
  ds = grain.MapDataset.range(start_step, stop).map(_Gather(split.images, split.labels, batch_size, seed, shard))
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=loading.threads, prefetch_buffer_size=loading.prefetch))
  workers = loading.workers
  if not workers and getattr(split.images, "decodes", False):  # decoding files needs processes
    workers = max(1, min(8, (os.cpu_count() or 2) - 1))
  if workers:
    # Grain's workers read absl flags; outside an absl app (tests, notebooks) they are unparsed.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iter(ds)


class DevicePrefetch:
  """Iterator that puts batches on the devices ``size`` steps ahead of their use.

  Each ``next()`` hands out the oldest placed batch and starts the transfer of
  a new one (``sharding.put_batch``: sharded over the mesh's ``data`` axis, as
  the train step expects). Transfers are asynchronous, so the next batch's
  copy overlaps the step that runs now. It changes no order: batch ``k`` is
  still the source's ``k``-th, and a resumed run still starts its source at
  the checkpoint's step (the ``size`` batches read ahead at the end of a run
  are dropped, never saved).

  It also times the loop: ``take_stats()`` returns, since its previous call,
  the mean host time per step spent waiting for input (``input_wait_ms``; it
  stalls an accelerator only where it exceeds the step time) and the loop's
  ``train_images_per_s``.
  """

  def __init__(self, batches: Iterator[dict[str, np.ndarray]], mesh, size: int = 2):
    self._source, self._mesh, self._buffer = batches, mesh, collections.deque()
    self._size = size
    self._wait, self._steps, self._images, self._since = 0.0, 0, 0, None

  def __iter__(self):
    return self

  def _fill(self) -> None:
    while len(self._buffer) < self._size:
      batch = next(self._source, None)
      if batch is None:
        return
      self._buffer.append(sharding.put_batch(batch, self._mesh))

  def __next__(self) -> dict[str, jax.Array]:
    t = time.perf_counter()
    self._since = self._since or t
    self._fill()
    if not self._buffer:
      raise StopIteration
    batch = self._buffer.popleft()
    self._fill()  # the following batches start their transfer now, before this step runs
    self._wait += time.perf_counter() - t
    self._steps += 1
    self._images += len(next(iter(batch.values())))
    return batch

  def take_stats(self) -> dict[str, float]:
    """``input_wait_ms`` (mean per step) and ``train_images_per_s`` since the last call; resets them.

    Call it once the steps' results are on the host (e.g. after
    ``jax.device_get`` of their metrics), so the time covers their compute.
    """
    elapsed = time.perf_counter() - self._since if self._since else 0.0
    stats = {"input_wait_ms": round(1e3 * self._wait / max(self._steps, 1), 3),
             "train_images_per_s": round(self._images / elapsed, 2) if elapsed else 0.0}
    self._wait, self._steps, self._images, self._since = 0.0, 0, 0, None
    return stats
