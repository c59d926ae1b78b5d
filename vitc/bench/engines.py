"""One engine, one model, one process: load, check against transformers eager, then time.

Run by vitc/bench/run.py as ``python -m vitc.bench.engines ...`` so each engine's peak resident
memory is its own (VmHWM of a fresh exec'd process). Writes one JSON result file. Not a library:
the engines here are thin adapters over each runtime's public API.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vitc.bench.models import MODELS, ModelSpec
from vitc.bench.prepare import INPUT_NAME, OUTPUT_NAME, VITC_FILES

# fp32 engines must match transformers eager to this, scaled by max(1, max |reference logit|):
# the same math in another summation order drifts by ~1e-6 relative per layer, far below it.
FP32_ATOL = 1e-3
# Dynamic int8 is a different model numerically; this only catches a broken run (garbage, NaN).
INT8_ATOL = 0.5
PERCENTILES = (10, 25, 75, 90)

Forward = Callable[[np.ndarray], np.ndarray]


# ---- engines: each returns (forward, variant description, versions) ----------------------------
def _load_vitc(folder: Path, threads: int, dtype: str) -> tuple[Forward, str, dict[str, str]]:
    import vitc

    vitc.set_num_threads(threads)
    model = vitc.ViT.from_pretrained(folder / VITC_FILES[dtype])
    assert model.dtype == dtype, (model.dtype, dtype)

    def forward(x: np.ndarray) -> np.ndarray:
        return model(x).logits

    kernels = vitc._core.kernels()
    variant = {
        "float32": "fp32, .vitc file (memory-mapped)",
        "bfloat16": f"bf16 weights, .vitc --dtype bfloat16 ({kernels['bf16 GEMM']} kernel)",
        "int8": f"int8 weights per channel, activations per token, .vitc --dtype int8 ({kernels['int8 GEMM']} kernel)",
    }[dtype]
    return forward, variant, {"vitc": vitc.__version__}


def load_vitc(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    return _load_vitc(folder, threads, "float32")


def load_vitc_bf16(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    return _load_vitc(folder, threads, "bfloat16")


def load_vitc_int8(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    return _load_vitc(folder, threads, "int8")


def _load_hf(folder: Path, threads: int, attn: str) -> tuple[Forward, str, dict[str, str]]:
    import torch
    import transformers
    from transformers import ViTForImageClassification

    torch.set_num_threads(threads)
    model = ViTForImageClassification.from_pretrained(folder / "hf", attn_implementation=attn).eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).logits.numpy()

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    return forward, f"fp32, attn_implementation={attn!r}", versions


def load_hf_eager(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    return _load_hf(folder, threads, "eager")


def load_hf_sdpa(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    return _load_hf(folder, threads, "sdpa")


def _load_ort(path: Path, threads: int) -> tuple[Forward, dict[str, str]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1  # one op at a time: all threads go to the GEMMs, as in the other engines
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    return forward, {"onnxruntime": ort.__version__}


def _onnx_notes(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "onnx.json").read_text())


def load_ort(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    """The best fp32 ONNX model prepare.py made: fused by onnxruntime.transformers if that worked."""
    notes = _onnx_notes(folder)
    forward, versions = _load_ort(folder / notes["fp32_model"], threads)
    fused = notes.get("fused_ops")
    fusions = (
        "no transformers-optimizer fusions"
        if not fused
        else "fused " + ", ".join(f"{op} x{n}" for op, n in sorted(fused.items()))
    )
    variant = f"fp32, {notes['exporter']}, ORT_ENABLE_ALL, {fusions}"
    return forward, variant, versions


def load_ort_plain(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    notes = _onnx_notes(folder)
    forward, versions = _load_ort(folder / "model.onnx", threads)
    return forward, f"fp32, {notes['exporter']}, ORT_ENABLE_ALL only", versions


def load_ort_int8(folder: Path, threads: int) -> tuple[Forward, str, dict[str, str]]:
    notes = _onnx_notes(folder)
    forward, versions = _load_ort(folder / "model.int8.onnx", threads)
    return forward, f"int8 dynamic, {notes['int8']}", versions


# name -> (loader, precision). Order is the report's row order.
ENGINES: dict[str, tuple[Callable[[Path, int], tuple[Forward, str, dict[str, str]]], str]] = {
    "vitc": (load_vitc, "fp32"),
    "vitc-bf16": (load_vitc_bf16, "bf16"),
    "vitc-int8": (load_vitc_int8, "int8"),
    "hf-eager": (load_hf_eager, "fp32"),
    "hf-sdpa": (load_hf_sdpa, "fp32"),
    "ort": (load_ort, "fp32"),
    "ort-plain": (load_ort_plain, "fp32"),
    "ort-int8": (load_ort_int8, "int8"),
}
ONNX_ENGINES = frozenset(name for name in ENGINES if name.startswith("ort"))
REFERENCE_ENGINE = "hf-eager"


# Modules each engine needs, imported before the load timer starts: "load" means file -> ready model,
# not interpreter start-up (torch's import alone is seconds).
ENGINE_IMPORTS: dict[str, tuple[str, ...]] = {
    "vitc": ("vitc",),
    "vitc-bf16": ("vitc",),
    "vitc-int8": ("vitc",),
    "hf-eager": ("torch", "transformers", "transformers.models.vit.modeling_vit"),
    "hf-sdpa": ("torch", "transformers", "transformers.models.vit.modeling_vit"),
    "ort": ("onnxruntime",),
    "ort-plain": ("onnxruntime",),
    "ort-int8": ("onnxruntime",),
}


def preimport(engine: str) -> None:
    import importlib

    for name in ENGINE_IMPORTS[engine]:
        importlib.import_module(name)
    if "transformers" in sys.modules:  # its weight-loading progress bar would clutter the log
        sys.modules["transformers"].utils.logging.disable_progress_bar()


# ---- measurement helpers ------------------------------------------------------------------------
def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB; ru_maxrss if /proc is missing.

    VmHWM belongs to the address space made at exec, so the parent's memory never counts here
    (ru_maxrss survives exec on Linux and could include it).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(forward: Forward, x: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = forward(x)
    return out, time.perf_counter() - t0


def summarize(times: list[float]) -> dict[str, Any]:
    """Median/min/percentiles in seconds; the raw times are kept for anyone who wants more."""
    a = np.asarray(times)
    stats = {"median": float(np.median(a)), "min": float(a.min()), "max": float(a.max()), "times": times}
    for q in PERCENTILES:
        stats[f"p{q}"] = float(np.percentile(a, q))
    return stats


def check(out: np.ndarray, ref: np.ndarray, precision: str) -> dict[str, Any]:
    """Compare logits with the transformers eager reference."""
    scale = max(1.0, float(np.abs(ref).max()))
    atol = (FP32_ATOL if precision == "fp32" else INT8_ATOL) * scale
    diff = float(np.abs(out.astype(np.float64) - ref).max()) if out.shape == ref.shape else float("inf")
    argmax_agree = out.shape == ref.shape and bool((out.argmax(-1) == ref.argmax(-1)).all())
    # Random weights give near-tied logits, so a quantized model may legitimately flip the argmax:
    # only fp32 engines are held to it.
    passed = bool(np.isfinite(diff) and diff <= atol and (argmax_agree or precision != "fp32"))
    cosine = float("nan")
    if out.shape == ref.shape:  # worst row: the accuracy figure issue 6 asks every mode for
        a, b = out.astype(np.float64).reshape(len(out), -1), ref.reshape(len(ref), -1)
        cosine = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
    return {"max_abs_diff": diff, "atol": atol, "argmax_agree": argmax_agree, "cosine": cosine, "passed": passed}


# ---- the run ----------------------------------------------------------------------------------------
def run_engine(
    engine: str, spec: ModelSpec, folder: Path, threads: int, batch_size: int, counts: dict[str, int]
) -> dict[str, Any]:
    """Load, check, time; returns the result record (``check.passed`` False means: not timed)."""
    loader, precision = ENGINES[engine]
    x1 = np.load(folder / "input.npy")
    ref = np.load(folder / "reference.npy")
    result: dict[str, Any] = {
        "engine": engine,
        "model": spec.name,
        "precision": precision,
        "threads": threads,
    }

    preimport(engine)
    rss_before = rss_mb("VmRSS")  # interpreter + the engine's imports, before any weights
    t0 = time.perf_counter()
    forward, variant, versions = loader(folder, threads)
    result["load_s"] = time.perf_counter() - t0
    result.update(variant=variant, versions=versions, rss_after_imports_mb=rss_before)

    # The first call is the correctness check; it also pays lazy costs (page-ins of a memory-mapped
    # file, workspace and arena allocation), so it is reported on its own, never in the statistics.
    out, first = timed(forward, x1)
    result["first_call_s"] = first
    result["check"] = check(out, ref, precision)
    if not result["check"]["passed"]:
        result["peak_rss_mb"] = rss_mb("VmHWM")
        return result

    for _ in range(counts["warmup"] - 1):
        forward(x1)
    result["latency_s"] = summarize([timed(forward, x1)[1] for _ in range(counts["runs"])])

    # Batch input: row 0 is the checked input, so the batched path is checked too.
    rng = np.random.default_rng(1)
    rest = rng.standard_normal((batch_size - 1, *x1.shape[1:]), dtype=np.float32)
    xb = np.concatenate([x1, rest])
    outb, first_b = timed(forward, xb)
    result["batch_check"] = check(outb[:1], ref, precision)
    if not result["batch_check"]["passed"]:
        result["check"]["passed"] = False
        result["peak_rss_mb"] = rss_mb("VmHWM")
        return result
    for _ in range(counts["batch_warmup"] - 1):
        forward(xb)
    # With batch_warmup 0 the checked first batch call is timed too (big models: one call is ~a minute).
    batch_times = [first_b] if counts["batch_warmup"] == 0 else []
    batch_times += [timed(forward, xb)[1] for _ in range(max(counts["batch_runs"] - len(batch_times), 0))]
    result["batch_size"] = batch_size
    result["batch_s"] = summarize(batch_times)
    result["throughput_img_s"] = batch_size / result["batch_s"]["median"]
    result["peak_rss_mb"] = rss_mb("VmHWM")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, choices=list(ENGINES))
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--threads", required=True, type=int)
    p.add_argument("--batch-size", required=True, type=int)
    p.add_argument("--counts", required=True, type=json.loads, help='{"warmup": 1, "runs": 5, ...}')
    p.add_argument("--out", required=True, type=Path, help="result JSON file")
    args = p.parse_args(argv)
    spec = MODELS[args.model]
    result = run_engine(
        args.engine, spec, args.workdir / spec.name, args.threads, args.batch_size, args.counts
    )
    args.out.write_text(json.dumps(result, indent=1))
    return 0 if result["check"]["passed"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
