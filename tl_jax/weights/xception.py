"""Mapping table: ``keras.applications.Xception`` (.h5) -> tl_jax paths.

Walks ``xception.block_layout``, as the model does. Keras names
``block1_conv{1,2}[_bn]`` and ``block{k}_sepconv{i}[_bn]``; the four
shortcut convolutions and their BatchNorms are unnamed (``conv2d[_n]``,
``batch_normalization[_n]``, numbered in creation order, from 1 in the
published file), so the table pairs the file's numbered names, sorted, with
the shortcut blocks in order. Keras 3 files number every layer by class in
``model.layers`` order: within a shortcut block the separable BNs come before
the shortcut's (graph depth), the shortcut conv after block 1's two convs.
"""

from collections.abc import Collection
import re

from tl_jax.models import xception
from tl_jax.weights import keras
from tl_jax.weights.mapping import Table


def _numbered(keys: Collection[str], cls: str) -> list[str]:
  names = {k.split("/")[0] for k in keys if re.fullmatch(rf"{cls}(_\d+)?", k.split("/")[0])}
  return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]) if n != cls else 0)


def keras_layers(residual_names: list[str] | None = None) -> keras.Layers:
  """The layers in ``model.layers`` order; ``residual_names``: the shortcut (conv, bn) names."""
  shortcuts = [s for s in xception.block_layout() if s.shortcut]
  names = residual_names or [(f"conv2d_{i}", f"batch_normalization_{i}") for i in range(1, len(shortcuts) + 1)]
  layers = []
  for i in (1, 2):
    layers += [(f"block1_conv{i}", "conv_nobias", f"backbone/stem/conv{i}/conv"),
               (f"block1_conv{i}_bn", "bn", f"backbone/stem/conv{i}/bn")]
  for spec in xception.block_layout():
    dst = f"backbone/{spec.stage}/{spec.block}"
    for i in range(1, len(spec.widths) + 1):
      src = f"block{spec.index}_sepconv{i}"
      layers += [(src, "separable", f"{dst}/sepconv{i}"), (f"{src}_bn", "bn", f"{dst}/sepconv{i}_bn")]
    if spec.shortcut:
      conv, bn = names[shortcuts.index(spec)]
      layers += [(conv, "conv_nobias", f"{dst}/shortcut_conv"), (bn, "bn", f"{dst}/shortcut_bn")]
  return layers + [("predictions", "dense", "head")]


def keras_table(keys: Collection[str]) -> Table:
  """The Table of a Keras Xception file whose keys are ``keys`` (either layout)."""
  if any(k.startswith("layers/") for k in keys):
    return keras.table(keras_layers(), "keras3")
  convs, bns = _numbered(keys, "conv2d"), _numbered(keys, "batch_normalization")
  return keras.table(keras_layers(list(zip(convs, bns)) or None), "legacy")
