"""The inverted-residual family as data: typed block rows, one ``Arch`` per family, one ``Variant`` per model.

Paper tables are tuples of stages, each a tuple of rows that name their block
kind (torchvision's ``MBConvConfig``/``FusedMBConvConfig``); ``efficientnet.block_layout``
derives every block from them. Nothing here is stored twice: a scaled variant
is its base ``Arch`` plus width and depth.
"""

import dataclasses
from typing import Union

# --- paper tables: typed rows ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DepthwiseSeparable:
  """kxk depthwise, [squeeze-excite], 1x1 project: no expansion (timm's ``ds`` block)."""

  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0  # squeeze-excite ratio (0: none); its base width is the Arch's choice
  act: str = ""  # "" = the Arch's activation


@dataclasses.dataclass(frozen=True)
class MBConv:
  """1x1 expand, kxk depthwise, [squeeze-excite], 1x1 project (timm's ``ir`` block)."""

  expand: float
  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0
  act: str = ""


@dataclasses.dataclass(frozen=True)
class FusedMBConv:
  """kxk expand (strided), [squeeze-excite], 1x1 project; with ``expand=1`` one kxk conv
  (EfficientNetV2's early stages; timm's ``er`` / ``cn`` blocks)."""

  expand: float
  kernel: int
  stride: int
  out: int
  repeats: int = 1
  se: float = 0.0
  act: str = ""


Row = Union[DepthwiseSeparable, MBConv, FusedMBConv]
Stages = tuple[tuple[Row, ...], ...]


@dataclasses.dataclass(frozen=True)
class Arch:
  """A family's network: its stage table and its quirks."""

  stages: Stages
  act: str = "relu6"
  stem: int = 32
  top: int = 1280
  # Lite keeps the stem/top widths and the first and last stage's repeats unscaled.
  scale_ends: bool = True
  se_from_expanded: bool = False  # MobileNetV3: SE width from the expanded width, rounded to 8
  se_act: str = ""  # "" = the block's activation
  se_gate: str = "sigmoid"
  top_fc: int = 0  # MobileNetV3: width of a Dense + act on the pooled features (0: none)
  round_limit: float = 0.9  # widths never round down below this fraction (V2: 0, no such rule)


@dataclasses.dataclass(frozen=True)
class Variant:
  """One model of a family: its Arch (a key of ``ARCHS``) scaled."""

  arch: str
  width: float = 1.0
  depth: float = 1.0
  resolution: int = 224
  dropout: float = 0.2  # before the head, as in the original recipe


@dataclasses.dataclass(frozen=True)
class Numerics:
  """What the weights' framework fixes: padding convention and BatchNorm epsilon/momentum.

  ``bn_momentum`` is Flax's (the weight of the old running value): torch's
  ``momentum=0.1`` is Flax 0.9, Keras' ``momentum=0.99`` is Flax 0.99.
  """

  padding: str = "SAME"
  bn_epsilon: float = 1e-3
  bn_momentum: float = 0.99


TF = Numerics("SAME", 1e-3, 0.99)  # Keras, timm tf_*, TF-Lite ports
TORCH = Numerics("torch", 1e-5, 0.9)  # torch BatchNorm2d defaults (eps 1e-5, momentum 0.1)


def _single(*rows: Row) -> Stages:
  return tuple((r,) for r in rows)


# EfficientNet-B0 (Tan & Le, 2019, Table 1); Lite and the B series scale it.
B0_STAGES = _single(
    DepthwiseSeparable(3, 1, 16, 1, se=0.25),
    MBConv(6, 3, 2, 24, 2, se=0.25),
    MBConv(6, 5, 2, 40, 2, se=0.25),
    MBConv(6, 3, 2, 80, 3, se=0.25),
    MBConv(6, 5, 1, 112, 3, se=0.25),
    MBConv(6, 5, 2, 192, 4, se=0.25),
    MBConv(6, 3, 1, 320, 1, se=0.25),
)
# Lite: B0 without squeeze-excite (and ReLU6, see ARCHS).
LITE_STAGES = tuple(tuple(dataclasses.replace(r, se=0.0) for r in s) for s in B0_STAGES)
# MobileNetV2 (Sandler et al., 2018): 3x3 kernels throughout (expansion t, channels c, repeats n, stride s).
MOBILENET_V2_STAGES = _single(
    DepthwiseSeparable(3, 1, 16, 1),
    MBConv(6, 3, 2, 24, 2),
    MBConv(6, 3, 2, 32, 3),
    MBConv(6, 3, 2, 64, 4),
    MBConv(6, 3, 1, 96, 3),
    MBConv(6, 3, 2, 160, 3),
    MBConv(6, 3, 1, 320, 1),
)

# MobileNetV3 (Howard et al., 2019, Tables 1-2), grouped into stages as timm does; expansions
# are the paper's expanded widths over the input width (rounded to 8 again when built).
_RE, _HS = "relu", "hard_swish"
MOBILENET_V3_LARGE_STAGES = (
    (DepthwiseSeparable(3, 1, 16, act=_RE),),
    (MBConv(4, 3, 2, 24, act=_RE), MBConv(3, 3, 1, 24, act=_RE)),
    (MBConv(3, 5, 2, 40, 3, se=0.25, act=_RE),),
    (MBConv(6, 3, 2, 80), MBConv(2.5, 3, 1, 80), MBConv(184 / 80, 3, 1, 80, 2)),
    (MBConv(6, 3, 1, 112, 2, se=0.25),),
    (MBConv(6, 5, 2, 160, 3, se=0.25),),
)
MOBILENET_V3_SMALL_STAGES = (
    (DepthwiseSeparable(3, 2, 16, se=0.25, act=_RE),),
    (MBConv(72 / 16, 3, 2, 24, act=_RE), MBConv(88 / 24, 3, 1, 24, act=_RE)),
    (MBConv(4, 5, 2, 40, se=0.25), MBConv(6, 5, 1, 40, 2, se=0.25)),
    (MBConv(3, 5, 1, 48, 2, se=0.25),),
    (MBConv(6, 5, 2, 96, 3, se=0.25),),
)
_MOBILENET_V3 = dict(act=_HS, stem=16, se_from_expanded=True, se_act=_RE, se_gate="hard_sigmoid")

# EfficientNetV2 (Tan & Le, 2021, Table 4 and the released B0-B3 / M / L configs).
_V2_SE = dict(se=0.25)
V2_B0_STAGES = _single(
    FusedMBConv(1, 3, 1, 16, 1), FusedMBConv(4, 3, 2, 32, 2), FusedMBConv(4, 3, 2, 48, 2),
    MBConv(4, 3, 2, 96, 3, **_V2_SE), MBConv(6, 3, 1, 112, 5, **_V2_SE),
    MBConv(6, 3, 2, 192, 8, **_V2_SE))
V2_S_STAGES = _single(
    FusedMBConv(1, 3, 1, 24, 2), FusedMBConv(4, 3, 2, 48, 4), FusedMBConv(4, 3, 2, 64, 4),
    MBConv(4, 3, 2, 128, 6, **_V2_SE), MBConv(6, 3, 1, 160, 9, **_V2_SE),
    MBConv(6, 3, 2, 256, 15, **_V2_SE))
V2_M_STAGES = _single(
    FusedMBConv(1, 3, 1, 24, 3), FusedMBConv(4, 3, 2, 48, 5), FusedMBConv(4, 3, 2, 80, 5),
    MBConv(4, 3, 2, 160, 7, **_V2_SE), MBConv(6, 3, 1, 176, 14, **_V2_SE),
    MBConv(6, 3, 2, 304, 18, **_V2_SE), MBConv(6, 3, 1, 512, 5, **_V2_SE))
V2_L_STAGES = _single(
    FusedMBConv(1, 3, 1, 32, 4), FusedMBConv(4, 3, 2, 64, 7), FusedMBConv(4, 3, 2, 96, 7),
    MBConv(4, 3, 2, 192, 10, **_V2_SE), MBConv(6, 3, 1, 224, 19, **_V2_SE),
    MBConv(6, 3, 2, 384, 25, **_V2_SE), MBConv(6, 3, 1, 640, 7, **_V2_SE))
_V2 = dict(act="swish", round_limit=0.0)

ARCHS: dict[str, Arch] = {
    "efficientnet_v2_b": Arch(V2_B0_STAGES, stem=32, **_V2),
    "efficientnet_v2_s": Arch(V2_S_STAGES, stem=24, **_V2),
    "efficientnet_v2_m": Arch(V2_M_STAGES, stem=24, **_V2),
    "efficientnet_v2_l": Arch(V2_L_STAGES, stem=32, **_V2),
    "mobilenet_v3_large": Arch(MOBILENET_V3_LARGE_STAGES, top=960, top_fc=1280, **_MOBILENET_V3),
    "mobilenet_v3_small": Arch(MOBILENET_V3_SMALL_STAGES, top=576, top_fc=1024, **_MOBILENET_V3),
    "mobilenet_v2": Arch(MOBILENET_V2_STAGES),
    "efficientnet_lite": Arch(LITE_STAGES, scale_ends=False),
    "efficientnet": Arch(B0_STAGES, act="swish"),
}

VARIANTS: dict[str, Variant] = {
    "mobilenet_v2": Variant("mobilenet_v2"),
    "mobilenet_v3_large": Variant("mobilenet_v3_large"),
    "mobilenet_v3_small": Variant("mobilenet_v3_small"),
    "efficientnet_lite0": Variant("efficientnet_lite", 1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": Variant("efficientnet_lite", 1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": Variant("efficientnet_lite", 1.1, 1.2, 260, 0.3),
    "efficientnet_lite3": Variant("efficientnet_lite", 1.2, 1.4, 280, 0.3),
    "efficientnet_lite4": Variant("efficientnet_lite", 1.4, 1.8, 300, 0.3),
    # Keras/torchvision/timm agree on these (width, depth, resolution, dropout).
    "efficientnet_b0": Variant("efficientnet", 1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant("efficientnet", 1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant("efficientnet", 1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant("efficientnet", 1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant("efficientnet", 1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant("efficientnet", 1.6, 2.2, 456, 0.4),
    "efficientnet_b6": Variant("efficientnet", 1.8, 2.6, 528, 0.5),
    "efficientnet_b7": Variant("efficientnet", 2.0, 3.1, 600, 0.5),
    # Keras' resolutions; dropout 0.2 (Keras) / S 0.2, M 0.3, L 0.4 (torchvision, the paper).
    "efficientnet_v2_b0": Variant("efficientnet_v2_b", 1.0, 1.0, 224, 0.2),
    "efficientnet_v2_b1": Variant("efficientnet_v2_b", 1.0, 1.1, 240, 0.2),
    "efficientnet_v2_b2": Variant("efficientnet_v2_b", 1.1, 1.2, 260, 0.3),
    "efficientnet_v2_b3": Variant("efficientnet_v2_b", 1.2, 1.4, 300, 0.3),
    "efficientnet_v2_s": Variant("efficientnet_v2_s", resolution=384, dropout=0.2),
    "efficientnet_v2_m": Variant("efficientnet_v2_m", resolution=480, dropout=0.3),
    "efficientnet_v2_l": Variant("efficientnet_v2_l", resolution=480, dropout=0.4),
}
LITE_NAMES = tuple(n for n, v in VARIANTS.items() if v.arch == "efficientnet_lite")
B_NAMES = tuple(n for n, v in VARIANTS.items() if v.arch == "efficientnet")
V2_NAMES = tuple(n for n in VARIANTS if n.startswith("efficientnet_v2_"))
