"""Write one random-weight checkpoint per model and every file the engines load from it.

Runs in its own subprocess (it imports torch), once per model; the outputs are cached in the work
dir and reused while the model spec and seed are unchanged. Not timed: nothing here is a benchmark.

Files in ``<workdir>/<model>/``:
    hf/              transformers ``save_pretrained`` folder (config.json + model.safetensors) and its
                     ``ViTImageProcessor`` (preprocessor_config.json: resize to the model's size, mean/std 0.5)
    model.vitc       ``vitc.convert`` of hf/
    model.bfloat16.vitc, model.int8.vitc  ``vitc.convert(..., dtype=...)``: packed reduced weights
    input.npy        the fixed batch-1 input every engine is checked on, (1, 3, S, S) float32
    reference.npy    transformers eager logits on input.npy, (1, K) float32: the ground truth
    accuracy.npz     real photos (images.EVALUATION) through the checkpoint's processor, ``inputs``
                     (N, 3, S, S), and transformers eager's fp32 logits on them, ``reference`` (N, K);
                     accuracy.json names the images
    calibration.npy  images.CALIBRATION through the processor (static int8 calibration; disjoint from
                     the accuracy images)
    model.onnx       ``torch.onnx.export`` of the eager model, dynamic batch
    model.fused.onnx onnxruntime.transformers optimizer output (model_type="vit"), when it applies
    model.int8.onnx  ``quantize_dynamic`` of the best fp32 ONNX model
    model.ov-int8.xml/.bin  ``nncf.quantize`` (model_type TRANSFORMER) of model.onnx read by OpenVINO,
                     calibrated on calibration.npy
    onnx.json        which exporter/optimizer/quantizer ran, what they fused and quantized
    r<S>/            the same ONNX/OpenVINO files exported at S x S with interpolated position
                     embeddings (``interpolate_pos_encoding=True``), for the resolution sweep; only
                     the files the swept peers need
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vitc.bench.images import CALIBRATION, EVALUATION, image_files
from vitc.bench.models import MODELS, ModelSpec

# Bump when the files written here change meaning, so stale caches are rebuilt.
PREPARE_VERSION = 2
ONNX_OPSET = 17
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "logits"
# Images per eager reference call: bounds the reference's memory on ViT-L (attention is B x H x T x T).
REFERENCE_CHUNK = 4
VITC_FILES = {"float32": "model.vitc", "bfloat16": "model.bfloat16.vitc", "int8": "model.int8.vitc"}
OV_INT8_FILE = "model.ov-int8.xml"
# Files each peer engine loads (vitc/bench/engines.py); prepare makes only what the run's engines need.
ONNX_FILES_OF = {
    "ort": ("model.onnx", "model.fused.onnx"),
    "ort-plain": ("model.onnx",),
    "ort-int8": ("model.onnx", "model.fused.onnx", "model.int8.onnx"),
    "ov": ("model.onnx",),
    "ov-bf16": ("model.onnx",),
    "ov-int8": ("model.onnx", OV_INT8_FILE),
}


def stamp(spec: ModelSpec, seed: int) -> dict[str, Any]:
    """What the cached files depend on."""
    return {"version": PREPARE_VERSION, "seed": seed, "config": spec.hf_config_kwargs()}


def _cache_valid(folder: Path, want: dict[str, Any]) -> bool:
    path = folder / "stamp.json"
    return path.is_file() and json.loads(path.read_text()) == want


def _processor_class():
    """transformers' ViT image processor; the PIL one where the default needs torchvision (not a dependency)."""
    try:
        from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

        return ViTImageProcessorPil
    except ImportError:
        from transformers import ViTImageProcessor

        return ViTImageProcessor


def _processor(folder: Path, size: int | None = None):
    """The checkpoint's image processor, at ``size`` x ``size`` if given (the sweep's resolutions)."""
    proc = _processor_class().from_pretrained(folder / "hf")
    if size is not None:
        proc.size = {"height": size, "width": size}
    return proc


def preprocess(folder: Path, files: list[tuple[str, Path]], size: int | None = None) -> np.ndarray:
    """Images through the checkpoint's processor: (N, 3, S, S) float32."""
    from PIL import Image

    proc = _processor(folder, size)
    images = []
    for _, path in files:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return np.ascontiguousarray(proc(images=images, return_tensors="np")["pixel_values"], dtype=np.float32)


def _eager(folder: Path):
    from transformers import ViTForImageClassification

    return ViTForImageClassification.from_pretrained(folder / "hf", attn_implementation="eager").eval()


def eager_logits(model, x: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), REFERENCE_CHUNK):
            out.append(model(torch.from_numpy(x[i : i + REFERENCE_CHUNK])).logits.numpy())
    return np.concatenate(out).astype(np.float32)


def write_checkpoint(spec: ModelSpec, folder: Path, seed: int) -> None:
    """Random-weight HF checkpoint with its image processor, the fixed input and the eager reference."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(**spec.hf_config_kwargs(), attn_implementation="eager")
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(folder / "hf")
    _processor_class()(size={"height": spec.image_size, "width": spec.image_size}).save_pretrained(folder / "hf")

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, spec.image_size, spec.image_size), dtype=np.float32)
    np.save(folder / "input.npy", x)
    np.save(folder / "reference.npy", eager_logits(model, x))


def write_accuracy_set(folder: Path, n_images: int) -> list[str]:
    """Real photos + their eager fp32 logits (accuracy.npz), unless the cached set has the same images."""
    files = image_files(EVALUATION, n_images)
    names = [name for name, _ in files]
    meta_path = folder / "accuracy.json"
    if meta_path.is_file() and (folder / "accuracy.npz").is_file():
        if json.loads(meta_path.read_text()).get("images") == names:
            return names
    x = preprocess(folder, files)
    np.savez(folder / "accuracy.npz", inputs=x, reference=eager_logits(_eager(folder), x))
    meta_path.write_text(json.dumps({"images": names}, indent=1))
    return names


def calibration_inputs(folder: Path, n_images: int, size: int | None = None) -> tuple[np.ndarray, list[str]]:
    files = image_files(CALIBRATION, n_images)
    return preprocess(folder, files, size), [name for name, _ in files]


def convert_vitc(folder: Path) -> None:
    import vitc

    for dtype, name in VITC_FILES.items():
        if not (folder / name).is_file():
            vitc.convert(folder / "hf", folder / name, dtype=dtype, progress=False)


def export_onnx(folder: Path, dst: Path, size: int | None = None) -> str:
    """Export the eager model with a dynamic batch axis; returns which exporter ran.

    ``size``: export at size x size with interpolated position embeddings (the resolution sweep).
    The TorchScript exporter (dynamo=False) goes first: its graphs are the ones the
    onnxruntime.transformers fusions were written for. The dynamo exporter is the fallback.
    """
    import torch

    interpolate = size is not None

    class LogitsOnly(torch.nn.Module):
        """Plain tensor out: both exporters trace a tensor more reliably than a ModelOutput."""

        def __init__(self, vit: torch.nn.Module):
            super().__init__()
            self.vit = vit

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.vit(pixel_values, interpolate_pos_encoding=interpolate).logits

    model = LogitsOnly(_eager(folder)).eval()
    x = torch.from_numpy(np.load(folder / "input.npy"))
    if size is not None:
        x = torch.zeros((1, x.shape[1], size, size), dtype=torch.float32)
    dst.parent.mkdir(parents=True, exist_ok=True)
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
                str(dst),
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                **common,
            )
        return f"torch.onnx.export(dynamo=False, opset={ONNX_OPSET})"
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the other one
        print(f"prepare: TorchScript ONNX export failed ({exc!r}); trying dynamo=True", file=sys.stderr)
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(model, (x,), str(dst), dynamo=True, dynamic_shapes=({0: batch},), external_data=False, **common)
    return f"torch.onnx.export(dynamo=True, opset={ONNX_OPSET})"


def optimize_onnx(spec: ModelSpec, src: Path, dst: Path) -> dict[str, Any]:
    """onnxruntime.transformers fusions (attention, LayerNorm, GELU) for model_type="vit"."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(
        str(src),
        model_type="vit",
        num_heads=spec.num_attention_heads,
        hidden_size=spec.hidden_size,
        opt_level=0,  # fusions only; ORT_ENABLE_ALL is applied again when the session loads it
    )
    fused = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(dst))
    return fused


def onnx_op_counts(path: Path) -> dict[str, int]:
    import onnx

    return dict(Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node))


# ONNX ops that show dynamic quantization really happened (the u8 x s8 integer GEMMs).
ORT_INT8_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLinear", "ConvInteger")


def quantize_onnx(src: Path, dst: Path) -> dict[str, Any]:
    """Dynamic int8: weights quantized offline (s8, per tensor), activations per call (u8); VNNI on x86.

    Returns what ran and the integer ops it produced: a quantizer that silently skips every MatMul would
    otherwise benchmark as a fast "int8" engine that is really fp32."""
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
    ops = onnx_op_counts(dst)
    int8_ops = {op: n for op, n in ops.items() if op in ORT_INT8_OPS}
    if not int8_ops:
        raise RuntimeError(f"quantize_dynamic of {src.name} produced no integer ops: {ops}")
    return {"how": f"quantize_dynamic(weight_type=QInt8) of {src.name}", "int8_ops": int8_ops}


# NNCF's SmoothQuant (on by default for model_type TRANSFORMER, MatMul alpha 0.95) made the random-weight
# benchmark checkpoints much less accurate with no change in speed (ViT-B/16-224, 8 real photos: worst
# cosine 0.946 -> 0.992, top-1 5/8 -> 7/8 without it; AMD Zen 2): the peer is run at its best.
NNCF_SMOOTH_QUANT = False


def quantize_openvino(src: Path, dst: Path, calib: np.ndarray, calib_names: list[str]) -> dict[str, Any]:
    """Static int8 with NNCF post-training quantization of the ONNX export, calibrated on real images.

    Saved without fp16 compression (``compress_to_fp16=False``): the layers NNCF leaves in float keep
    their fp32 weights, as in the fp32 engines."""
    import logging

    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(src))
    dataset = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    advanced = None
    if not NNCF_SMOOTH_QUANT:
        advanced = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))
    quantized = nncf.quantize(
        model,
        dataset,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calib),
        advanced_parameters=advanced,
    )
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    fq = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    return {
        "how": (
            f"nncf {nncf.__version__} quantize(model_type=TRANSFORMER, subset_size={len(calib)}"
            f"{'' if NNCF_SMOOTH_QUANT else ', SmoothQuant off'}) of {src.name} read by OpenVINO"
        ),
        "smooth_quant": NNCF_SMOOTH_QUANT,
        "calibration_images": calib_names,
        "fake_quantize_ops": int(fq),
    }


def prepare_peer_files(
    spec: ModelSpec,
    folder: Path,
    engines: set[str],
    notes: dict[str, Any],
    size: int | None = None,
    calibration_images: int = 8,
) -> dict[str, Any]:
    """The ONNX / OpenVINO files of ``engines`` in ``folder`` (the model's, or r<S>/ for ``size``).

    ``notes`` is that folder's onnx.json content, updated and returned."""
    target = folder if size is None else folder / f"r{size}"
    target.mkdir(parents=True, exist_ok=True)
    need = {f for e in engines for f in ONNX_FILES_OF.get(e, ())}
    if not need:
        return notes
    if not (target / "model.onnx").is_file() or "exporter" not in notes:
        notes = {"exporter": export_onnx(folder, target / "model.onnx", size)}
        if size is not None:
            notes["interpolate_pos_encoding"] = True
            notes["image_size"] = size
    if "model.fused.onnx" in need and "fused_ops" not in notes:
        try:
            notes["fused_ops"] = optimize_onnx(spec, target / "model.onnx", target / "model.fused.onnx")
            notes["fp32_model"] = "model.fused.onnx"
        except Exception as exc:  # noqa: BLE001 - the plain export still benchmarks
            print(f"prepare: onnxruntime.transformers optimizer failed: {exc!r}", file=sys.stderr)
            notes["fused_ops"] = None
            notes["fp32_model"] = "model.onnx"
    if "model.int8.onnx" in need and "int8" not in notes:
        notes["int8"] = quantize_onnx(target / notes["fp32_model"], target / "model.int8.onnx")
    ov_stale = notes.get("openvino_int8", {}).get("smooth_quant") != NNCF_SMOOTH_QUANT
    if OV_INT8_FILE in need and (ov_stale or not (target / OV_INT8_FILE).is_file()):
        calib, names = calibration_inputs(folder, calibration_images, size)
        notes["openvino_int8"] = quantize_openvino(target / "model.onnx", target / OV_INT8_FILE, calib, names)
    (target / "onnx.json").write_text(json.dumps(notes, indent=1))
    return notes


def prepare(
    spec: ModelSpec,
    folder: Path,
    seed: int,
    engines: set[str],
    accuracy_images: int,
    calibration_images: int,
    sizes: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Make (or reuse) every file for ``spec`` in ``folder``; returns the notes of what was made."""
    folder.mkdir(parents=True, exist_ok=True)
    want = stamp(spec, seed)
    if not _cache_valid(folder, want):
        import shutil

        for child in folder.iterdir():  # every file derives from the checkpoint: start clean
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        write_checkpoint(spec, folder, seed)
        (folder / "stamp.json").write_text(json.dumps(want, indent=1))
    convert_vitc(folder)  # also fills in files a cache from an older vitc lacks
    result: dict[str, Any] = {"accuracy_images": write_accuracy_set(folder, accuracy_images)}

    def notes_of(target: Path) -> dict[str, Any]:
        path = target / "onnx.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    result["onnx"] = prepare_peer_files(spec, folder, engines, notes_of(folder), None, calibration_images)
    for size in sizes:
        if size == spec.image_size:
            continue
        result[f"r{size}"] = prepare_peer_files(
            spec, folder, engines, notes_of(folder / f"r{size}"), size, calibration_images
        )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engines", nargs="*", default=[], help="the peer engines whose files to make")
    p.add_argument("--accuracy-images", type=int, default=len(EVALUATION))
    p.add_argument("--calibration-images", type=int, default=len(CALIBRATION))
    p.add_argument("--sizes", type=int, nargs="*", default=[], help="also export these resolutions (r<S>/)")
    args = p.parse_args(argv)
    spec = MODELS[args.model]
    notes = prepare(
        spec,
        args.workdir / spec.name,
        args.seed,
        set(args.engines),
        args.accuracy_images,
        args.calibration_images,
        tuple(args.sizes),
    )
    print(json.dumps(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
