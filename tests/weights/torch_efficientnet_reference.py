"""Reference EfficientNet-B* and MobileNetV3 in torchvision's and timm's key layouts, written from the published
architectures (torchvision ``models/efficientnet.py``, timm ``_efficientnet_blocks.py``),
independently of tl_jax."""

import math

import torch
from torch import nn
import torch.nn.functional as F

from torch_reference import Conv

# EfficientNet-B0 (expand, kernel, stride, in, out, repeats), squeeze-excite 0.25 everywhere.
B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
      (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
SCALING = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2), 3: (1.2, 1.4), 4: (1.4, 1.8),
           5: (1.6, 2.2), 6: (1.8, 2.6), 7: (2.0, 3.1)}


def make_divisible(v, divisor=8):
  new = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new + divisor if new < 0.9 * v else new


def scaled(k):
  """B{k}'s stages: widths x width (rounded to 8), repeats x depth (ceil), stem and top scaled."""
  width, depth = SCALING[k]
  stages = tuple((e, kk, s, make_divisible(i * width), make_divisible(o * width), math.ceil(n * depth))
                 for e, kk, s, i, o, n in B0)
  return stages, make_divisible(32 * width), 4 * make_divisible(320 * width)


# --- torchvision ---------------------------------------------------------------


class ConvNormAct(nn.Sequential):
  """torchvision's Conv2dNormActivation: ``.0`` conv (padding (k-1)//2), ``.1`` bn, activation."""

  def __init__(self, inp, out, k, stride=1, groups=1, eps=1e-5, act=nn.SiLU):
    layers = [nn.Conv2d(inp, out, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out, eps=eps)]
    super().__init__(*layers, *([act()] if act else []))


class SqueezeExcitation(nn.Module):
  def __init__(self, inp, squeeze, act=F.silu, gate=torch.sigmoid):
    super().__init__()
    self.fc1 = nn.Conv2d(inp, squeeze, 1)
    self.fc2 = nn.Conv2d(squeeze, inp, 1)
    self.act, self.gate = act, gate

  def forward(self, x):
    return x * self.gate(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class TorchvisionMBConv(nn.Module):
  def __init__(self, expand, k, stride, inp, out, eps):
    super().__init__()
    hidden = make_divisible(inp * expand)
    layers = [ConvNormAct(inp, hidden, 1, eps=eps)] if hidden != inp else []
    layers += [ConvNormAct(hidden, hidden, k, stride, hidden, eps),
               SqueezeExcitation(hidden, max(1, inp // 4)),
               ConvNormAct(hidden, out, 1, eps=eps, act=None)]
    self.block = nn.Sequential(*layers)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    return x + self.block(x) if self.skip else self.block(x)


class TorchvisionEfficientNet(nn.Module):
  """torchvision ``efficientnet_b{k}`` (eps 1e-5 for B0-B4, 1e-3 for B5-B7)."""

  def __init__(self, k, num_classes=1000):
    super().__init__()
    stages, stem, top = scaled(k)
    eps = 1e-3 if k >= 5 else 1e-5
    layers = [ConvNormAct(3, stem, 3, 2, eps=eps)]
    for e, kk, s, i, o, n in stages:
      layers.append(nn.Sequential(*[TorchvisionMBConv(e, kk, s if b == 0 else 1, i if b == 0 else o, o, eps)
                                    for b in range(n)]))
    layers.append(ConvNormAct(stages[-1][4], top, 1, eps=eps))
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(top, num_classes))

  def forward(self, x, pooled=False):
    x = self.features(x).mean((2, 3))
    return x if pooled else self.classifier(x)


# --- timm tf_efficientnet_b* (TF "SAME" padding, eps 1e-3) -----------------------------


class TimmSE(nn.Module):
  def __init__(self, chs, reduced):
    super().__init__()
    self.conv_reduce = nn.Conv2d(chs, reduced, 1)
    self.conv_expand = nn.Conv2d(reduced, chs, 1)

  def forward(self, x):
    return x * torch.sigmoid(self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class TimmBlock(nn.Module):
  """DepthwiseSeparableConv (expand 1) or InvertedResidual, with squeeze-excite 0.25 of the input."""

  def __init__(self, expand, k, stride, inp, out, eps=1e-3):
    super().__init__()
    self.ds = expand == 1
    hidden = inp * expand
    if self.ds:
      self.conv_dw, self.bn1 = Conv(inp, inp, k, stride, inp, True), nn.BatchNorm2d(inp, eps=eps)
      self.se = TimmSE(inp, int(inp * 0.25))
      self.conv_pw, self.bn2 = Conv(inp, out, 1), nn.BatchNorm2d(out, eps=eps)
    else:
      self.conv_pw, self.bn1 = Conv(inp, hidden, 1), nn.BatchNorm2d(hidden, eps=eps)
      self.conv_dw = Conv(hidden, hidden, k, stride, hidden, True)
      self.bn2 = nn.BatchNorm2d(hidden, eps=eps)
      self.se = TimmSE(hidden, int(inp * 0.25))
      self.conv_pwl, self.bn3 = Conv(hidden, out, 1), nn.BatchNorm2d(out, eps=eps)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    if self.ds:
      y = self.bn2(self.conv_pw(self.se(F.silu(self.bn1(self.conv_dw(x))))))
    else:
      y = F.silu(self.bn1(self.conv_pw(x)))
      y = self.se(F.silu(self.bn2(self.conv_dw(y))))
      y = self.bn3(self.conv_pwl(y))
    return x + y if self.skip else y


class TimmEfficientNetB(nn.Module):
  """timm ``tf_efficientnet_b{k}``."""

  def __init__(self, k, num_classes=1000):
    super().__init__()
    stages, stem, top = scaled(k)
    self.conv_stem, self.bn1 = Conv(3, stem, 3, 2, tf_same=True), nn.BatchNorm2d(stem, eps=1e-3)
    self.blocks = nn.Sequential(*[
        nn.Sequential(*[TimmBlock(e, kk, s if b == 0 else 1, i if b == 0 else o, o) for b in range(n)])
        for e, kk, s, i, o, n in stages])
    self.conv_head = Conv(stages[-1][4], top, 1)
    self.bn2 = nn.BatchNorm2d(top, eps=1e-3)
    self.classifier = nn.Linear(top, num_classes)

  def forward(self, x, pooled=False):
    x = F.silu(self.bn1(self.conv_stem(x)))
    x = F.silu(self.bn2(self.conv_head(self.blocks(x)))).mean((2, 3))
    return x if pooled else self.classifier(x)


# --- MobileNetV3 (Howard et al., 2019, Tables 1-2) ----------------------------------------

# (in, kernel, expanded, out, squeeze-excite, activation, stride), as torchvision's table.
V3_LARGE = ((16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2),
            (24, 3, 72, 24, False, "RE", 1), (24, 5, 72, 40, True, "RE", 2),
            (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
            (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
            (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
            (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
            (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
            (160, 5, 960, 160, True, "HS", 1))
V3_SMALL = ((16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
            (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
            (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
            (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
            (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
            (96, 5, 576, 96, True, "HS", 1))
# size: (table, last Dense width, timm's blocks per stage)
V3 = {"large": (V3_LARGE, 1280, (1, 2, 3, 4, 2, 3)), "small": (V3_SMALL, 1024, (1, 2, 3, 2, 3))}
ACT = {"RE": nn.ReLU, "HS": nn.Hardswish}


class TorchvisionV3Block(nn.Module):
  def __init__(self, inp, k, exp, out, se, act, stride):
    super().__init__()
    act = ACT[act]
    layers = [ConvNormAct(inp, exp, 1, eps=1e-3, act=act)] if exp != inp else []
    layers.append(ConvNormAct(exp, exp, k, stride, exp, 1e-3, act))
    if se:
      layers.append(SqueezeExcitation(exp, make_divisible(exp // 4), F.relu, F.hardsigmoid))
    layers.append(ConvNormAct(exp, out, 1, eps=1e-3, act=None))
    self.block = nn.Sequential(*layers)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    return x + self.block(x) if self.skip else self.block(x)


class TorchvisionMobileNetV3(nn.Module):
  """torchvision ``mobilenet_v3_{large,small}`` (BatchNorm eps 1e-3)."""

  def __init__(self, size, num_classes=1000):
    super().__init__()
    table, last, _ = V3[size]
    top = 6 * table[-1][3]
    self.features = nn.Sequential(ConvNormAct(3, 16, 3, 2, eps=1e-3, act=nn.Hardswish),
                                  *[TorchvisionV3Block(*row) for row in table],
                                  ConvNormAct(table[-1][3], top, 1, eps=1e-3, act=nn.Hardswish))
    self.classifier = nn.Sequential(nn.Linear(top, last), nn.Hardswish(), nn.Dropout(0.2),
                                    nn.Linear(last, num_classes))

  def forward(self, x, pooled=False):
    x = self.features(x).mean((2, 3))
    return self.classifier[1](self.classifier[0](x)) if pooled else self.classifier(x)


class TimmV3Block(nn.Module):
  """timm's DepthwiseSeparableConv (no expansion) or InvertedResidual; TF "SAME" padding, eps 1e-3."""

  def __init__(self, inp, k, exp, out, se, act, stride):
    super().__init__()
    self.ds, self.act = exp == inp, ACT[act]()
    eps = 1e-3
    if self.ds:
      self.conv_dw, self.bn1 = Conv(inp, inp, k, stride, inp, True), nn.BatchNorm2d(inp, eps=eps)
    else:
      self.conv_pw, self.bn1 = Conv(inp, exp, 1), nn.BatchNorm2d(exp, eps=eps)
      self.conv_dw, self.bn2 = Conv(exp, exp, k, stride, exp, True), nn.BatchNorm2d(exp, eps=eps)
    self.se = TimmSE(exp, make_divisible(exp * 0.25)) if se else nn.Identity()
    if se:
      self.se.forward = lambda x, se=self.se: x * F.hardsigmoid(
          se.conv_expand(F.relu(se.conv_reduce(x.mean((2, 3), keepdim=True)))))
    if self.ds:
      self.conv_pw, self.bn2 = Conv(inp, out, 1), nn.BatchNorm2d(out, eps=eps)
    else:
      self.conv_pwl, self.bn3 = Conv(exp, out, 1), nn.BatchNorm2d(out, eps=eps)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    if self.ds:
      y = self.bn2(self.conv_pw(self.se(self.act(self.bn1(self.conv_dw(x))))))
    else:
      y = self.act(self.bn1(self.conv_pw(x)))
      y = self.se(self.act(self.bn2(self.conv_dw(y))))
      y = self.bn3(self.conv_pwl(y))
    return x + y if self.skip else y


class TimmConvBnAct(nn.Module):
  def __init__(self, inp, out):
    super().__init__()
    self.conv, self.bn1 = Conv(inp, out, 1), nn.BatchNorm2d(out, eps=1e-3)

  def forward(self, x):
    return F.hardswish(self.bn1(self.conv(x)))


class TimmMobileNetV3(nn.Module):
  """timm ``tf_mobilenetv3_{large,small}_100``: the top conv is a last stage; ``conv_head``
  a 1x1 conv (with bias) on the pooled map."""

  def __init__(self, size, num_classes=1000):
    super().__init__()
    table, last, groups = V3[size]
    self.conv_stem, self.bn1 = Conv(3, 16, 3, 2, tf_same=True), nn.BatchNorm2d(16, eps=1e-3)
    stages, i = [], 0
    for n in groups:
      stages.append(nn.Sequential(*[TimmV3Block(*row) for row in table[i:i + n]]))
      i += n
    top = 6 * table[-1][3]
    stages.append(nn.Sequential(TimmConvBnAct(table[-1][3], top)))
    self.blocks = nn.Sequential(*stages)
    self.conv_head = nn.Conv2d(top, last, 1)
    self.classifier = nn.Linear(last, num_classes)

  def forward(self, x, pooled=False):
    x = F.hardswish(self.bn1(self.conv_stem(x)))
    x = self.blocks(x).mean((2, 3), keepdim=True)
    x = F.hardswish(self.conv_head(x)).flatten(1)
    return x if pooled else self.classifier(x)


# --- EfficientNetV2 (Tan & Le, 2021) ---------------------------------------------------------

# (block, expand, kernel, stride, out, repeats): F = FusedMBConv, M = MBConv (squeeze-excite 0.25).
V2 = {
    "b0": (32, 1280, (("F", 1, 3, 1, 16, 1), ("F", 4, 3, 2, 32, 2), ("F", 4, 3, 2, 48, 2),
                      ("M", 4, 3, 2, 96, 3), ("M", 6, 3, 1, 112, 5), ("M", 6, 3, 2, 192, 8))),
    "s": (24, 1280, (("F", 1, 3, 1, 24, 2), ("F", 4, 3, 2, 48, 4), ("F", 4, 3, 2, 64, 4),
                     ("M", 4, 3, 2, 128, 6), ("M", 6, 3, 1, 160, 9), ("M", 6, 3, 2, 256, 15))),
    # torchvision _efficientnet_conf("efficientnet_v2_m" / "_l"); timm's tf_efficientnetv2_m/l arch_def agree.
    "m": (24, 1280, (("F", 1, 3, 1, 24, 3), ("F", 4, 3, 2, 48, 5), ("F", 4, 3, 2, 80, 5), ("M", 4, 3, 2, 160, 7),
                     ("M", 6, 3, 1, 176, 14), ("M", 6, 3, 2, 304, 18), ("M", 6, 3, 1, 512, 5))),
    "l": (32, 1280, (("F", 1, 3, 1, 32, 4), ("F", 4, 3, 2, 64, 7), ("F", 4, 3, 2, 96, 7), ("M", 4, 3, 2, 192, 10),
                     ("M", 6, 3, 1, 224, 19), ("M", 6, 3, 2, 384, 25), ("M", 6, 3, 1, 640, 7))),
}
V2_SCALING = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4), "s": (1.0, 1.0),
              "m": (1.0, 1.0), "l": (1.0, 1.0)}


def v2_blocks(variant):
  """(kind, expand, kernel, stride, in, out) per block; widths rounded to 8 without V1's 10% rule."""
  width, depth = V2_SCALING[variant]
  stem, top, table = V2[variant if variant in V2 else "b0"]  # b1..b3 scale b0
  ch = lambda c: max(8, int(c * width + 4) // 8 * 8)  # noqa: E731
  blocks, inp = [], ch(stem)
  for kind, e, k, s, o, n in table:
    stage = []
    for b in range(math.ceil(n * depth)):
      stage.append((kind, e, k, s if b == 0 else 1, inp, ch(o)))
      inp = ch(o)
    blocks.append(stage)
  return ch(stem), blocks, ch(top)


class TorchvisionFusedMBConv(nn.Module):
  def __init__(self, expand, k, stride, inp, out, eps):
    super().__init__()
    hidden = make_divisible(inp * expand)
    if hidden != inp:
      layers = [ConvNormAct(inp, hidden, k, stride, eps=eps), ConvNormAct(hidden, out, 1, eps=eps, act=None)]
    else:
      layers = [ConvNormAct(inp, out, k, stride, eps=eps)]
    self.block = nn.Sequential(*layers)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    return x + self.block(x) if self.skip else self.block(x)


class TorchvisionEfficientNetV2(nn.Module):
  """torchvision ``efficientnet_v2_{s,m,l}`` (BatchNorm eps 1e-3)."""

  def __init__(self, variant="s", num_classes=1000):
    super().__init__()
    stem, stages, top = v2_blocks(variant)
    block = {"F": TorchvisionFusedMBConv, "M": TorchvisionMBConv}
    layers = [ConvNormAct(3, stem, 3, 2, eps=1e-3)]
    layers += [nn.Sequential(*[block[kind](e, k, s, i, o, 1e-3) for kind, e, k, s, i, o in stage])
               for stage in stages]
    layers.append(ConvNormAct(stages[-1][-1][5], top, 1, eps=1e-3))
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(top, num_classes))

  def forward(self, x, pooled=False):
    x = self.features(x).mean((2, 3))
    return x if pooled else self.classifier(x)


class TimmV2Block(nn.Module):
  """timm's ConvBnAct ("cn", expand 1), EdgeResidual ("er") or InvertedResidual ("ir", with SE)."""

  def __init__(self, kind, expand, k, stride, inp, out, eps=1e-3):
    super().__init__()
    hidden = inp * expand
    self.kind = "cn" if kind == "F" and expand == 1 else ("er" if kind == "F" else "ir")
    if self.kind == "cn":
      self.conv, self.bn1 = Conv(inp, out, k, stride, tf_same=True), nn.BatchNorm2d(out, eps=eps)
    elif self.kind == "er":
      self.conv_exp = Conv(inp, hidden, k, stride, tf_same=True)
      self.bn1 = nn.BatchNorm2d(hidden, eps=eps)
      self.conv_pwl, self.bn2 = Conv(hidden, out, 1), nn.BatchNorm2d(out, eps=eps)
    else:
      self.conv_pw, self.bn1 = Conv(inp, hidden, 1), nn.BatchNorm2d(hidden, eps=eps)
      self.conv_dw = Conv(hidden, hidden, k, stride, hidden, True)
      self.bn2 = nn.BatchNorm2d(hidden, eps=eps)
      self.se = TimmSE(hidden, int(inp * 0.25))
      self.conv_pwl, self.bn3 = Conv(hidden, out, 1), nn.BatchNorm2d(out, eps=eps)
    self.skip = stride == 1 and inp == out

  def forward(self, x):
    if self.kind == "cn":
      y = F.silu(self.bn1(self.conv(x)))
    elif self.kind == "er":
      y = self.bn2(self.conv_pwl(F.silu(self.bn1(self.conv_exp(x)))))
    else:
      y = F.silu(self.bn1(self.conv_pw(x)))
      y = self.se(F.silu(self.bn2(self.conv_dw(y))))
      y = self.bn3(self.conv_pwl(y))
    return x + y if self.skip else y


class TimmEfficientNetV2(nn.Module):
  """timm ``tf_efficientnetv2_{b0..b3,s,m,l}`` (TF "SAME" padding, eps 1e-3)."""

  def __init__(self, variant="b0", num_classes=1000):
    super().__init__()
    stem, stages, top = v2_blocks(variant)
    self.conv_stem, self.bn1 = Conv(3, stem, 3, 2, tf_same=True), nn.BatchNorm2d(stem, eps=1e-3)
    self.blocks = nn.Sequential(*[nn.Sequential(*[TimmV2Block(*b) for b in stage]) for stage in stages])
    self.conv_head = Conv(stages[-1][-1][5], top, 1)
    self.bn2 = nn.BatchNorm2d(top, eps=1e-3)
    self.classifier = nn.Linear(top, num_classes)

  def forward(self, x, pooled=False):
    x = F.silu(self.bn1(self.conv_stem(x)))
    x = F.silu(self.bn2(self.conv_head(self.blocks(x)))).mean((2, 3))
    return x if pooled else self.classifier(x)
