"""Real Hugging Face ViT checkpoints for the reader/converter tests, built with transformers.

transformers 5 only writes safetensors, so ``pytorch_model.bin`` files (the format of
kakaobrain/vit-large-patch16-512) are written with ``torch.save`` exactly as transformers 4 did.

transformers 5 renames ViT parameters in memory (``layers.0.attention.q_proj``) and renames them back to
the hub layout (``encoder.layer.0.attention.attention.query``) when saving; :func:`hub_state_dict` does
the same so every file written here has the layout real checkpoints have.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import torch
from transformers import ViTConfig as HFConfig
from transformers import ViTForImageClassification, ViTModel

# transformers' own ViT test config (tests/models/vit/test_modeling_vit.py), 10 labels.
TINY = {
    "image_size": 30,
    "patch_size": 2,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "num_labels": 10,
}
PREPROCESSOR = {
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "ViTImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 30, "width": 30},
}


def make_model(kind: str = "cls", seed: int = 0, **overrides: object) -> torch.nn.Module:
    """A randomly initialised tiny ViTForImageClassification ("cls") or ViTModel with pooler ("bare")."""
    torch.manual_seed(seed)
    config = HFConfig(**{**TINY, **overrides})
    model = ViTForImageClassification(config) if kind == "cls" else ViTModel(config, add_pooling_layer=True)
    return model.eval()


# transformers 5 in-memory name -> hub (checkpoint file) name; the inverse of its "ViTModel" renaming
# table in transformers/conversion_mapping.py. Identity on transformers 4.
_TO_HUB = (
    (r"(^|\.)layers\.(\d+)\.", r"\1encoder.layer.\2."),
    (r"\.attention\.q_proj\.", ".attention.attention.query."),
    (r"\.attention\.k_proj\.", ".attention.attention.key."),
    (r"\.attention\.v_proj\.", ".attention.attention.value."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
)


def hub_name(name: str) -> str:
    for pattern, repl in _TO_HUB:
        name = re.sub(pattern, repl, name)
    return name


def hub_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` under the names checkpoint files use."""
    return {hub_name(k): v.detach().contiguous() for k, v in model.state_dict().items()}


def state_dict_numpy(model: torch.nn.Module) -> dict:
    """The hub-named state dict as float32 NumPy arrays: what a reader must return."""
    return {k: v.float().numpy() for k, v in hub_state_dict(model).items()}


def save_bin(model: torch.nn.Module, folder: Path, *, shard_size: int | None = None) -> None:
    """Write config.json + pytorch_model.bin (or shards + index) the way transformers 4 did."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(folder / "config.json")
    sd = hub_state_dict(model)
    if shard_size is None:
        torch.save(sd, folder / "pytorch_model.bin")
        return
    shards: list[dict] = [{}]
    size = 0
    for k, v in sd.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > shard_size:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    weight_map = {}
    for n, shard in enumerate(shards, 1):
        name = f"pytorch_model-{n:05d}-of-{len(shards):05d}.bin"
        torch.save(shard, folder / name)
        weight_map.update({k: name for k in shard})
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


def write_fake_torch_zip(path: Path, payload: bytes, *, extra: dict[str, bytes] | None = None) -> None:
    """A zip with torch.save's layout whose data.pkl is ``payload`` (used for hostile pickles)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", b"little")
        zf.writestr("archive/version", b"3\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)


def hostile_pickle(func: object, *args: object) -> bytes:
    """A pickle that, if loaded by plain pickle, calls ``func(*args)``."""

    class Evil:
        def __reduce__(self):
            return func, args

    return pickle.dumps({"weight": Evil()}, protocol=2)
