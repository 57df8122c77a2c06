"""Inception-v3 parity: a torch reference in torchvision's key layout (with ``AuxLogits``, dropped
on load; count_include_pad average pools) and Keras 3 ``keras.applications.InceptionV3`` (JAX
backend; BatchNorm scale=False, pools without the padding), vs tl_jax, at 75 px (the smallest
input both accept).

Logits and pooled features must agree to 1e-4 (float32) for .pth and .safetensors files and both
Keras .h5 key layouts. Both get x / 127.5 - 1 (torchvision's transform_input does that mapping).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_reference as ref  # noqa: E402
from keras_parity import keras_check  # noqa: E402
import zoo_parity  # noqa: E402


class BasicConv2d(nn.Module):
  def __init__(self, inp, out, **kw):
    super().__init__()
    self.conv, self.bn = nn.Conv2d(inp, out, bias=False, **kw), nn.BatchNorm2d(out, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _pool(x):
  return F.avg_pool2d(x, 3, 1, 1)  # count_include_pad=True, as torchvision


class InceptionA(nn.Module):
  def __init__(self, inp, pool):
    super().__init__()
    self.branch1x1 = BasicConv2d(inp, 64, kernel_size=1)
    self.branch5x5_1, self.branch5x5_2 = BasicConv2d(inp, 48, kernel_size=1), BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(inp, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(inp, pool, kernel_size=1)

  def forward(self, x):
    return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      self.branch_pool(_pool(x))], 1)


class InceptionB(nn.Module):
  def __init__(self, inp):
    super().__init__()
    self.branch3x3 = BasicConv2d(inp, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(inp, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
  def __init__(self, inp, c7):
    super().__init__()
    self.branch1x1 = BasicConv2d(inp, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(inp, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(inp, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(inp, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    d = x
    for i in range(1, 6):
      d = getattr(self, f"branch7x7dbl_{i}")(d)
    return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_pool(x))], 1)


class InceptionD(nn.Module):
  def __init__(self, inp):
    super().__init__()
    self.branch3x3_1, self.branch3x3_2 = BasicConv2d(inp, 192, kernel_size=1), BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(inp, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b = x
    for i in range(1, 5):
      b = getattr(self, f"branch7x7x3_{i}")(b)
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
  def __init__(self, inp):
    super().__init__()
    self.branch1x1 = BasicConv2d(inp, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(inp, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(inp, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(inp, 192, kernel_size=1)

  def forward(self, x):
    a = self.branch3x3_1(x)
    d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                      self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(_pool(x))], 1)


class InceptionAux(nn.Module):
  def __init__(self, inp, num_classes):
    super().__init__()
    self.conv0, self.conv1 = BasicConv2d(inp, 128, kernel_size=1), BasicConv2d(128, 768, kernel_size=5)
    self.fc = nn.Linear(768, num_classes)


class Inception3(nn.Module):  # torchvision keys
  def __init__(self, num_classes=1000):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
    self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
    self.AuxLogits = InceptionAux(768, num_classes)
    self.Mixed_7a, self.Mixed_7b, self.Mixed_7c = InceptionD(768), InceptionE(1280), InceptionE(2048)
    self.fc, self.pooled = nn.Linear(2048, num_classes), False

  def forward(self, x):
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
    x = F.max_pool2d(x, 3, 2)
    for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
      x = getattr(self, f"Mixed_{name}")(x)
    x = x.mean((2, 3))
    return x if self.pooled else self.fc(x)


def test_inception_v3_torchvision_parity(tmp_path, monkeypatch):
  monkeypatch.setattr(zoo_parity, "MEAN", np.full(3, 127.5, np.float32))
  monkeypatch.setattr(zoo_parity, "STD", np.full(3, 127.5, np.float32))
  zoo_parity.torch_check("inception_v3", "torchvision", ref.randomize(Inception3(), 0), tmp_path, size=75)


def test_inception_v3_keras_parity(tmp_path):
  keras_check("keras_inception_v3", "InceptionV3", "inception_v3", "avg_pool", tmp_path, size=75)
