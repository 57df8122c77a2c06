"""Freshly initialised variables, and the strict merge of converted pretrained weights into them."""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
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


# The initialiser runs once a run: XLA:CPU's -O1 compiles it ~40% faster than its default
# (Lite0 8.1 -> 4.9 s, ResNet-50 7.5 -> 4.7 s) into an executable as fast, with bit-equal values
# (BENCHMARKS.md, "Compilation cache: start-up time"). -O0 would change the values.
CPU_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def init_variables(model, image_size: int, key, loaded: Mapping[str, np.ndarray] | None = None, *,
                   dont_load: Sequence[str] = ()) -> dict[str, Any]:
  """``model``'s variables for ``image_size`` inputs: its random init with ``loaded`` merged in
  (:func:`merge`, ``dont_load`` as there).

  One jit (an init op by op compiles every primitive apart: ~15 s for a ResNet-18 on CPU)
  whose loaded entries are its inputs, so XLA drops their random initialisation.
  """
  def init(key, loaded):
    variables = model.init(key, jnp.zeros((1, image_size, image_size, 3), jnp.uint8))
    return merge(variables, loaded, dont_load=dont_load) if loaded else variables

  # Inside another trace (e.g. ``jax.eval_shape`` of a state) this jit is nested: no options there.
  top_level = not isinstance(key, jax.core.Tracer)
  options = CPU_INIT_COMPILER_OPTIONS if top_level and jax.default_backend() == "cpu" else None
  return jax.jit(init, compiler_options=options)(key, dict(loaded or {}))
