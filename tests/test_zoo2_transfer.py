"""DenseNet, ResNetV2 and BiT serve transfer: features, presets, layer decay, GroupNorm groups, caching."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from tl_jax import partition
from tl_jax.freezing import optim, strategies
from tl_jax.freezing.plan import Plan


def _fixed(params, param_groups) -> bool:
  """Whether the plan of ``param_groups`` keeps the backbone one fixed function (features cacheable)."""
  config = ml_collections.ConfigDict({"param_groups": param_groups})
  return Plan.from_config(config, {"params": params}).backbone_fixed()

def _abstract(name, num_classes=0):
  from tl_jax import models

  model = models.create(name, num_classes)
  x = jnp.zeros((2, 32, 32, 3), jnp.uint8)
  return jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x))


@pytest.mark.parametrize("name, widths, stem", [  # 32 px input
    ("densenet121", (64, 256, 512, 1024, 1024), 16),  # dense blocks end at 64 + 6 * 32, ...
    ("keras_resnet50v2", (64, 256, 512, 1024, 2048), 16),
    ("bit_m_r50x1", (64, 256, 512, 1024, 2048), 16)])
def test_features_and_headless(name, widths, stem):
  (logits, features), variables = _abstract(name)
  assert set(features) == {"stem", "stage1", "stage2", "stage3", "stage4", "pre_logits"}
  assert tuple(features[k].shape[-1] for k in ("stem", "stage1", "stage2", "stage3", "stage4")) == widths
  assert features["stem"].shape[1] == stem
  # Keras' ResNetV2 strides at a stage's last block, so its stage1 already has stride 8.
  assert features["stage1"].shape[1] == (4 if name == "keras_resnet50v2" else 8)
  assert logits.shape == features["pre_logits"].shape == (2, widths[-1])
  assert "head" not in variables["params"]
  assert ("batch_stats" in variables) == (name != "bit_m_r50x1")  # GroupNorm: no statistics


def _trained(paths, preset):
  labels = partition.label_paths(paths, strategies.rules({"preset": preset}, paths))
  return {p.split("/")[1] if p.startswith("backbone/") else p.split("/")[0]
          for p, label in labels.items() if label != "frozen"}


@pytest.mark.parametrize("name", ["densenet121", "bit_m_r50x1"])
def test_presets_and_depth_find_stages(name):
  _, variables = _abstract(name, 10)
  paths = list(partition.flatten(variables["params"]))
  assert strategies.backbone_units(paths) == ["stem", "stage1", "stage2", "stage3", "stage4", "top"]
  assert _trained(paths, dict(name="linear_probe")) == {"head"}
  assert _trained(paths, dict(name="top_k_stages", k=1)) == {"head", "stage4", "top"}
  units = strategies.backbone_units(paths)
  inner = ("backbone/stage2/transition/conv/kernel" if name == "densenet121"
           else "backbone/stage2/block1/downsample_conv/kernel")
  assert [strategies.depth(p, units) for p in ("head/kernel", "backbone/top/" + (
      "bn/scale" if name == "densenet121" else "norm/scale"), inner, "backbone/stem/conv/kernel")] == [0, 1, 4, 6]


def test_groupnorm_groups(quickstart_config):
  """GroupNorm has no running statistics: ``bn`` only decides whether a frozen group's norm affines
  train, as for LayerNorm."""
  _, variables = _abstract("bit_m_r50x1", 10)
  params, paths = variables["params"], list(partition.flatten(variables["params"]))
  norms = {p for p in paths if "/norm" in p and p.rsplit("/", 1)[1] in ("scale", "bias")}
  assert len(norms) == 2 * (3 * 16 + 1)  # three per unit, the top
  rules = (("head/.*", "head"), (".*", "frozen"))
  for mode in ("running", "batch", ""):
    pg = {"rules": rules, "frozen": {"bn": mode}} if mode else {"rules": rules}
    groups = optim.ParamGroups.from_config(params, pg)
    assert {p for p in paths if groups.trainable(p)} == {"head/kernel", "head/bias"}
    assert groups.frozen_bn({}) == frozenset() and _fixed(params, pg)
  groups = optim.ParamGroups.from_config(params, {"rules": rules, "frozen": {"bn": "train_affine"}})
  assert {p for p in paths if groups.trainable(p)} == norms | {"head/kernel", "head/bias"}
  assert not _fixed(params, {"rules": rules, "frozen": {"bn": "train_affine"}})


def test_densenet_frozen_bn_follows_its_group():
  _, variables = _abstract("densenet121", 10)
  params = variables["params"]
  rules = (("head/.*", "head"), ("backbone/stage4/.*|backbone/top/.*", "top"), (".*", "frozen"))
  groups = optim.ParamGroups.from_config(params, {"rules": rules})
  frozen = groups.frozen_bn(variables["batch_stats"])
  assert "backbone/stage3/block24/bn2" in frozen and "backbone/stage2/transition/bn" in frozen
  assert not any(p.startswith(("backbone/stage4/", "backbone/top/")) for p in frozen)
