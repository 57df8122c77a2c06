r"""The two Python steps of ``scripts/accelerator_check.sh``.

  python scripts/accelerator_report.py profile OUTDIR PROFILE_DIR STEPS
  python scripts/accelerator_report.py summary OUTDIR FINETUNE_WORKDIR [COMPILE_JSON]

``profile``: a ``jax.profiler`` trace of STEPS train steps of the slowest
tl_jax train row of ``OUTDIR/benchmark.json`` (lowest images/s).
``summary``: ``OUTDIR/summary.json`` and a markdown table from
``benchmark.json`` (``scripts/benchmark.py``), the fine-tune's
``summary.json``/``metrics.jsonl`` and ``tests.log``'s pytest result line; it
adds the fraction of the device's nominal dense bfloat16 peak
(``PEAK_BF16_TFLOPS``, by device name) beside the measured-matmul fraction
``benchmark.py`` reports.
"""

import json
import os
import re
import sys

# Nominal dense (no sparsity) bfloat16 tensor TFLOP/s, matched by substring of the device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0,
    "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0, "TPU v4": 275.0,
    "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5p": 459.0, "TPU v6": 918.0,
}


def nominal_peak(device_name: str) -> float | None:
  """TFLOP/s of the longest ``PEAK_BF16_TFLOPS`` key contained in ``device_name`` (None: unknown)."""
  hits = [k for k in PEAK_BF16_TFLOPS if k.lower() in device_name.lower()]
  return PEAK_BF16_TFLOPS[max(hits, key=len)] if hits else None


def _read(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f) if path.endswith(".json") else f.read()


def profile(outdir: str, profile_dir: str, steps: int) -> None:
  import functools

  import jax
  import numpy as np

  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import benchmark

  from tl_jax.train import steps as steps_lib, trainer

  bench = _read(os.path.join(outdir, "benchmark.json"))
  if not bench:
    sys.exit("no benchmark.json (the benchmark step failed or timed out: see benchmark.log): nothing to profile")
  rows = [r for r in bench["rows"] if r["what"] == "train"]
  slowest = min(rows, key=lambda r: r["img_per_s"]["tl_jax"])
  print(f"profiling {slowest['model']} {slowest['size']} px {slowest['mode']} "
        f"({slowest['img_per_s']['tl_jax']:.1f} img/s) into {profile_dir}")
  config = benchmark.tl_jax_config(slowest["model"], slowest["size"], slowest["mode"], bench["env"]["dtype"])
  state, _ = trainer.create_state(config, benchmark.CLASSES, 100, pretrained=False)
  rng = np.random.default_rng(0)
  n = bench["batch"]
  batch = {"image": jax.numpy.asarray(rng.integers(0, 256, (n, slowest["size"], slowest["size"], 3), np.uint8)),
           "label": jax.numpy.asarray(rng.integers(0, benchmark.CLASSES, (n,), np.int32))}
  step = jax.jit(functools.partial(steps_lib.train_step, loss_fn=steps_lib.cross_entropy), donate_argnums=0)
  for _ in range(2):  # compile and warm up outside the trace
    state, m = step(state, batch, jax.random.key(0))
  jax.block_until_ready(m)
  with jax.profiler.trace(profile_dir):
    for _ in range(steps):
      state, m = step(state, batch, jax.random.key(0))
    jax.block_until_ready(m)


def main(outdir: str, finetune_dir: str = "", compile_json: str = "") -> dict:
  bench = _read(os.path.join(outdir, "benchmark.json")) or {"rows": [], "env": {}}
  extra = _read(compile_json) if compile_json else None
  for r in (extra or {}).get("rows", []):  # the torch.compile peer's rows join the matching ones
    for row in bench["rows"]:
      if all(row[k] == r[k] for k in ("model", "size", "mode", "what")):
        row["img_per_s"].update({k: v for k, v in r["img_per_s"].items() if k != "tl_jax"})
  env = bench.get("env", {})
  device = env.get("torch_device") if env.get("torch_device", "cpu") != "cpu" else " ".join(env.get("jax_devices", []))
  peak = nominal_peak(device or "")
  rows = []
  for r in bench["rows"]:
    ips = r["img_per_s"]
    tflops = {fw: v * r["model_gflop_per_image"] / 1e3 for fw, v in ips.items()}
    rows.append({**{k: r[k] for k in ("model", "size", "mode", "what")}, "img_per_s": ips, "tflops": tflops,
                 "of_nominal_bf16_peak": {fw: t / peak for fw, t in tflops.items()} if peak else None,
                 "of_measured_matmul_peak": r["fraction_of_peak"]})
  tests = _read(os.path.join(outdir, "tests.log")) or ""
  result = re.findall(r"^=* ?(\d+ (?:passed|failed|error).*?) in [\d.]+s", tests, re.M)
  finetune = _read(os.path.join(finetune_dir, "summary.json")) if finetune_dir else None
  metrics = _read(os.path.join(finetune_dir, "metrics.jsonl")) if finetune_dir else None
  log = _read(os.path.join(outdir, "finetune.log")) or ""
  wall = re.findall(r"finetune exit \d+ wall (\d+) s", log)
  if finetune is not None and wall:
    finetune["wall_s"] = int(wall[-1])
  summary = {"device": device, "nominal_bf16_peak_tflops": peak, "tests": result[-1] if result else "not run",
             "benchmark": rows, "matmul_gflops": bench.get("matmul_gflops"), "env": env,
             "finetune": finetune, "finetune_epochs": [json.loads(line) for line in (metrics or "").splitlines()]}
  with open(os.path.join(outdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  fws = sorted({fw for r in rows for fw in r["img_per_s"]}, key=lambda f: (f != "tl_jax", f))
  print(f"device: {device}; nominal bf16 peak: {peak} TFLOP/s; tests: {summary['tests']}")
  print("| model | px | mode | timed | " + " | ".join(f"{fw} img/s (of peak)" for fw in fws) + " |")
  print("|---|---|---|---|" + "---:|" * len(fws))
  for r in rows:
    cells = [f"{r['img_per_s'][fw]:.0f} ({r['of_nominal_bf16_peak'][fw]:.1%})" if fw in r["img_per_s"] and peak
             else (f"{r['img_per_s'][fw]:.1f}" if fw in r["img_per_s"] else "n/a") for fw in fws]
    print(f"| {r['model']} | {r['size']} | {r['mode']} | {r['what']} | " + " | ".join(cells) + " |")
  if finetune:
    print(f"fine-tune: test accuracy {finetune.get('final_test_accuracy')}, "
          f"train time {finetune.get('train_time_s')} s, wall {finetune.get('wall_s')} s")
  return summary


if __name__ == "__main__":
  if sys.argv[1] == "profile":
    profile(sys.argv[2], sys.argv[3], int(sys.argv[4]))
  else:
    main(*sys.argv[2:])
