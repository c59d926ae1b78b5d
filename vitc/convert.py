"""Hugging Face ViT weights -> vitc weights, and vitc's own single-file format (``.vitc``).

One declarative table (:data:`WEIGHT_MAP`) maps HF names to vitc's timm-style names; every checkpoint
kind goes through the same path. This module does not run the model (see model.py).

The ``.vitc`` file format, version 1 (all integers little-endian)::

    offset 0   6 bytes   magic b"VITC\\x00\\x01"
    offset 6   u16       format version (1)
    offset 8   u64       N, length of the JSON header
    offset 16  N bytes   UTF-8 JSON object, space-padded so the data region starts 64-byte aligned:
                         {"format_version": 1, "dtype": "float32",
                          "config": ViTConfig.to_dict(), "preprocessor": {...} or null,
                          "tensors": {name: {"dtype": "float32", "shape": [...],
                                             "offset": absolute file offset, "nbytes": int}}}
    then       tensor data, C order, each tensor starting at a file offset that is a multiple of 64,
               zero padding between tensors.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vitc.checkpoint import (
    array_view,
    check_no_overlap,
    check_tensor_layout,
    load_json,
    load_state_dict,
    map_file,
    parse_json_header,
    short_repr,
)
from vitc.config import ViTConfig

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "WEIGHT_MAP",
    "convert",
    "convert_state_dict",
    "expected_shapes",
    "is_converted_file",
    "load_any",
    "load_converted",
    "read_metadata",
]

MAGIC = b"VITC\x00\x01"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<6sHQ")  # magic, format version, header length
ALIGNMENT = 64  # a cache line / AVX-512 vector: kernels may use aligned loads on every tensor
MAX_HEADER_BYTES = 100 * 1024 * 1024  # a 1000-class config is ~70 kB; bounds hostile headers
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"

# vitc dtype name -> stored little-endian NumPy dtype. Only float32 is written today (issue 6).
_DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4")}


# ---------------------------------------------------------------------------------------------------
# The HF -> vitc name table


@dataclass(frozen=True)
class Rule:
    """One vitc tensor: built from ``src`` (HF names) concatenated along rows, then reshaped.

    ``{i}`` in names is the layer index. Shapes are tuples of dimension symbols (see
    :func:`_dims`) or literal ints. ``when`` says when the tensor exists: "always", "qkv_bias"
    (iff config.qkv_bias), or the name of an optional group ("head", "pooler") that is present in the
    checkpoint either completely or not at all.
    """

    dst: str
    dst_shape: tuple[str | int, ...]
    src: tuple[str, ...]
    src_shape: tuple[str | int, ...]
    when: str = "always"


_ATTN = "encoder.layer.{i}.attention"

# ref: transformers modeling_vit.py (ViTEmbeddings, ViTLayer, ViTPooler) and timm vision_transformer.py
WEIGHT_MAP: tuple[Rule, ...] = (
    # Conv2d(Cin, C, P, stride=P) as a GEMM weight: (C, Cin, Ph, Pw) flattened in (channel, y, x) order.
    Rule(
        "patch_embed.proj.weight",
        ("C", "CinPP"),
        ("embeddings.patch_embeddings.projection.weight",),
        ("C", "Cin", "Ph", "Pw"),
    ),
    Rule("patch_embed.proj.bias", ("C",), ("embeddings.patch_embeddings.projection.bias",), ("C",)),
    Rule("cls_token", ("C",), ("embeddings.cls_token",), (1, 1, "C")),
    Rule("pos_embed", ("T0", "C"), ("embeddings.position_embeddings",), (1, "T0", "C")),
    Rule("blocks.{i}.norm1.weight", ("C",), ("encoder.layer.{i}.layernorm_before.weight",), ("C",)),
    Rule("blocks.{i}.norm1.bias", ("C",), ("encoder.layer.{i}.layernorm_before.bias",), ("C",)),
    # Fused QKV, rows in query, key, value order (timm's layout).
    Rule(
        "blocks.{i}.attn.qkv.weight",
        ("3C", "C"),
        tuple(f"{_ATTN}.attention.{p}.weight" for p in ("query", "key", "value")),
        ("C", "C"),
    ),
    Rule(
        "blocks.{i}.attn.qkv.bias",
        ("3C",),
        tuple(f"{_ATTN}.attention.{p}.bias" for p in ("query", "key", "value")),
        ("C",),
        "qkv_bias",
    ),
    Rule("blocks.{i}.attn.proj.weight", ("C", "C"), (f"{_ATTN}.output.dense.weight",), ("C", "C")),
    Rule("blocks.{i}.attn.proj.bias", ("C",), (f"{_ATTN}.output.dense.bias",), ("C",)),
    Rule("blocks.{i}.norm2.weight", ("C",), ("encoder.layer.{i}.layernorm_after.weight",), ("C",)),
    Rule("blocks.{i}.norm2.bias", ("C",), ("encoder.layer.{i}.layernorm_after.bias",), ("C",)),
    Rule(
        "blocks.{i}.mlp.fc1.weight", ("F", "C"), ("encoder.layer.{i}.intermediate.dense.weight",), ("F", "C")
    ),
    Rule("blocks.{i}.mlp.fc1.bias", ("F",), ("encoder.layer.{i}.intermediate.dense.bias",), ("F",)),
    Rule("blocks.{i}.mlp.fc2.weight", ("C", "F"), ("encoder.layer.{i}.output.dense.weight",), ("C", "F")),
    Rule("blocks.{i}.mlp.fc2.bias", ("C",), ("encoder.layer.{i}.output.dense.bias",), ("C",)),
    Rule("norm.weight", ("C",), ("layernorm.weight",), ("C",)),
    Rule("norm.bias", ("C",), ("layernorm.bias",), ("C",)),
    Rule("head.weight", ("K", "C"), ("classifier.weight",), ("K", "C"), "head"),
    Rule("head.bias", ("K",), ("classifier.bias",), ("K",), "head"),
    Rule("pooler.weight", ("Cp", "C"), ("pooler.dense.weight",), ("Cp", "C"), "pooler"),
    Rule("pooler.bias", ("Cp",), ("pooler.dense.bias",), ("Cp",), "pooler"),
)

# ViTForImageClassification nests the backbone under "vit."; its classifier stays at the top level.
_BACKBONE_PREFIX = "vit."
_UNPREFIXED = ("classifier.",)
_OPTIONAL_GROUPS = ("head", "pooler")

# transformers >= 5 renames ViT parameters in memory (layers.0.attention.q_proj, mlp.fc1) and renames
# them back to the hub names above when saving; torch.save(model.state_dict()) keeps the in-memory
# names. Inverse of the "ViTModel" entry of transformers' conversion_mapping.py.
_TRANSFORMERS5_LAYER = re.compile(r"(^|\.)layers\.(\d+)\.")
_TRANSFORMERS5_RENAMES = (
    (_TRANSFORMERS5_LAYER, r"\1encoder.layer.\2."),
    (re.compile(r"\.attention\.q_proj\."), ".attention.attention.query."),
    (re.compile(r"\.attention\.k_proj\."), ".attention.attention.key."),
    (re.compile(r"\.attention\.v_proj\."), ".attention.attention.value."),
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
    (re.compile(r"\.mlp\.fc1\."), ".intermediate.dense."),
    (re.compile(r"\.mlp\.fc2\."), ".output.dense."),
)


def _hub_names(state_dict: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(state dict under hub names, hub name -> name as given) for transformers 5 in-memory names."""
    if not any(_TRANSFORMERS5_LAYER.search(k) for k in state_dict):
        return dict(state_dict), {}
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, arr in state_dict.items():
        hub = key
        if _TRANSFORMERS5_LAYER.search(key):
            for pattern, repl in _TRANSFORMERS5_RENAMES:
                hub = pattern.sub(repl, hub)
        if hub in out:
            raise ValueError(f"checkpoint has both {origin.get(hub, hub)} and {key} (the same tensor)")
        out[hub], origin[hub] = arr, key
    return out, origin


def _dims(config: ViTConfig) -> dict[str, int]:
    ph, pw = config.patch_hw
    c = config.hidden_size
    return {
        "C": c,
        "3C": 3 * c,
        "F": config.intermediate_size,
        "Cin": config.num_channels,
        "Ph": ph,
        "Pw": pw,
        "CinPP": config.num_channels * ph * pw,
        "T0": config.num_positions,
        "K": config.num_labels,
        "Cp": config.pooler_size,
    }


def _shape(symbols: tuple[str | int, ...], dims: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(s if isinstance(s, int) else dims[s] for s in symbols)


def _expand(config: ViTConfig, groups: set[str]) -> list[tuple[Rule, int | None]]:
    """The rules that apply to this config and these optional groups, with their layer index."""
    active = {"always", *groups} | ({"qkv_bias"} if config.qkv_bias else set())
    out: list[tuple[Rule, int | None]] = []
    for rule in WEIGHT_MAP:
        if rule.when not in active:
            continue
        if "{i}" in rule.dst:
            out.extend((rule, i) for i in range(config.num_hidden_layers))
        else:
            out.append((rule, None))
    return out


def _fmt(name: str, i: int | None) -> str:
    return name.format(i=i) if i is not None else name


def expected_shapes(config: ViTConfig, *, head: bool, pooler: bool) -> dict[str, tuple[int, ...]]:
    """vitc tensor names and shapes implied by ``config`` (with or without head/pooler), in file order.

    Parameters
    ----------
    config : ViTConfig
    head, pooler : bool
        Whether the classifier head / ViTModel pooler are included.

    Returns
    -------
    dict of str to tuple of int
    """
    dims = _dims(config)
    groups = {g for g, on in (("head", head), ("pooler", pooler)) if on}
    return {_fmt(r.dst, i): _shape(r.dst_shape, dims) for r, i in _expand(config, groups)}


def convert_state_dict(config: ViTConfig, state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map an HF ViT state dict to vitc names (fused QKV, flattened patch kernel), float32 C-order.

    Parameters
    ----------
    config : ViTConfig
        The checkpoint's config; it fixes every expected shape.
    state_dict : mapping of str to numpy.ndarray
        ``ViTForImageClassification`` (``vit.``-prefixed) or bare ``ViTModel`` keys.

    Returns
    -------
    dict of str to numpy.ndarray
        vitc names to float32 C-contiguous arrays (views of the input where no copy is needed).

    Raises
    ------
    ValueError
        Missing tensors, unused tensors, or a tensor whose shape differs from what the config implies
        (the message names the key, the expected and the found shape).
    """
    # Each layer has at least 11 tensors: a config claiming more layers than that allows is refused
    # before the table is expanded (a config.json saying 10**9 layers must not build 10**10 names).
    if config.num_hidden_layers * 11 > len(state_dict):
        raise ValueError(
            f"checkpoint has {len(state_dict)} tensors: too few for the config's "
            f"{config.num_hidden_layers} layers (at least 11 per layer)"
        )
    state_dict, origin = _hub_names(state_dict)
    prefix = _BACKBONE_PREFIX if any(k.startswith(_BACKBONE_PREFIX) for k in state_dict) else ""

    def hf_name(name: str) -> str:
        return name if name.startswith(_UNPREFIXED) else prefix + name

    # An optional group is present iff any of its source tensors is; a partial group is then reported
    # as missing tensors below.
    groups = {
        r.when
        for r in WEIGHT_MAP
        if r.when in _OPTIONAL_GROUPS and any(hf_name(s) in state_dict for s in r.src)
    }
    if "head" in groups and config.num_labels == 0:
        raise ValueError(
            "checkpoint has a classifier but config.json has no id2label: expected the label table "
            "to fix the classifier size"
        )
    dims = _dims(config)
    rules = _expand(config, groups)
    missing = [hf_name(_fmt(s, i)) for r, i in rules for s in r.src if hf_name(_fmt(s, i)) not in state_dict]
    if missing:
        raise ValueError(f"checkpoint is missing {len(missing)} tensor(s) the config requires: {missing}")
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}
    for rule, i in rules:
        expected_src = _shape(rule.src_shape, dims)
        parts = []
        for s in rule.src:
            key = hf_name(_fmt(s, i))
            arr = np.asarray(state_dict[key])
            if arr.shape != expected_src:
                raise ValueError(
                    f"tensor {origin.get(key, key)}: expected shape {expected_src}, found {arr.shape}"
                )
            if arr.dtype.kind != "f":
                raise ValueError(
                    f"tensor {origin.get(key, key)}: expected a floating-point dtype, found {arr.dtype}"
                )
            if key in used:  # only possible if the table itself is wrong
                raise ValueError(f"tensor {key} is used twice by the conversion table")
            used.add(key)
            parts.append(arr)
        fused = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        dst = _fmt(rule.dst, i)
        out[dst] = np.ascontiguousarray(fused.reshape(_shape(rule.dst_shape, dims)), dtype=np.float32)
    # No key is tolerated silently: a leftover means a different architecture or a wrong config.
    unused = sorted(origin.get(k, k) for k in set(state_dict) - used)
    if unused:
        raise ValueError(f"checkpoint has {len(unused)} tensor(s) vitc does not use: {unused}")
    return out


# ---------------------------------------------------------------------------------------------------
# Writing .vitc files


def _read_json_dict(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_HEADER_BYTES:
        raise ValueError(f"{path}: expected at most {MAX_HEADER_BYTES} bytes of JSON, found {size}")
    d = load_json(path, path.read_bytes(), what="file")
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(d).__name__}")
    return d


# What ViTConfig.from_dict can raise on a hostile config besides ValueError (values of the wrong
# type reaching arithmetic or comparisons); all are reported as ValueError naming the file.
_CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def _config_from_dict(path: str | os.PathLike[str], d: Any) -> ViTConfig:
    try:
        return ViTConfig.from_dict(d)
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{os.fspath(path)}: config: {type(exc).__name__}: {exc}"[:2000]) from None


def _hf_folder(src: Path) -> tuple[Path, Path]:
    """(model folder, weights path) of an HF folder or of a checkpoint file inside one."""
    if src.is_dir():
        return src, src
    if src.is_file():
        return src.parent, src
    raise FileNotFoundError(f"{src}: no such model folder or checkpoint file")


def _load_hf(src: Path) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    folder, weights = _hf_folder(src)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: expected {CONFIG_FILE} beside the weights, not found")
    config = _config_from_dict(config_path, _read_json_dict(config_path))
    pre_path = folder / PREPROCESSOR_FILE
    preprocessor = _read_json_dict(pre_path) if pre_path.is_file() else None
    tensors = convert_state_dict(config, load_state_dict(weights))
    return config, preprocessor, tensors


def _check_dtype(dtype: Any) -> str:
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name in ("bfloat16", "int8"):
        raise NotImplementedError(
            f"dtype={name!r}: .vitc files store float32 weights for now; load them in reduced precision "
            f"with vitc.ViT.from_pretrained(path, dtype={name!r}) or 'vitc predict --dtype {name}' "
            "(the weights are packed at load)"
        )
    if name not in _DTYPES:
        raise NotImplementedError(f"dtype={name!r}: .vitc files store float32 weights")
    return name


def _write_tensor(f: BinaryIO, arr: np.ndarray) -> None:
    """Write one tensor's bytes (little-endian, C order); a seam the tests use to inject failures."""
    f.write(memoryview(np.ascontiguousarray(arr, dtype="<f4")).cast("B"))


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _progress(items: list[tuple[str, np.ndarray]], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; tqdm is not a dependency
        return items
    return tqdm(items, desc=desc, unit="tensor")


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    progress: bool = True,
) -> Path:
    """Convert an HF ViT checkpoint folder (or a weights file inside one) to one ``.vitc`` file.

    The file is written to a temporary file in the destination folder, fsynced, then renamed over
    ``dst``, so ``dst`` is either absent/old or complete.

    Parameters
    ----------
    src : str or PathLike
        HF model folder with config.json (+ optional preprocessor_config.json) and weights.
    dst : str or PathLike
        Output file; if an existing folder, ``<dst>/model.vitc``.
    dtype : str, optional
        Stored dtype; only "float32" is implemented.
    progress : bool, optional
        Show a tqdm bar if tqdm is installed.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    NotImplementedError
        For any dtype other than float32.
    FileNotFoundError, ValueError
        If the source is missing or invalid.
    """
    dtype_name = _check_dtype(dtype)
    dst_path = Path(dst)
    if dst_path.is_dir():
        dst_path = dst_path / "model.vitc"
    config, preprocessor, tensors = _load_hf(Path(src))

    entries: dict[str, dict[str, Any]] = {}
    header = {
        "format_version": FORMAT_VERSION,
        "dtype": dtype_name,
        "config": config.to_dict(),
        "preprocessor": preprocessor,
        "tensors": entries,
    }

    def encode(data_start: int) -> bytes:
        offset = data_start
        for name, arr in tensors.items():
            entries[name] = {
                "dtype": dtype_name,
                "shape": list(arr.shape),
                "offset": offset,
                "nbytes": arr.nbytes,
            }
            offset = _align(offset + arr.nbytes)
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

    dst_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst_path.name}.", suffix=".tmp", dir=dst_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)))
            f.write(raw)
            for name, arr in _progress(list(tensors.items()), progress, f"writing {dst_path.name}"):
                pad = entries[name]["offset"] - f.tell()
                if pad:
                    f.write(b"\x00" * pad)
                _write_tensor(f, arr)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dst_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(dst_path.parent)
    return dst_path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself; not every platform lets a directory be opened, hence best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# Reading .vitc files


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


def load_converted(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Memory-map a ``.vitc`` file: zero-copy, read-only, 64-byte aligned float32 arrays.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    config : ViTConfig
    preprocessor : dict or None
        The checkpoint's preprocessor_config.json, if it had one.
    tensors : dict of str to numpy.ndarray
        vitc names to arrays (views of the mapping; the mapping lives as long as they do).

    Raises
    ------
    ValueError
        If the file is not a valid ``.vitc`` file (the message names the file), or its tensors do not
        match what its config implies.
    """
    path = os.fspath(path)
    buf = map_file(path)
    header, data_start = _read_header(path, buf)
    try:
        config = ViTConfig.from_dict(header["config"])
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{path}: header config: {exc}"[:2000]) from None
    if config.num_hidden_layers * 11 > len(header["tensors"]):  # see convert_state_dict
        raise ValueError(
            f"{path}: tensors do not match the config: {len(header['tensors'])} tensors are too few "
            f"for {config.num_hidden_layers} layers"
        )
    entries = []
    for name, info in header["tensors"].items():
        if not isinstance(info, dict):
            raise ValueError(f"{path}: tensor {short_repr(name)}: expected an object, found {short_repr(info)}")
        code = info.get("dtype")
        dtype = _DTYPES.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected dtype in {sorted(_DTYPES)}, "
                f"found {short_repr(code)}"
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
    tensors = {e.name: array_view(buf, e) for e in entries}
    expected = expected_shapes(config, head="head.weight" in tensors, pooler="pooler.weight" in tensors)
    found = {k: v.shape for k, v in tensors.items()}
    if found != expected:
        diff = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
        raise ValueError(
            f"{path}: tensors do not match the config: expected {len(expected)} tensors with the config's "
            f"shapes, differing entries: {short_repr([(k, expected.get(k), found.get(k)) for k in diff])}"
        )
    return config, header.get("preprocessor"), tensors


def load_any(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Load a ``.vitc`` file, or an HF folder/weights file converted in memory.

    Parameters
    ----------
    path : str or PathLike
        A ``.vitc`` file, an HF model folder, or a weights file inside one.

    Returns
    -------
    (ViTConfig, preprocessor dict or None, dict of vitc tensors)
    """
    p = Path(path)
    if p.is_file() and is_converted_file(p):
        return load_converted(p)
    return _load_hf(p)
