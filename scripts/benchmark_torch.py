"""PyTorch reference backbones for ``benchmark.py`` (torchvision is not installable here).

Same architectures as tl_jax's ``resnet50`` (torchvision v1.5: stride on the
3x3), ``vgg16`` (13 convs, global average pool), ``efficientnet_lite0`` (ReLU6
MBConv, no squeeze-excite; symmetric padding, which costs the same) and
``efficientnet_b0`` (swish, squeeze-excite), built from the same block layout.
Each constructor returns ``(backbone -> pooled features, feature width)``.
"""

import functools

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


_ACTS = {"relu6": nn.ReLU6, "swish": nn.SiLU, "relu": nn.ReLU, "hard_swish": nn.Hardswish,
         "sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid, "identity": None}


class SqueezeExcite(nn.Module):
  def __init__(self, cin, reduced, act, gate):
    super().__init__()
    self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, reduced, 1), _ACTS[act](),
                              nn.Conv2d(reduced, cin, 1), _ACTS[gate]())

  def forward(self, x):
    return x * self.body(x)


class InvertedResidual(nn.Module):
  """One block of tl_jax's ``efficientnet.block_layout``: its parts in order."""

  def __init__(self, spec):
    super().__init__()
    layers, cin = [], spec.in_channels
    for part in spec.parts:
      if part.kind == "se":
        layers.append(SqueezeExcite(cin, part.features, part.act, part.gate))
        continue
      groups = cin if part.kind == "depthwise" else 1
      layers.append(_conv_bn(cin, part.features, part.kernel, part.stride, groups, _ACTS[part.act]))
      cin = part.features
    self.body = nn.Sequential(*layers)
    self.residual = spec.skip

  def forward(self, x):
    return self.body(x) + x if self.residual else self.body(x)


def inverted_residual(name):
  """An ``efficientnet.VARIANTS`` backbone (MobileNetV2, EfficientNet-Lite/B)."""
  from tl_jax.models import efficientnet

  variant = efficientnet.VARIANTS[name]
  act = _ACTS[efficientnet.ARCHS[variant.arch].act]
  layout = efficientnet.block_layout(variant)
  layers = [_conv_bn(3, efficientnet.stem_width(variant), 3, 2, act=act)]
  layers += [InvertedResidual(spec) for spec in layout]
  top = efficientnet.top_width(variant)
  layers.append(_conv_bn(layout[-1].out_channels, top, 1, act=act))
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), top


MODELS = {"resnet50": resnet50, "vgg16": vgg16,
          "efficientnet_lite0": functools.partial(inverted_residual, "efficientnet_lite0"),
          "efficientnet_b0": functools.partial(inverted_residual, "efficientnet_b0")}
