"""The plan of a run: the config's freezing read once.

``Plan.from_config(config, variables)`` reads ``config.param_groups`` and ``config.phases``
against the parameter (and BatchNorm statistics) paths, once, at set-up. Per phase it holds the
``optim.ParamGroups``: the label of every parameter, each label's settings (trainable,
``lr_mult``, BatchNorm mode), the layer-decay factors and the optimizer group of every
parameter. The optimizer, the model's frozen-BatchNorm set, the inspector, the feature-cache
decision and the divergence guard all take the plan (or one of its phases) and none of them
reads ``config.param_groups`` again.

Optimizer groups: a parameter trainable in phase ``p`` under label ``L`` belongs to ``L`` if
it has been trainable under ``L`` since phase 0, else to ``L@q``, ``q`` being the phase since
which it has been (``optim`` docstring: fresh moments and Adam count for newly trained
parameters).
"""

from collections.abc import Mapping
import dataclasses
from typing import Any

from tl_jax import partition
from tl_jax.freezing import optim, strategies


@dataclasses.dataclass(frozen=True)
class Plan:
  """Phases of a run: ``starts[p]`` is the first step of phase ``p``, ``groups[p]`` its groups."""

  starts: tuple[int, ...]
  groups: tuple[optim.ParamGroups, ...]
  bn_layers: frozenset[str]  # layers holding batch statistics

  @classmethod
  def from_config(cls, config, variables: Mapping[str, Any]) -> "Plan":
    """The plan of ``config`` on ``variables`` (``{'params', 'batch_stats'}``; arrays or shapes)."""
    phases = strategies.phases(config)
    params, stats = variables["params"], variables.get("batch_stats", {})
    strict = len(phases) == 1  # phases share settings but not every label
    groups = [optim.ParamGroups.from_config(params, strategies.phase_groups(config, p), strict=strict,
                                            batch_stats=stats) for p in range(len(phases))]
    for p, g in enumerate(groups):
      opt = {}
      for path, label in g.labels.items():
        since = p
        while since and groups[since - 1].trainable(path) and groups[since - 1].labels[path] == label:
          since -= 1
        opt[path] = label if not g.trainable(path) or since == 0 else f"{label}@{since}"
      groups[p] = dataclasses.replace(g, opt_labels=opt)
    layers = frozenset(k.rsplit("/", 1)[0] for k in partition.flatten(stats))
    return cls(tuple(s for s, _ in phases), tuple(groups), layers)

  def __len__(self) -> int:
    return len(self.starts)

  def phase_at(self, step: int) -> int:
    """Index of the phase that trains step ``step`` (0-based)."""
    return max(i for i, start in enumerate(self.starts) if start <= step)

  def phase_of_checkpoint(self, step: int) -> int:
    """The phase whose state structure checkpoint ``step`` (saved after ``step`` steps) has."""
    return self.phase_at(max(step - 1, 0))

  def frozen_bn(self, phase: int) -> frozenset[str]:
    """BatchNorm layers that use running statistics in ``phase`` (the model freezes them)."""
    return frozenset(layer for layer in self.bn_layers if self.groups[phase].bn_mode(layer) != "batch")

  def backbone_fixed(self) -> bool:
    """Whether the backbone is one fixed function for the whole run: a single phase in which no
    backbone parameter trains and every BatchNorm uses running statistics."""
    g = self.groups[0]
    return (len(self) == 1 and not any(g.trainable(p) for p in g.labels if not p.startswith(f"{strategies.HEAD}/"))
            and self.frozen_bn(0) == self.bn_layers)

  def max_lr_mult(self, phase: int) -> float:
    """The largest effective multiplier (``lr_mult`` x layer decay) of a trained parameter."""
    g = self.groups[phase]
    return max((g.settings[label].lr_mult * g.lr_scale.get(p, 1.0) for p, label in g.labels.items()
                if g.trainable(p)), default=1.0)
