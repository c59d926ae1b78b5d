"""Where vitc's forward spends its time: per-stage seconds as % of the forward (``vitc bench --profile``).

The stage timers live in the C forward; this module defines what the benchmark needs from them, checks
what it gets and formats it. The interface is one keyword of the C model that ``vitc.ViT`` builds once
(``ViT._model``, a ``vitc._core.Model``)::

    _core.Model.forward(pixels, pos_table, output_hidden_states, output_attentions, profile=True)
        -> {..., "profile": {stage: seconds}}

one forward exactly as ``ViT.__call__`` runs it (same kernels, threads and workspace), with wall-clock
seconds per stage summed over the layers. The stage names of ``STAGES`` (and the aliases of
``ALIASES``) are shown in forward order; any other name the C side reports is shown after them, never
dropped. A ``"total"`` entry, if present, is the forward's own wall time; without it the total is the
wall time of the ``forward`` call measured here. Stages are meant to be disjoint (timed on the calling
thread around their parallel region), so ``other`` (residual adds, packing, the call itself) is the
total minus their sum; if they sum to more than the total, the table says so instead of hiding it.
Until the C forward has the keyword, :func:`profile_method` raises ``NotImplementedError`` saying what
is missing, and ``vitc bench --profile`` exits 2 with that message.
"""

from __future__ import annotations

import math
import time
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
# Other spellings the C side may use for the same stages (summed into the canonical key).
ALIASES: dict[str, str] = {
    "patch": "patch_embed",
    "embed": "patch_embed",
    "embeddings": "patch_embed",
    "attn": "attention",
    "proj": "out_proj",
    "attn_out": "out_proj",
    "o_proj": "out_proj",
    "fc1": "mlp_up",
    "mlp1": "mlp_up",
    "fc2": "mlp_down",
    "mlp2": "mlp_down",
    "layernorm": "norms",
    "layer_norm": "norms",
    "norm": "norms",
    "ln": "norms",
    "quant": "quantize",
}
TOTAL = "total"
OTHER = "other"

NOT_WIRED = (
    "vitc bench --profile needs per-stage timers from the C forward: "
    "_core.Model.forward(pixels, pos_table, False, False, profile=True) returning a dict with a "
    "'profile' entry {{stage: seconds}} (stages such as {stages}; vitc/bench/profile.py describes the "
    "contract). {why}"
)

ProfileFn = Callable[..., dict[str, float]]


def _not_wired(why: str) -> NotImplementedError:
    return NotImplementedError(NOT_WIRED.format(stages=", ".join(STAGES), why=why))


def profile_method(model: Any) -> ProfileFn:
    """``fn(pixel_values, interpolate_pos_encoding=False) -> {stage: seconds, "total": seconds}`` for a
    ``vitc.ViT``, or NotImplementedError naming the missing interface (raised by the first call when the
    C model exists but its forward has no ``profile`` keyword)."""
    core = getattr(model, "_model", None)  # the _core.Model that vitc/model.py builds once per ViT
    if core is None or not callable(getattr(core, "forward", None)):
        raise _not_wired("This build's ViT has no _core.Model (it predates the C model object).")

    def fn(pixel_values: Any, interpolate_pos_encoding: bool = False) -> dict[str, float]:
        # The same input path as ViT.__call__: its checks and its interpolated position table.
        x = model._check_pixels(pixel_values, interpolate_pos_encoding)
        pos = model._pos_table(*x.shape[2:]) if interpolate_pos_encoding else None
        t0 = time.perf_counter()
        try:
            out = core.forward(x, pos, False, False, profile=True)
        except TypeError as exc:
            # CPython words an unknown keyword of a C function several ways ("'profile' is an invalid
            # keyword argument", "takes at most 4 arguments (5 given)"): the same call without it tells.
            core.forward(x, pos, False, False)  # raises the input's own error if that was the problem
            raise _not_wired(f"This build's forward refuses it: {exc}") from exc
        wall = time.perf_counter() - t0
        times = out.get("profile") if isinstance(out, dict) else None
        if times is None:
            raise _not_wired(f"This build's forward returned no 'profile' entry (got {type(out).__name__}).")
        if not isinstance(times, dict):
            raise TypeError(f"profile: expected a dict of stage -> seconds, got {type(times).__name__}")
        # The C side's own total, if it has one, wins; its "other" (the forward's untimed rest) is
        # recomputed here as total - stages, so that the call's overhead lands in it too.
        return {TOTAL: wall, **{k: v for k, v in times.items() if k != OTHER}}

    return fn


def check_stage_times(times: Any) -> dict[str, float]:
    """Validate one forward's {stage: seconds}; returns every known stage (0 if absent, aliases summed
    into their stage), then any other stage the C side named, then ``"total"``."""
    if not isinstance(times, dict):
        raise TypeError(f"profile: expected a dict of stage -> seconds, got {type(times).__name__}")
    if TOTAL not in times:
        raise ValueError(f"profile: expected a {TOTAL!r} entry (the forward's wall time), got keys {sorted(times)}")
    out: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    for key, v in times.items():
        if not isinstance(key, str) or key == OTHER:
            raise ValueError(f"profile: expected stage names (str, not {OTHER!r}), got {key!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"profile: expected seconds (a float) for {key!r}, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"profile: expected finite non-negative seconds for {key!r}, got {v}")
        if key != TOTAL:
            name = ALIASES.get(key.lower(), key.lower())
            out[name] = out.get(name, 0.0) + v
    out[TOTAL] = float(times[TOTAL])
    return out


def stage_names(samples: Sequence[dict[str, float]]) -> list[str]:
    """Known stages in forward order, then the others in the order first seen."""
    extra = [k for s in samples for k in s if k not in STAGES and k != TOTAL]
    return [*STAGES, *dict.fromkeys(extra)]


def profile_forward(
    model: Any, x: np.ndarray, runs: int, warmup: int = 1, interpolate_pos_encoding: bool = False
) -> dict[str, Any]:
    """Median seconds per stage over ``runs`` profiled forwards after ``warmup`` ones.

    Returns {"seconds": {stage: s, ..., "other": s, "total": s}, "percent": {stage: % of total},
    "stages": [stage names in order], "staged_percent": sum of the stages as % of total, "runs": n}."""
    fn = profile_method(model)
    for _ in range(warmup):
        check_stage_times(fn(x, interpolate_pos_encoding=interpolate_pos_encoding))
    samples = [check_stage_times(fn(x, interpolate_pos_encoding=interpolate_pos_encoding)) for _ in range(runs)]
    return summarize_profiles(samples)


def summarize_profiles(samples: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Median per stage of checked samples (:func:`check_stage_times`), with "other" and percentages."""
    if not samples:
        raise ValueError("profile: expected at least one profiled forward, got none")
    names = stage_names(samples)
    med = {k: float(np.median([s.get(k, 0.0) for s in samples])) for k in (*names, TOTAL)}
    staged = sum(med[k] for k in names)
    med[OTHER] = max(med[TOTAL] - staged, 0.0)
    total = med[TOTAL]
    percent = {k: (100 * med[k] / total if total > 0 else 0.0) for k in (*names, OTHER)}
    return {
        "seconds": med,
        "percent": percent,
        "stages": names,
        "staged_percent": 100 * staged / total if total > 0 else 0.0,
        "runs": len(samples),
    }


def _label(r: dict[str, Any]) -> str:
    return f"{r['engine']} {r['model']} b{r['batch']}"


def format_profiles(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one column per profiled (engine, model, batch), one row per stage, % of the forward."""
    if not rows:
        return ""
    names = list(dict.fromkeys(n for r in rows for n in r["profile"].get("stages", STAGES)))
    head = ["stage"] + [_label(r) for r in rows]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|--:" * len(rows) + "|"]
    for stage in (*names, OTHER):
        cells = [f"{r['profile']['percent'][stage]:.1f} %" if stage in r["profile"]["percent"] else "–" for r in rows]
        lines.append("| " + " | ".join([stage, *cells]) + " |")
    lines.append(
        "| forward (median) | " + " | ".join(f"{r['profile']['seconds'][TOTAL] * 1e3:.1f} ms" for r in rows) + " |"
    )
    over = [r for r in rows if r["profile"].get("staged_percent", 0.0) > 101.0]
    if over:
        sums = ", ".join(f"{_label(r)}: {r['profile']['staged_percent']:.0f} %" for r in over)
        lines += [
            "",
            f"Note: the stages sum to more than the forward ({sums}): the timers overlap (nested or "
            "per-thread), so these percentages do not add up.",
        ]
    return "\n".join(lines)
