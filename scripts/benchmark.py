r"""Fine-tuning speed, side by side: tl_jax vs Keras 3 (JAX backend) vs PyTorch eager.

  KERAS_BACKEND=jax python scripts/benchmark.py [--models resnet50,vgg16,efficientnet_lite0]
      [--sizes 64,224] [--modes frozen,full] [--frameworks tl_jax,keras,torch,torch_cl]
      [--repeats 5] [--json benchmark.json]

For every (model, size, mode) it times one train step (forward + backward +
Adam on a new 10-class head, batch 16; ``frozen``: backbone frozen with
running BatchNorm statistics, ``full``: everything trained) and the forward
pass of the same batch. Prints img/s (median over ``--repeats`` timed calls
after warm-up/compilation), the ratio to the best peer, and the fraction of
this machine's float32 matmul peak, measured first. Model FLOPs come from
XLA's cost analysis of the tl_jax forward pass (a train step counts 3x the
forward when the backbone trains, 1x when it is frozen).

Peers: ``keras`` = ``keras.applications`` with ``weights=None`` (no
EfficientNet-Lite there); ``torch`` / ``torch_cl`` = the reference modules in
``benchmark_torch.py``, eager, default / channels_last memory format.
"""

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tl_jax import steps, trainer  # noqa: E402

BATCH, CLASSES = 16, 10


def timed(fn, repeats: int, warmup: int = 2) -> float:
  """Median seconds per call of ``fn`` (which must block until done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 10) -> dict[str, float]:
  """Measured float32 GFLOP/s of an n x n matmul in XLA and in torch; the peak is the best."""
  x = jnp.ones((n, n), jnp.float32)
  mm = jax.jit(lambda a: a @ a)
  result = {"xla": 2 * n**3 / timed(lambda: mm(x).block_until_ready(), repeats) / 1e9}
  try:
    import torch

    t = torch.ones(n, n)
    result["torch"] = 2 * n**3 / timed(lambda: torch.mm(t, t), repeats) / 1e9
  except ImportError:
    pass
  result["peak"] = max(result.values())
  return result


def tl_jax_config(model: str, size: int, mode: str) -> ml_collections.ConfigDict:
  """A training config of the benchmark's recipe (no pretrained weights are read)."""
  frozen = mode == "frozen"
  return ml_collections.ConfigDict(dict(
      seed=0,
      data=dict(image_size=size),
      model=dict(name=model, dropout_rate=0.0, drop_path_rate=0.0, dtype="float32"),
      init=dict(pretrained=False),
      param_groups=dict(rules=(("head/.*", "head"), (".*", "frozen" if frozen else "backbone"))),
      optim=dict(name="adam", lr=1e-3, schedule="constant", warmup_steps=0, kwargs={}),
  ))


def bench_tl_jax(model: str, size: int, mode: str, repeats: int) -> dict[str, float]:
  state, _ = trainer.create_state(tl_jax_config(model, size, mode), CLASSES, 100, pretrained=False)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)),
           "label": jnp.asarray(rng.integers(0, CLASSES, (BATCH,), dtype=np.int32))}
  key = jax.random.key(0)
  train = jax.jit(functools.partial(steps.train_step, loss_fn=steps.cross_entropy), donate_argnums=0)
  forward = jax.jit(lambda s, x: s.apply_fn({"params": s.params, "batch_stats": s.batch_stats}, x)[0])
  holder = [state]

  def step():
    holder[0], m = train(holder[0], batch, key)
    m["loss"].block_until_ready()

  flops = forward.lower(state, batch["image"]).compile().cost_analysis()
  flops = (flops[0] if isinstance(flops, list) else flops)["flops"] / BATCH
  return {"train_s": timed(step, repeats),
          "forward_s": timed(lambda: forward(holder[0], batch["image"]).block_until_ready(), repeats),
          "forward_flops_per_image": flops}


def bench_keras(model: str, size: int, mode: str, repeats: int) -> dict[str, float]:
  import keras

  apps = {"resnet50": keras.applications.ResNet50, "vgg16": keras.applications.VGG16}
  if model not in apps:
    raise NotImplementedError(f"keras.applications has no {model}")
  base = apps[model](weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
  base.trainable = mode != "frozen"  # Keras: a frozen model's BatchNorm runs in inference mode
  net = keras.Sequential([base, keras.layers.Dense(CLASSES)])
  net.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 255, (BATCH, size, size, 3)).astype(np.float32)
  y = rng.integers(0, CLASSES, (BATCH,))
  return {"train_s": timed(lambda: net.train_on_batch(x, y), repeats),
          "forward_s": timed(lambda: np.asarray(net.predict_on_batch(x)), repeats)}


def bench_torch(model: str, size: int, mode: str, repeats: int, channels_last: bool) -> dict[str, float]:
  import torch

  import benchmark_torch

  torch.manual_seed(0)
  backbone, features = benchmark_torch.MODELS[model]()
  net = torch.nn.Sequential(backbone, torch.nn.Linear(features, CLASSES))
  frozen = mode == "frozen"
  if frozen:
    backbone.requires_grad_(False)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  net = net.to(memory_format=fmt)
  x = torch.rand(BATCH, 3, size, size).mul(255).contiguous(memory_format=fmt)
  y = torch.randint(0, CLASSES, (BATCH,))
  opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)

  def step():
    net.train()
    if frozen:  # frozen backbone: running BatchNorm statistics, as in tl_jax and Keras
      backbone.eval()
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()

  def forward():
    net.eval()
    with torch.inference_mode():
      net(x)

  return {"train_s": timed(step, repeats), "forward_s": timed(forward, repeats)}


FRAMEWORKS = {
    "tl_jax": bench_tl_jax,
    "keras": bench_keras,
    "torch": functools.partial(bench_torch, channels_last=False),
    "torch_cl": functools.partial(bench_torch, channels_last=True),
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="resnet50,vgg16,efficientnet_lite0")
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--modes", default="frozen,full")
  parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--json", default="benchmark.json")
  args = parser.parse_args()
  frameworks = args.frameworks.split(",")
  unknown = set(frameworks) - set(FRAMEWORKS)
  if unknown:
    parser.error(f"unknown framework(s) {sorted(unknown)}; known: {', '.join(FRAMEWORKS)}")
  if "tl_jax" not in frameworks:
    parser.error("--frameworks must include tl_jax (it provides the model FLOPs)")

  import torch

  peak = matmul_peak()
  env = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
         "torch_threads": torch.get_num_threads(), "jax": jax.__version__, "torch": torch.__version__,
         "loadavg_start": os.getloadavg(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
  import keras

  env["keras"] = keras.__version__
  print(f"float32 matmul peak: {peak['peak']:.0f} GFLOP/s ({', '.join(f'{k} {v:.0f}' for k, v in peak.items() if k != 'peak')});"
        f" load {env['loadavg_start'][0]:.1f}")
  rows = []
  header = f"{'model':<20}{'size':>5} {'mode':<7}{'what':<8}" + "".join(f"{f:>10}" for f in frameworks)
  header += f"{'vs best peer':>14}{'of peak':>9}"
  print(header)
  for model in args.models.split(","):
    for size in map(int, args.sizes.split(",")):
      for mode in args.modes.split(","):
        result = {}
        for fw in frameworks:
          try:
            result[fw] = FRAMEWORKS[fw](model, size, mode, args.repeats)
          except NotImplementedError as e:
            result[fw] = {"skipped": str(e)}
        flops = result["tl_jax"]["forward_flops_per_image"]
        for what, mult in (("train", 1 if mode == "frozen" else 3), ("forward", 1)):
          ips = {fw: BATCH / r[f"{what}_s"] for fw, r in result.items() if f"{what}_s" in r}
          peers = [v for fw, v in ips.items() if fw != "tl_jax"]
          ratio = ips["tl_jax"] / max(peers) if peers else float("nan")
          frac = ips["tl_jax"] * flops * mult / (peak["peak"] * 1e9)
          rows.append({"model": model, "size": size, "mode": mode, "what": what, "img_per_s": ips,
                       "ratio_to_best_peer": ratio, "fraction_of_peak": frac,
                       "model_gflop_per_image": flops * mult / 1e9, "loadavg": os.getloadavg()[0]})
          cells = "".join(f"{ips[fw]:>10.2f}" if fw in ips else f"{'n/a':>10}" for fw in frameworks)
          print(f"{model:<20}{size:>5} {mode:<7}{what:<8}{cells}{ratio:>14.2f}{frac:>9.1%}", flush=True)
        if mode == "frozen":
          r = result["tl_jax"]
          rows[-1]["frozen_train_over_forward"] = r["train_s"] / r["forward_s"]
          print(f"{'':<20}{'':>5} tl_jax frozen train step / forward = {r['train_s'] / r['forward_s']:.2f}")
        env["loadavg_end"] = os.getloadavg()
        with open(args.json, "w") as f:  # after every block: a long run interrupted keeps what it measured
          json.dump({"env": env, "matmul_gflops": peak, "batch": BATCH, "repeats": args.repeats, "rows": rows},
                    f, indent=1)
  print(f"wrote {args.json}\n")
  print(markdown_table(rows, frameworks))


def markdown_table(rows: list[dict], frameworks: list[str]) -> str:
  """The rows as the BENCHMARKS.md table (img/s; n/a where a framework has no such model)."""
  lines = ["| model | px | mode | timed | " + " | ".join(frameworks) + " | tl_jax / best peer | of peak |",
           "|---|---|---|---|" + "---:|" * (len(frameworks) + 2)]
  for r in rows:
    timed = r["what"]
    if "frozen_train_over_forward" in r:
      timed += f" (train/fwd {r['frozen_train_over_forward']:.2f})"
    cells = [f"{r['img_per_s'][fw]:.1f}" if fw in r["img_per_s"] else "n/a" for fw in frameworks]
    lines.append(f"| {r['model']} | {r['size']} | {r['mode']} | {timed} | " + " | ".join(cells)
                 + f" | {r['ratio_to_best_peer']:.2f} | {r['fraction_of_peak']:.1%} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
