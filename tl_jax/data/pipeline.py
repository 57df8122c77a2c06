"""Training batches with ``grain``: seeded shuffling, prefetch, per-host sharding, exact resume.

The pipeline is random-access: batch ``k`` is a pure function of ``(seed, k)``
(epoch ``e``'s order depends only on ``(seed, e)``), so the iterator's whole
state is the step number, which every checkpoint already holds
(``TrainState.step``). A run restored at step ``k`` starts the loader at ``k``
and sees exactly the batches an uninterrupted run would. Grain reads batches
ahead on threads (``ReadOptions``) or worker processes (``mp_prefetch``).
"""

from collections.abc import Iterator
import dataclasses

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
  workers: int = 0  # > 0: that many worker processes (grain mp_prefetch)


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int,
                  shard: tuple[int, int] = (0, 1)) -> np.ndarray:
  """Sorted example indices of this host's part of global batch ``step``.

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
    return {"image": np.asarray(self.images[idx]), "label": np.asarray(self.labels[idx])}


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
  if loading.workers:
    # Grain's workers read absl flags; outside an absl app (tests, notebooks) they are unparsed.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=loading.workers))
  return iter(ds)
