"""Real Hugging Face ViT checkpoints for the tests, written by transformers into a folder.

transformers writes safetensors; the ``.bin`` form is written with ``torch.save`` of the same
state dict (the keys the hub files carry), the way ``pytorch_model.bin`` files were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import ViTConfig, ViTForImageClassification, ViTModel

# transformers' own ViT test configuration (tests/models/vit/test_modeling_vit.py)
HF_TEST_CONFIG = dict(
    image_size=30,
    patch_size=2,
    num_channels=3,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_act="gelu",
    num_labels=10,
)


def make_checkpoint(
    folder: Path,
    fmt: str = "safetensors",
    bare: bool = False,
    pooler: bool = False,
    seed: int = 0,
    **config_kwargs,
):
    """Write a random-weight ViT checkpoint to ``folder``; return the transformers model (eager).

    fmt: "safetensors", "bin" (pytorch_model.bin) or "sharded" (safetensors shards + index).
    bare: a ``ViTModel`` (no ``vit.`` prefix, no classifier), with a pooler if ``pooler``.
    """
    torch.manual_seed(seed)
    kwargs = {**HF_TEST_CONFIG, **config_kwargs}
    config = ViTConfig(**kwargs, attn_implementation="eager")
    model = ViTModel(config, add_pooling_layer=pooler) if bare else ViTForImageClassification(config)
    # Random init leaves LayerNorms at (1, 0) and biases small: perturb every tensor so a wrong
    # mapping of any of them shows in the outputs.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    folder = Path(folder)
    if fmt == "sharded":
        model.save_pretrained(folder, max_shard_size="20KB")
    else:
        model.save_pretrained(folder)
    if fmt == "bin":
        state = load_file(folder / "model.safetensors")
        torch.save(state, folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    return model


def hf_forward(model, pixel_values: np.ndarray, **kwargs):
    """transformers' outputs for numpy pixel values (eager attention, no grad)."""
    with torch.no_grad():
        return model(torch.from_numpy(pixel_values), **kwargs)
