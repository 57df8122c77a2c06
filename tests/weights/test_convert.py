"""scripts/convert_weights.py: convert once, then load the .msgpack without converting again."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tl_jax import weights

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_convert_script_roundtrip(tmp_path):
  src = weights.weight_file("efficientnet_lite0")  # the packaged real weights
  dst = tmp_path / "lite0.msgpack"
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_weights.py"), src, str(dst),
                        "--model", "efficientnet_lite0"], env=env, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert "Wrote 247 arrays" in out.stdout
  converted = weights.load_pretrained("efficientnet_lite0", path=str(dst))
  direct = weights.load_pretrained("efficientnet_lite0")
  assert sorted(converted) == sorted(direct)
  for k, v in direct.items():
    np.testing.assert_array_equal(converted[k], v)
  with pytest.raises(ValueError, match="holds weights for 'efficientnet_lite0'.*not 'efficientnet_lite1'"):
    weights.load_pretrained("efficientnet_lite1", path=str(dst))


def test_convert_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    weights.convert_file("resnet18", str(tmp_path / "none.pth"), str(tmp_path / "x.msgpack"))
  src = weights.weight_file("efficientnet_lite0")
  with pytest.raises(ValueError, match=r"written as \.msgpack files"):
    weights.convert_file("efficientnet_lite0", src, str(tmp_path / "x.npz"))
  (tmp_path / "w.onnx").write_bytes(b"")
  with pytest.raises(ValueError, match=r"Unknown weight file type '\.onnx'"):
    weights.load_pretrained("resnet18", path=str(tmp_path / "w.onnx"))
  (tmp_path / "w.npz").write_bytes(b"")
  with pytest.raises(ValueError, match=r"Cannot read .*w\.npz.* as a numpy \.npz archive"):
    weights.load_pretrained("resnet18", path=str(tmp_path / "w.npz"))
