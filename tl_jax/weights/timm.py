"""Mapping tables: timm keys -> tl_jax paths, where timm's layout differs from torchvision's.

timm's ``resnet*`` keys are torchvision's (``torchvision.resnet_table``). Its
VGG keeps ``features.N`` but holds fc1/fc2 as convolutions in ``pre_logits``
(``fc1`` a 7x7 conv) and the classifier in ``head.fc``. Its MobileNetV2 and
``tf_efficientnet_lite*`` share the EfficientNet layout: ``conv_stem``/``bn1``,
``blocks.{stage}.{block}``, ``conv_head``/``bn2``, ``classifier``.
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


def efficientnet_table(base, width: float = 1.0, depth: float = 1.0) -> Table:
  """timm ``mobilenetv2_100`` (``base=MOBILENET_V2_STAGES``) or ``tf_efficientnet_lite*``."""
  table = torch_conv("conv_stem", "backbone/stem/conv") | torch_bn("bn1", "backbone/stem/bn")
  layout = efficientnet.block_layout(efficientnet.lite_stages(width, depth, base))
  for stage, block, _, _, spec in layout:
    src = f"blocks.{int(stage[5:]) - 1}.{int(block[5:]) - 1}"
    dst = f"backbone/{stage}/{block}"
    if spec.expand == 1:  # timm's DepthwiseSeparableConv
      names = (("conv_dw", "bn1", "depthwise"), ("conv_pw", "bn2", "project"))
    else:
      names = (("conv_pw", "bn1", "expand"), ("conv_dw", "bn2", "depthwise"),
               ("conv_pwl", "bn3", "project"))
    for conv, bn, ours in names:
      table |= torch_conv(f"{src}.{conv}", f"{dst}/{ours}_conv")
      table |= torch_bn(f"{src}.{bn}", f"{dst}/{ours}_bn")
  table |= torch_conv("conv_head", "backbone/top/conv") | torch_bn("bn2", "backbone/top/bn")
  return table | torch_dense("classifier", "head")
