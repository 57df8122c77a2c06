"""Model registry: a plain dict from name to backbone constructor and metadata.

``create(name, num_classes)`` returns a ``classifier.Classifier`` (backbone + new head) whose
``__call__`` gives ``(logits, features)``. One file per backbone family: ``resnet``, ``resnetv2``
(BiT), ``vgg``, ``densenet``, ``inception``, ``xception``, ``regnet``, ``convnext`` and
``efficientnet`` (EfficientNet B/Lite/V2 and MobileNetV2/V3 from the typed rows of
``efficientnet_rows``); shared pieces: ``blocks``, ``layers`` (norms, convolutions, ``layer_impl``),
``cpu_kernels`` (convolutions XLA:CPU runs slowly, routed), ``padding`` (TF "same").
"""

from collections.abc import Callable, Set
import dataclasses
import functools
from typing import Any

import jax.numpy as jnp

from tl_jax.models import (convnext, densenet, efficientnet, inception, regnet, resnet, resnetv2, vgg,
                           xception)
from tl_jax.models.classifier import Classifier

# Input normalisation on the [0, 255] scale, per RGB channel.
TORCHVISION_MEAN = (123.675, 116.28, 103.53)  # ImageNet mean * 255
TORCHVISION_STD = (58.395, 57.12, 57.375)  # ImageNet std * 255
CAFFE_MEAN = (123.68, 116.779, 103.939)  # Keras "caffe" mode (ResNet, VGG); std 1, BGR
HALF = (127.5, 127.5, 127.5)  # x / 127.5 - 1 (Keras "tf" mode, EfficientNet-Lite)
KERAS_V2 = (128.0, 128.0, 128.0)  # x / 128 - 1: Keras EfficientNetV2-S/M/L's Rescaling


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What a registry entry declares besides its constructor."""

  backbone: Callable[..., Any]  # keyword arguments -> backbone nn.Module
  resolution: int  # the pretraining input size
  dropout_rate: float  # before the head, as in the original recipe
  mean: tuple[float, float, float]  # RGB order, [0, 255] scale
  std: tuple[float, float, float]
  bgr: bool  # the network sees channels in BGR order (Keras "caffe" preprocessing)
  weights: str  # default source of pretrained weights (tl_jax.weights.SOURCES)
  head: str = Classifier.HEAD  # path of the classifier layer


# Where a weight file's own input size is not its architecture row's (torchvision's
# EfficientNet_B2_Weights: crop 288; RegNet_Y_128GF's SWAG end-to-end file: 384).
RESOLUTION = {"efficientnet_b2": 288, "regnet_y_128gf": 384}


def _inverted_residual(name: str, numerics: efficientnet.Numerics, mean, std, weights: str,
                       variant: str | None = None) -> ModelInfo:
  """An ``efficientnet.VARIANTS`` row with the numerics of its weights' framework."""
  variant = variant or name
  row = efficientnet.VARIANTS[variant]
  backbone = functools.partial(efficientnet.EfficientNet, variant=variant, numerics=numerics)
  return ModelInfo(backbone, RESOLUTION.get(name, row.resolution), row.dropout, mean, std, False, weights)


def _torchvision_efficientnet(name: str) -> efficientnet.Numerics:
  # torchvision's B5-B7 use BatchNorm2d(eps=1e-3, momentum=0.01) (Flax 0.99); B0-B4 the defaults.
  big = name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
  return efficientnet.Numerics("torch", 1e-3, 0.99) if big else efficientnet.TORCH


def _resnet(depth: int, style: str) -> ModelInfo:
  backbone = functools.partial(resnet.ResNet, depth=depth, style=style)
  if style == "keras":
    return ModelInfo(backbone, 224, 0.0, CAFFE_MEAN, (1.0, 1.0, 1.0), True, "keras")
  return ModelInfo(backbone, 224, 0.0, TORCHVISION_MEAN, TORCHVISION_STD, False, "torchvision")


def _vgg(depth: int, batch_norm: bool, top: str, keras: bool = False) -> ModelInfo:
  backbone = functools.partial(vgg.VGG, depth=depth, batch_norm=batch_norm, top=top)
  dropout = 0.5 if top == "fc" else 0.0  # torchvision's dropout before its last layer
  if keras:
    return ModelInfo(backbone, 224, dropout, CAFFE_MEAN, (1.0, 1.0, 1.0), True, "keras")
  return ModelInfo(backbone, 224, dropout, TORCHVISION_MEAN, TORCHVISION_STD, False,
                   "torchvision")


def _regnet(name: str) -> ModelInfo:
  return ModelInfo(functools.partial(regnet.RegNet, variant=name), RESOLUTION.get(name, 224), 0.0, TORCHVISION_MEAN,
                   TORCHVISION_STD, False, "torchvision")


def _convnext(name: str) -> ModelInfo:
  # torchvision has no XL; Keras' ConvNeXts normalise with these same constants inside the model.
  return ModelInfo(functools.partial(convnext.ConvNeXt, variant=name), 224, 0.0, TORCHVISION_MEAN,
                   TORCHVISION_STD, False, "timm" if name == "convnext_xlarge" else "torchvision")


def _densenet(name: str) -> ModelInfo:
  # torchvision and Keras ("torch" preprocess_input) both normalise with the ImageNet mean/std.
  return ModelInfo(functools.partial(densenet.DenseNet, variant=name), 224, 0.0, TORCHVISION_MEAN,
                   TORCHVISION_STD, False, "torchvision")


# BiT's published variants: (depth, width factor).
BIT_VARIANTS = {f"bit_m_r{d}x{w}": (d, w) for d, w in ((50, 1), (50, 3), (101, 1), (101, 3), (152, 2),
                                                         (152, 4))}


def _resnetv2(depth: int, width: int, arch: str) -> ModelInfo:
  # Keras' ResNetV2 ("tf" preprocess_input) and BiT both see x / 127.5 - 1.
  backbone = functools.partial(resnetv2.ResNetV2, depth=depth, width_factor=width, arch=arch)
  return ModelInfo(backbone, 224, 0.0, HALF, HALF, False, "keras" if arch == "keras" else "big_transfer")


REGISTRY: dict[str, ModelInfo] = {
    **{name: _inverted_residual(name, efficientnet.TF, HALF, HALF, "ml_illustrated")
       for name in efficientnet.LITE_NAMES},
    # torchvision layout (torch padding); the TF layout (SAME padding, eps 1e-3) is keras_*,
    # which timm's tf_efficientnet_b* ports also fit. Keras' own Rescaling + Normalization
    # layers compute (x / 255 - ImageNet mean) / ImageNet std for the published weights.
    **{name: _inverted_residual(name, _torchvision_efficientnet(name), TORCHVISION_MEAN,
                                TORCHVISION_STD, "torchvision")
       for name in efficientnet.B_NAMES},
    **{f"keras_{name}": _inverted_residual(f"keras_{name}", efficientnet.TF, TORCHVISION_MEAN,
                                           TORCHVISION_STD, "keras", variant=name)
       for name in efficientnet.B_NAMES},
    **{f"resnet{d}": _resnet(d, "torchvision") for d in resnet.DEPTHS},
    **{f"keras_resnet{d}": _resnet(d, "keras") for d in (50, 101, 152)},
    # "_fc": the original fully-connected top kept (Keras include_top=True);
    # otherwise global pooling + new head.
    **{f"vgg{d}{bn}{fc}": _vgg(d, bool(bn), "fc" if fc else "pool")
       for d in vgg.DEPTHS for bn in ("", "_bn") for fc in ("", "_fc")},
    **{f"keras_vgg{d}{fc}": _vgg(d, False, "fc" if fc else "pool", keras=True)
       for d in (16, 19) for fc in ("", "_fc")},
    # EfficientNetV2: torchvision BatchNorm2d(eps=1e-3) (momentum 0.1); Keras eps 1e-3, momentum 0.9.
    # V2-S/M: torchvision's own recipe, ImageNet mean/std; V2-L is ported from google/automl and
    # normalises with mean = std = 0.5 (torchvision's EfficientNet_V2_L_Weights.transforms).
    **{name: _inverted_residual(name, efficientnet.Numerics("torch", 1e-3, 0.9),
                                *((HALF, HALF) if name == "efficientnet_v2_l" else (TORCHVISION_MEAN, TORCHVISION_STD)),
                                "torchvision")
       for name in ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")},
    **{f"keras_{name}": _inverted_residual(
        f"keras_{name}", efficientnet.Numerics("SAME", 1e-3, 0.9),
        *((TORCHVISION_MEAN, TORCHVISION_STD) if "_b" in name else (KERAS_V2, KERAS_V2)), "keras",
        variant=name) for name in efficientnet.V2_NAMES},
    # torch BatchNorm2d momentum 0.1 is Flax 0.9 (torchvision and timm MobileNetV2).
    "mobilenet_v2": _inverted_residual("mobilenet_v2", efficientnet.TORCH, TORCHVISION_MEAN,
                                       TORCHVISION_STD, "torchvision"),
    # torchvision: BatchNorm2d(eps=1e-3, momentum=0.01); Keras: eps 1e-3, momentum 0.999.
    **{f"mobilenet_v3_{size}": _inverted_residual(
        f"mobilenet_v3_{size}", efficientnet.Numerics("torch", 1e-3, 0.99), TORCHVISION_MEAN,
        TORCHVISION_STD, "torchvision") for size in ("large", "small")},
    **{f"keras_mobilenet_v3_{size}": _inverted_residual(
        f"keras_mobilenet_v3_{size}", efficientnet.Numerics("SAME", 1e-3, 0.999), HALF, HALF,
        "keras", variant=f"mobilenet_v3_{size}") for size in ("large", "small")},
    "keras_mobilenet_v2": _inverted_residual("keras_mobilenet_v2", efficientnet.TF, HALF, HALF,
                                             "keras", variant="mobilenet_v2"),
    **{name: _regnet(name) for name in regnet.VARIANTS},
    **{name: _convnext(name) for name in convnext.VARIANTS},
    **{name: _densenet(name) for name in densenet.VARIANTS},
    **{f"keras_resnet{d}v2": _resnetv2(d, 1, "keras") for d in resnetv2.DEPTHS},
    **{name: _resnetv2(d, w, "bit") for name, (d, w) in BIT_VARIANTS.items()},
    # Native 299 px. torchvision's transform_input maps its ImageNet normalisation to x / 127.5 - 1,
    # what Keras' "tf" preprocess_input computes; dropout 0.5 before the head in both.
    "inception_v3": ModelInfo(functools.partial(inception.InceptionV3, arch="torchvision"), 299, 0.5,
                              HALF, HALF, False, "torchvision"),
    "keras_inception_v3": ModelInfo(functools.partial(inception.InceptionV3, arch="keras"), 299, 0.0,
                                    HALF, HALF, False, "keras"),
    # Keras' layout (SAME max-pools, separable convs); native 299 px, "tf" preprocess_input.
    "keras_xception": ModelInfo(xception.Xception, 299, 0.0, HALF, HALF, False, "keras"),
}


def names() -> list[str]:
  """The registered model names."""
  return sorted(REGISTRY)


def create(
    name: str,
    num_classes: int,
    *,
    dropout_rate: float | None = None,
    drop_path_rate: float = 0.0,
    frozen_bn: Set[str] = frozenset(),
    dtype: Any = jnp.float32,
    layer_impl: str | None = None,
    bn_momentum: float = 0.0,
) -> Classifier:
  """Builds ``Classifier(backbone=name, head of num_classes)``.

  Args:
    name: a key of ``REGISTRY``.
    num_classes: size of the new head; 0 means no head.
    dropout_rate: before the head; ``None`` takes the entry's default.
    drop_path_rate: stochastic depth of the backbone's residual blocks.
    frozen_bn: paths of BatchNorm layers that always use running statistics.
    dtype: compute dtype (parameters stay float32).
    layer_impl: ``"auto"``, ``"native"`` or ``"cpu_routed"`` (``layers.impl``);
      ``None`` keeps the one set around the call.
    bn_momentum: every BatchNorm's running-statistics momentum (Flax's: the
      weight of the old value); 0 keeps the family's own (``layers.bn_momentum``).
  """
  if name not in REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(names())}.")
  info = REGISTRY[name]
  backbone = info.backbone(drop_path_rate=drop_path_rate, frozen_bn=frozenset(frozen_bn),
                           dtype=dtype)
  rate = info.dropout_rate if dropout_rate is None else dropout_rate
  return Classifier(backbone=backbone, num_classes=num_classes, dropout_rate=rate, dtype=dtype,
                    mean=info.mean, std=info.std, bgr=info.bgr, layer_impl=layer_impl,
                    bn_momentum=bn_momentum)
