"""Read PyTorch checkpoints (``.pth``/``.pt``) into numpy arrays without torch.

Both the zip format (``torch.save`` since 1.6) and the legacy stream format
(``_use_new_zipfile_serialization=False``) are read. Unpickling is restricted to
the few globals that tensors and plain containers need, so a malicious file is
refused before any of its code could be imported or run.
"""

import collections
import io
import os
import pickle
import struct
from typing import Any
import zipfile

import ml_dtypes
import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_RESAVE = "re-save it with `torch.save(model.state_dict(), path)`"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params")

# Typed storage classes carry the dtype for _rebuild_tensor(_v2); _rebuild_tensor_v3
# gets an UntypedStorage plus a dtype global such as `torch.uint16`.
_TORCH_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128, "UntypedStorage": np.uint8,
    "float64": np.float64, "float32": np.float32, "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16, "int64": np.int64, "int32": np.int32, "int16": np.int16,
    "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
    "uint64": np.uint64, "bool": np.bool_, "complex64": np.complex64,
    "complex128": np.complex128, "float8_e5m2": ml_dtypes.float8_e5m2,
    "float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu,
}
# Torch dtypes without a numpy twin: reported as unsupported rather than unsafe.
_UNSUPPORTED = {"complex32", "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2"}


class UnsafeWeightFileError(pickle.UnpicklingError):
  """The checkpoint references a global that is not a tensor or plain container."""


class WeightFileError(ValueError):
  """The checkpoint is not a PyTorch file, is corrupt, or has an unsupported dtype."""


# Placeholders filled in after unpickling (legacy files store tensor bytes after the
# pickle). Tuples have no __dict__, so a BUILD opcode cannot alter them.
_DType = collections.namedtuple("_DType", "np")
_Storage = collections.namedtuple("_Storage", "key dtype offset numel")
_Tensor = collections.namedtuple("_Tensor", "storage offset size stride dtype")


class _Unpickler(pickle.Unpickler):

  def __init__(self, file, path: str):
    super().__init__(file)
    self.path = path
    self.storages: dict[str, tuple[np.dtype, int]] = {}  # key -> (dtype, numel)

  def find_class(self, module: str, name: str) -> Any:
    # Bound methods, not module functions: a BUILD opcode can't alter shared state.
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): self._rebuild_v2,
        ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_v2,
        ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_v3,
        ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
    }
    if (module, name) in allowed:
      return allowed[module, name]
    if module in ("torch", "torch.storage") and name in _TORCH_DTYPES:
      return _DType(np.dtype(_TORCH_DTYPES[name]))
    if module == "torch" and (name in _UNSUPPORTED or name.endswith("Storage")):
      raise WeightFileError(f"{self.path}: unsupported tensor dtype torch.{name}; convert "
                            "the tensor (e.g. to float32) before saving")
    raise UnsafeWeightFileError(
        f"{self.path}: refusing to load global '{module}.{name}'. Weight files may only "
        "contain tensors and plain containers (dict, OrderedDict, list, tuple, numbers, "
        f"strings); if you trust the file, load it with torch and {_RESAVE}")

  def persistent_load(self, pid: Any) -> _Storage:
    # zip: ('storage', type, key, location, numel); legacy appends view metadata.
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
            and isinstance(pid[1], _DType) and type(pid[4]) is int):
      raise WeightFileError(f"{self.path}: unsupported persistent id {pid!r:.80}; {_RESAVE}")
    dtype, key, numel = pid[1].np, str(pid[2]), pid[4]
    self.storages.setdefault(key, (dtype, numel))
    if len(pid) == 6 and pid[5] is not None:  # legacy view: (view_key, offset, numel)
      return _Storage(key, dtype, pid[5][1], pid[5][2])
    return _Storage(key, dtype, 0, numel)

  def _rebuild_v2(self, storage, offset, size, stride, requires_grad=False, hooks=None,
                  metadata=None):
    dtype = storage.dtype if isinstance(storage, _Storage) else None
    return self._rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata)

  def _rebuild_v3(self, storage, offset, size, stride, requires_grad, hooks, dtype,
                  metadata=None):
    if metadata:  # conj/neg bits: applying them needs torch's semantics
      raise WeightFileError(f"{self.path}: tensor metadata {metadata!r} unsupported; {_RESAVE}")
    dtype = dtype.np if isinstance(dtype, _DType) else dtype
    ints = lambda xs: isinstance(xs, (tuple, list)) and all(type(x) is int for x in xs)
    if not (isinstance(storage, _Storage) and isinstance(dtype, np.dtype)
            and type(offset) is int and ints(size) and ints(stride) and len(size) == len(stride)):
      raise WeightFileError(f"{self.path}: malformed tensor record; {_RESAVE}")
    return _Tensor(storage, offset, tuple(size), tuple(stride), dtype)

  def _rebuild_parameter(self, data, *unused_args):
    return data


def _read_zip(path: str) -> tuple[Any, dict[str, bytes], bool]:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pkls:
      raise WeightFileError(f"{path}: zip without <name>/data.pkl, not a torch.save checkpoint")
    prefix = pkls[0][: -len("data.pkl")]
    order = zf.read(prefix + "byteorder") if prefix + "byteorder" in names else b"little"
    if order not in (b"little", b"big"):
      raise WeightFileError(f"{path}: unknown byteorder {order!r}")
    unpickler = _Unpickler(io.BytesIO(zf.read(pkls[0])), path)
    obj = unpickler.load()
    data = {key: zf.read(f"{prefix}data/{key}") for key in unpickler.storages}
  for key, (dtype, numel) in unpickler.storages.items():
    if len(data[key]) < numel * dtype.itemsize:
      raise WeightFileError(f"{path}: storage data/{key} has {len(data[key])} bytes, expected "
                            f"{numel * dtype.itemsize}; the file is truncated, re-download it")
  return obj, data, order == b"big"


def _read_legacy(path: str) -> tuple[Any, dict[str, bytes], bool]:
  with open(path, "rb") as f:
    if f.read(262)[257:] == b"ustar":
      raise WeightFileError(f"{path}: tar-format checkpoint (torch < 0.4) is unsupported; "
                            f"load it with an old torch and {_RESAVE}")
    f.seek(0)
    try:
      magic, protocol = _Unpickler(f, path).load(), _Unpickler(f, path).load()
      _Unpickler(f, path).load()  # sys_info: torch writes little-endian data regardless
    except Exception:  # any garbage here just means "not a legacy checkpoint"
      magic = protocol = None
    if magic != _LEGACY_MAGIC:
      raise WeightFileError(f"{path}: not a PyTorch checkpoint (neither a zip with data.pkl "
                            "nor a legacy torch.save file)")
    if protocol != _LEGACY_PROTOCOL:
      raise WeightFileError(f"{path}: unsupported legacy protocol {protocol!r}")
    unpickler = _Unpickler(f, path)
    obj = unpickler.load()
    data = {}
    for key in _Unpickler(f, path).load():  # storages follow in this order
      dtype, numel = unpickler.storages[str(key)]
      header, data[str(key)] = f.read(8), f.read(numel * dtype.itemsize)
      if header != struct.pack("<q", numel) or len(data[str(key)]) != numel * dtype.itemsize:
        raise WeightFileError(f"{path}: storage {key} is truncated or corrupt; "
                              "re-download or re-save the file")
  return obj, data, False


def _to_array(t: _Tensor, data: dict[str, bytes], big_endian: bool, path: str) -> np.ndarray:
  if 0 in t.size:
    return np.zeros(t.size, t.dtype)
  item = t.dtype.itemsize
  start = t.storage.offset * t.storage.dtype.itemsize + t.offset * item
  end = start + item * (1 + sum((n - 1) * s for n, s in zip(t.size, t.stride)))
  buf = data[t.storage.key]
  if start < 0 or min(t.stride, default=0) < 0 or end > len(buf):
    raise WeightFileError(f"{path}: a tensor exceeds its storage {t.storage.key}; the file is "
                          "truncated or corrupt")
  view = np.ndarray(t.size, t.dtype, buf, start, [s * item for s in t.stride])
  arr = np.array(view, order="C")  # always a copy: contiguous, writable, owns its memory
  return arr.byteswap(inplace=True) if big_endian else arr


def _materialize(obj: Any, data: dict[str, bytes], big_endian: bool, path: str) -> Any:
  # A cyclic container recurses until RecursionError, which read_pth reports as corrupt.
  rec = lambda x: _materialize(x, data, big_endian, path)
  if isinstance(obj, _Storage):  # a storage saved on its own comes back flat
    obj = _Tensor(obj, 0, (obj.numel,), (1,), obj.dtype)
  if isinstance(obj, _Tensor):  # placeholders first: they are tuples too
    return _to_array(obj, data, big_endian, path)
  if isinstance(obj, _DType):
    return obj.np
  if isinstance(obj, dict):
    return type(obj)((k, rec(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(rec(v) for v in obj)
  return obj


def read_pth(path: str | os.PathLike) -> Any:
  """Unpickles a PyTorch checkpoint without importing torch or running its code.

  Args:
    path: A file written by ``torch.save`` (zip or legacy format).

  Returns:
    The saved object with every tensor replaced by a C-contiguous numpy array
    (bfloat16 and float8 via ``ml_dtypes``); dicts, lists, tuples and scalars kept.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    UnsafeWeightFileError: The file references anything but tensors and containers.
    WeightFileError: The file is no checkpoint, is corrupt, or has an unsupported dtype.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"PyTorch checkpoint not found: {path!r}; check the path")
  try:
    with open(path, "rb") as f:
      is_zip = f.read(4) == b"PK\x03\x04"  # not is_zipfile(): a cut zip must fail loudly
    obj, data, big_endian = (_read_zip if is_zip else _read_legacy)(path)
    return _materialize(obj, data, big_endian, path)
  except (UnsafeWeightFileError, WeightFileError):
    raise
  except Exception as err:  # EOF, bad zip, missing record, ...: a damaged file
    raise WeightFileError(f"{path}: corrupt or truncated PyTorch checkpoint ({err!r}); "
                          "re-download or re-save it") from err


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Loads a checkpoint as a flat ``{name: array}`` state dict.

  Unwraps ``{'state_dict': ..., 'epoch': ...}``-style wrappers (dropping their
  other entries), flattens nested dicts with ``'.'`` and strips the ``'module.'``
  prefix that ``nn.DataParallel`` adds.

  Args:
    path: A file written by ``torch.save``.

  Returns:
    Parameter name to numpy array.

  Raises:
    WeightFileError: No state dict, or non-tensor values in it; and all that
      :func:`read_pth` raises.
  """
  obj = read_pth(path)
  while isinstance(obj, dict) and not any(isinstance(v, np.ndarray) for v in obj.values()):
    key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
    if key is None:
      break
    obj = obj[key]
  if not isinstance(obj, dict):
    raise WeightFileError(f"{path}: expected a state dict, got {type(obj).__name__}; {_RESAVE}")
  flat: dict[str, np.ndarray] = {}

  def visit(d: dict, prefix: str) -> None:
    for k, v in d.items():
      if isinstance(v, dict):
        visit(v, f"{prefix}{k}.")
      elif isinstance(v, np.ndarray):
        flat[f"{prefix}{k}"] = v
      else:
        raise WeightFileError(f"{path}: state dict entry {prefix}{k} is "
                              f"{type(v).__name__}, not a tensor; {_RESAVE}")

  visit(obj, "")
  if flat and all(k.startswith("module.") for k in flat):
    flat = {k[len("module."):]: v for k, v in flat.items()}
  return flat
