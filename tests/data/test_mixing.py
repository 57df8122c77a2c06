"""Mixup / CutMix against timm's semantics, written out here in numpy (timm does not load)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from tl_jax.data import mixing
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


def test_mixup_is_the_convex_combination_with_the_reversed_batch():
  lams = []
  for m in mix_many(200, alpha=0.4):
    np.testing.assert_allclose(m.images, m.lam * IMAGES + (1 - m.lam) * IMAGES[::-1], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(m.labels_b, LABELS[::-1])
    lams.append(float(m.lam))
  # One lambda per batch, Beta(alpha, alpha)-distributed.
  assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3


def test_cutmix_box_and_area_corrected_lambda():
  for m in mix_many(50, cutmix_alpha=1.0):
    from_other = np.all(m.images == IMAGES[::-1], axis=(0, 3)) & ~np.all(IMAGES == IMAGES[::-1], axis=(0, 3))
    rows, cols = np.nonzero(from_other)
    if rows.size:  # a rectangle, the same for every image
      assert from_other[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
      assert np.all((m.images == IMAGES[::-1]) | (m.images == IMAGES))
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
    elif np.all((m.images == IMAGES) | (m.images == IMAGES[::-1])):
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


def test_config_errors():
  with pytest.raises(ValueError, match="Unknown mixup"):
    mixing.check_config(dict(mixup_alpha=1.0))
  with pytest.raises(ValueError, match="probability"):
    mixing.check_config(dict(prob=1.5))
