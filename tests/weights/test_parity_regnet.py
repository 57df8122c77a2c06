"""RegNet parity: torch references in torchvision's and timm's key layouts vs tl_jax.

The references derive their widths with torch ops as torchvision's
``BlockParams.from_init_params`` does (float32), independently of
``tl_jax.models.regnet.stage_params``; ``check`` saves them as .pth and
.safetensors and compares logits and pooled features (max |diff| <= 1e-4).
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch_reference as ref  # noqa: E402
from zoo_parity import torch_check  # noqa: E402

from tl_jax.models import regnet  # noqa: E402

slow = pytest.mark.slow
# name: (depth, w_0, w_a, w_m, group width, SE ratio): torchvision's regnet_* arguments, as published
# in torchvision/models/regnet.py (written out here, not read from tl_jax's VARIANTS).
PARAMS = {"regnet_x_400mf": (22, 24, 24.48, 2.54, 16, 0.0), "regnet_x_800mf": (16, 56, 35.73, 2.28, 16, 0.0),
          "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24, 0.0), "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48, 0.0),
          "regnet_x_8gf": (23, 80, 49.56, 2.88, 120, 0.0), "regnet_x_16gf": (22, 216, 55.59, 2.1, 128, 0.0),
          "regnet_x_32gf": (23, 320, 69.86, 2.0, 168, 0.0),
          "regnet_y_400mf": (16, 48, 27.89, 2.09, 8, 0.25), "regnet_y_800mf": (14, 56, 38.84, 2.4, 16, 0.25),
          "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24, 0.25), "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24, 0.25),
          "regnet_y_8gf": (17, 192, 76.82, 2.19, 56, 0.25), "regnet_y_16gf": (18, 200, 106.23, 2.48, 112, 0.25),
          "regnet_y_32gf": (20, 232, 115.89, 2.53, 232, 0.25),
          "regnet_y_128gf": (27, 456, 160.83, 2.52, 264, 0.25)}


def torch_stages(depth, w_0, w_a, w_m, group_width):
  """(width, depth, group width) per stage, as torchvision computes them."""
  cont = torch.arange(depth) * w_a + w_0
  capacity = torch.round(torch.log(cont / w_0) / math.log(w_m))
  widths = (torch.round(torch.divide(w_0 * torch.pow(w_m, capacity), 8)) * 8).int().tolist()
  stages = []
  for w in widths:
    if stages and stages[-1][0] == w:
      stages[-1][1] += 1
    else:
      stages.append([w, 1])
  out = []
  for w, d in stages:
    g = min(group_width, w)
    v = max(g, int(w + g / 2) // g * g)
    out.append((v + g if v < 0.9 * w else v, d, g))
  return out


def conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
  layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
  return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


class SE(nn.Module):
  def __init__(self, c, reduced):
    super().__init__()
    self.fc1, self.fc2 = nn.Conv2d(c, reduced, 1), nn.Conv2d(reduced, c, 1)

  def forward(self, x):
    return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class Transform(nn.Module):  # torchvision BottleneckTransform: f.a, f.b, f.se, f.c
  def __init__(self, cin, cout, stride, g, se):
    super().__init__()
    self.a, self.b = conv_bn(cin, cout, 1), conv_bn(cout, cout, 3, stride, cout // g)
    self.se = SE(cout, se) if se else nn.Identity()
    self.c = conv_bn(cout, cout, 1, relu=False)

  def forward(self, x):
    return self.c(self.se(self.b(self.a(x))))


class TVBlock(nn.Module):
  def __init__(self, cin, cout, stride, g, se):
    super().__init__()
    self.proj = conv_bn(cin, cout, 1, stride, relu=False) if cin != cout or stride != 1 else None
    self.f = Transform(cin, cout, stride, g, se)

  def forward(self, x):
    return torch.relu((x if self.proj is None else self.proj(x)) + self.f(x))


class ConvNormAct(nn.Module):  # timm's: .conv, .bn
  def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    self.bn, self.act = nn.BatchNorm2d(cout), act

  def forward(self, x):
    x = self.bn(self.conv(x))
    return torch.relu(x) if self.act else x


class TimmBlock(nn.Module):
  def __init__(self, cin, cout, stride, g, se):
    super().__init__()
    self.conv1, self.conv2 = ConvNormAct(cin, cout, 1), ConvNormAct(cout, cout, 3, stride, cout // g)
    self.se = SE(cout, se) if se else nn.Identity()
    self.conv3 = ConvNormAct(cout, cout, 1, act=False)
    self.downsample = ConvNormAct(cin, cout, 1, stride, act=False) if cin != cout or stride != 1 else None

  def forward(self, x):
    y = self.conv3(self.se(self.conv2(self.conv1(x))))
    return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class RegNet(nn.Module):
  def __init__(self, name, layout, num_classes=1000):
    super().__init__()
    depth, w_0, w_a, w_m, gw, se_ratio = PARAMS[name]
    timm = layout == "timm"
    self.stem = ConvNormAct(3, 32, 3, 2) if timm else conv_bn(3, 32, 3, 2)
    trunk, cin = nn.Module(), 32
    for s, (w, d, g) in enumerate(torch_stages(depth, w_0, w_a, w_m, gw), start=1):
      stage = nn.Module()
      for b in range(d):
        se = int(round(se_ratio * cin)) if se_ratio else 0
        block = (TimmBlock if timm else TVBlock)(cin, w, 2 if b == 0 else 1, g, se)
        stage.add_module(f"b{b + 1}" if timm else f"block{s}-{b}", block)
        cin = w
      (self if timm else trunk).add_module(f"s{s}" if timm else f"block{s}", stage)
    if timm:
      self.head = nn.Module()
      self.head.fc = nn.Linear(cin, num_classes)
    else:
      self.trunk_output, self.fc = trunk, nn.Linear(cin, num_classes)
    self.timm, self.pooled = timm, False

  def forward(self, x):
    x = self.stem(x)
    for stage in (self.s1, self.s2, self.s3, self.s4) if self.timm else self.trunk_output.children():
      for block in stage.children():
        x = block(x)
    x = x.mean((2, 3))
    return x if self.pooled else (self.head.fc if self.timm else self.fc)(x)


def test_widths_match_torchvision_and_name_timm_tv_configs():
  """tl_jax's widths are torchvision's; timm's pycls rounding differs exactly where timm has ``_tv`` configs."""
  from tl_jax import weights

  for name, cfg in regnet.VARIANTS.items():
    ours = [(p.width, p.depth, p.group_width) for p in regnet.stage_params(cfg)]
    assert ours == torch_stages(cfg.depth, cfg.w_0, cfg.w_a, cfg.w_m, cfg.group_width), name
    pycls = []  # timm's generate_regnet + adjust_widths_groups_comp (float64, no 10% rule)
    cont = np.arange(cfg.depth) * cfg.w_a + cfg.w_0
    widths = np.round(cfg.w_0 * np.power(cfg.w_m, np.round(np.log(cont / cfg.w_0) / np.log(cfg.w_m))) / 8) * 8
    for w in widths.astype(int):
      if pycls and pycls[-1][0] == w:
        pycls[-1][1] += 1
      else:
        pycls.append([w, 1])
    pycls = [int(round(w / min(cfg.group_width, w)) * min(cfg.group_width, w)) for w, _ in pycls]
    assert (pycls != [w for w, _, _ in ours]) == ("_tv." in weights.REGNET_TIMM[name]), name


DEFAULT = [("regnet_y_400mf", "torchvision"), ("regnet_x_400mf", "timm")]
# Every other (variant, source) pair, in the slow set.
CASES = DEFAULT + [pytest.param(n, s, marks=slow) for n in PARAMS for s in ("torchvision", "timm")
                   if (n, s) not in DEFAULT]


def test_params_are_the_registered_variants():
  assert {n: (c.depth, c.w_0, c.w_a, c.w_m, c.group_width, c.se_ratio) for n, c in regnet.VARIANTS.items()} == PARAMS


@pytest.mark.parametrize("name, source", CASES)
def test_regnet_parity(name, source, tmp_path):
  torch_check(name, source, ref.randomize(RegNet(name, source), 0), tmp_path)


def test_dont_load_keeps_the_new_head(tmp_path):
  """A 1000-class file into a 10-class model: ``dont_load`` drops the file's head, the rest loads."""
  import jax

  from tl_jax import models, partition, weights

  module = ref.randomize(RegNet("regnet_y_400mf", "torchvision"), 0)
  torch.save(module.state_dict(), tmp_path / "w.pth")
  loaded = weights.load_pretrained("regnet_y_400mf", path=str(tmp_path / "w.pth"))
  model = models.create("regnet_y_400mf", 10)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32)))
  with pytest.raises(ValueError, match=r"params/head/kernel: expected \(440, 10\), got \(440, 1000\)"):
    weights.merge(init, loaded)
  initial = {"params": {"head": {"kernel": np.zeros((440, 10), np.float32), "bias": np.ones(10, np.float32)}}}
  tree = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), init)
  tree["params"]["head"] = initial["params"]["head"]
  merged = partition.flatten(weights.merge(tree, loaded, dont_load=("head/.*",)))
  assert np.array_equal(merged["params/head/bias"], np.ones(10))  # kept, not loaded
  conv = "params/backbone/stage4/block6/conv3/conv/kernel"
  np.testing.assert_array_equal(merged[conv], loaded[conv])
