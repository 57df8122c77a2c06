#!/usr/bin/env bash
# One-command GPU check of tl_jax: native-path parity + core tests on the GPU, bf16 benchmarks
# beside torch, a short real fine-tune, one profile. Writes JSON and logs into OUTDIR (<= 8 files,
# so a device tool's $OUT brings them all back); sized for < 8 min on an H200.
#
#   scripts/accelerator_check.sh OUTDIR            # on the GPU machine (no network needed)
#   scripts/accelerator_check.sh --cpu OUTDIR      # here: the same steps end to end with tiny settings
#   scripts/accelerator_check.sh --prepare         # here, once, with network: fills the git-ignored .accel/
#
# What travels (the device machine has JAX+CUDA, flax, optax, orbax, torch; nothing is fetched there):
#   .accel/data/cifar10_subset_train.npz   the fine-tune data; --prepare copies it from $TL_JAX_CIFAR_NPZ
#                                          (default ../shared/data/cifar10_subset_train.npz), or set
#                                          TL_JAX_CIFAR_NPZ on the machine itself
#   .accel/whl/*.whl                       packages the GPU image lacks, derived from tl_jax's own
#                                          dependencies minus the image's list (scripts/accelerator_prepare.py,
#                                          which also runs this check in a venv holding only the image's
#                                          packages: --simulate); installed into /tmp/site when present
# With the device tool: run(command="scripts/accelerator_check.sh $OUT", carry=[".accel"], timeout_s=600).
#
# OUTDIR gets: env.txt, tests.log, benchmark.log, benchmark.json, finetune.log, input.log, profile.tar.gz,
# summary.json (everything above, with images/s and fraction of the bf16 peak; scripts/accelerator_report.py).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
case "${1:-}" in
  --cpu|--dry-run) MODE=cpu; shift ;;
  --prepare) MODE=prepare; shift ;;
esac
ACCEL=.accel
NPZ=${TL_JAX_CIFAR_NPZ:-$ACCEL/data/cifar10_subset_train.npz}

if [ "$MODE" = prepare ]; then  # the image's missing packages, derived from pyproject.toml; size checked
  exec python3 scripts/accelerator_prepare.py "$@"
fi

OUTDIR=${1:?usage: scripts/accelerator_check.sh [--cpu|--prepare] OUTDIR}
mkdir -p "$OUTDIR"; OUTDIR=$(cd "$OUTDIR" && pwd); : >"$OUTDIR/env.txt"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# One persistent compilation cache for every step: the profile's train step is the benchmark's.
export JAX_COMPILATION_CACHE_DIR=$WORK/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
# The carried wheels: on the GPU, or where a simulation of its image asks (TL_JAX_ACCEL_SITE).
SITE=${TL_JAX_ACCEL_SITE:-}
if [ -z "$SITE" ] && [ "$MODE" = gpu ] && ls $ACCEL/whl/*.whl >/dev/null 2>&1; then
  SITE=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE $ACCEL/whl/*.whl
fi
[ -n "$SITE" ] && export PYTHONPATH=$PYTHONPATH:$SITE
T0=$(date +%s)
step() { echo "== $(( $(date +%s) - T0 )) s: $*" | tee -a "$OUTDIR/env.txt"; }

if [ "$MODE" = gpu ]; then
  # Sized on an H200 (2026-12-04, BENCHMARKS.md "GPU: the first lent H200"): each parity test
  # compiles two whole-model gradients (~60 s there), a bench row ~40 s, torch.compile > 45 s.
  BENCH=(--models resnet50,efficientnet_lite0 --sizes 224 --modes frozen,full --batch 128 --repeats 5)
  FRAMEWORKS=tl_jax,torch_cl; COMPILE_MODELS=
  # Per-step limits (s): the whole check stays under 8 min even where a step hangs.
  T_TESTS=100 T_BENCH=190 T_COMPILE=0 T_FT=90 T_PROFILE=30 T_INPUT=40
  INPUT=(--stream --jpegs 128 --workers 4 --batch_size 128)
  FT=(--config.data.image_size=224 --config.train.batch_size=128 --config.train.num_epochs=2
      --config.data.test_fraction=0.2)  # 3,661 train / 407 val / 1,017 test images
  PROFILE_STEPS=5
else  # tiny settings: every step runs, in minutes on 2 CPU cores
  BENCH=(--models efficientnet_lite0 --sizes 32 --modes frozen --batch 4 --repeats 2)
  FRAMEWORKS=tl_jax,torch_cl; COMPILE_MODELS=
  T_TESTS=300 T_BENCH=600 T_COMPILE=0 T_FT=900 T_PROFILE=300 T_INPUT=600
  INPUT=(--stream --jpegs 8 --workers 1 --batch_size 2)
  FT=(--config.data.image_size=32 --config.train.batch_size=16 --config.train.num_epochs=1
      --config.data.test_fraction=0.95 --config.train.eval_batch_size=256)  # 228 train images
  PROFILE_STEPS=2
fi

step "environment ($MODE mode)"
{ nvidia-smi 2>&1 | head -15; python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__)"
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
  ls -la "$NPZ" 2>&1; } >>"$OUTDIR/env.txt" 2>&1

step "imports: everything the check runs"
if ! python3 -c "import tl_jax.train.trainer, tl_jax.models, tl_jax.weights, tl_jax.evaluate, tl_jax.data.pipeline" \
    >>"$OUTDIR/env.txt" 2>&1; then  # stop before spending the lease on steps that cannot run
  tail -3 "$OUTDIR/env.txt"; echo "imports failed: carry the missing package (scripts/accelerator_prepare.py)"; exit 1
fi

step "tests: native-vs-cpu_routed parity of every family + core tests, on this backend"
if [ "$MODE" = gpu ]; then
  TESTS=(tests/test_layer_impl.py::test_family_rule "tests/test_layer_impl.py::test_native_matches_cpu_routed[resnet18]"
         "tests/test_layer_impl.py::test_native_matches_cpu_routed[efficientnet_lite0]" tests/test_precision.py)
else
  TESTS=(tests/test_layer_impl.py::test_family_rule "tests/test_layer_impl.py::test_native_matches_cpu_routed[resnet18]")
fi
timeout $T_TESTS python3 -m pytest "${TESTS[@]}" -q -m "not slow" -p no:cacheprovider --tb=short >"$OUTDIR/tests.log" 2>&1
echo "tests exit $?" >>"$OUTDIR/env.txt"

step "benchmark: bfloat16, tl_jax beside torch channels_last AMP"
timeout $T_BENCH python3 scripts/benchmark.py "${BENCH[@]}" --dtype bfloat16 --frameworks $FRAMEWORKS --json "$OUTDIR/benchmark.json" \
  >"$OUTDIR/benchmark.log" 2>&1
echo "benchmark exit $?" >>"$OUTDIR/env.txt"
if [ -n "$COMPILE_MODELS" ] && [ $(( $(date +%s) - T0 )) -lt 270 ]; then  # torch.compile only where time allows
  step "benchmark: torch.compile peer ($COMPILE_MODELS)"
  timeout $T_COMPILE python3 scripts/benchmark.py --models $COMPILE_MODELS --sizes 224 --modes full --batch 128 --repeats 5 \
    --dtype bfloat16 --frameworks tl_jax,torch_compile --json "$WORK/benchmark_compile.json" >>"$OUTDIR/benchmark.log" 2>&1
fi

step "fine-tune: CIFAR-10 subset, bfloat16, ImageNet Lite0 weights"
if [ -f "$NPZ" ]; then
  START=$(date +%s)
  timeout $T_FT python3 scripts/train.py --config configs/quickstart.py --workdir "$WORK/finetune" --config.data.name=npz \
    --config.data.path="$NPZ" --config.model.dtype=bfloat16 \
    --config.train.compilation_cache_dir= "${FT[@]}" >"$OUTDIR/finetune.log" 2>&1
  echo "finetune exit $? wall $(( $(date +%s) - START )) s" | tee -a "$OUTDIR/env.txt" >>"$OUTDIR/finetune.log"
else
  echo "no data at $NPZ: run --prepare first (or set TL_JAX_CIFAR_NPZ)" | tee "$OUTDIR/finetune.log"
fi

step "input: streamed JPEG decode per worker beside the real 224 px train step on this device"
timeout $T_INPUT python3 scripts/benchmark_input.py "${INPUT[@]}" >"$OUTDIR/input.log" 2>&1
echo "input exit $?" >>"$OUTDIR/env.txt"

step "profile: the slowest tl_jax train row"
timeout $T_PROFILE python3 scripts/accelerator_report.py profile "$OUTDIR" "$WORK/profile" $PROFILE_STEPS >>"$OUTDIR/env.txt" 2>&1 \
  && tar -czf "$OUTDIR/profile.tar.gz" -C "$WORK" profile

step "summary"
python3 scripts/accelerator_report.py summary "$OUTDIR" "$WORK/finetune" "$WORK/benchmark_compile.json" \
  | tee -a "$OUTDIR/env.txt"
step "done"
