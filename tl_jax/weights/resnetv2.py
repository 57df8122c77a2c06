"""Mapping tables: Keras ResNetV2, big_transfer BiT ``.npz`` and timm ``resnetv2_*_bit`` -> tl_jax.

All walk ``resnetv2.block_layout``, as the model does:

* Keras (``keras.applications.ResNet*V2``): ``conv1_conv``;
  ``conv{s+1}_block{b}_{preact_bn,1_conv,1_bn,2_conv,2_bn,0_conv,3_conv}``
  (``_0_`` the projection; listed in ``model.layers`` order, by graph depth);
  ``post_bn``; ``predictions``.
* big_transfer (``BiT-M-R50x1.npz``, ...; its ``load_from``):
  ``resnet/root_block/standardized_conv2d/kernel``;
  ``resnet/block{s}/unit{b:02d}/{a,b,c}/{group_norm/{gamma,beta},standardized_conv2d/kernel}``,
  ``.../a/proj/standardized_conv2d/kernel``; ``resnet/group_norm``;
  ``resnet/head/conv2d/{kernel,bias}`` (a 1x1 conv). Kernels are HWIO already.
* timm (``resnetv2_50x1_bit``): ``stem.conv``; ``stages.{s-1}.blocks.{b-1}.
  {norm1,conv1,norm2,conv2,norm3,conv3,downsample.conv}``; ``norm``;
  ``head.fc`` (a 1x1 conv).
"""

import numpy as np

from tl_jax.models import resnetv2
from tl_jax.weights.keras import Layers
from tl_jax.weights.mapping import Table, conv_oihw, identity, torch_conv


def flat(x: np.ndarray) -> np.ndarray:
  """A per-channel vector stored with singleton axes -> (C,)."""
  return x.reshape(-1)


def conv1x1_dense(x: np.ndarray) -> np.ndarray:
  """A 1x1 conv head kernel (1, 1, C, N) -> Dense kernel (C, N)."""
  return x.reshape(x.shape[-2], x.shape[-1])


def torch_conv1x1_dense(x: np.ndarray) -> np.ndarray:
  """A torch 1x1 conv head weight (N, C, 1, 1) -> Dense kernel (C, N)."""
  return x.reshape(x.shape[0], x.shape[1]).T


def keras_layers(depth: int) -> Layers:
  """``keras.applications.ResNet{50,101,152}V2``."""
  layers = [("conv1_conv", "conv", "backbone/stem/conv")]
  for spec in resnetv2.block_layout(depth, 1, resnetv2.ARCHS["keras"]):
    src, dst = f"conv{spec.stage_index + 1}_{spec.block}", f"backbone/{spec.stage}/{spec.block}"
    layers += [(f"{src}_preact_bn", "bn", f"{dst}/norm1"), (f"{src}_1_conv", "conv_nobias", f"{dst}/conv1"),
               (f"{src}_1_bn", "bn", f"{dst}/norm2"), (f"{src}_2_conv", "conv_nobias", f"{dst}/conv2"),
               (f"{src}_2_bn", "bn", f"{dst}/norm3")]
    if spec.projection:  # same graph depth as _3_conv, created first
      layers.append((f"{src}_0_conv", "conv", f"{dst}/downsample_conv"))
    layers.append((f"{src}_3_conv", "conv", f"{dst}/conv3"))
  return layers + [("post_bn", "bn", "backbone/top/norm"), ("predictions", "dense", "head")]


def _npz_gn(src: str, dst: str) -> Table:
  return {f"{src}/gamma": (f"params/{dst}/scale", flat), f"{src}/beta": (f"params/{dst}/bias", flat)}


def bit_npz_table(depth: int, width_factor: int) -> Table:
  """big_transfer's BiT ``.npz`` (``BiT-M-R{depth}x{width_factor}.npz``)."""
  conv = "standardized_conv2d/kernel"
  table = {f"resnet/root_block/{conv}": ("params/backbone/stem/conv/kernel", identity)}
  for spec in resnetv2.block_layout(depth, width_factor, resnetv2.ARCHS["bit"]):
    src = f"resnet/block{spec.stage_index}/unit{spec.block_index:02d}"
    dst = f"backbone/{spec.stage}/{spec.block}"
    for i, part in enumerate("abc", start=1):
      table |= _npz_gn(f"{src}/{part}/group_norm", f"{dst}/norm{i}")
      table[f"{src}/{part}/{conv}"] = (f"params/{dst}/conv{i}/kernel", identity)
    if spec.projection:
      table[f"{src}/a/proj/{conv}"] = (f"params/{dst}/downsample_conv/kernel", identity)
  return table | _npz_gn("resnet/group_norm", "backbone/top/norm") | {
      "resnet/head/conv2d/kernel": ("params/head/kernel", conv1x1_dense),
      "resnet/head/conv2d/bias": ("params/head/bias", identity)}


def _torch_gn(src: str, dst: str) -> Table:
  return {f"{src}.weight": (f"params/{dst}/scale", identity), f"{src}.bias": (f"params/{dst}/bias", identity)}


def timm_table(depth: int, width_factor: int) -> Table:
  """timm ``resnetv2_{depth}x{width_factor}_bit``."""
  table = torch_conv("stem.conv", "backbone/stem/conv")
  for spec in resnetv2.block_layout(depth, width_factor, resnetv2.ARCHS["bit"]):
    src = f"stages.{spec.stage_index - 1}.blocks.{spec.block_index - 1}"
    dst = f"backbone/{spec.stage}/{spec.block}"
    for i in (1, 2, 3):
      table |= _torch_gn(f"{src}.norm{i}", f"{dst}/norm{i}") | torch_conv(f"{src}.conv{i}", f"{dst}/conv{i}")
    if spec.projection:
      table |= torch_conv(f"{src}.downsample.conv", f"{dst}/downsample_conv")
  return table | _torch_gn("norm", "backbone/top/norm") | {
      "head.fc.weight": ("params/head/kernel", torch_conv1x1_dense),
      "head.fc.bias": ("params/head/bias", identity)}
