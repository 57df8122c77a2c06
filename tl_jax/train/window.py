"""The window: the step metrics since the last evaluation, which its ``metrics.jsonl`` record averages.

A checkpoint that no evaluation made (``train.checkpoint_every_steps``, a preemption) keeps the
window in its manifest (``to_json``); a run resumed from it starts with that window again
(``from_json``), so its next record averages the same steps, bit for bit, as an uninterrupted
run's. float32 values survive JSON exactly: a float64 holds every float32.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

_DTYPES = {"loss": np.float32, "accuracy": np.float32, "nonfinite": np.int32}


def to_json(window: Sequence[dict[str, Any]]) -> dict[str, list]:
  """The window's values (device arrays are fetched) as JSON lists, one per metric."""
  host = jax.device_get(list(window))
  return {key: [np.asarray(m[key]).item() for m in host] for key in _DTYPES}


def from_json(saved: dict[str, list] | None) -> list[dict[str, np.ndarray]]:
  """The window ``to_json`` saved, as the loop's per-step metrics (none: an empty window)."""
  if not saved:
    return []
  return [{key: np.asarray(saved[key][i], dtype) for key, dtype in _DTYPES.items()}
          for i in range(len(saved["loss"]))]
