"""Hugging Face ViT weights -> vitc weights, and vitc's own single-file format (``.vitc``).

One declarative table (:data:`WEIGHT_MAP`) maps HF names to vitc's timm-style names; every checkpoint
kind goes through the same path. This module does not run the model (see model.py).

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

The top-level "dtype" is the precision of the blocks' four GEMM weight matrices (:data:`GEMM_WEIGHTS`);
every other tensor is float32. In a "bfloat16" or "int8" file those matrices are stored already packed
for the C kernels, exactly as ``vitc._core._pack_bf16`` / ``_pack_int8`` return them, so loading maps
them without repacking:

    bfloat16  blocks.{i}.<gemm>            "bfloat16" (bf16 bits; NumPy: uint16), [packed_len(N, K)]
    int8      blocks.{i}.<gemm>            "int8", [packed_len(N, K)]
              blocks.{i}.<gemm>.scales     "float32", [N]  per-output-channel scales
              blocks.{i}.<gemm>.col_sums   "int32", [N]    sums of each channel's quantized weights

(packed_len: N rounded up to 32 times K rounded up to 2 (bf16) or 4 (int8), from the config, never
from the file.) "packing" names the layout (:data:`PACKING`); a reader refuses a layout its C kernels
do not produce.
Readers older than reduced-precision files refuse them by the per-tensor dtype, so the format version
stays 1.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vitc import _core
from vitc.checkpoint import (
    MAX_HEADER_BYTES,  # one cap for every JSON vitc reads: .vitc headers and config files too
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
    "GEMM_WEIGHTS",
    "MAGIC",
    "PACKING",
    "PRECISIONS",
    "WEIGHT_MAP",
    "convert",
    "convert_state_dict",
    "expected_shapes",
    "expected_tensors",
    "is_converted_file",
    "load_any",
    "load_converted",
    "load_stored",
    "pack_weight",
    "packed_len",
    "read_metadata",
]

MAGIC = b"VITC\x00\x01"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<6sHQ")  # magic, format version, header length
ALIGNMENT = 64  # a cache line / AVX-512 vector: kernels may use aligned loads on every tensor
CONFIG_FILE = "config.json"
VITC_SUFFIX = ".vitc"
_TMP_SUFFIX = ".tmp"  # convert() writes ".NAME.<pid>.<random>.tmp" beside the destination, then renames it
PREPROCESSOR_FILE = "preprocessor_config.json"

# Per-tensor dtype name -> stored little-endian NumPy dtype. NumPy has no bfloat16: bf16 tensors are
# read as their uint16 bit patterns (the top half of a float32), the form the bf16 kernels take.
_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "bfloat16": np.dtype("<u2"),
    "int8": np.dtype("i1"),
    "int32": np.dtype("<i4"),
}

# Precisions of the blocks' GEMM weight matrices (the header's top-level "dtype"), as the C core names them.
PRECISIONS: tuple[str, ...] = _core.PRECISIONS
# The matrices stored in the file's precision, per block; every other tensor is float32.
GEMM_WEIGHTS = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight")
# Suffixes of the int8 matrices' companion tensors, in the order _core._pack_int8 returns them.
INT8_PARTS = ("", ".scales", ".col_sums")
# Packing layout of each reduced precision, named by the C kernels that pack it (csrc/kernels/kernels.h,
# VITC_*_PACKING): an (N, K) weight becomes panels of 32 output channels (N padded to 32 with zeros) with
# K pairs (bf16, round to nearest even) or K quads (int8, symmetric per-channel scale amax/127)
# interleaved, K padded with zeros: bf16 (N/32, K/2, 32, 2) uint16, int8 (N/32, K/4, 32, 4) int8. A
# kernel change that alters the layout or the quantization gets a new identifier there (and here, in
# _reference_pack): files written with the old one are then refused instead of misread. _build_packing
# checks the C kernels against the NumPy description below.
PACKING: dict[str, str] = dict(_core.PACKING)
_PANEL = 32
_K_GROUP = {"bfloat16": 2, "int8": 4}


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


# The config.json fields each dimension symbol comes from, quoted when a tensor's shape does not match.
_DIM_SOURCES: dict[str, tuple[str, ...]] = {
    "C": ("hidden_size",),
    "3C": ("hidden_size",),
    "F": ("intermediate_size",),
    "Cin": ("num_channels",),
    "Ph": ("patch_size",),
    "Pw": ("patch_size",),
    "CinPP": ("num_channels", "patch_size"),
    "T0": ("image_size", "patch_size"),
    "K": ("num_labels",),
    "Cp": ("pooler_output_size", "hidden_size"),
}


def _shape_sources(config: ViTConfig, symbols: tuple[str | int, ...]) -> str:
    """"hidden_size=768 (default), num_labels=len(id2label)=2": the config fields a shape comes from."""
    names = dict.fromkeys(f for s in symbols if isinstance(s, str) for f in _DIM_SOURCES[s])
    return ", ".join(config.field_source(n) for n in names)


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


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def packed_len(precision: str, n: int, k: int) -> int:
    """Elements of an (n, k) weight packed for the ``precision`` kernels (layout :data:`PACKING`)."""
    return _round_up(n, _PANEL) * _round_up(k, _K_GROUP[precision])


def expected_tensors(
    config: ViTConfig, *, head: bool, pooler: bool, dtype: str = "float32"
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Names, per-tensor dtypes and shapes of a ``.vitc`` file storing ``dtype`` weights, in file order.

    Parameters
    ----------
    config : ViTConfig
    head, pooler : bool
        Whether the classifier head / ViTModel pooler are included.
    dtype : {"float32", "bfloat16", "int8"}
        Precision of the blocks' GEMM weight matrices.

    Returns
    -------
    dict of str to (dtype name, shape)
        The packed lengths follow from the config (see :func:`packed_len`), never from a file.
    """
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, shape in expected_shapes(config, head=head, pooler=pooler).items():
        if dtype == "float32" or not name.endswith(GEMM_WEIGHTS) or not name.startswith("blocks."):
            out[name] = ("float32", shape)
        elif dtype == "bfloat16":
            out[name] = ("bfloat16", (packed_len(dtype, *shape),))
        else:
            n = shape[0]
            out[name] = ("int8", (packed_len(dtype, *shape),))
            out[name + ".scales"] = ("float32", (n,))
            out[name + ".col_sums"] = ("int32", (n,))
    return out


def pack_weight(w: np.ndarray, precision: str) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An (N, K) float32 weight in the layout of the bf16 / int8 GEMM kernels.

    Returns the packed uint16 array for "bfloat16", (packed int8, scales float32 (N), col_sums int32
    (N)) for "int8": the arrays a reduced-precision ``.vitc`` file stores and the forward takes.
    """
    w = np.ascontiguousarray(w, dtype=np.float32)
    return _core._pack_bf16(w) if precision == "bfloat16" else _core._pack_int8(w)


def _reference_pack(w: np.ndarray, precision: str) -> list[np.ndarray]:
    """:data:`PACKING` in NumPy for weights whose values survive the rounding exactly (bf16-exact
    values; int8: integers of channels whose amax/127 is the exact scale). Only _build_packing uses it."""
    n, k = w.shape
    g = _K_GROUP[precision]
    np_, kp = _round_up(n, _PANEL), _round_up(k, g)
    if precision == "bfloat16":
        q = (w.view(np.uint32) >> 16).astype(np.uint16)
        parts = []
    else:
        scales = (np.abs(w).max(axis=1) / np.float32(127)).astype(np.float32)
        q = np.rint(w / scales[:, None]).astype(np.int8)
        parts = [scales, q.astype(np.int32).sum(axis=1, dtype=np.int32)]
    padded = np.zeros((np_, kp), dtype=q.dtype)
    padded[:n, :k] = q
    panels = padded.reshape(np_ // _PANEL, _PANEL, kp // g, g).transpose(0, 2, 1, 3)
    return [np.ascontiguousarray(panels).ravel(), *parts]


@functools.cache
def _build_packing() -> dict[str, str | None]:
    """{precision: the :data:`PACKING` identifier this build's C kernels produce, or None if they pack
    differently}, checked once per process by packing a small probe matrix (microseconds)."""
    n, k = 33, 7  # two panels, the second partial; K padded for both precisions
    rows = (np.arange(n * k).reshape(n, k) % 251 - 125).astype(np.float32)
    rows[:, 0] = np.where(np.arange(n) % 2, 127, -127)  # amax 127: int8 scale 1, q = the value
    rows[1::4] *= 2  # scale 2 on some channels (even integers up to 254 stay bf16- and int8-exact)
    out: dict[str, str | None] = {}
    for precision, layout in PACKING.items():
        got = pack_weight(rows, precision)
        got = list(got) if isinstance(got, tuple) else [got]
        ref = _reference_pack(rows, precision)
        same = len(got) == len(ref) and all(
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(got, ref, strict=False)
        )
        out[precision] = layout if same else None
    return out


def _require_build_layout(precision: str) -> str:
    layout = _build_packing()[precision]
    if layout is None:
        raise RuntimeError(
            f"this build's C kernels pack {precision} weights differently from layout "
            f"{PACKING[precision]!r} that vitc/convert.py describes: update PACKING and _reference_pack "
            "with a new layout identifier before writing or reading packed files"
        )
    return layout


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
                    f"tensor {origin.get(key, key)}: expected shape {expected_src}, found {arr.shape} "
                    f"(expected from config.json: {_shape_sources(config, rule.src_shape)})"
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
    if prefix and config.num_labels == 0 and "head" not in groups:
        # ViTForImageClassification with num_labels=0 (config.json "id2label": {}) has an Identity
        # classifier, saved as no tensors: its logits are the CLS row of last_hidden_state. A head
        # with zero classes stands for it (ViT returns that row as logits); a bare ViTModel has none.
        out["head.weight"] = np.zeros((0, config.hidden_size), np.float32)
        out["head.bias"] = np.zeros((0,), np.float32)
        order = expected_shapes(config, head=True, pooler="pooler" in groups)
        out = {name: out[name] for name in order}
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


# Names of the weights files an HF model folder holds (sharded indexes end in ".index.json").
_WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".index.json")
_ACCEPTED = (
    "expected a .vitc file, a Hugging Face model folder, or a .safetensors / .bin / *.index.json "
    f"weights file beside its {CONFIG_FILE}"
)


def _hf_folder(src: Path) -> tuple[Path, Path]:
    """(model folder, weights path) of an HF folder or of a checkpoint file inside one."""
    if src.is_dir():
        return src, src
    if src.is_file():
        if not src.name.endswith(_WEIGHTS_SUFFIXES):
            raise ValueError(f"{src}: not a vitc file or a Hugging Face checkpoint ({_ACCEPTED})")
        return src.parent, src
    raise FileNotFoundError(f"{src}: no such model folder or checkpoint file")


def _check_preprocessor(where: str, preprocessor: dict[str, Any]) -> None:
    """Refuse a preprocessor config vitc cannot apply now, naming where it came from."""
    from vitc.image_processor import ImageProcessor  # lazy: Pillow is only needed for images

    try:
        ImageProcessor.from_dict(preprocessor)
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{where}: invalid preprocessor config: {exc}"[:2000]) from None


def _load_hf(src: Path) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    folder, weights = _hf_folder(src)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: expected {CONFIG_FILE} beside the weights, not found")
    config = _config_from_dict(config_path, _read_json_dict(config_path))
    pre_path = folder / PREPROCESSOR_FILE
    preprocessor = _read_json_dict(pre_path) if pre_path.is_file() else None
    if preprocessor is not None:
        _check_preprocessor(str(pre_path), preprocessor)
    tensors = convert_state_dict(config, load_state_dict(weights))
    return config, preprocessor, tensors


def _check_dtype(dtype: Any) -> str:
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in PRECISIONS:
        raise ValueError(f"dtype: expected one of {', '.join(PRECISIONS)}, got {name!r}")
    return name


def _write_tensor(f: BinaryIO, arr: np.ndarray) -> None:
    """Write one tensor's bytes (little-endian, C order); a seam the tests use to inject failures."""
    if arr.size == 0:  # e.g. the zero-class head standing for an Identity classifier
        return
    f.write(memoryview(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))).cast("B"))


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _progress(items: Any, enabled: bool, desc: str, total: int) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; tqdm is not a dependency
        return items
    return tqdm(items, desc=desc, unit="tensor", total=total)


def _stored_arrays(tensors: dict[str, np.ndarray], precision: str) -> Any:
    """(name, array) in file order: the blocks' GEMM weights packed one at a time as they are written,
    so converting holds at most one packed matrix besides the float32 checkpoint."""
    for name, arr in tensors.items():
        if precision == "float32" or not name.startswith("blocks.") or not name.endswith(GEMM_WEIGHTS):
            yield name, arr
            continue
        packed = pack_weight(arr, precision)
        parts = packed if isinstance(packed, tuple) else (packed,)
        yield from ((name + suffix, part) for suffix, part in zip(INT8_PARTS, parts, strict=False))


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    progress: bool = True,
) -> Path:
    """Convert an HF ViT checkpoint folder (or a weights file inside one) to one ``.vitc`` file.

    The file is written to a temporary file in the destination folder (``.NAME.<pid>.<random>.tmp``),
    fsynced, then renamed over ``dst``, so ``dst`` is either absent/old or complete. A conversion that
    was killed leaves its temporary file behind; the next conversion to the same ``dst`` deletes those
    whose process no longer runs (POSIX only; on a folder shared between machines or pid namespaces a
    conversion running elsewhere can look dead, so do not convert to one ``dst`` from two of them).

    Parameters
    ----------
    src : str or PathLike
        HF model folder with config.json (+ optional preprocessor_config.json) and weights.
    dst : str or PathLike
        Output file; if an existing folder, ``<dst>/model.vitc``.
    dtype : {"float32", "bfloat16", "int8"}, optional
        Precision of the blocks' four weight matrices (QKV, attention output, fc1, fc2), stored
        packed for vitc's bf16 / int8 kernels (about half / a quarter of the float32 file for
        ViT-sized models); layernorms, biases, embeddings and the head stay float32. Loading such a
        file gives the model ``ViT.from_pretrained(float32_file, dtype=dtype)`` gives, bit for bit.
    progress : bool, optional
        Show a tqdm bar if tqdm is installed.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For a dtype other than the three above, an invalid source, or a source that already is a
        ``.vitc`` file.
    FileNotFoundError
        If the source is missing.
    """
    precision = _check_dtype(dtype)
    dst_path = Path(dst)
    if dst_path.is_dir():
        dst_path = dst_path / "model.vitc"
    header: dict[str, Any] = {"format_version": FORMAT_VERSION, "dtype": precision}
    if precision != "float32":
        header["packing"] = {precision: _require_build_layout(precision)}
    src_path = Path(src)
    if _is_vitc_path(src_path):
        raise ValueError(
            f"{src_path}: already a vitc file: convert reads Hugging Face checkpoints. Load this file with "
            "vitc.ViT.from_pretrained, or convert the Hugging Face checkpoint it came from for another dtype"
        )
    config, preprocessor, tensors = _load_hf(src_path)
    layout = expected_tensors(config, head="head.weight" in tensors, pooler="pooler.weight" in tensors, dtype=precision)

    entries: dict[str, dict[str, Any]] = {}
    header.update(config=config.to_dict(), preprocessor=preprocessor, tensors=entries)

    def encode(data_start: int) -> bytes:
        offset = data_start
        for name, (code, shape) in layout.items():
            nbytes = math.prod(shape) * _DTYPES[code].itemsize
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

    dst_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dst_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst_path.name}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=dst_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)))
            f.write(raw)
            arrays = _progress(_stored_arrays(tensors, precision), progress, f"writing {dst_path.name}", len(layout))
            written = 0
            for name, arr in arrays:
                entry = entries.get(name)
                # The header was laid out from the config: the arrays must be exactly those.
                if entry is None or arr.dtype != _DTYPES[entry["dtype"]] or list(arr.shape) != entry["shape"]:
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
    fsync_dir(dst_path.parent)
    return dst_path


def _pid_alive(pid: int) -> bool:
    """False only if no process ``pid`` exists (a zombie still exists until its parent reaps it)."""
    if os.name != "posix" or pid <= 0:
        return True  # cannot tell safely: Windows' os.kill terminates the process it names
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: another user's process
        return True
    return True


def _remove_stale_temps(dst: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of conversions to ``dst`` whose process no longer runs.

    Parameters
    ----------
    dst : str or PathLike
        The destination file of :func:`convert`.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    dst = Path(dst)
    pattern = re.compile(rf"\.{re.escape(dst.name)}\.(\d+)\.[a-z0-9_]+{re.escape(_TMP_SUFFIX)}")
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            os.unlink(dst.parent / name)
        except OSError:  # another conversion removed it first, or it is not ours to remove
            continue
        removed.append(dst.parent / name)
    return removed


def fsync_dir(folder: Path) -> None:
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


def _is_vitc_path(path: Path) -> bool:
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
    build = _build_packing()[precision]
    if found != known or build != known:
        this_build = repr(build) if build is not None else "a layout vitc/convert.py does not describe"
        raise ValueError(
            f"{path}: {precision} weights are packed in layout {short_repr(found)}, this build of vitc packs "
            f"them as {this_build}: convert the float32 checkpoint again with this version "
            f"(vitc convert SRC DST --dtype {precision})"
        )


def _load_converted(
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
    except _CONFIG_ERRORS as exc:
        raise ValueError(f"{path}: header config: {exc}"[:2000]) from None
    if header.get("preprocessor") is not None:
        _check_preprocessor(f"{path}: header", header["preprocessor"])
    table = header["tensors"]
    if config.num_hidden_layers * 11 > len(table):  # see convert_state_dict
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
        dtype = _DTYPES.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise ValueError(
                f"{path}: tensor {short_repr(name)}: expected dtype in {sorted(_DTYPES)}, "
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
    return _load_converted(path)[:3]


def load_stored(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_any` and the precision of the weights it returns ("float32" for HF checkpoints)."""
    p = Path(path)
    if _is_vitc_path(p):
        return _load_converted(p)  # a damaged .vitc file is reported as one (bad magic, truncated)
    return (*_load_hf(p), "float32")


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
    return load_stored(path)[:3]
