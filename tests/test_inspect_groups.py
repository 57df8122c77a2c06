"""The parameter-group table against ParamGroups and the optimizer it builds."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax import partition
from tl_jax.freezing import inspect_groups, optim, strategies
from tl_jax.freezing.plan import Plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_config(quickstart_config):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.param_groups = dict(
      rules=(("head/.*", "head"), ("backbone/(stage7|top)/.*", "top"), ("backbone/stem/.*", "frozen"),
             (".*", "backbone")),
      top=dict(lr_mult=0.5, bn="batch"), backbone=dict(lr_mult=0.1), frozen=dict(bn="train_affine"),
      layer_decay=0.8)
  return cfg


def test_table_matches_param_groups_and_optimizer(quickstart_config):
  cfg = toy_config(quickstart_config)
  table = inspect_groups.inspect(cfg, num_classes=7)
  by_path = {r.path: r for r in table}
  variables = inspect_groups.abstract_variables(cfg, 7)
  params = variables["params"]
  groups = optim.ParamGroups.from_config(params, cfg.param_groups)
  assert set(by_path) == set(partition.flatten(params)) and len(table) == len(by_path)
  assert table[0].path.startswith("backbone/stem/") and table[-1].path.startswith("head/")  # input to head
  assert {p: r.group for p, r in by_path.items()} == groups.labels
  assert by_path["head/kernel"].shape == (1280, 7)
  # Hand-computed: depth counts units from the head (top 1, stage7 2, ..., stem 9).
  expected = {
      "head/kernel": ("head", True, 1.0, "-"),
      "backbone/top/conv/kernel": ("top", True, 0.5 * 0.8, "-"),
      "backbone/top/bn/scale": ("top", True, 0.5 * 0.8, "batch"),
      "backbone/stage7/block1/expand_bn/bias": ("top", True, 0.5 * 0.8 ** 2, "batch"),
      "backbone/stage3/block1/project_conv/kernel": ("backbone", True, 0.1 * 0.8 ** 6, "-"),
      "backbone/stage3/block1/project_bn/scale": ("backbone", True, 0.1 * 0.8 ** 6, "batch"),
      "backbone/stem/conv/kernel": ("frozen", False, 0.0, "-"),
      # train_affine: the frozen stem's BatchNorm keeps running statistics, trains scale and bias.
      "backbone/stem/bn/scale": ("frozen_affine", True, 1.0 * 0.8 ** 9, "train_affine"),
  }
  for path, (group, trainable, lr, bn) in expected.items():
    r = by_path[path]
    assert (r.group, r.trainable, r.bn) == (group, trainable, bn), path
    assert r.lr_mult == pytest.approx(lr, rel=1e-6), path
  # BatchNorm modes: exactly the layers the trainer freezes use running statistics.
  running = {r.path.rsplit("/", 1)[0] for r in table if r.bn in ("running", "train_affine")}
  assert running == groups.frozen_bn(variables["batch_stats"])
  # The lr column is what the optimizer applies: SGD with lr 1 on gradients of ones.
  tx = optim.make_optimizer(dict(name="sgd", lr=1.0, schedule="constant"), groups, 10)
  step = jax.jit(lambda p: tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p), p)[0])
  updates = step(jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), params))
  for path, u in partition.flatten(jax.device_get(updates)).items():
    np.testing.assert_allclose(u, -by_path[path].lr_mult, rtol=1e-6, err_msg=path)
  totals = inspect_groups.totals(table)
  assert totals["frozen"]["size"] == 864 and not totals["frozen"]["trainable"]  # the stem conv
  assert totals["frozen_affine"]["bn_layers"] == {"train_affine": 1}
  assert sum(t["size"] for t in totals.values()) == partition.count(params)
  text = inspect_groups.format_table(table)
  assert "backbone/stem/bn/scale" in text and f"{partition.count(params):,}" in text


def test_phases_and_bad_phase(quickstart_config, tmp_path):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.param_groups = dict(preset=dict(name="linear_probe"), backbone=dict(lr_mult=0.1, bn="running"))
  cfg.phases = ((0, {}), (100, dict(preset=dict(name="full"))))
  first, second = inspect_groups.inspect(cfg, 0), inspect_groups.inspect(cfg, 1)
  assert {r.group for r in first} == {"head", "frozen"}
  assert {r.group for r in second} == {"head", "backbone"}
  lr = {r.path: r.lr_mult for r in second}
  assert lr["backbone/stage4/block1/expand_conv/kernel"] == pytest.approx(0.1) and lr["head/bias"] == 1.0
  with pytest.raises(ValueError, match="has 2 phase"):
    inspect_groups.inspect(cfg, 2)
  # What a run writes at its start: every phase's table.
  variables = inspect_groups.abstract_variables(cfg, 10)
  path = inspect_groups.write(str(tmp_path), Plan.from_config(cfg, variables), variables["params"])
  text = open(path).read()
  assert "phase 0 (from step 0)" in text and "phase 1 (from step 100)" in text
  saved = json.load(open(tmp_path / "param_groups.json"))
  assert [p["start_step"] for p in saved] == [0, 100]
  assert [r["group"] for r in saved[1]["rows"]] == [r.group for r in second]


def test_script_json_and_the_runs_own_table(digits_run, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "scripts/inspect_groups.py", "--config", "configs/quickstart.py", "--json"],
                       cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
  report = json.loads(out)
  assert len(report["rows"]) == 149 and report["totals"]["head"]["size"] == 1280 * 10 + 10
  assert report["totals"]["backbone"]["lr_min"] == pytest.approx(0.1)
  # The run wrote the table the inspector prints for its config.
  workdir, cfg, _ = digits_run
  with open(os.path.join(workdir, "param_groups.txt")) as f:
    written = f.read()
  assert written == inspect_groups.format_table(inspect_groups.inspect(cfg, 0, 10)) + "\n"
  saved = json.load(open(os.path.join(workdir, "param_groups.json")))
  assert saved[0]["totals"]["frozen"]["trainable"] is False and strategies.phases(cfg) == [(0, {})]
