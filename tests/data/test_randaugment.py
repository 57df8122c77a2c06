"""RandAugment / TrivialAugmentWide ops against PIL, the library torchvision's ops call on PIL images.

The references are written here as torchvision's ``_apply_op`` calls them
(torchvision does not load in this environment): ``F.affine``'s PIL branch with
its ``_get_inverse_affine_matrix``, ``Image.rotate``, ``ImageEnhance`` and
``ImageOps``. Photos: scikit-image's chelsea, astronaut and coffee at 48 x 64
(non-square catches row/column mix-ups).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageEnhance, ImageOps
import pytest
from skimage import data as skdata

from tl_jax.data import randaugment as ra

PHOTOS = {name: np.asarray(Image.fromarray(getattr(skdata, name)()).resize((64, 48), Image.BILINEAR))
          for name in ("chelsea", "astronaut", "coffee")}
FILL = 0


def _inverse_affine(center, angle, translate, scale, shear):
  """torchvision.transforms.functional._get_inverse_affine_matrix."""
  rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
  cx, cy = center
  tx, ty = translate
  a = math.cos(rot - sy) / math.cos(sy)
  b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
  c = math.sin(rot - sy) / math.cos(sy)
  d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
  m = [x / scale for x in (d, -b, 0.0, -c, a, 0.0)]
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
  m[2] += cx
  m[5] += cy
  return m


def _pil_affine(img, translate=(0, 0), shear=(0.0, 0.0), center=None):
  """F.affine on a PIL image (angle 0, scale 1, NEAREST, fill 0)."""
  center = center if center is not None else [img.size[0] * 0.5, img.size[1] * 0.5]
  matrix = _inverse_affine(center, 0.0, translate, 1.0, shear)
  return img.transform(img.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=FILL)


# torchvision's _apply_op, PIL branch.
PIL_OPS = {
    "identity": lambda img, m: img,
    "shear_x": lambda img, m: _pil_affine(img, shear=(math.degrees(math.atan(m)), 0.0), center=[0, 0]),
    "shear_y": lambda img, m: _pil_affine(img, shear=(0.0, math.degrees(math.atan(m))), center=[0, 0]),
    "translate_x": lambda img, m: _pil_affine(img, translate=(int(m), 0)),
    "translate_y": lambda img, m: _pil_affine(img, translate=(0, int(m))),
    "rotate": lambda img, m: img.rotate(m, Image.NEAREST, fillcolor=FILL),
    "brightness": lambda img, m: ImageEnhance.Brightness(img).enhance(1.0 + m),
    "color": lambda img, m: ImageEnhance.Color(img).enhance(1.0 + m),
    "contrast": lambda img, m: ImageEnhance.Contrast(img).enhance(1.0 + m),
    "sharpness": lambda img, m: ImageEnhance.Sharpness(img).enhance(1.0 + m),
    "posterize": lambda img, m: ImageOps.posterize(img, int(m)),
    "solarize": lambda img, m: ImageOps.solarize(img, m),
    "autocontrast": lambda img, m: ImageOps.autocontrast(img),
    "equalize": lambda img, m: ImageOps.equalize(img),
}
# Magnitudes: both signs and the extremes of TrivialAugmentWide's (widest) bins.
MAGNITUDES = {
    "identity": [0.0], "shear_x": [0.3, -0.99], "shear_y": [-0.3, 0.99], "translate_x": [13.7, -32.0],
    "translate_y": [-9.2, 32.0], "rotate": [30.0, -135.0, 4.5], "posterize": [4, 2, 7],
    "solarize": [255.0, 127.5, 8.5], "autocontrast": [0.0], "equalize": [0.0],
    **{k: [0.9, -0.9, 0.33, -0.99] for k in ("brightness", "color", "contrast", "sharpness")},
}
# (max |difference| in pixel levels, largest fraction of differing pixel values).
# Geometric ops: at an exact tie (a sample point on a pixel edge, e.g. along the
# diagonals of a 135 degree rotation: 1.5% of the pixels) PIL's fixed-point
# nearest affine and our float32 one may pick neighbouring pixels. Autocontrast: PIL
# computes i * scale + offset in double and truncates, we truncate the exact quotient.
# ImageEnhance blends truncate to uint8: a product that lands on an integer in
# exact arithmetic may round to either side in float32 (<= 0.1% of values seen).
TOLERANCE = {"rotate": (255, 0.02), "shear_x": (255, 0.01), "shear_y": (255, 0.01), "autocontrast": (1, 0.01),
             **{k: (1, 0.005) for k in ("brightness", "color", "contrast", "sharpness")}}

_apply = jax.jit(ra.apply_op)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize("op", ra.OP_NAMES)
def test_op_matches_pil(op, photo):
  image = PHOTOS[photo]
  for m in MAGNITUDES[op]:
    m = float(np.float32(m))  # torchvision's bins are float32 tensors
    want = np.asarray(PIL_OPS[op](Image.fromarray(image), m)).astype(np.int32)
    got = np.asarray(_apply(jnp.asarray(image, jnp.float32), ra.OP_NAMES.index(op), m, float(FILL)))
    np.testing.assert_array_equal(got, np.round(got))  # integer-valued, as a uint8 image
    diff = np.abs(got.astype(np.int32) - want)
    max_diff, max_frac = TOLERANCE.get(op, (0, 0.0))
    assert diff.max() <= max_diff and (diff > 0).mean() <= max_frac, (op, m, diff.max(), (diff > 0).mean())


def test_geometric_ops_move_pixels_and_fill():
  # The tolerance above must not hide a wrong direction: translation is exact.
  image = PHOTOS["chelsea"].astype(np.float32)
  got = np.asarray(_apply(jnp.asarray(image), ra.OP_NAMES.index("translate_x"), 5.0, 7.0))
  np.testing.assert_array_equal(got[:, 5:], image[:, :-5])
  np.testing.assert_array_equal(got[:, :5], 7.0)


def test_bins_are_torchvisions():
  table, signed = ra.magnitude_bins("randaugment", 31, 48, 64)
  i = ra.OP_NAMES.index
  assert table[i("rotate"), 9] == pytest.approx(9.0)
  assert table[i("translate_x"), 30] == pytest.approx(150 / 331 * 64)
  assert table[i("translate_y"), 30] == pytest.approx(150 / 331 * 48)
  assert list(table[i("posterize"), [0, 8, 30]]) == [8, 7, 4]
  assert table[i("solarize"), 30] == 0 and not signed[i("solarize")] and signed[i("shear_x")]
  wide, _ = ra.magnitude_bins("trivialaugment", 31, 48, 64)
  assert wide[i("rotate"), 30] == pytest.approx(135.0) and wide[i("posterize"), 30] == 2
  assert wide[i("translate_x"), 30] == pytest.approx(32.0)


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
def test_policy_batch_is_keyed_and_per_image(policy):
  images = jnp.asarray(np.stack([PHOTOS[p] for p in sorted(PHOTOS)] * 4))  # 12 images
  fn = jax.jit(ra.from_config(dict(policy=policy)))
  a, b, c = fn(jax.random.key(0), images), fn(jax.random.key(0), images), fn(jax.random.key(1), images)
  np.testing.assert_array_equal(a, b)  # same key, same result
  assert not np.array_equal(a, c)
  # Copies of one photo get their own ops: the three copies of chelsea mostly differ.
  copies = np.asarray(a)[0::3]
  assert len({c.tobytes() for c in copies}) >= 3
  # Every output is one of the op results on the image (TrivialAugment: one op):
  if policy == "trivialaugment":
    one = np.asarray(a[0])
    results = [np.asarray(_apply(images[0].astype(jnp.float32), k, s * t, 0.0))
               for k in range(len(ra.OP_NAMES)) for t in ra.magnitude_bins(policy, 31, 48, 64)[0][k]
               for s in (1.0, -1.0)]
    assert any(np.array_equal(one, r) for r in results)


def test_config_errors():
  with pytest.raises(ValueError, match="policy"):
    ra.check_config(dict(policy="autoaugment"))
  with pytest.raises(ValueError, match="Unknown randaugment"):
    ra.check_config(dict(magnitde=3))
  assert ra.from_config({}) is None
