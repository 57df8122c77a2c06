r"""Fine-tuning speed, side by side: tl_jax vs Keras 3 (JAX backend) vs PyTorch eager.

  KERAS_BACKEND=jax python scripts/benchmark.py [--models resnet50,vgg16,efficientnet_lite0,efficientnet_b0,convnext_tiny]
      [--sizes 64,224] [--modes frozen,full] [--frameworks tl_jax,keras,torch,torch_cl]
      [--batch 16] [--dtype float32|bfloat16] [--repeats 5] [--json benchmark.json]

For every (model, size, mode) it times one train step (forward + backward +
Adam on a new 10-class head, batch 16; ``frozen``: backbone frozen with
running BatchNorm statistics, ``full``: everything trained; ``full_aug``:
``full`` with RandAugment (N=2, M=9) and mixup/CutMix in the step, tl_jax
only, which also times the step without them and the augmentation alone and
prints its share of the step) and the forward pass of the same batch. Prints img/s (median over ``--repeats`` timed calls
after warm-up/compilation), the ratio to the best peer, and the fraction of
this machine's float32 matmul peak, measured first. Model FLOPs come from
XLA's cost analysis of the tl_jax forward pass (a train step counts 3x the
forward when the backbone trains, 1x when it is frozen).

``tl_jax_nnx`` (not run by default) times the same model, groups and optimizer through the Flax NNX
face (``tl_jax.train.nnx``), beside ``tl_jax``; like ``tl_jax_native`` it is not a peer.

Peers: ``keras`` = ``keras.applications`` with ``weights=None`` (no
EfficientNet-Lite there; EfficientNetB0 for ``efficientnet_b0``); ``torch`` / ``torch_cl`` = the reference modules in
``benchmark_torch.py``, eager, default / channels_last memory format;
``torch_compile`` (not run by default) = ``torch_cl`` under ``torch.compile``.

Every framework runs on its default device (torch: CUDA when available).
``--dtype bfloat16``: tl_jax ``model.dtype=bfloat16`` (float32 params and
optimizer), Keras ``mixed_bfloat16``, torch autocast to bfloat16 (AMP); the
peak is then the bfloat16 matmul's. For a GPU, e.g.:

  python scripts/benchmark.py --models resnet50 --sizes 224 --batch 128 --dtype bfloat16 \
      --frameworks tl_jax,torch_cl,torch_compile
"""

import argparse
import dataclasses
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

from tl_jax.data import mixing, randaugment  # noqa: E402
from tl_jax.models import layers  # noqa: E402
from tl_jax.train import steps, trainer  # noqa: E402

CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Case:
  model: str
  size: int
  mode: str  # frozen | full | full_aug
  batch: int = 16
  dtype: str = "float32"  # float32 | bfloat16 (mixed precision)
  repeats: int = 5


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


def matmul_peak(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> dict[str, float]:
  """Measured GFLOP/s of an n x n matmul in XLA and in torch (default devices); the peak is the best."""
  if jax.default_backend() != "cpu":
    n *= 4  # an accelerator needs a bigger matmul to reach its peak
  elif dtype != "float32":
    n //= 4  # CPUs without bf16 units emulate it (torch's fallback runs minutes at 2048)
  x = jnp.ones((n, n), dtype)
  mm = jax.jit(lambda a: a @ a)
  result = {"xla": 2 * n**3 / timed(lambda: mm(x).block_until_ready(), repeats) / 1e9}
  try:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t = torch.ones(n, n, dtype=getattr(torch, dtype), device=device)
    result["torch"] = 2 * n**3 / timed(lambda: torch_sync(torch.mm(t, t)), repeats) / 1e9
  except ImportError:
    pass
  result["peak"] = max(result.values())
  return result


def torch_sync(out=None):
  """Waits for queued CUDA work (torch launches asynchronously); returns ``out``."""
  import torch

  if torch.cuda.is_available():
    torch.cuda.synchronize()
  return out


def tl_jax_config(model: str, size: int, mode: str, dtype: str = "float32") -> ml_collections.ConfigDict:
  """A training config of the benchmark's recipe (no pretrained weights are read)."""
  frozen = mode == "frozen"
  return ml_collections.ConfigDict(dict(
      seed=0,
      data=dict(image_size=size),
      model=dict(name=model, dropout_rate=0.0, drop_path_rate=0.0, dtype=dtype),
      init=dict(pretrained=False, dont_load=()),
      param_groups=dict(rules=(("head/.*", "head"), (".*", "frozen" if frozen else "backbone"))),
      optim=dict(name="adam", lr=1e-3, schedule="constant", warmup_steps=0, kwargs={}),
  ))


def bench_tl_jax(case: Case) -> dict[str, float]:
  state, _ = trainer.create_state(tl_jax_config(case.model, case.size, case.mode, case.dtype), CLASSES, 100,
                                  pretrained=False)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (case.batch, case.size, case.size, 3), dtype=np.uint8)),
           "label": jnp.asarray(rng.integers(0, CLASSES, (case.batch,), dtype=np.int32))}
  key = jax.random.key(0)
  toolkit = {}
  if case.mode == "full_aug":
    toolkit = dict(augment_fn=randaugment.from_config(dict(policy="randaugment")),
                   mix_fn=mixing.from_config(dict(alpha=0.2, cutmix_alpha=1.0)))
  forward = jax.jit(lambda s, x: s.apply_fn({"params": s.params, "batch_stats": s.batch_stats}, x)[0])
  holder = [state]

  def step_of(**kw):
    train = jax.jit(functools.partial(steps.train_step, loss_fn=steps.cross_entropy, **kw), donate_argnums=0)

    def step():
      holder[0], m = train(holder[0], batch, key)
      m["loss"].block_until_ready()

    return step

  # FLOPs by XLA:CPU's analysis of this backend's program: on an H200, XLA:GPU's counted ~1/20 to
  # 1/100 of the convolutions' FLOPs (0.079 GFLOP for ResNet-50's 8.0 per image; BENCHMARKS.md, GPU).
  lowered = forward.trace(state, batch["image"]).lower(lowering_platforms=("cpu",))
  flops = lowered.cost_analysis() or lowered.compile().cost_analysis()
  flops = (flops[0] if isinstance(flops, list) else flops)["flops"] / case.batch
  out = {"train_s": timed(step_of(**toolkit), case.repeats),
         "forward_s": timed(lambda: forward(holder[0], batch["image"]).block_until_ready(), case.repeats),
         "forward_flops_per_image": flops}
  if toolkit:
    augment = jax.jit(lambda k, x, y: toolkit["mix_fn"](k, toolkit["augment_fn"](k, x), y).images)
    out["plain_train_s"] = timed(step_of(), case.repeats)
    out["augment_s"] = timed(lambda: augment(key, batch["image"], batch["label"]).block_until_ready(), case.repeats)
  return out


def bench_keras(case: Case) -> dict[str, float]:
  import keras

  apps = {"resnet50": keras.applications.ResNet50, "vgg16": keras.applications.VGG16,
          "efficientnet_b0": keras.applications.EfficientNetB0,
          "convnext_tiny": keras.applications.ConvNeXtTiny}
  if case.model not in apps:
    raise NotImplementedError(f"keras.applications has no {case.model}")
  keras.config.set_dtype_policy("mixed_bfloat16" if case.dtype == "bfloat16" else "float32")
  try:
    base = apps[case.model](weights=None, include_top=False, pooling="avg", input_shape=(case.size, case.size, 3))
    base.trainable = case.mode != "frozen"  # Keras: a frozen model's BatchNorm runs in inference mode
    net = keras.Sequential([base, keras.layers.Dense(CLASSES, dtype="float32")])
  finally:
    keras.config.set_dtype_policy("float32")
  net.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 255, (case.batch, case.size, case.size, 3)).astype(np.float32)
  y = rng.integers(0, CLASSES, (case.batch,))
  return {"train_s": timed(lambda: net.train_on_batch(x, y), case.repeats),
          "forward_s": timed(lambda: np.asarray(net.predict_on_batch(x)), case.repeats)}


def bench_torch(case: Case, channels_last: bool, compile: bool = False) -> dict[str, float]:
  import benchmark_torch
  import torch

  torch.manual_seed(0)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  backbone, features = benchmark_torch.MODELS[case.model]()
  net = torch.nn.Sequential(backbone, torch.nn.Linear(features, CLASSES))
  frozen = case.mode == "frozen"
  if frozen:
    backbone.requires_grad_(False)
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  net = net.to(device=device, memory_format=fmt)
  x = torch.rand(case.batch, 3, case.size, case.size, device=device).mul(255).contiguous(memory_format=fmt)
  y = torch.randint(0, CLASSES, (case.batch,), device=device)
  opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
  run = torch.compile(net) if compile else net
  amp = torch.autocast(device, dtype=torch.bfloat16, enabled=case.dtype == "bfloat16")

  def step():
    net.train()
    if frozen:  # frozen backbone: running BatchNorm statistics, as in tl_jax and Keras
      backbone.eval()
    opt.zero_grad(set_to_none=True)
    with amp:
      loss = torch.nn.functional.cross_entropy(run(x), y)
    loss.backward()
    opt.step()
    torch_sync()

  def forward():
    net.eval()
    with torch.inference_mode(), amp:
      run(x)
    torch_sync()

  return {"train_s": timed(step, case.repeats), "forward_s": timed(forward, case.repeats)}


def bench_tl_jax_native(case: Case) -> dict[str, float]:
  """tl_jax with every convolution on XLA's native path (what GPUs and TPUs run): a diagnostic
  column, not a peer; beside ``tl_jax`` on CPU it shows what the CPU routing buys, forward and backward."""
  with layers.impl("native"):
    return bench_tl_jax(case)


def bench_tl_jax_nnx(case: Case) -> dict[str, float]:
  """The ``tl_jax`` model, groups and optimizer through the Flax NNX face (``tl_jax.train.nnx``:
  the Linen->NNX bridge, ``nnx.jit``, ``nnx.Optimizer``): what the bridge costs, a column beside
  ``tl_jax`` like ``tl_jax_native``, not a peer. Steps through ``nnx.cached_partial`` (Flax's remedy
  for NNX's per-call Python overhead, measured by scripts/benchmark_nnx_overhead.py)."""
  from flax import nnx

  from tl_jax.train import nnx as tl_nnx

  cfg = tl_jax_config(case.model, case.size, case.mode, case.dtype)
  model = tl_nnx.create(case.model, CLASSES, pretrained=False, image_size=case.size, dropout_rate=0.0,
                        dtype=jnp.dtype(case.dtype), layer_impl="auto")
  groups = tl_nnx.param_groups(model, cfg.param_groups.to_dict())
  tl_nnx.set_bn(model, groups)
  opt = tl_nnx.optimizer(model, cfg.optim.to_dict(), groups, 100)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (case.batch, case.size, case.size, 3), dtype=np.uint8)),
           "label": jnp.asarray(rng.integers(0, CLASSES, (case.batch,), dtype=np.int32))}
  # nnx.cached_partial: the graph walk of model and optimizer once, not per call (docs/nnx.md).
  train = nnx.cached_partial(nnx.jit(functools.partial(tl_nnx.train_step, trainable=tl_nnx.trainable(groups)),
                                     donate_argnums=(0, 1)), model, opt)
  forward = nnx.cached_partial(nnx.jit(lambda m, x: m(x)[0]), model)
  return {"train_s": timed(lambda: train(batch)["loss"].block_until_ready(), case.repeats),
          "forward_s": timed(lambda: forward(batch["image"]).block_until_ready(), case.repeats)}


FRAMEWORKS = {
    "tl_jax": bench_tl_jax,
    "tl_jax_native": bench_tl_jax_native,
    "tl_jax_nnx": bench_tl_jax_nnx,
    "keras": bench_keras,
    "torch": functools.partial(bench_torch, channels_last=False),
    "torch_cl": functools.partial(bench_torch, channels_last=True),
    "torch_compile": functools.partial(bench_torch, channels_last=True, compile=True),
}
DEFAULT_FRAMEWORKS = ("tl_jax", "keras", "torch", "torch_cl")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="resnet50,vgg16,efficientnet_lite0,efficientnet_b0,convnext_tiny")
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--modes", default="frozen,full")
  parser.add_argument("--frameworks", default=",".join(DEFAULT_FRAMEWORKS),
                      help=f"comma-separated, from {','.join(FRAMEWORKS)}")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
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

  peak = matmul_peak(args.dtype)
  env = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
         "jax_devices": [str(d) for d in jax.devices()], "torch_device": torch.cuda.get_device_name()
         if torch.cuda.is_available() else "cpu", "dtype": args.dtype,
         "torch_threads": torch.get_num_threads(), "jax": jax.__version__, "torch": torch.__version__,
         "loadavg_start": os.getloadavg(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
  try:  # optional: only the keras peer needs it (a GPU machine may lack it)
    import keras

    env["keras"] = keras.__version__
  except ImportError:
    env["keras"] = None
  print(f"{args.dtype} matmul peak: {peak['peak']:.0f} GFLOP/s ({', '.join(f'{k} {v:.0f}' for k, v in peak.items() if k != 'peak')});"
        f" load {env['loadavg_start'][0]:.1f}")
  rows = []
  header = f"{'model':<20}{'size':>5} {'mode':<7}{'what':<8}" + "".join(f"{f:>10}" for f in frameworks)
  header += f"{'vs best peer':>14}{'of peak':>9}"
  print(header)
  for model in args.models.split(","):
    for size in map(int, args.sizes.split(",")):
      for mode in args.modes.split(","):
        result = {}
        case = Case(model, size, mode, args.batch, args.dtype, args.repeats)
        for fw in frameworks:
          if mode == "full_aug" and fw != "tl_jax":
            result[fw] = {"skipped": "full_aug is timed for tl_jax only"}
            continue
          try:
            result[fw] = FRAMEWORKS[fw](case)
          except NotImplementedError as e:
            result[fw] = {"skipped": str(e)}
        flops = result["tl_jax"]["forward_flops_per_image"]
        for what, mult in (("train", 1 if mode == "frozen" else 3), ("forward", 1)):
          ips = {fw: args.batch / r[f"{what}_s"] for fw, r in result.items() if f"{what}_s" in r}
          peers = [v for fw, v in ips.items() if not fw.startswith("tl_jax")]
          ratio = ips["tl_jax"] / max(peers) if peers else float("nan")
          frac = ips["tl_jax"] * flops * mult / (peak["peak"] * 1e9)
          rows.append({"model": model, "size": size, "mode": mode, "what": what, "img_per_s": ips,
                       "ratio_to_best_peer": ratio, "fraction_of_peak": frac,
                       "model_gflop_per_image": flops * mult / 1e9, "loadavg": os.getloadavg()[0]})
          cells = "".join(f"{ips[fw]:>10.2f}" if fw in ips else f"{'n/a':>10}" for fw in frameworks)
          print(f"{model:<20}{size:>5} {mode:<7}{what:<8}{cells}{ratio:>14.2f}{frac:>9.1%}", flush=True)
        if mode == "full_aug":
          r = result["tl_jax"]
          rows[-1] |= {k: r[k] for k in ("plain_train_s", "augment_s", "train_s")}
          rows[-1]["augment_fraction"] = r["augment_s"] / r["train_s"]
          print(f"{'':<20}{'':>5} tl_jax RandAugment + mixup: {r['augment_s'] * 1e3:.0f} ms alone, "
                f"{r['augment_s'] / r['train_s']:.1%} of the augmented step ({r['train_s']:.3f} s; "
                f"plain step {r['plain_train_s']:.3f} s); load {os.getloadavg()[0]:.1f}")
        if mode == "frozen":
          r = result["tl_jax"]
          rows[-1]["frozen_train_over_forward"] = r["train_s"] / r["forward_s"]
          print(f"{'':<20}{'':>5} tl_jax frozen train step / forward = {r['train_s'] / r['forward_s']:.2f}")
        env["loadavg_end"] = os.getloadavg()
        with open(args.json, "w") as f:  # after every block: a long run interrupted keeps what it measured
          json.dump({"env": env, "matmul_gflops": peak, "batch": args.batch, "repeats": args.repeats, "rows": rows},
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
    if "augment_fraction" in r:
      timed += f" (augment {r['augment_fraction']:.1%} of the step)"
    cells = [f"{r['img_per_s'][fw]:.1f}" if fw in r["img_per_s"] else "n/a" for fw in frameworks]
    lines.append(f"| {r['model']} | {r['size']} | {r['mode']} | {timed} | " + " | ".join(cells)
                 + f" | {r['ratio_to_best_peer']:.2f} | {r['fraction_of_peak']:.1%} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
