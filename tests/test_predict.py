"""Predictions on image files: the pretrained ImageNet classifier on real photos, a digits run."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from tl_jax import data
from tl_jax.evaluate import evaluation, predict

skdata = pytest.importorskip("skimage.data")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_imagenet_class_names_ship_with_the_package():
  classes = predict.imagenet_classes()
  assert len({s for s, _ in classes}) == 1000
  assert classes[281] == ("n02123045", "tabby, tabby cat") and classes[967][1] == "espresso"
  assert predict.imagenet_class_names()[285] == "Egyptian cat"


def test_pretrained_lite0_names_a_cat_and_an_espresso(tmp_path):
  """Through the script: a folder searched recursively, a JPEG and a PNG, JSON output."""
  (tmp_path / "photos" / "sub").mkdir(parents=True)
  Image.fromarray(skdata.chelsea()).save(tmp_path / "photos" / "chelsea.jpg", quality=95)
  Image.fromarray(skdata.coffee()).save(tmp_path / "photos" / "sub" / "coffee.png")
  (tmp_path / "photos" / "notes.txt").write_text("not an image")
  (tmp_path / "photos" / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(64))  # one bad file
  out = tmp_path / "pred.json"
  proc = subprocess.run([sys.executable, "scripts/predict.py", "--model=efficientnet_lite0", "--top_k=3",
                         f"--output={out}", str(tmp_path / "photos")], cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, check=True)
  results = {os.path.basename(r["path"]): r["top_k"] for r in json.load(open(out))}
  assert sorted(results) == ["broken.jpg", "chelsea.jpg", "coffee.png"] and results.pop("broken.jpg") == []
  # The others are predicted; the unreadable file is listed at the end, and the run succeeds.
  assert "1 file(s) could not be read" in proc.stdout and "broken.jpg cannot be decoded" in proc.stdout
  cat = results["chelsea.jpg"][0]
  assert cat["index"] in range(281, 286) and "cat" in cat["class"], results  # ImageNet's domestic cats
  assert results["coffee.png"][0]["class"] == "espresso"
  for top in results.values():
    probs = [t["probability"] for t in top]
    assert len(top) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
  assert f"{cat['probability']:.4f}  {cat['class']}" in proc.stdout
  only_bad = subprocess.run([sys.executable, "scripts/predict.py", "--model=efficientnet_lite0",
                             str(tmp_path / "photos" / "sub" / "broken.jpg")], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
  assert only_bad.returncode != 0
  assert (only_bad.stdout + only_bad.stderr).strip().splitlines()[-1].startswith("None of the 1 file(s) could be read")


def test_digits_checkpoint_predicts_as_it_evaluates(digits_run, tmp_path):
  workdir, cfg, summary = digits_run
  split = data.load(cfg.data).splits["test"]
  keep = np.arange(0, len(split), 9)  # 60 images of every class
  paths = []
  for i in keep:
    paths.append(str(tmp_path / f"{i:04d}.png"))
    Image.fromarray(np.asarray(split.images[i])).save(paths[-1])
  predictor = predict.from_workdir(workdir)
  assert predictor.class_names == [str(d) for d in range(10)] and predictor.image_size == 32
  results = predict.predict(predictor, predict.list_images([str(tmp_path)]), top_k=10)
  assert [r["path"] for r in results] == paths
  top1 = np.array([int(r["top_k"][0]["class"]) for r in results])
  # The same images as arrays, through the evaluation's batches: the same predictions.
  probs = predict.probabilities(predictor, np.asarray(split.images)[keep])
  np.testing.assert_array_equal(top1, probs.argmax(-1))
  np.testing.assert_allclose([sum(t["probability"] for t in r["top_k"]) for r in results], 1.0, rtol=1e-5)
  assert (top1 == split.labels[keep]).mean() > 0.5  # learned: chance is 0.1
  wrong = evaluation.confident_errors(probs, split.labels[keep], n=5)
  assert all(probs[i].argmax() != split.labels[keep][i] for i in wrong)
  conf = probs[wrong, probs[wrong].argmax(-1)]
  assert list(conf) == sorted(conf, reverse=True)
  predict.write(results, str(tmp_path / "pred.csv"))
  rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
  assert len(rows) == 10 * len(paths) and rows[0]["rank"] == "1" and rows[0]["class"] == results[0]["top_k"][0]["class"]
  with pytest.raises(FileNotFoundError, match="nope.png"):
    predict.list_images([str(tmp_path / "nope.png")])
  with pytest.raises(ValueError, match="use a .csv or .json"):
    predict.write(results, str(tmp_path / "pred.txt"))
