"""A run's checkpoint evaluated on folder:, npz: and tfds: data, classes mapped by name."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from tl_jax import data
from tl_jax.evaluate import evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Data label j is the run's class PERM[j]: the data lists the digits in another order.
PERM = np.array([3, 1, 4, 0, 5, 9, 2, 6, 8, 7])


@pytest.fixture(scope="module")
def test_split(digits_run):
  workdir, cfg, _ = digits_run
  ds = data.load(cfg.data)
  return ds.splits["test"], ds.class_names


def write_folder(root, images, labels, names):
  for i, (image, label) in enumerate(zip(images, labels)):
    os.makedirs(os.path.join(root, names[label]), exist_ok=True)
    Image.fromarray(np.asarray(image)).save(os.path.join(root, names[label], f"{i}.png"))


def test_npz_in_another_class_order_equals_the_runs_test_split(digits_run, test_split, tmp_path):
  workdir, _, summary = digits_run
  split, names = test_split
  np.savez(tmp_path / "shuffled.npz", x=np.asarray(split.images), y=np.argsort(PERM)[split.labels],
           label_names=np.array([names[p] for p in PERM]))
  r = evaluation.evaluate(workdir, f"npz:{tmp_path / 'shuffled.npz'}")
  ref = evaluation.evaluate_checkpoint(workdir, "best", "test")
  assert r["accuracy"] == pytest.approx(summary["best_test_accuracy"]) and r["accuracy"] > 0.5
  step = summary["best_step"]
  assert r["report_path"] == os.path.join(workdir, "eval", f"shuffled_step{step}", "report.json")
  saved = json.load(open(r["report_path"]))
  # Confusion matrix in the run's class order, cell for cell the run's own.
  assert saved["confusion_matrix"] == json.load(open(ref["report_path"]))["confusion_matrix"]
  assert [c["name"] for c in saved["per_class"]] == names
  assert os.path.getsize(os.path.join(os.path.dirname(r["report_path"]), "confusion_matrix.png")) > 0


def test_folder_resized_like_the_run_and_mismatched_classes(digits_run, test_split, tmp_path):
  workdir, cfg, _ = digits_run
  split, names = test_split
  keep = np.concatenate([np.flatnonzero(split.labels == c)[:4] for c in range(10)])
  # 2x larger images: the folder is resized to the run's 32 px on load.
  big = np.repeat(np.repeat(np.asarray(split.images)[keep], 2, axis=1), 2, axis=2)
  write_folder(tmp_path / "digits_big", big, split.labels[keep], names)
  r = evaluation.evaluate(workdir, f"folder:{tmp_path / 'digits_big'}", "latest")
  assert r["num_examples"] == 40 and r["split"] == "digits_big"
  loaded = evaluation.load_data(f"folder:{tmp_path / 'digits_big'}", cfg.data)
  assert loaded.split.images.shape[1:] == (32, 32, 3)
  assert os.path.isdir(os.path.join(workdir, "eval", f"digits_big_step{r['step']}"))
  # Confusion rows: the true labels, counted per run class.
  assert np.array(json.load(open(r["report_path"]))["confusion_matrix"]).sum(1).tolist() == [4] * 10
  # One class renamed: the error names both sides.
  other = [n if n != "9" else "nine" for n in names]
  write_folder(tmp_path / "renamed", big, split.labels[keep], other)
  with pytest.raises(ValueError, match=r"(?s)in the run, not in the data: \['9'\].*in the data, not in the run: "
                                       r"\['nine'\]"):
    evaluation.evaluate(workdir, f"folder:{tmp_path / 'renamed'}")
  for bad in ("folder", "csv:x", "tfds:mnist", "npz:"):
    with pytest.raises(ValueError, match="expected folder:PATH, npz:PATH or tfds:NAME:SPLIT"):
      evaluation.parse_spec(bad)


def test_tfds_split_and_the_script(digits_run, tmp_path):
  workdir, _, _ = digits_run
  assert evaluation.parse_spec("tfds:mnist:test[:50%]") == ("tfds", ["mnist", "test[:50%]"])
  # TFDS's mock MNIST: random images, labels "0".."9" like the run's.
  with tfds.testing.mock_data(num_examples=12):
    source = tfds.data_source("mnist", split="test")
    labels = np.array([source[i]["label"] for i in range(len(source))])
    r = evaluation.evaluate(workdir, "tfds:mnist:test")
  assert r["num_examples"] == 12 and r["split"] == "mnist_test"
  confusion = np.array(json.load(open(r["report_path"]))["confusion_matrix"])
  assert confusion.sum(1).tolist() == np.bincount(labels, minlength=10).tolist()
  # The script: --data goes to the same function; without --data, today's behaviour.
  x = np.full((6, 20, 20, 3), 255, np.uint8)
  np.savez(tmp_path / "blank.npz", x=x, y=np.arange(6) % 3, label_names=np.array(["0", "1", "2"]))
  proc = subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={workdir}",
                         f"--data=npz:{tmp_path / 'blank.npz'}"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                        capture_output=True, text=True)
  assert proc.returncode != 0 and "in the run, not in the data: ['3', '4'" in proc.stderr
