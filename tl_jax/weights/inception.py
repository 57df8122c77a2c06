"""Mapping tables: torchvision and Keras Inception-v3 keys -> tl_jax paths.

Both walk ``inception.stage_layout``, as the model does:

* torchvision: ``Conv2d_{1a_3x3,2a_3x3,2b_3x3,3b_1x1,4a_3x3}.{conv,bn}``,
  ``Mixed_{5b..7c}.<branch>.{conv,bn}``, ``fc``; the auxiliary classifier
  (``AuxLogits.*``, a training-time loss) is read and dropped.
* Keras (``keras.applications.InceptionV3``): its convolutions are not named
  (``conv2d_<k>`` / ``batch_normalization_<k>``, numbered in creation order,
  from 1 in the published files), so the table pairs the file's numbered
  names, sorted, with the layout's convolutions in the order Keras creates
  them, which the layout follows. BatchNorms have no gamma (``scale=False``).
  Keras 3's ``save_weights`` numbers them in ``model.layers`` order instead,
  which sorts a mixed block's layers by graph depth (``BlockSpec.keras_order``).
"""

from collections.abc import Collection
import re

from tl_jax.models import inception
from tl_jax.weights.keras import KINDS
from tl_jax.weights.mapping import Table, torch_bn, torch_conv, torch_dense

TORCHVISION_STEM = {"conv1a": "Conv2d_1a_3x3", "conv2a": "Conv2d_2a_3x3", "conv2b": "Conv2d_2b_3x3",
                    "conv3b": "Conv2d_3b_1x1", "conv4a": "Conv2d_4a_3x3"}
# InceptionAux(768): conv0 (1x1, 128), conv1 (5x5, 768), fc.
_AUX = ("AuxLogits.conv0", "AuxLogits.conv1")


def _paths(st, block, convs) -> list[tuple[str, str]]:
  if block.index < 0:
    return [(TORCHVISION_STEM[c.name], f"backbone/{st.stage}/{c.name}") for c in convs]
  return [(f"{inception.TORCHVISION_MIXED[block.index]}.{c.name}",
           f"backbone/{st.stage}/{block.block}/{c.name}") for c in convs]


def conv_paths(keras_order: bool = False) -> list[tuple[str, str]]:
  """``(torchvision prefix, tl_jax path)`` of every conv-BN, in creation order (or Keras 3's)."""
  return [p for st in inception.stage_layout() for block in st.blocks
          for p in _paths(st, block, block.keras_order() if keras_order else block.convs)]


def unused(table: Table) -> Table:
  return {k: (None, fn) for k, (_, fn) in table.items()}


def torchvision_table() -> Table:
  """torchvision ``inception_v3`` (with or without ``AuxLogits``)."""
  table = {}
  for src, dst in conv_paths():
    table |= torch_conv(f"{src}.conv", f"{dst}/conv") | torch_bn(f"{src}.bn", f"{dst}/bn")
  aux = torch_dense("AuxLogits.fc", "aux")
  for src in _AUX:
    aux |= torch_conv(f"{src}.conv", "aux") | torch_bn(f"{src}.bn", "aux")
  return table | unused(aux) | torch_dense("fc", "head")


def _numbered(keys: Collection[str], cls: str) -> list[str]:
  names = {k.split("/")[0] for k in keys if re.fullmatch(rf"{cls}(_\d+)?", k.split("/")[0])}
  return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]) if n != cls else 0)


def keras_table(keys: Collection[str]) -> Table:
  """``keras.applications.InceptionV3``, either .h5 key layout (``keys``: the file's)."""
  paths = conv_paths()
  if any(k.startswith("layers/") for k in keys):  # Keras 3: class-numbered in model.layers order
    n = lambda i: f"_{i}" if i else ""
    layers = [(f"conv2d{n(i)}", f"batch_normalization{n(i)}", p)
              for i, (_, p) in enumerate(conv_paths(keras_order=True))]
    key = lambda layer, i, var: f"layers/{layer}/vars/{i}"
    head = "layers/dense/vars/{}"
  else:
    convs, bns = _numbered(keys, "conv2d"), _numbered(keys, "batch_normalization")
    if keys and (len(convs) != len(paths) or len(bns) != len(paths)):
      raise ValueError(f"Expected {len(paths)} conv2d and batch_normalization layers for Inception-v3, "
                       f"found {len(convs)} and {len(bns)}: is the file for this model?")
    convs = convs or [f"conv2d_{i}" for i in range(1, len(paths) + 1)]
    bns = bns or [f"batch_normalization_{i}" for i in range(1, len(paths) + 1)]
    layers = [(c, b, p) for c, b, (_, p) in zip(convs, bns, paths)]
    key = lambda layer, i, var: f"{layer}/{layer}/{var}"
    head = "predictions/predictions/{}"
  table = {}
  for conv, bn, dst in layers:
    for kind, layer, path in (("conv_nobias", conv, f"{dst}/conv"), ("bn_noscale", bn, f"{dst}/bn")):
      for i, (var, target, fn) in enumerate(KINDS[kind].variables):
        table[key(layer, i, var)] = (target.format(path), fn)
  for i, (var, target, fn) in enumerate(KINDS["dense"].variables):
    table[head.format(i if "layers/" in head else var)] = (target.format("head"), fn)
  return table
