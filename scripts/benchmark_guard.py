r"""What the divergence guard (``train.guard.all_finite`` in every train step) costs: compile time of
an optimizer update with and without it, and the update's run time, against one reduction per leaf.

  PYTHONPATH=. python scripts/benchmark_guard.py [--models efficientnet_lite0,resnet50] [--repeats 5]

Per model (full fine-tuning, Adam, random init): ``state.apply_gradients`` jitted three ways, ``none``
(no check), ``per_leaf`` (one ``all(isfinite)`` per leaf, the guard before 2026-12-05) and
``all_finite`` (the guard now), each lowered and compiled (no persistent cache), then run
``--repeats`` times after a warm-up; prints compile seconds and milliseconds per update.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import ml_collections

from tl_jax.train import guard, state as state_lib


def per_leaf(*trees):
  leaves = [x for t in trees for x in jax.tree.leaves(t) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


CHECKS = {"none": lambda *trees: jnp.bool_(True), "per_leaf": per_leaf, "all_finite": guard.all_finite}


def _config(name: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      seed=0, model=dict(name=name, dropout_rate=0.0, drop_path_rate=0.0),
      init=dict(pretrained=False, path="", source="", dont_load=("head/.*",)), data=dict(image_size=32),
      param_groups=dict(preset=dict(name="full")),
      optim=dict(name="adam", lr=1e-3, schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_grad_norm=0.0,
                 decay_1d=False, kwargs={}),
      train=dict()))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="efficientnet_lite0,resnet50")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  for name in args.models.split(","):
    state, _ = state_lib.create_state(_config(name), 10, 100, pretrained=False)
    leaves = len(jax.tree.leaves((state.params, state.batch_stats, state.opt_state)))
    for label, check in CHECKS.items():
      step = jax.jit(lambda s, g, check=check: (lambda n: (n, check(n.params, n.batch_stats, n.opt_state)))(
          s.apply_gradients(grads=g)))
      lowered = step.lower(state, state.params)
      t0 = time.perf_counter()
      compiled = lowered.compile()
      compile_s = time.perf_counter() - t0
      jax.block_until_ready(compiled(state, state.params))
      t0 = time.perf_counter()
      for _ in range(args.repeats):
        out = jax.block_until_ready(compiled(state, state.params))
      run_ms = (time.perf_counter() - t0) / args.repeats * 1e3
      assert bool(out[1])
      print(f"{name:18s} {leaves:4d} leaves  {label:10s} compile {compile_s:5.2f} s  update {run_ms:7.1f} ms")


if __name__ == "__main__":
  main()
