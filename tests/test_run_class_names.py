"""A run's class list is stored with it: a run that left out an empty class folder restores.

With ``data.on_error="skip"`` the folder source drops an empty class folder (3
classes, a 3-way head); rescanning the folder (``data.class_names``) keeps it
(4). The run writes the classes it trained on to ``class_names.json`` and every
reader of a run (restore, evaluate, predict, scripts/evaluate.py) takes them
from there; a run without the file (older runs) falls back to the rescan.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tiny

from tl_jax import data
from tl_jax.evaluate import evaluation, predict
from tl_jax.train import trainer, workdir as workdir_lib

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

CLASSES = ["ant", "bee", "cat"]  # "bug" (empty) sorts between them: the labels renumber


def write_folder(root, per_class: int = 24) -> None:
  rng = np.random.default_rng(0)
  for c, name in enumerate(CLASSES):
    os.makedirs(root / name)
    for i in range(per_class):  # one colour per class, with noise: learnable in a few steps
      base = np.zeros((16, 16, 3)) + 80 * np.eye(3)[c] * 2
      image = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
      Image.fromarray(image).save(root / name / f"{i}.png")
  os.makedirs(root / "bug")  # an empty class folder


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("skipped_class")
  write_folder(tmp / "photos")
  cfg = tiny.config(str(tmp / "photos"), **{
      "data.name": "folder", "data.on_error": "skip", "data.cache_dir": str(tmp / "cache"),
      "train.batch_size": 16, "train.eval_batch_size": 16, "train.num_epochs": 2,
      "train.compilation_cache_dir": ""})
  workdir = str(tmp / "run")
  summary = trainer.train_and_evaluate(cfg, workdir)
  return workdir, tmp / "photos", summary


def test_the_bug_a_rescan_keeps_the_empty_class(skipped_run):
  workdir, photos, _ = skipped_run
  config = workdir_lib.load_config(workdir)
  assert data.class_names(config.data) == ["ant", "bee", "bug", "cat"]
  assert data.load(config.data).class_names == CLASSES


def test_run_stores_its_classes(skipped_run):
  workdir, _, _ = skipped_run
  assert json.load(open(os.path.join(workdir, "class_names.json"))) == CLASSES
  assert workdir_lib.read_class_names(workdir) == CLASSES
  # A rerun of the same workdir with other classes is an error naming them, before any step.
  with pytest.raises(ValueError, match=r"(?s)trained on 3 classes.*\['ant', 'bee', 'cat'\].*'bug'"):
    workdir_lib.check_class_names(workdir, ["ant", "bee", "bug", "cat"])
  workdir_lib.check_class_names(workdir, CLASSES)  # the same: fine


def test_restore_evaluate_and_predict_a_run_that_skipped_a_class(skipped_run):
  workdir, photos, summary = skipped_run
  run = evaluation.restore(workdir)
  assert run.class_names == CLASSES and run.state.params["head"]["kernel"].shape[-1] == 3
  r = evaluation.evaluate_checkpoint(workdir, "best", "test")
  assert r["accuracy"] == pytest.approx(summary["best_test_accuracy"])
  assert [c["name"] for c in r["per_class"]] == CLASSES
  r = evaluation.evaluate(workdir, f"folder:{photos}")  # its own folder, empty class skipped again
  assert [c["name"] for c in r["per_class"]] == CLASSES and r["num_examples"] == 72
  predictor = predict.from_workdir(workdir)
  assert predictor.class_names == CLASSES
  results = predict.predict(predictor, predict.list_images([str(photos / "bee")]), top_k=3)
  assert len(results) == 24 and {t["class"] for t in results[0]["top_k"]} == set(CLASSES)


def test_evaluate_script_with_data(skipped_run):
  workdir, photos, _ = skipped_run
  out = subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={workdir}", f"--data=folder:{photos}"],
                       cwd=tiny.ROOT, env=tiny.env(), capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "(72 examples)" in out.stdout and all(f"  {c}  " in out.stdout for c in CLASSES)


def test_a_run_without_the_file_falls_back_to_the_rescan(skipped_run, tmp_path):
  # An older run: no class_names.json. Its classes come from rescanning the data, as before;
  # with the empty folder gone the rescan gives the trained 3.
  workdir, photos, _ = skipped_run
  old = str(tmp_path / "old_run")
  shutil.copytree(workdir, old)
  os.remove(os.path.join(old, "class_names.json"))
  assert workdir_lib.read_class_names(old) is None
  shutil.copytree(photos, tmp_path / "photos", ignore=shutil.ignore_patterns("bug"))
  config = workdir_lib.load_config(old)
  config.data.path = str(tmp_path / "photos")
  with open(os.path.join(old, "config.json"), "w") as f:
    f.write(config.to_json())
  assert evaluation.restore(old).class_names == CLASSES
