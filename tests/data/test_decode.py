"""Every image people have decodes to the RGB picture they see (``decode.open_rgb``, issue 26 item 4).

Each mode is written as a real file and compared with a reference computed here from the pixels
written, not from Pillow's conversion of the file.
"""

import numpy as np
from PIL import Image
import pytest

from tl_jax import data
from tl_jax.data import decode, image_folder

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (6, 9), dtype=np.uint8)


def _read(path):
  return np.asarray(decode.open_rgb(str(path)))


def test_modes_against_references(tmp_path):
  Image.fromarray(GREY, "L").save(tmp_path / "grey.png")
  np.testing.assert_array_equal(_read(tmp_path / "grey.png"), np.dstack([GREY] * 3))
  Image.fromarray(np.dstack([GREY, ALPHA]), "LA").save(tmp_path / "grey_alpha.png")
  np.testing.assert_array_equal(_read(tmp_path / "grey_alpha.png"), np.dstack([GREY] * 3))  # alpha dropped
  Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA").save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(_read(tmp_path / "rgba.png"), RGB)
  # Palette, with and without a transparent entry: the palette's colours.
  colours = np.array([[10, 20, 30], [200, 100, 50], [0, 255, 0], [255, 255, 255]], np.uint8)
  index = RNG.integers(0, 4, (6, 9)).astype(np.uint8)
  p = Image.fromarray(index, "P")
  p.putpalette(colours.ravel().tolist())
  p.save(tmp_path / "palette.png")
  p.save(tmp_path / "palette_transparent.png", transparency=2)
  p.save(tmp_path / "palette.gif")
  for name in ("palette.png", "palette_transparent.png", "palette.gif"):
    np.testing.assert_array_equal(_read(tmp_path / name), colours[index], err_msg=name)
  # CMYK (TIFF keeps it lossless): R = (255 - C)(255 - K) / 255, per channel (no ICC profile).
  cmyk = RNG.integers(0, 256, (6, 9, 4), dtype=np.uint8)
  Image.fromarray(cmyk, "CMYK").save(tmp_path / "cmyk.tif")
  want = (255 - cmyk[..., :3].astype(float)) * (255 - cmyk[..., 3:].astype(float)) / 255
  assert np.abs(_read(tmp_path / "cmyk.tif") - want).max() <= 0.51
  # 16-bit greyscale: scaled to 8 bits, not clipped to white.
  deep = (GREY.astype(np.uint16) * 257 + RNG.integers(0, 200, GREY.shape)).astype(np.uint16)
  Image.fromarray(deep).save(tmp_path / "deep.png")
  assert Image.open(tmp_path / "deep.png").mode.startswith("I")
  np.testing.assert_array_equal(_read(tmp_path / "deep.png"), np.dstack([np.round(deep / 257).astype(np.uint8)] * 3))


def test_animation_first_frame_and_exif_orientation(tmp_path):
  frames = [Image.fromarray(np.full((6, 9, 3), v, np.uint8)) for v in (40, 160, 250)]
  frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
  np.testing.assert_array_equal(_read(tmp_path / "anim.gif"), np.full((6, 9, 3), 40, np.uint8))
  # A camera's portrait shot: pixels stored landscape, EXIF Orientation 6 = rotate 90 clockwise to view.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(RGB).save(tmp_path / "camera.png", exif=exif)
  np.testing.assert_array_equal(_read(tmp_path / "camera.png"), np.rot90(RGB, k=-1))
  exif[0x0112] = 3  # upside down
  Image.fromarray(RGB).save(tmp_path / "upside.png", exif=exif)
  np.testing.assert_array_equal(_read(tmp_path / "upside.png"), RGB[::-1, ::-1])


def test_bombs_and_broken_files_are_refused_by_name(tmp_path, monkeypatch):
  Image.fromarray(RGB).save(tmp_path / "big.png")
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 54 pixels: a "bomb" at this limit
  with pytest.raises(decode.BadImage, match=r"big.png: refused as a decompression bomb"):
    decode.open_rgb(str(tmp_path / "big.png"))
  monkeypatch.undo()
  (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(50))
  with pytest.raises(decode.BadImage, match=r"broken.jpg cannot be decoded as an image"):
    decode.open_rgb(str(tmp_path / "broken.jpg"))


def test_a_folder_of_real_world_files_trains_as_it_is(tmp_path, quickstart_config):
  """Names in any language, upper-case extensions, every mode above, one broken file skipped."""
  root = tmp_path / "photos"
  for c, name in enumerate(("chat_noir", "咖啡")):
    (root / name).mkdir(parents=True)
    colour = np.array([[30, 30, 30], [200, 150, 90]][c], np.uint8)
    base = np.clip(colour + RNG.normal(0, 10, (20, 28, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(base).save(root / name / "PHOTO_1.JPG")
    Image.fromarray(base).convert("L").save(root / name / "gris é.png")
    Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE).save(root / name / "web.gif")
    Image.fromarray(np.dstack([base, np.full(base.shape[:2], 100, np.uint8)])).save(root / name / "alpha.PNG")
    Image.fromarray(base).convert("CMYK").save(root / name / "print.TIFF")
  (root / "咖啡" / "cut.jpg").write_bytes((root / "咖啡" / "PHOTO_1.JPG").read_bytes()[:60])
  cfg = quickstart_config.data
  cfg.update(name="folder", path=str(root), image_size=16, test_fraction=0.2, val_fraction=0.0, on_error="skip",
             cache_dir=str(tmp_path / "cache"))
  ds = data.load(cfg)
  assert ds.class_names == ["chat_noir", "咖啡"]
  assert len(ds.splits["train"]) + len(ds.splits["test"]) == 10  # the cut file left out, by name
  _, _, _, report = image_folder.load(str(root), 16, on_error="skip", cache_dir=str(tmp_path / "cache"))
  assert report["skipped"] == [str(root / "咖啡" / "cut.jpg")]
  dark = np.asarray(ds.splits["train"].images)[ds.splits["train"].labels == 0]
  assert dark.mean() < 60  # every mode decoded to the dark photo, none to black/white garbage
