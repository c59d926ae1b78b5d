"""One engine, one model, one process: load, check against transformers eager, time, score accuracy.

Run by vitc/bench/run.py as ``python -m vitc.bench.engines ...`` so each engine's peak resident
memory is its own (VmHWM of a fresh exec'd process). Writes one JSON result file. Three modes:
the benchmark (default), ``--sweep`` (latency per image over batch sizes or resolutions, for the
scaling plot) and ``--profile`` (vitc's per-stage times, vitc/bench/profile.py). Not a library: the
engines here are thin adapters over each runtime's public API.
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

from vitc.bench.cpu import OthersShare, load_average
from vitc.bench.models import MODELS, ModelSpec
from vitc.bench.prepare import INPUT_NAME, OUTPUT_NAME, OV_INT8_FILE, VITC_FILES

# fp32 engines must match transformers eager to this, scaled by max(1, max |reference logit|):
# the same math in another summation order drifts by ~1e-6 relative per layer, far below it.
FP32_ATOL = 1e-3
# bf16 and int8 are different models numerically; this only catches a broken run (garbage, NaN). How
# close they are is what the accuracy columns (real images) report.
LOWP_ATOL = 0.5
PERCENTILES = (10, 25, 75, 90)
SWEEP_SEED = 2

Forward = Callable[[np.ndarray], np.ndarray]
Loaded = tuple[Forward, str, dict[str, str]]


class NotApplicable(Exception):
    """The engine does not exist on this machine (e.g. bf16 on a CPU without native bf16): a row that
    says why, not a failure."""


# ---- engines: each returns (forward, variant description, versions) ----------------------------
# ``size`` is None at the model's own resolution; otherwise the engine runs at size x size with
# interpolated position embeddings (the resolution sweep): vitc and transformers interpolate at run
# time, the ONNX/OpenVINO peers load the export made at that size (prepare.py, r<size>/).
def kernel_config() -> dict[str, Any]:
    """vitc's kernel tier and per-op kernels, from whichever interface this build has.

    Builds with the tier system have ``_core.tier()`` and ``_core.kernels()``; older builds only the
    kernels dict of ``show_config``."""
    import vitc

    core = vitc._core
    info: dict[str, Any] = {}
    try:
        blas = core.blas_info()
        info["openblas_core"] = blas.get("corename", "?")
    except AttributeError:
        pass
    if hasattr(core, "tier"):
        info["tier"] = core.tier()
        info["supported_tiers"] = list(core.supported_tiers()) if hasattr(core, "supported_tiers") else []
    else:
        info["tier"] = None
    if hasattr(core, "kernels"):
        info["kernels"] = dict(core.kernels())
    else:
        from vitc import runtime

        info["kernels"] = dict(runtime.config_dict()["kernels"])
    return info


def _kernel_of(kernels: dict[str, str], *names: str) -> str:
    for n in names:
        if n in kernels:
            return kernels[n]
    return "?"


def _load_vitc(folder: Path, threads: int, dtype: str, size: int | None) -> Loaded:
    import vitc

    vitc.set_num_threads(threads)
    model = vitc.ViT.from_pretrained(folder / VITC_FILES[dtype])
    assert model.dtype == dtype, (model.dtype, dtype)
    interpolate = size is not None

    def forward(x: np.ndarray) -> np.ndarray:
        return model(x, interpolate_pos_encoding=interpolate, return_dict=True).logits

    k = kernel_config()["kernels"]
    variant = {
        "float32": f"fp32, .vitc file (memory-mapped), GEMM {_kernel_of(k, 'float32 GEMM')}",
        "bfloat16": f"bf16 weights, .vitc --dtype bfloat16 (GEMM {_kernel_of(k, 'bf16 GEMM', 'bf16')})",
        "int8": (
            "int8 weights per channel, activations per token (dynamic), .vitc --dtype int8 "
            f"(GEMM {_kernel_of(k, 'int8 GEMM', 'int8')})"
        ),
    }[dtype]
    forward.model = model  # type: ignore[attr-defined]  # --profile needs the model itself
    return forward, variant, {"vitc": vitc.__version__}


def load_vitc(folder: Path, threads: int, size: int | None = None) -> Loaded:
    return _load_vitc(folder, threads, "float32", size)


def load_vitc_bf16(folder: Path, threads: int, size: int | None = None) -> Loaded:
    return _load_vitc(folder, threads, "bfloat16", size)


def load_vitc_int8(folder: Path, threads: int, size: int | None = None) -> Loaded:
    return _load_vitc(folder, threads, "int8", size)


def _load_hf(folder: Path, threads: int, attn: str, size: int | None) -> Loaded:
    import torch
    import transformers
    from transformers import ViTForImageClassification

    torch.set_num_threads(threads)
    model = ViTForImageClassification.from_pretrained(folder / "hf", attn_implementation=attn).eval()
    interpolate = size is not None

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x), interpolate_pos_encoding=interpolate).logits.numpy()

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    return forward, f"fp32, attn_implementation={attn!r}", versions


def load_hf_eager(folder: Path, threads: int, size: int | None = None) -> Loaded:
    return _load_hf(folder, threads, "eager", size)


def load_hf_sdpa(folder: Path, threads: int, size: int | None = None) -> Loaded:
    return _load_hf(folder, threads, "sdpa", size)


def peer_folder(folder: Path, size: int | None) -> Path:
    """Where the ONNX/OpenVINO files of this resolution are (prepare.py)."""
    return folder if size is None else folder / f"r{size}"


def _onnx_notes(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "onnx.json").read_text())


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


def load_ort(folder: Path, threads: int, size: int | None = None) -> Loaded:
    """The best fp32 ONNX model prepare.py made: fused by onnxruntime.transformers if that worked."""
    target = peer_folder(folder, size)
    notes = _onnx_notes(target)
    forward, versions = _load_ort(target / notes["fp32_model"], threads)
    fused = notes.get("fused_ops")
    fusions = (
        "no transformers-optimizer fusions"
        if not fused
        else "fused " + ", ".join(f"{op} x{n}" for op, n in sorted(fused.items()))
    )
    variant = f"fp32, {notes['exporter']}, ORT_ENABLE_ALL, {fusions}"
    return forward, variant, versions


def load_ort_plain(folder: Path, threads: int, size: int | None = None) -> Loaded:
    target = peer_folder(folder, size)
    notes = _onnx_notes(target)
    forward, versions = _load_ort(target / "model.onnx", threads)
    return forward, f"fp32, {notes['exporter']}, ORT_ENABLE_ALL only", versions


def load_ort_int8(folder: Path, threads: int, size: int | None = None) -> Loaded:
    target = peer_folder(folder, size)
    q = _onnx_notes(target)["int8"]
    forward, versions = _load_ort(target / "model.int8.onnx", threads)
    ops = ", ".join(f"{op} x{n}" for op, n in sorted(q["int8_ops"].items()))
    return forward, f"int8 dynamic (weights per tensor, activations per call): {q['how']}; {ops}", versions


def _ov_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _load_ov(path: Path, threads: int, hint: str | None) -> tuple[Forward, dict[str, str], str]:
    """OpenVINO on the CPU, one stream, ``threads`` inference threads; returns (forward, versions, the
    inference precision OpenVINO reports after compiling: it falls back to f32 silently)."""
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()

    def forward(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16"
    return forward, {"openvino": ov.__version__}, precision


def load_ov(folder: Path, threads: int, size: int | None = None) -> Loaded:
    target = peer_folder(folder, size)
    forward, versions, precision = _load_ov(target / "model.onnx", threads, "f32")
    variant = f"fp32 (INFERENCE_PRECISION_HINT f32, runs {precision}), {_onnx_notes(target)['exporter']}"
    return forward, variant, versions


def load_ov_bf16(folder: Path, threads: int, size: int | None = None) -> Loaded:
    caps = _ov_capabilities()
    if "BF16" not in caps:
        raise NotApplicable(f"n/a (no bf16 on this CPU: OpenVINO's CPU capabilities are {', '.join(caps)})")
    target = peer_folder(folder, size)
    forward, versions, precision = _load_ov(target / "model.onnx", threads, "bf16")
    if "bf16" not in precision:
        raise NotApplicable(f"n/a (OpenVINO compiled the bf16 hint as {precision})")
    return forward, f"bf16 (INFERENCE_PRECISION_HINT bf16, runs {precision})", versions


def load_ov_int8(folder: Path, threads: int, size: int | None = None) -> Loaded:
    target = peer_folder(folder, size)
    q = _onnx_notes(target)["openvino_int8"]
    # No precision hint: what an OpenVINO user gets (the ops NNCF leaves in float run in bf16 on bf16 CPUs).
    forward, versions, precision = _load_ov(target / OV_INT8_FILE, threads, None)
    import nncf

    versions["nncf"] = nncf.__version__
    variant = (
        f"int8 static (NNCF, {len(q['calibration_images'])} calibration images, "
        f"SmoothQuant {'on' if q.get('smooth_quant', True) else 'off'}, {q['fake_quantize_ops']} "
        f"FakeQuantize), other ops {precision} (default hint)"
    )
    return forward, variant, versions


# name -> (loader, precision). Order is the report's row order.
ENGINES: dict[str, tuple[Callable[..., Loaded], str]] = {
    "vitc": (load_vitc, "fp32"),
    "vitc-bf16": (load_vitc_bf16, "bf16"),
    "vitc-int8": (load_vitc_int8, "int8"),
    "hf-eager": (load_hf_eager, "fp32"),
    "hf-sdpa": (load_hf_sdpa, "fp32"),
    "ort": (load_ort, "fp32"),
    "ort-plain": (load_ort_plain, "fp32"),
    "ort-int8": (load_ort_int8, "int8"),
    "ov": (load_ov, "fp32"),
    "ov-bf16": (load_ov_bf16, "bf16"),
    "ov-int8": (load_ov_int8, "int8"),
}
VITC_ENGINES = frozenset(name for name in ENGINES if name == "vitc" or name.startswith("vitc-"))
ONNX_ENGINES = frozenset(name for name in ENGINES if name.startswith("ort"))
OPENVINO_ENGINES = frozenset(name for name in ENGINES if name.startswith("ov"))
REFERENCE_ENGINE = "hf-eager"
# Python modules each engine family needs beyond vitc (run.py skips engines whose modules are missing).
ENGINE_REQUIRES: dict[str, tuple[str, ...]] = {
    **{e: ("torch", "transformers") for e in ENGINES},
    **{e: () for e in VITC_ENGINES},
    **{e: ("torch", "onnx", "onnxruntime") for e in ONNX_ENGINES},
    **{e: ("torch", "onnx", "openvino") for e in OPENVINO_ENGINES},
    "ov-int8": ("torch", "onnx", "openvino", "nncf"),
}


# Modules each engine needs, imported before the load timer starts: "load" means file -> ready model,
# not interpreter start-up (torch's import alone is seconds).
ENGINE_IMPORTS: dict[str, tuple[str, ...]] = {
    **{e: ("vitc",) for e in VITC_ENGINES},
    "hf-eager": ("torch", "transformers", "transformers.models.vit.modeling_vit"),
    "hf-sdpa": ("torch", "transformers", "transformers.models.vit.modeling_vit"),
    **{e: ("onnxruntime",) for e in ONNX_ENGINES},
    **{e: ("openvino",) for e in OPENVINO_ENGINES},
    "ov-int8": ("openvino", "nncf"),
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


def _cosines(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a, b = out.astype(np.float64).reshape(len(out), -1), ref.astype(np.float64).reshape(len(ref), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check(out: np.ndarray, ref: np.ndarray, precision: str) -> dict[str, Any]:
    """Compare logits on the fixed input with the transformers eager reference: the go/no-go check."""
    scale = max(1.0, float(np.abs(ref).max()))
    atol = (FP32_ATOL if precision == "fp32" else LOWP_ATOL) * scale
    same_shape = out.shape == ref.shape
    diff = float(np.abs(out.astype(np.float64) - ref).max()) if same_shape else float("inf")
    argmax_agree = same_shape and bool((out.argmax(-1) == ref.argmax(-1)).all())
    # Random input gives near-tied logits, so a reduced-precision model may legitimately flip the
    # argmax: only fp32 engines are held to it here (the accuracy columns count flips on real images).
    passed = bool(np.isfinite(diff) and diff <= atol and (argmax_agree or precision != "fp32"))
    cosine = float(_cosines(out, ref).min()) if same_shape else float("nan")
    return {"max_abs_diff": diff, "atol": atol, "argmax_agree": argmax_agree, "cosine": cosine, "passed": passed}


def agreement(out: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Agreement with fp32 transformers eager on the real images: cosine of the logits (worst and mean
    image), max abs diff (also relative to max |reference|), top-1 agreement."""
    if out.shape != ref.shape:
        raise ValueError(f"accuracy: expected logits of shape {ref.shape}, got {out.shape}")
    cos = _cosines(out, ref)
    diff = float(np.abs(out.astype(np.float64) - ref).max())
    top1 = int((out.argmax(-1) == ref.argmax(-1)).sum())
    return {
        "images": len(ref),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs_diff": diff,
        "max_rel_diff": diff / max(float(np.abs(ref).max()), 1e-30),
        "top1_agree": top1,
        "top1_fraction": top1 / len(ref),
    }


def run_batches(forward: Forward, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([forward(x[i : i + batch]) for i in range(0, len(x), batch)])


# ---- the run ----------------------------------------------------------------------------------------
def run_engine(
    engine: str, spec: ModelSpec, folder: Path, threads: int, batch_size: int, counts: dict[str, int]
) -> dict[str, Any]:
    """Load, check, time, score; returns the result record (``check.passed`` False means: not timed;
    ``status`` "n/a" means: the engine does not exist on this CPU)."""
    loader, precision = ENGINES[engine]
    x1 = np.load(folder / "input.npy")
    ref = np.load(folder / "reference.npy")
    result: dict[str, Any] = {
        "engine": engine,
        "model": spec.name,
        "precision": precision,
        "threads": threads,
        "status": "ok",
    }
    load = load_average()  # other users of the machine: the report shows it beside each engine
    result["load_avg_1min"] = load[0] if load else None

    preimport(engine)
    rss_before = rss_mb("VmRSS")  # interpreter + the engine's imports, before any weights
    t0 = time.perf_counter()
    try:
        forward, variant, versions = loader(folder, threads)
    except NotApplicable as exc:
        result.update(status="n/a", reason=str(exc), check={"passed": True})
        return result
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
    with OthersShare() as others:  # how much of the machine other users took while we were timed
        result["latency_s"] = summarize([timed(forward, x1)[1] for _ in range(counts["runs"])])
    result["others_cpu_share"] = others.share

    if batch_size > 1:
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

    # Accuracy on real photos against fp32 eager, in batches of the benchmark's batch size.
    # (Deterministic per engine: the runner asks for it in the first round only, "accuracy": 0 later.)
    acc_path = folder / "accuracy.npz"
    if acc_path.is_file() and counts.get("accuracy", 1):
        data = np.load(acc_path)
        result["accuracy"] = agreement(run_batches(forward, data["inputs"], batch_size), data["reference"])
        result["accuracy"]["image_names"] = json.loads((folder / "accuracy.json").read_text())["images"]
    result["peak_rss_mb"] = rss_mb("VmHWM")
    return result


def run_sweep(
    engine: str, spec: ModelSpec, folder: Path, threads: int, axis: str, points: list[int], counts: dict[str, int]
) -> dict[str, Any]:
    """Latency per image over batch sizes (axis "batch", at the model's resolution) or resolutions
    (axis "size", batch 1, interpolated position embeddings); random inputs, not checked here (the
    benchmark run checked the engine)."""
    loader, precision = ENGINES[engine]
    preimport(engine)
    rng = np.random.default_rng(SWEEP_SEED)
    result: dict[str, Any] = {"engine": engine, "model": spec.name, "precision": precision, "axis": axis}
    result["points"] = []
    loaded: dict[int | None, Loaded] = {}
    for p in points:
        batch, size = (p, spec.image_size) if axis == "batch" else (1, p)
        key = None if size == spec.image_size else size
        if key not in loaded:
            loaded.clear()  # one model in memory at a time (ViT-L peers at 640 are big)
            loaded[key] = loader(folder, threads, key)
        forward = loaded[key][0]
        x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        out = forward(x)
        if out.shape != (batch, spec.num_labels) or not np.isfinite(out).all():
            raise RuntimeError(f"{engine} at batch {batch}, {size}x{size}: bad output {out.shape}")
        for _ in range(counts["warmup"] - 1):
            forward(x)
        times = summarize([timed(forward, x)[1] for _ in range(counts["runs"])])
        result["points"].append(
            {"batch": batch, "size": size, "latency_s": times, "per_image_s": times["median"] / batch}
        )
        result["variant"] = loaded[key][1]
    return result


def run_profile(engine: str, spec: ModelSpec, folder: Path, threads: int, batch: int, runs: int) -> dict[str, Any]:
    """vitc's per-stage times (vitc/bench/profile.py); status "not available" until the C side has them."""
    from vitc.bench.profile import profile_forward

    if engine not in VITC_ENGINES:
        raise ValueError(f"--profile: expected a vitc engine ({', '.join(sorted(VITC_ENGINES))}), got {engine!r}")
    preimport(engine)
    forward, variant, _ = ENGINES[engine][0](folder, threads)
    x = np.concatenate([np.load(folder / "input.npy")] * batch)
    result: dict[str, Any] = {"engine": engine, "model": spec.name, "batch": batch, "variant": variant}
    try:
        result["profile"] = profile_forward(forward.model, x, runs)  # type: ignore[attr-defined]
        result["status"] = "ok"
    except NotImplementedError as exc:
        result["status"] = "not available"
        result["reason"] = str(exc)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True, choices=list(ENGINES))
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("--threads", required=True, type=int)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--counts", required=True, type=json.loads, help='{"warmup": 1, "runs": 5, ...}')
    p.add_argument("--out", required=True, type=Path, help="result JSON file")
    p.add_argument("--sweep", choices=("batch", "size"), help="latency per image over --points")
    p.add_argument("--points", type=int, nargs="*", default=[])
    p.add_argument("--profile", action="store_true", help="vitc's per-stage times at --batch-size")
    args = p.parse_args(argv)
    spec = MODELS[args.model]
    folder = args.workdir / spec.name
    if args.profile:
        result = run_profile(args.engine, spec, folder, args.threads, args.batch_size, args.counts["runs"])
        args.out.write_text(json.dumps(result, indent=1))
        return 0
    if args.sweep:
        result = run_sweep(args.engine, spec, folder, args.threads, args.sweep, args.points, args.counts)
        args.out.write_text(json.dumps(result, indent=1))
        return 0
    result = run_engine(args.engine, spec, folder, args.threads, args.batch_size, args.counts)
    args.out.write_text(json.dumps(result, indent=1))
    return 0 if result["check"]["passed"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
