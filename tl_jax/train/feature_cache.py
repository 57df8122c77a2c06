"""Training the head on cached backbone features.

When the uncached train step would see the same ``pre_logits`` every epoch, they are computed
once per split and the head trains on them: the plan keeps the backbone fixed (one phase, no
backbone parameter trains, every BatchNorm uses running statistics), no pixel transform runs
(augmentation, RandAugment, mixup/CutMix), the training split is not streamed (its images are
random-resized crops drawn anew each epoch) and the backbone draws no random numbers in
training (dropout inside it, e.g. VGG's ``fc1``/``fc2``, or stochastic depth), which is read
from the traced model, not from the config. ``train.cache_features=False`` turns it off.
The train and eval steps run unchanged; only the state's ``apply_fn`` becomes
``Classifier.from_pre_logits``.
"""

import dataclasses
import functools
import os

import jax
from jax.extend import core as jex_core
import numpy as np

from tl_jax import data as data_lib
from tl_jax.data import mixing, randaugment, streaming


def reasons_not(config, plan, train_split: data_lib.Split, apply_fn, variables) -> list[str]:
  """Why a run cannot train on cached features (empty: it can, and will)."""
  out = []
  if not config.train.get("cache_features", True):
    out.append("train.cache_features=False")
  if not plan.backbone_fixed():
    out.append("the backbone trains (or changes BatchNorm mode) in some phase")
  if (data_lib.augment.from_config(config.get("augment")) is not None
      or randaugment.from_config(config.get("randaugment")) is not None
      or mixing.from_config(config.get("mixup")) is not None):
    out.append("pixel-level augmentation or mixing")
  if isinstance(train_split.images, streaming.Streamed) and not train_split.images.deterministic:
    out.append("training takes random-resized crops (data.stream.train_crop='center' trains on fixed ones)")
  if not out and backbone_random(apply_fn, variables, train_split.images.shape[1:]):
    out.append("the backbone draws random numbers in training (dropout or stochastic depth)")
  return out


def backbone_random(apply_fn, variables, image_shape) -> bool:
  """Whether the train-mode ``pre_logits`` depend on the dropout key (traced, nothing computed)."""

  def pre_logits(variables, images, key):
    (_, features), _ = apply_fn(variables, images, train=True, mutable=["batch_stats"], rngs={"dropout": key})
    return features["pre_logits"]

  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), variables)
  images = jax.ShapeDtypeStruct((1, *image_shape), np.uint8)
  jaxpr = jax.make_jaxpr(pre_logits)(shapes, images, jax.eval_shape(lambda: jax.random.key(0))).jaxpr
  # Walk back from the output: an equation is needed if it feeds a needed variable (an equation
  # with a sub-program counts as needing all of its inputs: conservative).
  needed = {v for v in jaxpr.outvars if isinstance(v, jex_core.Var)}
  for eqn in reversed(jaxpr.eqns):
    if any(v in needed for v in eqn.outvars):
      needed |= {v for v in eqn.invars if isinstance(v, jex_core.Var)}
  return jaxpr.invars[-1] in needed


@functools.partial(jax.jit, static_argnums=0)
def _pre_logits(apply_fn, params, batch_stats, images):
  return apply_fn({"params": params, "batch_stats": batch_stats}, images)[1]["pre_logits"]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _pooled(apply_fn, params, batch_stats, images, keys):
  features = apply_fn({"params": params, "batch_stats": batch_stats}, images)[1]
  # Spatial maps (stem, stages) are global-average pooled like pre_logits.
  return {k: features[k].mean(axis=(1, 2)) if features[k].ndim == 4 else features[k] for k in keys}


def pooled_features(apply_fn, variables, split: data_lib.Split, batch_size: int,
                    keys: tuple[str, ...]) -> dict[str, np.ndarray]:
  """The global-average-pooled ``features[k]`` of every image, per key ``k``, float32.

  One forward pass serves every key (e.g. ``stem``, ``stage1..N``,
  ``pre_logits``: the per-stage linear probes).
  """
  out = {k: [] for k in keys}
  for b, n in data_lib.eval_batches(split, batch_size):
    got = _pooled(apply_fn, variables["params"], variables.get("batch_stats", {}), b["image"], tuple(keys))
    for k in keys:
      out[k].append(np.asarray(got[k], np.float32)[:n])
  return {k: np.concatenate(v) for k, v in out.items()}


def extract(state, split: data_lib.Split, batch_size: int) -> data_lib.Split:
  """``split`` with its images replaced by the backbone's ``pre_logits`` (float32)."""
  # Module-level jit: every split (same padded batch shape) reuses one executable.
  out = [np.asarray(_pre_logits(state.apply_fn, state.params, state.batch_stats, b["image"]))[:n]
         for b, n in data_lib.eval_batches(split, batch_size)]
  return data_lib.Split(np.concatenate(out), split.labels)


def extract_all(state, dataset: data_lib.Dataset, batch_size: int, cache_dir: str | None = None) -> data_lib.Dataset:
  """Every split of ``dataset`` as features; kept in ``cache_dir/<split>.npz`` if given.

  The files let a resumed run skip the extraction and let other tools (a
  scikit-learn baseline) use exactly the features the head trained on.
  """
  splits = {}
  for name, split in dataset.splits.items():
    path = cache_dir and os.path.join(cache_dir, f"{name}.npz")
    if path and os.path.exists(path):
      with np.load(path) as f:
        splits[name] = data_lib.Split(f["features"], f["labels"])
      continue
    splits[name] = extract(state, split, batch_size)
    if path:
      os.makedirs(cache_dir, exist_ok=True)
      np.savez(path, features=splits[name].images, labels=splits[name].labels)
  return dataclasses.replace(dataset, splits=splits)


def on_features(state):
  """``state`` whose model takes ``pre_logits`` instead of images."""
  return state.replace(apply_fn=functools.partial(state.apply_fn, method="from_pre_logits"))
