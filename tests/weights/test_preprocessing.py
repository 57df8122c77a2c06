"""Every weight's preprocessing is the one its upstream publishes (``models.preprocessing``).

The expected values below are written from the upstreams' own source, not from tl_jax's table:

- torchvision: ``torchvision/models/{resnet,vgg,mobilenetv2,mobilenetv3,densenet,inception,
  efficientnet,regnet,convnext}.py`` (pytorch/vision), the ``transforms=partial(ImageClassification,
  crop_size=..., resize_size=..., interpolation=...)`` of the enum member whose file tl_jax loads
  (``published.TORCHVISION_FILES`` and friends); mean/std are ImageNet's unless the enum says
  otherwise (EfficientNet_V2_L: 0.5/0.5). Inception-v3's ``transform_input`` makes its network see
  x / 127.5 - 1.
- timm: ``default_cfgs`` of ``timm/models/{resnet,vgg,efficientnet,mobilenetv3,regnet,convnext,
  resnetv2}.py`` (huggingface/pytorch-image-models aa4b5850), with each file's ``_cfg`` defaults;
  the resize is ``floor(size / crop_pct)`` (``timm/data/transforms_factory.py``).
- keras: ``default_size`` and ``preprocess_input`` mode of ``keras/src/applications/*.py``
  (keras 3.15): "caffe" (BGR, ImageNet mean x 255 subtracted), "tf" (x / 127.5 - 1), "torch"
  (ImageNet mean/std); EfficientNet/ConvNeXt/V2-B* normalise inside the model with ImageNet's
  mean/std, V2-S/M/L with x / 128 - 1.
- ml_illustrated (Lite0-2): tensorflow/tpu ``models/official/efficientnet/lite/
  efficientnet_lite_builder.py`` (MEAN_RGB 127, STDDEV_RGB 128, resolutions 224/240/260) and
  ``preprocessing.py`` (center crop, CROP_FRACTION 0.875, bicubic).
"""

import math

import pytest

from tl_jax import models, weights
from tl_jax.models import inputs

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5,) * 3, (0.5,) * 3)

# torchvision: model -> (crop_size, resize_size, interpolation, normalisation).
V1 = (224, 256, "bilinear", IMAGENET)
TORCHVISION = {
    **{f"resnet{d}": V1 for d in (18, 34, 50, 101, 152)},
    **{f"vgg{d}{bn}{fc}": V1 for d in (11, 13, 16, 19) for bn in ("", "_bn") for fc in ("", "_fc")},
    "mobilenet_v2": V1, "mobilenet_v3_large": V1, "mobilenet_v3_small": V1,
    "densenet121": V1, "densenet169": V1, "densenet201": V1,
    "inception_v3": (299, 342, "bilinear", HALF),
    "efficientnet_b0": (224, 256, "bicubic", IMAGENET), "efficientnet_b1": (240, 256, "bicubic", IMAGENET),
    "efficientnet_b2": (288, 288, "bicubic", IMAGENET), "efficientnet_b3": (300, 320, "bicubic", IMAGENET),
    "efficientnet_b4": (380, 384, "bicubic", IMAGENET), "efficientnet_b5": (456, 456, "bicubic", IMAGENET),
    "efficientnet_b6": (528, 528, "bicubic", IMAGENET), "efficientnet_b7": (600, 600, "bicubic", IMAGENET),
    "efficientnet_v2_s": (384, 384, "bilinear", IMAGENET), "efficientnet_v2_m": (480, 480, "bilinear", IMAGENET),
    "efficientnet_v2_l": (480, 480, "bicubic", HALF),
    **{f"regnet_{k}_{s}": (224, 232, "bilinear", IMAGENET) for k in "xy"
       for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")},  # IMAGENET1K_V2
    "regnet_y_128gf": (384, 384, "bicubic", IMAGENET),  # IMAGENET1K_SWAG_E2E_V1
    "convnext_tiny": (224, 236, "bilinear", IMAGENET), "convnext_small": (224, 230, "bilinear", IMAGENET),
    "convnext_base": (224, 232, "bilinear", IMAGENET), "convnext_large": (224, 232, "bilinear", IMAGENET),
}

# timm: hub id -> (input_size, crop_pct, interpolation, normalisation, crop_mode).
TIMM = {
    **{f"resnet{d}.tv_in1k": (224, 0.875, "bilinear", IMAGENET, "center") for d in (18, 34, 50, 101, 152)},
    **{f"vgg{d}{bn}.tv_in1k": (224, 0.875, "bilinear", IMAGENET, "center") for d in (11, 13, 16, 19)
       for bn in ("", "_bn")},
    "mobilenetv2_100.ra_in1k": (224, 0.875, "bicubic", IMAGENET, "center"),
    "tf_efficientnet_lite0.in1k": (224, 0.875, "bicubic", HALF, "center"),
    "tf_efficientnet_lite1.in1k": (240, 0.882, "bicubic", HALF, "center"),
    "tf_efficientnet_lite2.in1k": (260, 0.890, "bicubic", HALF, "center"),
    "tf_efficientnet_lite3.in1k": (300, 0.904, "bilinear", HALF, "center"),
    "tf_efficientnet_lite4.in1k": (380, 0.920, "bilinear", HALF, "center"),
    **{f"tf_efficientnet_b{k}.aa_in1k": (s, c, "bicubic", IMAGENET, "center") for k, (s, c) in enumerate(
        [(224, 0.875), (240, 0.882), (260, 0.890), (300, 0.904), (380, 0.922), (456, 0.934), (528, 0.942),
         (600, 0.949)])},
    "tf_efficientnetv2_b0.in1k": (192, 0.875, "bicubic", IMAGENET, "center"),
    "tf_efficientnetv2_b1.in1k": (192, 0.882, "bicubic", IMAGENET, "center"),
    "tf_efficientnetv2_b2.in1k": (208, 0.890, "bicubic", IMAGENET, "center"),
    "tf_efficientnetv2_b3.in1k": (240, 0.904, "bicubic", IMAGENET, "center"),
    "tf_efficientnetv2_s.in1k": (300, 1.0, "bicubic", HALF, "center"),
    "tf_efficientnetv2_m.in1k": (384, 1.0, "bicubic", HALF, "squash"),
    "tf_efficientnetv2_l.in1k": (384, 1.0, "bicubic", HALF, "squash"),
    "tf_mobilenetv3_large_100.in1k": (224, 0.875, "bilinear", HALF, "center"),
    "tf_mobilenetv3_small_100.in1k": (224, 0.875, "bilinear", HALF, "center"),
    **{f"{n}.tv2_in1k": (224, 0.965, "bicubic", IMAGENET, "center") for n in (
        "regnetx_004_tv", "regnetx_008", "regnetx_016", "regnetx_032", "regnetx_080", "regnetx_160", "regnetx_320",
        "regnety_004", "regnety_008_tv", "regnety_016", "regnety_032", "regnety_080_tv", "regnety_160",
        "regnety_320")},
    "regnety_1280.swag_ft_in1k": (384, 1.0, "bicubic", IMAGENET, "center"),
    **{f"convnext_{s}.fb_in1k": (224, 0.875, "bicubic", IMAGENET, "center") for s in ("tiny", "small", "base",
                                                                                      "large")},
    "convnext_xlarge.fb_in22k_ft_in1k": (224, 0.875, "bicubic", IMAGENET, "center"),
    **{f"resnetv2_{v}_bit.goog_in21k": (224, 0.875, "bilinear", HALF, "center")
       for v in ("50x1", "50x3", "101x1", "101x3", "152x2", "152x4")},
}

# keras: model -> (default_size, normalisation mode).
KERAS = {
    **{f"keras_resnet{d}": (224, "caffe") for d in (50, 101, 152)},
    **{f"keras_vgg{d}{fc}": (224, "caffe") for d in (16, 19) for fc in ("", "_fc")},
    **{f"keras_resnet{d}v2": (224, "tf") for d in (50, 101, 152)},
    **{f"densenet{d}": (224, "torch") for d in (121, 169, 201)},
    "keras_mobilenet_v2": (224, "tf"), "keras_mobilenet_v3_large": (224, "tf"),
    "keras_mobilenet_v3_small": (224, "tf"), "keras_inception_v3": (299, "tf"), "keras_xception": (299, "tf"),
    **{f"keras_efficientnet_b{k}": (s, "torch") for k, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    "keras_efficientnet_v2_b0": (224, "torch"), "keras_efficientnet_v2_b1": (240, "torch"),
    "keras_efficientnet_v2_b2": (260, "torch"), "keras_efficientnet_v2_b3": (300, "torch"),
    "keras_efficientnet_v2_s": (384, "x/128-1"), "keras_efficientnet_v2_m": (480, "x/128-1"),
    "keras_efficientnet_v2_l": (480, "x/128-1"),
    **{f"convnext_{s}": (224, "torch") for s in ("tiny", "small", "base", "large", "xlarge")},
}
KERAS_MODES = {"caffe": ((123.68, 116.779, 103.939), (1.0,) * 3, True), "tf": ((127.5,) * 3, (127.5,) * 3, False),
               "torch": (tuple(255 * m for m in IMAGENET[0]), tuple(255 * s for s in IMAGENET[1]), False),
               "x/128-1": ((128.0,) * 3, (128.0,) * 3, False)}


def _norm(pair):
  return tuple(255 * m for m in pair[0]), tuple(255 * s for s in pair[1])


def _close(a, b):
  return all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def test_every_published_weight_has_its_preprocessing():
  assert set(inputs.TABLE) == set(weights.SOURCES)
  for name in models.names():  # the default source too: create() normalises with it
    assert (name, models.REGISTRY[name].weights) in inputs.TABLE, name


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_weights_transforms(name):
  size, resize, interpolation, norm = TORCHVISION[name]
  p = models.preprocessing(name, "torchvision")
  assert (p.size, p.resize, p.interpolation, p.crop, p.bgr) == (size, resize, interpolation, "center", False)
  assert _close(p.mean, _norm(norm)[0]) and _close(p.std, _norm(norm)[1]), name
  assert len(TORCHVISION) == sum(s == "torchvision" for _, s in weights.SOURCES)


def test_timm_pretrained_cfgs():
  timm = {m: weights.SOURCES[(m, s)].url.split("/timm/")[1].split("/")[0] for m, s in weights.SOURCES if s == "timm"}
  assert set(timm.values()) <= set(TIMM), set(timm.values()) - set(TIMM)
  for name, hub_id in timm.items():
    size, crop_pct, interpolation, norm, mode = TIMM[hub_id]
    p = models.preprocessing(name, "timm")
    resize = size if mode == "squash" else math.floor(size / crop_pct)
    assert (p.size, p.resize, p.interpolation, p.crop) == (size, resize, interpolation, mode), (name, hub_id)
    assert _close(p.mean, _norm(norm)[0]) and _close(p.std, _norm(norm)[1]), (name, hub_id)


def test_keras_default_size_and_preprocess_input():
  assert set(KERAS) == {m for m, s in weights.SOURCES if s == "keras"}
  for name, (size, mode) in KERAS.items():
    p = models.preprocessing(name, "keras")
    mean, std, bgr = KERAS_MODES[mode]
    assert p.size == size and p.bgr == bgr and _close(p.mean, mean) and _close(p.std, std), name
    # Keras publishes no crop: the same checkpoint's published one (timm), else size / 0.875.
    twin = TIMM.get(weights.SOURCES.get((name, "timm"), weights.SOURCES[(name, "keras")]).url.split("/timm/")[-1]
                    .split("/")[0])
    if twin and twin[0] == size:
      assert p.resize == (size if twin[4] == "squash" else math.floor(size / twin[1])), name


def test_ml_illustrated_lite_is_the_tf_originals_evaluation():
  for k, size in enumerate((224, 240, 260)):
    p = models.preprocessing(f"efficientnet_lite{k}", "ml_illustrated")
    assert (p.size, p.interpolation, p.mean, p.std) == (size, "bicubic", (127.0,) * 3, (128.0,) * 3)
    assert p.resize == size + round(size * (1 / 0.875 - 1))  # preprocessing.py's crop_padding


def test_default_source_normalises_the_model():
  """``create`` applies the preprocessing of the source it is given (default: the registry's)."""
  lite = models.create("efficientnet_lite0", 10)
  assert (lite.mean, lite.std) == ((127.0,) * 3, (128.0,) * 3)
  timm = models.create("efficientnet_lite0", 10, source="timm")
  assert (timm.mean, timm.std) == ((127.5,) * 3, (127.5,) * 3)
  keras = models.create("keras_resnet50", 10)
  assert keras.bgr and keras.std == (1.0,) * 3
  with pytest.raises(ValueError, match="Unknown source 'keras' for 'efficientnet_lite0'"):
    models.preprocessing("efficientnet_lite0", "keras")


def test_the_zoo_docs_list_every_weights_preprocessing():
  import pathlib

  docs = (pathlib.Path(__file__).parents[2] / "docs" / "zoo.md").read_text()
  assert inputs.markdown() in docs, "docs/zoo.md: paste tl_jax.models.inputs.markdown() under 'Preprocessing per weight'"
