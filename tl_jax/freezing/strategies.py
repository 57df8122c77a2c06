"""Transfer strategies as config: presets that expand to partition rules, and phases.

A preset is a dict in ``config.param_groups.preset`` (instead of ``rules``)::

  param_groups.preset = dict(name="top_k_stages", k=2)
  param_groups.backbone = dict(lr_mult=0.1)

``PRESETS`` maps its ``name`` to a function of the parameter paths (and the
preset's other keys) that returns rules labelling every parameter ``head``,
``backbone`` (trained) or ``frozen``:

- ``linear_probe``: the head only.
- ``top_k_stages`` (``k``): the last ``k`` backbone stages, the ``top`` conv and
  the head (partial transfer).
- ``freeze_first_k`` (``k``): the first ``k`` of ``stem, stage1..N`` frozen, the
  rest trained (``k=0``: everything; ``k=N+1``: the layers after the last stage
  and the head), the fine-tuning half of a cut-point sweep (Yosinski et al., 2014).
- ``layers`` (``patterns``): the parameters matching any of the regexes, and the
  head.
- ``full`` and ``scratch``: everything (``scratch`` also needs
  ``init.pretrained=False``: same architecture, random init).

Stages are read from the paths: a backbone names its children ``stem``,
``stage1..N`` and the layers after the last stage (``TOP_UNITS``: the ``top``
conv, MobileNetV3's ``top_fc``, VGG's ``fc1``/``fc2``), so depth needs no per-architecture table.

Phases (gradual unfreezing, LP-FT) are ``config.phases``: a tuple of
``(start_step, param_groups overrides)``; see ``phase_groups``.
"""

from collections.abc import Iterable, Mapping, Sequence
import re
from typing import Any

HEAD, BACKBONE, FROZEN = "head", "backbone", "frozen"
LABELS = (HEAD, BACKBONE, FROZEN)  # what presets label parameters with
_STAGE = re.compile(r"backbone/stage(\d+)(/.*)?")
# Backbone children after the last stage, in depth order (``top_k_stages`` trains them all).
TOP_UNITS = ("top", "top_fc", "fc1", "fc2")


def backbone_units(paths: Iterable[str]) -> list[str]:
  """The backbone's children in depth order: ``stem``, ``stage1..N``, then the ``TOP_UNITS`` present."""
  children = {p.split("/")[1] for p in paths if p.startswith("backbone/")}
  stages = sorted((c for c in children if re.fullmatch(r"stage\d+", c)), key=lambda c: int(c[5:]))
  unknown = children - set(stages) - {"stem", *TOP_UNITS}
  if unknown:
    raise ValueError(f"Backbone children {sorted(unknown)} are none of stem, stage<N>, "
                     f"{', '.join(TOP_UNITS)}: depth-based strategies need those names.")
  return ([c for c in ("stem",) if c in children] + stages
          + [c for c in TOP_UNITS if c in children])


def depth(path: str, units: Sequence[str]) -> int:
  """Distance of a parameter from the head: head 0, ``top`` 1, last stage 2, ... stem N+2."""
  if not path.startswith("backbone/"):
    return 0
  return len(units) - units.index(path.split("/")[1])


def linear_probe(paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
  del paths
  return ((f"{HEAD}/.*", HEAD), (".*", FROZEN))


def top_k_stages(paths: Iterable[str], k: int) -> tuple[tuple[str, str], ...]:
  units = backbone_units(paths)
  stages = [u for u in units if u.startswith("stage")]
  if not 0 <= k <= len(stages):
    raise ValueError(f"top_k_stages: k={k} but the backbone has {len(stages)} stages (0..{len(stages)}).")
  trained = stages[len(stages) - k:] + [u for u in units if u in TOP_UNITS] if k else []
  rules = [(f"{HEAD}/.*", HEAD)]
  if trained:
    rules.append((f"backbone/({'|'.join(trained)})/.*", BACKBONE))
  return tuple(rules) + ((".*", FROZEN),)


def freeze_first_k(paths: Iterable[str], k: int) -> tuple[tuple[str, str], ...]:
  cuts = [u for u in backbone_units(paths) if u not in TOP_UNITS]  # stem, stage1..N
  if not 0 <= k <= len(cuts):
    raise ValueError(f"freeze_first_k: k={k} but the backbone has {len(cuts)} units before its top "
                     f"({', '.join(cuts)}): use 0..{len(cuts)}.")
  if not k:
    return full(paths)
  return ((f"{HEAD}/.*", HEAD), (f"backbone/({'|'.join(cuts[:k])})/.*", FROZEN), (".*", BACKBONE))


def layers(paths: Iterable[str], patterns: Sequence[str]) -> tuple[tuple[str, str], ...]:
  del paths
  if not patterns or isinstance(patterns, str):
    raise ValueError(f"layers: patterns must be a non-empty tuple of regexes, got {patterns!r}.")
  return ((f"{HEAD}/.*", HEAD),) + tuple((p, BACKBONE) for p in patterns) + ((".*", FROZEN),)


def full(paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
  del paths
  return ((f"{HEAD}/.*", HEAD), (".*", BACKBONE))


# Plain-dict registry: param_groups.preset.name -> rules(paths, **args).
PRESETS = {"linear_probe": linear_probe, "top_k_stages": top_k_stages,
           "freeze_first_k": freeze_first_k, "layers": layers,
           "full": full, "scratch": full}


def rules(cfg: Mapping[str, Any], paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
  """The rules of a ``param_groups`` config: its ``rules``, or its ``preset`` expanded."""
  has_rules, preset = bool(cfg.get("rules")), cfg.get("preset")
  if has_rules == bool(preset):
    raise ValueError("param_groups needs exactly one of `rules` (a tuple of (regex, label)) "
                     f"and `preset` (dict(name=one of {sorted(PRESETS)}, ...)).")
  if has_rules:
    return tuple(tuple(r) for r in cfg["rules"])
  args = dict(preset)
  name = args.pop("name", None)
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; known: {sorted(PRESETS)}.")
  try:
    return PRESETS[name](list(paths), **args)
  except TypeError as e:
    raise ValueError(f"Preset {name!r} got arguments {args}: {e}") from e


def _plain(tree: Any) -> Any:
  """A ConfigDict (not a ``Mapping``) or dict as nested plain dicts."""
  tree = tree.to_dict() if hasattr(tree, "to_dict") else tree
  return {k: _plain(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def phases(config) -> list[tuple[int, dict[str, Any]]]:
  """``config.phases`` validated: ``[(start_step, overrides), ...]``, first at step 0.

  Without phases there is one, starting at 0 with no overrides.
  """
  raw = config.get("phases") or ((0, {}),)
  out = [(int(step), dict(over)) for step, over in raw]
  starts = [s for s, _ in out]
  if starts[0] != 0 or starts != sorted(set(starts)):
    raise ValueError(f"config.phases must start at step 0 and increase strictly; got steps {starts}.")
  return out


def phase_at(config, step: int) -> int:
  """Index of the phase that trains step ``step`` (0-based)."""
  return max(i for i, (start, _) in enumerate(phases(config)) if start <= step)


def phase_groups(config, phase: int) -> dict[str, Any]:
  """``config.param_groups`` with phase ``phase``'s overrides.

  A phase's ``rules`` or ``preset`` replaces the base one; its label settings
  update the base ones key by key (e.g. ``dict(backbone=dict(lr_mult=0.01))``).
  """
  base = _plain(config.param_groups)
  over = _plain(phases(config)[phase][1])
  if "rules" in over or "preset" in over:
    base.pop("rules", None), base.pop("preset", None)
  for key, value in over.items():
    if isinstance(value, Mapping) and isinstance(base.get(key), Mapping) and key != "preset":
      base[key] = {**base[key], **value}
    else:
      base[key] = value
  return base
