"""The ``.vitc`` file: vitc's own single-file format, written once by ``vitc convert`` and memory-mapped
at load (zero-copy, read-only, 64-byte aligned arrays), or read into process memory (``mmap=False``).

The ``.vitc`` file format, version 3 (all integers little-endian)::

    offset 0   6 bytes   magic b"VITC\\x00\\x01"
    offset 6   u16       format version (3)
    offset 8   u64       N, length of the JSON header
    offset 16  u32       CRC-32 (zlib.crc32) of bytes [0, 16) followed by the N header bytes
    offset 20  N bytes   ASCII JSON object (non-ASCII characters as \\u escapes), space-padded so the
                         data region starts 64-byte aligned. Exactly these keys, in this order:
                         {"format_version": 3, "dtype": "float32" | "bfloat16" | "int8",
                          "packing": null (float32) or {"bfloat16": "nr32-k2"} or {"int8": "nr32-k4"},
                          "checksum": "crc32",
                          "config": ViTConfig.to_dict() (every field of :data:`CONFIG_KEYS`),
                          "preprocessor": null or PreprocessorConfig.to_dict() (:data:`PREPROCESSOR_KEYS`),
                          "tensors": {name: {"dtype": "float32", "shape": [...],
                                             "offset": absolute file offset, "nbytes": int,
                                             "crc32": 8 lowercase hex digits of the tensor's bytes}}}
    then       tensor data, C order, each tensor starting at a file offset that is a multiple of 64,
               zero padding between tensors.

Integrity: the header checksum is verified on every read (a flipped byte there could change the
activation, an epsilon or the preprocessing and still parse); a key that is unknown or missing at any
level is an error (a file from a newer vitc says so), so nothing in the header is silently dropped.
The tensors' checksums are verified on request (``verify=True``, ``vitc info --verify``): ~0.5 s per GB
on one core, which a memory-mapped load in milliseconds should not pay by default. CRC-32 because it is
the fastest check in the standard library (measured on a 1.2 GB file: zlib.crc32 2.2 GB/s; sha1 0.66,
sha256 0.61, md5 0.25, blake2b 0.27 GB/s) and detects every burst of up to 32 flipped bits; it guards
against damage, not against a forger, who can recompute any unkeyed checksum.

Version 2 is version 3 with fewer config keys (:data:`V2_CONFIG_KEYS`: no DeiT / timm / output
defaults fields, which then take their defaults) and only ViT tensors; it is still read.

Version 1 (vitc before the checksums) is still read: the same layout without the u32 at offset 16
(the header starts at 16), UTF-8 JSON, no "checksum" key, "packing" only in reduced-precision files,
the preprocessor_config.json dict as the checkpoint had it, and no "crc32" per tensor. Its header keys
are checked as far as version 1 fixes them (no unknown key anywhere but inside the preprocessor); it
cannot be verified (``verify=True`` warns: convert it again to get checksums).

The tensors are vitc's (vitc/weights.py), in :func:`vitc.weights.expected_tensors` order. The top-level
"dtype" is the precision of the blocks' four GEMM weight matrices (:data:`vitc.weights.GEMM_WEIGHTS`);
every other tensor is float32. In a "bfloat16" or "int8" file those matrices are stored already packed
for the C kernels (layouts and companion tensors: vitc/weights.py), so loading maps them without
repacking. "packing" names the layout (:data:`vitc.weights.PACKING`); a reader refuses a layout its C
kernels do not produce.

The memory-mapping contract: a mapped file must not be modified in place while a model maps it (its
pages are the model's weights: a rewrite changes them, a truncation kills the process with SIGBUS on
the next access). vitc's own writers never do that: they write a new file and rename it over the old
one (vitc/io/atomic.py), so a model keeps the old inode. To be independent of the file, load with
``mmap=False``: the tensors are read into process memory.

This module writes to a file it is given (vitc/io/atomic.py makes it appear atomically) and reads
without trusting anything in the file: every offset, size and shape is checked against the config.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vitc.config import CONFIG_ERRORS, PreprocessorConfig, ViTConfig, check_preprocessor
from vitc.files import (
    MAX_JSON_BYTES,
    aligned_empty,
    file_kind,
    map_regular,
    open_regular,
    short_repr,
)
from vitc.io.checkpoint import (
    TensorEntry,
    array_view,
    check_no_overlap,
    check_tensor_layout,
    parse_json_header,
)
from vitc.weights import (
    MIN_LAYER_TENSORS,
    PACKING,
    PRECISIONS,
    TENSOR_DTYPES,
    build_packing,
    expected_tensors,
    present_groups,
    require_build_layout,
)

__all__ = [
    "ALIGNMENT",
    "CONFIG_KEYS",
    "FORMAT_VERSION",
    "HEADER_KEYS",
    "MAGIC",
    "PREPROCESSOR_KEYS",
    "TENSOR_KEYS",
    "VITC_SUFFIX",
    "ChecksumError",
    "NoChecksumsWarning",
    "is_converted_file",
    "is_vitc_path",
    "load_converted",
    "read",
    "read_metadata",
    "write",
]

MAGIC = b"VITC\x00\x01"
FORMAT_VERSION = 3  # what write() produces; versions 1, 2 and 3 are read
_PREFIX = struct.Struct("<6sHQ")  # every version: magic, format version, header length
_PREFIX2 = struct.Struct("<6sHQI")  # version >= 2: + CRC-32 of the first 16 bytes and the header
ALIGNMENT = 64  # a cache line / AVX-512 vector: kernels may use aligned loads on every tensor
VITC_SUFFIX = ".vitc"
CHECKSUM = "crc32"
_CRC_HEX = re.compile(r"[0-9a-f]{8}")
_CRC_PLACEHOLDER = "00000000"  # same width as every CRC: the header is laid out before the data is

# The keys of a version-3 header, at each level: exactly these (a new key is a new format version).
HEADER_KEYS = ("format_version", "dtype", "packing", "checksum", "config", "preprocessor", "tensors")
TENSOR_KEYS = ("dtype", "shape", "offset", "nbytes", "crc32")
CONFIG_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "image_size",
    "patch_size",
    "num_channels",
    "qkv_bias",
    "pooler_output_size",
    "pooler_act",
    "id2label",
    "label2id",
    "architectures",
    "model_type",
)
# Format 3 added these config keys (ViTConfig fields since the ViT family and transformers' output flags).
V2_CONFIG_KEYS = CONFIG_KEYS
CONFIG_KEYS = (
    *V2_CONFIG_KEYS,
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "encoder_stride",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "problem_type",
    "global_pool",
)
# Every field of PreprocessorConfig plus its type name, sorted; nulls kept (a null that disables a
# step and one that is the default both read back as they were written).
PREPROCESSOR_KEYS = tuple(sorted(("image_processor_type", *(f.name for f in fields(PreprocessorConfig)))))
# Version 1 wrote these ("packing" in reduced-precision files only) and its config held a subset of
# CONFIG_KEYS (fields were only ever added); its preprocessor was the checkpoint's dict, any keys.
_V1_HEADER_KEYS = ("format_version", "dtype", "packing", "config", "preprocessor", "tensors")
_V1_TENSOR_KEYS = ("dtype", "shape", "offset", "nbytes")


class ChecksumError(ValueError):
    """A ``.vitc`` file whose tensors do not match their checksums: damaged on disk or in transit.

    ``tensors`` lists the damaged tensors' names, in file order.
    """

    def __init__(self, message: str, tensors: list[str]) -> None:
        super().__init__(message)
        self.tensors = tensors

    def __reduce__(self):  # picklable (Ray workers) despite the custom __init__
        return type(self), (str(self), self.tensors)


class NoChecksumsWarning(UserWarning):
    """``verify=True`` on a file that carries no checksums (a format-1 ``.vitc``, an HF checkpoint)."""


# ---------------------------------------------------------------------------------------------------
# Writing .vitc files


def _header_bytes(header: dict[str, Any]) -> bytes:
    # ASCII: a label with a lone surrogate (valid JSON "\udc80", which transformers keeps) is written
    # as that escape and read back as the same string; UTF-8 cannot encode it.
    return json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _canonical_preprocessor(preprocessor: dict[str, Any] | None) -> dict[str, Any] | None:
    """The preprocessor settings as vitc applies them, every key present (the header's form)."""
    if preprocessor is None:
        return None
    out = PreprocessorConfig.from_dict(preprocessor).to_dict(all_keys=True)
    if tuple(out) != PREPROCESSOR_KEYS:  # vitc/config.py changed: that is a new format version
        raise RuntimeError(f"PreprocessorConfig.to_dict() keys {list(out)} != format {FORMAT_VERSION}'s")
    return out


def write(
    f: BinaryIO,
    config: ViTConfig,
    preprocessor: dict[str, Any] | None,
    precision: str,
    layout: dict[str, tuple[str, tuple[int, ...]]],
    arrays: Iterable[tuple[str, np.ndarray]],
) -> None:
    """Write a ``.vitc`` file (format :data:`FORMAT_VERSION`) to the binary file ``f``, positioned
    at its start. ``f`` must be seekable: the header, laid out first, gets the tensors' checksums
    once they are written.

    The bytes depend only on the arguments (no time, no version string): converting the same
    checkpoint twice gives the same file.

    Parameters
    ----------
    f : binary file
    config, preprocessor : what the header records (the preprocessor in its canonical form,
        :meth:`vitc.config.PreprocessorConfig.to_dict`).
    precision : {"float32", "bfloat16", "int8"}
        Precision of the blocks' GEMM weight matrices.
    layout : dict of str to (dtype name, shape)
        :func:`vitc.weights.expected_tensors` for ``config``: the header is laid out from it.
    arrays : iterable of (name, array)
        The tensors in ``layout`` order (packed as :func:`vitc.weights.pack_weight` packs them); they
        may be produced one at a time while they are written.

    Raises
    ------
    ValueError
        If the header would be larger than a reader accepts (:data:`vitc.files.MAX_JSON_BYTES`;
        e.g. a config with millions of labels); nothing is written then.
    RuntimeError
        If the arrays are not exactly those of ``layout``, or this build packs ``precision`` weights
        in another layout than :data:`vitc.weights.PACKING`.
    """
    config_dict = config.to_dict()
    if tuple(config_dict) != CONFIG_KEYS:  # vitc/config.py changed: that is a new format version
        raise RuntimeError(f"ViTConfig.to_dict() keys {list(config_dict)} != format {FORMAT_VERSION}'s")
    packing = {precision: require_build_layout(precision)} if precision != "float32" else None
    entries: dict[str, dict[str, Any]] = {}
    header: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dtype": precision,
        "packing": packing,
        "checksum": CHECKSUM,
        "config": config_dict,
        "preprocessor": _canonical_preprocessor(preprocessor),
        "tensors": entries,
    }

    def encode(data_start: int) -> bytes:
        offset = data_start
        for name, (code, shape) in layout.items():
            nbytes = math.prod(shape) * TENSOR_DTYPES[code].itemsize
            entries[name] = {"dtype": code, "shape": list(shape), "offset": offset, "nbytes": nbytes}
            entries[name]["crc32"] = _CRC_PLACEHOLDER
            offset = _align(offset + nbytes)
        return _header_bytes(header)

    # Offsets live inside the header, so its length depends on where data starts: iterate until the
    # padded size is stable (two passes in practice; offsets only grow, so this terminates).
    data_start = _align(_PREFIX2.size + len(encode(0)))
    while True:
        raw = encode(data_start)
        needed = _align(_PREFIX2.size + len(raw))
        if needed <= data_start:
            break
        data_start = needed
    raw += b" " * (data_start - _PREFIX2.size - len(raw))
    if len(raw) > MAX_JSON_BYTES:  # a reader would refuse the file: never write one
        raise ValueError(
            f"the .vitc header would be {len(raw)} bytes: expected at most {MAX_JSON_BYTES} (readers refuse "
            f"larger ones); the config has {config.num_labels} labels"
        )
    parse_json_header("the .vitc header being written", raw)  # the readers' JSON limits hold for it

    f.write(_PREFIX2.pack(MAGIC, FORMAT_VERSION, len(raw), 0))
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
        entry["crc32"] = f"{zlib.crc32(_tensor_bytes(arr)):08x}"
        written += 1
    if written != len(entries):  # only possible if the tables themselves disagree
        raise RuntimeError(f"convert: wrote {written} tensors, the header lists {len(entries)}")
    final = _header_bytes(header)
    final += b" " * (len(raw) - len(final))
    if len(final) != len(raw):  # the CRCs have the placeholder's width: only a bug gets here
        raise RuntimeError(f"convert: the header grew from {len(raw)} to {len(final)} bytes")
    head = struct.pack("<6sHQ", MAGIC, FORMAT_VERSION, len(final))
    f.seek(0)
    f.write(head + struct.pack("<I", zlib.crc32(final, zlib.crc32(head))) + final)
    f.seek(0, os.SEEK_END)


def _tensor_bytes(arr: np.ndarray) -> memoryview | bytes:
    """One tensor's bytes as stored: little-endian, C order (a view, for the arrays vitc writes)."""
    if arr.size == 0:  # e.g. the zero-class head standing for an Identity classifier
        return b""
    return memoryview(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))).cast("B")


def _write_tensor(f: BinaryIO, arr: np.ndarray) -> None:
    """Write one tensor's bytes; a seam the tests use to inject failures."""
    data = _tensor_bytes(arr)
    if data:
        f.write(data)


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


# ---------------------------------------------------------------------------------------------------
# Reading .vitc files


def is_vitc_path(path: Path) -> bool:
    """A regular file named .vitc (even a damaged one, reported as such) or starting with the magic."""
    return file_kind(path, "model file") == "regular file" and (path.suffix == VITC_SUFFIX or is_converted_file(path))


def is_converted_file(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a regular file starting with the ``.vitc`` magic (nothing else is opened:
    a FIFO or device is False, never a read that blocks)."""
    try:
        with open_regular(path) as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:  # missing, a directory, a FIFO, a device, not readable
        return False


def _check_keys(path: str, where: str, d: dict[str, Any], allowed: tuple[str, ...], required: Iterable[str]) -> None:
    """Refuse unknown keys (and missing ``required`` ones) of one header object, naming both."""
    unknown = [k for k in d if k not in allowed]
    missing = [k for k in required if k not in d]
    if unknown or missing:
        found = "; ".join(
            part
            for part in (
                f"unknown key(s) {short_repr(unknown)}" if unknown else "",
                f"missing key(s) {missing}" if missing else "",
            )
            if part
        )
        raise ValueError(
            f"{path}: {where}: expected the keys {list(allowed)}, found {found} (the file is damaged, or "
            "was written by a newer vitc: upgrade vitc)"
        )


def _read_header(path: str, buf: Any, size: int) -> tuple[dict[str, Any], int, int]:
    """Validate the prefix and the header (its checksum from version 2 on): (header, version, data
    start). ``buf`` holds at least the prefix and header bytes the file has; ``size`` is the file's."""
    if size < _PREFIX.size:
        raise ValueError(f"{path}: expected at least {_PREFIX.size} bytes, found {size} (truncated?)")
    magic, version, n = _PREFIX.unpack(buf[: _PREFIX.size])
    if magic != MAGIC:
        raise ValueError(f"{path}: expected magic {MAGIC!r}, found {magic!r}: not a .vitc file")
    if version > FORMAT_VERSION:
        raise ValueError(_newer_format(path, buf, size, version, n))
    if version not in (1, 2, 3):
        raise ValueError(f"{path}: expected format version 1, 2 or {FORMAT_VERSION}, found {version}")
    start = _PREFIX.size if version == 1 else _PREFIX2.size
    if size < start:
        raise ValueError(f"{path}: expected at least {start} bytes, found {size} (truncated?)")
    if n > MAX_JSON_BYTES or start + n > size:
        raise ValueError(
            f"{path}: header length {n} is invalid: expected at most "
            f"{min(MAX_JSON_BYTES, size - start)} bytes (file size {size}, truncated?)"
        )
    raw = bytes(buf[start : start + n])
    if version >= 2:
        stored = _PREFIX2.unpack(buf[: _PREFIX2.size])[3]
        computed = zlib.crc32(raw, zlib.crc32(bytes(buf[: _PREFIX.size])))
        if stored != computed:
            raise ValueError(
                f"{path}: header checksum mismatch: expected crc32 {stored:08x} (stored), found {computed:08x}: "
                "the file is damaged; copy it again or convert the checkpoint again"
            )
    header = parse_json_header(path, raw)
    if version == 1:
        _check_keys(path, "header (format 1)", header, _V1_HEADER_KEYS, [k for k in _V1_HEADER_KEYS if k != "packing"])
    else:
        _check_keys(path, "header", header, HEADER_KEYS, HEADER_KEYS)
    for key, kind in (("format_version", int), ("dtype", str), ("config", dict), ("tensors", dict)):
        if not isinstance(header.get(key), kind):
            raise ValueError(f"{path}: header {key!r}: expected {kind.__name__}, found {short_repr(header.get(key))}")
    if type(header["format_version"]) is not int or header["format_version"] != version:  # not True
        raise ValueError(f"{path}: header format_version {header['format_version']} != prefix {version}")
    if version >= 2 and header["checksum"] != CHECKSUM:
        raise ValueError(f"{path}: header 'checksum': expected {CHECKSUM!r}, found {short_repr(header['checksum'])}")
    config_keys = CONFIG_KEYS if version >= 3 else V2_CONFIG_KEYS
    _check_keys(path, "header 'config'", header["config"], config_keys, config_keys if version >= 2 else ())
    pre = header["preprocessor"]
    if pre is not None and not isinstance(pre, dict):
        raise ValueError(f"{path}: header 'preprocessor': expected object or null, found {short_repr(pre)}")
    if pre is not None and version >= 2:
        _check_keys(path, "header 'preprocessor'", pre, PREPROCESSOR_KEYS, PREPROCESSOR_KEYS)
    precision = header["dtype"]
    if precision not in PRECISIONS:
        raise ValueError(
            f"{path}: header 'dtype': expected one of {', '.join(PRECISIONS)}, found {short_repr(precision)}"
        )
    packing = header.get("packing")
    if precision != "float32":
        layout = packing.get(precision) if isinstance(packing, dict) and len(packing) == 1 else None
        if not isinstance(layout, str):
            raise ValueError(
                f"{path}: header 'packing': expected {{{precision!r}: layout name}} for a {precision} file, "
                f"found {short_repr(packing)}"
            )
    elif packing is not None:
        raise ValueError(f"{path}: header 'packing': expected null for a float32 file, found {short_repr(packing)}")
    return header, version, start + n


def _newer_format(path: str, buf: Any, size: int, version: int, n: int) -> str:
    """The message for a format version above ours: upgrade vitc, unless the header's checksum (every
    version from 2 on starts with _PREFIX2) says the version field itself is damaged."""
    msg = f"{path}: written by a newer vitc (format {version}): upgrade vitc"
    if size >= _PREFIX2.size and n <= MAX_JSON_BYTES and _PREFIX2.size + n <= len(buf):
        stored = _PREFIX2.unpack(buf[: _PREFIX2.size])[3]
        if stored != zlib.crc32(bytes(buf[_PREFIX2.size : _PREFIX2.size + n]), zlib.crc32(bytes(buf[:16]))):
            msg += " (or the file is damaged: its header checksum does not match)"
    return msg


def _head_bytes(path: str, f: BinaryIO) -> tuple[bytes, int]:
    """The prefix and header bytes of an open file (at most what the header length allows) and its size."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_PREFIX2.size)
    if len(head) >= _PREFIX.size and head[: len(MAGIC)] == MAGIC:
        n = _PREFIX.unpack(head[: _PREFIX.size])[2]
        if n <= MAX_JSON_BYTES:
            head += f.read(max(0, _PREFIX2.size + n - len(head)))
    return head, max(size, len(head))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header of a ``.vitc`` file without the tensor table (format_version, dtype, config, ...),
    its checksum verified (format 2).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    dict
    """
    path = os.fspath(path)
    with open_regular(path, ".vitc file") as f:
        head, size = _head_bytes(path, f)
    header, _, _ = _read_header(path, head, size)
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


def _private_tensor(path: str, f: BinaryIO, entry: TensorEntry) -> np.ndarray:
    """One tensor read into a 64-byte aligned array of process memory."""
    arr = aligned_empty(entry.shape, entry.dtype, ALIGNMENT)
    view = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
    f.seek(entry.begin)
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(
                f"{path}: file is truncated: tensor {short_repr(entry.name)} needs bytes [{entry.begin}, "
                f"{entry.end}), the file ends at {entry.begin + done} (was it changed while being read?)"
            )
        done += got
    arr.flags.writeable = False  # as a mapped tensor: the model never writes its weights
    return arr


def read(
    path: str | os.PathLike[str],
    *,
    mmap: bool = True,
    verify: bool = False,
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_converted` and the precision the file stores (its header's "dtype")."""
    path = os.fspath(path)
    if mmap:
        buf = map_regular(path, ".vitc file")
        header, version, data_start = _read_header(path, buf, len(buf))
        size = len(buf)
    else:
        f = open_regular(path, ".vitc file")
        head, size = _head_bytes(path, f)
        try:
            header, version, data_start = _read_header(path, head, size)
        except BaseException:
            f.close()
            raise
    try:
        config, preprocessor, entries, precision = _check_tables(path, header, version, data_start, size)
        if mmap:
            tensors = {e.name: array_view(buf, e) for e in entries}
        else:
            tensors = {e.name: _private_tensor(path, f, e) for e in entries}
    finally:
        if not mmap:
            f.close()
    if verify:
        _verify(path, version, header["tensors"], tensors)
    return config, preprocessor, tensors, precision


def _check_tables(
    path: str, header: dict[str, Any], version: int, data_start: int, size: int
) -> tuple[ViTConfig, dict[str, Any] | None, list[TensorEntry], str]:
    """The config, preprocessor and tensor entries of a valid header, checked against each other."""
    precision = header["dtype"]
    if precision != "float32":
        _check_layout(path, precision, header["packing"][precision])
    try:
        config = ViTConfig.from_dict(header["config"])
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{path}: header config: {exc}"[:2000]) from None
    if header["preprocessor"] is not None:
        check_preprocessor(f"{path}: header", header["preprocessor"])
    table = header["tensors"]
    if config.num_hidden_layers * MIN_LAYER_TENSORS > len(table):  # see vitc.weights.MIN_LAYER_TENSORS
        raise ValueError(
            f"{path}: tensors do not match the config: {len(table)} tensors are too few "
            f"for {config.num_hidden_layers} layers"
        )
    # What the config implies (the packed lengths included): the file's table must be exactly this.
    expected = expected_tensors(
        config,
        head="head.weight" in table,
        pooler="pooler.weight" in table,
        dtype=precision,
        groups=present_groups(table),
    )
    keys = TENSOR_KEYS if version >= 2 else _V1_TENSOR_KEYS
    entries = []
    for name, info in table.items():
        if not isinstance(info, dict):
            raise ValueError(f"{path}: tensor {short_repr(name)}: expected an object, found {short_repr(info)}")
        _check_keys(path, f"header tensor {short_repr(name)}", info, keys, keys)
        if version >= 2 and not (isinstance(info["crc32"], str) and _CRC_HEX.fullmatch(info["crc32"])):
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected crc32 as 8 lowercase hex digits, "
                f"found {short_repr(info['crc32'])}"
            )
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
                limit=size,
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
    return config, header["preprocessor"], entries, precision


# Damaged tensors named in a ChecksumError message (all are in its .tensors).
_MAX_NAMED = 5


def _verify(path: str, version: int, table: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
    """Compare each tensor's CRC-32 with the header's; raise ChecksumError naming the damaged ones."""
    if version < 2:
        warnings.warn(NoChecksumsWarning(f"{path}: format 1 has no checksums; reconvert to check"), stacklevel=4)
        return
    bad: list[tuple[str, str, str]] = []
    for name, arr in tensors.items():
        data = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b""
        computed = f"{zlib.crc32(data):08x}"
        if computed != table[name]["crc32"]:
            bad.append((name, table[name]["crc32"], computed))
    if bad:
        named = ", ".join(f"{n} (crc32 expected {want}, found {got})" for n, want, got in bad[:_MAX_NAMED])
        more = f" and {len(bad) - _MAX_NAMED} more" if len(bad) > _MAX_NAMED else ""
        raise ChecksumError(
            f"{path}: damaged: {len(bad)} of {len(tensors)} tensors do not match their checksums: {named}{more}; "
            "copy the file again or convert the checkpoint again",
            [n for n, _, _ in bad],
        )


def load_converted(
    path: str | os.PathLike[str],
    *,
    mmap: bool = True,
    verify: bool = False,
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Load a ``.vitc`` file: memory-mapped (zero-copy, read-only, 64-byte aligned arrays) or read
    into process memory.

    The header's checksum is verified on every load (format 2).

    Parameters
    ----------
    path : str or PathLike
    mmap : bool, optional
        True (default): the arrays are views of a read-only memory map of the file, which must not
        be modified in place while they live (see the module docstring: a truncation kills the
        process with SIGBUS); vitc's writers replace files by renaming a new one over them, which
        is safe. False: every tensor is read into process memory (64-byte aligned, read-only), and
        nothing done to the file afterwards affects them.
    verify : bool, optional
        Also check every tensor's CRC-32 (format 2; reads the whole file once, ~0.5 s per GB). A
        format-1 file has no checksums: it loads with a :class:`NoChecksumsWarning`.

    Returns
    -------
    config : ViTConfig
    preprocessor : dict or None
        The preprocessing settings (format 2: :meth:`vitc.config.PreprocessorConfig.to_dict`;
        format 1: the checkpoint's preprocessor_config.json as it was), or None without one.
    tensors : dict of str to numpy.ndarray
        vitc names to arrays: float32, except the packed GEMM weights of a bfloat16 / int8 file
        (see the module docstring).

    Raises
    ------
    ValueError
        If the file is not a valid ``.vitc`` file (the message names the file), its header is
        damaged (checksum), has an unknown or missing key, or comes from a newer vitc, its tensors do
        not match what its config implies, or its weights are packed in a layout this build does
        not know.
    ChecksumError
        (a ValueError) With ``verify=True``, if a tensor's bytes do not match its checksum; the
        message names the tensors.
    FileNotFoundError, IsADirectoryError, PermissionError, vitc.files.UnreadableFileError
        If ``path`` names nothing, a folder, a file this user may not read, or a FIFO, device or
        pseudo-file.
    """
    return read(path, mmap=mmap, verify=verify)[:3]
