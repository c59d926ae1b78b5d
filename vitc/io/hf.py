"""Hugging Face ViT checkpoints: the model folder and the declarative table from HF names to vitc's.

HF folder -> config.json (:class:`~vitc.config.ViTConfig`) + preprocessor_config.json (checked) +
state dict (vitc/io/checkpoint.py) -> :func:`convert_state_dict`: one rule per vitc tensor
(:data:`WEIGHT_MAP`), every source key used once, every vitc tensor built with the shape the config
implies (vitc/weights.py) -> vitc tensors, float32. This module writes nothing and runs no model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitc.config import CONFIG_ERRORS, ViTConfig, check_preprocessor
from vitc.files import file_kind, read_json_file, require_file
from vitc.io import timm
from vitc.io.checkpoint import WEIGHTS_CANDIDATES, load_state_dict, weights_files
from vitc.weights import (
    MIN_LAYER_TENSORS,
    NOT_GROUP_MARKERS,
    OPTIONAL_GROUPS,
    TENSORS,
    dims,
    expand,
    expected_shapes,
    layer_name,
    resolve_shape,
    shape_sources,
)

__all__ = [
    "CONFIG_FILE",
    "PREPROCESSOR_FILE",
    "WEIGHT_MAP",
    "Rule",
    "convert_state_dict",
    "input_files",
    "load_hf_folder",
]

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"


# ---------------------------------------------------------------------------------------------------
# The HF -> vitc name table


@dataclass(frozen=True)
class Rule:
    """How one vitc tensor ``dst`` (a name of :data:`vitc.weights.TENSORS`) is built: from the HF
    tensors ``src``, each of shape ``src_shape``, concatenated along rows, then reshaped to the vitc
    shape.

    ``{i}`` in names is the layer index. Shapes are tuples of dimension symbols (see
    :func:`vitc.weights.dims`) or literal ints. When the tensor exists is vitc's ``TensorSpec.when``.
    """

    dst: str
    src: tuple[str, ...]
    src_shape: tuple[str | int, ...]


_ATTN = "encoder.layer.{i}.attention"
_QKV = ("query", "key", "value")

# ref: transformers modeling_vit.py (ViTEmbeddings, ViTLayer, ViTPooler) and timm vision_transformer.py
WEIGHT_MAP: tuple[Rule, ...] = (
    # Conv2d(Cin, C, P, stride=P) as a GEMM weight: (C, Cin, Ph, Pw) flattened in (channel, y, x) order.
    Rule("patch_embed.proj.weight", ("embeddings.patch_embeddings.projection.weight",), ("C", "Cin", "Ph", "Pw")),
    Rule("patch_embed.proj.bias", ("embeddings.patch_embeddings.projection.bias",), ("C",)),
    Rule("cls_token", ("embeddings.cls_token",), (1, 1, "C")),
    Rule("dist_token", ("embeddings.distillation_token",), (1, 1, "C")),
    Rule("pos_embed", ("embeddings.position_embeddings",), (1, "T0", "C")),
    Rule("blocks.{i}.norm1.weight", ("encoder.layer.{i}.layernorm_before.weight",), ("C",)),
    Rule("blocks.{i}.norm1.bias", ("encoder.layer.{i}.layernorm_before.bias",), ("C",)),
    # Fused QKV, rows in query, key, value order (timm's layout).
    Rule("blocks.{i}.attn.qkv.weight", tuple(f"{_ATTN}.attention.{p}.weight" for p in _QKV), ("C", "C")),
    Rule("blocks.{i}.attn.qkv.bias", tuple(f"{_ATTN}.attention.{p}.bias" for p in _QKV), ("C",)),
    Rule("blocks.{i}.attn.proj.weight", (f"{_ATTN}.output.dense.weight",), ("C", "C")),
    Rule("blocks.{i}.attn.proj.bias", (f"{_ATTN}.output.dense.bias",), ("C",)),
    Rule("blocks.{i}.norm2.weight", ("encoder.layer.{i}.layernorm_after.weight",), ("C",)),
    Rule("blocks.{i}.norm2.bias", ("encoder.layer.{i}.layernorm_after.bias",), ("C",)),
    Rule("blocks.{i}.mlp.fc1.weight", ("encoder.layer.{i}.intermediate.dense.weight",), ("F", "C")),
    Rule("blocks.{i}.mlp.fc1.bias", ("encoder.layer.{i}.intermediate.dense.bias",), ("F",)),
    Rule("blocks.{i}.mlp.fc2.weight", ("encoder.layer.{i}.output.dense.weight",), ("C", "F")),
    Rule("blocks.{i}.mlp.fc2.bias", ("encoder.layer.{i}.output.dense.bias",), ("C",)),
    Rule("norm.weight", ("layernorm.weight",), ("C",)),
    Rule("norm.bias", ("layernorm.bias",), ("C",)),
    # transformers' ViT has no fc_norm (timm's average pooling, vitc/io/timm.py): a config.json asking
    # for global_pool "avg" finds these missing.
    Rule("fc_norm.weight", ("fc_norm.weight",), ("C",)),
    Rule("fc_norm.bias", ("fc_norm.bias",), ("C",)),
    Rule("head.weight", ("classifier.weight",), ("K", "C")),
    Rule("head.bias", ("classifier.bias",), ("K",)),
    Rule("head_dist.weight", ("distillation_classifier.weight",), ("K", "C")),
    Rule("head_dist.bias", ("distillation_classifier.bias",), ("K",)),
    Rule("pooler.weight", ("pooler.dense.weight",), ("Cp", "C")),
    Rule("pooler.bias", ("pooler.dense.bias",), ("Cp",)),
    Rule("mask_token", ("embeddings.mask_token",), (1, 1, "C")),
    # ViTForMaskedImageModeling's decoder: Conv2d(C, stride**2 * Cin, 1), then PixelShuffle(stride).
    Rule("mim_decoder.weight", ("decoder.0.weight",), ("Smim", "C", 1, 1)),
    Rule("mim_decoder.bias", ("decoder.0.bias",), ("Smim",)),
)
_RULES = {r.dst: r for r in WEIGHT_MAP}

# ViTForImageClassification nests the backbone under "vit." (DeiT's under "deit."); its classifier and
# MIM decoder stay at the top level.
_BACKBONE_PREFIX = "vit."
_UNPREFIXED = ("classifier.", "distillation_classifier.", "decoder.", "fc_norm.")
# DeiT's names, as ViT's: DeiTForImageClassification(WithTeacher) calls its CLS head cls_classifier.
_DEIT_RENAMES = ((re.compile(r"^deit\."), "vit."), (re.compile(r"^cls_classifier\."), "classifier."))

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


def _hub_names(
    state_dict: Mapping[str, np.ndarray], deit: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(state dict under ViT's hub names, that name -> name as given) for transformers 5 in-memory
    names and (``deit``) DeiT's names."""
    if not deit and not any(_TRANSFORMERS5_LAYER.search(k) for k in state_dict):
        return dict(state_dict), {}
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, arr in state_dict.items():
        hub = key
        if _TRANSFORMERS5_LAYER.search(key):
            for pattern, repl in _TRANSFORMERS5_RENAMES:
                hub = pattern.sub(repl, hub)
        if deit:
            for pattern, repl in _DEIT_RENAMES:
                hub = pattern.sub(repl, hub)
        if hub in out:
            raise ValueError(f"checkpoint has both {origin.get(hub, hub)} and {key} (the same tensor)")
        out[hub], origin[hub] = arr, key
    return out, origin


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
    # Each layer has at least MIN_LAYER_TENSORS (11) tensors: a config claiming more layers than that
    # allows is refused before the table is expanded.
    if config.num_hidden_layers * MIN_LAYER_TENSORS > len(state_dict):
        raise ValueError(
            f"checkpoint has {len(state_dict)} tensors: too few for the config's "
            f"{config.num_hidden_layers} layers (at least {MIN_LAYER_TENSORS} per layer)"
        )
    state_dict, origin = _hub_names(state_dict, deit=config.model_type == "deit")
    prefix = _BACKBONE_PREFIX if any(k.startswith(_BACKBONE_PREFIX) for k in state_dict) else ""

    def hf_name(name: str) -> str:
        return name if name.startswith(_UNPREFIXED) else prefix + name

    # An optional group is present iff any of its source tensors is; a partial group is then reported
    # as missing tensors below.
    groups = {
        t.when
        for t in TENSORS
        if t.when in OPTIONAL_GROUPS
        and t.name not in NOT_GROUP_MARKERS
        and any(hf_name(s) in state_dict for s in _RULES[t.name].src)
    }
    if "head" in groups and config.num_labels == 0:
        raise ValueError(
            "checkpoint has a classifier but config.json has no id2label: expected the label table "
            "to fix the classifier size"
        )
    sizes = dims(config)
    rules = [(t, _RULES[t.name], i) for t, i in expand(config, groups)]
    missing = [
        hf_name(layer_name(s, i)) for _, r, i in rules for s in r.src if hf_name(layer_name(s, i)) not in state_dict
    ]
    if missing:
        raise ValueError(f"checkpoint is missing {len(missing)} tensor(s) the config requires: {missing}")
    used: set[str] = set()
    out: dict[str, np.ndarray] = {}
    for spec, rule, i in rules:
        expected_src = resolve_shape(rule.src_shape, sizes)
        parts = []
        for s in rule.src:
            key = hf_name(layer_name(s, i))
            arr = np.asarray(state_dict[key])
            if arr.shape != expected_src:
                raise ValueError(
                    f"tensor {origin.get(key, key)}: expected shape {expected_src}, found {arr.shape} "
                    f"(expected from config.json: {shape_sources(config, rule.src_shape)})"
                )
            if arr.dtype.kind != "f":
                raise ValueError(f"tensor {origin.get(key, key)}: expected a floating-point dtype, found {arr.dtype}")
            if key in used:  # only possible if the table itself is wrong
                raise ValueError(f"tensor {key} is used twice by the conversion table")
            used.add(key)
            parts.append(arr)
        fused = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        dst = layer_name(spec.name, i)
        out[dst] = np.ascontiguousarray(fused.reshape(resolve_shape(spec.shape, sizes)), dtype=np.float32)
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
        order = expected_shapes(config, head=True, pooler="pooler" in groups, groups=groups)
        out = {name: out[name] for name in order}
    return out


# ---------------------------------------------------------------------------------------------------
# The model folder: config.json, preprocessor_config.json, weights


def _read_json_dict(path: Path) -> dict[str, Any]:
    d = read_json_file(path, "file")  # vitc/files.py: one size, bracket and depth policy for all JSON
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(d).__name__}")
    return d


def _config_from_dict(path: str | os.PathLike[str], d: Any) -> ViTConfig:
    try:
        return ViTConfig.from_dict(d)
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{os.fspath(path)}: config: {type(exc).__name__}: {exc}"[:2000]) from None


# Names of the weights files an HF model folder holds (sharded indexes end in ".index.json").
_WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".index.json")
_ACCEPTED = (
    "expected a .vitc file, a Hugging Face model folder, or a .safetensors / .bin / *.index.json "
    f"weights file beside its {CONFIG_FILE}"
)


def _hf_folder(src: Path) -> tuple[Path, Path]:
    """(model folder, weights path) of an HF folder or of a checkpoint file inside one."""
    kind = file_kind(src, "model file")
    if kind == "directory":
        return src, src
    if kind is None:
        raise FileNotFoundError(f"{src}: no such model folder or checkpoint file")
    require_file(src, f"model file ({_ACCEPTED})")  # a FIFO, device, socket ... is refused unopened
    if not src.name.endswith(_WEIGHTS_SUFFIXES):
        raise ValueError(f"{src}: not a vitc file or a Hugging Face checkpoint ({_ACCEPTED})")
    return src.parent, src


def _json_files(folder: Path) -> tuple[Path, Path | None]:
    """(config.json, preprocessor_config.json or None if absent) of a model folder, each checked to be
    a regular file: a FIFO, device or folder of that name is refused, not skipped."""
    config_path = folder / CONFIG_FILE
    require_file(config_path, "config file", missing=f"{folder}: expected {CONFIG_FILE} beside the weights, not found")
    pre_path = folder / PREPROCESSOR_FILE
    if file_kind(pre_path, "preprocessor config") is None:
        return config_path, None
    require_file(pre_path, "preprocessor config")
    return config_path, pre_path


def input_files(src: Path) -> dict[Path, str]:
    """Every file :func:`load_hf_folder` reads for ``src`` (and the folder), each with its role:
    the folder, config.json, preprocessor_config.json if present, the weights (a file, or a shard
    index and its shards), and the folder's other weights files. Writers use it to never replace
    their own input (``vitc convert``)."""
    folder, weights = _hf_folder(src)
    config_path, pre_path = _json_files(folder)
    out = {folder: "checkpoint folder", config_path: CONFIG_FILE}
    if pre_path is not None:
        out[pre_path] = PREPROCESSOR_FILE
    # The folder's other weights files are not read (safetensors is preferred) but are as much the
    # checkpoint: a writer must not replace them either.
    for name in WEIGHTS_CANDIDATES:
        if file_kind(folder / name, "checkpoint file") is not None:
            out[folder / name] = "weights file" if not name.endswith(".index.json") else "shard index"
    files = weights_files(weights)
    out[files[0]] = "weights file" if len(files) == 1 else "shard index"
    out.update((shard, "shard") for shard in files[1:])
    return out


def load_hf_folder(src: Path) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Read an HF model folder (or a weights file inside one) and convert its weights to vitc's.

    Returns
    -------
    (ViTConfig, preprocessor_config.json dict or None, dict of vitc tensors)

    Raises
    ------
    FileNotFoundError
        No such folder or file, or no config.json / weights in it.
    ValueError
        A malformed file (the message names it).
    IsADirectoryError, PermissionError, vitc.files.UnreadableFileError
        A file vitc would read is a folder, may not be read, or is a FIFO, device or pseudo-file.
    """
    folder, weights = _hf_folder(src)
    config_path, pre_path = _json_files(folder)
    raw = _read_json_dict(config_path)
    timm_preprocessor = None
    if timm.is_timm_config(raw):  # a timm checkpoint (vitc/io/timm.py): timm's names and config
        try:
            config, timm_preprocessor = timm.config_from_timm(raw)
        except CONFIG_ERRORS as exc:
            raise ValueError(f"{os.fspath(config_path)}: {exc}"[:2000]) from None
    else:
        config = _config_from_dict(config_path, raw)
    preprocessor = _read_json_dict(pre_path) if pre_path is not None else timm_preprocessor
    if preprocessor is not None:
        check_preprocessor(str(pre_path or config_path), preprocessor)
    state_dict = load_state_dict(weights)
    if timm.is_timm_config(raw):
        return config, preprocessor, timm.convert_timm_state_dict(config, state_dict)
    return config, preprocessor, convert_state_dict(config, state_dict)
