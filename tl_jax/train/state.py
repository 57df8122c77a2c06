"""The train state of a phase: the model, its (pretrained) variables, the parameter groups and the
optimizer of the run's plan; the switch to the next phase; the abstract state a restore fills.

``create_state`` builds phase ``p``'s state from the config (pretrained weights merged),
``build_state`` the same on given variables, ``next_phase`` carries a state into the next phase
and ``abstract_state`` gives shapes only (no weights read). ``plan_of`` is the config's plan
(``freezing.plan``) on the model's parameter shapes.
"""

import jax
import jax.numpy as jnp

from tl_jax import models, weights
from tl_jax.freezing import inspect_groups, optim
from tl_jax.freezing.plan import Plan
from tl_jax.train import ema, steps


def _model(config, num_classes: int, **kwargs):
  """``config.model``; its ``dtype`` is the compute dtype: "bfloat16" keeps
  float32 parameters and optimizer state (mixed precision)."""
  mcfg = config.model
  return models.create(mcfg.name, num_classes, dropout_rate=mcfg.dropout_rate, drop_path_rate=mcfg.drop_path_rate,
                       dtype=jnp.dtype(mcfg.get("dtype", "float32")), layer_impl=mcfg.get("layer_impl", "auto"),
                       bn_momentum=mcfg.get("bn_momentum", 0.0), source=config.get("init", {}).get("source") or None,
                       **kwargs)


def plan_of(config, num_classes: int) -> Plan:
  """The plan of ``config`` (``freezing.plan``) on its model's parameter shapes: nothing computed."""
  return Plan.from_config(config, inspect_groups.abstract_variables(config, num_classes))


def create_state(config, num_classes: int, total_steps: int, *, pretrained: bool = True, phase: int = 0,
                 plan: Plan | None = None):
  """Model, initial (pretrained) variables, parameter groups and optimizer.

  Returns ``(state, groups)`` for phase ``phase`` of ``plan`` (default: the config's).
  """
  mcfg = config.model
  loaded = {}
  if pretrained and config.init.pretrained:
    loaded = weights.load_pretrained(mcfg.name, path=config.init.path or None,
                                     source=config.init.source or None)
  variables = weights.init_variables(_model(config, num_classes), config.data.image_size,
                                     jax.random.key(config.seed), loaded, dont_load=config.init.dont_load)
  return build_state(config, num_classes, variables, total_steps, phase, plan)


def build_state(config, num_classes: int, variables, total_steps: int, phase: int = 0, plan: Plan | None = None):
  """``(state, groups)`` of phase ``phase`` on ``variables``, with a fresh optimizer.

  The model is built once the labels are known: BatchNorm layers of
  ``running``-statistics groups are frozen in it.
  """
  plan = plan or Plan.from_config(config, variables)
  groups = plan.groups[phase]
  model = _model(config, num_classes, frozen_bn=plan.frozen_bn(phase))
  state = steps.TrainState.create(
      apply_fn=model.apply,
      params=variables["params"],
      batch_stats=variables.get("batch_stats", {}),
      tx=optim.make_optimizer(config.optim, groups, total_steps),
  )
  # create() leaves step a weakly typed Python 0; the first train step returns
  # an int32 array, whose new signature would compile the step a second time.
  return ema.init(state.replace(step=jnp.zeros((), jnp.int32)), config.get("train", {})), groups


def next_phase(config, state, num_classes: int, total_steps: int, phase: int, plan: Plan | None = None):
  """Switches ``state`` to phase ``phase``: same params, batch_stats and step; the optimizer
  state of parameters that stay trainable in their group, and the run schedule's count, carry over."""
  new, groups = build_state(config, num_classes, {"params": state.params, "batch_stats": state.batch_stats},
                            total_steps, phase, plan)
  return new.replace(step=state.step, opt_state=optim.carry_opt_state(state.opt_state, new.opt_state),
                     ema_params=state.ema_params, ema_batch_stats=state.ema_batch_stats), groups


def abstract_state(config, num_classes: int, total_steps: int, phase: int, sharding_=None,
                   plan: Plan | None = None):
  """Shapes, dtypes (and ``sharding_``) of phase ``phase``'s state: a restore target
  that reads no pretrained weights."""
  abstract = jax.eval_shape(lambda: create_state(config, num_classes, total_steps, pretrained=False,
                                                 phase=phase, plan=plan)[0])
  if sharding_ is None:
    return abstract
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_), abstract)
