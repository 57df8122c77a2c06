r"""Python overhead of the NNX face's train step: Linen ``jax.jit`` vs ``nnx.jit`` vs ``nnx.cached_partial``.

  python scripts/benchmark_nnx_overhead.py [--model resnet18] [--size 32] [--batch 8] [--rounds 5] [--steps 10]

A small model on a small batch, backbone frozen (``scripts/benchmark.py``'s ``frozen`` recipe:
head trained with Adam, backbone ``set_to_zero`` on running BatchNorm statistics), so the step's
compute is small and the per-call Python work shows. One train step, four ways:

  linen        ``jax.jit(steps.train_step)`` on the Linen ``TrainState`` (benchmark.py's ``tl_jax``)
  nnx.jit      ``nnx.jit(tl_nnx.train_step)(model, opt, batch)``: traverses model and optimizer
               graphs on every call (``nnx.split`` in, ``nnx.update`` out)
  cached       ``nnx.cached_partial(that nnx.jit step, model, opt)(batch)``: the traversal cached
  functional   ``nnx.split((model, opt))`` once, ``jax.jit`` of a pure ``(state, batch) -> (state,
               metrics)`` that merges inside (the state carried by hand, merged back at the end)

Every variant donates its state. Times are per step: ``host`` until the call returns (Python work
plus dispatch; XLA runs asynchronously), ``step`` until the loss is ready. Variants run in
interleaved rounds (``--rounds`` x ``--steps``) after two warm-up steps, medians over all steps, so
a machine under other load shifts them alike: compare the ratios of one run.
"""

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # scripts/benchmark.py: its recipe and Linen step

from tl_jax.train import steps, trainer

NOTHING = lambda: None


def linen_step(name: str, size: int, batch):
  state, _ = trainer.create_state(benchmark.tl_jax_config(name, size, "frozen"), benchmark.CLASSES, 100,
                                  pretrained=False)
  train = jax.jit(functools.partial(steps.train_step, loss_fn=steps.cross_entropy), donate_argnums=0)
  holder, key = [state], jax.random.key(0)

  def step():
    holder[0], metrics = train(holder[0], batch, key)
    return metrics["loss"]

  return step


def nnx_steps(name: str, size: int, batch) -> dict:
  from flax import nnx

  from tl_jax.train import nnx as tl_nnx

  cfg = benchmark.tl_jax_config(name, size, "frozen")
  model = tl_nnx.create(name, benchmark.CLASSES, pretrained=False, image_size=size, dropout_rate=0.0,
                        layer_impl="auto")
  groups = tl_nnx.param_groups(model, cfg.param_groups.to_dict())
  tl_nnx.set_bn(model, groups)
  opt = tl_nnx.optimizer(model, cfg.optim.to_dict(), groups, 100)
  train_step = functools.partial(tl_nnx.train_step, trainable=tl_nnx.trainable(groups))

  jitted = nnx.jit(train_step, donate_argnums=(0, 1))
  cached = nnx.cached_partial(jitted, model, opt)

  graphdef, state = nnx.split((model, opt))

  @functools.partial(jax.jit, donate_argnums=0)
  def pure(state, batch):
    m, o = nnx.merge(graphdef, state)
    metrics = train_step(m, o, batch)
    return nnx.state((m, o)), metrics

  holder = [state]

  def functional():
    holder[0], metrics = pure(holder[0], batch)
    return metrics["loss"]

  def enter():  # the functional variant starts from the objects' state...
    holder[0] = nnx.state((model, opt))

  def leave():  # ...and puts its own back (donation left the objects' arrays deleted)
    nnx.update((model, opt), holder[0])

  return {"nnx.jit": (lambda: jitted(model, opt, batch)["loss"], NOTHING, NOTHING),
          "cached": (lambda: cached(batch)["loss"], NOTHING, NOTHING),
          "functional": (functional, enter, leave)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="resnet18")
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)),
           "label": jnp.asarray(rng.integers(0, benchmark.CLASSES, (args.batch,), dtype=np.int32))}
  start = time.perf_counter()
  variants = {"linen": (linen_step(args.model, args.size, batch), NOTHING, NOTHING),
              **nnx_steps(args.model, args.size, batch)}
  host = {k: [] for k in variants}
  step = {k: [] for k in variants}
  for fn, enter, leave in variants.values():  # compile and warm up
    enter()
    for _ in range(2):
      fn().block_until_ready()
    leave()
  compiled = time.perf_counter() - start
  for _ in range(args.rounds):
    for name, (fn, enter, leave) in variants.items():
      enter()
      for _ in range(args.steps):
        t = time.perf_counter()
        loss = fn()
        host[name].append(time.perf_counter() - t)
        loss.block_until_ready()
        step[name].append(time.perf_counter() - t)
      leave()

  ms = lambda xs: 1e3 * statistics.median(xs)
  base_host, base_step = ms(host["linen"]), ms(step["linen"])
  print(f"{args.model}, {args.size} px, batch {args.batch}, frozen backbone, {jax.default_backend()}; "
        f"median of {args.rounds} x {args.steps} steps per variant (set-up and compiles {compiled:.0f} s)")
  print(f"{'variant':<12}{'host ms':>9}{'step ms':>9}{'step / linen':>14}{'host - linen ms':>17}")
  for name in variants:
    h, s = ms(host[name]), ms(step[name])
    print(f"{name:<12}{h:>9.2f}{s:>9.2f}{s / base_step:>14.2f}{h - base_host:>17.2f}")


if __name__ == "__main__":
  main()
