"""Test-time augmentation: several views of each image, their logits averaged (timm ``--tta``,
fast.ai ``learn.tta``).

- ``flip``: the image and its horizontal mirror. Works on any batch of images already at the run's
  size, so it serves ``evaluate`` on arrays, folders and TFDS (``eval_step``) and ``predict``.
- ``five_crop``: the four corner crops and the center crop, each ``image_size`` square, of the
  picture the run's evaluation crop is taken from (shorter side ``image_size / crop_fraction``,
  ``streaming.store_sides``; torchvision's ``FiveCrop`` on the resized image); ``ten_crop``: those
  and their mirrors. These need that larger picture, which evaluation splits do not keep (they hold
  the center crop only), so they serve ``predict`` on image files (decoded once, then cropped);
  ``evaluate`` refuses them. A run that squashes its images (``data.resize="squash"``) has no
  larger picture either: crops are refused for it.

Files average log-probabilities, which is averaging logits: ``log softmax(z_v)`` differs from
``z_v`` by a constant per view, which the final softmax removes (exact up to float32 probabilities
that underflow to 0, i.e. classes more than ~87 nats below the top).
"""


import jax
import jax.numpy as jnp
import numpy as np

from tl_jax.data import decode, streaming
from tl_jax.train import steps

MODES = ("none", "flip", "five_crop", "ten_crop")
CROPS = ("five_crop", "ten_crop")


def flip_views(images: jnp.ndarray) -> jnp.ndarray:
  """``(2, N, H, W, C)``: the images and their horizontal mirrors."""
  return jnp.stack([images, images[:, :, ::-1]])


def crop_views(picture: np.ndarray, size: int, mode: str) -> np.ndarray:
  """``(5 or 10, size, size, C)`` crops of one ``(H, W, C)`` picture (both sides >= ``size``):
  top-left, top-right, bottom-left, bottom-right, center (``decode.center_crop``'s offsets), then,
  for ``ten_crop``, their mirrors."""
  h, w = picture.shape[:2]
  if min(h, w) < size:
    raise ValueError(f"A {h}x{w} picture has no {size}x{size} crops.")
  corners = [picture[:size, :size], picture[:size, w - size:], picture[h - size:, :size],
             picture[h - size:, w - size:], decode.center_crop(picture, size)]
  views = np.stack(corners)
  if mode == "ten_crop":
    views = np.concatenate([views, views[:, :, ::-1]])
  elif mode != "five_crop":
    raise ValueError(f"crop_views: mode {mode!r} is not five_crop or ten_crop.")
  return np.ascontiguousarray(views)


def flip_eval_step(state: steps.TrainState, batch: dict[str, jnp.ndarray], *, top_k: int = 5) -> dict[str, jnp.ndarray]:
  """``steps.eval_step`` on the logits averaged over the images and their mirrors."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  logits = jax.vmap(lambda x: state.apply_fn(variables, x, train=False)[0].astype(jnp.float32))(
      flip_views(batch["image"]))
  return steps.eval_outputs(logits.mean(0), batch["label"], top_k=top_k)


def eval_fn(mode: str):
  """The jitted evaluation step of ``mode`` for a split of images at the run's size."""
  if mode == "none":
    return jax.jit(steps.eval_step)
  if mode == "flip":
    return jax.jit(flip_eval_step)
  raise ValueError(f"--tta {mode}: evaluation splits hold only the center crop; {', '.join(CROPS)} "
                   "need the larger picture and are offered for image files (predict); use flip here."
                   if mode in CROPS else f"--tta {mode!r}: expected one of {MODES}.")


def load_views(path: str, predictor, mode: str) -> np.ndarray:
  """The views of one image file for ``predictor`` (``predict.Predictor``), decoded once."""
  size = predictor.image_size
  if mode in CROPS:
    if predictor.crop == "squash":
      raise ValueError(f"--tta {mode}: this model squashes its images (no larger picture to crop); use flip.")
    picture = decode.shorter_side(decode.open_rgb(path), *streaming.store_sides(size, predictor.crop_fraction),
                                  predictor.interpolation)
    return crop_views(np.asarray(picture, np.uint8), size, mode)
  view = streaming.eval_view(decode.open_rgb(path), size, predictor.crop_fraction, predictor.interpolation,
                             predictor.crop)
  return np.stack([view, view[:, ::-1]]) if mode == "flip" else view[None]


def average_probabilities(probs: np.ndarray) -> np.ndarray:
  """``(V, N, C)`` per-view probabilities -> ``(N, C)``: the softmax of the mean log-probability."""
  logp = np.log(np.maximum(np.asarray(probs, np.float64), np.finfo(np.float64).tiny)).mean(0)
  p = np.exp(logp - logp.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def file_probabilities(predictor, path: str, mode: str) -> np.ndarray:
  """``(C,)`` probabilities of one image file: its views of ``mode``, their logits averaged.

  Raises:
    decode.BadImage: the file cannot be decoded.
  """
  if mode not in MODES:
    raise ValueError(f"--tta {mode!r}: expected one of {MODES}.")
  return average_probabilities(np.asarray(predictor.probabilities(load_views(path, predictor, mode)))[:, None])[0]
