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

Across phases (``freezing.plan``) the optimizer keeps one shape, so its state carries by
parameter path: the chain always has the same slots (identity where a feature is off) and
one run schedule at its end, whose count is the run's step whatever phase a group became
trainable in (a step dropped by ``train.on_nonfinite=skip_step`` does not advance it, as
``optax.apply_if_finite``). Parameters that become trainable in phase ``p`` form their own
optimizer group ``<label>@p``: fresh moments and a fresh Adam count (bias correction), while
parameters that stay trainable in the same group keep theirs.

Decoupled and L2 weight decay (``optim.weight_decay``, AdamW's ``kwargs.weight_decay``) skip
1-D parameters (norm scales and biases, LayerScale, biases), as timm does; set
``optim.decay_1d=True`` to decay them too.
"""

from collections.abc import Mapping
import dataclasses
import functools
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
  rules: tuple[tuple[str, str], ...] = ()  # what labelled the paths (norms without parameters use it)
  # path -> optimizer group: the label, or ``<label>@p`` for parameters trainable since phase p > 0
  # (set by the plan; empty: the labels).
  opt_labels: dict[str, str] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_config(cls, params: Mapping[str, Any], cfg: Mapping[str, Any], *,
                  strict: bool = True, batch_stats: Mapping[str, Any] | None = None) -> "ParamGroups":
    """Labels ``params`` with ``cfg``'s rules (or preset) and validates the per-label settings.

    Args:
      params: the parameter tree.
      cfg: ``config.param_groups``.
      strict: settings for a label that no rule yields are an error (a typo);
        phases pass False, as they share settings but not all labels.
      batch_stats: the statistics tree (which layers are norms; optional when every norm has
        a ``scale``).
    """
    flat = partition.flatten(params)
    rules = strategies.rules(cfg, flat)
    labels = partition.label_paths(flat, rules)
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
    # train_affine in a frozen group: its norm scale/bias become a trainable group. A norm has a
    # scale, or batch statistics (Keras' BatchNorm(scale=False) has only a bias).
    norms = {p.rsplit("/", 1)[0] for p in partition.flatten(batch_stats or {})}
    norms |= {p.rsplit("/", 1)[0] for p in flat if p.endswith("/scale")}
    for path, label in list(labels.items()):
      s = settings[label]
      layer, name = path.rsplit("/", 1)
      if s.bn == "train_affine" and not s.trainable and layer in norms and name in ("scale", "bias"):
        labels[path] = f"{label}_affine"
        settings[labels[path]] = GroupSettings(trainable=True, lr_mult=s.lr_mult, bn="train_affine")
    lr_scale = {}
    if cfg.get("layer_decay"):
      units = strategies.backbone_units(flat)
      lr_scale = {p: float(cfg["layer_decay"]) ** strategies.depth(p, units) for p in flat}
    return cls(labels, settings, lr_scale, tuple(tuple(r) for r in rules))

  def label_tree(self) -> dict[str, Any]:
    return partition.unflatten(self.labels)

  def trainable(self, path: str) -> bool:
    return self.settings[self.labels[path]].trainable

  def layer_label(self, layer: str) -> str:
    """The group of a norm layer: that of its ``scale``, else its ``bias``, else the rules' label
    of its statistics' path (a norm with neither, e.g. ``BatchNorm(use_scale=False, use_bias=False)``)."""
    for name in ("scale", "bias"):
      if f"{layer}/{name}" in self.labels:
        return self.labels[f"{layer}/{name}"]
    return partition.label_paths([f"{layer}/mean"], self.rules)[f"{layer}/mean"]

  def bn_mode(self, layer: str) -> str:
    """``batch``, ``running`` or ``train_affine``: how the norm layer ``layer`` runs."""
    s = self.settings[self.layer_label(layer)]
    return "train_affine" if s.bn == "train_affine" else "running" if s.bn_running else "batch"

  def frozen_bn(self, batch_stats: Mapping[str, Any]) -> frozenset[str]:
    """Paths of the BatchNorm layers that must use running statistics (``bn_mode`` not ``batch``)."""
    layers = {path.rsplit("/", 1)[0] for path in partition.flatten(batch_stats)}
    return frozenset(p for p in layers if self.bn_mode(p) != "batch")

  def opt_label(self, path: str) -> str:
    return self.opt_labels.get(path, self.labels[path])


def _scale_tree(scales: Mapping[str, Any]) -> optax.GradientTransformation:
  """Multiplies every update by its entry of ``scales`` (a tree like the params)."""

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, m: u * m, updates, scales), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class L2SPState(NamedTuple):
  anchor: Any  # w0, the starting point the backbone is pulled back to (a scalar where unused)


def l2sp(alpha: float, beta: float, head_mask: Any, anchored: Any = None) -> optax.GradientTransformation:
  """Adds the gradient of ``alpha/2 ||w - w0||^2`` (backbone) and ``beta/2 ||w||^2`` (head).

  Args:
    alpha: strength of the pull towards the starting weights ``w0`` (captured
      by ``init``, so a checkpoint keeps them).
    beta: plain L2 on the new head, which has no meaningful starting point.
    head_mask: tree of bools like the params, True for head parameters.
    anchored: tree of bools, True for the backbone parameters pulled to ``w0`` (the trained
      ones: a frozen parameter needs no anchor, and keeping one would double its memory);
      default: every backbone parameter.
  """
  if anchored is None:
    anchored = jax.tree.map(lambda h: not h, head_mask)

  def init(params):
    # A copy: the params' buffers are donated to the train step.
    return L2SPState(jax.tree.map(lambda w, a: jnp.copy(w) if a else jnp.zeros((), w.dtype), params, anchored))

  def update(grads, state, params):
    if params is None:
      raise ValueError("l2sp needs the params: call tx.update(grads, state, params).")
    penalty = lambda g, w, w0, h, a: g + beta * w if h else g + alpha * (w - w0) if a else g
    return jax.tree.map(penalty, grads, params, state.anchor, head_mask, anchored), state

  return optax.GradientTransformation(init, update)


def decay_mask(params: Any, decay_1d: bool = False) -> Any:
  """True where weight decay applies: every parameter with ``decay_1d``, else those of 2+ dims
  (timm's ``param_groups_weight_decay``: no decay of norm scales, biases, LayerScale)."""
  return jax.tree.map(lambda x: bool(decay_1d) or x.ndim > 1, params)


def run_count(opt_state: Any) -> Any:
  """The run schedule's step count in a state of ``make_optimizer``'s optimizer (its last slot)."""
  return opt_state[-1].count


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
  """``optax.multi_transform`` over the optimizer groups: frozen groups get ``set_to_zero``.

  The chain has the same five slots whatever the settings (clip, L2-SP, weight decay, the
  groups, layer decay; ``optax.identity`` where off), then the run schedule: every phase's
  optimizer has the same state paths, and ``strategies.carry_opt_state`` matches them.

  Args:
    cfg: ``config.optim``: ``name`` (a key of ``OPTIMIZERS``), ``lr``,
      ``schedule``, ``warmup_steps``, ``clip_grad_norm``, ``weight_decay``, ``l2sp``,
      ``decay_1d`` and keyword arguments of the optax constructor under ``kwargs``.
    groups: the parameter groups (of one phase of the plan).
    total_steps: length of the run (for the decay schedule).
  """
  if cfg["name"] not in OPTIMIZERS:
    raise ValueError(f"Unknown optimizer {cfg['name']!r}; known: {sorted(OPTIMIZERS)}.")
  kwargs, decay_1d = dict(cfg.get("kwargs", {})), bool(cfg.get("decay_1d", False))
  if cfg["name"] == "adamw" and not decay_1d:
    kwargs["mask"] = functools.partial(decay_mask, decay_1d=False)
  transforms = {}
  for path, opt_label in {p: groups.opt_label(p) for p in groups.labels}.items():
    s = groups.settings[groups.labels[path]]
    if opt_label in transforms:
      continue
    # The group's multiplier is a constant; the schedule comes once, at the end of the chain
    # (updates are linear in the learning rate for adam, adamw and sgd).
    transforms[opt_label] = (OPTIMIZERS[cfg["name"]](learning_rate=s.lr_mult, **kwargs) if s.trainable
                             else optax.set_to_zero())
  trainable = partition.unflatten({p: groups.trainable(p) for p in groups.labels})
  head = partition.unflatten({p: p.startswith(f"{strategies.HEAD}/") for p in groups.labels})
  identity = optax.identity()
  # On the loss gradients of the trainable parameters only, before any regulariser or per-group
  # multiplier (torch's clip_grad_norm_ before step()); frozen gradients stay unread, so XLA
  # still drops their backward.
  clip = (optax.masked(optax.clip_by_global_norm(float(cfg["clip_grad_norm"])), trainable)
          if cfg.get("clip_grad_norm") else identity)
  reg = dict(cfg.get("l2sp") or {})
  anchored = jax.tree.map(lambda t, h: t and not h, trainable, head)
  l2 = (l2sp(float(reg.get("alpha", 0.0)), float(reg.get("beta", 0.0)), head, anchored)
        if reg.get("alpha") or reg.get("beta") else identity)
  wd = (optax.add_decayed_weights(float(cfg["weight_decay"]), functools.partial(decay_mask, decay_1d=decay_1d))
        if cfg.get("weight_decay") else identity)
  groups_tx = optax.multi_transform(transforms, partition.unflatten({p: groups.opt_label(p) for p in groups.labels}))
  decay = _scale_tree(partition.unflatten(groups.lr_scale)) if groups.lr_scale else identity
  return optax.chain(clip, l2, wd, groups_tx, decay, optax.scale_by_schedule(schedule(cfg, total_steps)))


def carry_opt_state(old: Any, new: Any) -> Any:
  """``new`` optimizer state with every leaf that also exists in ``old`` copied from it.

  Leaves are matched by their full path in the state tree, which names the chain slot, the
  optimizer group and the parameter (``[3].inner_states['backbone']...mu['backbone']['top']...``;
  ``make_optimizer`` keeps the slots the same in every phase): the moments and Adam count of
  groups that stay trainable, the run schedule's count and the L2-SP anchor carry over; groups
  of newly trained parameters (``<label>@p``) start fresh (frozen ones held no state).
  """
  old_leaves = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(old)[0]}
  paths, treedef = jax.tree_util.tree_flatten_with_path(new)
  leaves = []
  for path, x in paths:
    prev = old_leaves.get(jax.tree_util.keystr(path))
    leaves.append(prev if prev is not None and getattr(prev, "shape", None) == getattr(x, "shape", None) else x)
  return jax.tree_util.tree_unflatten(treedef, leaves)
