"""What each published weight file expects of its input, per (model, source): data only.

As torchvision's ``Weights.transforms()`` and timm's ``pretrained_cfg``: the input resolution,
the resize before the central crop, the interpolation, the normalisation and the channel order.
``preprocessing(name, source)`` returns a row; the registry's default source when ``source`` is
None. Every (model, source) of ``tl_jax.weights.SOURCES`` has a row (a test holds the two
tables equal), and ``tests/weights/test_preprocessing.py`` pins every value to its upstream.

Where the values come from:

- ``torchvision``: each file's ``*_Weights`` enum, ``transforms=partial(ImageClassification,
  crop_size, resize_size, interpolation)`` (pytorch/vision ``torchvision/models/*.py``).
- ``timm``: the hub id's ``default_cfgs`` entry (``input_size``, ``crop_pct``, ``interpolation``,
  ``mean``, ``std``, ``crop_mode``; huggingface/pytorch-image-models ``timm/models/*.py``), resize
  ``floor(size / crop_pct)`` as ``timm.data.transforms_factory`` computes it.
- ``keras``: keras.applications publishes the input size (``default_size``) and the normalisation
  (``preprocess_input`` or the model's own Rescaling/Normalization), no resize or crop. tl_jax
  uses the recipe of the checkpoint's origin where another upstream publishes the same
  checkpoint (EfficientNet B0-B7 and V2: timm's ``tf_efficientnet*`` ports; ConvNeXt: timm's
  ``convnext.fb_*``), else the usual ImageNet evaluation: resize to size / 0.875, bilinear.
- ``ml_illustrated`` (EfficientNet-Lite0-2): the package publishes the converted TF checkpoints
  and no transform; the TF originals' (tensorflow/tpu ``models/official/efficientnet/``:
  ``lite/efficientnet_lite_builder.py`` MEAN_RGB 127, STDDEV_RGB 128; ``preprocessing.py`` center
  crop with CROP_FRACTION 0.875 and bicubic resize; resolutions 224/240/260).
- ``big_transfer`` (BiT-M .npz): x / 127.5 - 1 (``bit_pytorch``'s Normalize(0.5, 0.5)); the
  ImageNet-21k files carry no evaluation transform, so timm's for the same files.
"""

import dataclasses
import math

INTERPOLATIONS = ("bilinear", "bicubic")
CROPS = ("center", "squash")

# Normalisations on the [0, 255] scale, per RGB channel: (mean, std).
IMAGENET = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))  # (0.485, 0.456, 0.406) x 255, ...
HALF = ((127.5,) * 3, (127.5,) * 3)  # x / 127.5 - 1: timm's (0.5, 0.5), Keras' "tf" mode
TF_LITE = ((127.0,) * 3, (128.0,) * 3)  # tensorflow/tpu EfficientNet-Lite's MEAN_RGB / STDDEV_RGB
KERAS_V2 = ((128.0,) * 3, (128.0,) * 3)  # x / 128 - 1: Keras EfficientNetV2-S/M/L's Rescaling
CAFFE = ((123.68, 116.779, 103.939), (1.0,) * 3)  # Keras "caffe" mode (ResNet, VGG), fed as BGR


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """How an image becomes the input a weight file was evaluated on."""

  size: int  # the square input the network sees
  resize: int  # "center": the shorter side is resized to this, then the central size x size kept
  interpolation: str  # "bilinear" | "bicubic" (Pillow's, antialiased as torchvision's PIL path)
  mean: tuple[float, float, float]  # RGB, [0, 255] scale
  std: tuple[float, float, float]
  bgr: bool = False  # the network sees BGR (Caffe-trained weights)
  crop: str = "center"  # or "squash": the whole image resized to size x size (timm's crop_mode)

  def __post_init__(self):
    if self.interpolation not in INTERPOLATIONS or self.crop not in CROPS or self.resize < self.size:
      raise ValueError(f"Bad preprocessing row {self}.")

  @property
  def crop_fraction(self) -> float:
    """The central fraction of the resized shorter side kept (timm's ``crop_pct``)."""
    return self.size / self.resize


def _tv(size: int, resize: int, interpolation: str = "bilinear", norm=IMAGENET) -> Preprocessing:
  return Preprocessing(size, resize, interpolation, *norm)


def _timm(size: int, crop_pct: float = 0.875, interpolation: str = "bicubic", norm=IMAGENET,
          crop: str = "center") -> Preprocessing:
  return Preprocessing(size, size if crop == "squash" else math.floor(size / crop_pct), interpolation, *norm,
                       crop=crop)


def _imagenet(size: int, norm=IMAGENET, bgr: bool = False) -> Preprocessing:
  """The usual ImageNet evaluation: resize to size / 0.875 (256 for 224, 342 for 299), bilinear."""
  return Preprocessing(size, round(size / 0.875), "bilinear", *norm, bgr=bgr)


_RESNETS = (18, 34, 50, 101, 152)
_VGGS = tuple(f"vgg{d}{bn}{fc}" for d in (11, 13, 16, 19) for bn in ("", "_bn") for fc in ("", "_fc"))
_REGNETS = tuple(f"regnet_{k}_{s}" for k in "xy" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf",
                                                          "32gf")) + ("regnet_y_128gf",)
_BIT = tuple(f"bit_m_r{d}x{w}" for d, w in ((50, 1), (50, 3), (101, 1), (101, 3), (152, 2), (152, 4)))
# EfficientNet B0-B7: (size, timm crop_pct) of tf_efficientnet_b*.aa_in1k (Keras' sizes too).
_TF_B = {0: (224, 0.875), 1: (240, 0.882), 2: (260, 0.890), 3: (300, 0.904), 4: (380, 0.922), 5: (456, 0.934),
         6: (528, 0.942), 7: (600, 0.949)}
# EfficientNetV2, Keras sizes (default_size) with timm's tf_efficientnetv2_*.in1k crops of the same
# checkpoints; the B variants normalise with ImageNet's mean/std, S/M/L with x / 128 - 1.
_KERAS_V2 = {"b0": (224, 0.875), "b1": (240, 0.882), "b2": (260, 0.890), "b3": (300, 0.904), "s": (384, 1.0),
             "m": (480, 1.0), "l": (480, 1.0)}

TABLE: dict[tuple[str, str], Preprocessing] = {
    # torchvision: the *_Weights enum of the file tl_jax loads.
    **{(f"resnet{d}", "torchvision"): _tv(224, 256) for d in _RESNETS},  # IMAGENET1K_V1
    **{(name, "torchvision"): _tv(224, 256) for name in _VGGS},
    **{(name, "torchvision"): _tv(224, 256) for name in ("mobilenet_v2", "mobilenet_v3_large",
                                                         "mobilenet_v3_small", "densenet121", "densenet169",
                                                         "densenet201")},
    # transform_input maps torchvision's ImageNet normalisation to x / 127.5 - 1 inside the model.
    ("inception_v3", "torchvision"): _tv(299, 342, norm=HALF),
    ("efficientnet_b0", "torchvision"): _tv(224, 256, "bicubic"),
    ("efficientnet_b1", "torchvision"): _tv(240, 256, "bicubic"),  # IMAGENET1K_V1 (V2: 255, bilinear)
    ("efficientnet_b2", "torchvision"): _tv(288, 288, "bicubic"),
    ("efficientnet_b3", "torchvision"): _tv(300, 320, "bicubic"),
    ("efficientnet_b4", "torchvision"): _tv(380, 384, "bicubic"),
    ("efficientnet_b5", "torchvision"): _tv(456, 456, "bicubic"),
    ("efficientnet_b6", "torchvision"): _tv(528, 528, "bicubic"),
    ("efficientnet_b7", "torchvision"): _tv(600, 600, "bicubic"),
    ("efficientnet_v2_s", "torchvision"): _tv(384, 384),
    ("efficientnet_v2_m", "torchvision"): _tv(480, 480),
    ("efficientnet_v2_l", "torchvision"): _tv(480, 480, "bicubic", HALF),  # ported from google/automl
    **{(name, "torchvision"): _tv(224, 232) for name in _REGNETS[:-1]},  # IMAGENET1K_V2
    ("regnet_y_128gf", "torchvision"): _tv(384, 384, "bicubic"),  # IMAGENET1K_SWAG_E2E_V1
    ("convnext_tiny", "torchvision"): _tv(224, 236),
    ("convnext_small", "torchvision"): _tv(224, 230),
    ("convnext_base", "torchvision"): _tv(224, 232),
    ("convnext_large", "torchvision"): _tv(224, 232),
    # timm: the hub id's default_cfgs entry (published.TIMM_NAMES and friends).
    **{(f"resnet{d}", "timm"): _timm(224, interpolation="bilinear") for d in _RESNETS},  # *.tv_in1k
    **{(name, "timm"): _timm(224, interpolation="bilinear") for name in _VGGS},  # *.tv_in1k
    ("mobilenet_v2", "timm"): _timm(224),  # mobilenetv2_100.ra_in1k
    ("efficientnet_lite0", "timm"): _timm(224, norm=HALF),
    ("efficientnet_lite1", "timm"): _timm(240, 0.882, norm=HALF),
    ("efficientnet_lite2", "timm"): _timm(260, 0.890, norm=HALF),
    ("efficientnet_lite3", "timm"): _timm(300, 0.904, "bilinear", HALF),
    ("efficientnet_lite4", "timm"): _timm(380, 0.920, "bilinear", HALF),
    **{(f"keras_efficientnet_b{k}", "timm"): _timm(s, c) for k, (s, c) in _TF_B.items()},  # .aa_in1k
    ("keras_efficientnet_v2_b0", "timm"): _timm(192),  # input_size (test_input_size 224)
    ("keras_efficientnet_v2_b1", "timm"): _timm(192, 0.882),
    ("keras_efficientnet_v2_b2", "timm"): _timm(208, 0.890),
    ("keras_efficientnet_v2_b3", "timm"): _timm(240, 0.904),
    ("keras_efficientnet_v2_s", "timm"): _timm(300, 1.0, norm=HALF),
    ("keras_efficientnet_v2_m", "timm"): _timm(384, 1.0, norm=HALF, crop="squash"),
    ("keras_efficientnet_v2_l", "timm"): _timm(384, 1.0, norm=HALF, crop="squash"),
    ("keras_mobilenet_v3_large", "timm"): _timm(224, interpolation="bilinear", norm=HALF),
    ("keras_mobilenet_v3_small", "timm"): _timm(224, interpolation="bilinear", norm=HALF),
    **{(name, "timm"): _timm(224, 0.965) for name in _REGNETS[:-1]},  # *.tv2_in1k (_cfgtv2)
    ("regnet_y_128gf", "timm"): _timm(384, 1.0),  # regnety_1280.swag_ft_in1k
    **{(f"convnext_{s}", "timm"): _timm(224) for s in ("tiny", "small", "base", "large", "xlarge")},
    **{(name, "timm"): _timm(224, interpolation="bilinear", norm=HALF) for name in _BIT},  # *_bit.goog_in21k
    # keras: default_size and preprocess_input; the crop of the checkpoint's origin (module docstring).
    **{(f"keras_resnet{d}", "keras"): _imagenet(224, CAFFE, bgr=True) for d in (50, 101, 152)},
    **{(f"keras_vgg{d}{fc}", "keras"): _imagenet(224, CAFFE, bgr=True) for d in (16, 19) for fc in ("", "_fc")},
    **{(f"keras_resnet{d}v2", "keras"): _imagenet(224, HALF) for d in (50, 101, 152)},
    **{(f"densenet{d}", "keras"): _imagenet(224) for d in (121, 169, 201)},
    ("keras_mobilenet_v2", "keras"): _imagenet(224, HALF),
    ("keras_mobilenet_v3_large", "keras"): _imagenet(224, HALF),
    ("keras_mobilenet_v3_small", "keras"): _imagenet(224, HALF),
    ("keras_inception_v3", "keras"): _imagenet(299, HALF),
    ("keras_xception", "keras"): _imagenet(299, HALF),
    **{(f"keras_efficientnet_b{k}", "keras"): _timm(s, c) for k, (s, c) in _TF_B.items()},
    **{(f"keras_efficientnet_v2_{v}", "keras"): _timm(s, c, norm=IMAGENET if v.startswith("b") else KERAS_V2,
                                                      crop="squash" if v in ("m", "l") else "center")
       for v, (s, c) in _KERAS_V2.items()},
    **{(f"convnext_{s}", "keras"): _timm(224) for s in ("tiny", "small", "base", "large", "xlarge")},
    # ml_illustrated: the TF EfficientNet-Lite originals' evaluation.
    **{(f"efficientnet_lite{k}", "ml_illustrated"): Preprocessing(s, round(s / 0.875), "bicubic", *TF_LITE)
       for k, s in ((0, 224), (1, 240), (2, 260))},
    **{(name, "big_transfer"): _timm(224, interpolation="bilinear", norm=HALF) for name in _BIT},
}


def sources(name: str) -> list[str]:
  """The sources with a preprocessing row for model ``name``."""
  return [s for (m, s) in TABLE if m == name]


def markdown() -> str:
  """The table as docs/zoo.md lists it: one row per source and preprocessing, its models grouped."""
  groups: dict[tuple[str, Preprocessing], list[str]] = {}
  for (name, source), row in sorted(TABLE.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    groups.setdefault((source, row), []).append(name)
  lines = ["| source | models | size | resize (crop) | interpolation | mean / std (0-255) |", "|---|---|---|---|---|---|"]
  for (source, p), names in groups.items():
    crop = "squash" if p.crop == "squash" else f"{p.resize} ({p.crop_fraction:.3f})"
    norm = f"{'/'.join(f'{m:g}' for m in p.mean)} / {'/'.join(f'{s:g}' for s in p.std)}" + (", BGR" if p.bgr else "")
    lines.append(f"| `{source}` | {', '.join(f'`{n}`' for n in names)} | {p.size} | {crop} | {p.interpolation} | {norm} |")
  return "\n".join(lines) + "\n"
