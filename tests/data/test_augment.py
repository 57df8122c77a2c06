"""On-device augmentation against independent references: numpy for exact ops, scipy and Keras for resampling."""

import functools
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # the Keras reference needs no TensorFlow

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from tl_jax.data import augment
from tl_jax.train import steps

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (19, 23, 3)).astype(np.uint8)  # non-square: catches row/col mix-ups
SQUARE = IMAGE[:, :19]


def warp(image, fill_mode="nearest", cval=0.0, interpolation="bilinear", **params):
  h, w = image.shape[:2]
  return np.asarray(augment.warp(image, augment.keras_matrix(h, w, **params), fill_mode=fill_mode, cval=cval,
                                 interpolation=interpolation))


def scipy_warp(image, matrix, order, mode, cval=0.0):
  m = np.asarray(matrix, np.float64)
  return np.stack([ndimage.affine_transform(image[..., c].astype(np.float64), m[:2, :2], m[:2, 2], order=order,
                                            mode=mode, cval=cval) for c in range(image.shape[-1])], -1)


@pytest.mark.parametrize("interpolation", augment.INTERPOLATIONS)
@pytest.mark.parametrize("image", [IMAGE, SQUARE], ids=["19x23", "19x19"])
def test_exact_ops(image, interpolation):
  f = functools.partial(warp, image, interpolation=interpolation)
  np.testing.assert_array_equal(f(flip_h=True), image[:, ::-1])
  np.testing.assert_array_equal(f(flip_v=True), image[::-1])
  np.testing.assert_array_equal(f(flip_h=True, flip_v=True), image[::-1, ::-1])
  # Integer shifts move pixels exactly: out[r, c] = in[r + tx, c + ty]; "nearest" repeats the edge.
  out = f(tx=3, ty=-2)
  np.testing.assert_array_equal(out[:-3, 2:], image[3:, :-2])
  np.testing.assert_array_equal(out[-3:, 2:], np.broadcast_to(image[-1:, :-2], (3,) + image[-1:, :-2].shape[1:]))
  np.testing.assert_array_equal(f(tx=-4, fill_mode="constant", cval=7.0)[:4], 7.0)
  if image.shape[1] == image.shape[0]:
    # 90 degrees is counter-clockwise, as in Keras; float32 cos(pi/2) ~ 1e-8 px off the grid.
    np.testing.assert_array_equal(np.round(f(theta=90)), np.rot90(image, 1))
    np.testing.assert_array_equal(np.round(f(theta=-90)), np.rot90(image, 3))
    np.testing.assert_array_equal(np.round(f(theta=180)), np.rot90(image, 2))


def test_zero_strength_is_identity():
  np.testing.assert_array_equal(warp(IMAGE), IMAGE)
  np.testing.assert_array_equal(warp(IMAGE, fill_mode="reflect", zx=1.0, zy=1.0, theta=0.0, shear=0.0), IMAGE)
  assert augment.is_identity({}) and augment.from_config({}) is None
  # The random path with all-zero ranges (an option that samples but cannot move anything).
  cfg = {"rotation": 0.0, "zoom": 0.0, "fill_mode": "reflect"}
  out = augment.augment(jax.random.key(0), jnp.asarray(IMAGE[None].repeat(3, 0)), cfg)
  np.testing.assert_array_equal(np.asarray(out), IMAGE[None].repeat(3, 0))


SMALL = [dict(theta=7.0), dict(tx=2.3, ty=-1.7), dict(shear=8.0), dict(zx=0.9, zy=1.15),
         dict(theta=-5.0, tx=1.0, ty=0.5, shear=3.0, zx=1.1, zy=0.95)]


@pytest.mark.parametrize("params", SMALL, ids=lambda p: ",".join(p))
@pytest.mark.parametrize("mode", ["nearest", "reflect"])
@pytest.mark.parametrize("interpolation,order", [("bilinear", 1), ("nearest", 0)])
def test_matches_scipy_affine_transform(params, mode, interpolation, order):
  matrix = augment.keras_matrix(*IMAGE.shape[:2], **params)
  ours = np.asarray(augment.warp(IMAGE, matrix, fill_mode=mode, interpolation=interpolation))
  ref = scipy_warp(IMAGE, matrix, order, mode)
  if order == 1:
    np.testing.assert_allclose(ours, ref, atol=0.02)  # float32 coordinates vs float64
  else:  # rounding can flip where a coordinate sits within float32 noise of .5
    assert np.mean(np.abs(ours - ref) > 0.5) < 0.01


@pytest.mark.parametrize("params", SMALL, ids=lambda p: ",".join(p))
@pytest.mark.parametrize("mode", augment.FILL_MODES)
def test_matches_keras_apply_affine_transform(params, mode):
  """Keras 3's own ImageDataGenerator transform (it swaps tx/ty: see ``keras_matrix``)."""
  image_lib = pytest.importorskip("keras.src.legacy.preprocessing.image")
  keras_params = {**params, "tx": params.get("ty", 0.0), "ty": params.get("tx", 0.0)}
  ref = image_lib.apply_affine_transform(SQUARE.astype(np.float32), **keras_params, row_axis=0, col_axis=1,
                                         channel_axis=2, fill_mode=mode, cval=40.0, order=1)
  np.testing.assert_allclose(warp(SQUARE, fill_mode=mode, cval=40.0, **params), ref, atol=0.02)


def test_random_crop_samples_inside_and_resizes_like_jax():
  # A full-image "crop" is the identity; a centred half crop equals jax.image.resize of that crop.
  h, w = IMAGE.shape[:2]
  np.testing.assert_allclose(np.asarray(augment.warp(IMAGE, augment.crop_matrix(h, w, 0, 0, h, w))), IMAGE,
                             atol=1e-3)
  big = np.kron(IMAGE, np.ones((2, 2, 1), np.uint8))  # 38x46, so a 19x23 crop needs no antialiasing
  crop = augment.warp(big, augment.crop_matrix(38, 46, 8, 10, 19, 23))
  ref = jax.image.resize(jnp.asarray(big[8:27, 10:33], jnp.float32), (38, 46, 3), "bilinear")
  np.testing.assert_allclose(np.asarray(crop)[1:-1, 1:-1], np.asarray(ref)[1:-1, 1:-1], atol=1e-3)
  cfg = augment.check_config({"random_resized_crop": True})
  for seed in range(20):  # every sampled crop lies inside the image
    m = np.asarray(augment.random_matrix(jax.random.key(seed), cfg, h, w))
    corners = m @ np.array([[0, 0, 1], [h - 1, w - 1, 1], [0, w - 1, 1], [h - 1, 0, 1]], np.float32).T
    assert corners[0].min() >= -0.5 and corners[0].max() <= h - 0.5, corners
    assert corners[1].min() >= -0.5 and corners[1].max() <= w - 0.5, corners


def test_random_batch_per_example_keys_and_ranges():
  cfg = {"rotation": 20.0, "width_shift": 0.1, "height_shift": 0.1, "shear": 10.0, "zoom": 0.2,
         "horizontal_flip": True, "fill_mode": "reflect"}
  images = jnp.asarray(np.repeat(SQUARE[None], 8, 0))
  fn = jax.jit(augment.from_config(cfg))
  a, b = np.asarray(fn(jax.random.key(1), images)), np.asarray(fn(jax.random.key(1), images))
  np.testing.assert_array_equal(a, b)  # deterministic given the key
  assert len({x.tobytes() for x in a}) == 8  # every example got its own transform
  assert not np.array_equal(a, np.asarray(fn(jax.random.key(2), images)))
  assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255
  # Only flips: each example is the image or its mirror, about half of each.
  flips = np.asarray(augment.from_config({"horizontal_flip": True})(jax.random.key(0), jnp.tile(images, (8, 1, 1, 1))))
  mirrored = [np.array_equal(x, SQUARE[:, ::-1]) for x in flips]
  assert all(m or np.array_equal(x, SQUARE) for m, x in zip(mirrored, flips)) and 16 <= sum(mirrored) <= 48


def test_bad_config_is_named():
  with pytest.raises(ValueError, match="Unknown augment option.*rotation_range"):
    augment.check_config({"rotation_range": 10})
  with pytest.raises(ValueError, match="fill_mode='wrap'"):
    augment.check_config({"fill_mode": "wrap"})


def test_train_step_augments_and_eval_is_deterministic():
  """The augmentation runs inside the jitted train step; the eval path never augments."""
  import flax.linen as nn
  import optax

  class Tiny(nn.Module):  # the step's contract: (logits, features), BatchNorm statistics
    @nn.compact
    def __call__(self, images, train=False):
      x = nn.Conv(4, (3, 3), name="conv")(images / 255.0)
      x = nn.BatchNorm(use_running_average=not train, name="bn")(x).mean((1, 2))
      return nn.Dense(3, name="head")(x), {"pre_logits": x}

  model = Tiny()
  x = jnp.asarray(np.repeat(SQUARE[None], 4, 0))
  variables = model.init(jax.random.key(0), x)
  state = steps.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                  batch_stats=variables["batch_stats"], tx=optax.sgd(0.1))
  batch = {"image": x, "label": jnp.arange(4) % 3}

  def head_after_step(augment_fn):
    step = jax.jit(functools.partial(steps.train_step, augment_fn=augment_fn))
    new, _ = step(state, batch, jax.random.key(0))
    return np.asarray(new.params["head"]["kernel"])

  plain = head_after_step(None)
  np.testing.assert_allclose(head_after_step(lambda rng, images: images.astype(jnp.float32)), plain, atol=1e-6)
  rotated = head_after_step(augment.from_config({"rotation": 30.0, "fill_mode": "constant"}))
  assert np.abs(rotated - plain).max() > 1e-4  # the gradient saw other pixels
  evaluate = jax.jit(steps.eval_step)
  first, second = evaluate(state, batch), evaluate(state, batch)
  np.testing.assert_array_equal(first["loss"], second["loss"])
