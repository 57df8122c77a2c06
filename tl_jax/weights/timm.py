"""Mapping tables: timm keys -> tl_jax paths, where timm's layout differs from torchvision's.

timm's ``resnet*`` keys are torchvision's (``torchvision.resnet_table``). Its
VGG keeps ``features.N`` but holds fc1/fc2 as convolutions in ``pre_logits``
(``fc1`` a 7x7 conv) and the classifier in ``head.fc``. Its MobileNetV2 and
``tf_efficientnet_lite*`` share the EfficientNet layout: ``conv_stem``/``bn1``,
``blocks.{stage}.{block}``, ``conv_head``/``bn2``, ``classifier``; its
MobileNetV3 puts the top conv in a last stage and ``conv_head`` after pooling.
"""

import numpy as np

from tl_jax.models import efficientnet
from tl_jax.weights.mapping import Table, identity, torch_bn, torch_conv, torch_dense
from tl_jax.weights.torchvision import unused, vgg_fc1, vgg_features_table


def conv1x1_dense(x: np.ndarray) -> np.ndarray:
  """A 1x1 conv weight (out, in, 1, 1) -> Flax Dense kernel (in, out)."""
  return x.reshape(x.shape[:2]).T


def vgg_table(depth: int, batch_norm: bool, top: str) -> Table:
  """timm ``vgg{depth}[_bn]``."""
  fc = {"pre_logits.fc1.weight": ("params/backbone/fc1/kernel", vgg_fc1),
        "pre_logits.fc1.bias": ("params/backbone/fc1/bias", identity),
        "pre_logits.fc2.weight": ("params/backbone/fc2/kernel", conv1x1_dense),
        "pre_logits.fc2.bias": ("params/backbone/fc2/bias", identity)}
  table = vgg_features_table(depth, batch_norm)
  if top == "fc":
    return table | fc | torch_dense("head.fc", "head")
  return table | unused(fc | torch_dense("head.fc", "head"))


# timm's key names of a block's parts, by the block kind its row names: part -> (conv, bn).
_PARTS = {
    efficientnet.DepthwiseSeparable: {"depthwise": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")},
    efficientnet.MBConv: {"expand": ("conv_pw", "bn1"), "depthwise": ("conv_dw", "bn2"),
                          "project": ("conv_pwl", "bn3")},
    efficientnet.FusedMBConv: {"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")},
}
_CONV_BN_ACT = {"project": ("conv", "bn1")}  # timm's ConvBnAct: a FusedMBConv with expand 1


def efficientnet_table(variant: str) -> Table:
  """timm's EfficientNet layout: ``mobilenetv2_100``, ``tf_efficientnet_lite*``, ``tf_efficientnet_b*``.

  ``blocks.{stage - 1}.{block - 1}`` hold the blocks, ``se.conv_reduce``/``conv_expand``
  their squeeze-excite.
  """
  table = torch_conv("conv_stem", "backbone/stem/conv") | torch_bn("bn1", "backbone/stem/bn")
  for spec in efficientnet.block_layout(efficientnet.VARIANTS[variant]):
    src = f"blocks.{spec.stage - 1}.{spec.block - 1}"
    names = _PARTS[type(spec.row)]
    if isinstance(spec.row, efficientnet.FusedMBConv) and spec.row.expand == 1:
      names = _CONV_BN_ACT
    for part in spec.parts:
      if part.kind == "se":
        table |= torch_conv(f"{src}.se.conv_reduce", f"{spec.path}/se/reduce", bias=True)
        table |= torch_conv(f"{src}.se.conv_expand", f"{spec.path}/se/expand", bias=True)
      else:
        conv, bn = names[part.name]
        table |= torch_conv(f"{src}.{conv}", f"{spec.path}/{part.name}_conv")
        table |= torch_bn(f"{src}.{bn}", f"{spec.path}/{part.name}_bn")
  row = efficientnet.VARIANTS[variant]
  if efficientnet.ARCHS[row.arch].top_fc:
    # MobileNetV3: the top conv is a last ConvBnAct stage; conv_head is a 1x1 conv on the pooled map.
    top = f"blocks.{len(efficientnet.ARCHS[row.arch].stages)}.0"
    table |= torch_conv(f"{top}.conv", "backbone/top/conv") | torch_bn(f"{top}.bn1", "backbone/top/bn")
    table |= {"conv_head.weight": ("params/backbone/top_fc/kernel", conv1x1_dense),
              "conv_head.bias": ("params/backbone/top_fc/bias", identity)}
  else:
    table |= torch_conv("conv_head", "backbone/top/conv") | torch_bn("bn2", "backbone/top/bn")
  return table | torch_dense("classifier", "head")
