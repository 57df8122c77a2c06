"""Which parameter lands in which group, with which learning rate and BatchNorm mode.

``inspect(config, phase=N)`` builds the parameter shapes of ``config.model``
(``jax.eval_shape``: nothing is computed, no weights are read), reads the run's plan from
them exactly as the trainer does (``freezing.plan.Plan``) and returns one ``Row`` per
parameter of phase N. ``format_table`` prints it; ``write`` puts the same
tables, for every phase, into a run's workdir (``param_groups.txt`` and
``param_groups.json``) when it starts::

  python scripts/inspect_groups.py --config configs/quickstart.py [--phase 1] [--json]
"""

from collections.abc import Mapping
import dataclasses
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp

from tl_jax import models, partition
from tl_jax.freezing import strategies
from tl_jax.freezing.plan import Plan

NO_BN = "-"  # the BatchNorm column of parameters of other layers


@dataclasses.dataclass(frozen=True)
class Row:
  path: str
  shape: tuple[int, ...]
  size: int
  group: str
  trainable: bool
  lr_mult: float  # effective: the group's lr_mult x layer decay; 0 when frozen
  bn: str  # batch | running | train_affine for BatchNorm layers, NO_BN otherwise


def _order(paths: list[str]) -> list[str]:
  """Input to output: stem, stage1..N (block2 before block10), top, then the head."""
  natural = lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)]
  try:
    units = strategies.backbone_units(paths)
  except ValueError:  # a backbone without stem/stage<N>/top names: natural order only
    return sorted(paths, key=natural)
  unit = lambda p: units.index(p.split("/")[1]) if p.startswith("backbone/") else len(units)
  return sorted(paths, key=lambda p: (unit(p), natural(p)))


def rows(params: Mapping[str, Any], plan: Plan, phase: int = 0) -> list[Row]:
  """One row per parameter, from input to head: phase ``phase`` of the trainer's own plan.

  A BatchNorm layer (one holding ``batch_stats``) runs in the mode its group
  sets (``optim.ParamGroups.bn_mode``): ``running`` statistics, ``batch``
  statistics, or ``train_affine`` (running statistics, trained scale and bias).
  """
  groups = plan.groups[phase]
  flat, out = partition.flatten(params), []
  for path in _order(list(flat)):
    x = flat[path]
    label, layer = groups.labels[path], path.rsplit("/", 1)[0]
    s = groups.settings[label]
    bn = groups.bn_mode(layer) if layer in plan.bn_layers else NO_BN
    lr = s.lr_mult * groups.lr_scale.get(path, 1.0) if s.trainable else 0.0
    out.append(Row(path, tuple(int(d) for d in x.shape), int(x.size), label, s.trainable, lr, bn))
  return out


def totals(table: list[Row]) -> dict[str, dict[str, Any]]:
  """Per group: parameter arrays, scalars, trainable, lr range and BatchNorm modes."""
  out: dict[str, dict[str, Any]] = {}
  for r in table:
    t = out.setdefault(r.group, {"tensors": 0, "size": 0, "trainable": r.trainable, "lr_min": r.lr_mult,
                                 "lr_max": r.lr_mult, "bn_layers": {}})
    t["tensors"] += 1
    t["size"] += r.size
    t["lr_min"], t["lr_max"] = min(t["lr_min"], r.lr_mult), max(t["lr_max"], r.lr_mult)
    if r.bn != NO_BN and r.path.endswith("/scale"):
      t["bn_layers"][r.bn] = t["bn_layers"].get(r.bn, 0) + 1
  return out


def abstract_variables(config, num_classes: int) -> dict[str, Any]:
  """Shapes of ``config.model``'s variables with a ``num_classes`` head (nothing computed)."""
  mcfg, size = config.model, config.data.get("image_size") or models.preprocessing(mcfg.name).size
  model = models.create(mcfg.name, num_classes, dropout_rate=mcfg.get("dropout_rate"),
                        dtype=jnp.dtype(mcfg.get("dtype", "float32")),
                        source=config.get("init", {}).get("source") or None)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.uint8)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)


def inspect(config, phase: int = 0, num_classes: int = 10) -> list[Row]:
  """The table of phase ``phase`` of ``config`` (see ``rows``), without training.

  Args:
    config: an experiment config (``model``, ``data.image_size``,
      ``param_groups``, optional ``phases``).
    phase: index into ``config.phases`` (0 without phases).
    num_classes: size of the new head (only its shape depends on it).
  """
  variables = abstract_variables(config, num_classes)
  plan = Plan.from_config(config, variables)
  if not 0 <= phase < len(plan):
    raise ValueError(f"--phase {phase}: this config has {len(plan)} phase(s), 0..{len(plan) - 1} (config.phases).")
  return rows(variables["params"], plan, phase)


def _fmt_lr(lo: float, hi: float) -> str:
  return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"


def format_table(table: list[Row], title: str = "") -> str:
  """The rows as aligned text, then the per-group totals."""
  head = ("path", "shape", "size", "group", "trainable", "lr_mult", "bn")
  cells = [(r.path, "x".join(map(str, r.shape)) or "()", f"{r.size:,}", r.group, "yes" if r.trainable else "no",
            f"{r.lr_mult:.4g}", r.bn) for r in table]
  widths = [max(len(c[i]) for c in [head] + cells) for i in range(len(head))]
  right = {1, 2, 5}
  line = lambda c: "  ".join(s.rjust(w) if i in right else s.ljust(w) for i, (s, w) in enumerate(zip(c, widths)))
  lines = ([title] if title else []) + [line(head), line(tuple("-" * w for w in widths))]
  lines += [line(c) for c in cells]
  total = sum(r.size for r in table)
  lines += ["", f"{'group':<14}{'tensors':>8}{'params':>13}{'share':>8}  trainable  lr_mult      BatchNorm layers"]
  for label, t in sorted(totals(table).items()):
    bn = ", ".join(f"{n} {mode}" for mode, n in sorted(t["bn_layers"].items())) or NO_BN
    lines.append(f"{label:<14}{t['tensors']:>8}{t['size']:>13,}{t['size'] / total:>8.1%}  "
                 f"{'yes' if t['trainable'] else 'no':<9}  {_fmt_lr(t['lr_min'], t['lr_max']):<11}  {bn}")
  trained = sum(r.size for r in table if r.trainable)
  lines.append(f"{'total':<14}{len(table):>8}{total:>13,}{1:>8.0%}  trained: {trained:,} ({trained / total:.1%})")
  return "\n".join(lines)


def to_json(table: list[Row]) -> dict[str, Any]:
  """``{'rows': [...], 'totals': {...}}``, JSON-ready."""
  return {"rows": [dataclasses.asdict(r) | {"shape": list(r.shape)} for r in table], "totals": totals(table)}


def write(workdir: str, plan: Plan, params: Mapping[str, Any]) -> str:
  """``param_groups.txt`` and ``.json`` in ``workdir``: every phase's table; returns the txt path."""
  n, start = len(plan), plan.starts
  tables = [rows(params, plan, p) for p in range(n)]
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "param_groups.txt")
  with open(path, "w") as f:
    f.write("\n\n".join(format_table(t, f"phase {p} (from step {start[p]})" if n > 1 else "")
                        for p, t in enumerate(tables)) + "\n")
  with open(os.path.join(workdir, "param_groups.json"), "w") as f:
    json.dump([{"phase": p, "start_step": start[p], **to_json(t)} for p, t in enumerate(tables)], f, indent=1)
  return path
