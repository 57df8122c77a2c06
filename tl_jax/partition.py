"""Parameter paths and ``(regex, label)`` rules.

One convention drives freezing, per-group learning rates, BatchNorm modes and
which pretrained weights not to load: an ordered list of ``(regex, label)``
rules, each regex full-matched against the ``/``-joined path of a parameter
(``backbone/stage3/block2/expand_conv/kernel``), the first match winning.
Every parameter must be covered; otherwise the error lists the uncovered paths.
"""

from collections.abc import Iterable, Mapping, Sequence
import re
from typing import Any

import flax.traverse_util
import jax

Rules = Sequence[tuple[str, str]]


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
  """``{'a': {'b': x}} -> {'a/b': x}`` (the path convention of this package)."""
  return flax.traverse_util.flatten_dict(tree, sep="/")


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """Inverse of ``flatten``."""
  return flax.traverse_util.unflatten_dict(dict(flat), sep="/")


def _compile(rules: Rules) -> list[tuple[re.Pattern, str]]:
  try:
    return [(re.compile(pattern), label) for pattern, label in rules]
  except (TypeError, ValueError) as e:
    raise ValueError(f"Rules must be (regex, label) pairs, got {rules!r}: {e}") from e


def label_paths(paths: Iterable[str], rules: Rules) -> dict[str, str]:
  """Labels every path with its first full-matching rule; all must be covered."""
  compiled = _compile(rules)
  labels, uncovered = {}, []
  for path in paths:
    label = next((lab for rx, lab in compiled if rx.fullmatch(path)), None)
    if label is None:
      uncovered.append(path)
    labels[path] = label
  if uncovered:
    shown = "\n  ".join(uncovered[:50]) + ("\n  ..." if len(uncovered) > 50 else "")
    raise ValueError(
        f"{len(uncovered)} parameter(s) match no rule in {list(rules)!r}:\n  {shown}\n"
        "Add a rule for them, e.g. a final ('.*', 'frozen') catch-all."
    )
  return labels


def label_tree(params: Mapping[str, Any], rules: Rules) -> dict[str, Any]:
  """A tree shaped like ``params`` whose leaves are the rule labels."""
  return unflatten(label_paths(flatten(params), rules))


def matches_any(path: str, patterns: Sequence[str]) -> bool:
  """Whether ``path`` full-matches one of the regexes (e.g. ``dont_load``)."""
  return any(re.fullmatch(p, path) for p in patterns)


def count(tree: Any) -> int:
  """Number of scalars in a tree of arrays."""
  return sum(int(x.size) for x in jax.tree.leaves(tree))
