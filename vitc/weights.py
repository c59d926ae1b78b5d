"""vitc's own weight schema: the tensors of a ViT under vitc's names, their shapes and dtypes, and the
packed layouts of the reduced-precision GEMM weights.

The names are timm-style (``blocks.{i}.attn.qkv.weight``, :data:`TENSORS`), their shapes are written in
the dimension alphabet of :func:`dims` and follow from a :class:`~vitc.config.ViTConfig` alone. Every
checkpoint family maps its own names onto these (vitc/io/hf.py for Hugging Face), the ``.vitc`` format
stores them (vitc/io/vitc_file.py) and the model takes them (vitc/model.py). This module reads no file
and knows no foreign name.

The blocks' four GEMM weight matrices (:data:`GEMM_WEIGHTS`) are float32, or packed for the bf16 / int8
kernels exactly as ``vitc._core._pack_bf16`` / ``_pack_int8`` return them (:func:`pack_weight`):

    bfloat16  blocks.{i}.<gemm>            "bfloat16" (bf16 bits; NumPy: uint16), [packed_len(N, K)]
    int8      blocks.{i}.<gemm>            "int8", [packed_len(N, K)]
              blocks.{i}.<gemm>.scales     "float32", [N]  per-output-channel scales
              blocks.{i}.<gemm>.col_sums   "int32", [N]    sums of each channel's quantized weights

(packed_len: N rounded up to 32 times K rounded up to 2 (bf16) or 4 (int8), from the config, never
from a file.) :data:`PACKING` names each layout; a reader refuses a layout its C kernels do not produce.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from vitc import _core
from vitc.config import ViTConfig

__all__ = [
    "DIM_SOURCES",
    "GEMM_WEIGHTS",
    "CONFIG_GROUPS",
    "INT8_PARTS",
    "MIN_LAYER_TENSORS",
    "NOT_GROUP_MARKERS",
    "OPTIONAL_GROUPS",
    "PACKING",
    "PRECISIONS",
    "PYTHON_TENSORS",
    "TENSORS",
    "TENSOR_DTYPES",
    "TensorSpec",
    "build_packing",
    "config_groups",
    "dims",
    "expand",
    "expected_shapes",
    "expected_tensors",
    "layer_name",
    "pack_weight",
    "present_groups",
    "packed_len",
    "require_build_layout",
    "resolve_shape",
    "shape_sources",
]

# Per-tensor dtype name -> stored little-endian NumPy dtype. NumPy has no bfloat16: bf16 tensors are
# read as their uint16 bit patterns (the top half of a float32), the form the bf16 kernels take.
TENSOR_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "bfloat16": np.dtype("<u2"),
    "int8": np.dtype("i1"),
    "int32": np.dtype("<i4"),
}

# Precisions of the blocks' GEMM weight matrices (a .vitc header's top-level "dtype"), as the C core names them.
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
# _reference_pack): files written with the old one are then refused instead of misread. build_packing
# checks the C kernels against the NumPy description below.
PACKING: dict[str, str] = dict(_core.PACKING)
_PANEL = 32
_K_GROUP = {"bfloat16": 2, "int8": 4}


# ---------------------------------------------------------------------------------------------------
# The tensors


@dataclass(frozen=True)
class TensorSpec:
    """One vitc tensor: its name (``{i}`` is the layer index) and shape (dimension symbols of
    :func:`dims`, or literal ints).

    ``when`` says when the tensor exists: "always", "qkv_bias" (iff config.qkv_bias), or the name of
    an optional group (:data:`OPTIONAL_GROUPS`: "head", "pooler") that a checkpoint has either
    completely or not at all.
    """

    name: str
    shape: tuple[str | int, ...]
    when: str = "always"


# In file order (a rule's layers together). ref: timm vision_transformer.py (VisionTransformer, Block)
TENSORS: tuple[TensorSpec, ...] = (
    # The patch Conv2d(Cin, C, P, stride=P) as a GEMM weight, its (Cin, Ph, Pw) flattened in that order.
    TensorSpec("patch_embed.proj.weight", ("C", "CinPP")),
    TensorSpec("patch_embed.proj.bias", ("C",)),
    TensorSpec("cls_token", ("C",)),
    # DeiT's distillation token, after CLS in the sequence (config model_type "deit").
    TensorSpec("dist_token", ("C",), "dist"),
    TensorSpec("pos_embed", ("T0", "C")),
    TensorSpec("blocks.{i}.norm1.weight", ("C",)),
    TensorSpec("blocks.{i}.norm1.bias", ("C",)),
    # Fused QKV, rows in query, key, value order (timm's layout).
    TensorSpec("blocks.{i}.attn.qkv.weight", ("3C", "C")),
    TensorSpec("blocks.{i}.attn.qkv.bias", ("3C",), "qkv_bias"),
    TensorSpec("blocks.{i}.attn.proj.weight", ("C", "C")),
    TensorSpec("blocks.{i}.attn.proj.bias", ("C",)),
    TensorSpec("blocks.{i}.norm2.weight", ("C",)),
    TensorSpec("blocks.{i}.norm2.bias", ("C",)),
    TensorSpec("blocks.{i}.mlp.fc1.weight", ("F", "C")),
    TensorSpec("blocks.{i}.mlp.fc1.bias", ("F",)),
    TensorSpec("blocks.{i}.mlp.fc2.weight", ("C", "F")),
    TensorSpec("blocks.{i}.mlp.fc2.bias", ("C",)),
    # The final norm of every token (timm's average pooling instead normalizes the mean: fc_norm).
    TensorSpec("norm.weight", ("C",), "norm"),
    TensorSpec("norm.bias", ("C",), "norm"),
    TensorSpec("fc_norm.weight", ("C",), "fc_norm"),
    TensorSpec("fc_norm.bias", ("C",), "fc_norm"),
    TensorSpec("head.weight", ("K", "C"), "head"),
    TensorSpec("head.bias", ("K",), "head"),
    # DeiTForImageClassificationWithTeacher's second classifier, on the distillation token.
    TensorSpec("head_dist.weight", ("K", "C"), "head_dist"),
    TensorSpec("head_dist.bias", ("K",), "head_dist"),
    TensorSpec("pooler.weight", ("Cp", "C"), "pooler"),
    TensorSpec("pooler.bias", ("Cp",), "pooler"),
    # ViTForMaskedImageModeling: the mask token (read only with bool_masked_pos, which vitc does not
    # take; kept so the checkpoint converts whole) and the decoder's 1x1 convolution before its
    # pixel shuffle. Run in NumPy by vitc/model.py, not by the C core.
    TensorSpec("mask_token", ("C",), "mim"),
    TensorSpec("mim_decoder.weight", ("Smim", "C"), "mim"),
    TensorSpec("mim_decoder.bias", ("Smim",), "mim"),
)
# Groups a checkpoint has completely or not at all, told by its tensors.
OPTIONAL_GROUPS = ("head", "head_dist", "pooler", "mim")
# Groups the config decides: "dist" (model_type deit), "norm" / "fc_norm" (global_pool token / avg).
CONFIG_GROUPS = ("dist", "norm", "fc_norm")
# Tensors that do not by themselves tell a group is there: transformers' ViTModel(use_mask_token=True)
# has a mask token without a decoder (vitc does not use it: refused as unused, not read as a MIM model).
NOT_GROUP_MARKERS = ("mask_token",)
# Tensors the Python side computes with (the MIM decoder): never given to vitc._core.Model.
PYTHON_TENSORS = ("mask_token", "mim_decoder.weight", "mim_decoder.bias")
# Tensors every layer has (11): a checkpoint with fewer than this many per layer of its config is
# refused before the table is expanded (a config saying 10**9 layers must not build 10**10 names).
MIN_LAYER_TENSORS = sum(1 for t in TENSORS if "{i}" in t.name and t.when == "always")


def dims(config: ViTConfig) -> dict[str, int]:
    """The dimension symbols of :data:`TENSORS` shapes, from ``config``."""
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
        "Smim": config.encoder_stride**2 * config.num_channels,
    }


# The config.json fields each dimension symbol comes from, quoted when a tensor's shape does not match.
DIM_SOURCES: dict[str, tuple[str, ...]] = {
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
    "Smim": ("encoder_stride", "num_channels"),
}


def shape_sources(config: ViTConfig, symbols: tuple[str | int, ...]) -> str:
    """ "hidden_size=768 (default), num_labels=len(id2label)=2": the config fields a shape comes from."""
    names = dict.fromkeys(f for s in symbols if isinstance(s, str) for f in DIM_SOURCES[s])
    return ", ".join(config.field_source(n) for n in names)


def resolve_shape(symbols: tuple[str | int, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
    """A shape in dimension symbols as ints, given :func:`dims`."""
    return tuple(s if isinstance(s, int) else sizes[s] for s in symbols)


def expand(config: ViTConfig, groups: set[str]) -> list[tuple[TensorSpec, int | None]]:
    """The tensors that exist for this config and these optional groups, with their layer index."""
    active = {"always", *groups} | config_groups(config) | ({"qkv_bias"} if config.qkv_bias else set())
    out: list[tuple[TensorSpec, int | None]] = []
    for spec in TENSORS:
        if spec.when not in active:
            continue
        if "{i}" in spec.name:
            out.extend((spec, i) for i in range(config.num_hidden_layers))
        else:
            out.append((spec, None))
    return out


def config_groups(config: ViTConfig) -> set[str]:
    """The :data:`CONFIG_GROUPS` that ``config`` implies."""
    out = {"norm" if config.global_pool == "token" else "fc_norm"}
    if config.model_type == "deit":
        out.add("dist")
    return out


def present_groups(names: Iterable[str]) -> set[str]:
    """The :data:`OPTIONAL_GROUPS` of which any tensor is among ``names`` (vitc names)."""
    names = set(names)
    return {
        t.when for t in TENSORS if t.when in OPTIONAL_GROUPS and t.name in names and t.name not in NOT_GROUP_MARKERS
    }


def layer_name(name: str, i: int | None) -> str:
    """``name`` with its ``{i}`` replaced by the layer index ``i`` (None: a name without one)."""
    return name.format(i=i) if i is not None else name


def expected_shapes(
    config: ViTConfig, *, head: bool, pooler: bool, groups: Iterable[str] = ()
) -> dict[str, tuple[int, ...]]:
    """vitc tensor names and shapes implied by ``config`` (with or without head/pooler), in file order.

    Parameters
    ----------
    config : ViTConfig
    head, pooler : bool
        Whether the classifier head / ViTModel pooler are included.
    groups : iterable of str
        Further :data:`OPTIONAL_GROUPS` included ("head_dist", "mim").

    Returns
    -------
    dict of str to tuple of int
    """
    sizes = dims(config)
    active = {g for g, on in (("head", head), ("pooler", pooler)) if on} | set(groups)
    return {layer_name(t.name, i): resolve_shape(t.shape, sizes) for t, i in expand(config, active)}


# ---------------------------------------------------------------------------------------------------
# Precisions and packed layouts


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def packed_len(precision: str, n: int, k: int) -> int:
    """Elements of an (n, k) weight packed for the ``precision`` kernels (layout :data:`PACKING`)."""
    return _round_up(n, _PANEL) * _round_up(k, _K_GROUP[precision])


def expected_tensors(
    config: ViTConfig, *, head: bool, pooler: bool, dtype: str = "float32", groups: Iterable[str] = ()
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Names, per-tensor dtypes and shapes of the weights stored in ``dtype``, in file order.

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
    for name, shape in expected_shapes(config, head=head, pooler=pooler, groups=groups).items():
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
    values; int8: integers of channels whose amax/127 is the exact scale). Only build_packing uses it."""
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
def build_packing() -> dict[str, str | None]:
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


def require_build_layout(precision: str) -> str:
    """The :data:`PACKING` identifier of ``precision``; RuntimeError if this build packs otherwise."""
    layout = build_packing()[precision]
    if layout is None:
        raise RuntimeError(
            f"this build's C kernels pack {precision} weights differently from layout "
            f"{PACKING[precision]!r} that vitc/weights.py describes: update PACKING and _reference_pack "
            "with a new layout identifier before writing or reading packed files"
        )
    return layout
