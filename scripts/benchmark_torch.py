"""PyTorch reference backbones for ``benchmark.py`` (torchvision is not installable here).

Same architectures as tl_jax's ``resnet50`` (torchvision v1.5: stride on the
3x3), ``vgg16`` (13 convs, global average pool) and ``efficientnet_lite0``
(ReLU6 MBConv, no squeeze-excite; symmetric padding, which costs the same).
Each constructor returns ``(backbone -> pooled features, feature width)``.
"""

import torch
from torch import nn


def _conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU):
  layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
  return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class Bottleneck(nn.Module):
  def __init__(self, cin, width, stride):
    super().__init__()
    cout = width * 4
    self.body = nn.Sequential(_conv_bn(cin, width, 1), _conv_bn(width, width, 3, stride),
                              _conv_bn(width, cout, 1, act=None))
    self.down = _conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

  def forward(self, x):
    return torch.relu(self.body(x) + self.down(x))


def resnet50():
  layers, cin = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
  for i, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
    for b in range(blocks):
      layers.append(Bottleneck(cin, width, 2 if b == 0 and i > 0 else 1))
      cin = width * 4
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 2048


def vgg16():
  layers, cin = [], 3
  for cout, n in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
    for _ in range(n):
      layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
      cin = cout
    layers.append(nn.MaxPool2d(2))
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 512


class MBConv(nn.Module):
  def __init__(self, cin, cout, k, stride, expand):
    super().__init__()
    hidden = cin * expand
    layers = [_conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
    layers += [_conv_bn(hidden, hidden, k, stride, groups=hidden, act=nn.ReLU6),
               _conv_bn(hidden, cout, 1, act=None)]
    self.body = nn.Sequential(*layers)
    self.residual = stride == 1 and cin == cout

  def forward(self, x):
    return self.body(x) + x if self.residual else self.body(x)


def efficientnet_lite0():
  from tl_jax.models import efficientnet

  layers = [_conv_bn(3, efficientnet.STEM_CHANNELS, 3, 2, act=nn.ReLU6)]
  for _, _, cin, stride, spec in efficientnet.block_layout(efficientnet.lite_stages(1.0, 1.0)):
    layers.append(MBConv(cin, spec.channels, spec.kernel, stride, spec.expand))
  top = efficientnet.TOP_CHANNELS
  layers.append(_conv_bn(layers[-1].body[-1][0].out_channels, top, 1, act=nn.ReLU6))
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), top


MODELS = {"resnet50": resnet50, "vgg16": vgg16, "efficientnet_lite0": efficientnet_lite0}
