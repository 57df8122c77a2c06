"""Freezing: partition rules, frozen params/statistics, optimizer state, backward compute."""


import jax
import numpy as np
import pytest

from tl_jax import partition
from tl_jax.train import steps, trainer


def test_rules_first_match_wins_and_uncovered_are_listed():
  params = {"backbone": {"stem": {"conv": {"kernel": 1}}, "top": {"bn": {"scale": 2}}}, "head": {"bias": 3}}
  labels = partition.label_paths(partition.flatten(params), [("head/.*", "head"), ("backbone/top/.*", "top"),
                                                             (".*", "frozen")])
  assert labels == {"backbone/stem/conv/kernel": "frozen", "backbone/top/bn/scale": "top", "head/bias": "head"}
  with pytest.raises(ValueError, match=r"2 parameter\(s\) match no rule.*\n  backbone/stem/conv/kernel\n  backbone/top/bn/scale"):
    partition.label_paths(partition.flatten(params), [("head/.*", "head")])


def _probe_config(cfg, rules, **groups):
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.param_groups = dict(rules=rules, **groups)
  cfg.train.batch_size = 8
  return cfg




def test_frozen_params_and_batch_stats_do_not_move(quickstart_config, run_steps):
  # stages 1-5 frozen (BN running stats by default), stages 6-7, top and head trained.
  cfg = _probe_config(quickstart_config, (("head/.*", "head"), ("backbone/(stage[67]|top)/.*", "top"),
                                          (".*", "frozen")))
  state, groups = trainer.create_state(cfg, 10, 10)
  before, after = run_steps(state, 3)
  flat_p0, flat_p1 = partition.flatten(before.params), partition.flatten(after.params)
  for path, label in groups.labels.items():
    same = np.array_equal(flat_p0[path], flat_p1[path])
    assert same == (label == "frozen"), path
  s0, s1 = partition.flatten(before.batch_stats), partition.flatten(after.batch_stats)
  for path in s0:
    assert np.array_equal(s0[path], s1[path]) == (not path.startswith(("backbone/stage6", "backbone/stage7",
                                                                       "backbone/top"))), path
  # Frozen groups hold no optimizer state: Adam's two moments cover trainable params only.
  trainable = sum(int(v.size) for p, v in flat_p0.items() if groups.labels[p] != "frozen")
  state_size = partition.count(after.opt_state)
  assert 2 * trainable <= state_size <= 2 * trainable + 16


# XLA's HLO passes (dead-code elimination of frozen gradients among them) run in full; only
# XLA:CPU's machine-code optimisation, most of the compile time and irrelevant here, is skipped.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _compiled(fn, *args):
  return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def _count(hlo: str) -> int:
  return hlo.count(" convolution(") + hlo.count(" dot(")


def _conv_count(fn, *args) -> int:
  """Convolutions and dots (1x1 convolutions run as dots on CPU) in the compiled HLO."""
  return _count((fn if hasattr(fn, "as_text") else _compiled(fn, *args)).as_text())


def _probe_and_forward(cfg, random_batch):
  """A linear probe's state, a batch, a key and the forward pass's convolution count."""
  cfg = _probe_config(cfg, (("head/.*", "head"), (".*", "frozen")))
  state, _ = trainer.create_state(cfg, 10, 10, pretrained=False)
  batch = random_batch()
  forward = _conv_count(lambda s, x: s.apply_fn({"params": s.params, "batch_stats": s.batch_stats}, x)[0],
                        state, batch["image"])
  return cfg, state, batch, jax.random.key(0), forward


def test_linear_probe_step_has_no_backward_convolutions(quickstart_config, random_batch):
  cfg, state, batch, rng, forward = _probe_and_forward(quickstart_config, random_batch)
  probe = _conv_count(steps.train_step, state, batch, rng)
  cfg.param_groups = dict(rules=((".*", "all"),))
  full_state, _ = trainer.create_state(cfg, 10, 10, pretrained=False)
  # The control, uncompiled (XLA only removes operations): the full step's backward convolutions.
  full = _count(jax.jit(steps.train_step).lower(full_state, batch, rng).as_text(dialect="hlo"))
  print(f"HLO convolutions + dots: forward {forward}, linear-probe step {probe}, full fine-tune step {full}")
  # The probe's backward pass adds only the head's weight gradient.
  assert forward > 0 and probe <= forward + 1 < full


def test_accumulated_probe_step_neither_computes_nor_carries_frozen_gradients(quickstart_config, random_batch):
  """Gradient accumulation's scan carries a sum for every parameter; XLA drops the frozen ones' dead carries."""
  import functools

  _, state, batch, rng, forward = _probe_and_forward(quickstart_config, random_batch)
  step = functools.partial(steps.train_step, grad_accum_steps=2)
  compiled = _compiled(step, state, batch, rng)
  assert _conv_count(compiled) <= forward + 1
  temp = compiled.memory_analysis().temp_size_in_bytes
  frozen = sum(v.nbytes for p, v in partition.flatten(state.params).items() if not p.startswith("head/"))
  assert temp < frozen / 2, (temp, frozen)  # no buffer of frozen gradients: measured 3.5 MB vs 13.5 MB
