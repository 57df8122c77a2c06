"""A pytest plugin: per test, the seconds JAX spent tracing, lowering and compiling (XLA backend).

  PYTHONPATH=.:scripts python -m pytest -m "not slow" -n 2 -p compile_profile_plugin
  python scripts/compile_profile_plugin.py        # totals; by file; compiled functions; slowest tests

Each process (xdist worker) writes ``$TL_JAX_COMPILE_PROFILE_DIR/rows_<worker>.json``
(default ``/tmp/tl_jax_compile_profile``): ``{"node", "wall", <JAX duration event>: seconds}``
per test, and ``"fn:<name>"``: the compile seconds of each jitted function by name. Eager ``jnp``
and ``jax.random`` calls show as their own small names (``add``, ``_normal``, ``_uniform``): each
compiles once per shape, which is how this found ~300 s of the default run in per-op compiles.
Compilations inside subprocesses the tests start are not seen.
"""

import collections
import glob
import json
import os
import sys
import time

import pytest

DIR = os.environ.get("TL_JAX_COMPILE_PROFILE_DIR", "/tmp/tl_jax_compile_profile")
EVENTS = {"/jax/core/compile/backend_compile_duration": "compile",
          "/jax/core/compile/jaxpr_trace_duration": "trace",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower"}
_now: collections.Counter = collections.Counter()
_rows: list[dict] = []


def _listener(event: str, duration: float, **kwargs) -> None:
  if event in EVENTS:
    _now[EVENTS[event]] += duration
    if EVENTS[event] == "compile" and "fun_name" in kwargs:
      _now["fn:" + str(kwargs["fun_name"])] += duration


def pytest_configure(config):
  from jax import monitoring

  monitoring.register_event_duration_secs_listener(_listener)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  _now.clear()
  start = time.perf_counter()
  yield
  _rows.append({"node": item.nodeid, "wall": time.perf_counter() - start, **_now})


def pytest_unconfigure(config):
  os.makedirs(DIR, exist_ok=True)
  with open(os.path.join(DIR, f"rows_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"), "w") as f:
    json.dump(_rows, f)


if __name__ == "__main__":
  rows = [r for path in glob.glob(os.path.join(sys.argv[1] if len(sys.argv) > 1 else DIR, "rows_*.json"))
          for r in json.load(open(path))]
  total = {k: sum(r.get(k, 0) for r in rows) for k in ("wall", *EVENTS.values())}
  print(f"{len(rows)} tests: " + ", ".join(f"{k} {v:.0f} s" for k, v in total.items()))
  files, functions = collections.Counter(), collections.Counter()
  for r in rows:
    files[r["node"].split("::")[0]] += r["wall"]
    functions.update({k[3:]: v for k, v in r.items() if k.startswith("fn:")})
  print("\nby file (wall s):\n" + "\n".join(f"{v:7.0f}  {k}" for k, v in files.most_common(25)))
  print("\ncompiled functions (compile s):\n" + "\n".join(f"{v:7.1f}  {k}" for k, v in functions.most_common(25)))
  print("\nslowest tests:")
  for r in sorted(rows, key=lambda r: -r["wall"])[:40]:
    print(f"{r['wall']:7.1f} s  compile {r.get('compile', 0):6.1f}  trace {r.get('trace', 0):5.1f}  {r['node']}")
