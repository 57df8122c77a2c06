r"""Compile time of a run's initialiser (``weights.init_variables``) at XLA's default and at the
options it uses on CPU (``weights.merge.CPU_INIT_COMPILER_OPTIONS``), with the values compared bit for bit.

  PYTHONPATH=. python scripts/benchmark_init.py [--models efficientnet_lite0:32,efficientnet_lite0:224,resnet50:224]

Per model: the init (random, no pretrained file) lowered once, compiled with each setting in turn
(no persistent compilation cache), then run once; prints compile seconds, the run's milliseconds
and whether both settings give identical variables.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import models
from tl_jax.weights.merge import CPU_INIT_COMPILER_OPTIONS


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="efficientnet_lite0:32,efficientnet_lite0:224,resnet50:224")
  args = parser.parse_args()
  for spec in args.models.split(","):
    name, size = spec.split(":")
    model = models.create(name, 10)
    lowered = jax.jit(lambda key: model.init(key, jnp.zeros((1, int(size), int(size), 3), jnp.uint8))).lower(
        jax.random.key(0))
    values = {}
    for label, options in [("default", None), ("options", CPU_INIT_COMPILER_OPTIONS)]:
      t0 = time.perf_counter()
      compiled = lowered.compile(compiler_options=options)
      compile_s = time.perf_counter() - t0
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled(jax.random.key(0)))
      run_ms = (time.perf_counter() - t0) * 1e3
      values[label] = [np.asarray(x) for x in jax.tree.leaves(out)]
      print(f"{name} {size} px init, {label} {options or ''}: compile {compile_s:.1f} s, run {run_ms:.0f} ms; "
            f"load {os.getloadavg()[0]:.1f}", flush=True)
    same = all(np.array_equal(a, b) for a, b in zip(values["default"], values["options"]))
    print(f"{name} {size} px: variables bit-equal between the settings: {same}", flush=True)


if __name__ == "__main__":
  main()
