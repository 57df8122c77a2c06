"""Mapping tables: torchvision and timm RegNet keys -> tl_jax paths.

Both walk ``regnet.block_layout``, as the model does. The two sources name the
same layers differently:

* torchvision: ``stem.{0,1}``, ``trunk_output.block{s}.block{s}-{b-1}.f.{a,b,c}.{0,1}``
  (conv, BN), ``f.se.fc{1,2}``, ``proj.{0,1}``; classifier ``fc``.
* timm: ``stem.{conv,bn}``, ``s{s}.b{b}.conv{1,2,3}.{conv,bn}``, ``se.fc{1,2}``,
  ``downsample.{conv,bn}``; classifier ``head.fc``.
"""

from tl_jax.models import regnet
from tl_jax.weights.mapping import Table, torch_bn, torch_conv, torch_dense

# (our part, torchvision part, timm part) for the conv-BN pairs of a block.
_PARTS = (("conv1", "f.a", "conv1"), ("conv2", "f.b", "conv2"), ("conv3", "f.c", "conv3"))


def _conv_bn(src_conv: str, src_bn: str, dst: str) -> Table:
  return torch_conv(src_conv, f"{dst}/conv") | torch_bn(src_bn, f"{dst}/bn")


def torchvision_table(variant: str) -> Table:
  """torchvision ``regnet_{x,y}_*``."""
  table = _conv_bn("stem.0", "stem.1", "backbone/stem")
  for spec in regnet.block_layout(regnet.VARIANTS[variant]):
    s, b = spec.stage[5:], int(spec.block[5:])
    src, dst = f"trunk_output.block{s}.block{s}-{b - 1}", f"backbone/{spec.stage}/{spec.block}"
    for ours, tv, _ in _PARTS:
      table |= _conv_bn(f"{src}.{tv}.0", f"{src}.{tv}.1", f"{dst}/{ours}")
    if spec.se_channels:
      table |= torch_conv(f"{src}.f.se.fc1", f"{dst}/se/reduce", bias=True)
      table |= torch_conv(f"{src}.f.se.fc2", f"{dst}/se/expand", bias=True)
    if spec.downsample:
      table |= _conv_bn(f"{src}.proj.0", f"{src}.proj.1", f"{dst}/downsample")
  return table | torch_dense("fc", "head")


def timm_table(variant: str) -> Table:
  """timm ``regnet{x,y}_*`` (the ``_tv`` configurations where torchvision rounds widths its own way)."""
  table = _conv_bn("stem.conv", "stem.bn", "backbone/stem")
  for spec in regnet.block_layout(regnet.VARIANTS[variant]):
    src, dst = f"s{spec.stage[5:]}.b{spec.block[5:]}", f"backbone/{spec.stage}/{spec.block}"
    for ours, _, tm in _PARTS:
      table |= _conv_bn(f"{src}.{tm}.conv", f"{src}.{tm}.bn", f"{dst}/{ours}")
    if spec.se_channels:
      table |= torch_conv(f"{src}.se.fc1", f"{dst}/se/reduce", bias=True)
      table |= torch_conv(f"{src}.se.fc2", f"{dst}/se/expand", bias=True)
    if spec.downsample:
      table |= _conv_bn(f"{src}.downsample.conv", f"{src}.downsample.bn", f"{dst}/downsample")
  return table | torch_dense("head.fc", "head")
