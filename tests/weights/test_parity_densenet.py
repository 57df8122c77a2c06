"""DenseNet parity: a torch reference in torchvision's key layout (both spellings of the layer
parts) and Keras 3 ``keras.applications.DenseNet*`` (JAX backend), vs tl_jax.

Logits and pooled features must agree to 1e-4 (float32) for .pth and
.safetensors files and both Keras .h5 key layouts.
"""

import collections

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_reference as ref  # noqa: E402
from keras_parity import keras_check  # noqa: E402
from zoo_parity import torch_check  # noqa: E402

slow = pytest.mark.slow
LAYERS = {"densenet121": (6, 12, 24, 16), "densenet169": (6, 12, 32, 32), "densenet201": (6, 12, 48, 32)}


class DenseLayer(nn.Module):  # torchvision _DenseLayer
  def __init__(self, inp, growth=32, bn_size=4):
    super().__init__()
    self.norm1, self.conv1 = nn.BatchNorm2d(inp), nn.Conv2d(inp, bn_size * growth, 1, bias=False)
    self.norm2 = nn.BatchNorm2d(bn_size * growth)
    self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

  def forward(self, x):
    y = self.conv1(F.relu(self.norm1(x)))
    return torch.cat([x, self.conv2(F.relu(self.norm2(y)))], 1)


class Transition(nn.Sequential):
  def __init__(self, inp, out):
    super().__init__(collections.OrderedDict(norm=nn.BatchNorm2d(inp), relu=nn.ReLU(),
                                             conv=nn.Conv2d(inp, out, 1, bias=False),
                                             pool=nn.AvgPool2d(2, 2)))


class DenseNet(nn.Module):  # torchvision densenet121/169/201 keys
  def __init__(self, name, num_classes=1000):
    super().__init__()
    parts = collections.OrderedDict(conv0=nn.Conv2d(3, 64, 7, 2, 3, bias=False), norm0=nn.BatchNorm2d(64),
                                    relu0=nn.ReLU(), pool0=nn.MaxPool2d(3, 2, 1))
    ch = 64
    for i, n in enumerate(LAYERS[name], start=1):
      layers = collections.OrderedDict()
      for j in range(n):
        layers[f"denselayer{j + 1}"] = DenseLayer(ch + 32 * j)
      parts[f"denseblock{i}"] = nn.Sequential(layers)
      ch += 32 * n
      if i < 4:
        parts[f"transition{i}"] = Transition(ch, ch // 2)
        ch //= 2
    parts["norm5"] = nn.BatchNorm2d(ch)
    self.features, self.classifier, self.pooled = nn.Sequential(parts), nn.Linear(ch, num_classes), False

  def forward(self, x):
    x = F.relu(self.features(x)).mean((2, 3))
    return x if self.pooled else self.classifier(x)


class OldKeys(DenseNet):
  """The published files' spelling: ``denselayer1.norm.1.weight`` (torchvision < 0.3 names)."""

  def state_dict(self, *args, **kwargs):
    import re
    pattern = re.compile(r"(denselayer\d+)\.(norm|conv)([12])\.")
    return collections.OrderedDict((pattern.sub(r"\1.\2.\3.", k), v)
                                   for k, v in super().state_dict(*args, **kwargs).items())


@pytest.mark.parametrize("name, cls", [("densenet121", OldKeys), pytest.param("densenet121", DenseNet, marks=slow)]
                         + [pytest.param(n, DenseNet, marks=slow) for n in ("densenet169", "densenet201")])
def test_densenet_torchvision_parity(name, cls, tmp_path):
  torch_check(name, "torchvision", ref.randomize(cls(name), 0), tmp_path)


@pytest.mark.parametrize("name", ["densenet121"] + [pytest.param(n, marks=slow)
                                                    for n in ("densenet169", "densenet201")])
def test_densenet_keras_parity(name, tmp_path):
  app = {"densenet121": "DenseNet121", "densenet169": "DenseNet169", "densenet201": "DenseNet201"}[name]
  keras_check(name, app, "densenet", "avg_pool", tmp_path, size=32)
