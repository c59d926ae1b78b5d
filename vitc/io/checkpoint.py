"""Readers for Hugging Face checkpoint files: safetensors, PyTorch zip ``.bin``, and sharded indexes.

Pure Python + NumPy: no torch, no safetensors package. Tensors are memory-mapped read-only views
where the file layout allows it. This module does not rename or reshape anything (see hf.py).
"""

from __future__ import annotations

import io
import itertools
import math
import mmap
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vitc.files import (
    MAX_JSON_BYTES,
    MAX_JSON_CONTAINERS,  # noqa: F401 - this module's limit too, named here with the others
    file_kind,
    load_json,
    map_regular,
    open_regular,
    read_json_file,
    require_file,
    short_repr,
)

__all__ = [
    "SAFETENSORS_DTYPES",
    "TensorEntry",
    "check_tensor_layout",
    "load_state_dict",
    "read_safetensors",
    "read_torch_bin",
]

# safetensors dtype code -> little-endian NumPy dtype of the stored bytes. BF16 has no NumPy dtype:
# it is read as uint16 and widened to float32 (its top 16 bits) by _to_float32.
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# A JSON header this large is not a tensor table; refusing it bounds the memory a hostile file can
# make us allocate before any validation has happened. One cap for every JSON vitc reads (vitc/files.py).
MAX_HEADER_BYTES = MAX_JSON_BYTES
# Tensors in one file or shard index. A ViT-L file has ~400; DeepSeek-V3's index, one of the largest
# on the Hub, lists ~92k. Bounds the time spent validating a hostile table of empty tensors.
MAX_TENSORS = 1 << 17
# JSON arrays + objects in one document: vitc.files.MAX_JSON_CONTAINERS, 4 per tensor of MAX_TENSORS.
# data.pkl is ~150 bytes per tensor (ViT-L: 60 kB, 392 tensors), so 16 MB is ~100k tensors.
MAX_PICKLE_BYTES = 16 * 1024 * 1024
# Pickle opcodes the unpickler may run. Real pickles average ~4 bytes per opcode (~37 opcodes per
# tensor; ViT-L: 14k) while one byte (']') can allocate ~80 bytes of Python objects, so the count is
# tied to the file's size (data.pkl is stored uncompressed inside it) plus a constant for tiny files.
PICKLE_BYTES_PER_OP = 4
MAX_PICKLE_OPS_SLACK = 100_000
# Unpickler state: torch's pickles keep at most ~2000 objects on the stack (SETITEMS batches of 1000
# pairs), nest MARKs < 10 deep and memoise ~10 objects per tensor.
MAX_PICKLE_STACK = 50_000
MAX_PICKLE_MARKS = 1_000
MAX_PICKLE_MEMO = 1 << 20
# Deflate cannot compress better than ~1032:1, so a member declaring more is lying (zip bomb).
MAX_DEFLATE_RATIO = 1100
# NumPy's own limit on array rank; also bounds the work of checking a hostile shape list.
MAX_NDIM = 64
# Bytes a .bin may make us allocate besides its memory map, as a multiple of its size plus a constant:
# inflated deflate members (torch.save stores every member uncompressed, so real files need none),
# non-contiguous tensor copies and F16/BF16 widening (at most 2x). Without it a deflated storage of
# zeros turns a 200 kB file into 200 MB, and memo references to one storage under many keys turn a
# small file into terabytes of copies.
MAX_COPY_RATIO = 4
MAX_COPY_SLACK = 1 << 20

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"


# ---------------------------------------------------------------------------------------------------
# Shared layout validation (safetensors and the .vitc format both use it)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a flat binary file: ``[begin, end)`` are absolute byte offsets in the file."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_tensor_layout(
    path: str | os.PathLike[str],
    name: str,
    dtype: np.dtype,
    shape: Any,
    begin: Any,
    end: Any,
    *,
    base: int,
    limit: int,
    alignment: int = 1,
) -> TensorEntry:
    """Validate one tensor table entry and return it as a :class:`TensorEntry`.

    Parameters
    ----------
    path : str or PathLike
        File name, quoted in error messages.
    name : str
        Tensor name, quoted in error messages.
    dtype : numpy.dtype
        Stored element type (gives the item size).
    shape : Any
        Must be a list of non-negative ints.
    begin, end : Any
        Absolute byte offsets, ``base <= begin <= end <= limit``.
    base, limit : int
        Byte range of the file's data region.
    alignment : int, optional
        ``begin`` must be a multiple of it.

    Returns
    -------
    TensorEntry

    Raises
    ------
    ValueError
        Naming the file, the tensor, what was expected and what was found.
    """

    def where() -> str:  # only on failure: short_repr costs more than the checks
        return f"{os.fspath(path)}: tensor {short_repr(name)}"

    if (
        not isinstance(shape, (list, tuple))
        or len(shape) > MAX_NDIM
        or not all(_is_int(d) and d >= 0 for d in shape)
    ):
        raise ValueError(
            f"{where()}: expected shape as a list of at most {MAX_NDIM} non-negative ints, "
            f"found {short_repr(shape)}"
        )
    if not (_is_int(begin) and _is_int(end)):
        raise ValueError(
            f"{where()}: expected integer byte offsets, found [{short_repr(begin)}, {short_repr(end)}]"
        )
    if not base <= begin <= end <= limit:
        raise ValueError(
            f"{where()}: expected offsets within the data region [{base}, {limit}] with begin <= end, "
            f"found [{begin}, {end}]"
        )
    # Python ints: no overflow however large the claimed shape.
    nbytes = math.prod(shape) * dtype.itemsize
    if end - begin != nbytes:
        # Huge products are shown in scientific notation (int -> str of >4300 digits raises).
        need = nbytes if nbytes < 10**40 else f"{float(min(nbytes, 10**300)):.3g}"
        raise ValueError(
            f"{where()}: shape {short_repr(list(shape))} x {dtype.itemsize}-byte items needs {need} bytes, "
            f"found {end - begin} bytes between its offsets"
        )
    if begin % alignment:
        raise ValueError(f"{where()}: expected offset aligned to {alignment} bytes, found {begin}")
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def check_no_overlap(path: str | os.PathLike[str], entries: Iterable[TensorEntry]) -> None:
    """Raise ValueError if two non-empty tensors share bytes (a file's table must be a partition)."""
    spans = sorted((e for e in entries if e.end > e.begin), key=lambda e: (e.begin, e.end))
    for prev, cur in itertools.pairwise(spans):
        if cur.begin < prev.end:
            raise ValueError(
                f"{os.fspath(path)}: tensor {short_repr(cur.name)} bytes [{cur.begin}, {cur.end}) overlap "
                f"tensor {short_repr(prev.name)} bytes [{prev.begin}, {prev.end}); expected disjoint ranges"
            )


def map_file(path: str | os.PathLike[str]) -> mmap.mmap:
    """Memory-map a whole regular file read-only (:func:`vitc.files.map_regular`: an empty file, a
    FIFO, a device or a pseudo-file is refused with a message naming it)."""
    return map_regular(path, "checkpoint file")


def array_view(buf: mmap.mmap, entry: TensorEntry) -> np.ndarray:
    """Zero-copy read-only view of a validated entry (copied only if misaligned for its dtype)."""
    if entry.end == entry.begin:
        return np.empty(entry.shape, dtype=entry.dtype)
    count = (entry.end - entry.begin) // entry.dtype.itemsize
    arr = np.frombuffer(buf, dtype=entry.dtype, count=count, offset=entry.begin).reshape(entry.shape)
    # Unaligned views work in NumPy but are slow and not every C kernel accepts them.
    return arr if arr.flags.aligned else arr.copy()


def _to_float32(arr: np.ndarray, code: str) -> np.ndarray:
    """Widen half types to float32 (BF16 bits are the top half of a float32); others unchanged."""
    if code == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if code == "F16":
        return arr.astype(np.float32)
    return arr


def parse_json_header(path: str | os.PathLike[str], raw: bytes) -> dict[str, Any]:
    """Decode a JSON object header, refusing duplicate keys (which would hide a tensor)."""
    obj = load_json(path, raw)
    if not isinstance(obj, dict):
        raise ValueError(f"{os.fspath(path)}: expected a JSON object header, found {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------------
# safetensors


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file without the safetensors package.

    F32/F64/integer tensors are read-only views of a memory map (no copy); F16 and BF16 are converted
    to float32.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    dict of str to numpy.ndarray
        Tensors in header order.

    Raises
    ------
    ValueError
        If the header or any tensor entry is malformed, out of bounds or overlapping.
    """
    path = os.fspath(path)
    buf = map_file(path)
    size = len(buf)
    if size < 8:
        raise ValueError(f"{path}: expected at least 8 bytes (header length), found {size}")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise ValueError(
            f"{path}: header length {n} is invalid: expected at most "
            f"{min(MAX_HEADER_BYTES, size - 8)} bytes (file size {size})"
        )
    header = parse_json_header(path, buf[8 : 8 + n])
    header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise ValueError(f"{path}: header lists {len(header)} tensors: expected at most {MAX_TENSORS}")
    base = 8 + n
    entries: list[tuple[TensorEntry, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise ValueError(f"{path}: tensor {short_repr(name)}: expected an object, found {short_repr(info)}")
        code = info.get("dtype")
        if not isinstance(code, str) or code not in SAFETENSORS_DTYPES:
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected dtype in {sorted(SAFETENSORS_DTYPES)}, "
                f"found {short_repr(code)}"
            )
        offsets = info.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected data_offsets [begin, end] ints, "
                f"found {short_repr(offsets)}"
            )
        entry = check_tensor_layout(
            path,
            name,
            SAFETENSORS_DTYPES[code],
            info.get("shape"),
            base + offsets[0],
            base + offsets[1],
            base=base,
            limit=size,
        )
        entries.append((entry, code))
    check_no_overlap(path, (e for e, _ in entries))
    return {e.name: _to_float32(array_view(buf, e), code) for e, code in entries}


# ---------------------------------------------------------------------------------------------------
# PyTorch zip checkpoints (torch.save, torch >= 1.6)

# torch storage class name -> (stored little-endian dtype, safetensors-style code for widening)
_TORCH_STORAGES: dict[str, tuple[np.dtype, str]] = {
    "DoubleStorage": (np.dtype("<f8"), "F64"),
    "FloatStorage": (np.dtype("<f4"), "F32"),
    "HalfStorage": (np.dtype("<f2"), "F16"),
    "BFloat16Storage": (np.dtype("<u2"), "BF16"),
    "LongStorage": (np.dtype("<i8"), "I64"),
    "IntStorage": (np.dtype("<i4"), "I32"),
    "ShortStorage": (np.dtype("<i2"), "I16"),
    "CharStorage": (np.dtype("i1"), "I8"),
    "ByteStorage": (np.dtype("u1"), "U8"),
    "BoolStorage": (np.dtype("?"), "BOOL"),
}


# The pickle can reach only the objects below, and BUILD/SETATTR opcodes can mutate whatever is on the
# unpickler's stack. So every object a pickle can touch is immutable: NamedTuples and slot-less
# callables have no __dict__, no __setstate__ and refuse setattr; the results are re-checked by exact
# type at the end. A mutable stand-in would let one hostile file silently corrupt every later load.


class _StorageType(NamedTuple):
    """Stands in for ``torch.XStorage`` inside the unpickler; never a torch object."""

    dtype: np.dtype
    code: str


class _Storage(NamedTuple):
    data: np.ndarray  # 1-D, numel elements of the storage dtype (a view of the archive)
    code: str


class _Tensor(NamedTuple):
    """A rebuilt tensor: a strided, read-only view of its storage, kept in the storage dtype."""

    array: np.ndarray
    code: str


def _shape_tuple(what: str, value: Any) -> tuple[int, ...]:
    if (
        type(value) not in (tuple, list)
        or len(value) > MAX_NDIM
        or not all(_is_int(v) and v >= 0 for v in value)
    ):
        raise pickle.UnpicklingError(
            f"{what}: expected a tuple of at most {MAX_NDIM} non-negative ints, found {short_repr(value)}"
        )
    return tuple(int(v) for v in value)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    """Replacement for ``torch._utils._rebuild_tensor(_v2)``: a validated strided view of the storage.

    Every element index must fall inside the storage, and a tensor may not have more elements than its
    storage (a stride-0 "expanded" tensor would otherwise turn a few bytes into terabytes when copied).
    """
    if type(storage) is not _Storage:
        raise pickle.UnpicklingError(
            f"tensor storage: expected a persistent storage, found {type(storage).__name__}"
        )
    size_t, stride_t = _shape_tuple("tensor size", size), _shape_tuple("tensor stride", stride)
    if len(size_t) != len(stride_t):
        raise pickle.UnpicklingError(f"tensor stride: expected {len(size_t)} entries, found {stride_t}")
    if not _is_int(storage_offset) or storage_offset < 0:
        raise pickle.UnpicklingError(
            f"tensor offset: expected an int >= 0, found {short_repr(storage_offset)}"
        )
    data = storage.data
    numel = math.prod(size_t)
    if numel > data.size:
        raise pickle.UnpicklingError(
            f"tensor size {short_repr(size_t)}: expected at most the storage's {data.size} elements, "
            f"found {numel if numel < 10**40 else 'more'}"
        )
    if numel == 0:
        return _Tensor(np.empty(size_t, dtype=data.dtype), storage.code)  # dims are <= data.size
    # A dimension of size 1 never moves, so its stride is irrelevant (and may be anything).
    stride_t = tuple(s if n > 1 else 0 for n, s in zip(size_t, stride_t, strict=True))
    last = storage_offset + sum((n - 1) * s for n, s in zip(size_t, stride_t, strict=True))
    if last >= data.size:
        raise pickle.UnpicklingError(
            f"tensor size {size_t} stride {stride_t} offset {storage_offset}: expected element "
            f"indices below the storage size {data.size}, found {last}"
        )
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[storage_offset:], shape=size_t, strides=[s * item for s in stride_t], writeable=False
    )
    return _Tensor(view, storage.code)


def _rebuild_parameter(data: Any, requires_grad: Any = None, backward_hooks: Any = None, *_: Any) -> Any:
    """Replacement for ``torch._utils._rebuild_parameter``: a parameter is just its tensor here."""
    return data


class _RebuildTensor:
    """``torch._utils._rebuild_tensor(_v2)`` as the pickle sees it: immutable (no attributes)."""

    __slots__ = ()

    def __call__(self, *args: Any) -> _Tensor:
        return _rebuild_tensor(*args)


class _RebuildParameter:
    """``torch._utils._rebuild_parameter`` as the pickle sees it: immutable (no attributes)."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        return _rebuild_parameter(*args)


class _NewOrderedDict:
    """``collections.OrderedDict`` as the pickle sees it: a constructor only (REDUCE with no args).

    Handing out the class itself would let BUILD/SETATTR target it; each call returns a fresh dict
    the pickle fills with SETITEM(S).
    """

    __slots__ = ()

    def __call__(self, *args: Any) -> OrderedDict:
        if args:
            raise pickle.UnpicklingError(
                f"collections.OrderedDict: expected no arguments, found {len(args)}"
            )
        return OrderedDict()


# (module, name) -> what the pickle gets instead. Nothing else can be named by the pickle.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _RebuildTensor(),
    ("torch._utils", "_rebuild_tensor"): _RebuildTensor(),
    ("torch._utils", "_rebuild_parameter"): _RebuildParameter(),
    ("collections", "OrderedDict"): _NewOrderedDict(),
    **{("torch", cls): _StorageType(dt, code) for cls, (dt, code) in _TORCH_STORAGES.items()},
}

# What unpickling a hostile or corrupt data.pkl can raise besides UnpicklingError: the opcodes' own
# failures, wrong arguments to the allowed callables, and errors reading storages from the archive.
_MALFORMED_PICKLE_ERRORS = (
    EOFError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    RecursionError,
    OverflowError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
)


def _guarded(op: Any) -> Any:
    """Wrap one opcode handler of the pure-Python unpickler with the op budget and state caps."""

    def run(self: _StateDictUnpickler) -> None:
        self._ops_left -= 1
        if self._ops_left < 0:
            raise pickle.UnpicklingError(
                f"{self._path}: {self._what} runs more than {self._max_ops} opcodes: expected at most one per "
                f"{PICKLE_BYTES_PER_OP} bytes of the file and one per 2 bytes of pickle data, plus "
                f"{MAX_PICKLE_OPS_SLACK} (a pickle bomb?)"
            )
        op(self)
        # Each opcode adds at most one entry to the stack, the MARK stack or the memo.
        if (
            len(self.stack) > MAX_PICKLE_STACK
            or len(self.metastack) > MAX_PICKLE_MARKS
            or len(self.memo) > MAX_PICKLE_MEMO
        ):
            raise pickle.UnpicklingError(
                f"{self._path}: {self._what} holds {len(self.stack)} objects on its stack, {len(self.metastack)} "
                f"nested MARKs and {len(self.memo)} memo entries: expected at most {MAX_PICKLE_STACK}, "
                f"{MAX_PICKLE_MARKS} and {MAX_PICKLE_MEMO} (a pickle bomb?)"
            )

    return run


def _load_bytearray8(self: _StateDictUnpickler) -> None:
    """BYTEARRAY8 with its length checked first: the pure-Python unpickler allocates (and zeroes) the
    claimed length before reading, so 13 bytes claiming 2**31 took 2 GB and 6 s."""
    (n,) = struct.unpack("<Q", self.read(8))
    if n > self._max_bytes:
        raise pickle.UnpicklingError(
            f"{self._path}: {self._what}: BYTEARRAY8 claims {n} bytes: expected at most the "
            f"{self._max_bytes} bytes of pickle data"
        )
    self.append(bytearray(self.read(n)))


class _StateDictUnpickler(pickle._Unpickler):  # noqa: SLF001 - see below
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` and reads storages from the archive.

    It derives from the pure-Python unpickler on purpose: the C one keeps its memo in an array sized by
    the largest index a PUT names, so ``LONG_BINPUT 778593140`` in a 2.6 kB file (found by
    tools/fuzz/) allocated 12 GB. The Python one keeps the memo in a dict, and its ``load`` loop looks
    every opcode up in ``self.dispatch``, so replacing that table with guarded handlers counts opcodes
    and caps the stack, MARK stack and memo (a 4 kB file of ``]`` opcodes otherwise builds millions of
    lists). data.pkl of a ViT-L state dict is ~60 kB, so the speed difference is negligible.
    """

    dispatch = {code: _guarded(op) for code, op in pickle._Unpickler.dispatch.items()}  # noqa: SLF001
    dispatch[pickle.BYTEARRAY8[0]] = _guarded(_load_bytearray8)

    def __init__(
        self,
        file: Any,
        *,
        path: str,
        storage_reader: Any,
        max_ops: int,
        max_bytes: int,
        what: str = "data.pkl",
        legacy: bool = False,
        allowed: dict[tuple[str, str], Any] | None = None,
    ) -> None:
        # torch.load decodes Python 2 strings (old legacy files) as UTF-8, not pickle's default ASCII.
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._what = what  # names the pickle in error messages
        self._read_storage = storage_reader  # None: the pickle may not name storages
        self._legacy = legacy  # persistent ids have the legacy format's 6th entry (view metadata)
        self._allowed = _ALLOWED_GLOBALS if allowed is None else allowed
        self._storages: dict[str, _Storage] = {}
        self._views: dict[str, _Storage] = {}
        self._max_ops = self._ops_left = max_ops
        self._max_bytes = max_bytes  # bytes of pickle data: bounds every length field

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                f"refusing to load global {str(module)[:200]}.{str(name)[:200]} from {self._path}: "
                "only tensor state dicts are allowed"
            ) from None

    def _check_key(self, key: Any) -> str:
        if (
            type(key) is not str
            or not key
            or len(key) > 255
            or "/" in key
            or "\\" in key
            or "\x00" in key
            or key in (".", "..")
        ):
            raise pickle.UnpicklingError(f"{self._path}: invalid storage key {short_repr(key)}")
        return key

    def persistent_load(self, pid: Any) -> _Storage:
        size = 6 if self._legacy else 5
        if self._read_storage is None or not (type(pid) is tuple and len(pid) == size and pid[0] == "storage"):
            expected = "('storage', type, key, location, numel" + (", view)" if self._legacy else ")")
            raise pickle.UnpicklingError(
                f"{self._path}: {self._what}: expected "
                f"{'no persistent id' if self._read_storage is None else 'persistent id ' + expected}, "
                f"found {short_repr(pid)}"
            )
        stype, key, numel = pid[1], pid[2], pid[4]
        if type(stype) is not _StorageType:
            raise pickle.UnpicklingError(f"{self._path}: expected a storage type, found {short_repr(stype)}")
        key = self._check_key(key)
        if not _is_int(numel) or numel < 0:
            raise pickle.UnpicklingError(
                f"{self._path}: storage {key}: expected numel >= 0, found {short_repr(numel)}"
            )
        cached = self._storages.get(key)
        if cached is None:
            if key in self._views:
                raise pickle.UnpicklingError(f"{self._path}: storage key {key} names both a storage and a view")
            cached = _Storage(self._read_storage(key, stype.dtype, numel), stype.code)
            self._storages[key] = cached
        elif cached.data.dtype != stype.dtype or cached.data.size < numel:
            raise pickle.UnpicklingError(
                f"{self._path}: storage {key} referenced with conflicting types/sizes"
            )
        if not self._legacy or pid[5] is None:
            return cached
        return self._view(key, cached, pid[5])

    def _view(self, root_key: str, root: _Storage, meta: Any) -> _Storage:
        """A legacy storage view ``(view_key, offset, numel)``: elements of its root storage
        (ref: torch/serialization.py, _legacy_load's persistent_load)."""
        if not (type(meta) is tuple and len(meta) == 3):
            raise pickle.UnpicklingError(
                f"{self._path}: storage {root_key}: expected view metadata (key, offset, numel) or None, "
                f"found {short_repr(meta)}"
            )
        view_key, offset, numel = self._check_key(meta[0]), meta[1], meta[2]
        if not (_is_int(offset) and _is_int(numel) and offset >= 0 and numel >= 0):
            raise pickle.UnpicklingError(
                f"{self._path}: storage view {view_key}: expected offset and numel >= 0, found "
                f"{short_repr(offset)} and {short_repr(numel)}"
            )
        if offset + numel > root.data.size:
            raise pickle.UnpicklingError(
                f"{self._path}: storage view {view_key}: elements [{offset}, {offset + numel}) of storage "
                f"{root_key}: expected them within its {root.data.size} elements"
            )
        cached = self._views.get(view_key)
        if view_key in self._storages:
            raise pickle.UnpicklingError(f"{self._path}: storage key {view_key} names both a storage and a view")
        if cached is None:
            # torch keeps the first view under a key; a later reference reuses it whatever it says.
            cached = _Storage(root.data[offset : offset + numel], root.code)
            self._views[view_key] = cached
        return cached


def _check_member_names(path: str, names: list[str]) -> str:
    """Refuse path traversal and return the archive's single top-level folder."""
    prefixes = set()
    for n in names:
        parts = n.split("/")
        if n.startswith(("/", "\\")) or "\\" in n or ".." in parts or (len(n) > 1 and n[1] == ":"):
            raise ValueError(f"{path}: refusing zip member with an unsafe path {n!r}")
        prefixes.add(parts[0])
    if len(prefixes) != 1:
        raise ValueError(f"{path}: expected one top-level folder in the archive, found {sorted(prefixes)}")
    return prefixes.pop()


class _ByteBudget:
    """What a .bin may make us allocate besides its memory map (see :data:`MAX_COPY_RATIO`)."""

    def __init__(self, path: str, file_size: int) -> None:
        self.path, self.file_size = path, file_size
        self.total = self.left = MAX_COPY_RATIO * file_size + MAX_COPY_SLACK

    def spend(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise ValueError(
                f"{self.path}: {what} would need {nbytes} bytes: expected at most {self.left} more "
                f"(in all {self.total} for a {self.file_size}-byte file)"
            )
        self.left -= nbytes


def _member_bytes(
    path: str,
    zf: zipfile.ZipFile,
    buf: mmap.mmap,
    info: zipfile.ZipInfo,
    budget: _ByteBudget,
    cap: int | None = None,
) -> np.ndarray:
    """The bytes of one member: a zero-copy view for stored members, a bounded read if deflated.

    Inflated bytes are spent from ``budget`` before anything is decompressed (zipfile stops at the
    declared size and checks the CRC, so the declaration bounds the allocation).
    """
    if info.flag_bits & 0x1:
        raise ValueError(f"{path}: member {info.filename} is encrypted")
    if cap is not None and info.file_size > cap:
        raise ValueError(
            f"{path}: member {info.filename}: expected at most {cap} bytes, found {info.file_size}"
        )
    if info.compress_type == zipfile.ZIP_STORED:
        # torch.save stores storages uncompressed and 64-byte aligned, so map them in place; the local
        # header's name/extra lengths may differ from the central directory's, so read them from it.
        h = info.header_offset
        local = buf[h : h + 30]
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: member {info.filename}: bad local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = h + 30 + name_len + extra_len
        if info.compress_size != info.file_size or start + info.file_size > len(buf):
            raise ValueError(
                f"{path}: member {info.filename}: expected {info.file_size} bytes inside the archive "
                f"(size {len(buf)}), found them to end at {start + info.compress_size}"
            )
        return np.frombuffer(buf, dtype=np.uint8, count=info.file_size, offset=start)
    if info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise ValueError(
                f"{path}: member {info.filename} claims {info.file_size} bytes from {info.compress_size} "
                f"compressed bytes: expected a ratio below {MAX_DEFLATE_RATIO} (zip bomb?)"
            )
        budget.spend(info.file_size, f"inflating deflated member {info.filename}")
        try:  # zipfile stops at file_size and checks the CRC
            return np.frombuffer(zf.read(info), dtype=np.uint8)
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            OverflowError,
            NotImplementedError,  # flag bits zipfile refuses (5: patched data, 6: strong encryption)
            RuntimeError,  # zipfile's own "encrypted" check
        ) as exc:
            raise ValueError(
                f"{path}: member {info.filename}: corrupt compressed data ({type(exc).__name__}: {exc})"
            ) from None
    raise ValueError(f"{path}: member {info.filename}: unsupported compression {info.compress_type}")


def _unpickle(path: str, unpickler: _StateDictUnpickler, at_eof: Any = None) -> Any:
    """``unpickler.load()`` with every failure as a ValueError naming the file and the pickle.

    ``at_eof()`` (legacy files) tells whether the pickle ran into the end of the file: the error a
    truncated pickle gives depends on where it was cut, so truncation is reported as such.
    """
    what = unpickler._what

    def malformed(detail: str) -> ValueError:
        if at_eof is not None and at_eof():
            return ValueError(f"{path}: file is truncated: {what} ends early ({detail})")
        return ValueError(f"{path}: malformed {what} ({detail})")

    try:
        return unpickler.load()
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        raise (ValueError(msg) if path in msg else malformed(msg)) from None
    except MemoryError:
        # Counted opcodes (BINBYTES8, FRAME, ...) allocate their claimed length before reading; the
        # pickle data (at most MAX_PICKLE_BYTES) cannot hold what it claims.
        raise malformed("a length field claims more memory than exists") from None
    except ValueError as exc:  # e.g. unsupported protocol, a storage past the budget
        msg = str(exc)
        raise (ValueError(msg) if msg.startswith(path) else malformed(msg)) from None
    except _MALFORMED_PICKLE_ERRORS as exc:
        raise malformed(f"{type(exc).__name__}: {exc}") from None


def _finish_state_dict(path: str, obj: Any, budget: _ByteBudget) -> dict[str, np.ndarray]:
    """The unpickled state dict as C-contiguous arrays, F16/BF16 widened to float32."""
    # Exact types: BUILD may have set instance attributes (an 'items' that shadows the method), so
    # the dict is read through dict's own methods.
    if type(obj) not in (dict, OrderedDict):
        raise ValueError(f"{path}: expected a state dict (mapping), found {type(obj).__name__}")
    items = list(dict.items(obj))
    for k, v in items:
        if type(k) is not str or type(v) is not _Tensor:
            raise ValueError(
                f"{path}: expected str -> tensor entries, found {short_repr(k)} -> {type(v).__name__}"
            )
    # Copies (non-contiguous views, F16/BF16 widening) are made once per distinct tensor, after
    # checking their total against the file size (memo references can repeat one tensor many times).
    copies: dict[int, int] = {}
    for _, v in items:
        a = v.array
        if v.code in ("F16", "BF16"):
            copies[id(v)] = a.size * 4
        elif not a.flags.c_contiguous:
            copies[id(v)] = a.nbytes
    budget.spend(sum(copies.values()), "tensors' copies (the same storage referenced many times?)")
    done: dict[int, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for k, v in items:
        if id(v) not in done:
            # not np.ascontiguousarray: it makes 0-d tensors (a scalar buffer) 1-d
            done[id(v)] = _to_float32(np.require(v.array, requirements="C"), v.code)
        out[k] = done[id(v)]
    return out


def read_torch_bin(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch checkpoint (``torch.save``, zip or legacy format) without importing torch.

    The pickle may only name the tensor rebuild functions, ``collections.OrderedDict`` and torch
    storage types; any other global is refused before it can run. Uncompressed storages (what
    torch.save writes) are memory-mapped; F16/BF16 tensors are converted to float32. Files written
    with ``_use_new_zipfile_serialization=False`` (torch < 1.6, old hub uploads) are read the same way
    (see :func:`_read_torch_legacy`).

    Parameters
    ----------
    path : str or PathLike
        The ``.bin``/``.pt`` file.

    Returns
    -------
    dict of str to numpy.ndarray
        The state dict, C-contiguous arrays.

    Raises
    ------
    ValueError
        For a forbidden global, an unsafe archive, a truncated file or out-of-range tensors.
    """
    path = os.fspath(path)
    buf = map_file(path)
    if buf[:1] == b"\x80":  # pickle PROTO opcode: the pre-1.6 torch.save format
        return _read_torch_legacy(path, buf)
    if buf[257:262] == b"ustar":
        raise ValueError(
            f"{path}: a tar archive: the tar format of torch.save (PyTorch < 0.4) is not supported; "
            "re-save the state dict with a newer torch"
        )
    try:
        # zipfile.is_zipfile is not used: it raises (BadZipFile, OSError) on some corrupt
        # end-of-central-directory records instead of returning False.
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        if buf[:2] != b"PK":
            raise ValueError(
                f"{path}: expected a PyTorch zip checkpoint, found neither zip nor pickle data"
            ) from None
        raise ValueError(f"{path}: corrupt zip archive ({exc})") from None
    except (
        zipfile.LargeZipFile,
        ValueError,
        OverflowError,
        struct.error,
        EOFError,
        NotImplementedError,
        OSError,  # seeks to offsets a corrupt directory claims
    ) as exc:
        raise ValueError(f"{path}: corrupt zip archive ({type(exc).__name__}: {exc})") from None
    budget = _ByteBudget(path, len(buf))
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        prefix = _check_member_names(path, list(infos))
        pkl = infos.get(f"{prefix}/data.pkl")
        if pkl is None:
            raise ValueError(f"{path}: expected {prefix}/data.pkl in the archive, found {sorted(infos)[:10]}")
        order = infos.get(f"{prefix}/byteorder")
        if order is not None:
            found = bytes(_member_bytes(path, zf, buf, order, budget, cap=16))
            if found != b"little":
                raise ValueError(f"{path}: expected byteorder 'little', found {found!r}")

        def read_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            info = infos.get(f"{prefix}/data/{key}")
            if info is None:
                raise pickle.UnpicklingError(f"{path}: storage member {prefix}/data/{key} is missing")
            # Check the claim against the declared size before touching the bytes.
            if numel * dtype.itemsize > info.file_size:
                raise pickle.UnpicklingError(
                    f"{path}: storage {key}: {numel} x {dtype.itemsize}-byte items need "
                    f"{numel * dtype.itemsize} bytes, found a {info.file_size}-byte member"
                )
            raw = _member_bytes(path, zf, buf, info, budget)
            raw = raw[: numel * dtype.itemsize]
            if raw.ctypes.data % dtype.alignment:
                raw = raw.copy()
            return raw.view(dtype)

        pickle_bytes = bytes(_member_bytes(path, zf, buf, pkl, budget, cap=MAX_PICKLE_BYTES))
        # Tied to the file (real files: storages + zip headers >> data.pkl) and to data.pkl itself
        # (~3 bytes per opcode in protocol 4), so a 16 MB pickle inside a huge file is bounded too.
        max_ops = MAX_PICKLE_OPS_SLACK + min(len(buf) // PICKLE_BYTES_PER_OP, len(pickle_bytes) // 2)
        unpickler = _StateDictUnpickler(
            io.BytesIO(pickle_bytes),
            path=path,
            storage_reader=read_storage,
            max_ops=max_ops,
            max_bytes=len(pickle_bytes),
        )
        obj = _unpickle(path, unpickler)
    return _finish_state_dict(path, obj, budget)


# ---------------------------------------------------------------------------------------------------
# PyTorch legacy checkpoints (torch.save(..., _use_new_zipfile_serialization=False), torch < 1.6)
#
# ref: torch/serialization.py _legacy_save / _legacy_load. The file is five pickles, then raw bytes:
#   1. the magic number LEGACY_MAGIC, 2. the protocol version LEGACY_PROTOCOL_VERSION, 3. sys info (a
#   dict: byte order, type sizes; torch ignores it when loading), 4. the state dict, whose storages are
#   persistent ids ('storage', torch.XStorage, key, location, numel, view) with view None or
#   (view key, offset, numel) into the storage, 5. the list of storage keys; then, per key in that
#   order, an int64 little-endian element count (== numel) and the storage's bytes (little-endian).
# The storages' offsets are known only after pickle 5, which follows the state dict, so the state dict
# is unpickled twice: once to learn each storage's type and size (tensors are not built), then, with the
# offsets computed and checked against the file, to build the tensors as views of the memory map.

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_LEGACY_COUNT = struct.Struct("<q")


class _PickleSource:
    """``buf[pos:end]`` as the file the unpickler reads: reads stop at ``end``, so a length field that
    claims more than is there gets short data (then a clean error) instead of a huge allocation."""

    def __init__(self, buf: Any, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def read(self, n: int = -1) -> bytes:
        stop = self.end if n is None or n < 0 else min(self.end, self.pos + n)
        data = bytes(self.buf[self.pos : stop])
        self.pos = stop
        return data

    def readline(self) -> bytes:
        i = self.buf.find(b"\n", self.pos, self.end)
        return self.read((self.end if i < 0 else i + 1) - self.pos)


class _Discard:
    """The tensor rebuild functions during the first pass over a legacy state dict: no tensors yet."""

    __slots__ = ()

    def __call__(self, *args: Any) -> None:
        return None


_NO_GLOBALS: dict[tuple[str, str], Any] = {}
_SCAN_GLOBALS = {
    **_ALLOWED_GLOBALS,
    ("torch._utils", "_rebuild_tensor_v2"): _Discard(),
    ("torch._utils", "_rebuild_tensor"): _Discard(),
}


def _read_torch_legacy(path: str, buf: mmap.mmap) -> dict[str, np.ndarray]:
    """The legacy (non-zip) ``torch.save`` format; see the comment above for its layout."""
    size = len(buf)
    budget = _ByteBudget(path, size)
    # The pickles come first and are small (ViT-L's state dict: ~60 kB, then 1.2 GB of storages).
    end = min(size, MAX_PICKLE_BYTES)
    source = _PickleSource(buf, 0, end)
    # One opcode budget for all five pickles, as for data.pkl: tied to the file and the pickle bytes.
    ops = {"left": MAX_PICKLE_OPS_SLACK + min(size // PICKLE_BYTES_PER_OP, end // 2)}

    def at_eof() -> bool:
        return source.pos >= size

    def load(what: str, allowed: dict, storage_reader: Any = None, max_ops: int | None = None) -> Any:
        unpickler = _StateDictUnpickler(
            source,
            path=path,
            storage_reader=storage_reader,
            max_ops=ops["left"] if max_ops is None else max_ops,
            max_bytes=end,
            what=what,
            legacy=True,
            allowed=allowed,
        )
        try:
            obj = _unpickle(path, unpickler, at_eof)
        except ValueError as exc:
            if source.pos >= end and end < size:  # not truncated: the pickles are past the cap
                raise ValueError(
                    f"{path}: {what} does not end within the first {MAX_PICKLE_BYTES} bytes: expected "
                    f"at most that much pickle data before the storages ({exc})"
                ) from None
            raise
        if max_ops is None:
            ops["left"] = unpickler._ops_left
        return obj

    magic = load("magic number", _NO_GLOBALS)
    if type(magic) is not int or magic != LEGACY_MAGIC:
        raise ValueError(
            f"{path}: expected torch.save's magic number {LEGACY_MAGIC:#x} first, found {short_repr(magic)}: "
            "not a PyTorch checkpoint"
        )
    version = load("protocol version", _NO_GLOBALS)
    if type(version) is not int or version != LEGACY_PROTOCOL_VERSION:
        raise ValueError(
            f"{path}: expected legacy protocol version {LEGACY_PROTOCOL_VERSION}, found {short_repr(version)}"
        )
    sys_info = load("sys info", _NO_GLOBALS)
    if type(sys_info) is not dict:
        raise ValueError(f"{path}: expected the sys info dict, found {type(sys_info).__name__}")

    # Pass 1: which storages, of which type and size (each must fit in the file).
    storages: dict[str, tuple[np.dtype, int]] = {}

    def record(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        if numel * dtype.itemsize > size:
            raise pickle.UnpicklingError(
                f"{path}: storage {key}: {numel} x {dtype.itemsize}-byte items need {numel * dtype.itemsize} "
                f"bytes, found a {size}-byte file"
            )
        storages[key] = (dtype, numel)
        # A stand-in of the right dtype and size that owns no memory; pass 1 builds no tensors from it.
        return np.broadcast_to(np.zeros((), dtype), (numel,))

    pickle_start = source.pos
    ops_before = ops["left"]
    load("state dict pickle", _SCAN_GLOBALS, record)
    pickle_end, scan_ops = source.pos, ops_before - ops["left"]
    keys = load("storage key list", _NO_GLOBALS)
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise ValueError(f"{path}: expected the list of storage keys, found {short_repr(keys)}")
    if len(keys) != len(set(keys)) or set(keys) != set(storages):
        raise ValueError(
            f"{path}: storage key list {short_repr(keys)}: expected each storage of the state dict once, "
            f"found {len(keys)} keys for storages {short_repr(sorted(storages))}"
        )

    # The storages' records, in the key list's order: count, then count x itemsize bytes.
    spans: dict[str, tuple[int, int]] = {}
    pos = source.pos
    for key in keys:
        dtype, numel = storages[key]
        nbytes = numel * dtype.itemsize
        if pos + _LEGACY_COUNT.size > size:
            raise ValueError(
                f"{path}: file is truncated: storage {key}'s element count at byte {pos} is past its end ({size})"
            )
        (count,) = _LEGACY_COUNT.unpack_from(buf, pos)
        if count != numel:
            raise ValueError(
                f"{path}: storage {key} at byte {pos}: expected {numel} elements (as the state dict says), "
                f"found {count}"
            )
        pos += _LEGACY_COUNT.size
        if pos + nbytes > size:
            raise ValueError(
                f"{path}: file is truncated: storage {key} needs bytes [{pos}, {pos + nbytes}), the file has {size}"
            )
        spans[key] = (pos, nbytes)
        pos += nbytes

    def read_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        begin, nbytes = spans[key]  # pass 1 saw the same pickle name the same storages
        if nbytes == 0:
            return np.empty(0, dtype)
        raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=begin)
        if begin % dtype.alignment:  # the pickles' length fixes where the records start
            budget.spend(nbytes, f"aligning storage {key}")
            raw = raw.copy()
        return raw.view(dtype)

    # Pass 2: the same opcodes again, so the same budget; now the tensors are views of the storages.
    source.pos, source.end = pickle_start, pickle_end
    obj = load("state dict pickle", _ALLOWED_GLOBALS, read_storage, max_ops=scan_ops)
    return _finish_state_dict(path, obj, budget)


# ---------------------------------------------------------------------------------------------------
# Hugging Face folders and sharded indexes


def _read_checkpoint_file(path: Path) -> dict[str, np.ndarray]:
    """Dispatch on suffix, then content: zip or pickle data is a torch checkpoint, else safetensors."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    with open_regular(path, "checkpoint file") as f:
        head = f.read(4)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return read_torch_bin(path)
    return read_safetensors(path)


def _cache_blobs(folder: Path) -> Path | None:
    """The blobs folder of a Hugging Face cache snapshot (``models--o--n/snapshots/<commit>``), else None."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent / "blobs"
    return None


def read_index(index_path: Path) -> dict[Path, list[str]]:
    """A shard index (``*.index.json``): each shard's path (a file in the index's folder, checked to
    exist) and the tensor names the index puts in it, in the index's order.

    Raises
    ------
    ValueError
        For a malformed index, or a shard name that is not a plain file name in the folder (a
        Hugging Face cache snapshot's shards may be symlinks into its blobs folder).
    FileNotFoundError
        For a shard that is not there.
    """
    folder = index_path.parent.resolve()
    index = read_json_file(index_path, "index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path}: expected a non-empty 'weight_map' object, found {short_repr(weight_map)}")
    if len(weight_map) > MAX_TENSORS:
        raise ValueError(f"{index_path}: weight_map lists {len(weight_map)} tensors: expected at most {MAX_TENSORS}")
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or "\x00" in shard or len(shard) > 255:
            raise ValueError(
                f"{index_path}: tensor {short_repr(name)}: expected a shard file name, found {short_repr(shard)}"
            )
        by_shard.setdefault(shard, []).append(name)
    out: dict[Path, list[str]] = {}
    for shard, names in by_shard.items():
        shard_path = folder / shard
        if shard_path.parent != folder:  # "../x", "a/b", "/abs": not a plain name
            raise ValueError(f"{index_path}: shard {short_repr(shard)} must be a file name inside {folder}")
        # What it names first (a FIFO, device or symlink loop is refused unopened), then where.
        require_file(shard_path, "shard", missing=f"{index_path}: shard {short_repr(shard)} not found in {folder}")
        try:
            target = shard_path.resolve()
        except (OSError, RuntimeError) as exc:  # a name the file system refuses; a loop (Python < 3.13)
            raise ValueError(f"{index_path}: shard {short_repr(shard)}: unusable file name ({exc})") from None
        # In the Hugging Face cache a snapshot's files are symlinks to its repo's blobs folder.
        if target.parent not in (folder, _cache_blobs(folder)):
            raise ValueError(f"{index_path}: shard {short_repr(shard)} must be a file name inside {folder}")
        out[shard_path] = names
    return out


def _read_sharded(index_path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for shard_path, names in read_index(index_path).items():
        tensors = _read_checkpoint_file(shard_path)
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"{shard_path}: tensors listed in {index_path.name} are missing: {short_repr(missing)}")
        extra = sorted(set(tensors) - set(names))
        if extra:
            raise ValueError(
                f"{shard_path}: tensors not listed for this shard in {index_path.name}: {short_repr(extra)}"
            )
        out.update(tensors)
    return out


# The weights files of a folder, in the order they are looked for (safetensors preferred).
WEIGHTS_CANDIDATES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, TORCH_FILE, TORCH_INDEX)


def weights_path(folder_or_file: str | os.PathLike[str]) -> Path:
    """The weights file :func:`load_state_dict` reads: the file given, or a folder's first present
    :data:`WEIGHTS_CANDIDATES`.

    Raises
    ------
    FileNotFoundError
        If there is none (the message lists what was looked for).
    IsADirectoryError, UnreadableFileError, PermissionError
        If the file, or the candidate found in a folder, is a directory, FIFO, device ... .
    """
    p = Path(folder_or_file)
    kind = file_kind(p, "checkpoint file")
    if kind == "directory":
        for name in WEIGHTS_CANDIDATES:
            if file_kind(p / name, "checkpoint file") is not None:
                require_file(p / name, "checkpoint file")  # a FIFO or folder of that name is refused
                return p / name
        raise FileNotFoundError(f"{p}: no checkpoint found; looked for {', '.join(WEIGHTS_CANDIDATES)}")
    require_file(p, "checkpoint file", missing=f"{p}: no such file or folder")
    return p


def weights_files(folder_or_file: str | os.PathLike[str]) -> list[Path]:
    """Every file :func:`load_state_dict` reads for ``folder_or_file``: the weights file, or a shard
    index and its shards."""
    p = weights_path(folder_or_file)
    return [p, *read_index(p)] if p.name.endswith(".index.json") else [p]


def load_state_dict(folder_or_file: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load the weights of a Hugging Face model folder or of one checkpoint file.

    In a folder the first present of ``model.safetensors``, ``model.safetensors.index.json``,
    ``pytorch_model.bin``, ``pytorch_model.bin.index.json`` is used (safetensors preferred).

    Parameters
    ----------
    folder_or_file : str or PathLike
        A folder, a ``.safetensors``/``.bin`` file, or a ``*.index.json`` shard index.

    Returns
    -------
    dict of str to numpy.ndarray
        HF tensor names to arrays (float32 for floating tensors stored as F16/BF16).

    Raises
    ------
    FileNotFoundError
        If nothing loadable is found (the message lists what was looked for).
    ValueError
        If a file is malformed.
    IsADirectoryError, PermissionError, UnreadableFileError
        If a file to read is a directory, may not be read, or is a FIFO, device or pseudo-file.
    """
    p = weights_path(folder_or_file)
    if p.name.endswith(".index.json"):
        return _read_sharded(p)
    return _read_checkpoint_file(p)
