"""The grain training loader: seeded epochs, exact resume, read-ahead that never reorders, host shards."""

import numpy as np
import pytest

from tl_jax import data
from tl_jax.data import pipeline

N, BATCH, SEED = 103, 10, 7
SPLIT = data.Split(np.arange(N, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3),
                   np.arange(N, dtype=np.int32))


def take(start, count, **kwargs):
  return [b["label"] for b in pipeline.train_batches(SPLIT, BATCH, SEED, start, num_steps=count, **kwargs)]


def test_epochs_are_seeded_permutations():
  per_epoch = N // BATCH  # 10 batches; 3 examples dropped per epoch
  labels = take(0, 3 * per_epoch)
  for e in range(3):
    epoch = np.concatenate(labels[e * per_epoch:(e + 1) * per_epoch])
    assert len(set(epoch)) == per_epoch * BATCH  # no repeats within an epoch
  assert not np.array_equal(np.concatenate(labels[:per_epoch]), np.concatenate(labels[per_epoch:2 * per_epoch]))
  batch = next(pipeline.train_batches(SPLIT, BATCH, SEED))
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])  # images travel with labels
  other_seed = [b["label"] for b in pipeline.train_batches(SPLIT, BATCH, SEED + 1, num_steps=5)]
  assert not np.array_equal(take(0, 5), other_seed)


def test_resumed_run_sees_the_uninterrupted_batches():
  uninterrupted = take(0, 25)
  for start in (1, 9, 10, 17):  # within and across epoch boundaries
    resumed = take(start, 25 - start)
    assert all(np.array_equal(a, b) for a, b in zip(uninterrupted[start:], resumed, strict=True))
  # The trainer's endless iterator is the same stream.
  endless = data.train_batches(SPLIT, BATCH, SEED, 13)
  assert all(np.array_equal(next(endless)["label"], b) for b in uninterrupted[13:])


def test_read_ahead_never_changes_the_order():
  reference = take(3, 12)
  threads = take(3, 12, loading=pipeline.Loading(threads=4, prefetch=8))
  workers = take(3, 12, loading=pipeline.Loading(workers=2))
  for other in (threads, workers):
    assert all(np.array_equal(a, b) for a, b in zip(reference, other, strict=True))


def test_host_shards_partition_the_global_batch():
  whole = take(0, 12)
  shards = [take(0, 12, shard=(host, 2)) for host in range(2)]
  for step, batch in enumerate(whole):
    assert len(shards[0][step]) == BATCH // 2
    np.testing.assert_array_equal(np.concatenate([shards[0][step], shards[1][step]]), batch)


def test_bad_sizes_are_explained():
  with pytest.raises(ValueError, match="Batch size 200 exceeds the 103 training examples"):
    pipeline.train_batches(SPLIT, 200, SEED)
  with pytest.raises(ValueError, match="not divisible by the 3 hosts"):
    pipeline.train_batches(SPLIT, BATCH, SEED, shard=(0, 3))


def test_device_prefetch_keeps_order_resume_and_sharding():
  import jax

  from tl_jax import sharding

  mesh = sharding.make_mesh()
  for start in (0, 9):  # fresh and resumed
    want = take(start, 14 - start)
    fed = pipeline.DevicePrefetch(pipeline.train_batches(SPLIT, BATCH, SEED, start, num_steps=14 - start), mesh)
    got = list(fed)
    assert all(isinstance(b["label"], jax.Array) and b["label"].sharding == sharding.batch_sharding(mesh)
               for b in got)
    assert all(np.array_equal(a, b["label"]) for a, b in zip(want, got, strict=True))
    stats = fed.take_stats()
    assert stats["input_wait_ms"] >= 0 and stats["train_images_per_s"] > 0
    assert fed.take_stats() == {"input_wait_ms": 0.0, "train_images_per_s": 0.0}  # reset


def test_device_prefetch_reads_two_batches_ahead():
  from tl_jax import sharding

  pulled = []

  def source():
    for step in range(6):
      pulled.append(step)
      yield {"label": np.full((BATCH,), step, np.int32)}

  fed = pipeline.DevicePrefetch(source(), sharding.make_mesh(), size=2)
  assert int(next(fed)["label"][0]) == 0 and pulled == [0, 1, 2]  # 1 and 2 are on their way
  assert int(next(fed)["label"][0]) == 1 and pulled == [0, 1, 2, 3]
