"""The embedded default model as a transformers checkpoint, rebuilt from its ``.vitc`` file (test-only).

The Hugging Face folder the default model was converted from is not part of the repository; this
writes an equivalent one (hub tensor names, config.json, preprocessor_config.json) from the .vitc
weights, so tests can compare vitc with transformers on the very same checkpoint. The name map is
written out here by hand, independently of vitc/convert.py's table, so a mistake in that table
cannot cancel out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import ViTConfig, ViTForImageClassification

from vitc.convert import load_converted
from vitc.default_model import DEFAULT_MODEL_PATH


def hf_state_dict(config, tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """vitc tensor names -> the hub names of ``ViTForImageClassification``."""
    c, p, cin = config.hidden_size, config.patch_hw[0], config.num_channels
    t = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
    sd = {
        "vit.embeddings.cls_token": t["cls_token"].reshape(1, 1, c),
        "vit.embeddings.position_embeddings": t["pos_embed"].unsqueeze(0),
        "vit.embeddings.patch_embeddings.projection.weight": t["patch_embed.proj.weight"].reshape(c, cin, p, p),
        "vit.embeddings.patch_embeddings.projection.bias": t["patch_embed.proj.bias"],
        "vit.layernorm.weight": t["norm.weight"],
        "vit.layernorm.bias": t["norm.bias"],
        "classifier.weight": t["head.weight"],
        "classifier.bias": t["head.bias"],
    }
    for i in range(config.num_hidden_layers):
        hf, vc = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        q, k, v = t[vc + "attn.qkv.weight"].split(c)  # fused rows: query, key, value
        qb, kb, vb = t[vc + "attn.qkv.bias"].split(c)
        sd.update({
            hf + "attention.attention.query.weight": q,
            hf + "attention.attention.query.bias": qb,
            hf + "attention.attention.key.weight": k,
            hf + "attention.attention.key.bias": kb,
            hf + "attention.attention.value.weight": v,
            hf + "attention.attention.value.bias": vb,
            hf + "attention.output.dense.weight": t[vc + "attn.proj.weight"],
            hf + "attention.output.dense.bias": t[vc + "attn.proj.bias"],
            hf + "intermediate.dense.weight": t[vc + "mlp.fc1.weight"],
            hf + "intermediate.dense.bias": t[vc + "mlp.fc1.bias"],
            hf + "output.dense.weight": t[vc + "mlp.fc2.weight"],
            hf + "output.dense.bias": t[vc + "mlp.fc2.bias"],
            hf + "layernorm_before.weight": t[vc + "norm1.weight"],
            hf + "layernorm_before.bias": t[vc + "norm1.bias"],
            hf + "layernorm_after.weight": t[vc + "norm2.weight"],
            hf + "layernorm_after.bias": t[vc + "norm2.bias"],
        })
    return {k: v.contiguous() for k, v in sd.items()}


def write_default_hf(folder: Path) -> Path:
    """Write the default model as a Hugging Face folder; return ``folder``."""
    config, preprocessor, tensors = load_converted(DEFAULT_MODEL_PATH)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ViTConfig(**config.to_dict()).save_pretrained(folder)
    save_file(hf_state_dict(config, tensors), str(folder / "model.safetensors"), metadata={"format": "pt"})
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder


def load_default_hf(folder: Path) -> ViTForImageClassification:
    """transformers' model of the default checkpoint (eager attention, eval mode), written to ``folder``."""
    write_default_hf(folder)
    return ViTForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
