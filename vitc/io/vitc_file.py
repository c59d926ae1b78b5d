"""The ``.vitc`` file: vitc's own single-file format, written once by ``vitc convert`` and memory-mapped
at load (zero-copy, read-only, 64-byte aligned arrays).

The ``.vitc`` file format, version 1 (all integers little-endian)::

    offset 0   6 bytes   magic b"VITC\\x00\\x01"
    offset 6   u16       format version (1)
    offset 8   u64       N, length of the JSON header
    offset 16  N bytes   UTF-8 JSON object, space-padded so the data region starts 64-byte aligned:
                         {"format_version": 1, "dtype": "float32" | "bfloat16" | "int8",
                          "packing": {"bfloat16": "nr32-k2"} or {"int8": "nr32-k4"} (reduced only),
                          "config": ViTConfig.to_dict(), "preprocessor": {...} or null,
                          "tensors": {name: {"dtype": "float32", "shape": [...],
                                             "offset": absolute file offset, "nbytes": int}}}
    then       tensor data, C order, each tensor starting at a file offset that is a multiple of 64,
               zero padding between tensors.

The tensors are vitc's (vitc/weights.py), in :func:`vitc.weights.expected_tensors` order. The top-level
"dtype" is the precision of the blocks' four GEMM weight matrices (:data:`vitc.weights.GEMM_WEIGHTS`);
every other tensor is float32. In a "bfloat16" or "int8" file those matrices are stored already packed
for the C kernels (layouts and companion tensors: vitc/weights.py), so loading maps them without
repacking. "packing" names the layout (:data:`vitc.weights.PACKING`); a reader refuses a layout its C
kernels do not produce. Readers older than reduced-precision files refuse them by the per-tensor dtype,
so the format version stays 1.

This module writes to a file it is given (vitc/io/atomic.py makes it appear atomically) and reads
without trusting anything in the file: every offset, size and shape is checked against the config.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vitc.config import CONFIG_ERRORS, ViTConfig, check_preprocessor
from vitc.io.checkpoint import (
    MAX_HEADER_BYTES,  # one cap for every JSON vitc reads: .vitc headers and config files too
    array_view,
    check_no_overlap,
    check_tensor_layout,
    map_file,
    parse_json_header,
    short_repr,
)
from vitc.weights import (
    MIN_LAYER_TENSORS,
    PACKING,
    PRECISIONS,
    TENSOR_DTYPES,
    build_packing,
    expected_tensors,
    require_build_layout,
)

__all__ = [
    "ALIGNMENT",
    "FORMAT_VERSION",
    "MAGIC",
    "VITC_SUFFIX",
    "is_converted_file",
    "is_vitc_path",
    "load_converted",
    "read",
    "read_metadata",
    "write",
]

MAGIC = b"VITC\x00\x01"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<6sHQ")  # magic, format version, header length
ALIGNMENT = 64  # a cache line / AVX-512 vector: kernels may use aligned loads on every tensor
VITC_SUFFIX = ".vitc"


# ---------------------------------------------------------------------------------------------------
# Writing .vitc files


def write(
    f: BinaryIO,
    config: ViTConfig,
    preprocessor: dict[str, Any] | None,
    precision: str,
    layout: dict[str, tuple[str, tuple[int, ...]]],
    arrays: Iterable[tuple[str, np.ndarray]],
) -> None:
    """Write a ``.vitc`` file to the binary file ``f``, positioned at its start.

    Parameters
    ----------
    f : binary file
    config, preprocessor : what the header records.
    precision : {"float32", "bfloat16", "int8"}
        Precision of the blocks' GEMM weight matrices.
    layout : dict of str to (dtype name, shape)
        :func:`vitc.weights.expected_tensors` for ``config``: the header is laid out from it.
    arrays : iterable of (name, array)
        The tensors in ``layout`` order (packed as :func:`vitc.weights.pack_weight` packs them); they
        may be produced one at a time while they are written.

    Raises
    ------
    RuntimeError
        If the arrays are not exactly those of ``layout``, or this build packs ``precision`` weights
        in another layout than :data:`vitc.weights.PACKING`.
    """
    header: dict[str, Any] = {"format_version": FORMAT_VERSION, "dtype": precision}
    if precision != "float32":
        header["packing"] = {precision: require_build_layout(precision)}
    entries: dict[str, dict[str, Any]] = {}
    header.update(config=config.to_dict(), preprocessor=preprocessor, tensors=entries)

    def encode(data_start: int) -> bytes:
        offset = data_start
        for name, (code, shape) in layout.items():
            nbytes = math.prod(shape) * TENSOR_DTYPES[code].itemsize
            entries[name] = {"dtype": code, "shape": list(shape), "offset": offset, "nbytes": nbytes}
            offset = _align(offset + nbytes)
        return json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    # Offsets live inside the header, so its length depends on where data starts: iterate until the
    # padded size is stable (two passes in practice; offsets only grow, so this terminates).
    data_start = _align(_PREFIX.size + len(encode(0)))
    while True:
        raw = encode(data_start)
        needed = _align(_PREFIX.size + len(raw))
        if needed <= data_start:
            break
        data_start = needed
    raw += b" " * (data_start - _PREFIX.size - len(raw))

    f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)))
    f.write(raw)
    written = 0
    for name, arr in arrays:
        entry = entries.get(name)
        # The header was laid out from the config: the arrays must be exactly those.
        if entry is None or arr.dtype != TENSOR_DTYPES[entry["dtype"]] or list(arr.shape) != entry["shape"]:
            raise RuntimeError(
                f"convert: tensor {name}: the kernels produced {arr.dtype} {list(arr.shape)}, the "
                f"header expects {entry and (entry['dtype'], entry['shape'])} (layout {PACKING})"
            )
        pad = entry["offset"] - f.tell()
        if pad:
            f.write(b"\x00" * pad)
        _write_tensor(f, arr)
        written += 1
    if written != len(entries):  # only possible if the tables themselves disagree
        raise RuntimeError(f"convert: wrote {written} tensors, the header lists {len(entries)}")


def _write_tensor(f: BinaryIO, arr: np.ndarray) -> None:
    """Write one tensor's bytes (little-endian, C order); a seam the tests use to inject failures."""
    if arr.size == 0:  # e.g. the zero-class head standing for an Identity classifier
        return
    f.write(memoryview(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))).cast("B"))


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


# ---------------------------------------------------------------------------------------------------
# Reading .vitc files


def is_vitc_path(path: Path) -> bool:
    """A file named .vitc (even a damaged one, reported as such) or starting with the magic."""
    return path.is_file() and (path.suffix == VITC_SUFFIX or is_converted_file(path))


def is_converted_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a regular file starting with the ``.vitc`` magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def _read_header(path: str, buf: Any) -> tuple[dict[str, Any], int]:
    """Validate the fixed prefix and return (header dict, data start)."""
    size = len(buf)
    if size < _PREFIX.size:
        raise ValueError(f"{path}: expected at least {_PREFIX.size} bytes, found {size} (truncated?)")
    magic, version, n = _PREFIX.unpack(buf[: _PREFIX.size])
    if magic != MAGIC:
        raise ValueError(f"{path}: expected magic {MAGIC!r}, found {magic!r}: not a .vitc file")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: expected format version {FORMAT_VERSION}, found {version}")
    if n > MAX_HEADER_BYTES or _PREFIX.size + n > size:
        raise ValueError(
            f"{path}: header length {n} is invalid: expected at most "
            f"{min(MAX_HEADER_BYTES, size - _PREFIX.size)} bytes (file size {size}, truncated?)"
        )
    header = parse_json_header(path, buf[_PREFIX.size : _PREFIX.size + n])
    for key, kind in (("format_version", int), ("dtype", str), ("config", dict), ("tensors", dict)):
        if not isinstance(header.get(key), kind):
            raise ValueError(f"{path}: header {key!r}: expected {kind.__name__}, found {short_repr(header.get(key))}")
    if type(header["format_version"]) is not int or header["format_version"] != version:  # not True
        raise ValueError(f"{path}: header format_version {header['format_version']} != prefix {version}")
    pre = header.get("preprocessor")
    if pre is not None and not isinstance(pre, dict):
        raise ValueError(f"{path}: header 'preprocessor': expected object or null, found {short_repr(pre)}")
    precision = header["dtype"]
    if precision not in PRECISIONS:
        raise ValueError(
            f"{path}: header 'dtype': expected one of {', '.join(PRECISIONS)}, found {short_repr(precision)}"
        )
    if precision != "float32":
        packing = header.get("packing")
        layout = packing.get(precision) if isinstance(packing, dict) else None
        if not isinstance(layout, str):
            raise ValueError(
                f"{path}: header 'packing': expected {{{precision!r}: layout name}} for a {precision} file, "
                f"found {short_repr(packing)}"
            )
    return header, _PREFIX.size + n


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header of a ``.vitc`` file without the tensor table (format_version, dtype, config, ...).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    dict
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(_PREFIX.size)
        if len(head) == _PREFIX.size and head[: len(MAGIC)] == MAGIC:
            n = _PREFIX.unpack(head)[2]
            if n <= MAX_HEADER_BYTES:
                head += f.read(n)
    header, _ = _read_header(path, head)
    header.pop("tensors")
    return header


def _check_layout(path: str, precision: str, found: str) -> None:
    """Refuse packed weights whose layout this build's kernels do not produce."""
    known = PACKING[precision]
    build = build_packing()[precision]
    if found != known or build != known:
        this_build = repr(build) if build is not None else "a layout vitc/weights.py does not describe"
        raise ValueError(
            f"{path}: {precision} weights are packed in layout {short_repr(found)}, this build of vitc packs "
            f"them as {this_build}: convert the float32 checkpoint again with this version "
            f"(vitc convert SRC DST --dtype {precision})"
        )


def read(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_converted` and the precision the file stores (its header's "dtype")."""
    path = os.fspath(path)
    buf = map_file(path)
    header, data_start = _read_header(path, buf)
    precision = header["dtype"]
    if precision != "float32":
        _check_layout(path, precision, header["packing"][precision])
    try:
        config = ViTConfig.from_dict(header["config"])
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{path}: header config: {exc}"[:2000]) from None
    if header.get("preprocessor") is not None:
        check_preprocessor(f"{path}: header", header["preprocessor"])
    table = header["tensors"]
    if config.num_hidden_layers * MIN_LAYER_TENSORS > len(table):  # see vitc.weights.MIN_LAYER_TENSORS
        raise ValueError(
            f"{path}: tensors do not match the config: {len(table)} tensors are too few "
            f"for {config.num_hidden_layers} layers"
        )
    # What the config implies (the packed lengths included): the file's table must be exactly this.
    expected = expected_tensors(config, head="head.weight" in table, pooler="pooler.weight" in table, dtype=precision)
    entries = []
    for name, info in table.items():
        if not isinstance(info, dict):
            raise ValueError(f"{path}: tensor {short_repr(name)}: expected an object, found {short_repr(info)}")
        code = info.get("dtype")
        dtype = TENSOR_DTYPES.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected dtype in {sorted(TENSOR_DTYPES)}, "
                f"found {short_repr(code)}"
            )
        if name in expected and code != expected[name][0]:
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected dtype {expected[name][0]!r}, found {code!r} "
                f"(the header says the weights are {precision})"
            )
        offset, nbytes = info.get("offset"), info.get("nbytes")
        end = offset + nbytes if type(offset) is int and type(nbytes) is int else None
        entries.append(
            check_tensor_layout(
                path,
                name,
                dtype,
                info.get("shape"),
                offset,
                end,
                base=data_start,
                limit=len(buf),
                alignment=ALIGNMENT,
            )
        )
    check_no_overlap(path, entries)
    found = {e.name: e.shape for e in entries}
    shapes = {k: shape for k, (_, shape) in expected.items()}
    if found != shapes:
        diff = sorted(set(shapes) ^ set(found)) or [k for k in shapes if shapes[k] != found[k]]
        raise ValueError(
            f"{path}: tensors do not match the config: expected {len(shapes)} tensors with the config's "
            f"shapes, differing entries: {short_repr([(k, shapes.get(k), found.get(k)) for k in diff])}"
        )
    tensors = {e.name: array_view(buf, e) for e in entries}
    return config, header.get("preprocessor"), tensors, precision


def load_converted(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Memory-map a ``.vitc`` file: zero-copy, read-only, 64-byte aligned arrays.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    config : ViTConfig
    preprocessor : dict or None
        The checkpoint's preprocessor_config.json, if it had one.
    tensors : dict of str to numpy.ndarray
        vitc names to arrays (views of the mapping; the mapping lives as long as they do): float32,
        except the packed GEMM weights of a bfloat16 / int8 file (see the module docstring).

    Raises
    ------
    ValueError
        If the file is not a valid ``.vitc`` file (the message names the file), its tensors do not
        match what its config implies, or its weights are packed in a layout this build does not know.
    """
    return read(path)[:3]
