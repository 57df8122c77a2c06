"""Pre-activation ResNet parity: Keras 3 ``keras.applications.ResNet*V2`` (JAX backend), and BiT
from a torch reference written here in big_transfer's published ``bit_pytorch`` structure, saved
as big_transfer's ``.npz`` (the inverse of its ``load_from``) and in timm's ``resnetv2_*_bit``
keys (.pth/.safetensors, timm's StdConv2d epsilon 1e-8).

Logits and pooled features must agree to 1e-4 (float32). BiT's references run in float64, and
tl_jax also runs in float64 against them (``jax.enable_x64``): there the pooled features agree to
1e-9, so what the float32 comparison measures is float32 rounding, not a conversion error.

Conditioning: with every GroupNorm scale drawn around 1, 33-50 pre-activation units amplify the
float32 rounding of the input about 250x (bit_m_r101x1: the float32 torch reference is 1.6e-4 off
its own float64 run; tl_jax's float32, 1.4e-4). ``randomize`` therefore scales each unit's last
GroupNorm (``gn3``, before the residual branch's last conv) by ``BRANCH_GAIN`` = 0.25: the residual
branch is small next to the identity path, as in trained ResNets. That takes both float32 errors
down ~10x (torch 1.1e-5, tl_jax 1.4e-5 on R101x1) and leaves every layer's values far from trivial
(a swapped norm or a missing projection moves the logits by O(0.1-1)).
"""

import collections

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_reference as ref  # noqa: E402
from keras_parity import keras_check  # noqa: E402
from zoo_parity import compare, images  # noqa: E402

slow = pytest.mark.slow
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@pytest.mark.parametrize("depth", [50, pytest.param(101, marks=slow), pytest.param(152, marks=slow)])
def test_resnetv2_keras_parity(depth, tmp_path):
  keras_check(f"keras_resnet{depth}v2", f"ResNet{depth}V2", "resnet_v2", "avg_pool", tmp_path, size=32)


class StdConv2d(nn.Conv2d):  # bit_pytorch.models.StdConv2d
  eps = 1e-10

  def forward(self, x):
    v, m = torch.var_mean(self.weight, dim=[1, 2, 3], keepdim=True, unbiased=False)
    w = (self.weight - m) / torch.sqrt(v + self.eps)
    return F.conv2d(x, w, self.bias, self.stride, self.padding)


class PreActBottleneck(nn.Module):  # bit_pytorch.models.PreActBottleneck
  def __init__(self, conv, cin, cout, cmid, stride):
    super().__init__()
    self.gn1, self.conv1 = nn.GroupNorm(32, cin), conv(cin, cmid, 1, bias=False)
    self.gn2, self.conv2 = nn.GroupNorm(32, cmid), conv(cmid, cmid, 3, stride, 1, bias=False)
    self.gn3, self.conv3 = nn.GroupNorm(32, cmid), conv(cmid, cout, 1, bias=False)
    if stride != 1 or cin != cout:
      self.downsample = conv(cin, cout, 1, stride, bias=False)

  def forward(self, x):
    out = F.relu(self.gn1(x))
    residual = self.downsample(out) if hasattr(self, "downsample") else x
    out = self.conv1(out)
    out = self.conv2(F.relu(self.gn2(out)))
    out = self.conv3(F.relu(self.gn3(out)))
    return out + residual


class BiT(nn.Module):  # bit_pytorch.models.ResNetV2: root, body.block{i}.unit{j:02d}, head
  def __init__(self, depth, wf, eps=1e-10, num_classes=1000):
    super().__init__()
    conv = type("Conv", (StdConv2d,), {"eps": eps})
    self.root = nn.Sequential(collections.OrderedDict(
        conv=conv(3, 64 * wf, 7, 2, 3, bias=False), pad=nn.ConstantPad2d(1, 0), pool=nn.MaxPool2d(3, 2)))
    blocks, cin = [], 64 * wf
    for i, n in enumerate(DEPTHS[depth]):
      cmid = 64 * wf * 2 ** i
      units = [(f"unit{j:02d}", PreActBottleneck(conv, cin if j == 1 else 4 * cmid, 4 * cmid, cmid,
                                                  2 if i and j == 1 else 1)) for j in range(1, n + 1)]
      blocks.append((f"block{i + 1}", nn.Sequential(collections.OrderedDict(units))))
      cin = 4 * cmid
    self.body = nn.Sequential(collections.OrderedDict(blocks))
    self.head = nn.Sequential(collections.OrderedDict(
        gn=nn.GroupNorm(32, cin), relu=nn.ReLU(), avg=nn.AdaptiveAvgPool2d(1),
        conv=nn.Conv2d(cin, num_classes, 1, bias=True)))
    self.pooled = False

  def forward(self, x):
    x = self.head.avg(self.head.relu(self.head.gn(self.body(self.root(x)))))
    return x[:, :, 0, 0] if self.pooled else self.head.conv(x)[:, :, 0, 0]


BRANCH_GAIN = 0.25  # the residual branches' scale (module docstring: conditioning)


def randomize(module, seed):
  """ref.randomize plus non-trivial GroupNorm affines; each unit's ``gn3`` scaled by BRANCH_GAIN."""
  ref.randomize(module, seed)
  g = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, nn.GroupNorm):
        m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    for m in module.modules():
      if isinstance(m, PreActBottleneck):
        m.gn3.weight.mul_(BRANCH_GAIN)
  return module


def to_npz(module, path):
  """big_transfer's key layout: the inverse of ``ResNetV2.load_from`` (``tf2th``: OIHW -> HWIO)."""
  out, conv = {}, "standardized_conv2d/kernel"

  def k(w):
    return w.detach().numpy().transpose(2, 3, 1, 0)

  out[f"resnet/root_block/{conv}"] = k(module.root.conv.weight)
  for bname, block in module.body.named_children():
    for uname, unit in block.named_children():
      p = f"resnet/{bname}/{uname}/"
      for part, i in zip("abc", (1, 2, 3)):
        out[f"{p}{part}/{conv}"] = k(getattr(unit, f"conv{i}").weight)
        out[f"{p}{part}/group_norm/gamma"] = getattr(unit, f"gn{i}").weight.detach().numpy()
        out[f"{p}{part}/group_norm/beta"] = getattr(unit, f"gn{i}").bias.detach().numpy()
      if hasattr(unit, "downsample"):
        out[f"{p}a/proj/{conv}"] = k(unit.downsample.weight)
  out["resnet/group_norm/gamma"] = module.head.gn.weight.detach().numpy()
  out["resnet/group_norm/beta"] = module.head.gn.bias.detach().numpy()
  out["resnet/head/conv2d/kernel"] = k(module.head.conv.weight)
  out["resnet/head/conv2d/bias"] = module.head.conv.bias.detach().numpy()
  np.savez(path, **out)


class TimmKeys(BiT):
  """The same network under timm ``resnetv2_*_bit`` keys."""

  RENAMES = (("root.conv.", "stem.conv."), ("head.gn.", "norm."), ("head.conv.", "head.fc."),
             (".gn", ".norm"), (".downsample.", ".downsample.conv."))

  def state_dict(self, *args, **kwargs):
    import re
    out = collections.OrderedDict()
    for key, v in super().state_dict(*args, **kwargs).items():
      m = re.match(r"body\.block(\d+)\.unit(\d+)\.(.*)", key)
      if m:
        key = f"stages.{int(m[1]) - 1}.blocks.{int(m[2]) - 1}.{m[3]}"
      for a, b in self.RENAMES:
        key = key.replace(a, b) if not key.startswith("head.fc") else key
      out[key] = v
    return out


BIT = [("bit_m_r50x1", 50, 1), pytest.param("bit_m_r50x3", 50, 3, marks=slow),
       pytest.param("bit_m_r101x1", 101, 1, marks=slow), pytest.param("bit_m_r101x3", 101, 3, marks=slow),
       pytest.param("bit_m_r152x2", 152, 2, marks=slow), pytest.param("bit_m_r152x4", 152, 4, marks=slow)]


def reference64(module, x):
  """Logits and pooled features of ``module`` in float64 on normalised ``x``; the module stays float32."""
  # Normalised in float64: rounding the input to float32 first would itself move the logits ~1e-5.
  t = torch.from_numpy(np.ascontiguousarray((x.astype(np.float64) / 127.5 - 1).transpose(0, 3, 1, 2)))
  module.double()
  with torch.no_grad():
    module.pooled = False
    logits = module(t).numpy()
    module.pooled = True
    pooled = module(t).numpy()
  module.float()
  return logits, pooled


def float64_difference(name, source, file, logits, pooled, x):
  """tl_jax in float64 (params and compute) vs the float64 reference: (max dlogit, max dpooled)."""
  import jax
  from tl_jax import models, weights
  with jax.enable_x64(True):
    model = models.create(name, logits.shape[-1], dtype=np.float64)
    init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
    variables = jax.tree.map(lambda a: np.asarray(a, np.float64),
                             weights.merge(init, weights.convert(name, str(file), source)))
    out, features = jax.jit(model.apply)(variables, x)
    return (float(np.max(np.abs(np.asarray(out, np.float64) - logits))),
            float(np.max(np.abs(np.asarray(features["pre_logits"]) - pooled))))


@pytest.mark.parametrize("name, depth, wf", BIT)
def test_bit_npz_parity(name, depth, wf, tmp_path):
  module = randomize(BiT(depth, wf), 0).eval()
  to_npz(module, tmp_path / "BiT.npz")
  x = images(0, 32)
  logits, pooled = reference64(module, x)
  compare(name, "big_transfer", {"npz": tmp_path / "BiT.npz"}, logits, pooled, x)
  if name == "bit_m_r152x4":  # 936M parameters: a float64 copy beside the float32 ones needs > 20 GB
    return
  dlogit, dpooled = float64_difference(name, "big_transfer", tmp_path / "BiT.npz", logits, pooled, x)
  print(f"PARITY64 {name} big_transfer max|dlogit|={dlogit:.1e} max|dpooled|={dpooled:.1e}")
  # The logits leave the model in float32 (Classifier casts them), the features do not.
  assert dpooled <= 1e-9 and dlogit <= 1e-6, (dlogit, dpooled)


@pytest.mark.parametrize("name, depth, wf", BIT)
def test_bit_timm_parity(name, depth, wf, tmp_path):
  from safetensors import torch as safetensors_torch
  module = randomize(TimmKeys(depth, wf, eps=1e-8), 0).eval()
  state = module.state_dict()
  files = {"pth": tmp_path / "w.pth", "safetensors": tmp_path / "w.safetensors"}
  torch.save(state, files["pth"])
  safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
  x = images(0, 32)
  logits, pooled = reference64(module, x)
  compare(name, "timm", files, logits, pooled, x)
