"""Strict merge of converted pretrained weights into freshly initialised variables."""

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from tl_jax import partition


def merge(
    variables: Mapping[str, Any],
    loaded: Mapping[str, np.ndarray],
    *,
    dont_load: Sequence[str] = (),
) -> dict[str, Any]:
  """Replaces initialised variables with the loaded ones, strictly.

  Args:
    variables: ``{'params': ..., 'batch_stats': ...}`` from ``model.init``.
    loaded: ``{'params/backbone/stem/conv/kernel': array, ...}`` (collection-
      prefixed paths, as produced by the mapping tables).
    dont_load: regexes full-matched against the path *without* the collection
      (``head/kernel``): those variables keep their initial values and any
      loaded value for them is dropped (the new head, typically).

  Returns:
    A new variables tree with every other entry taken from ``loaded``.

  Raises:
    ValueError: listing every missing, unexpected and wrongly-shaped entry.
  """
  target = partition.flatten(variables)

  def skipped(path: str) -> bool:
    return partition.matches_any(path.split("/", 1)[1], dont_load)

  missing = [p for p in target if not skipped(p) and p not in loaded]
  unexpected = [p for p in loaded if p not in target and not skipped(p)]
  wrong = [
      f"{p}: expected {tuple(target[p].shape)}, got {tuple(np.shape(loaded[p]))}"
      for p in target
      if not skipped(p) and p in loaded and tuple(np.shape(loaded[p])) != tuple(target[p].shape)
  ]
  if missing or unexpected or wrong:
    lines = ["Pretrained weights do not match the model:"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
      if items:
        lines.append(f"  {len(items)} {title}:\n    " + "\n    ".join(items))
    lines.append(
        "Use the weights of the same architecture, or exclude entries with dont_load "
        "(regexes on paths like 'head/.*')."
    )
    raise ValueError("\n".join(lines))
  merged = {
      p: v if skipped(p) else jnp.asarray(loaded[p], dtype=v.dtype) for p, v in target.items()
  }
  return partition.unflatten(merged)
