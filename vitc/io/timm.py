"""timm ViT checkpoints as the Hugging Face hub holds them: ``config.json`` (``architecture``,
``num_classes``, ``global_pool``, ``pretrained_cfg``, optional ``model_args`` and ``label_names``) beside
``model.safetensors`` / ``pytorch_model.bin`` under timm's tensor names.

config.json -> :func:`config_from_timm` (:class:`~vitc.config.ViTConfig` + preprocessor settings) ->
:func:`convert_timm_state_dict`: vitc's names are timm's (vitc/weights.py), so the tensors keep their
names and only lose timm's leading singleton axes (``cls_token`` (1, 1, C), ``pos_embed`` (1, T, C)) and
the patch kernel is flattened. Every tensor is checked against the shape the config implies; a tensor
vitc does not run (register tokens, ``pre_logits``, ``norm_pre``, layer scale ...) is refused by name.

The model sizes of timm's named ViTs (``vit_base_patch16_224``) are not in config.json: timm builds them
from the name. :data:`TIMM_SIZES` holds those vitc runs; ``model_args`` in config.json override them.
ref: timm/models/vision_transformer.py (VisionTransformer, the vit_* model functions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from vitc.config import ViTConfig
from vitc.weights import dims, expand, layer_name, resolve_shape

__all__ = ["TIMM_SIZES", "config_from_timm", "convert_timm_state_dict", "is_timm_config"]

# timm's ViT sizes by name part: (embed_dim, depth, num_heads); mlp_ratio 4 for all of them.
TIMM_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}
_NAME = re.compile(r"^(?:vit|deit3?)_(tiny|small|base|large|huge)_patch(\d+)(?:_(?:clip_)?(\d+))?(.*)$")
# model_args vitc reads (others that change the computation are refused by name below).
_ARGS = {"img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias"}
_NEUTRAL_ARGS = {"num_classes", "global_pool", "drop_rate", "drop_path_rate", "attn_drop_rate", "proj_drop_rate"}
# timm's preprocessing defaults (timm/data/constants.py, resolve_data_config)
_DEFAULT_CROP_PCT = 0.875
_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def is_timm_config(d: Mapping[str, Any]) -> bool:
    """A timm config.json: ``architecture`` (timm's key) and no transformers ``model_type``."""
    return isinstance(d, Mapping) and "architecture" in d and "model_type" not in d


def _pair(v: Any) -> tuple[int, int] | int:
    return tuple(v) if isinstance(v, (list, tuple)) else v


def config_from_timm(d: Mapping[str, Any]) -> tuple[ViTConfig, dict[str, Any] | None]:
    """(ViTConfig, preprocessor_config.json-style dict or None) of a timm ``config.json``.

    Raises
    ------
    ValueError
        An architecture vitc does not know the sizes of (without ``model_args``), a global pool or a
        model argument vitc does not run.
    """
    arch = d.get("architecture")
    if not isinstance(arch, str):
        raise ValueError(f"timm config: architecture: expected a model name, found {arch!r}")
    args = d.get("model_args") or {}
    if not isinstance(args, Mapping):
        raise ValueError(f"timm config: model_args: expected an object, found {type(args).__name__}")
    unknown = sorted(set(args) - _ARGS - _NEUTRAL_ARGS)
    if unknown:
        raise ValueError(f"timm config: model_args {unknown} change the model in ways vitc does not run")
    m = _NAME.match(arch)
    pcfg = d.get("pretrained_cfg") or {}
    if m is not None:
        c, depth, heads = TIMM_SIZES[m.group(1)]
        # A variant (_reg4, _clip ...) has its name's sizes; what else differs shows in its tensors,
        # and the ones vitc does not run (reg_token, norm_pre ...) are refused by name.
        patch, img = int(m.group(2)), int(m.group(3) or 224)
    elif {"embed_dim", "depth", "num_heads", "patch_size"} <= set(args):
        c, depth, heads, patch, img = 0, 0, 0, 0, 224
    else:
        raise ValueError(
            f"timm config: architecture {arch!r}: expected a ViT name such as vit_base_patch16_224 "
            "(vit_/deit_ tiny, small, base, large or huge), or model_args with embed_dim, depth, num_heads, patch_size"
        )
    input_size = pcfg.get("input_size")
    if isinstance(input_size, (list, tuple)) and len(input_size) == 3:
        img = (int(input_size[1]), int(input_size[2]))
    c = int(args.get("embed_dim", c))
    mlp_ratio = float(args.get("mlp_ratio", 4.0))
    num_classes = d.get("num_classes", 1000)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"timm config: num_classes: expected an int >= 0, found {num_classes!r}")
    names = d.get("label_names")
    if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
        id2label = dict(enumerate(names))
    else:
        id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
    pool = d.get("global_pool", args.get("global_pool", "token"))
    if pool not in ("token", "avg"):
        raise ValueError(f"timm config: global_pool: expected 'token' or 'avg' (what vitc runs), found {pool!r}")
    config = ViTConfig(
        hidden_size=c,
        num_hidden_layers=int(args.get("depth", depth)),
        num_attention_heads=int(args.get("num_heads", heads)),
        intermediate_size=int(c * mlp_ratio),  # timm: Mlp(hidden_features=int(dim * mlp_ratio))
        hidden_act="gelu",  # nn.GELU: the erf form
        layer_norm_eps=1e-6,  # timm: partial(nn.LayerNorm, eps=1e-6)
        image_size=_pair(args.get("img_size", img)),
        patch_size=_pair(args.get("patch_size", patch)),
        num_channels=int(args.get("in_chans", 3)),
        qkv_bias=bool(args.get("qkv_bias", True)),
        id2label=id2label,
        architectures=[arch],
        global_pool=pool,
    )
    return config, _preprocessor(pcfg, config)


def _preprocessor(pcfg: Mapping[str, Any], config: ViTConfig) -> dict[str, Any] | None:
    """timm's eval transform as ViTImageProcessor settings: resize the short side to
    ``floor(size / crop_pct)``, center-crop ``size``, rescale, normalize. (timm resizes with torchvision,
    vitc with Pillow as ViTImageProcessor: the pixels can differ by rounding.)"""
    if not pcfg:
        return None
    h, w = config.image_hw
    crop_pct = pcfg.get("crop_pct") or _DEFAULT_CROP_PCT
    mode = pcfg.get("crop_mode", "center")
    if mode != "center" or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        return None
    mean = pcfg.get("mean", (0.485, 0.456, 0.406))
    std = pcfg.get("std", (0.229, 0.224, 0.225))
    return {
        "do_resize": True,
        # ref: timm transforms_imagenet_eval: floor(size / crop_pct), the short side for a square size
        "size": (
            {"shortest_edge": math.floor(h / crop_pct)}
            if h == w
            else {"height": math.floor(h / crop_pct), "width": math.floor(w / crop_pct)}
        ),
        "resample": _RESAMPLE.get(pcfg.get("interpolation", "bicubic"), 3),
        "do_center_crop": True,
        "crop_size": {"height": h, "width": w},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(mean),
        "image_std": list(std),
    }


# timm name -> (vitc name, shape as stored by timm in dimension symbols); every other name is vitc's.
_RESHAPED = {
    "cls_token": (1, 1, "C"),
    "pos_embed": (1, "T0", "C"),
    "patch_embed.proj.weight": ("C", "Cin", "Ph", "Pw"),
}


def convert_timm_state_dict(config: ViTConfig, state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """timm's tensors under vitc's names, float32 C-order, each checked against the config's shape.

    Raises
    ------
    ValueError
        Missing tensors, tensors vitc does not use (naming them), wrong shapes or dtypes.
    """
    groups = {g for g in ("head",) if "head.weight" in state_dict and config.num_labels > 0}
    sizes = dims(config)
    specs = list(expand(config, groups))
    wanted = [layer_name(t.name, i) for t, i in specs]
    missing = [n for n in wanted if n not in state_dict]
    if missing:
        hint = ""
        if "fc_norm.weight" in missing and "norm.weight" in state_dict:
            hint = " (average pooling with the final norm and no fc_norm is not supported)"
        raise ValueError(f"timm checkpoint is missing {len(missing)} tensor(s) the config requires: {missing}{hint}")
    unused = sorted(set(state_dict) - set(wanted))
    if "head.weight" in unused and config.num_labels == 0:
        unused = [n for n in unused if n not in ("head.weight", "head.bias")]  # num_classes 0: Identity head
    if unused:
        raise ValueError(f"timm checkpoint has {len(unused)} tensor(s) vitc does not use: {unused}")
    out: dict[str, np.ndarray] = {}
    for spec, i in specs:
        name = layer_name(spec.name, i)
        arr = np.asarray(state_dict[name])
        src = resolve_shape(_RESHAPED.get(spec.name, spec.shape), sizes)
        if arr.shape != src:
            raise ValueError(f"timm tensor {name}: expected shape {src}, found {arr.shape} (from config.json)")
        if arr.dtype.kind != "f":
            raise ValueError(f"timm tensor {name}: expected a floating-point dtype, found {arr.dtype}")
        out[name] = np.ascontiguousarray(arr.reshape(resolve_shape(spec.shape, sizes)), dtype=np.float32)
    return out
