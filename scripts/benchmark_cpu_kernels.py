r"""A model's forward + backward on CPU, routed (the CPU default) vs a baseline; the routed kernels' parts.

  PYTHONPATH=. python scripts/benchmark_cpu_kernels.py [--model convnext_tiny] [--batch 16] [--size 64]
      [--repeats 5] [--baseline native|no_kxk_scan|transposed_taps_dx]
  PYTHONPATH=. python scripts/benchmark_cpu_kernels.py --parts   # compile time of one layer's parts
  PYTHONPATH=. python scripts/benchmark_cpu_kernels.py --kernel-grads   # kxk kernel gradients per layer

Times ``jax.value_and_grad`` of a loss of the logits w.r.t. every parameter
under ``layers.impl("cpu_routed")`` (depthwise as shifted sums, the CPU
default) and ``layers.impl("native")`` (XLA's grouped convolution), twice
each, interleaved; prints the median and minimum of ``--repeats`` calls after
the first (compiling) one, and the load average (other processes share the CPU).
``--parts``: the compile time of one 5x5 depthwise layer (batch 2, 16x16x32) routed, by part
(forward, input gradient, kernel gradient), beside XLA's native grouped convolution.
"""

import argparse
import contextlib
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from tl_jax import models
from tl_jax.models import cpu_kernels, layers


def parts() -> None:
  """Compile seconds of a routed 5x5 depthwise layer's parts and of the native convolution's VJP."""
  x = g = jnp.ones((2, 16, 16, 32))
  w = jnp.ones((5, 5, 1, 32))
  native = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=32)
  fns = {
      "routed forward": (lambda x, w, g: cpu_kernels.depthwise_shifted(x, w, 1)),
      "routed input gradient": (lambda x, w, g: jax.vjp(lambda x: cpu_kernels.depthwise_shifted(x, w, 1), x)[1](g)[0]),
      "routed kernel gradient": (lambda x, w, g: cpu_kernels._depthwise_kernel_grad(x, g, 5, 1, "SAME")),
      "routed value and both gradients": (lambda x, w, g: jax.vjp(
          lambda x, w: cpu_kernels.depthwise_shifted(x, w, 1), x, w)[1](g)),
      "native value and both gradients": (lambda x, w, g: jax.vjp(native, x, w)[1](g)),
  }
  for name, fn in fns.items():
    lowered = jax.jit(fn).lower(x, w, g)
    t0 = time.perf_counter()
    lowered.compile()
    print(f"{name:<32} compile {time.perf_counter() - t0:.2f} s, {len(lowered.as_text().splitlines())} "
          f"HLO lines; load {os.getloadavg()[0]:.1f}", flush=True)


def _median_ms(f, *args, repeats: int = 5) -> float:
  jax.block_until_ready(f(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times) * 1e3


def kernel_grads(batch: int, repeats: int) -> None:
  """Median ms (and GFLOP/s) of a kxk convolution's kernel gradient: XLA's vs the tap scan's."""
  shapes = [  # map, kernel, stride, cin, cout: VGG16 at 64 and 224 px, ResNet-50 at 224 px, stems
      (64, 3, 1, 64, 64), (32, 3, 1, 128, 128), (16, 3, 1, 256, 256), (8, 3, 1, 512, 512),
      (224, 3, 1, 3, 64), (56, 3, 1, 64, 64), (28, 3, 1, 128, 128), (14, 3, 1, 256, 256),
      (7, 3, 1, 512, 512), (224, 7, 2, 3, 64), (112, 3, 2, 64, 64)]
  for size, k, s, cin, cout in shapes:
    kx, kw, kg = jax.random.split(jax.random.key(size + k + cin), 3)
    x, w = jax.random.normal(kx, (batch, size, size, cin)), jax.random.normal(kw, (k, k, cin, cout))
    pads = ((k // 2, k // 2),) * 2
    conv = {"xla": lambda x, w: cpu_kernels._native_conv(x, w, (s, s), pads),
            "tap scan": lambda x, w: cpu_kernels.conv_tap_grad(x, w, (s, s), pads)}
    g = jax.random.normal(kg, jax.eval_shape(conv["xla"], x, w).shape)
    gflop = 2 * g.size * k * k * cin / 1e9
    ms = {name: _median_ms(jax.jit(lambda x, w, g, f=f: jax.vjp(lambda w: f(x, w), w)[1](g)[0]), x, w, g,
                           repeats=repeats) for name, f in conv.items()}
    print(f"{batch}x{size}x{size}x{cin} -> {cout}, {k}x{k} stride {s}: " + ", ".join(
        f"{name} {t:.1f} ms ({gflop / t * 1e3:.0f} GFLOP/s)" for name, t in ms.items())
        + f", x{ms['xla'] / ms['tap scan']:.2f}; load {os.getloadavg()[0]:.1f}", flush=True)


def _transposed_taps_dx(g, kernel, x_shape, stride, padding, dilation=1):
  """The routed depthwise input gradient before 2026-12-05: autodiff's transpose of the k*k taps."""
  _, vjp = jax.vjp(lambda x: cpu_kernels._depthwise_sum(x, kernel, stride, padding, dilation),
                   jnp.zeros(x_shape, g.dtype))
  return vjp(g)[0]


# Baselines that are the routed layers with one rule put back as it was: module attribute -> value.
_ROUTED_WITH = {"no_kxk_scan": (layers, "_NATIVE_KERNEL_GRAD_MAX_MAP", float("inf")),
                "transposed_taps_dx": (cpu_kernels, "_depthwise_input_grad", _transposed_taps_dx)}


@contextlib.contextmanager
def _implementation(name: str):
  """``layers.impl(name)``, or for a ``_ROUTED_WITH`` name the routed layers with that rule swapped."""
  if name not in _ROUTED_WITH:
    with layers.impl(name):
      yield
    return
  module, attribute, value = _ROUTED_WITH[name]
  keep = getattr(module, attribute)
  setattr(module, attribute, value)
  try:
    with layers.impl("cpu_routed"):
      yield
  finally:
    setattr(module, attribute, keep)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="convnext_tiny")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--baseline", default="native", choices=("native", *_ROUTED_WITH))
  parser.add_argument("--parts", action="store_true", help="compile time of one layer's parts")
  parser.add_argument("--kernel-grads", action="store_true", help="kxk kernel gradients per layer shape")
  args = parser.parse_args()
  if args.parts:
    return parts()
  if args.kernel_grads:
    return kernel_grads(args.batch, args.repeats)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32))
  model = models.create(args.model, 10)
  variables = jax.jit(model.init)(jax.random.key(0), x[:1])
  params = variables["params"]

  def loss(params, x):  # BatchNorm (where there is one) on its running statistics
    logits, _ = model.apply({**variables, "params": params}, x)
    return jnp.mean(logits ** 2)

  for impl in ("cpu_routed", args.baseline) * 2:
    with _implementation(impl):
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
          f"{first:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
  main()
