"""Turn engine results into results.json, results.md, latency.png and scaling.png. No measuring here.

    python -m vitc.bench.report benchmarks/results/<cpu-kind>/results.json   # README table of a run

Every table says which CPU it ran on, vitc's kernel tier and the peak its "% of peak" divides by; the
speed comparison is per precision against the fastest peer in that precision, with both engines'
accuracy on real images beside it, so a faster engine cannot win by being less accurate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vitc.bench.peak import peak_for, tile_peak_for

VITC = "vitc"
PRECISION_COLORS = {"fp32": "#1f77b4", "bf16": "#2ca02c", "int8": "#ff7f0e"}
VITC_EDGE = "#d62728"
PRECISIONS = ("fp32", "bf16", "int8")
# Two cosines closer than this are "equally accurate" (fp32 engines differ by ~1e-7).
COSINE_TIE = 1e-4
QUICK_WARNING = (
    "QUICK RUN on a tiny model: its forward takes microseconds, so start-up and call overheads dominate "
    "and the ratios and % of peak mean little. Use the full run for comparisons."
)


def is_vitc(r: dict[str, Any]) -> bool:
    return r["engine"] == VITC or r["engine"].startswith(VITC + "-")


def ok(r: dict[str, Any]) -> bool:
    return r.get("status", "ok") == "ok" and r["check"]["passed"]


def per_image_batch(r: dict[str, Any]) -> float | None:
    """Seconds per image at the batch size, None without a batch run."""
    return r["batch_s"]["median"] / r["batch_size"] if "batch_s" in r else None


def _accuracy_key(r: dict[str, Any]) -> tuple[int, float]:
    a = r.get("accuracy")
    if not a:
        return (-1, -1.0)
    return (a["top1_agree"], round(a["cosine_min"] / COSINE_TIE) * COSINE_TIE)


def add_derived(results: list[dict[str, Any]], flops: dict[str, int], peaks: dict[str, Any], threads: int) -> None:
    """GFLOP/s, % of the precision's peak (and the AMX tile peak where measured), in place."""
    for r in results:
        if not ok(r):
            continue
        f = flops[r["model"]]
        r["gflops"] = f / r["latency_s"]["median"] / 1e9
        b = per_image_batch(r)
        r["batch_gflops"] = f / b / 1e9 if b else None
        peak = peak_for(peaks, r["precision"], threads)
        tile = tile_peak_for(peaks, r["precision"], threads)
        r["peak_used"] = peak
        r["pct_of_peak"] = 100 * r["gflops"] / peak["rate"] if peak else None
        r["pct_of_tile_peak"] = 100 * r["gflops"] / tile["rate"] if tile else None


def fastest_peer(results: list[dict[str, Any]], model: str, precision: str, batch: bool) -> dict[str, Any] | None:
    """The non-vitc engine with the lowest time per image in ``precision`` (batch 1, or the batch run)."""
    peers = [r for r in results if r["model"] == model and r["precision"] == precision and ok(r) and not is_vitc(r)]
    if batch:
        peers = [r for r in peers if per_image_batch(r) is not None]
        return min(peers, key=per_image_batch, default=None)  # type: ignore[arg-type]
    return min(peers, key=lambda r: r["latency_s"]["median"], default=None)


def verdict(speedup: float, vitc_row: dict[str, Any], peer: dict[str, Any]) -> str:
    """Speed and accuracy together: 'faster' alone never wins."""
    mine, theirs = _accuracy_key(vitc_row), _accuracy_key(peer)
    if mine[0] < 0 or theirs[0] < 0:
        acc = "accuracy not measured"
    elif mine >= theirs:
        acc = "at least as accurate" if speedup >= 1 else "vitc at least as accurate"
    else:
        acc = "but less accurate" if speedup >= 1 else "vitc also less accurate"
    who = "vitc faster" if speedup >= 1 else "peer faster"
    return f"{who}, {acc}"


def comparisons(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """vitc vs the fastest peer per (model, precision, batch 1 / batch B)."""
    rows = []
    models = list(dict.fromkeys(r["model"] for r in results))
    for model in models:
        for precision in PRECISIONS:
            mine = [r for r in results if r["model"] == model and r["precision"] == precision and is_vitc(r) and ok(r)]
            if not mine:
                continue
            v = mine[0]
            for batch in (False, True):
                peer = fastest_peer(results, model, precision, batch)
                vt = per_image_batch(v) if batch else v["latency_s"]["median"]
                if peer is None or vt is None:
                    continue
                pt = per_image_batch(peer) if batch else peer["latency_s"]["median"]
                speedup = pt / vt
                rows.append(
                    {
                        "model": model,
                        "precision": precision,
                        "batch": v.get("batch_size", 1) if batch else 1,
                        "vitc_engine": v["engine"],
                        "vitc_s": vt,
                        "peer": peer["engine"],
                        "peer_s": pt,
                        "speedup": speedup,
                        "vitc_accuracy": v.get("accuracy"),
                        "peer_accuracy": peer.get("accuracy"),
                        "verdict": verdict(speedup, v, peer),
                    }
                )
    return rows


def _batch_text(meta: dict[str, Any]) -> str:
    """ "8", or per model when --per-model set a model's batch size ("8 (vit-l16-512: 1, no batch run)")."""
    sizes = meta.get("batch_sizes") or {}
    own = {m: b for m, b in sizes.items() if b != meta["batch_size"]}
    if not own:
        return str(meta["batch_size"])
    return (
        f"{meta['batch_size']} ("
        + ", ".join(f"{m}: {b}" + (", no batch run" if b == 1 else "") for m, b in own.items())
        + ")"
    )


# Issue 14's targets: vitc's speed-up over the fastest peer of the same precision (accuracy no worse),
# and its share of the instruction peak on the ViT-L forward, per precision and peak kind.
SPEEDUP_TARGET = 1.15
PEAK_MODEL = "vit-l16-512"
PEAK_TARGETS = {("fp32", "fp32_zmm"): 85.0, ("fp32", "fp32_ymm"): 85.0, ("bf16", "bf16_zmm"): 75.0}
PEAK_TARGETS[("int8", "int8_zmm")] = 65.0


def targets(results: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, str]]:
    """One row per target of issue 14: what it asks, what this run measured, met or by how much not.

    Speed: every (model, precision, batch) comparison, >= 1.15x the fastest peer with accuracy no worse.
    Batches pay: vitc's time per image at the batch size <= its batch-1 time. Peak share: vitc on the
    ViT-L forward (batch 1) >= 85 % of the fp32 FMA peak; bf16 >= 75 % of vdpbf16ps and int8 >= 65 % of
    vpdpbusd on AVX-512 CPUs without AMX; on AMX the tile share is reported (no number asked); where the
    CPU lacks the instruction the issue names (AVX2), the share is reported without a target."""
    rows: list[dict[str, str]] = []
    for c in comparisons(results):
        acc_ok = _accuracy_key(_row_of(results, c["vitc_engine"], c["model"])) >= _accuracy_key(
            _row_of(results, c["peer"], c["model"])
        )
        fast = c["speedup"] >= SPEEDUP_TARGET
        if fast and acc_ok:
            status = "met"
        else:
            need = []
            if not fast:
                goal_ms = c["peer_s"] * 1e3 / SPEEDUP_TARGET
                need.append(
                    f"missed: needs {SPEEDUP_TARGET / c['speedup']:.2f}x faster (≤ {_ms(goal_ms / 1e3)} ms/img)"
                )
            if not acc_ok:
                need.append("missed: less accurate than the peer")
            status = "; ".join(need)
        rows.append(
            {
                "target": f"{c['model']} {c['precision']} batch {c['batch']}: ≥ {SPEEDUP_TARGET}x {c['peer']}, "
                "accuracy no worse",
                "measured": f"{c['speedup']:.2f}x ({_ms(c['vitc_s'])} vs {_ms(c['peer_s'])} ms/img)",
                "status": status,
            }
        )
    for r in results:
        if not (is_vitc(r) and ok(r)) or per_image_batch(r) is None:
            continue
        b1, bb = r["latency_s"]["median"], per_image_batch(r)
        rows.append(
            {
                "target": f"{r['model']} {r['precision']}: batch {r['batch_size']} ms/img ≤ batch 1",
                "measured": f"{_ms(bb)} vs {_ms(b1)} ms/img ({b1 / bb:.2f}x)",
                "status": "met" if bb <= b1 else f"missed by {100 * (bb / b1 - 1):.1f} %",
            }
        )
    for r in results:
        if not (is_vitc(r) and ok(r)) or r["model"] != PEAK_MODEL or not r.get("peak_used"):
            continue
        pk, pct = r["peak_used"], r["pct_of_peak"]
        goal = PEAK_TARGETS.get((r["precision"], pk["kind"]))
        amx = r.get("pct_of_tile_peak")
        if goal is not None and amx is None:
            status = "met" if pct >= goal else f"missed by {goal - pct:.1f} points"
            target = f"{PEAK_MODEL} {r['precision']}: ≥ {goal:.0f} % of {pk['instruction']}"
        else:
            why = (
                "AMX: share of the tile peak reported"
                if amx is not None
                else f"no target on this CPU ({pk['instruction']})"
            )
            status = f"reported ({why})"
            target = f"{PEAK_MODEL} {r['precision']}: share of the peak"
        measured = f"{pct:.1f} % of {pk['rate']:.0f} {pk['unit']}"
        if amx is not None:
            measured += f"; {amx:.1f} % of the AMX tiles"
        rows.append({"target": target, "measured": measured, "status": status})
    return rows


def _row_of(results: list[dict[str, Any]], engine: str, model: str) -> dict[str, Any]:
    return next(r for r in results if r["engine"] == engine and r["model"] == model)


def targets_table(results: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    rows = targets(results, meta)
    if not rows:
        return []
    lines = ["| target (issue 14) | measured | status |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['status']} |" for t in rows]
    return lines


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def _acc(a: dict[str, Any] | None, short: bool = False) -> str:
    if not a:
        return "–"
    if short:
        return f"cos {a['cosine_min']:.5f}, top-1 {a['top1_agree']}/{a['images']}"
    return f"{a['cosine_min']:.6f} / {a['cosine_mean']:.6f} | {a['max_abs_diff']:.2e} | {a['top1_agree']}/{a['images']}"


def machine_lines(meta: dict[str, Any]) -> list[str]:
    """The CPU / tier / peak caption every table carries."""
    cpu, k = meta["cpu"], meta["kernels"]
    tier = k.get("tier") or "none (this build has no tier system)"
    kernels = ", ".join(f"{n}: {c}" for n, c in k.get("kernels", {}).items())
    lines = [
        f"- CPU: {cpu['description']} ({cpu['logical_cpus']} logical CPUs); threads per engine: {meta['threads']}",
        f"- vitc kernel tier: {tier}; kernels: {kernels}; OpenBLAS core: {k.get('openblas_core', '?')}",
    ]
    if meta.get("openblas_env"):
        lines.append(f"- OpenBLAS environment: {meta['openblas_env']} (changes the kernels OpenBLAS picks)")
    used = []
    for p in PRECISIONS:
        pk = peak_for(meta["peaks"], p, meta["threads"])
        if pk:
            note = f" — {pk['note']}" if pk["note"] else ""
            used.append(f"{p}: {pk['rate']:.1f} {pk['unit']} ({pk['instruction']}){note}")
        tile = tile_peak_for(meta["peaks"], p, meta["threads"])
        if tile:
            used.append(f"{p} AMX tiles: {tile['rate']:.1f} {tile['unit']} ({tile['instruction']})")
    lines.append(f"- peak used for % of peak (measured this run, {meta['threads']} pinned threads): " + "; ".join(used))
    return lines


def load_line(meta: dict[str, Any]) -> str:
    def fmt(load: Any) -> str:
        return "unknown" if not load else " / ".join(f"{x:.2f}" for x in load)

    return (
        f"- machine load (1/5/15-min load average, as uptime prints): {fmt(meta.get('load_before'))} before, "
        f"{fmt(meta.get('load_after'))} after, on {meta['cpu']['logical_cpus']} logical CPUs"
    )


def peaks_table(meta: dict[str, Any]) -> list[str]:
    peaks = meta["peaks"]
    lines = [
        f"Peaks ({peaks['method']}):",
        "",
        f"| instruction | 1 thread | {peaks['threads']} threads | {peaks['threads']} threads, wall clock "
        "(share of the cores they got) |",
        "|---|--:|--:|--:|",
    ]
    for kind, k in peaks["kinds"].items():
        wall = f"{k['wall_total']:.1f} {k['unit']} ({100 * k['cpu_share']:.0f} %)" if "wall_total" in k else "–"
        lines.append(
            f"| {k['instruction']} (`{kind}`) | {k['per_core']:.1f} {k['unit']} | {k['total']:.1f} {k['unit']} "
            f"| {wall} |"
        )
    for kind, why in peaks.get("errors", {}).items():
        lines.append(f"| `{kind}` | not measured: {why} | | |")
    if len(peaks.get("samples", [])) > 1:
        moved = "; ".join(
            f"{s['when']}: " + ", ".join(f"{k} {v['total']:.1f}" for k, v in s["kinds"].items())
            for s in peaks["samples"]
        )
        lines += ["", f"The peaks are the best of {len(peaks['samples'])} measurements in this run ({moved})."]
    return lines


def markdown(results: list[dict[str, Any]], meta: dict[str, Any], sweeps: list[dict[str, Any]] | None = None) -> str:
    lines = ["# vitc benchmark", ""]
    if meta.get("quick"):
        lines += [f"> **{QUICK_WARNING}**", ""]
    lines += [f"- date: {meta['date']}", f"- command: `{meta['command']}`"]
    if meta.get("sweep_command"):
        lines.append(f"- scaling sweep, run after it ({meta['sweep_date']}): `{meta['sweep_command']}`")
    lines += [*machine_lines(meta), load_line(meta)]
    lines += [
        f"- work: {', '.join(f'{m} {f / 1e9:.2f} GFLOP/image' for m, f in meta['flops'].items())}",
        (
            "- latency: batch 1, median of the timed runs (p10–p90); batch: time per image at batch "
            f"{_batch_text(meta)}; GFLOP/s (GOP/s for int8) and % of peak from the batch-1 median; each "
            "engine ran in its own process, in several rounds (alternating order), its least disturbed round shown"
        ),
        (
            f"- accuracy: logits vs fp32 transformers eager on {meta.get('accuracy_images', '?')} real images "
            "(checkpoint's processor): cosine worst / mean image, max abs diff, top-1 agreement"
        ),
        "",
        *peaks_table(meta),
        "",
    ]

    comp = comparisons(results)
    if comp:
        lines += [
            "## vitc vs the fastest peer, per precision",
            "",
            "| model | precision | batch | vitc ms/img | fastest peer | peer ms/img | vitc speed-up | "
            "vitc accuracy | peer accuracy | verdict |",
            "|---|---|--:|--:|---|--:|--:|---|---|---|",
        ]
        for c in comp:
            lines.append(
                f"| {c['model']} | {c['precision']} | {c['batch']} | {_ms(c['vitc_s'])} | {c['peer']} | "
                f"{_ms(c['peer_s'])} | **{c['speedup']:.2f}x** | {_acc(c['vitc_accuracy'], True)} | "
                f"{_acc(c['peer_accuracy'], True)} | {c['verdict']} |"
            )
        lines.append("")

    tt = targets_table(results, meta)
    if tt:
        lines += ["## Targets", "", *tt, ""]
    lines += [
        "## Every engine",
        "",
        *_missing_models(results, meta),
        "| engine | precision | model | load s | 1st call s | batch-1 ms (p10–p90) | batch ms/img | "
        "peak RSS MB | GFLOP/s | % of peak | accuracy: cosine worst / mean | max abs diff | top-1 | "
        "load (others' CPU share) |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        name = f"**{r['engine']}**" if is_vitc(r) else r["engine"]
        head = f"| {name} | {r['precision']} | {r['model']} |"
        if r.get("status") == "n/a":
            lines.append(f"{head} {r['reason']} |" + " |" * 11)
            continue
        if not r["check"]["passed"]:
            chk = r["check"]
            lines.append(
                f"{head} FAILED CHECK (max abs diff {chk['max_abs_diff']:.1e}, atol {chk['atol']:.1e}, "
                f"argmax agree {chk['argmax_agree']}) |" + " |" * 11
            )
            continue
        lat = r["latency_s"]
        pct = _fmt(r.get("pct_of_peak"), ".1f")
        if r.get("pct_of_tile_peak") is not None:
            pct += f" ({r['pct_of_tile_peak']:.1f} of tiles)"
        load = _fmt(r.get("load_avg_1min"), ".1f")
        if r.get("others_cpu_share") is not None:
            load += f" ({100 * r['others_cpu_share']:.0f} %)"
        lines.append(
            f"{head} {r['load_s']:.2f} | {r['first_call_s']:.2f} | "
            f"{_ms(lat['median'])} ({_ms(lat['p10'])}–{_ms(lat['p90'])}) | {_ms(per_image_batch(r))} | "
            f"{r['peak_rss_mb']:.0f} | {r['gflops']:.1f} | {pct} | {_acc(r.get('accuracy'))} | "
            f"{load} |"
        )
    lines += ["", "Variants that ran:", ""]
    for r in results:
        rounds = r.get("round_medians_s", [])
        per_round = ", ".join(_ms(m) for m in rounds)
        seen = f"; batch-1 median per round: {per_round} ms" if len(rounds) > 1 else ""
        w = r.get("quiet_wait")
        if w and w["waited_s"] > 3:
            seen += (
                f"; waited {w['waited_s']:.0f} s for a quiet machine (others {100 * w['others_share_at_start']:.0f} %)"
            )
        lines.append(f"- {r['engine']} / {r['model']}: {r.get('variant', r.get('reason', '?'))}{seen}")
    if sweeps:
        lines += ["", "## Scaling (scaling.png)", ""]
        lines += scaling_lines(sweeps)
    if meta.get("accuracy_image_names"):
        lines += ["", "Accuracy images: " + ", ".join(meta["accuracy_image_names"])]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items()))]
    if meta.get("vitc_source"):
        lines += ["", f"vitc source: {meta['vitc_source']}"]
    lines += [""]
    if meta.get("failed"):
        lines += ["FAILED: " + "; ".join(meta["failed"]), ""]
    return "\n".join(lines)


def _missing_models(results: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """A model the command asked for without a single row (the run was stopped before it) is named."""
    ran = {r["model"] for r in results}
    missing = [m for m in meta.get("flops", {}) if m not in ran]
    return [f"No results for {', '.join(missing)}: the run stopped before it.", ""] if missing else []


def scaling_lines(sweeps: list[dict[str, Any]]) -> list[str]:
    lines = ["| engine | precision | axis | " + "point: ms per image |", "|---|---|---|---|"]
    for s in sweeps:
        pts = ", ".join(
            f"{p['batch'] if s['axis'] == 'batch' else p['size']}: {_ms(p['per_image_s'])}" for p in s["points"]
        )
        axis = "batch" if s["axis"] == "batch" else "resolution"
        lines.append(f"| {s['engine']} | {s['precision']} | {axis} | {pts} |")
    return lines


def _title(meta: dict[str, Any]) -> str:
    """The CPU, tier and fp32 peak line every chart carries, like every table."""
    tier = meta["kernels"].get("tier") or "no tier system"
    pk = peak_for(meta["peaks"], "fp32", meta["threads"])
    peak = f"; fp32 peak {pk['rate']:.0f} {pk['unit']} ({pk['instruction']})" if pk else ""
    quick = "QUICK RUN, tiny model: ratios mean little; " if meta.get("quick") else ""
    return (
        f"{quick}{meta['cpu']['description']}; vitc tier: {tier}{peak}; {meta['threads']} threads; {meta['date'][:10]}"
    )


def plot(results: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    """Grouped bars per model: batch-1 latency per engine, colored by precision, vitc outlined in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows_ok = [r for r in results if ok(r)]
    models = list(dict.fromkeys(r["model"] for r in rows_ok))
    n = max(len(models), 1)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = [r for r in rows_ok if r["model"] == model]
        med = [r["latency_s"]["median"] * 1e3 for r in rows]
        lo = [m - r["latency_s"]["p10"] * 1e3 for m, r in zip(med, rows)]
        hi = [r["latency_s"]["p90"] * 1e3 - m for m, r in zip(med, rows)]
        x = list(range(len(rows)))
        ax.bar(
            x,
            med,
            color=[PRECISION_COLORS.get(r["precision"], "#7f7f7f") for r in rows],
            edgecolor=[VITC_EDGE if is_vitc(r) else "none" for r in rows],
            linewidth=2,
            yerr=[lo, hi],
            capsize=3,
        )
        ax.set_xticks(x, [r["engine"] for r in rows], rotation=30, ha="right")
        for xi, m in zip(x, med):
            ax.annotate(f"{m:.0f}" if m >= 10 else f"{m:.2f}", (xi, m), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"{model}, batch 1 (blue fp32, green bf16, orange int8)", fontsize=9)
        ax.set_ylabel("latency, ms (median, p10–p90)")
    fig.suptitle(_title(meta), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(sweeps: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    """Latency per image vs batch (left) and vs resolution (right), vitc solid, fastest peer dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), squeeze=False)
    for ax, axis in zip(axes[0], ("batch", "size")):
        for s in (s for s in sweeps if s["axis"] == axis):
            xs = [p["batch"] if axis == "batch" else p["size"] for p in s["points"]]
            ys = [p["per_image_s"] * 1e3 for p in s["points"]]
            style = "-" if s["engine"].startswith(VITC) else "--"
            ax.plot(
                xs,
                ys,
                style,
                marker="o",
                color=PRECISION_COLORS.get(s["precision"], "#7f7f7f"),
                label=f"{s['engine']} ({s['precision']})",
            )
        if axis == "batch":
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.set_title(f"{sweeps[0]['model'] if sweeps else ''}: per image vs batch", fontsize=9)
        else:
            ax.set_yscale("log")
            ax.set_xlabel("image size (interpolated position embeddings), batch 1")
            ax.set_title("per image vs resolution", fontsize=9)
        ax.set_ylabel("ms per image (median)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_title(meta), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    results: list[dict[str, Any]], meta: dict[str, Any], out: Path, sweeps: list[dict[str, Any]] | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "results": results, "comparisons": comparisons(results), "sweeps": sweeps or []}
    data["targets"] = targets(results, meta)
    (out / "results.json").write_text(json.dumps(data, indent=1))
    (out / "results.md").write_text(markdown(results, meta, sweeps))
    (out / "readme-table.md").write_text(readme_table(data) + "\n")  # what the README's per-CPU section shows
    plot(results, meta, out / "latency.png")
    if sweeps:
        plot_scaling(sweeps, meta, out / "scaling.png")


def readme_table(data: dict[str, Any]) -> str:
    """The compact per-CPU-kind table for benchmarks/README.md, from a committed results.json."""
    meta, results = data["meta"], data["results"]
    lines = [f"{meta['date'][:10]}, `{meta['command']}`", ""]
    if meta.get("quick"):
        lines += [f"> **{QUICK_WARNING}**", ""]
    lines += [*machine_lines(meta), load_line(meta)]
    if meta.get("vitc_source"):
        lines.append(f"- vitc source: {meta['vitc_source']}")
    lines.append("")
    lines += [
        "| model | precision | batch | vitc ms/img | fastest peer | peer ms/img | vitc speed-up | vitc accuracy | "
        "peer accuracy |",
        "|---|---|--:|--:|---|--:|--:|---|---|",
    ]
    for c in comparisons(results):
        lines.append(
            f"| {c['model']} | {c['precision']} | {c['batch']} | {_ms(c['vitc_s'])} | {c['peer']} | "
            f"{_ms(c['peer_s'])} | {c['speedup']:.2f}x | {_acc(c['vitc_accuracy'], True)} | "
            f"{_acc(c['peer_accuracy'], True)} |"
        )
    tt = targets_table(results, meta)
    if tt:
        lines += ["", *tt]
    na = [r for r in results if r.get("status") == "n/a"]
    if na:
        lines += ["", "Not run here: " + "; ".join(f"{r['engine']} {r['reason']}" for r in na)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print the README table of a benchmark's results.json.")
    p.add_argument("results", type=Path)
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="also rewrite results.md and the charts beside results.json from it (nothing is measured)",
    )
    args = p.parse_args(argv)
    data = json.loads(args.results.read_text())
    if args.rewrite:
        write_all(data["results"], data["meta"], args.results.parent, data.get("sweeps"))
    print(readme_table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
