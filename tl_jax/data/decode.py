"""Image files as the RGB pictures people see, and the two ways they are sized.

``open_rgb(file)`` decodes any image Pillow reads to 8-bit RGB as cameras and
browsers show it: the EXIF orientation applied; grayscale (with or without
alpha), palette (with or without transparency), CMYK and RGBA converted, alpha
dropped (as torchvision's and timm's ``convert('RGB')``); 16-bit and 32-bit
grayscale scaled to 8 bits instead of clipped; the first frame of an animation.
Files over Pillow's ``MAX_IMAGE_PIXELS`` are refused by name (decompression bombs).

Sizing, shared by the decode cache, streaming and prediction so that all three
give the same pixels:

- ``shorter_side(image, short, long_max, interpolation)``: the image resized so its
  shorter side is ``short`` (torchvision's ``Resize(short)``: the longer side
  ``int(short * long / short_orig)``), the longer side center-cropped to at most
  ``long_max``. The "crop" recipe works on this picture.
- ``squash(image, size)``: the whole image to ``size x size``, aspect lost (Keras'
  ``load_img(target_size=...)``, bilinear).
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class BadImage(ValueError):
  """A file that cannot be decoded as an image; the message names it and why."""


def open_rgb(file, name: str = "") -> Image.Image:
  """``file`` (a path, bytes or a PIL image) as a loaded 8-bit RGB image, upright.

  Raises:
    BadImage: unreadable, truncated, or over ``Image.MAX_IMAGE_PIXELS`` pixels.
  """
  name = name or (file if isinstance(file, str) else "image")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      if isinstance(file, Image.Image):
        image = file
      else:
        image = Image.open(io.BytesIO(file) if isinstance(file, bytes) else file)
      image.seek(0)  # the first frame of an animation
      image.load()  # decodes fully: truncated files fail here
      return to_rgb(ImageOps.exif_transpose(image))
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise BadImage(f"{name}: refused as a decompression bomb ({e}); raise PIL.Image.MAX_IMAGE_PIXELS "
                   "if it is a real image.") from e
  except (OSError, SyntaxError, ValueError, EOFError) as e:  # Pillow's ways of failing on a bad file
    raise BadImage(f"{name} cannot be decoded as an image ({type(e).__name__}: {e}).") from e


def to_rgb(image: Image.Image) -> Image.Image:
  """Any Pillow mode -> 8-bit RGB (see the module docstring)."""
  if image.mode == "RGB":
    return image
  if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
    a = np.asarray(image, np.float64)
    scale = 255 / 65535 if image.mode.startswith("I;16") or a.max(initial=0) > 255 else 1.0
    return Image.fromarray(np.clip(np.round(a * scale), 0, 255).astype(np.uint8)).convert("RGB")
  if image.mode == "P" or image.mode == "PA":  # transparency must pass through RGBA, or Pillow guesses
    return image.convert("RGBA").convert("RGB")
  if image.mode == "LA":
    return image.convert("L").convert("RGB")
  return image.convert("RGB")


def shorter_side(image: Image.Image, short: int, long_max: int, interpolation: str) -> Image.Image:
  """``image`` with its shorter side resized to ``short`` and its longer side center-cropped to ``long_max``."""
  w, h = image.size
  if w <= h:
    size = (short, max(short, int(short * h / w)))
  else:
    size = (max(short, int(short * w / h)), short)
  if image.size != size:
    image = image.resize(size, RESAMPLE[interpolation])
  w, h = size
  if max(w, h) > long_max:
    off = int(round((max(w, h) - long_max) / 2.0))
    image = image.crop((off, 0, off + long_max, h) if w > h else (0, off, w, off + long_max))
  return image


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
  """The central ``size x size`` of an ``(H, W, 3)`` array with both sides at least ``size``
  (torchvision's ``CenterCrop`` offsets)."""
  h, w = array.shape[:2]
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  return array[top:top + size, left:left + size]


def squash(image: Image.Image, size: int, interpolation: str = "bilinear") -> np.ndarray:
  """RGB ``image`` -> (size, size, 3) uint8, the whole picture resized (Keras' semantics)."""
  if image.size != (size, size):
    image = image.resize((size, size), RESAMPLE[interpolation])
  return np.asarray(image, np.uint8)
