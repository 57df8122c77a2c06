"""Test-time augmentation: the views by hand, logits averaged, evaluate's and predict's paths."""

import os
import types

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from tl_jax.data import decode, streaming
from tl_jax.evaluate import predict, tta
from tl_jax.metrics import calibration

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _apply(variables, x, train=False):
  """A model whose logits see the left and right halves differently (a mirror changes them)."""
  x = x.astype(jnp.float32) / 255.0
  w = x.shape[2]
  left, right = x[:, :, : w // 2].mean((1, 2)), x[:, :, w // 2:].mean((1, 2))
  return jnp.concatenate([left, right], -1) @ variables["params"]["w"], None


def test_flip_eval_step_averages_the_logits_of_the_image_and_its_mirror():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(6, 4)).astype(np.float32)
  state = types.SimpleNamespace(params={"w": w}, batch_stats={}, apply_fn=_apply)
  images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
  labels = np.array([0, 1, 3], np.int32)
  out = tta.flip_eval_step(state, {"image": images, "label": labels})
  plain = np.asarray(_apply({"params": {"w": w}}, images)[0], np.float64)
  mirror = np.asarray(_apply({"params": {"w": w}}, images[:, :, ::-1].copy())[0], np.float64)
  assert not np.allclose(plain, mirror)
  expected = (plain + mirror) / 2
  np.testing.assert_allclose(out["logits"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out["pred"], expected.argmax(-1))
  np.testing.assert_allclose(out["loss"], -calibration.log_softmax(expected)[np.arange(3), labels], rtol=1e-5)


def test_crop_views_by_hand():
  picture = np.arange(6 * 8 * 3, dtype=np.int32).reshape(6, 8, 3)
  five = tta.crop_views(picture, 4, "five_crop")
  hand = [picture[0:4, 0:4], picture[0:4, 4:8], picture[2:6, 0:4], picture[2:6, 4:8], picture[1:5, 2:6]]
  np.testing.assert_array_equal(five, np.stack(hand))
  ten = tta.crop_views(picture, 4, "ten_crop")
  np.testing.assert_array_equal(ten[5:], np.stack(hand)[:, :, ::-1])
  with pytest.raises(ValueError, match="no 7x7"):
    tta.crop_views(picture, 7, "five_crop")


def test_evaluation_refuses_crops_on_splits():
  with pytest.raises(ValueError, match="predict"):
    tta.eval_fn("ten_crop")
  with pytest.raises(ValueError, match="expected one of"):
    tta.eval_fn("rotate")


def test_averaged_log_probabilities_are_averaged_logits():
  z = np.random.default_rng(1).normal(size=(4, 3, 5)) * 3
  probs = calibration.softmax(z)
  np.testing.assert_allclose(tta.average_probabilities(probs), calibration.softmax(z.mean(0)), rtol=1e-6)


def _predictor():
  w = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
  fn = lambda x: np.asarray(calibration.softmax(np.asarray(_apply({"params": {"w": w}}, x)[0])), np.float32)
  return predict.Predictor(fn, 16, ["a", "b", "c", "d"], "test", crop_fraction=0.8)


@pytest.mark.parametrize("mode", ["flip", "five_crop", "ten_crop"])
def test_predict_with_tta_on_files(tmp_path, mode):
  rng = np.random.default_rng(3)
  path = str(tmp_path / "x.png")
  Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)
  p = _predictor()
  got = predict.predict(p, [path, str(tmp_path / "missing.png")], top_k=4, tta=mode)
  assert got[1]["error"] and got[1]["top_k"] == []
  image = decode.open_rgb(path)
  if mode == "flip":
    view = streaming.eval_view(image, 16, 0.8, "bilinear")
    np.testing.assert_array_equal(view, predict.load_image(path, p))
    views = np.stack([view, view[:, ::-1]])
  else:  # crops of the picture whose center crop the run evaluates on (shorter side 16 / 0.8 = 20)
    picture = np.asarray(decode.shorter_side(image, *streaming.store_sides(16, 0.8), "bilinear"))
    assert min(picture.shape[:2]) == 20
    views = tta.crop_views(picture, 16, mode)
    np.testing.assert_array_equal(views[4], predict.load_image(path, p))  # the center crop is eval's
  logits = np.log(p.probabilities(views).astype(np.float64))
  expected = calibration.softmax(logits.mean(0))
  probs = {t["index"]: t["probability"] for t in got[0]["top_k"]}
  np.testing.assert_allclose([probs[i] for i in range(4)], expected, rtol=1e-5)
  plain = predict.predict(p, [path], top_k=4)[0]["top_k"]
  assert [t["probability"] for t in plain] != [t["probability"] for t in got[0]["top_k"]]


@pytest.fixture
def tiny_run(tiny_run_copy):
  """A copy of the session's tiny run (conftest), evaluated into here: (workdir, npz)."""
  npz, workdir, _ = tiny_run_copy
  return workdir, npz


def test_evaluate_with_flip(tiny_run):
  from tl_jax.evaluate import evaluation
  workdir, npz = tiny_run
  plain = evaluation.evaluate(workdir, f"npz:{npz}")
  flipped = evaluation.evaluate(workdir, f"npz:{npz}", tta="flip")
  assert flipped["report_path"].endswith(os.path.join("digits_step%d_tta-flip" % flipped["step"], "report.json"))
  assert plain["nll"] != flipped["nll"]
  with pytest.raises(ValueError, match="predict"):
    evaluation.evaluate_checkpoint(workdir, "best", "test", tta="five_crop")
