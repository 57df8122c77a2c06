"""Parity with PyTorch references: torchvision/timm keys, .pth and .safetensors.

Each case builds a seeded reference model in torch (tests/weights/torch_reference.py),
saves its state dict both ways, converts it with tl_jax and requires the same
logits (max |difference| <= 1e-4, float32) on the same random images. Run with
``-s`` to see the measured differences (``PARITY`` lines).
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import torch_reference as ref  # noqa: E402

from tl_jax import models, weights  # noqa: E402

TOL = 1e-4
SIZE = 32
FC = 64  # VGG fc width in tests (4096 in the real files; the mapping does not depend on it)
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
TF_HALF = np.float32(127.5)

slow = pytest.mark.slow


def images(seed=0, size=SIZE):
  return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def torch_logits(module, x_nhwc, mean, std):
  x = torch.from_numpy(np.ascontiguousarray(((x_nhwc - mean) / std).transpose(0, 3, 1, 2)))
  with torch.no_grad():
    return module(x).numpy()


def check(name, source, module, tmp_path, mean, std, model=None, seed=0):
  """Saves ``module`` as .pth and .safetensors, converts both, returns the max logit differences."""
  ref.randomize(module, seed)
  state = module.state_dict()
  files = {"pth": tmp_path / "w.pth", "safetensors": tmp_path / "w.safetensors"}
  torch.save(state, files["pth"])
  safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
  x = images(seed)
  expected = torch_logits(module, x, mean, std)
  assert expected.std() > 0.1, "reference logits are degenerate; the comparison would be vacuous"
  model = model or models.create(name, expected.shape[-1], source=source)  # normalised as that source
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  diffs, apply = {}, jax.jit(model.apply)  # one compilation for all files (eager: one per op)
  for fmt, file in files.items():
    variables = weights.merge(init, weights.convert(name, str(file), source))
    logits, _ = apply(variables, x)
    diffs[fmt] = float(np.max(np.abs(np.asarray(logits) - expected)))
    print(f"PARITY {name} {source} {fmt} max|dlogit|={diffs[fmt]:.2e} "
          f"(logit std {expected.std():.2f})")
  assert max(diffs.values()) <= TOL, diffs
  return diffs


def tv(name, source, module, tmp_path, **kw):
  return check(name, source, module, tmp_path, TORCHVISION_MEAN, TORCHVISION_STD, **kw)


@pytest.mark.parametrize("depth", [18, 50, pytest.param(34, marks=slow),
                                   pytest.param(101, marks=slow), pytest.param(152, marks=slow)])
def test_resnet_torchvision(depth, tmp_path):
  tv(f"resnet{depth}", "torchvision", ref.ResNet(depth), tmp_path)


def test_resnet_timm_keys_are_torchvision(tmp_path):
  tv("resnet18", "timm", ref.ResNet(18, num_classes=10), tmp_path, seed=1)


def _tiny_fc(name, num_classes=1000):
  model = models.create(name, num_classes)
  return model.clone(backbone=model.backbone.clone(fc_channels=FC))


@pytest.mark.parametrize("depth, bn", [(11, False), (11, True), pytest.param(13, False, marks=slow),
                                       pytest.param(13, True, marks=slow),
                                       pytest.param(16, False, marks=slow),
                                       pytest.param(16, True, marks=slow),
                                       pytest.param(19, False, marks=slow),
                                       pytest.param(19, True, marks=slow)])
def test_vgg_torchvision_fc_top(depth, bn, tmp_path):
  name = f"vgg{depth}{'_bn' if bn else ''}_fc"
  tv(name, "torchvision", ref.VGG(depth, bn, fc=FC), tmp_path, model=_tiny_fc(name))


@pytest.mark.parametrize("bn", [False, True])
def test_vgg_torchvision_pool_top(bn, tmp_path):
  # The pooled top drops the file's fc layers; compare the pooled features.
  name = f"vgg11{'_bn' if bn else ''}"
  module = ref.VGG(11, bn, fc=FC)
  module.forward = lambda x: ref.VGG.forward(module, x, pooled=True)
  tv(name, "torchvision", module, tmp_path, model=models.create(name, 0))


@pytest.mark.parametrize("depth, bn", [(11, False)] + [
    pytest.param(d, bn, marks=slow) for d, bn in [(11, True), (13, False), (16, True), (19, False)]])
def test_vgg_timm(depth, bn, tmp_path):
  name = f"vgg{depth}{'_bn' if bn else ''}_fc"
  tv(name, "timm", ref.TimmVGG(depth, bn, fc=FC), tmp_path, model=_tiny_fc(name))


def test_mobilenet_v2_torchvision(tmp_path):
  tv("mobilenet_v2", "torchvision", ref.MobileNetV2(), tmp_path)


def test_mobilenet_v2_timm(tmp_path):
  tv("mobilenet_v2", "timm", ref.TimmEfficientNet(ref.MOBILENET_V2, 1e-5, False), tmp_path)


@pytest.mark.parametrize("k", [0] + [pytest.param(k, marks=slow) for k in (1, 2, 3, 4)])
def test_efficientnet_lite_timm(k, tmp_path):
  stages = ref.lite(*ref.LITES[k])
  check(f"efficientnet_lite{k}", "timm", ref.TimmEfficientNet(stages, 1e-3, True), tmp_path,
        TF_HALF, TF_HALF)


def test_wrong_architecture_lists_keys(tmp_path):
  module = ref.randomize(ref.ResNet(18), 0)
  torch.save(module.state_dict(), tmp_path / "r18.pth")
  with pytest.raises(ValueError) as e:
    weights.convert("resnet50", str(tmp_path / "r18.pth"))
  msg = str(e.value)
  assert "missing key(s): layer1.0.bn3.bias" in msg and "layer1.0.downsample" in msg
  assert "Check that the file is for the model you named" in msg


def test_shape_mismatch_names_path(tmp_path):
  module = ref.randomize(ref.ResNet(18, num_classes=7), 0)
  torch.save(module.state_dict(), tmp_path / "r18.pth")
  model = models.create("resnet18", 10)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), images()[:1]))
  with pytest.raises(ValueError, match=r"params/head/kernel: expected \(512, 10\), got \(512, 7\)"):
    weights.merge(init, weights.load_pretrained("resnet18", path=str(tmp_path / "r18.pth")))


def test_unsupported_dtype(tmp_path):
  state = ref.randomize(ref.ResNet(18), 0).state_dict()
  state["conv1.weight"] = (state["conv1.weight"] * 100).to(torch.int32)
  safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
  with pytest.raises(ValueError, match=r"Unsupported dtype.*conv1.weight: int32"):
    weights.convert("resnet18", str(tmp_path / "w.safetensors"))


def _lukemelas_to_timm(state):
  """Renames efficientnet_pytorch (lukemelas) Lite0 keys to the timm-layout reference's."""
  blocks = [(s, b, e) for s, (_, _, e, _, n) in enumerate(ref.LITE0) for b in range(n)]
  top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
         "_fc": "classifier"}
  out = {}
  for key, value in state.items():
    parts = key.split(".")
    if parts[0] == "_blocks":
      s, b, e = blocks[int(parts[1])]
      names = ({"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
               if e == 1 else
               {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"})
      out[".".join(["blocks", str(s), str(b), names[parts[2]], *parts[3:]])] = value
    else:
      out[".".join([top[parts[0]], *parts[1:]])] = value
  return out


def test_efficientnet_lite0_lukemelas_real_weights():
  """The packaged ImageNet Lite0 file in a torch reference vs tl_jax, on a real photo."""
  skdata = pytest.importorskip("skimage.data")
  file = weights.weight_file("efficientnet_lite0")
  module = ref.TimmEfficientNet(ref.LITE0, 1e-3, True)
  module.load_state_dict(_lukemelas_to_timm(torch.load(file, map_location="cpu")))
  module.eval()
  photo = jax.image.resize(np.asarray(skdata.chelsea(), np.float32), (224, 224, 3), "bilinear")
  x = np.stack([np.asarray(photo), images(0, 224)[0]])
  prep = models.preprocessing("efficientnet_lite0")  # TF Lite's (x - 127) / 128, as create() applies
  expected = torch_logits(module, x, np.float32(prep.mean), np.float32(prep.std))
  model = models.create("efficientnet_lite0", 1000)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  logits, _ = jax.jit(model.apply)(weights.merge(init, weights.load_pretrained("efficientnet_lite0")), x)
  diff = float(np.max(np.abs(np.asarray(logits) - expected)))
  print(f"PARITY efficientnet_lite0 lukemelas pth (real weights) max|dlogit|={diff:.2e} "
        f"(logit std {expected.std():.2f})")
  assert diff <= TOL
