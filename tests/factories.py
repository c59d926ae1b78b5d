"""One way to write a test checkpoint: real Hugging Face ViT models built by transformers and saved the
ways hub checkpoints are saved. Every test that needs a checkpoint, a state dict or a hostile ``.bin``
makes it here.

- :data:`HF_TEST_CONFIG`: the tiny config every test starts from (transformers' own ViT test config).
- :func:`make_model`: a tiny random transformers model, not saved.
- :func:`make_checkpoint`: a random-weight checkpoint folder (safetensors, ``.bin`` or sharded), every
  tensor perturbed so a wrong mapping of any of them shows.
- :func:`save_bin`: ``config.json`` + ``pytorch_model.bin`` (or shards + index) as transformers 4 wrote
  them (transformers 5 only writes safetensors), under hub names (:func:`hub_state_dict`).
- :func:`write_fake_torch_zip`, :func:`hostile_pickle`: torch.save-shaped files around hand-made pickles.
- :func:`write_default_hf` / :func:`load_default_hf`: the embedded default model as an HF checkpoint.

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

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from vitc.default_model import DEFAULT_MODEL_PATH
from vitc.io.vitc_file import load_converted

# transformers' own ViT test configuration (tests/models/vit/test_modeling_vit.py): C=32 and F=37
# (odd sizes exercise padding), 10 labels.
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


# ---------------------------------------------------------------------------------------------------
# Models and checkpoint folders


def make_model(
    kind: str = "cls", seed: int = 0, *, pooler: bool = True, eager: bool = False, **overrides: object
) -> torch.nn.Module:
    """A randomly initialised tiny ViTForImageClassification ("cls") or ViTModel ("bare", with a
    pooler unless ``pooler=False``), in eval mode; ``eager`` selects eager attention."""
    torch.manual_seed(seed)
    attn = {"attn_implementation": "eager"} if eager else {}
    config = ViTConfig(**{**HF_TEST_CONFIG, **overrides}, **attn)
    model = ViTForImageClassification(config) if kind == "cls" else ViTModel(config, add_pooling_layer=pooler)
    return model.eval()


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
    model = make_model("bare" if bare else "cls", seed, pooler=pooler, eager=True, **config_kwargs)
    # Random init leaves LayerNorms at (1, 0) and biases small: perturb every tensor so a wrong
    # mapping of any of them shows in the outputs.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
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


# ---------------------------------------------------------------------------------------------------
# Hub names, state dicts and .bin files


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
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


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


# ---------------------------------------------------------------------------------------------------
# The embedded default model as a transformers checkpoint, rebuilt from its .vitc file
#
# The Hugging Face folder the default model was converted from is not part of the repository; this
# writes an equivalent one (hub tensor names, config.json, preprocessor_config.json) from the .vitc
# weights, so tests can compare vitc with transformers on the very same checkpoint. The name map is
# written out here by hand, independently of vitc/io/hf.py's table, so a mistake in that table
# cannot cancel out.


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
        sd.update(
            {
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
            }
        )
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


# ---------------------------------------------------------------------------------------------------
# timm checkpoints as the hub holds them, written from a transformers model


def timm_state_dict(model: torch.nn.Module, *, global_pool: str = "token") -> dict[str, torch.Tensor]:
    """A ViTForImageClassification's tensors under timm's names: the inverse of transformers'
    convert_vit_timm_to_pytorch.py (create_rename_keys, read_in_q_k_v). ``global_pool="avg"`` names the
    final layernorm ``fc_norm`` (timm's average pooling normalizes the mean, not the tokens)."""
    sd = hub_state_dict(model)
    out: dict[str, torch.Tensor] = {}
    for i in range(model.config.num_hidden_layers):
        hf, timm = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        for src, dst in (
            ("layernorm_before", "norm1"),
            ("attention.output.dense", "attn.proj"),
            ("layernorm_after", "norm2"),
            ("intermediate.dense", "mlp.fc1"),
            ("output.dense", "mlp.fc2"),
        ):
            for p in ("weight", "bias"):
                out[f"{timm}{dst}.{p}"] = sd.pop(f"{hf}{src}.{p}")
        for p in ("weight", "bias"):
            qkv = [sd.pop(f"{hf}attention.attention.{n}.{p}") for n in ("query", "key", "value")]
            out[f"{timm}attn.qkv.{p}"] = torch.cat(qkv).contiguous()
    final = "fc_norm" if global_pool == "avg" else "norm"
    for src, dst in (
        ("vit.embeddings.cls_token", "cls_token"),
        ("vit.embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"),
        ("vit.embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"),
        ("vit.embeddings.position_embeddings", "pos_embed"),
        ("classifier.weight", "head.weight"),
        ("classifier.bias", "head.bias"),
        ("vit.layernorm.weight", f"{final}.weight"),
        ("vit.layernorm.bias", f"{final}.bias"),
    ):
        out[dst] = sd.pop(src)
    assert not sd, f"tensors left unmapped: {sorted(sd)}"
    return out


def write_timm_checkpoint(folder: Path, model: torch.nn.Module, *, global_pool: str = "token") -> Path:
    """config.json + model.safetensors as timm's push_to_hf_hub writes them (architecture, num_classes,
    num_features, global_pool, model_args for the test sizes, pretrained_cfg), from a transformers model."""
    c = model.config
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "vit_base_patch16_224",
        "num_classes": c.num_labels,
        "num_features": c.hidden_size,
        "global_pool": global_pool,
        "model_args": {
            "img_size": c.image_size,
            "patch_size": c.patch_size,
            "embed_dim": c.hidden_size,
            "depth": c.num_hidden_layers,
            "num_heads": c.num_attention_heads,
            "mlp_ratio": c.intermediate_size / c.hidden_size,
        },
        "pretrained_cfg": {
            "input_size": [3, c.image_size, c.image_size],
            "interpolation": "bicubic",
            "crop_pct": 0.9,
            "crop_mode": "center",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "num_classes": c.num_labels,
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(timm_state_dict(model, global_pool=global_pool), folder / "model.safetensors")
    return folder
