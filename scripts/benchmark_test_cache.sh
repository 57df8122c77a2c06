#!/bin/bash
# A/B of test-session settings on the test files that train the tiny config in-process. Each arm is
# one environment assignment; by default the shared JAX compilation cache (tests/conftest.py,
# TL_JAX_TEST_JAX_CACHE) off, then on; e.g. ARMS="TL_JAX_TEST_JAX_CACHE=0 TL_JAX_TEST_JAX_CACHE=1
# TL_JAX_TEST_JAX_CACHE=0 TL_JAX_TEST_JAX_CACHE=1" to repeat, or ARMS="XLA_FLAGS= XLA_FLAGS=--flag=value"
# to time an XLA flag (in-process tests; some subprocess tests set their own). The user's ~/.cache/tl_jax/jax_cache (the quickstart config's, used by
# the CLI tests' subprocesses) is emptied before each arm. Run alone: it times the whole machine.
#   bash scripts/benchmark_test_cache.sh        (from the repository root; ~15 min on 2 cores)
set -u
FILES="tests/test_soups.py tests/test_averaging.py tests/test_wise_ft.py tests/test_folds.py
       tests/test_run_class_names.py tests/test_evaluate_default_weights.py tests/test_num_steps.py
       tests/test_export.py tests/test_calibration.py tests/test_tta.py tests/test_guard.py tests/test_cadence.py"
for arm in ${ARMS:-TL_JAX_TEST_JAX_CACHE=0 TL_JAX_TEST_JAX_CACHE=1}; do
  rm -rf ~/.cache/tl_jax/jax_cache
  log=$(mktemp)
  start=$(date +%s)
  env "$arm" python -m pytest -m "not slow" -n 2 -q -p no:cacheprovider $FILES > "$log" 2>&1
  echo "$arm: $(( $(date +%s) - start )) s; $(tail -1 "$log"); load $(cut -d' ' -f1 /proc/loadavg)"
done
