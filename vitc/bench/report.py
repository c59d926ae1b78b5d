"""Turn engine results into results.json, results.md and latency.png. No measuring happens here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VITC = "vitc"
HIGHLIGHT_COLOR = "#d62728"
PEER_COLOR = "#7f7f7f"
INT8_COLOR = "#c7c7c7"


def _is_vitc(r: dict[str, Any]) -> bool:
    return r["engine"] == VITC or r["engine"].startswith(VITC + "-")


def _is_peer(r: dict[str, Any]) -> bool:
    """Peers for "speed-up vs fastest peer": fp32 engines other than vitc that passed the check."""
    return not _is_vitc(r) and r["precision"] == "fp32" and r["check"]["passed"]


def add_derived(results: list[dict[str, Any]], flops: dict[str, int], peak: dict[str, Any]) -> None:
    """GFLOP/s, % of the measured peak and speed-up vs the fastest fp32 peer, in place."""
    fastest: dict[str, float] = {}
    for r in results:
        if _is_peer(r):
            m = r["latency_s"]["median"]
            fastest[r["model"]] = min(fastest.get(r["model"], m), m)
    peak_gflops = peak["total_gflops"] if results and results[0]["threads"] > 1 else peak["per_core_gflops"]
    for r in results:
        if not r["check"]["passed"]:
            continue
        f = flops[r["model"]]
        r["gflops"] = f / r["latency_s"]["median"] / 1e9
        r["batch_gflops"] = f * r["throughput_img_s"] / 1e9
        # int8 ops are not fp32 FMAs: a percentage of the fp32 peak would be meaningless.
        r["pct_of_peak"] = 100 * r["gflops"] / peak_gflops if r["precision"] == "fp32" else None
        best_peer = fastest.get(r["model"])
        r["speedup_vs_fastest_peer"] = best_peer / r["latency_s"]["median"] if best_peer else None


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    peak = meta["peak"]
    lines = [
        "# vitc benchmark",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['cpu']}, {meta['cores']} cores; threads per engine: {meta['threads']}",
        (
            f"- fp32 peak (measured this run): {peak['per_core_gflops']:.1f} GFLOP/s per core, "
            f"{peak['total_gflops']:.1f} GFLOP/s on {peak['threads']} threads — {peak['method']}"
        ),
        f"- work: {', '.join(f'{m} {f / 1e9:.2f} GFLOP/image' for m, f in meta['flops'].items())}",
        (
            "- latency: batch 1, median of the timed runs (p10–p90); throughput: batch "
            f"{meta['batch_size']}; GFLOP/s and % of peak from the batch-1 median; "
            "speed-up = fastest fp32 peer's median / this engine's median (> 1: faster than every peer); "
            "each engine ran in several rounds (alternating order) and its least disturbed round is shown"
        ),
        "",
        (
            "| engine | model | load s | 1st call s | latency median ms (p10–p90) | throughput img/s | "
            "peak RSS MB | GFLOP/s | % of peak | speed-up vs fastest peer | max abs diff vs eager | logits cosine |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        name = f"**{r['engine']}**" if _is_vitc(r) else r["engine"]
        if r["precision"] != "fp32":
            name += f" ({r['precision']})"
        diff = f"{r['check']['max_abs_diff']:.1e}"
        if not r["check"]["passed"]:
            lines.append(
                f"| {name} | {r['model']} | FAILED CHECK (max abs diff {diff}, "
                f"atol {r['check']['atol']:.1e}, argmax agree {r['check']['argmax_agree']}) "
                "| | | | | | | | | |"
            )
            continue
        lat = r["latency_s"]
        lines.append(
            f"| {name} | {r['model']} | {r['load_s']:.2f} | {r['first_call_s']:.2f} | "
            f"{lat['median'] * 1e3:.1f} ({lat['p10'] * 1e3:.1f}–{lat['p90'] * 1e3:.1f}) | "
            f"{r['throughput_img_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['gflops']:.1f} | "
            f"{_fmt(r['pct_of_peak'], '.1f')} | {_fmt(r['speedup_vs_fastest_peer'], '.2f')}x | {diff} | "
            f"{r['check'].get('cosine', float('nan')):.6f} |"
        )
    lines += ["", "Variants that ran:", ""]
    for r in results:
        rounds = r.get("round_medians_s", [])
        per_round = ", ".join(f"{m * 1e3:.0f}" for m in rounds)
        seen = f"; batch-1 median per round: {per_round} ms" if len(rounds) > 1 else ""
        lines.append(f"- {r['engine']} / {r['model']}: {r.get('variant', '?')}{seen}")
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())), ""]
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: one group per model, one bar per engine, vitc in color; log scale for mixed sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["check"]["passed"]]
    models = list(dict.fromkeys(r["model"] for r in ok))
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(5.5 * max(len(models), 1), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = [r for r in ok if r["model"] == model]
        med = [r["latency_s"]["median"] * 1e3 for r in rows]
        lo = [m - r["latency_s"]["p10"] * 1e3 for m, r in zip(med, rows)]
        hi = [r["latency_s"]["p90"] * 1e3 - m for m, r in zip(med, rows)]
        colors = [
            HIGHLIGHT_COLOR if _is_vitc(r) else INT8_COLOR if r["precision"] != "fp32" else PEER_COLOR
            for r in rows
        ]
        x = range(len(rows))
        ax.bar(x, med, color=colors, yerr=[lo, hi], capsize=3)
        ax.set_xticks(list(x), [r["engine"] for r in rows], rotation=30, ha="right")
        for xi, m in zip(x, med):
            ax.annotate(f"{m:.0f}" if m >= 10 else f"{m:.2f}", (xi, m), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{model}, batch 1")
        ax.set_ylabel("latency, ms (median, p10–p90)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_all(results: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (out / "results.md").write_text(markdown(results, meta))
    plot(results, out / "latency.png")
