"""Where vitc's forward spends its time: per-stage seconds as % of the forward (``vitc bench --profile``).

The stage timers live in the C forward; this module defines what the benchmark needs from it, checks
what it gets and formats it. The interface (one method on the model, so nothing here reaches into
``vitc._core``):

    ViT.profile(pixel_values, interpolate_pos_encoding=False) -> dict[str, float]

runs one forward exactly as ``ViT.__call__`` does (same kernels, threads and workspace) and returns
wall-clock seconds per stage, summed over the layers, under the keys of ``STAGES`` (a stage the
precision does not have, e.g. ``quantize`` in float32, may be absent or 0), plus ``"total"``: the
forward's own wall time, measured by the same clock. Each stage is timed on the calling thread around
its parallel region, barrier included, so stages never overlap and their sum is at most the total;
``other`` (residual adds, packing, the Python call) is the rest. Until the C forward has the timers,
``ViT`` has no ``profile`` method and :func:`profile_method` raises ``NotImplementedError`` saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Stage keys, in forward order, and what each covers.
STAGES: dict[str, str] = {
    "patch_embed": "patch embedding GEMM + class token + position embeddings",
    "qkv": "fused Q/K/V projection GEMM (bias included)",
    "attention": "softmax(Q K^T / sqrt(d)) V over all heads",
    "out_proj": "attention output projection GEMM + residual",
    "mlp_up": "MLP fc1 GEMM (bias included)",
    "gelu": "GELU on the fc1 output (0 when fused into the GEMM epilogue)",
    "mlp_down": "MLP fc2 GEMM + residual",
    "norms": "every LayerNorm (two per layer + the final one)",
    "quantize": "activation quantization / bf16 conversion before the reduced-precision GEMMs",
}
TOTAL = "total"
OTHER = "other"

NOT_WIRED = (
    "vitc bench --profile needs per-stage timers from the C forward: ViT.profile(pixel_values, "
    "interpolate_pos_encoding=False) -> {{stage: seconds}} with stages {stages} and 'total' "
    "(vitc/bench/profile.py describes the contract). This build's ViT has no profile method yet."
)

ProfileFn = Callable[..., dict[str, float]]


def profile_method(model: Any) -> ProfileFn:
    """The model's per-stage profiling call, or NotImplementedError naming the missing interface."""
    fn = getattr(model, "profile", None)
    if not callable(fn):
        raise NotImplementedError(NOT_WIRED.format(stages=", ".join(STAGES)))
    return fn


def check_stage_times(times: Any) -> dict[str, float]:
    """Validate one forward's {stage: seconds}; returns it with every stage present (0 if absent)."""
    if not isinstance(times, dict):
        raise TypeError(f"profile: expected a dict of stage -> seconds, got {type(times).__name__}")
    unknown = sorted(set(times) - set(STAGES) - {TOTAL})
    if unknown:
        raise ValueError(f"profile: expected stages from {list(STAGES)} and {TOTAL!r}, got unknown {unknown}")
    if TOTAL not in times:
        raise ValueError(f"profile: expected a {TOTAL!r} entry (the forward's wall time), got keys {sorted(times)}")
    out: dict[str, float] = {}
    for key in (*STAGES, TOTAL):
        v = times.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"profile: expected seconds (a float) for {key!r}, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"profile: expected finite non-negative seconds for {key!r}, got {v}")
        out[key] = v
    staged = sum(out[s] for s in STAGES)
    # The stages are disjoint intervals inside the forward: more than the total means broken timers.
    if staged > out[TOTAL] * 1.01 + 1e-6:
        raise ValueError(f"profile: the stages sum to {staged:.6f} s, more than the forward's total {out[TOTAL]:.6f} s")
    return out


def profile_forward(
    model: Any, x: np.ndarray, runs: int, warmup: int = 1, interpolate_pos_encoding: bool = False
) -> dict[str, Any]:
    """Median seconds per stage over ``runs`` profiled forwards after ``warmup`` ones.

    Returns {"seconds": {stage: s, "other": s, "total": s}, "percent": {stage: % of total}, "runs": n}."""
    fn = profile_method(model)
    for _ in range(warmup):
        check_stage_times(fn(x, interpolate_pos_encoding=interpolate_pos_encoding))
    samples = [check_stage_times(fn(x, interpolate_pos_encoding=interpolate_pos_encoding)) for _ in range(runs)]
    med = {k: float(np.median([s[k] for s in samples])) for k in (*STAGES, TOTAL)}
    med[OTHER] = max(med[TOTAL] - sum(med[s] for s in STAGES), 0.0)
    percent = {k: (100 * med[k] / med[TOTAL] if med[TOTAL] > 0 else 0.0) for k in (*STAGES, OTHER)}
    return {"seconds": med, "percent": percent, "runs": runs}


def format_profiles(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one column per profiled (engine, model, batch), one row per stage, % of the forward."""
    if not rows:
        return ""
    head = ["stage"] + [f"{r['engine']} {r['model']} b{r['batch']}" for r in rows]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|--:" * len(rows) + "|"]
    for stage in (*STAGES, OTHER):
        lines.append("| " + " | ".join([stage] + [f"{r['profile']['percent'][stage]:.1f} %" for r in rows]) + " |")
    lines.append(
        "| forward (median) | " + " | ".join(f"{r['profile']['seconds'][TOTAL] * 1e3:.1f} ms" for r in rows) + " |"
    )
    return "\n".join(lines)
