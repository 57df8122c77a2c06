"""Parity of the inverted-residual families with their sources, on random weights.

torch references (torchvision and timm key layouts) are saved as .pth and
.safetensors; Keras 3 references (``keras.applications.X(weights=None)``, JAX
backend) as both .h5 layouts. tl_jax converts each file and must reproduce the
logits and the pooled features on the same raw images: max |difference| <= 1e-4
in float32. Run with ``-s`` for the ``PARITY`` lines.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import torch_efficientnet_reference as ref  # noqa: E402
import torch_reference  # noqa: E402

from tl_jax import models, weights  # noqa: E402

TOL = 1e-4
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
slow = pytest.mark.slow


def images(size, seed=0):
  return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def compare(name, source, files, expected, x):
  """Converts each file and returns {format: (max |dlogit|, max |dpooled|)}."""
  model = models.create(name, expected["logits"].shape[-1])
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  apply = jax.jit(model.apply)  # one compile: op-by-op dispatch of ~300 layers costs more
  diffs = {}
  for fmt, file in files.items():
    variables = weights.merge(init, weights.convert(name, str(file), source))
    logits, features = apply(variables, x)
    diffs[fmt] = (float(np.max(np.abs(np.asarray(logits) - expected["logits"]))),
                  float(np.max(np.abs(np.asarray(features["pre_logits"]) - expected["pooled"]))))
    print(f"PARITY {name} {source} {fmt} max|dlogit|={diffs[fmt][0]:.2e} "
          f"max|dpooled|={diffs[fmt][1]:.2e} (logit std {expected['logits'].std():.2f})")
  assert max(max(d) for d in diffs.values()) <= TOL, diffs
  return diffs


def check_torch(name, source, module, tmp_path, size, seed=0, mean=MEAN, std=STD):
  torch_reference.randomize(module, seed)
  with torch.no_grad():  # swish nets shrink random logits to std ~0.1: make them O(1)
    [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(10)
  state = module.state_dict()
  files = {"pth": tmp_path / "w.pth", "safetensors": tmp_path / "w.safetensors"}
  torch.save(state, files["pth"])
  safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
  x = images(size, seed)
  t = torch.from_numpy(np.ascontiguousarray(((x / 255 - mean) / std).transpose(0, 3, 1, 2)))
  with torch.no_grad():
    expected = {"logits": module(t).numpy(), "pooled": module(t, pooled=True).numpy()}
  assert expected["logits"].std() > 0.1, "reference logits are degenerate"
  return compare(name, source, files, expected, x)


@pytest.mark.parametrize("k", [0] + [pytest.param(k, marks=slow) for k in range(1, 8)])
def test_efficientnet_torchvision(k, tmp_path):
  check_torch(f"efficientnet_b{k}", "torchvision", ref.TorchvisionEfficientNet(k), tmp_path, 48)
  if k == 0:  # transfer: a new 10-class head, everything else from the file
    model = models.create("efficientnet_b0", 10)
    init = jax.eval_shape(lambda: model.init(jax.random.key(0), images(32)[:1]))
    loaded = weights.convert("efficientnet_b0", str(tmp_path / "w.pth"))
    merged = weights.merge(init, loaded, dont_load=("head/.*",))
    se = merged["params"]["backbone"]["stage7"]["block1"]["se"]["reduce"]["kernel"]
    np.testing.assert_array_equal(se, loaded["params/backbone/stage7/block1/se/reduce/kernel"])
    assert merged["params"]["head"]["kernel"].shape == (1280, 10)


@pytest.mark.parametrize("k", [0] + [pytest.param(k, marks=slow) for k in range(1, 8)])
def test_efficientnet_timm_tf(k, tmp_path):
  # 49 px: odd sizes are where TF "SAME" and torch padding differ the other way.
  check_torch(f"keras_efficientnet_b{k}", "timm", ref.TimmEfficientNetB(k), tmp_path, 49)


@pytest.mark.parametrize("size", ["small", pytest.param("large", marks=slow)])
def test_mobilenet_v3_torchvision(size, tmp_path):
  check_torch(f"mobilenet_v3_{size}", "torchvision", ref.TorchvisionMobileNetV3(size), tmp_path, 64)


@pytest.mark.parametrize("size", ["small", pytest.param("large", marks=slow)])
def test_mobilenet_v3_timm_tf(size, tmp_path):
  check_torch(f"keras_mobilenet_v3_{size}", "timm", ref.TimmMobileNetV3(size), tmp_path, 63,
              mean=0.5, std=0.5)


@pytest.mark.parametrize("v", ["s"] + [pytest.param(v, marks=slow) for v in ("m", "l")])
def test_efficientnet_v2_torchvision(v, tmp_path):
  check_torch(f"efficientnet_v2_{v}", "torchvision", ref.TorchvisionEfficientNetV2(v), tmp_path, 48)


@pytest.mark.parametrize("v", ["b0"] + [pytest.param(v, marks=slow) for v in ("b1", "b2", "b3", "s", "m", "l")])
def test_efficientnet_v2_timm_tf(v, tmp_path):
  # S/M/L: the keras_ layout normalises as Keras does, x / 128 - 1, for timm's files too (timm's own
  # cfg says x / 127.5 - 1 for these: 0.4% in scale; docs/zoo.md, EfficientNetV2), so the reference gets that.
  norm = {} if v.startswith("b") else dict(mean=128 / 255, std=128 / 255)
  check_torch(f"keras_efficientnet_v2_{v}", "timm", ref.TimmEfficientNetV2(v), tmp_path, 49, **norm)


# --- Keras ---------------------------------------------------------------------------

KERAS_APPS = {**{f"keras_efficientnet_b{k}": f"EfficientNetB{k}" for k in range(8)},
              **{f"keras_efficientnet_v2_{v}": f"EfficientNetV2{v.upper()}"
                 for v in ("b0", "b1", "b2", "b3", "s", "m", "l")},
              "keras_mobilenet_v3_large": "MobileNetV3Large",
              "keras_mobilenet_v3_small": "MobileNetV3Small"}


def check_keras(name, tmp_path, size, seed=0):
  keras = pytest.importorskip("keras")
  pytest.importorskip("h5py")
  from keras_parity import reference_session
  from test_parity_keras import randomize, write_legacy_h5

  app = getattr(keras.applications, KERAS_APPS[name])
  with reference_session(seed):
    reference = app(weights=None, input_shape=(size, size, 3), include_top=True, classifier_activation=None)
  randomize(reference, seed)
  # Logits of std ~0.1 with Keras' classifier init: make them O(1).
  head = [l for l in reference.layers if l.weights][-1]
  head.set_weights([w * 10 for w in head.get_weights()])
  norms = [l for l in reference.layers if isinstance(l, keras.layers.Normalization)]
  if norms and "v2" not in name:  # V2's Normalization is built with the right variance
    # EfficientNet's published files hold the ImageNet mean and (a Keras bug) the std as
    # "variance", undone by a Rescaling(1/sqrt(std)) that only weights="imagenet" adds:
    # together (x/255 - mean) / std. weights=None lacks that Rescaling, so give it std**2.
    norms[0].set_weights([MEAN, STD ** 2, *norms[0].get_weights()[2:]])
  if "efficientnet" in name:
    pooled = reference.get_layer("avg_pool").output
  else:  # MobileNetV3: pre-logits are the activation of conv_2, the Dense on the pool
    names = [l.name for l in reference.layers]
    pooled = reference.layers[names.index("conv_2") + 1].output
  both = keras.Model(reference.input, [reference.output, pooled])
  x = images(size, seed)
  logits, pooled = both.predict(x, verbose=0)  # jit-compiled once; eager calls compile per op
  expected = {"logits": np.asarray(logits), "pooled": np.asarray(pooled).reshape(len(x), -1)}
  assert expected["logits"].std() > 0.1, "reference logits are degenerate"
  files = {"keras3": tmp_path / "model.weights.h5", "legacy": tmp_path / "legacy.h5"}
  reference.save_weights(files["keras3"])
  write_legacy_h5(reference, files["legacy"])
  return compare(name, "keras", files, expected, x)


@pytest.mark.parametrize("k", [0] + [pytest.param(k, marks=slow) for k in range(1, 8)])
def test_efficientnet_keras(k, tmp_path):
  check_keras(f"keras_efficientnet_b{k}", tmp_path, 48)


@pytest.mark.parametrize("size", ["small", pytest.param("large", marks=slow)])
def test_mobilenet_v3_keras(size, tmp_path):
  check_keras(f"keras_mobilenet_v3_{size}", tmp_path, 64)


@pytest.mark.parametrize("v", ["b0"] + [pytest.param(v, marks=slow) for v in ("b1", "b2", "b3", "s", "m", "l")])
def test_efficientnet_v2_keras(v, tmp_path):
  check_keras(f"keras_efficientnet_v2_{v}", tmp_path, 48)
