"""The NNX face (``tl_jax.train.nnx``): Linen's numbers, freezing, compute and checkpoints.

Models get random variables drawn in numpy from ``jax.eval_shape`` of the Linen init (no init is
compiled), the same ones in both frameworks; images are 32 px.
"""

import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from tl_jax import models, partition
from tl_jax.freezing import inspect_groups
from tl_jax.train import nnx as tl_nnx

SIZE = 32
# One per family: torchvision ResNet, the inverted-residual family (TF "same" padding), VGG with BatchNorm.
FAMILIES = ("resnet18", "efficientnet_lite0", "vgg11_bn")
# The other families (tl_jax/models/*.py), each by its smallest registry model, at the smallest input
# it takes: Inception and Xception reduce 32 px to nothing (tests/test_layer_impl.py's IMAGE_SIZE).
OTHER_FAMILIES = (("densenet121", 32), ("convnext_tiny", 32), ("regnet_y_400mf", 32),
                  ("bit_m_r50x1", 32),  # BiT: GroupNorm + weight standardisation, no batch_stats
                  ("inception_v3", 75), ("keras_xception", 75))
# As tests/test_freezing.py: XLA's HLO passes in full, without CPU machine-code optimisation.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _batch(seed: int = 0, n: int = 8, size: int = SIZE) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
          "label": rng.integers(0, 10, n).astype(np.int32)}


def _random_variables(linen_model, seed: int = 0, size: int = SIZE) -> dict:
  """Variables of ``linen_model``'s shapes: kernels ~ N(0, 1/fan_in), BatchNorm near identity."""
  shapes = jax.eval_shape(linen_model.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8))
  rng, out = np.random.default_rng(seed), {}
  for path, s in partition.flatten(shapes).items():
    name = path.rsplit("/", 1)[1]
    if name == "var":
      x = rng.uniform(0.5, 1.5, s.shape)
    elif name == "scale":
      x = rng.uniform(0.8, 1.2, s.shape)
    elif len(s.shape) > 1:
      x = rng.normal(0, 1 / np.sqrt(np.prod(s.shape[:-1])), s.shape)
    else:
      x = rng.normal(0, 0.1, s.shape)
    out[path] = jnp.asarray(x, s.dtype)
  return partition.unflatten(out)


@functools.cache
def _linen(name: str, seed: int = 0):
  """The Linen classifier (no dropout: train-mode logits comparable) and its random variables."""
  linen_model = models.create(name, 10, dropout_rate=0.0)
  return linen_model, _random_variables(linen_model, seed)


def _pair(name: str, seed: int = 0):
  """``_linen``'s model and variables, and a fresh NNX model holding the same variables."""
  linen_model, variables = _linen(name, seed)
  return linen_model, variables, tl_nnx.from_linen(linen_model, variables, image_size=SIZE)


def _fast(fn, model=None):
  """``jax.jit`` of ``fn`` compiled with ``FAST_COMPILE``; given an NNX ``model``, ``fn(model, ...)``
  runs through ``nnx.split``/``nnx.merge`` (what ``nnx.jit`` does) and its state updates stick."""
  if model is None:
    return jax.jit(fn, compiler_options=FAST_COMPILE)
  graphdef, _ = nnx.split(model)

  def pure(state, *args):
    m = nnx.merge(graphdef, state)
    return fn(m, *args), nnx.state(m)

  def run(*args):
    out, state = jax.jit(pure, compiler_options=FAST_COMPILE)(nnx.state(model), *args)
    nnx.update(model, state)
    return out

  return run


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_and_statistics_match_linen(name):
  """Eval mode, then train mode with BatchNorm on batch statistics: same logits, same updated
  running statistics."""
  linen_model, variables, model = _pair(name)
  x = _batch()["image"]
  assert partition.flatten(tl_nnx.linen_variables(model)).keys() == partition.flatten(variables).keys()
  (eval_logits, train_logits) = _fast(lambda m, x: (m(x)[0], m(x, train=True)[0]), model)(x)
  expected_eval, ((expected_train, _), updates) = _fast(lambda v, x: (
      linen_model.apply(v, x)[0], linen_model.apply(v, x, train=True, mutable=["batch_stats"])))(variables, x)
  np.testing.assert_allclose(eval_logits, expected_eval, atol=1e-5)
  np.testing.assert_allclose(train_logits, expected_train, atol=1e-5)
  got, want = partition.flatten(tl_nnx.linen_variables(model)["batch_stats"]), partition.flatten(
      updates["batch_stats"])
  assert got.keys() == want.keys()
  for path in want:
    np.testing.assert_allclose(got[path], want[path], atol=1e-5, err_msg=path)
  assert not np.allclose(got[path], partition.flatten(variables["batch_stats"])[path])


@pytest.mark.slow  # 166 s on 2 loaded cores (densenet121 44 s): six forward passes, each compiled twice
@pytest.mark.parametrize("name, size", OTHER_FAMILIES)
def test_eval_logits_match_linen_in_every_other_family(name, size):
  """The same random variables in both faces: the same eval-mode logits (atol 1e-5 of their scale)."""
  linen_model = models.create(name, 10, dropout_rate=0.0)
  variables = _random_variables(linen_model, size=size)
  model = tl_nnx.from_linen(linen_model, variables, image_size=size)
  assert partition.flatten(tl_nnx.linen_variables(model)).keys() == partition.flatten(variables).keys()
  x = _batch(n=4, size=size)["image"]
  logits = _fast(lambda m, x: m(x)[0], model)(x)
  expected = _fast(lambda v, x: linen_model.apply(v, x)[0])(variables, x)
  assert np.all(np.isfinite(expected)) and np.std(expected) > 1e-3  # features are not all zero
  np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


def test_running_bn_in_training_is_linens_frozen_bn():
  """bn="running": train mode normalises with the running statistics and leaves them alone, as the
  Linen classifier with every layer in ``frozen_bn``."""
  linen_model, variables, model = _pair("resnet18")
  tl_nnx.set_bn(model, "running")
  frozen = models.create("resnet18", 10, dropout_rate=0.0, frozen_bn=tl_nnx.bn_layers(model))
  x = _batch()["image"]
  logits = _fast(lambda m, x: m(x, train=True)[0], model)(x)
  expected, evaluated = _fast(lambda v, x: (frozen.apply(v, x, train=True, mutable=["batch_stats"])[0][0],
                                            linen_model.apply(v, x)[0]))(variables, x)
  np.testing.assert_allclose(logits, expected, atol=1e-5)
  np.testing.assert_allclose(logits, evaluated, atol=1e-5)
  after = partition.flatten(tl_nnx.linen_variables(model))
  assert all(np.array_equal(after[p], v) for p, v in partition.flatten(variables).items())
  tl_nnx.set_bn(model, "batch")
  _fast(lambda m, x: m(x, train=True)[0], model)(x)
  assert not np.array_equal(partition.flatten(tl_nnx.linen_variables(model))["batch_stats/backbone/stem/bn/mean"],
                            partition.flatten(variables)["batch_stats/backbone/stem/bn/mean"])


def test_nnx_jit_and_cached_partial_calls_update_the_models_own_statistics():
  """Train mode keeps the model's Variable objects (the bridge alone swaps in new BatchStat ones,
  leaving ``nnx.cached_partial``'s cache on donated arrays): donating ``nnx.jit`` and
  ``cached_partial`` calls, interleaved, update one set of statistics, as Linen does in 4 steps."""
  linen_model, variables = _linen("resnet18")
  model = tl_nnx.from_linen(linen_model, jax.tree.map(jnp.array, variables), image_size=SIZE)  # a copy to donate
  ids = lambda: {p: id(v) for p, v in nnx.graph.iter_graph(model) if isinstance(v, nnx.Variable)}
  before = ids()
  forward = nnx.jit(lambda m, x: m(x, train=True)[0], donate_argnums=0)
  cached = nnx.cached_partial(forward, model)
  images = [_batch(i)["image"] for i in range(4)]
  for i, x in enumerate(images):
    logits = forward(model, x) if i % 2 == 0 else cached(x)
  assert ids() == before
  linen_step = _fast(lambda v, x: linen_model.apply(v, x, train=True, mutable=["batch_stats"]))
  for x in images:
    (expected, _), updates = linen_step(variables, x)
    variables = {"params": variables["params"], **updates}
  # nnx.jit compiles at full optimisation, the reference with FAST_COMPILE: float32 noise ~2e-5.
  np.testing.assert_allclose(logits, expected, atol=1e-4)
  got, want = (partition.flatten(v["batch_stats"]) for v in (tl_nnx.linen_variables(model), variables))
  for path in want:
    np.testing.assert_allclose(got[path], want[path], atol=1e-4, err_msg=path)


def test_labels_tree_drives_an_optax_multi_transform_in_nnx_optimizer():
  _, _, model = _pair("resnet18")
  rules = (("head/.*", "head"), ("backbone/stage4/.*", "top"), (".*", "frozen"))
  labels = tl_nnx.labels(model, rules)
  flat = {p: lab for p, lab in partition.label_paths(
      partition.flatten(tl_nnx.linen_variables(model)["params"]), rules).items()}
  got = {tl_nnx._path(p): lab for p, lab in jax.tree_util.tree_leaves_with_path(labels)}
  assert got == flat
  tx = optax.multi_transform({"head": optax.sgd(1.0), "top": optax.sgd(0.1), "frozen": optax.set_to_zero()}, labels)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  before = partition.flatten(tl_nnx.linen_variables(model)["params"])
  opt.update(model, jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param)))
  after = partition.flatten(tl_nnx.linen_variables(model)["params"])
  for path, label in flat.items():
    step = {"head": 1.0, "top": 0.1, "frozen": 0.0}[label]
    np.testing.assert_allclose(before[path] - after[path], step, rtol=1e-6, err_msg=path)


def test_frozen_backbone_steps_are_bit_identical_and_compile_once():
  _, _, model = _pair("resnet18")
  groups = tl_nnx.param_groups(model, dict(rules=(("head/.*", "head"), ("backbone/stage4/.*", "top"),
                                                   (".*", "frozen"))))
  tl_nnx.set_bn(model, groups)  # frozen layers on running statistics, stage4 on batch statistics
  opt = tl_nnx.optimizer(model, dict(name="adam", lr=1e-2, schedule="constant"), groups, 3)
  traces = []

  def step(model, opt, batch):
    traces.append(1)  # runs only when nnx.jit traces
    return tl_nnx.train_step(model, opt, batch, trainable=tl_nnx.trainable(groups))

  step = nnx.jit(step)
  before = jax.device_get(partition.flatten(tl_nnx.linen_variables(model)))
  losses = [float(step(model, opt, _batch(i))["loss"]) for i in range(3)]
  after = jax.device_get(partition.flatten(tl_nnx.linen_variables(model)))
  assert len(traces) == 1 and all(np.isfinite(losses))
  for path in before:
    trained = path.startswith(("params/head/", "params/backbone/stage4/", "batch_stats/backbone/stage4/"))
    assert np.array_equal(before[path], after[path]) != trained, path
  # Frozen groups hold no optimizer state: Adam's two moments cover the trained parameters only.
  size = sum(int(v.size) for p, v in before.items() if p.startswith(("params/head/", "params/backbone/stage4/")))
  assert 2 * size <= partition.count(nnx.to_pure_dict(nnx.state(opt, nnx.OptState))) <= 2 * size + 16


def test_inspect_gives_the_linen_inspectors_table(quickstart_config):
  """``tl_nnx.inspect`` on the NNX model and its groups: the rows and the printed table of
  ``inspect_groups.inspect`` (scripts/inspect_groups.py) for the Linen config with the same rules."""
  cfg = quickstart_config
  cfg.unlock()
  cfg.model.name, cfg.data.image_size = "efficientnet_lite0", SIZE
  cfg.param_groups = dict(  # every column varies: lr_mult x layer decay, frozen, batch / running / train_affine
      rules=(("head/.*", "head"), ("backbone/(stage7|top)/.*", "top"), ("backbone/stem/.*", "frozen"),
             (".*", "backbone")),
      top=dict(lr_mult=0.5, bn="batch"), backbone=dict(lr_mult=0.1, bn="running"), frozen=dict(bn="train_affine"),
      layer_decay=0.8)
  linen_table = inspect_groups.inspect(cfg, num_classes=10)
  _, _, model = _pair("efficientnet_lite0")
  table = tl_nnx.inspect(model, tl_nnx.param_groups(model, cfg.param_groups))
  assert table == linen_table
  assert inspect_groups.format_table(table) == inspect_groups.format_table(linen_table)
  assert inspect_groups.to_json(table) == inspect_groups.to_json(linen_table)
  assert {r.bn for r in table} == {"-", "batch", "running", "train_affine"} and {r.trainable for r in table} == {
      True, False}


def _convolutions(jitted, *args) -> int:
  """Convolutions and dots (1x1 convolutions run as dots on CPU) in the compiled HLO."""
  hlo = jitted.lower(*args).compile(FAST_COMPILE).as_text()
  return hlo.count(" convolution(") + hlo.count(" dot(")


def test_linear_probe_step_has_no_backward_convolutions():
  """Mirrors tests/test_freezing.py's Linen check on the NNX step."""
  batch, counts = _batch(), {}
  for preset in ("linear_probe", "full"):
    _, _, model = _pair("resnet18")
    groups = tl_nnx.param_groups(model, dict(preset=dict(name=preset)))
    tl_nnx.set_bn(model, groups)
    opt = tl_nnx.optimizer(model, dict(name="adam", lr=1e-3), groups, 10)
    step = nnx.jit(functools.partial(tl_nnx.train_step, trainable=tl_nnx.trainable(groups)))
    counts[preset] = _convolutions(step, model, opt, batch)
  forward = _convolutions(nnx.jit(lambda m, x: m(x)[0]), model, batch["image"])
  print(f"HLO convolutions + dots: forward {forward}, linear-probe step {counts['linear_probe']}, "
        f"full step {counts['full']}")
  assert forward > 0 and counts["linear_probe"] <= forward + 1 < counts["full"]


def test_orbax_checkpoint_moves_between_nnx_and_linen(tmp_path):
  linen_model, variables, model = _pair("resnet18")
  checkpointer = ocp.StandardCheckpointer()
  # NNX -> Linen: the NNX model's variables, restored as the Linen init's tree.
  checkpointer.save(tmp_path / "nnx", tl_nnx.linen_variables(model))
  checkpointer.wait_until_finished()
  target = jax.eval_shape(linen_model.init, jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3), jnp.uint8))
  restored = checkpointer.restore(tmp_path / "nnx", target)
  assert jax.tree.structure(restored) == jax.tree.structure(target)
  jax.tree.map(np.testing.assert_array_equal, restored, variables)
  # Linen -> NNX: other variables saved from the Linen side, loaded into the NNX model.
  other = _random_variables(linen_model, seed=1)
  checkpointer.save(tmp_path / "linen", other)
  checkpointer.wait_until_finished()
  tl_nnx.load_linen_variables(model, checkpointer.restore(tmp_path / "linen", target))
  jax.tree.map(np.testing.assert_array_equal, tl_nnx.linen_variables(model), other)
  with pytest.raises(ValueError, match="missing"):
    tl_nnx.load_linen_variables(model, {"params": {"head": other["params"]["head"]}})


@pytest.mark.slow  # compiles EfficientNet-Lite0's init (~11 s on 2 cores); notebook 04 runs it too
def test_create_loads_the_pretrained_weights_but_the_head():
  from tl_jax import weights

  model = tl_nnx.create("efficientnet_lite0", 10, image_size=SIZE)
  loaded = weights.load_pretrained("efficientnet_lite0")
  got = partition.flatten(tl_nnx.linen_variables(model))
  loaded = {p: x for p, x in loaded.items() if not p.startswith("params/head/")}  # ImageNet's head
  assert {p for p in got if not p.startswith("params/head/")} == set(loaded)
  for path, x in loaded.items():
    np.testing.assert_array_equal(got[path], x, err_msg=path)
  assert not np.any(got["params/head/kernel"])  # the Linen classifier's zero head
