r"""ConvNeXt-T forward + backward on CPU with its 7x7 depthwise convolutions routed vs native.

  PYTHONPATH=. python scripts/benchmark_depthwise.py [--batch 16] [--size 64] [--repeats 5]

Times ``jax.value_and_grad`` of a loss of the logits w.r.t. every parameter
under ``layers.impl("cpu_routed")`` (depthwise as shifted sums, the CPU
default) and ``layers.impl("native")`` (XLA's grouped convolution), twice
each, interleaved; prints the median and minimum of ``--repeats`` calls after
the first (compiling) one, and the load average (other processes share the CPU).
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import models
from tl_jax.models import layers


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="convnext_tiny")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32))
  model = models.create(args.model, 10)
  params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]

  def loss(params, x):
    logits, _ = model.apply({"params": params}, x)
    return jnp.mean(logits ** 2)

  for impl in ("cpu_routed", "native") * 2:
    with layers.impl(impl):
      f = jax.jit(jax.value_and_grad(loss))
      t0 = time.perf_counter()
      jax.block_until_ready(f(params, x))
      first = time.perf_counter() - t0
      times = []
      for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(params, x))
        times.append(time.perf_counter() - t0)
    print(f"{args.model} {impl:<11} batch {args.batch} {args.size} px fwd+bwd: median "
          f"{statistics.median(times) * 1e3:.0f} ms, min {min(times) * 1e3:.0f} ms, first call "
          f"{first:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
  main()
