"""Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019) of a batch, with timm's semantics.

As timm's ``Mixup(mode="batch")``, which flips a shuffled batch: with
probability ``prob`` each image is mixed with a partner drawn by the step's
key, row ``perm[j]`` with row ``perm[N-1-j]`` for a random permutation
``perm`` (``partners``; the middle row of an odd batch keeps itself), by one
lambda drawn per batch:
mixup with ``lam ~ Beta(alpha, alpha)``, or CutMix with
``lam ~ Beta(cutmix_alpha, cutmix_alpha)`` (chosen with ``switch_prob`` when
both alphas are > 0), whose box ``int(H sqrt(1 - lam)) x int(W sqrt(1 - lam))``
about a uniform centre, clipped to the image, then sets
``lam = 1 - box area / image area`` (``correct_lam``).

Partners are drawn, not the batch's reverse: the pipeline hands out each batch's
indices sorted (``data.pipeline``), so with data stored class by class the
reverse would pair row i with row N-1-i, the first classes always with the
last. The rows stay where they are (the batch's sharding over devices is kept);
the partners are gathered across it.

Labels are not mixed here: the loss is ``lam * loss(labels) + (1 - lam) *
loss(labels_b)``, which for cross-entropy with label smoothing equals timm's
``SoftTargetCrossEntropy`` on ``mixup_target(..., smoothing)``. Mixing raw
pixels is mixing normalised ones: the model's normalisation is affine.

``config.mixup`` keys (``DEFAULTS``): ``alpha``, ``cutmix_alpha`` (0 = off),
``prob``, ``switch_prob``, ``correct_lam``.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

DEFAULTS = dict(alpha=0.0, cutmix_alpha=0.0, prob=1.0, switch_prob=0.5, correct_lam=True)


class Mixed(NamedTuple):
  """A mixed batch: ``images`` show ``lam`` of ``labels`` and ``1 - lam`` of ``labels_b``."""

  images: jnp.ndarray
  labels: jnp.ndarray
  labels_b: jnp.ndarray
  lam: jnp.ndarray


def unmixed(images: jnp.ndarray, labels: jnp.ndarray) -> Mixed:
  return Mixed(images, labels, labels, jnp.ones((), jnp.float32))


def check_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
  """``cfg`` merged over ``DEFAULTS``; unknown keys and bad values are errors."""
  cfg = dict(cfg or {})
  unknown = set(cfg) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"Unknown mixup option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}.")
  cfg = {**DEFAULTS, **cfg}
  for key in ("alpha", "cutmix_alpha"):
    if cfg[key] < 0:
      raise ValueError(f"mixup.{key}={cfg[key]} must be >= 0 (0 turns it off).")
  for key in ("prob", "switch_prob"):
    if not 0 <= cfg[key] <= 1:
      raise ValueError(f"mixup.{key}={cfg[key]} must be a probability in [0, 1].")
  return cfg


def cutmix_box(rng: jax.Array, lam, height: int, width: int):
  """timm's ``rand_bbox``: (top, bottom, left, right) of the box, ints, bottom/right exclusive."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h, cut_w = jnp.floor(height * ratio).astype(jnp.int32), jnp.floor(width * ratio).astype(jnp.int32)
  k_y, k_x = jax.random.split(rng)
  cy, cx = jax.random.randint(k_y, (), 0, height), jax.random.randint(k_x, (), 0, width)
  return (jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height),
          jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width))


def partners(rng: jax.Array, n: int) -> jnp.ndarray:
  """Row ``i`` of a batch of ``n`` is mixed with row ``partners(rng, n)[i]``: timm's flip of a
  shuffled batch, ``perm[j]`` with ``perm[n-1-j]`` (an involution, uniform over the pairings)."""
  perm = jax.random.permutation(rng, n).astype(jnp.int32)
  return jnp.zeros(n, jnp.int32).at[perm].set(perm[::-1])


def mix(rng: jax.Array, images: jnp.ndarray, labels: jnp.ndarray, cfg: Mapping[str, Any]) -> Mixed:
  """Mixes the batch ``(N, H, W, C)`` with its ``partners``; returns float32 images."""
  cfg = check_config(cfg)
  # k_pair is new; split(rng, 6)[:5] == split(rng, 5) (partitionable threefry), so lam draws are as before.
  k_apply, k_switch, k_mix, k_cut, k_box, k_pair = jax.random.split(rng, 6)
  alpha, cut_alpha = float(cfg["alpha"]), float(cfg["cutmix_alpha"])
  beta = lambda k, a: jax.random.beta(k, a, a) if a > 0 else jnp.ones(())
  if alpha > 0 and cut_alpha > 0:
    use_cutmix = jax.random.uniform(k_switch) < cfg["switch_prob"]
  else:
    use_cutmix = jnp.asarray(cut_alpha > 0)
  apply = jax.random.uniform(k_apply) < cfg["prob"]
  lam = jnp.where(apply, jnp.where(use_cutmix, beta(k_cut, cut_alpha), beta(k_mix, alpha)), 1.0)
  pair = partners(k_pair, images.shape[0])
  # Gathered before the cast: across device shards, uint8 rows move 4x fewer bytes.
  other, images = images[pair].astype(jnp.float32), images.astype(jnp.float32)
  _, h, w, _ = images.shape
  top, bottom, left, right = cutmix_box(k_box, lam, h, w)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  cut_lam = 1.0 - (bottom - top) * (right - left) / (h * w) if cfg["correct_lam"] else lam
  mixed = jnp.where(use_cutmix, jnp.where(box[None, :, :, None], other, images), lam * images + (1 - lam) * other)
  lam = jnp.where(use_cutmix & apply, cut_lam, lam).astype(jnp.float32)
  return Mixed(jnp.where(apply, mixed, images), labels, labels[pair], lam)


def loss(loss_fn: Callable, logits: jnp.ndarray, batch: Mixed) -> jnp.ndarray:
  """``lam * loss_fn(logits, labels) + (1 - lam) * loss_fn(logits, labels_b)``."""
  return batch.lam * loss_fn(logits, batch.labels) + (1 - batch.lam) * loss_fn(logits, batch.labels_b)


def dominant_labels(batch: Mixed) -> jnp.ndarray:
  """The label with the larger share of each mixed image (train accuracy's target)."""
  return jnp.where(batch.lam >= 0.5, batch.labels, batch.labels_b)


def from_config(cfg: Mapping[str, Any] | None) -> Callable[[jax.Array, jnp.ndarray, jnp.ndarray], Mixed] | None:
  """``mix_fn(rng, images, labels)`` for ``steps.train_step``, or None when both alphas are 0."""
  cfg = check_config(cfg)
  if not (cfg["alpha"] or cfg["cutmix_alpha"]) or not cfg["prob"]:
    return None
  return lambda rng, images, labels: mix(rng, images, labels, cfg)
