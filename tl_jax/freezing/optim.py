"""Optimizers built from parameter groups: freezing and per-group learning rates.

``config.param_groups`` holds the ``rules`` (see ``partition``) and, per label,
optional settings::

  param_groups.rules = (("head/.*", "head"), (".*", "backbone"))
  param_groups.backbone = dict(lr_mult=0.1, bn="running")

Instead of ``rules``, ``preset`` names a transfer strategy that expands to
rules (``strategies.PRESETS``). Settings: ``trainable`` (default True, except
for the label ``frozen``), ``lr_mult`` (default 1.0) and ``bn``: ``"batch"``
trains BatchNorm with batch statistics, ``"running"`` always uses (and never
updates) the running ones, ``"train_affine"`` uses the running ones but trains
the BatchNorm scale and bias even in a frozen group (fast.ai's ``train_bn``);
the default is ``"batch"`` for trainable groups and ``"running"`` for frozen
ones. Frozen groups get ``optax.set_to_zero()``: no optimizer state and, as
their gradients are never read, no backward compute after XLA's dead-code
elimination. ``param_groups.layer_decay`` (0 = off) further multiplies the
learning rate of every parameter by ``layer_decay ** depth``, ``depth`` being
its distance from the head read from its path (``strategies.depth``).

``config.optim.l2sp = dict(alpha, beta)`` adds the L2-SP penalty (Li et al.,
2018) ``alpha/2 ||w_backbone - w0||^2 + beta/2 ||w_head||^2`` with ``w0`` the
weights the optimizer was initialised with (the pretrained ones);
``config.optim.weight_decay`` adds plain L2 ``wd/2 ||w||^2`` to the loss.
``config.optim.clip_grad_norm`` (0 = off) scales the trainable parameters'
gradients to at most that global norm, first in the chain.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from tl_jax import partition
from tl_jax.freezing import strategies

FROZEN = "frozen"
_BN_MODES = ("batch", "running", "train_affine")
# param_groups keys that are not labels.
_RESERVED = ("rules", "preset", "layer_decay")


@dataclasses.dataclass(frozen=True)
class GroupSettings:
  trainable: bool = True
  lr_mult: float = 1.0
  bn: str = ""  # "" = by trainability

  @property
  def bn_running(self) -> bool:
    return self.bn in ("running", "train_affine") or (not self.bn and not self.trainable)


@dataclasses.dataclass(frozen=True)
class ParamGroups:
  """The label of every parameter path and the settings of every label."""

  labels: dict[str, str]  # flat path -> label
  settings: dict[str, GroupSettings]
  lr_scale: dict[str, float] = dataclasses.field(default_factory=dict)  # path -> layer decay

  @classmethod
  def from_config(cls, params: Mapping[str, Any], cfg: Mapping[str, Any], *,
                  strict: bool = True) -> "ParamGroups":
    """Labels ``params`` with ``cfg``'s rules (or preset) and validates the per-label settings.

    Args:
      params: the parameter tree.
      cfg: ``config.param_groups``.
      strict: settings for a label that no rule yields are an error (a typo);
        phases pass False, as they share settings but not all labels.
    """
    flat = partition.flatten(params)
    labels = partition.label_paths(flat, strategies.rules(cfg, flat))
    used = set(labels.values())
    settings = {}
    for label, raw in cfg.items():
      if label in _RESERVED:
        continue
      # A preset decides which of its labels exist (linear_probe has no backbone).
      if label not in used and (not strict or (cfg.get("preset") and label in strategies.LABELS)):
        continue
      if label not in used:
        raise ValueError(
            f"param_groups.{label} has settings but no rule yields the label {label!r}; "
            f"labels in use: {sorted(used)}."
        )
      raw = dict(raw)
      unknown = set(raw) - {f.name for f in dataclasses.fields(GroupSettings)}
      if unknown:
        raise ValueError(f"param_groups.{label}: unknown setting(s) {sorted(unknown)}; "
                         "known: trainable, lr_mult, bn.")
      if raw.get("bn", "") not in ("",) + _BN_MODES:
        raise ValueError(f"param_groups.{label}.bn must be one of {_BN_MODES}, got {raw['bn']!r}.")
      settings[label] = GroupSettings(**{"trainable": label != FROZEN, **raw})
    for label in used - set(settings):
      settings[label] = GroupSettings(trainable=label != FROZEN)
    # train_affine in a frozen group: its norm scale/bias become a trainable group.
    for path, label in list(labels.items()):
      s = settings[label]
      layer, name = path.rsplit("/", 1)
      if s.bn == "train_affine" and not s.trainable and f"{layer}/scale" in flat and name in ("scale", "bias"):
        labels[path] = f"{label}_affine"
        settings[labels[path]] = GroupSettings(trainable=True, lr_mult=s.lr_mult, bn="train_affine")
    lr_scale = {}
    if cfg.get("layer_decay"):
      units = strategies.backbone_units(flat)
      lr_scale = {p: float(cfg["layer_decay"]) ** strategies.depth(p, units) for p in flat}
    return cls(labels, settings, lr_scale)

  def label_tree(self) -> dict[str, Any]:
    return partition.unflatten(self.labels)

  def trainable(self, path: str) -> bool:
    return self.settings[self.labels[path]].trainable

  def frozen_bn(self, batch_stats: Mapping[str, Any]) -> frozenset[str]:
    """Paths of the BatchNorm layers that must use running statistics.

    A BatchNorm layer follows the group of its ``scale`` parameter.
    """
    layers = {path.rsplit("/", 1)[0] for path in partition.flatten(batch_stats)}
    return frozenset(p for p in layers if self.settings[self.labels[f"{p}/scale"]].bn_running)


def _scale_tree(scales: Mapping[str, Any]) -> optax.GradientTransformation:
  """Multiplies every update by its entry of ``scales`` (a tree like the params)."""

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, m: u * m, updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class L2SPState(NamedTuple):
  anchor: Any  # w0, the starting point the backbone is pulled back to


def l2sp(alpha: float, beta: float, head_mask: Any) -> optax.GradientTransformation:
  """Adds the gradient of ``alpha/2 ||w - w0||^2`` (backbone) and ``beta/2 ||w||^2`` (head).

  Args:
    alpha: strength of the pull towards the starting weights ``w0`` (captured
      by ``init``, so a checkpoint keeps them).
    beta: plain L2 on the new head, which has no meaningful starting point.
    head_mask: tree of bools like the params, True for head parameters.
  """

  def init(params):
    # A copy: the params' buffers are donated to the train step.
    return L2SPState(jax.tree.map(lambda w, h: jnp.zeros((), w.dtype) if h else jnp.copy(w), params, head_mask))

  def update(grads, state, params):
    if params is None:
      raise ValueError("l2sp needs the params: call tx.update(grads, state, params).")
    penalty = jax.tree.map(lambda w, w0, h: beta * w if h else alpha * (w - w0), params, state.anchor,
                           head_mask)
    return jax.tree.map(jnp.add, grads, penalty), state

  return optax.GradientTransformation(init, update)


# Plain-dict registry: config.optim.name -> optax constructor.
OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def schedule(cfg: Mapping[str, Any], total_steps: int) -> optax.Schedule:
  """Linear warm-up, then cosine decay to 0 (``cfg.schedule='cosine'``), constant, or
  ``'staircase'``: lr / 10 after each step in ``cfg.boundaries`` (counted from the start, BiT)."""
  warmup = int(cfg.get("warmup_steps", 0))
  if cfg.get("schedule", "cosine") == "constant":
    main = optax.constant_schedule(cfg["lr"])
  elif cfg.get("schedule") == "staircase":
    # big_transfer's get_lr divides once step > boundary, optax once count >= its boundary; the
    # joined schedule counts from the end of the warm-up.
    main = optax.piecewise_constant_schedule(
        cfg["lr"], {int(b) - warmup + 1: 0.1 for b in cfg.get("boundaries", ())})
  else:
    main = optax.cosine_decay_schedule(cfg["lr"], max(total_steps - warmup, 1))
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, cfg["lr"], warmup), main], [warmup])


def make_optimizer(cfg: Mapping[str, Any], groups: ParamGroups, total_steps: int) -> optax.GradientTransformation:
  """``optax.multi_transform`` over the labels: frozen groups get ``set_to_zero``.

  Args:
    cfg: ``config.optim``: ``name`` (a key of ``OPTIMIZERS``), ``lr``,
      ``schedule``, ``warmup_steps``, ``clip_grad_norm`` and keyword
      arguments of the optax constructor under ``kwargs``.
    groups: the parameter groups.
    total_steps: length of the run (for the decay schedule).
  """
  if cfg["name"] not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {cfg['name']!r}; known: {sorted(OPTIMIZERS)}.")
  base, kwargs = schedule(cfg, total_steps), dict(cfg.get("kwargs", {}))
  transforms = {}
  for label, s in groups.settings.items():
    if not s.trainable:
      transforms[label] = optax.set_to_zero()
    else:
      lr = lambda step, m=s.lr_mult: m * base(step)
      transforms[label] = OPTIMIZERS[cfg["name"]](learning_rate=lr, **kwargs)
  chain = []
  if cfg.get("clip_grad_norm"):
    # On the loss gradients of the trainable parameters only, before any
    # regulariser or per-group multiplier (torch's clip_grad_norm_ before
    # step()); frozen gradients stay unread, so XLA still drops their backward.
    trainable = partition.unflatten({p: groups.trainable(p) for p in groups.labels})
    chain.append(optax.masked(optax.clip_by_global_norm(float(cfg["clip_grad_norm"])), trainable))
  reg = dict(cfg.get("l2sp") or {})
  if reg.get("alpha") or reg.get("beta"):
    head = partition.unflatten({p: p.startswith(f"{strategies.HEAD}/") for p in groups.labels})
    chain.append(l2sp(float(reg.get("alpha", 0.0)), float(reg.get("beta", 0.0)), head))
  if cfg.get("weight_decay"):
    chain.append(optax.add_decayed_weights(float(cfg["weight_decay"])))
  chain.append(optax.multi_transform(transforms, groups.label_tree()))
  if groups.lr_scale:
    chain.append(_scale_tree(partition.unflatten(groups.lr_scale)))
  return chain[0] if len(chain) == 1 else optax.chain(*chain)
