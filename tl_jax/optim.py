"""Optimizers built from parameter groups: freezing and per-group learning rates.

``config.param_groups`` holds the ``rules`` (see ``partition``) and, per label,
optional settings::

  param_groups.rules = (("head/.*", "head"), (".*", "backbone"))
  param_groups.backbone = dict(lr_mult=0.1, bn="running")

Settings: ``trainable`` (default True, except for the label ``frozen``),
``lr_mult`` (default 1.0) and ``bn``: ``"batch"`` trains BatchNorm with batch
statistics, ``"running"`` always uses (and never updates) the running ones;
the default is ``"batch"`` for trainable groups and ``"running"`` for frozen
ones. Frozen groups get ``optax.set_to_zero()``: no optimizer state and, as
their gradients are never read, no backward compute after XLA's dead-code
elimination.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any

import optax

from tl_jax import partition

FROZEN = "frozen"
_BN_MODES = ("batch", "running")


@dataclasses.dataclass(frozen=True)
class GroupSettings:
  trainable: bool = True
  lr_mult: float = 1.0
  bn: str = ""  # "" = by trainability

  @property
  def bn_running(self) -> bool:
    return self.bn == "running" or (not self.bn and not self.trainable)


@dataclasses.dataclass(frozen=True)
class ParamGroups:
  """The label of every parameter path and the settings of every label."""

  labels: dict[str, str]  # flat path -> label
  settings: dict[str, GroupSettings]

  @classmethod
  def from_config(cls, params: Mapping[str, Any], cfg: Mapping[str, Any]) -> "ParamGroups":
    """Labels ``params`` with ``cfg['rules']`` and validates the per-label settings."""
    labels = partition.label_paths(partition.flatten(params), cfg["rules"])
    used = set(labels.values())
    settings = {}
    for label, raw in cfg.items():
      if label == "rules":
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
      settings[label] = GroupSettings(**raw)
    for label in used - set(settings):
      settings[label] = GroupSettings(trainable=label != FROZEN)
    return cls(labels, settings)

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


# Plain-dict registry: config.optim.name -> optax constructor.
OPTIMIZERS = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd}


def schedule(cfg: Mapping[str, Any], total_steps: int) -> optax.Schedule:
  """Linear warm-up, then cosine decay to 0 (``cfg.schedule='cosine'``) or constant."""
  warmup = int(cfg.get("warmup_steps", 0))
  if cfg.get("schedule", "cosine") == "constant":
    main = optax.constant_schedule(cfg["lr"])
  else:
    main = optax.cosine_decay_schedule(cfg["lr"], max(total_steps - warmup, 1))
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, cfg["lr"], warmup), main], [warmup])


def make_optimizer(cfg: Mapping[str, Any], groups: ParamGroups, total_steps: int) -> optax.GradientTransformation:
  """``optax.multi_transform`` over the labels: frozen groups get ``set_to_zero``.

  Args:
    cfg: ``config.optim``: ``name`` (a key of ``OPTIMIZERS``), ``lr``,
      ``schedule``, ``warmup_steps`` and keyword arguments of the optax
      constructor under ``kwargs``.
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
  return optax.multi_transform(transforms, groups.label_tree())
