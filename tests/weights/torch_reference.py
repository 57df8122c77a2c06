"""Reference PyTorch models in torchvision's and timm's key layouts (torchvision has no CPU wheel here).

Written from the published architectures, independently of tl_jax: they are
what the converted weights must reproduce.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


def randomize(model: nn.Module, seed: int) -> nn.Module:
  """Seeded He-normal convs and non-trivial BatchNorm affine and running statistics."""
  torch.manual_seed(seed)
  for m in model.modules():
    if isinstance(m, nn.Conv2d):
      fan_in = m.weight[0].numel()
      nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
      if m.bias is not None:
        nn.init.normal_(m.bias, 0.0, 0.1)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.uniform_(m.weight, 0.4, 1.0)
      nn.init.normal_(m.bias, 0.0, 0.1)
      m.running_mean.normal_(0.0, 0.2)
      m.running_var.uniform_(0.5, 2.0)
      m.num_batches_tracked.fill_(7)
    elif isinstance(m, nn.Linear):
      nn.init.normal_(m.weight, 0.0, math.sqrt(1.0 / m.in_features))
      nn.init.normal_(m.bias, 0.0, 0.1)
  return model.eval()


# --- torchvision ResNet -------------------------------------------------------

class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, inp, planes, stride, downsample):
    super().__init__()
    self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = downsample

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, inp, planes, stride, downsample):
    super().__init__()
    self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # v1.5
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.downsample = downsample

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = F.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return F.relu(y + (x if self.downsample is None else self.downsample(x)))


RESNETS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
           50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
           152: (Bottleneck, (3, 8, 36, 3))}


class ResNet(nn.Module):
  def __init__(self, depth, num_classes=1000):
    super().__init__()
    block, repeats = RESNETS[depth]
    self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    inp = 64
    for i, (n, planes) in enumerate(zip(repeats, (64, 128, 256, 512)), start=1):
      layers = []
      for b in range(n):
        stride = 2 if b == 0 and i > 1 else 1
        down = None
        if stride != 1 or inp != planes * block.expansion:
          down = nn.Sequential(nn.Conv2d(inp, planes * block.expansion, 1, stride, bias=False),
                               nn.BatchNorm2d(planes * block.expansion))
        layers.append(block(inp, planes, stride, down))
        inp = planes * block.expansion
      setattr(self, f"layer{i}", nn.Sequential(*layers))
    self.fc = nn.Linear(inp, num_classes)

  def forward(self, x):
    x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
    for i in range(1, 5):
      x = getattr(self, f"layer{i}")(x)
    return self.fc(x.mean((2, 3)))


# --- VGG: torchvision (classifier.0/3/6) and timm (pre_logits ConvMlp, head.fc) ---

VGGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def vgg_features(depth, batch_norm):
  layers, inp = [], 3
  for n, ch in zip(VGGS[depth], (64, 128, 256, 512, 512)):
    for _ in range(n):
      layers += [nn.Conv2d(inp, ch, 3, padding=1)]
      layers += [nn.BatchNorm2d(ch)] if batch_norm else []
      layers += [nn.ReLU()]
      inp = ch
    layers.append(nn.MaxPool2d(2, 2))
  return nn.Sequential(*layers)


class VGG(nn.Module):
  """torchvision's VGG; ``fc`` is 4096 there (smaller here for speed)."""

  def __init__(self, depth, batch_norm, num_classes=1000, fc=4096):
    super().__init__()
    self.features = vgg_features(depth, batch_norm)
    self.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, fc), nn.ReLU(), nn.Dropout(), nn.Linear(fc, fc), nn.ReLU(),
        nn.Dropout(), nn.Linear(fc, num_classes))

  def forward(self, x, pooled=False):
    x = self.features(x)
    if pooled:  # global pooling of the last stage: what tl_jax's top="pool" computes
      return x.mean((2, 3))
    return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 7), 1))


class ConvMlp(nn.Module):
  def __init__(self, fc):
    super().__init__()
    self.fc1 = nn.Conv2d(512, fc, 7)
    self.fc2 = nn.Conv2d(fc, fc, 1)

  def forward(self, x):
    if x.shape[-2] < 7 or x.shape[-1] < 7:
      x = F.adaptive_avg_pool2d(x, (max(7, x.shape[-2]), max(7, x.shape[-1])))
    return F.relu(self.fc2(F.relu(self.fc1(x))))


class Head(nn.Module):
  def __init__(self, fc, num_classes):
    super().__init__()
    self.fc = nn.Linear(fc, num_classes)

  def forward(self, x):
    return self.fc(x.mean((2, 3)))


class TimmVGG(nn.Module):
  def __init__(self, depth, batch_norm, num_classes=1000, fc=4096):
    super().__init__()
    self.features = vgg_features(depth, batch_norm)
    self.pre_logits = ConvMlp(fc)
    self.head = Head(fc, num_classes)

  def forward(self, x):
    return self.head(self.pre_logits(self.features(x)))


# --- MobileNetV2 / EfficientNet-Lite ------------------------------------------

# (kernel, stride, expansion, channels, repeats)
MOBILENET_V2 = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (3, 2, 6, 32, 3), (3, 2, 6, 64, 4),
                (3, 1, 6, 96, 3), (3, 2, 6, 160, 3), (3, 1, 6, 320, 1))
LITE0 = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
         (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))


def lite(width, depth):
  """EfficientNet-Lite scaling of LITE0: channels x width (rounded to 8), repeats x depth
  (ceil), except the first and last stage's repeats; stem and head stay 32 and 1280."""
  def channels(c):
    r = max(8, int(c * width + 4) // 8 * 8)
    return r + 8 if r < 0.9 * c * width else r
  last = len(LITE0) - 1
  return tuple((k, s, e, channels(c), n if i in (0, last) else math.ceil(n * depth))
               for i, (k, s, e, c, n) in enumerate(LITE0))


LITES = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2), 3: (1.2, 1.4), 4: (1.4, 1.8)}


class Conv(nn.Conv2d):
  """A conv with TF "SAME" padding (``tf_same``) or torch's symmetric k//2."""

  def __init__(self, inp, out, k, stride=1, groups=1, tf_same=False):
    super().__init__(inp, out, k, stride, 0 if tf_same else k // 2, groups=groups, bias=False)
    self.tf_same = tf_same

  def forward(self, x):
    if self.tf_same:
      k, s = self.kernel_size[0], self.stride[0]
      pads = []
      for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
      x = F.pad(x, pads)
    return super().forward(x)


def conv_bn(inp, out, k, stride=1, groups=1, eps=1e-5, tf_same=False):
  """torchvision's Conv2dNormActivation: ``.0`` conv, ``.1`` bn, ReLU6."""
  return nn.Sequential(Conv(inp, out, k, stride, groups, tf_same), nn.BatchNorm2d(out, eps=eps),
                       nn.ReLU6())


class InvertedResidual(nn.Module):
  """torchvision's block: ``conv.0`` [expand], ``conv.1`` depthwise, then project conv + bn."""

  def __init__(self, inp, out, k, stride, expand):
    super().__init__()
    hidden = inp * expand
    layers = [conv_bn(inp, hidden, 1)] if expand != 1 else []
    layers += [conv_bn(hidden, hidden, k, stride, hidden), nn.Conv2d(hidden, out, 1, bias=False),
               nn.BatchNorm2d(out)]
    self.conv = nn.Sequential(*layers)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    return x + self.conv(x) if self.skip else self.conv(x)


class MobileNetV2(nn.Module):
  """torchvision's ``mobilenet_v2``."""

  def __init__(self, num_classes=1000):
    super().__init__()
    layers, inp = [conv_bn(3, 32, 3, 2)], 32
    for k, s, e, c, n in MOBILENET_V2:
      for b in range(n):
        layers.append(InvertedResidual(inp, c, k, s if b == 0 else 1, e))
        inp = c
    layers.append(conv_bn(inp, 1280, 1))
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

  def forward(self, x):
    return self.classifier(self.features(x).mean((2, 3)))


class TimmBlock(nn.Module):
  """timm's DepthwiseSeparableConv (expand 1) or InvertedResidual, no squeeze-excite."""

  def __init__(self, inp, out, k, stride, expand, eps, tf_same):
    super().__init__()
    hidden = inp * expand
    self.expand = expand
    if expand == 1:
      self.conv_dw = Conv(inp, inp, k, stride, inp, tf_same)
      self.bn1 = nn.BatchNorm2d(inp, eps=eps)
      self.conv_pw = Conv(inp, out, 1)
      self.bn2 = nn.BatchNorm2d(out, eps=eps)
    else:
      self.conv_pw = Conv(inp, hidden, 1)
      self.bn1 = nn.BatchNorm2d(hidden, eps=eps)
      self.conv_dw = Conv(hidden, hidden, k, stride, hidden, tf_same)
      self.bn2 = nn.BatchNorm2d(hidden, eps=eps)
      self.conv_pwl = Conv(hidden, out, 1)
      self.bn3 = nn.BatchNorm2d(out, eps=eps)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    if self.expand == 1:
      y = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
    else:
      y = F.relu6(self.bn1(self.conv_pw(x)))
      y = F.relu6(self.bn2(self.conv_dw(y)))
      y = self.bn3(self.conv_pwl(y))
    return x + y if self.skip else y


class TimmEfficientNet(nn.Module):
  """timm's ``mobilenetv2_100`` (eps 1e-5, torch padding) or ``tf_efficientnet_lite0``
  (eps 1e-3, TF "SAME" padding)."""

  def __init__(self, stages, eps, tf_same, num_classes=1000):
    super().__init__()
    self.conv_stem = Conv(3, 32, 3, 2, tf_same=tf_same)
    self.bn1 = nn.BatchNorm2d(32, eps=eps)
    blocks, inp = [], 32
    for k, s, e, c, n in stages:
      stage = []
      for b in range(n):
        stage.append(TimmBlock(inp, c, k, s if b == 0 else 1, e, eps, tf_same))
        inp = c
      blocks.append(nn.Sequential(*stage))
    self.blocks = nn.Sequential(*blocks)
    self.conv_head = Conv(inp, 1280, 1)
    self.bn2 = nn.BatchNorm2d(1280, eps=eps)
    self.classifier = nn.Linear(1280, num_classes)

  def forward(self, x):
    x = F.relu6(self.bn1(self.conv_stem(x)))
    x = F.relu6(self.bn2(self.conv_head(self.blocks(x))))
    return self.classifier(x.mean((2, 3)))
