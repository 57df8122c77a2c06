"""Mapping tables: torchvision, timm and Keras ConvNeXt keys -> tl_jax paths.

All three walk ``convnext.stage_layout``, as the model does:

* torchvision: ``features.0.{0,1}`` stem; ``features.{2s-1}.{b}`` the blocks of
  stage ``s`` (``block.0`` depthwise, ``block.2`` LayerNorm, ``block.3``/``block.5``
  Linear, ``layer_scale`` of shape (C, 1, 1)); ``features.{2s-2}.{0,1}`` the
  downsampling before stage ``s``; ``classifier.0`` LayerNorm, ``classifier.2``.
* timm: ``stem.{0,1}``, ``stages.{s-1}.downsample.{0,1}``,
  ``stages.{s-1}.blocks.{b}.{conv_dw,norm,mlp.fc1,mlp.fc2,gamma}``, ``head.{norm,fc}``.
* Keras (``keras.applications.ConvNeXt*``): stem and downsampling are nested
  ``Sequential`` models; blocks are ``{model}_stage_{s-1}_block_{b}_*`` layers.
  Its preprocessing ``Normalization`` layer holds no weights (constant mean and
  variance, the torchvision ones). Key layouts as in ``tl_jax.weights.keras``;
  a nested layer is ``<seq>/<layer>/<var>`` (legacy) or
  ``layers/sequential_k/layers/<class>_m/vars/i`` (Keras 3).
"""

from collections.abc import Collection
import dataclasses

import numpy as np

from tl_jax.models import convnext
from tl_jax.weights.mapping import Table, identity, torch_conv, torch_dense


def torch_ln(src: str, dst: str) -> Table:
  return {f"{src}.weight": (f"params/{dst}/scale", identity),
          f"{src}.bias": (f"params/{dst}/bias", identity)}


def flat(x: np.ndarray) -> np.ndarray:
  """torchvision's LayerScale (C, 1, 1) -> (C,)."""
  return x.reshape(-1)


def _torch_block(src: str, dst: str, names: dict[str, str]) -> Table:
  return (torch_conv(names["dw"].format(src), f"{dst}/depthwise_conv", bias=True)
          | torch_ln(names["norm"].format(src), f"{dst}/norm")
          | torch_dense(names["fc1"].format(src), f"{dst}/pointwise1")
          | torch_dense(names["fc2"].format(src), f"{dst}/pointwise2")
          | {names["gamma"].format(src): (f"params/{dst}/layer_scale", flat)})


_TV = {"dw": "{}.block.0", "norm": "{}.block.2", "fc1": "{}.block.3", "fc2": "{}.block.5",
       "gamma": "{}.layer_scale"}
_TIMM = {"dw": "{}.conv_dw", "norm": "{}.norm", "fc1": "{}.mlp.fc1", "fc2": "{}.mlp.fc2",
         "gamma": "{}.gamma"}


def torchvision_table(variant: str) -> Table:
  """torchvision ``convnext_{tiny,small,base,large}``."""
  table = torch_conv("features.0.0", "backbone/stem/conv", bias=True)
  table |= torch_ln("features.0.1", "backbone/stem/norm")
  for st in convnext.stage_layout(convnext.VARIANTS[variant]):
    dst = f"backbone/{st.stage}"
    if st.downsample:
      table |= torch_ln(f"features.{2 * st.index}.0", f"{dst}/downsample_norm")
      table |= torch_conv(f"features.{2 * st.index}.1", f"{dst}/downsample_conv", bias=True)
    for b in st.blocks:
      table |= _torch_block(f"features.{2 * st.index + 1}.{b.index - st.blocks[0].index}",
                            f"{dst}/{b.block}", _TV)
  return table | torch_ln("classifier.0", "backbone/top/norm") | torch_dense("classifier.2", "head")


def timm_table(variant: str) -> Table:
  """timm ``convnext_{tiny,...,xlarge}`` (``conv_mlp=False``: Linear MLPs)."""
  table = torch_conv("stem.0", "backbone/stem/conv", bias=True) | torch_ln("stem.1", "backbone/stem/norm")
  for st in convnext.stage_layout(convnext.VARIANTS[variant]):
    src, dst = f"stages.{st.index}", f"backbone/{st.stage}"
    if st.downsample:
      table |= torch_ln(f"{src}.downsample.0", f"{dst}/downsample_norm")
      table |= torch_conv(f"{src}.downsample.1", f"{dst}/downsample_conv", bias=True)
    for b in st.blocks:
      table |= _torch_block(f"{src}.blocks.{b.index - st.blocks[0].index}", f"{dst}/{b.block}", _TIMM)
  return table | torch_ln("head.norm", "backbone/top/norm") | torch_dense("head.fc", "head")


@dataclasses.dataclass(frozen=True)
class KerasLayer:
  """One Keras layer with weights, in ``model.layers`` order."""

  name: str
  cls: str  # Keras class in snake case (the Keras 3 key)
  variables: tuple[str, ...]  # legacy variable names, in saved order
  targets: tuple[str, ...]  # tl_jax leaf names (``params/<dst>/<leaf>``)
  dst: str
  parent: str = ""  # the nested Sequential holding it


_CONV = ("conv2d", ("kernel", "bias"), ("kernel", "bias"))
_LN = ("layer_normalization", ("gamma", "beta"), ("scale", "bias"))
_DENSE = ("dense", ("kernel", "bias"), ("kernel", "bias"))


def keras_layers(variant: str, notop_norm: str = "layer_normalization") -> list[KerasLayer]:
  """``keras.applications.ConvNeXt*`` layers; ``notop_norm``: the name of the headless model's
  pooled LayerNorm (Keras auto-names it)."""
  p = variant  # Keras names its ConvNeXts like tl_jax: convnext_tiny, ...
  stem = f"{p}_stem"
  layers = [KerasLayer(f"{p}_stem_conv", *_CONV, "backbone/stem/conv", stem),
            KerasLayer(f"{p}_stem_layernorm", *_LN, "backbone/stem/norm", stem)]
  for st in convnext.stage_layout(convnext.VARIANTS[variant]):
    dst = f"backbone/{st.stage}"
    if st.downsample:
      seq, i = f"{p}_downsampling_block_{st.index - 1}", st.index - 1
      layers += [KerasLayer(f"{p}_downsampling_layernorm_{i}", *_LN, f"{dst}/downsample_norm", seq),
                 KerasLayer(f"{p}_downsampling_conv_{i}", *_CONV, f"{dst}/downsample_conv", seq)]
    for b in st.blocks:
      src, bd = f"{p}_stage_{st.index}_block_{b.index - st.blocks[0].index}", f"{dst}/{b.block}"
      layers += [KerasLayer(f"{src}_depthwise_conv", *_CONV, f"{bd}/depthwise_conv"),
                 KerasLayer(f"{src}_layernorm", *_LN, f"{bd}/norm"),
                 KerasLayer(f"{src}_pointwise_conv_1", *_DENSE, f"{bd}/pointwise1"),
                 KerasLayer(f"{src}_pointwise_conv_2", *_DENSE, f"{bd}/pointwise2"),
                 KerasLayer(f"{src}_layer_scale", "layer_scale", ("gamma",), ("layer_scale",), bd)]
  return layers + [KerasLayer(notop_norm, *_LN, "backbone/top/norm"),
                   KerasLayer(f"{p}_head_dense", *_DENSE, "head")]


def keras_table(variant: str, keys: Collection[str]) -> Table:
  """The Table of a Keras ConvNeXt file whose keys are ``keys`` (either layout, with or without top)."""
  layout = "keras3" if any(k.startswith("layers/") for k in keys) else "legacy"
  head_norm = f"{variant}_head_layernorm"
  notop = next((k.split("/")[0] for k in keys if k.startswith("layer_normalization")), None)
  layers = keras_layers(variant, head_norm if notop is None else notop)
  out, counters = {}, {}
  sequentials = list(dict.fromkeys(l.parent for l in layers if l.parent))
  for layer in layers:
    scope = (layer.parent, layer.cls)  # Keras 3 numbers classes per model, nested ones apart
    n = counters[scope] = counters.get(scope, -1) + 1
    k = sequentials.index(layer.parent) if layer.parent else 0
    for i, (var, leaf) in enumerate(zip(layer.variables, layer.targets)):
      if layout == "legacy":
        group = layer.parent or layer.name
        key = f"{group}/{layer.name}/{var}"
        if layer.cls == "layer_scale":  # Keras does not name this weight: take the layer's one key
          key = next((x for x in keys if x.startswith(f"{group}/{layer.name}/")), key)
      else:
        inner = f"layers/{layer.cls}{f'_{n}' if n else ''}/vars/{i}"
        key = f"layers/sequential{f'_{k}' if k else ''}/{inner}" if layer.parent else inner
      out[key] = (f"params/{layer.dst}/{leaf}", identity)
  return out
