"""ConvNeXt parity: torch references in torchvision's and timm's key layouts, and Keras 3
``keras.applications.ConvNeXt*`` (JAX backend), vs tl_jax.

Logits and pooled features (``pre_logits``: the LayerNorm of the pooled map)
must agree to 1e-4 (float32) for .pth and .safetensors files and both Keras
.h5 key layouts. Keras normalises inside its model, so it gets raw pixels.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_reference as ref  # noqa: E402
from zoo_parity import compare, images, torch_check  # noqa: E402
from keras_parity import reference_session  # noqa: E402


slow = pytest.mark.slow
KERAS_APPS = {"convnext_tiny": "ConvNeXtTiny", "convnext_small": "ConvNeXtSmall",
              "convnext_base": "ConvNeXtBase", "convnext_large": "ConvNeXtLarge",
              "convnext_xlarge": "ConvNeXtXLarge"}


class LayerNorm2d(nn.LayerNorm):
  def forward(self, x):
    return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Permute(nn.Module):
  def __init__(self, dims):
    super().__init__()
    self.dims = dims

  def forward(self, x):
    return x.permute(*self.dims)


class CNBlock(nn.Module):  # torchvision: block.{0,2,3,5}, layer_scale (C, 1, 1)
  def __init__(self, dim):
    super().__init__()
    self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute((0, 2, 3, 1)),
                               nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                               nn.Linear(4 * dim, dim), Permute((0, 3, 1, 2)))
    self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

  def forward(self, x):
    return x + self.layer_scale * self.block(x)


class Mlp(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

  def forward(self, x):
    return self.fc2(F.gelu(self.fc1(x)))


class TimmBlock(nn.Module):  # timm: conv_dw, norm, mlp.fc{1,2}, gamma (C,)
  def __init__(self, dim):
    super().__init__()
    self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
    self.norm, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim)
    self.gamma = nn.Parameter(torch.ones(dim))

  def forward(self, x):
    y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1)))
    return x + (y * self.gamma).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
  def __init__(self, name, layout, num_classes=1000):
    super().__init__()
    deep = (3, 3, 27, 3)
    cfg = {"convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)), "convnext_small": (deep, (96, 192, 384, 768)),
           "convnext_base": (deep, (128, 256, 512, 1024)), "convnext_large": (deep, (192, 384, 768, 1536)),
           "convnext_xlarge": (deep, (256, 512, 1024, 2048))}[name]
    self.timm, self.pooled = layout == "timm", False
    stem = nn.Sequential(nn.Conv2d(3, cfg[1][0], 4, 4), LayerNorm2d(cfg[1][0], eps=1e-6))
    parts, cin = [stem], cfg[1][0]
    stages = []
    for i, (d, c) in enumerate(zip(*cfg)):
      down = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, c, 2, 2)) if i else None
      blocks = nn.Sequential(*[(TimmBlock if self.timm else CNBlock)(c) for _ in range(d)])
      if self.timm:
        stage = nn.Module()
        stage.downsample, stage.blocks = down or nn.Identity(), blocks
        stages.append(stage)
      else:
        parts += ([down] if down is not None else []) + [blocks]
      cin = c
    if self.timm:
      self.stem, self.stages = stem, nn.ModuleList(stages)
      self.head = nn.Module()
      self.head.norm, self.head.fc = nn.LayerNorm(cin, eps=1e-6), nn.Linear(cin, num_classes)
    else:
      self.features = nn.Sequential(*parts)
      self.classifier = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Flatten(1), nn.Linear(cin, num_classes))

  def forward(self, x):
    if self.timm:
      x = self.stem(x)
      for stage in self.stages:
        x = stage.blocks(stage.downsample(x))
      x = self.head.norm(x.mean((2, 3)))
      return x if self.pooled else self.head.fc(x)
    x = self.features(x).mean((2, 3), keepdim=True)
    x = self.classifier[1](self.classifier[0](x))
    return x if self.pooled else self.classifier[2](x)


def randomize(module, seed):
  """ref.randomize for convs and linears, plus non-trivial LayerNorm affines and layer scales."""
  ref.randomize(module, seed)
  g = torch.Generator().manual_seed(seed + 1)
  for name, p in module.named_parameters():
    if isinstance(module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module, nn.LayerNorm):
      with torch.no_grad():
        p.copy_(torch.rand(p.shape, generator=g) + 0.5 if name.endswith("weight")
                else 0.1 * torch.randn(p.shape, generator=g))
    elif name.endswith(("layer_scale", "gamma")):
      with torch.no_grad():
        p.copy_(0.1 + 0.4 * torch.rand(p.shape, generator=g))
  return module


CASES = [("convnext_tiny", "torchvision"), ("convnext_tiny", "timm")] + [
    pytest.param(n, s, marks=slow) for n in ("convnext_small", "convnext_base", "convnext_large")
    for s in ("torchvision", "timm")] + [pytest.param("convnext_xlarge", "timm", marks=slow)]


@pytest.mark.parametrize("name, source", CASES)
def test_convnext_torch_parity(name, source, tmp_path):
  torch_check(name, source, randomize(ConvNeXt(name, source), 0), tmp_path)


# --- Keras ---------------------------------------------------------------------

def _keras_leaves(model):
  keras = pytest.importorskip("keras")
  for layer in model.layers:
    yield from (layer.layers if isinstance(layer, keras.Sequential) else [layer])


def keras_randomize(model, seed):
  keras = pytest.importorskip("keras")
  rng = np.random.default_rng(seed)
  for layer in _keras_leaves(model):
    values = layer.get_weights()
    if not values:
      continue
    if isinstance(layer, keras.layers.LayerNormalization):
      n = values[0].shape
      values = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)]
    elif len(values) == 1:  # LayerScale
      values = [rng.uniform(0.1, 0.5, values[0].shape)]
    else:
      gain = 1.0 if isinstance(layer, keras.layers.Dense) else 2.0
      values = [rng.normal(0, np.sqrt(gain / np.prod(values[0].shape[:-1])), values[0].shape),
                rng.normal(0, 0.1, values[1].shape)]
    layer.set_weights([np.asarray(v, np.float32) for v in values])


def write_legacy_h5(model, path):
  """Keras 2's ``save_weights`` layout: a group per top-level layer; a nested Sequential's
  weights named ``<inner layer>/<var>:0`` inside its group."""
  keras, h5py = pytest.importorskip("keras"), pytest.importorskip("h5py")
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
    for layer in model.layers:
      group = f.create_group(layer.name)
      inner = layer.layers if isinstance(layer, keras.Sequential) else [layer]
      names, arrays = [], []
      for sub in inner:
        for w in sub.weights:
          names.append(f"{sub.name}/{w.name}:0")
          arrays.append(np.asarray(w))
      group.attrs["weight_names"] = [n.encode("utf8") for n in names]
      for name, a in zip(names, arrays):
        group.create_dataset(name, data=a)


def keras_check(name, tmp_path, include_top=True, size=32, seed=0):
  keras = pytest.importorskip("keras")
  kw = dict(include_top=True, classifier_activation=None) if include_top else dict(
      include_top=False, pooling="avg")
  with reference_session(seed):
    reference = getattr(keras.applications, KERAS_APPS[name])(weights=None, input_shape=(size, size, 3), **kw)
  keras_randomize(reference, seed)
  x = images(seed, size)
  # Raw pixels: Keras normalises inside. One jit-compiled predict (eager calls compile per op).
  if include_top:
    both = keras.Model(reference.input, [reference.output, reference.get_layer(f"{name}_head_layernorm").output])
    logits, pooled = (np.asarray(a) for a in both.predict(x, verbose=0))
  else:
    logits, pooled = None, np.asarray(reference.predict(x, verbose=0))
  files = {"keras3": tmp_path / "model.weights.h5", "legacy": tmp_path / "legacy.h5"}
  reference.save_weights(files["keras3"])
  write_legacy_h5(reference, files["legacy"])
  return compare(name, "keras", files, logits, pooled, x)


@pytest.mark.parametrize("name", ["convnext_tiny"] + [
    pytest.param(n, marks=slow) for n in ("convnext_small", "convnext_base", "convnext_large", "convnext_xlarge")])
def test_convnext_keras_parity(name, tmp_path):
  keras_check(name, tmp_path)


@slow
def test_convnext_keras_notop_file(tmp_path):
  """A headless Keras model (``include_top=False, pooling='avg'``): its auto-named LayerNorm is the top."""
  keras_check("convnext_tiny", tmp_path, include_top=False)



def test_keras_checksums_are_keras_own():
  """The notop files' sha256 as the installed keras.applications.convnext publishes them."""
  import importlib.util

  from tl_jax import weights

  apps = importlib.util.find_spec("keras").submodule_search_locations[0] + "/src/applications/convnext.py"
  text = open(apps).read()
  for name, checksum in weights.CONVNEXT_KERAS_HASHES.items():
    assert weights.SOURCES[(name, "keras")].checksum == checksum and checksum.split(":")[1] in text, name
