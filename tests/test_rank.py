"""scripts/rank.py end to end on digits at 32 px (Lite0's ImageNet weights, installed as a package)."""

import csv
import os
import subprocess
import sys

import numpy as np

from tl_jax.studies import probe_sweep, rank

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_rank_command_scores_every_cut_point_and_names_the_top(tmp_path):
  out = subprocess.run(
      [sys.executable, "scripts/rank.py", "--data", "digits", "--models", "efficientnet_lite0", "--stages",
       "--image_size", "32", "--per_class", "8", "--workdir", str(tmp_path)],
      cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
  assert out.returncode == 0, out.stderr[-3000:]
  assert "Top choice by logme: efficientnet_lite0 at cut point" in out.stdout
  for f in ("rank.csv", "rank.md", "rank.png"):
    assert os.path.getsize(tmp_path / f) > 0
  with open(tmp_path / "rank.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["cut_point"] for r in rows] == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["pre_logits"]
  assert all(r["images"] == "80" for r in rows)
  for r in rows:
    for s in ("logme", "h_score", "regularized_h_score", "transrate"):
      assert np.isfinite(float(r[s]))
    # LEEP and NCE come from the ImageNet head, which reads pre_logits only.
    assert (r["leep"] != "") == (r["cut_point"] == "pre_logits")
  assert -np.log(10) <= float(rows[-1]["leep"]) <= 0


def test_library_call_matches_scores_of_the_features_it_extracted():
  split = rank.load_images("digits", 32, per_class=5)
  feats, probs = rank.model_outputs("efficientnet_lite0", split, 32)
  assert list(feats) == ["pre_logits"] and probs.shape == (50, 1000)
  np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
  # The same pre_logits as the probe's extraction (backbone without its head).
  apply_fn, variables = probe_sweep.backbone_variables("efficientnet_lite0", 32)
  from tl_jax.train import feature_cache
  probe = feature_cache.pooled_features(apply_fn, variables, split, 64, ("pre_logits",))
  np.testing.assert_allclose(feats["pre_logits"], probe["pre_logits"], rtol=1e-5, atol=1e-5)
  rows = rank.score_model(feats, split.labels, probs)
  assert rank.top(rows)["cut_point"] == "pre_logits" and "leep" in rows[0]


def test_rank_scores_a_runs_checkpoint_with_its_own_head(digits_run, tmp_path):
  workdir = digits_run[0]
  rows = rank.rank("digits", [], checkpoints=[workdir], workdir=str(tmp_path), stages=True, per_class=5)
  assert {r["model"] for r in rows} == {workdir} and rows[-1]["cut_point"] == "pre_logits"
  # The run's head was trained on digits (5 epochs at 32 px: -1.88 measured): its predictions beat
  # an uninformative head, whose LEEP is log 1/10 on balanced classes.
  assert rows[-1]["leep"] > np.log(0.1) + 0.2
  assert os.path.exists(tmp_path / "rank.md")
