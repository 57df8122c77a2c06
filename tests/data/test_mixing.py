"""Mixup / CutMix against timm's semantics, written out here in numpy (timm does not load).

The batch is mixed with a shuffled copy of itself (timm flips a shuffled batch), so the
partner of row i varies with the key. ``LABELS`` are the row numbers: ``labels_b`` of a
mixed batch is then each row's partner, which the tests below read back as ``PARTNER``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tl_jax.data import mixing, pipeline
from tl_jax.train import steps

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 20, 28, 3)).astype(np.float32)  # non-square
LABELS = np.arange(6, dtype=np.int32)
# mix() takes a dict; the jitted wrapper passes a hashable tuple of its items. One call mixes
# the batch under many keys at once.
_mix = jax.jit(jax.vmap(lambda k, x, y, cfg: mixing.mix(k, x, y, dict(cfg)), in_axes=(0, None, None, None)),
               static_argnums=3)


def mix_many(n, **cfg):
  """The batch mixed under keys 0..n-1, as a list of ``Mixed``."""
  out = jax.device_get(_mix(jax.vmap(jax.random.key)(jnp.arange(n)), IMAGES, LABELS, tuple(sorted(cfg.items()))))
  return [mixing.Mixed(*(x[i] for x in out)) for i in range(n)]


def partner(m):
  """Row i of the batch was mixed with row ``partner(m)[i]`` (LABELS are the row numbers)."""
  return np.asarray(m.labels_b)


def test_mixup_is_the_convex_combination_with_the_partners():
  lams = []
  for m in mix_many(200, alpha=0.4):
    # Partners were the reverse rows before the fix; now they are read back from labels_b.
    np.testing.assert_allclose(m.images, m.lam * IMAGES + (1 - m.lam) * IMAGES[partner(m)], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(m.labels, LABELS)
    lams.append(float(m.lam))
  # One lambda per batch, Beta(alpha, alpha)-distributed.
  assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3


def test_cutmix_box_and_area_corrected_lambda():
  for m in mix_many(50, cutmix_alpha=1.0):
    other = IMAGES[partner(m)]  # was IMAGES[::-1]: partners are now a shuffled pairing
    from_other = np.all(m.images == other, axis=(0, 3)) & ~np.all(IMAGES == other, axis=(0, 3))
    rows, cols = np.nonzero(from_other)
    if rows.size:  # a rectangle, the same for every image
      assert from_other[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
      assert np.all((m.images == other) | (m.images == IMAGES))
    # correct_lam: lam is exactly the share of pixels that kept the image's own label.
    assert float(m.lam) == pytest.approx(1 - from_other.mean(), abs=1e-6)


def test_cutmix_box_is_timms_rand_bbox():
  # timm: cut = int(H * sqrt(1 - lam)); centre uniform; clipped [c - cut // 2, c + cut // 2).
  lam, h, w = 0.64, 20, 28
  sizes = set()
  boxes = jax.vmap(lambda k: jnp.stack(mixing.cutmix_box(k, lam, h, w)))(jax.vmap(jax.random.key)(jnp.arange(100)))
  for top, bottom, left, right in np.asarray(boxes).tolist():
    cut_h, cut_w = int(h * np.sqrt(1 - lam)), int(w * np.sqrt(1 - lam))
    assert 0 <= top <= bottom <= h and 0 <= left <= right <= w
    assert bottom - top <= 2 * (cut_h // 2) and right - left <= 2 * (cut_w // 2)
    sizes.add((bottom - top, right - left))
  assert (2 * (int(h * 0.6) // 2), 2 * (int(w * 0.6) // 2)) in sizes  # unclipped boxes occur


def test_switch_and_apply_probabilities():
  kinds = []
  for m in mix_many(300, alpha=1.0, cutmix_alpha=1.0, switch_prob=0.3, prob=0.6):
    if float(m.lam) == 1.0:
      kinds.append("none")
    elif np.all((m.images == IMAGES) | (m.images == IMAGES[partner(m)])):
      kinds.append("cutmix")
    else:
      kinds.append("mixup")
  frac = {k: kinds.count(k) / len(kinds) for k in ("none", "cutmix", "mixup")}
  assert frac["none"] == pytest.approx(0.4, abs=0.09)
  assert frac["cutmix"] == pytest.approx(0.6 * 0.3, abs=0.07)
  assert mixing.from_config(dict(alpha=0.0, cutmix_alpha=0.0)) is None
  m = mix_many(1, alpha=1.0, prob=0.0)[0]
  assert float(m.lam) == 1.0 and np.array_equal(m.images, IMAGES)


def test_loss_is_timms_soft_target_cross_entropy_with_smoothing():
  logits = RNG.normal(size=(6, 6)).astype(np.float32)
  lam, smoothing, k = 0.3, 0.1, 6
  # timm's mixup_target + SoftTargetCrossEntropy.
  off, on = smoothing / k, 1 - smoothing + smoothing / k
  one_hot = lambda y: np.where(np.eye(k)[y] > 0, on, off)
  target = lam * one_hot(LABELS) + (1 - lam) * one_hot(LABELS[::-1])
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want = (-target * logp).sum(-1).mean()
  batch = mixing.Mixed(IMAGES, jnp.asarray(LABELS), jnp.asarray(LABELS[::-1]), jnp.float32(lam))
  got = mixing.loss(lambda lg, y: steps.cross_entropy(lg, y, smoothing), jnp.asarray(logits), batch)
  assert float(got) == pytest.approx(want, rel=1e-5)
  np.testing.assert_array_equal(mixing.dominant_labels(batch), LABELS[::-1])


def test_partners_of_class_sorted_batches_spread_over_all_classes():
  # Folder data stored class by class (10 classes x 100 images), 200 batches of 32 from the
  # pipeline, whose indices come sorted: pairing row i with row N-1-i gave class 0 only
  # classes 6-9 as partners ([0 0 0 0 0 0 2 29 150 454]). Partners drawn from a shuffled batch
  # must be what a shuffled batch gives: row c of the table close to its expectation.
  labels, n = np.repeat(np.arange(10, dtype=np.int32), 100), 32
  ys = np.stack([labels[pipeline.batch_indices(1000, n, 0, step)] for step in range(200)])
  assert all((np.diff(y) >= 0).all() for y in ys)  # class-sorted, as the bug needs
  mix = jax.jit(jax.vmap(lambda k, y: mixing.mix(k, jnp.zeros((n, 2, 2, 3)), y, dict(alpha=1.0)).labels_b))
  ys_b = np.asarray(mix(jax.vmap(jax.random.key)(jnp.arange(200)), ys))
  counts = np.zeros((10, 10), int)
  np.add.at(counts, (ys.ravel(), ys_b.ravel()), 1)
  # A shuffled batch's expectation: each row's partner is uniform over the other n-1 rows.
  per_batch = np.stack([np.bincount(y, minlength=10) for y in ys])
  expected = np.einsum("bc,bd->cd", per_batch, per_batch) - np.diag(per_batch.sum(0))
  expected = expected / (n - 1)
  np.testing.assert_array_equal(counts, counts.T)  # pairs: c with d as often as d with c
  assert (counts >= 0.5 * expected).all(), counts[0]
  for c in range(10):
    assert stats.chisquare(counts[c], expected[c] * counts[c].sum() / expected[c].sum()).pvalue > 1e-3, counts[c]


@pytest.mark.parametrize("n", [6, 7])
def test_partners_are_timms_flip_of_a_shuffled_batch(n):
  # timm flips the shuffled batch: row perm[j] meets row perm[n-1-j]. The pairing is an
  # involution (the middle row of an odd batch keeps itself, lam * x + (1 - lam) * x = x) and
  # uniform over the pairings: for 6 rows each of the 15 perfect matchings about 1 in 15 (the
  # reverse pairing was all of them).
  matchings = 15 if n == 6 else 7 * 15  # 5!! ; 7 choices of the lone row x 5!!
  images, labels = np.zeros((n, 1, 1, 3), np.float32), np.arange(n, dtype=np.int32)
  out = jax.device_get(_mix(jax.vmap(jax.random.key)(jnp.arange(30 * matchings)), images, labels,
                            tuple(sorted(dict(alpha=1.0).items()))))
  seen = []
  for p in out.labels_b:
    np.testing.assert_array_equal(p[p], np.arange(n))
    assert (p == np.arange(n)).sum() == n % 2
    seen.append(tuple(p))
  counts = np.unique(np.array(seen), axis=0, return_counts=True)[1]
  assert len(counts) == matchings
  assert stats.chisquare(np.r_[counts, np.zeros(matchings - len(counts))]).pvalue > 1e-3
  assert seen.count(tuple(range(n - 1, -1, -1))) < 0.2 * len(seen)


def _timm_order(p):
  """A shuffle ``perm`` whose flip is the pairing ``p``: ``perm[j]`` and ``perm[n-1-j]`` are partners."""
  first = [i for i in range(len(p)) if i < p[i]]
  lone = [i for i in range(len(p)) if i == p[i]]
  return np.array(first + lone + [p[i] for i in first[::-1]])


@pytest.mark.parametrize("cfg", [dict(alpha=0.4), dict(cutmix_alpha=1.0)])
def test_batch_and_loss_are_timms_mixup_of_the_shuffled_batch(cfg):
  # timm (mode="batch"): x_s = x[perm]; x_s = lam * x_s + (1 - lam) * x_s.flip(0) (or the box
  # pasted from x_s.flip(0)); target = lam * onehot(y_s) + (1 - lam) * onehot(y_s.flip(0));
  # loss = SoftTargetCrossEntropy(logits_s, target). Our rows stay in place (the data sharding's
  # layout); the same batch read in the order perm is timm's.
  smoothing, k = 0.1, 6
  logits = RNG.normal(size=(6, k)).astype(np.float32)
  classes = np.array([2, 0, 2, 5, 1, 0], np.int32)  # the loss's labels: repeats, one class absent
  off, on = smoothing / k, 1 - smoothing + smoothing / k
  one_hot = lambda y: np.where(np.eye(k)[y] > 0, on, off)
  logp = lambda lg: lg - np.log(np.exp(lg).sum(-1, keepdims=True))
  for m in mix_many(20, **cfg):
    lam, perm = float(m.lam), _timm_order(partner(m))
    x_s = IMAGES[perm]
    if "alpha" in cfg:
      np.testing.assert_allclose(m.images[perm], lam * x_s + (1 - lam) * x_s[::-1], rtol=1e-5, atol=1e-3)
    else:
      assert np.all((m.images[perm] == x_s) | (m.images[perm] == x_s[::-1]))
    y_s = classes[perm]
    target = lam * one_hot(y_s) + (1 - lam) * one_hot(y_s[::-1])
    want = (-target * logp(logits[perm])).sum(-1).mean()
    batch = mixing.Mixed(m.images, jnp.asarray(classes), jnp.asarray(classes[partner(m)]), m.lam)
    got = mixing.loss(lambda lg, y: steps.cross_entropy(lg, y, smoothing), jnp.asarray(logits), batch)
    assert float(got) == pytest.approx(want, rel=1e-5)
    # lam * CE(y) + (1 - lam) * CE(y_partner), written out: the same number.
    ce = lambda y: (-one_hot(y) * logp(logits)).sum(-1).mean()
    assert lam * ce(classes) + (1 - lam) * ce(classes[partner(m)]) == pytest.approx(want, rel=1e-5)


_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from tl_jax import sharding
from tl_jax.data import mixing
mesh = sharding.make_mesh()
assert mesh.shape["data"] == 4
rng = np.random.default_rng(0)
x, y = rng.integers(0, 256, (8, 12, 12, 3)).astype(np.uint8), np.arange(8, dtype=np.int32)
fn = jax.jit(lambda k, x, y: mixing.mix(k, x, y, dict(alpha=0.4, cutmix_alpha=1.0)))
reversed_ = 0
for seed in range(6):
  key = jax.random.key(seed)
  whole = jax.device_get(fn(key, x, y))
  placed = sharding.put_batch({"x": x, "y": y}, mesh)
  split = fn(sharding.replicate(key, mesh), placed["x"], placed["y"])
  assert split.images.sharding.is_equivalent_to(sharding.batch_sharding(mesh), 4), split.images.sharding
  for a, b in zip(whole, jax.device_get(split)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  reversed_ += (whole.labels_b == y[::-1]).all()
assert reversed_ < 6  # shuffled partners, not the reverse rows
print("ok")
"""


def test_mixing_a_batch_sharded_over_devices_is_the_whole_batchs():
  # Partners cross device shards (a gather over the data axis); the result keeps the batch's sharding.
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=root,
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, cwd=root)
  assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_config_errors():
  with pytest.raises(ValueError, match="Unknown mixup"):
    mixing.check_config(dict(mixup_alpha=1.0))
  with pytest.raises(ValueError, match="probability"):
    mixing.check_config(dict(prob=1.5))
