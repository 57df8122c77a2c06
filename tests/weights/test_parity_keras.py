"""Parity with Keras 3 (JAX backend) ``keras.applications``, both .h5 key layouts.

Each case builds ``keras.applications.X(weights=None)`` and gives it seeded
random weights (random biases, BatchNorm affine and moving statistics), writes
its weights with Keras 3 ``save_weights`` and in the legacy layout of the
published ``*_weights_tf_dim_ordering_tf_kernels[_notop].h5`` files, converts
both with tl_jax and requires the same logits (or pooled features with
``include_top=False``): max |difference| <= 1e-4 in float32. Keras applies its
own ``preprocess_input``; tl_jax gets raw RGB pixels and normalises them as
its registry entry declares.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from tl_jax import models, weights  # noqa: E402
from tl_jax.weights import h5  # noqa: E402
from keras_parity import reference_session  # noqa: E402

TOL = 1e-4
slow = pytest.mark.slow
APPS = {  # tl_jax name (pooled top) -> (keras constructor, its preprocess_input)
    "keras_resnet50": ("ResNet50", "resnet"),
    "keras_resnet101": ("ResNet101", "resnet"),
    "keras_resnet152": ("ResNet152", "resnet"),
    "keras_vgg16": ("VGG16", "vgg16"),
    "keras_vgg19": ("VGG19", "vgg19"),
    "keras_mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
}


def write_legacy_h5(model, path):
  """The layout of Keras 2's ``save_weights_to_hdf5_group`` (the published weight files):
  ``layer_names`` attribute, one group per layer with ``weight_names``, datasets
  ``<layer>/<layer>/<var>:0``."""
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.2.4"
    for layer in model.layers:
      group = f.create_group(layer.name)
      # Keras 2 named the depthwise kernel "depthwise_kernel"; Keras 3 calls it "kernel".
      depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
      names = [f"{layer.name}/{'depthwise_kernel' if depthwise else w.name}:0"
               for w in layer.weights]
      group.attrs["weight_names"] = [n.encode("utf8") for n in names]
      for name, w in zip(names, layer.weights):
        group.create_dataset(name, data=np.asarray(w))


def randomize(model, seed):
  """Seeded random weights; kernels He-normal in plain nets (VGG19's outputs fade to ~0 with
  Keras' Glorot init), Keras' own init where BatchNorm keeps the scale (logits stay O(1))."""
  rng = np.random.default_rng(seed)
  plain = not any(isinstance(l, keras.layers.BatchNormalization) for l in model.layers)
  for layer in model.layers:
    values = layer.get_weights()
    if not values:
      continue
    if isinstance(layer, keras.layers.BatchNormalization):
      n = values[0].shape
      values = [rng.uniform(0.4, 1.0, n), rng.normal(0, 0.1, n), rng.normal(0, 0.2, n),
                rng.uniform(0.5, 2.0, n)]
    else:
      if plain:
        fan_in = np.prod(values[0].shape[:-1])
        gain = 1.0 if isinstance(layer, keras.layers.Dense) else 2.0
        values[0] = rng.normal(0, np.sqrt(gain / fan_in), values[0].shape)
      if len(values) == 2:  # the default zero bias would hide a lost bias
        values[1] = rng.normal(0, 0.1, values[1].shape)
    layer.set_weights([np.asarray(v, np.float32) for v in values])


def check(name, tmp_path, *, include_top, size, seed=0):
  app, prep = APPS[name]
  kw = dict(include_top=True, classifier_activation=None) if include_top else dict(
      include_top=False, pooling="avg")
  with reference_session(seed):
    reference = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3), **kw)
  randomize(reference, seed)
  x = np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
  preprocess = getattr(keras.applications, prep).preprocess_input
  expected = np.asarray(reference.predict(preprocess(x.copy()), verbose=0))  # one compile, not per op
  assert expected.std() > 0.1, "reference outputs are degenerate; the comparison would be vacuous"

  files = {"keras3": tmp_path / "model.weights.h5", "legacy": tmp_path / "legacy.h5"}
  reference.save_weights(files["keras3"])
  write_legacy_h5(reference, files["legacy"])
  ours = name + ("_fc" if include_top and "vgg" in name else "")
  model = models.create(ours, 1000 if include_top else 0)
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  diffs, apply = {}, jax.jit(model.apply)  # one compilation for both layouts (eager: one per op)
  for layout, file in files.items():
    assert h5.layout(str(file)) == layout
    variables = weights.merge(init, weights.load_pretrained(ours, path=str(file)))
    out, _ = apply(variables, x)
    diffs[layout] = float(np.max(np.abs(np.asarray(out) - expected)))
    what = "logit" if include_top else "pooled feature"
    print(f"PARITY {ours} keras {layout}.h5 include_top={include_top} "
          f"max|d{what}|={diffs[layout]:.2e} (std {expected.std():.2f})")
  # Float32 rounding scales with the values: VGG's unnormalised pooled features have std ~46.
  assert max(diffs.values()) <= max(TOL, 1e-5 * expected.std()), diffs


@pytest.mark.parametrize("name, include_top, size", [
    ("keras_resnet50", True, 48),
    ("keras_resnet50", False, 48),
    ("keras_vgg16", False, 32),
    pytest.param("keras_mobilenet_v2", True, 48, marks=slow),  # the top's keys: resnet50's case covers them
    ("keras_mobilenet_v2", False, 33),
    pytest.param("keras_resnet101", True, 32, marks=slow),
    pytest.param("keras_resnet152", True, 32, marks=slow),
    pytest.param("keras_vgg19", False, 32, marks=slow),
    pytest.param("keras_vgg16", True, 224, marks=slow),  # the original fc top needs 224 px
    pytest.param("keras_vgg19", True, 224, marks=slow),
])
def test_keras_parity(name, include_top, size, tmp_path):
  check(name, tmp_path, include_top=include_top, size=size)


def test_keras_file_for_another_model(tmp_path):
  with reference_session(0):
    reference = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False)
  write_legacy_h5(reference, tmp_path / "mbv2.h5")
  with pytest.raises(ValueError, match=r"missing key\(s\): conv1_bn/conv1_bn/beta.*\n.*"
                                       r"unexpected key\(s\): Conv1/Conv1/kernel"):
    weights.load_pretrained("keras_resnet50", path=str(tmp_path / "mbv2.h5"))


def test_not_an_h5_file(tmp_path):
  (tmp_path / "x.h5").write_bytes(b"not hdf5")
  with pytest.raises(ValueError, match="is not an HDF5 file"):
    weights.load_pretrained("keras_vgg16", path=str(tmp_path / "x.h5"))
