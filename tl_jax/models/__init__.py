"""Model registry: a plain dict from name to backbone constructor and metadata.

``create(name, num_classes)`` returns a ``classifier.Classifier`` (backbone + new head) whose
``__call__`` gives ``(logits, features)``. One file per backbone family: ``resnet``, ``resnetv2``
(BiT), ``vgg``, ``densenet``, ``inception``, ``xception``, ``regnet``, ``convnext`` and
``efficientnet`` (EfficientNet B/Lite/V2 and MobileNetV2/V3 from the typed rows of
``efficientnet_rows``); shared pieces: ``blocks``, ``layers`` (norms, convolutions, ``layer_impl``),
``cpu_kernels`` (convolutions XLA:CPU runs slowly, routed), ``padding`` (TF "same").
``preprocessing(name, source)``: the input each published weight file expects (size, resize,
interpolation, normalisation; data in ``inputs.TABLE``), which ``create`` normalises with.
"""

from collections.abc import Callable, Set
import dataclasses
import functools
from typing import Any

import jax.numpy as jnp

from tl_jax.models import (convnext, densenet, efficientnet, inception, inputs, regnet,
                           resnet, resnetv2, vgg, xception)
from tl_jax.models.classifier import Classifier
from tl_jax.models.inputs import Preprocessing

@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What a registry entry declares besides its constructor; its input is ``preprocessing``'s."""

  backbone: Callable[..., Any]  # keyword arguments -> backbone nn.Module
  dropout_rate: float  # before the head, as in the original recipe
  weights: str  # default source of pretrained weights (tl_jax.weights.SOURCES)
  head: str = Classifier.HEAD  # path of the classifier layer


def _inverted_residual(name: str, numerics: efficientnet.Numerics, weights: str,
                       variant: str | None = None) -> ModelInfo:
  """An ``efficientnet.VARIANTS`` row with the numerics of its weights' framework."""
  variant = variant or name
  backbone = functools.partial(efficientnet.EfficientNet, variant=variant, numerics=numerics)
  return ModelInfo(backbone, efficientnet.VARIANTS[variant].dropout, weights)


def _torchvision_efficientnet(name: str) -> efficientnet.Numerics:
  # torchvision's B5-B7 use BatchNorm2d(eps=1e-3, momentum=0.01) (Flax 0.99); B0-B4 the defaults.
  big = name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
  return efficientnet.Numerics("torch", 1e-3, 0.99) if big else efficientnet.TORCH


def _resnet(depth: int, style: str) -> ModelInfo:
  backbone = functools.partial(resnet.ResNet, depth=depth, style=style)
  return ModelInfo(backbone, 0.0, "keras" if style == "keras" else "torchvision")


def _vgg(depth: int, batch_norm: bool, top: str, keras: bool = False) -> ModelInfo:
  backbone = functools.partial(vgg.VGG, depth=depth, batch_norm=batch_norm, top=top)
  dropout = 0.5 if top == "fc" else 0.0  # torchvision's dropout before its last layer
  return ModelInfo(backbone, dropout, "keras" if keras else "torchvision")


# BiT's published variants: (depth, width factor).
BIT_VARIANTS = {f"bit_m_r{d}x{w}": (d, w) for d, w in ((50, 1), (50, 3), (101, 1), (101, 3), (152, 2),
                                                         (152, 4))}


def _resnetv2(depth: int, width: int, arch: str) -> ModelInfo:
  backbone = functools.partial(resnetv2.ResNetV2, depth=depth, width_factor=width, arch=arch)
  return ModelInfo(backbone, 0.0, "keras" if arch == "keras" else "big_transfer")


REGISTRY: dict[str, ModelInfo] = {
    # Lite0-2 from ML Illustrated's PyPI packages; Lite3/4 only timm publishes.
    **{name: _inverted_residual(name, efficientnet.TF, "ml_illustrated" if name[-1] in "012" else "timm")
       for name in efficientnet.LITE_NAMES},
    # torchvision layout (torch padding); the TF layout (SAME padding, eps 1e-3) is keras_*,
    # which timm's tf_efficientnet_b* ports also fit.
    **{name: _inverted_residual(name, _torchvision_efficientnet(name), "torchvision")
       for name in efficientnet.B_NAMES},
    **{f"keras_{name}": _inverted_residual(f"keras_{name}", efficientnet.TF, "keras", variant=name)
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
    **{name: _inverted_residual(name, efficientnet.Numerics("torch", 1e-3, 0.9), "torchvision")
       for name in ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")},
    **{f"keras_{name}": _inverted_residual(f"keras_{name}", efficientnet.Numerics("SAME", 1e-3, 0.9), "keras",
                                           variant=name) for name in efficientnet.V2_NAMES},
    # torch BatchNorm2d momentum 0.1 is Flax 0.9 (torchvision and timm MobileNetV2).
    "mobilenet_v2": _inverted_residual("mobilenet_v2", efficientnet.TORCH, "torchvision"),
    # torchvision: BatchNorm2d(eps=1e-3, momentum=0.01); Keras: eps 1e-3, momentum 0.999.
    **{f"mobilenet_v3_{size}": _inverted_residual(
        f"mobilenet_v3_{size}", efficientnet.Numerics("torch", 1e-3, 0.99), "torchvision")
       for size in ("large", "small")},
    **{f"keras_mobilenet_v3_{size}": _inverted_residual(
        f"keras_mobilenet_v3_{size}", efficientnet.Numerics("SAME", 1e-3, 0.999), "keras",
        variant=f"mobilenet_v3_{size}") for size in ("large", "small")},
    "keras_mobilenet_v2": _inverted_residual("keras_mobilenet_v2", efficientnet.TF, "keras",
                                             variant="mobilenet_v2"),
    **{name: ModelInfo(functools.partial(regnet.RegNet, variant=name), 0.0, "torchvision")
       for name in regnet.VARIANTS},
    # torchvision has no XL.
    **{name: ModelInfo(functools.partial(convnext.ConvNeXt, variant=name), 0.0,
                       "timm" if name == "convnext_xlarge" else "torchvision") for name in convnext.VARIANTS},
    **{name: ModelInfo(functools.partial(densenet.DenseNet, variant=name), 0.0, "torchvision")
       for name in densenet.VARIANTS},
    **{f"keras_resnet{d}v2": _resnetv2(d, 1, "keras") for d in resnetv2.DEPTHS},
    **{name: _resnetv2(d, w, "bit") for name, (d, w) in BIT_VARIANTS.items()},
    # Dropout 0.5 before the head in torchvision's.
    "inception_v3": ModelInfo(functools.partial(inception.InceptionV3, arch="torchvision"), 0.5, "torchvision"),
    "keras_inception_v3": ModelInfo(functools.partial(inception.InceptionV3, arch="keras"), 0.0, "keras"),
    # Keras' layout (SAME max-pools, separable convs).
    "keras_xception": ModelInfo(xception.Xception, 0.0, "keras"),
}


def preprocessing(name: str, source: str | None = None) -> Preprocessing:
  """The input ``source``'s weights of model ``name`` expect (``models.preprocessing``);
  ``source`` None: the registry's default source. Training from scratch uses it too."""
  if name not in REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(names())}.")
  source = source or REGISTRY[name].weights
  row = inputs.TABLE.get((name, source))
  if row is None:
    raise ValueError(f"Unknown source {source!r} for {name!r}; known: {inputs.sources(name)}.")
  return row


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
    source: str | None = None,
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
  info, prep = REGISTRY[name], preprocessing(name, source)
  backbone = info.backbone(drop_path_rate=drop_path_rate, frozen_bn=frozenset(frozen_bn),
                           dtype=dtype)
  rate = info.dropout_rate if dropout_rate is None else dropout_rate
  return Classifier(backbone=backbone, num_classes=num_classes, dropout_rate=rate, dtype=dtype,
                    mean=prep.mean, std=prep.std, bgr=prep.bgr, layer_impl=layer_impl,
                    bn_momentum=bn_momentum)
