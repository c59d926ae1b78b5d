"""Write one random-weight checkpoint per model and every file the engines load from it.

Runs in its own subprocess (it imports torch), once per model; the outputs are cached in the work
dir and reused while the model spec and seed are unchanged. Not timed: nothing here is a benchmark.

Files in ``<workdir>/<model>/``:
    hf/              transformers ``save_pretrained`` folder (config.json + model.safetensors)
    model.vitc       ``vitc.convert`` of hf/
    model.bfloat16.vitc, model.int8.vitc  ``vitc.convert(..., dtype=...)``: packed reduced weights
    input.npy        the fixed batch-1 input every engine is checked on, (1, 3, S, S) float32
    reference.npy    transformers eager logits on input.npy, (1, K) float32: the ground truth
    model.onnx       ``torch.onnx.export`` of the eager model, dynamic batch
    model.fused.onnx onnxruntime.transformers optimizer output (model_type="vit"), when it applies
    model.int8.onnx  ``quantize_dynamic`` of the best fp32 ONNX model
    onnx.json        which exporter/optimizer ran and what it fused
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vitc.bench.models import MODELS, ModelSpec

# Bump when the files written here change meaning, so stale caches are rebuilt.
PREPARE_VERSION = 1
ONNX_OPSET = 17
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "logits"


def stamp(spec: ModelSpec, seed: int) -> dict[str, Any]:
    """What the cached files depend on."""
    return {"version": PREPARE_VERSION, "seed": seed, "config": spec.hf_config_kwargs()}


def _cache_valid(folder: Path, want: dict[str, Any]) -> bool:
    path = folder / "stamp.json"
    return path.is_file() and json.loads(path.read_text()) == want


def write_checkpoint(spec: ModelSpec, folder: Path, seed: int) -> None:
    """Random-weight HF checkpoint, the fixed input and the eager reference logits."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(**spec.hf_config_kwargs(), attn_implementation="eager")
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(folder / "hf")

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, spec.image_size, spec.image_size), dtype=np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).logits.numpy()
    np.save(folder / "input.npy", x)
    np.save(folder / "reference.npy", ref)


VITC_FILES = {"float32": "model.vitc", "bfloat16": "model.bfloat16.vitc", "int8": "model.int8.vitc"}


def convert_vitc(folder: Path) -> None:
    import vitc

    for dtype, name in VITC_FILES.items():
        if not (folder / name).is_file():
            vitc.convert(folder / "hf", folder / name, dtype=dtype, progress=False)


def export_onnx(spec: ModelSpec, folder: Path) -> str:
    """Export the eager model with a dynamic batch axis; returns which exporter ran.

    The TorchScript exporter (dynamo=False) goes first: its graphs are the ones the
    onnxruntime.transformers fusions were written for. The dynamo exporter is the fallback.
    """
    import torch
    from transformers import ViTForImageClassification

    class LogitsOnly(torch.nn.Module):
        """Plain tensor out: both exporters trace a tensor more reliably than a ModelOutput."""

        def __init__(self, vit: torch.nn.Module):
            super().__init__()
            self.vit = vit

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.vit(pixel_values).logits

    hf = ViTForImageClassification.from_pretrained(folder / "hf", attn_implementation="eager")
    model = LogitsOnly(hf).eval()
    x = torch.from_numpy(np.load(folder / "input.npy"))
    path = folder / "model.onnx"
    common: dict[str, Any] = {
        "input_names": [INPUT_NAME],
        "output_names": [OUTPUT_NAME],
        "opset_version": ONNX_OPSET,
    }
    try:
        with torch.inference_mode():
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                **common,
            )
        return f"torch.onnx.export(dynamo=False, opset={ONNX_OPSET})"
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the other one
        print(f"prepare: TorchScript ONNX export failed ({exc!r}); trying dynamo=True", file=sys.stderr)
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model, (x,), str(path), dynamo=True, dynamic_shapes=({0: batch},), external_data=False, **common
    )
    return f"torch.onnx.export(dynamo=True, opset={ONNX_OPSET})"


def optimize_onnx(spec: ModelSpec, folder: Path) -> dict[str, Any]:
    """onnxruntime.transformers fusions (attention, LayerNorm, GELU) for model_type="vit"."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(
        str(folder / "model.onnx"),
        model_type="vit",
        num_heads=spec.num_attention_heads,
        hidden_size=spec.hidden_size,
        opt_level=0,  # fusions only; ORT_ENABLE_ALL is applied again when the session loads it
    )
    fused = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(folder / "model.fused.onnx"))
    return fused


def quantize_onnx(src: Path, dst: Path) -> str:
    """Dynamic int8: weights quantized offline, activations per call (u8 x s8, VNNI on x86)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference, so the
    # quantizer is told that untyped tensors are float.
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return f"quantize_dynamic(weight_type=QInt8) of {src.name}"


def prepare(spec: ModelSpec, folder: Path, seed: int, onnx: bool) -> dict[str, Any]:
    """Make (or reuse) every file for ``spec`` in ``folder``; returns the ONNX notes."""
    folder.mkdir(parents=True, exist_ok=True)
    want = stamp(spec, seed)
    if not _cache_valid(folder, want):
        stale = ("stamp.json", "onnx.json", "model.onnx", "model.fused.onnx", "model.int8.onnx", *VITC_FILES.values())
        for name in stale:
            (folder / name).unlink(missing_ok=True)
        write_checkpoint(spec, folder, seed)
        (folder / "stamp.json").write_text(json.dumps(want, indent=1))
    convert_vitc(folder)  # also fills in files a cache from an older vitc lacks

    notes_path = folder / "onnx.json"
    notes: dict[str, Any] = json.loads(notes_path.read_text()) if notes_path.is_file() else {}
    if onnx and "int8" not in notes:
        notes = {"exporter": export_onnx(spec, folder)}
        try:
            notes["fused_ops"] = optimize_onnx(spec, folder)
            notes["fp32_model"] = "model.fused.onnx"
        except Exception as exc:  # noqa: BLE001 - the plain export still benchmarks
            print(f"prepare: onnxruntime.transformers optimizer failed: {exc!r}", file=sys.stderr)
            notes["fused_ops"] = None
            notes["fp32_model"] = "model.onnx"
        notes["int8"] = quantize_onnx(folder / notes["fp32_model"], folder / "model.int8.onnx")
        notes_path.write_text(json.dumps(notes, indent=1))
    return notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--onnx", action="store_true", help="also export, optimize and quantize ONNX models")
    args = p.parse_args(argv)
    notes = prepare(MODELS[args.model], args.workdir / args.model, args.seed, args.onnx)
    print(json.dumps(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
