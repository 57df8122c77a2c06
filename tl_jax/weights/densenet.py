"""Mapping tables: torchvision and Keras DenseNet keys -> tl_jax paths.

Both walk ``densenet.stage_layout``, as the model does:

* torchvision: ``features.{conv0,norm0}`` stem; ``features.denseblock{s}.denselayer{b}.
  {norm1,conv1,norm2,conv2}``; ``features.transition{s-1}.{norm,conv}`` before
  block ``s``; ``features.norm5``; ``classifier``. The published ``.pth`` files
  predate a rename and spell the layer parts ``norm.1``/``conv.1``/``norm.2``/
  ``conv.2`` (torchvision re-maps them with a regex on load): the table follows
  whichever spelling the file has.
* Keras (``keras.applications.DenseNet*``): ``conv1_{conv,bn}``;
  ``conv{s+1}_block{b}_{0_bn,1_conv,1_bn,2_conv}``; ``pool{s}_{bn,conv}`` before
  block ``s+1``; ``bn``; ``predictions``. Key layouts as in ``tl_jax.weights.keras``.
"""

from collections.abc import Collection

from tl_jax.models import densenet
from tl_jax.weights.keras import Layers
from tl_jax.weights.mapping import Table, torch_bn, torch_conv, torch_dense


def torchvision_table(variant: str, keys: Collection[str] = ()) -> Table:
  """torchvision ``densenet{121,169,201}``; ``keys``: the file's, to pick the part spelling."""
  dot = any(".norm.1." in k for k in keys)  # the published files' spelling
  part = (lambda kind, i: f"{kind}.{i}") if dot else (lambda kind, i: f"{kind}{i}")
  table = torch_conv("features.conv0", "backbone/stem/conv") | torch_bn("features.norm0", "backbone/stem/bn")
  for st in densenet.stage_layout(densenet.VARIANTS[variant]):
    dst = f"backbone/{st.stage}"
    if st.transition:
      src = f"features.transition{st.index - 1}"
      table |= torch_bn(f"{src}.norm", f"{dst}/transition/bn")
      table |= torch_conv(f"{src}.conv", f"{dst}/transition/conv")
    for layer in st.layers:
      src, ld = f"features.denseblock{st.index}.denselayer{layer.index}", f"{dst}/{layer.block}"
      for i in (1, 2):
        table |= torch_bn(f"{src}.{part('norm', i)}", f"{ld}/bn{i}")
        table |= torch_conv(f"{src}.{part('conv', i)}", f"{ld}/conv{i}")
  return table | torch_bn("features.norm5", "backbone/top/bn") | torch_dense("classifier", "head")


def keras_layers(variant: str) -> Layers:
  """``keras.applications.DenseNet{121,169,201}`` layers in ``model.layers`` order."""
  layers = [("conv1_conv", "conv_nobias", "backbone/stem/conv"), ("conv1_bn", "bn", "backbone/stem/bn")]
  for st in densenet.stage_layout(densenet.VARIANTS[variant]):
    dst = f"backbone/{st.stage}"
    if st.transition:
      src = f"pool{st.index}"
      layers += [(f"{src}_bn", "bn", f"{dst}/transition/bn"),
                 (f"{src}_conv", "conv_nobias", f"{dst}/transition/conv")]
    for layer in st.layers:
      src, ld = f"conv{st.index + 1}_block{layer.index}", f"{dst}/{layer.block}"
      layers += [(f"{src}_0_bn", "bn", f"{ld}/bn1"), (f"{src}_1_conv", "conv_nobias", f"{ld}/conv1"),
                 (f"{src}_1_bn", "bn", f"{ld}/bn2"), (f"{src}_2_conv", "conv_nobias", f"{ld}/conv2")]
  return layers + [("bn", "bn", "backbone/top/bn"), ("predictions", "dense", "head")]
