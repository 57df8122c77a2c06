"""RegNet and ConvNeXt serve transfer: features, presets, layer decay, LayerNorm groups, caching."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tl_jax import data as data_lib, partition
from tl_jax.freezing import optim, strategies
from tl_jax.freezing.plan import Plan
from tl_jax.train import feature_cache, steps, trainer


def _fixed(params, param_groups) -> bool:
  """Whether the plan of ``param_groups`` keeps the backbone one fixed function (features cacheable)."""
  config = ml_collections.ConfigDict({"param_groups": param_groups})
  return Plan.from_config(config, {"params": params}).backbone_fixed()

def _abstract(name, num_classes=0):
  from tl_jax import models

  model = models.create(name, num_classes)
  x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
  return model, jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))


@pytest.fixture(scope="module")
def convnext_params():
  _, (_, variables) = _abstract("convnext_tiny", 10)
  return variables["params"]


@pytest.fixture(scope="module")
def convnext_paths(convnext_params):
  return list(partition.flatten(convnext_params))


@pytest.mark.parametrize("name, widths", [("regnet_y_400mf", (32, 48, 104, 208, 440)),
                                          ("convnext_tiny", (96, 96, 192, 384, 768))])
def test_features_and_headless(name, widths):
  _, ((logits, features), variables) = _abstract(name)
  assert set(features) == {"stem", "stage1", "stage2", "stage3", "stage4", "pre_logits"}
  assert tuple(features[k].shape[-1] for k in ("stem", "stage1", "stage2", "stage3", "stage4")) == widths
  assert features["stage4"].shape[1] == 1 and features["stem"].shape[1] in (8, 16)  # /32 and /4 or /2
  assert logits.shape == features["pre_logits"].shape == (2, widths[-1])
  assert "head" not in variables["params"] and (name != "convnext_tiny" or "batch_stats" not in variables)


def _trained(paths, preset):
  labels = partition.label_paths(paths, strategies.rules({"preset": preset}, paths))
  return {p.split("/")[1] if p.startswith("backbone/") else p.split("/")[0]
          for p, label in labels.items() if label != "frozen"}


def test_presets_and_depth_find_stages(convnext_paths):
  paths = convnext_paths
  assert strategies.backbone_units(paths) == ["stem", "stage1", "stage2", "stage3", "stage4", "top"]
  assert _trained(paths, dict(name="linear_probe")) == {"head"}
  assert _trained(paths, dict(name="top_k_stages", k=1)) == {"head", "stage4", "top"}
  assert _trained(paths, dict(name="layers", patterns=("backbone/stage2/downsample_.*",))) == {"head", "stage2"}
  units = strategies.backbone_units(paths)
  assert [strategies.depth(p, units) for p in ("head/kernel", "backbone/top/norm/scale",
                                               "backbone/stage4/block3/layer_scale",
                                               "backbone/stage2/downsample_conv/kernel",
                                               "backbone/stem/conv/kernel")] == [0, 1, 2, 4, 6]
  _, (_, regnet) = _abstract("regnet_x_400mf", 10)
  rpaths = list(partition.flatten(regnet["params"]))
  assert strategies.backbone_units(rpaths) == ["stem", "stage1", "stage2", "stage3", "stage4"]
  assert _trained(rpaths, dict(name="top_k_stages", k=2)) == {"head", "stage3", "stage4"}


def test_layernorm_groups(convnext_params, convnext_paths, quickstart_config):
  """LayerNorm has no running statistics: ``bn`` only decides whether a frozen group's norm affines train."""
  params = convnext_params
  norms = {p for p in convnext_paths if p.rsplit("/", 1)[0].endswith("norm") and
           p.rsplit("/", 1)[1] in ("scale", "bias")}
  assert len(norms) == 2 * (1 + 3 + 18 + 1)  # stem, 3 downsamplings, 18 blocks, top
  rules = (("head/.*", "head"), (".*", "frozen"))
  for mode in ("running", "batch", ""):
    pg = {"rules": rules, "frozen": {"bn": mode}} if mode else {"rules": rules}
    groups = optim.ParamGroups.from_config(params, pg)
    assert {p for p in convnext_paths if groups.trainable(p)} == {"head/kernel", "head/bias"}
    assert groups.frozen_bn({}) == frozenset() and _fixed(params, pg)  # nothing to freeze: caching applies
  groups = optim.ParamGroups.from_config(params,
                                         {"rules": rules, "frozen": {"bn": "train_affine"}})
  assert {p for p in convnext_paths if groups.trainable(p)} == norms | {"head/kernel", "head/bias"}
  assert not _fixed(params, {"rules": rules, "frozen": {"bn": "train_affine"}})


@pytest.mark.slow  # ~30 s: three compilations of ConvNeXt-T
def test_convnext_head_on_cached_features_equals_head_on_images(quickstart_config):
  cfg = quickstart_config
  cfg.unlock()
  cfg.model.name, cfg.data.image_size = "convnext_tiny", 32
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  state, groups = trainer.create_state(cfg, 10, 10, pretrained=False)
  assert state.batch_stats == {} or not jax.tree.leaves(state.batch_stats)
  assert trainer.plan_of(cfg, 10).backbone_fixed()
  rng = np.random.default_rng(0)
  split = data_lib.Split(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                         rng.integers(0, 10, 16).astype(np.int32))
  cached = feature_cache.extract(state, split, batch_size=8)
  assert cached.images.shape == (16, 768)
  step = jax.jit(steps.train_step)
  on_images, on_features = state, feature_cache.on_features(state)
  for i in range(2):
    idx = slice(8 * i, 8 * i + 8)
    on_images, _ = step(on_images, {"image": split.images[idx], "label": split.labels[idx]}, jax.random.key(1))
    on_features, _ = step(on_features, {"image": cached.images[idx], "label": cached.labels[idx]},
                          jax.random.key(1))
  np.testing.assert_allclose(on_images.params["head"]["kernel"], on_features.params["head"]["kernel"],
                             rtol=1e-4, atol=1e-6)
  assert np.any(np.asarray(on_features.params["head"]["kernel"]) != 0)
