"""Phases follow one run schedule: the learning rate every group gets is the one the config states.

The checks drive the real ``create_state`` / ``next_phase`` with a constant gradient of ones.
For Adam with correct bias correction every step's update is then exactly the learning rate
(``m_hat = v_hat = 1``), so the update of each parameter reads off the applied rate: a group that
restarted its schedule at a phase change (bug 1), a newly unfrozen parameter whose Adam count was
kept (bug 2) or a head whose state was dropped when the chain changed shape (bug 3) all show up.
"""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax import partition
from tl_jax.freezing import optim
from tl_jax.studies import compare
from tl_jax.train import trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _small(cfg, name="efficientnet_lite0"):
  cfg.unlock()
  cfg.model.name, cfg.data.image_size, cfg.init.pretrained = name, 32, False
  return cfg


def _expected(plan, phase, schedule, step):
  """Per path: the learning rate the config states for ``step`` (0 when frozen)."""
  g = plan.groups[phase]
  base = float(schedule(step))
  return {p: base * g.settings[label].lr_mult * g.lr_scale.get(p, 1.0) if g.trainable(p) else 0.0
          for p, label in g.labels.items()}


def drive(cfg, total_steps: int, num_classes: int = 10):
  """Steps ``total_steps`` with gradients of ones; yields ``(step, phase, applied, expected)`` per step."""
  plan = trainer.plan_of(cfg, num_classes)
  state, _ = trainer.create_state(cfg, num_classes, total_steps, pretrained=False, plan=plan)
  schedule = optim.schedule(cfg.optim, total_steps)
  phase = 0
  for step in range(total_steps):
    if plan.phase_at(step) != phase:
      phase = plan.phase_at(step)
      state, _ = trainer.next_phase(cfg, state, num_classes, total_steps, phase, plan)
    state, delta = _apply_ones(state)
    applied = {p: float(d) for p, d in partition.flatten(jax.device_get(delta)).items()}
    yield step, phase, applied, _expected(plan, phase, schedule, step)


@jax.jit
def _ones_step(state):
  return state.apply_gradients(grads=jax.tree.map(jnp.ones_like, state.params))


def _apply_ones(state):
  """One update with gradients of ones; the largest |change| of every parameter (in numpy: one
  reduction per leaf in the jit compiled a kernel each, ~40 s a file)."""
  new = _ones_step(state)
  before, after = jax.device_get((state.params, new.params))
  return new, jax.tree.map(lambda a, b: np.abs(a - b).max(), after, before)


def _check(cfg, total_steps):
  seen = set()
  for step, phase, applied, expected in drive(cfg, total_steps):
    seen.add(phase)
    wrong = {p: (applied[p], expected[p]) for p in applied
             if not np.isclose(applied[p], expected[p], rtol=2e-3, atol=1e-7)}
    assert not wrong, f"step {step} (phase {phase}): applied vs stated lr differ for {len(wrong)} params, " \
                      f"e.g. {next(iter(wrong.items()))}"
  return seen


def _adam_only(cfg):
  """Adam with the config's lr, schedule, warm-up, multipliers and layer decay; no regulariser or
  clipping (a constant gradient would then not read off the rate)."""
  cfg.optim.name, cfg.optim.kwargs = "adam", {}
  for key in ("weight_decay", "clip_grad_norm"):
    if key in cfg.optim:
      cfg.optim[key] = 0.0
  if "l2sp" in cfg.optim:
    cfg.optim.l2sp = dict(alpha=0.0, beta=0.0)
  return cfg


def test_lp_ft_backbone_follows_the_run_schedule(quickstart_config):
  """Bug 1: SGD-like check of the issue's case, cosine over 10 steps, linear probe -> full at 5."""
  cfg = _small(quickstart_config)
  cfg.optim.update(dict(name="adam", lr=1.0, schedule="cosine", warmup_steps=0))
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  cfg.phases = ((0, {}), (5, dict(preset=dict(name="full"))))
  rates = {step: applied for step, _, applied, _ in drive(cfg, 10)}
  kernel = "backbone/stage1/block1/depthwise_conv/kernel"
  schedule = optim.schedule(cfg.optim, 10)
  np.testing.assert_allclose([rates[s][kernel] for s in range(5, 10)], [float(schedule(s)) for s in range(5, 10)],
                             rtol=1e-4)  # 0.5 -> 0.02, as the head; not 1.0, 0.98, ... from a restart
  assert all(rates[s][kernel] == 0 for s in range(5))


def test_gradual_unfreezing_gives_new_parameters_a_fresh_adam_step(quickstart_config):
  """Bug 2: top_k_stages k=1 -> full; the stem's first updates are the lr, not 2-4x it."""
  cfg = _small(quickstart_config)
  cfg.optim.update(dict(name="adam", lr=1.0, schedule="constant", warmup_steps=0))
  cfg.param_groups = dict(preset=dict(name="top_k_stages", k=1))
  cfg.phases = ((0, {}), (6, dict(preset=dict(name="full"))))
  assert _check(cfg, 9) == {0, 1}


def test_layer_decay_added_by_a_later_phase_keeps_the_head_state(quickstart_config):
  """Bug 3: a phase that adds layer decay (another chain shape before the fix) carries the head's
  moments and count; the applied rates follow layer decay from then on."""
  cfg = _small(quickstart_config)
  cfg.optim.update(dict(name="adam", lr=0.5, schedule="cosine", warmup_steps=2))
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  cfg.phases = ((0, {}), (4, dict(preset=dict(name="full"), layer_decay=0.8)))
  plan = trainer.plan_of(cfg, 10)
  state, _ = trainer.create_state(cfg, 10, 8, pretrained=False, plan=plan)
  for _ in range(4):
    state, _ = _apply_ones(state)
  old = jax.device_get(state.opt_state[3].inner_states["head"].inner_state[0])
  new, _ = trainer.next_phase(cfg, state, 10, 8, 1, plan)
  head = jax.device_get(new.opt_state[3].inner_states["head"].inner_state[0])
  assert int(head.count) == 4
  jax.tree.map(np.testing.assert_array_equal, old.mu, head.mu)
  assert np.all(head.mu["head"]["kernel"] != 0)
  assert _check(cfg, 8) == {0, 1}


def _phase_recipes():
  """Every phase recipe of configs/: a config's own ``phases`` or a compare strategy's."""
  out = []
  for path in sorted(CONFIGS.glob("*.py")):
    if path.stem.startswith("_"):
      continue
    module = importlib.import_module(f"configs.{path.stem}")
    cfg = module.get_config()
    if cfg.get("phases"):
      out.append(pytest.param(path.stem, None, id=path.stem))
    for name, over in (cfg.get("compare", {}).get("strategies", {}) or {}).items():
      if dict(over).get("phases"):
        out.append(pytest.param(path.stem, name, id=f"{path.stem}:{name}"))
  return out


RECIPES = _phase_recipes()


def test_configs_have_phase_recipes():
  assert RECIPES, "no phase recipe found in configs/: the class test below would check nothing"


@pytest.mark.parametrize("config_name,strategy", RECIPES)
def test_every_phase_recipe_applies_the_stated_learning_rates(config_name, strategy):
  cfg = importlib.import_module(f"configs.{config_name}").get_config()
  total = 12
  if strategy is not None:
    over = dict(cfg.compare.strategies[strategy])
    cfg, total = compare.run_config(cfg, over, per_class=1, num_epochs=1,
                                    train_images=12 * cfg.train.batch_size // over.get("epochs_mult", 1))
  cfg = _adam_only(_small(cfg, cfg.model.name))
  assert len(_check(cfg, total)) == len(cfg.phases) > 1
