"""PyTorch reference backbones for ``benchmark.py`` (torchvision is not installable here).

Same architectures as tl_jax's ``resnet50`` (torchvision v1.5: stride on the
3x3), ``vgg16`` (13 convs, global average pool), ``efficientnet_lite0``
(ReLU6 MBConv, no squeeze-excite; symmetric padding, which costs the same) and
``convnext_tiny``.
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


class CNBlock(nn.Module):
  """ConvNeXt block, channels-last inside as torchvision's (7x7 depthwise, LN, MLP, layer scale)."""

  def __init__(self, dim):
    super().__init__()
    self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
    self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
    self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

  def forward(self, x):
    y = self.fc2(nn.functional.gelu(self.fc1(self.norm(self.dw(x).permute(0, 2, 3, 1)))))
    return x + (self.gamma * y).permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
  def forward(self, x):
    return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def convnext_tiny():
  from tl_jax.models import convnext

  cfg = convnext.VARIANTS["convnext_tiny"]
  layers = [nn.Conv2d(3, cfg.widths[0], 4, 4), LayerNorm2d(cfg.widths[0], eps=1e-6)]
  for st in convnext.stage_layout(cfg):
    if st.downsample:
      layers += [LayerNorm2d(st.in_channels, eps=1e-6), nn.Conv2d(st.in_channels, st.channels, 2, 2)]
    layers += [CNBlock(st.channels) for _ in st.blocks]
  top = cfg.widths[-1]
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(top, eps=1e-6)), top


MODELS = {"resnet50": resnet50, "vgg16": vgg16, "efficientnet_lite0": efficientnet_lite0,
          "convnext_tiny": convnext_tiny}
