"""vitc bench (vitc/bench/): the pipeline runs end to end on a tiny model, checks pass, reports name the
machine, the committed results are never touched by --quick, and the pure parts (CPU kinds, peak
choice, accuracy verdicts, the profile contract) do what the report claims.

No timing thresholds: this machine is shared and a timing assertion would be a flaky test. Peer rows
appear only when their runtime is installed (the `bench` extra); without it they are skipped, not the test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitc.bench import peak, profile, report, run
from vitc.bench.cpu import cpu_info
from vitc.bench.images import CALIBRATION, EVALUATION, image_files
from vitc.bench.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "results"
VITL_GFLOP = 723.97  # PERF.md's count for ViT-L/16 at 512


def have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


HAVE_ORT = have("onnxruntime", "onnx")
HAVE_OV = have("openvino", "nncf", "onnx")

ZEN2 = (
    "vendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC 7B12\n"
    "flags\t\t: fpu sse2 avx fma avx2\n\n"
)
ZEN5 = (
    "vendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC 9B45\n"
    "flags\t\t: avx fma avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16\n\n"
)
SPR = (
    "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
    "flags\t\t: avx fma avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n\n"
)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (recursively) -> sha256; a missing folder is empty."""
    if not folder.is_dir():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---- the whole pipeline, tiny model -------------------------------------------------------------
def test_flop_count_matches_perf_md() -> None:
    assert MODELS["vit-l16-512"].flops_per_image() / 1e9 == pytest.approx(VITL_GFLOP, abs=0.01)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run with every installed engine and a small sweep; (exit code, out folder, engines)."""
    out = tmp_path_factory.mktemp("bench_out")
    work = tmp_path_factory.mktemp("bench_work")
    engines = ["vitc", "vitc-bf16", "vitc-int8", "hf-eager"]
    engines += ["ort", "ort-int8"] if HAVE_ORT else []
    engines += ["ov", "ov-bf16", "ov-int8"] if HAVE_OV else []
    argv = ["--quick", "--engines", *engines, "--runs", "1", "--out", str(out), "--workdir", str(work)]
    argv += ["--peak-seconds", "0.1", "--sweep", "--sweep-model", "tiny", "--sweep-batches", "1", "2"]
    argv += ["--sweep-sizes", "32", "48", "--sweep-runs", "1"]
    return run.main(argv), out, engines


def test_quick_run_writes_checked_results(quick_run) -> None:
    rc, out, engines = quick_run
    assert rc == 0, (out / "run.log").read_text()[-3000:]
    data = json.loads((out / "results.json").read_text())
    rows = {r["engine"]: r for r in data["results"]}
    assert set(rows) == set(engines)
    for name, r in rows.items():
        assert r["model"] == "tiny"
        if r["status"] == "n/a":  # only OpenVINO bf16, and only on a CPU without native bf16
            assert name == "ov-bf16" and r["reason"].startswith("n/a (")
            continue
        assert r["check"]["passed"], r["check"]
        assert r["batch_check"]["passed"], r["batch_check"]
        assert r["check"]["max_abs_diff"] <= r["check"]["atol"]
        assert len(r["latency_s"]["times"]) == 1
        assert r["peak_rss_mb"] > 0 and r["gflops"] > 0 and r["pct_of_peak"] > 0
        acc = r["accuracy"]  # real photos against fp32 eager
        assert acc["images"] == MODELS["tiny"].counts.accuracy_images
        assert acc["image_names"][0] == "skimage:astronaut.png"
        assert 0 <= acc["top1_agree"] <= acc["images"] and -1 <= acc["cosine_min"] <= 1
        if r["precision"] == "fp32":
            assert acc["top1_agree"] == acc["images"] and acc["cosine_min"] > 0.99999
    assert rows["hf-eager"]["check"]["max_abs_diff"] == 0.0  # the reference against itself
    assert rows["hf-eager"]["accuracy"]["max_abs_diff"] == 0.0
    meta = data["meta"]
    assert meta["quick"] and not meta["failed"] and meta["peaks"]["kinds"]
    assert meta["cpu"]["model_name"] == cpu_info().model_name and meta["kernels"]["kernels"]
    if HAVE_ORT:  # ONNX Runtime int8 is really quantized
        assert "MatMulInteger" in rows["ort-int8"]["variant"] or "DynamicQuantizeMatMul" in rows["ort-int8"]["variant"]


def test_quick_report_names_machine_tier_peak_and_warns(quick_run) -> None:
    _, out, _ = quick_run
    md = (out / "results.md").read_text()
    assert report.QUICK_WARNING in md
    assert f"CPU: {cpu_info().description}" in md
    assert "vitc kernel tier:" in md and "peak used for % of peak" in md and "machine load" in md
    assert "| **vitc** | fp32 | tiny |" in md and "FAILED" not in md
    assert "## vitc vs the fastest peer, per precision" in md
    for png in ("latency.png", "scaling.png"):
        assert (out / png).stat().st_size > 0


def test_quick_sweep_covers_vitc_and_the_fastest_peer(quick_run) -> None:
    _, out, _ = quick_run
    data = json.loads((out / "results.json").read_text())
    sweeps = data["sweeps"]
    fp32 = {s["engine"] for s in sweeps if s["precision"] == "fp32"}
    assert "vitc" in fp32 and len(fp32) == 2  # vitc and one peer
    for s in sweeps:
        xs = [p["batch"] if s["axis"] == "batch" else p["size"] for p in s["points"]]
        assert xs == ([1, 2] if s["axis"] == "batch" else [32, 48])
        assert all(p["per_image_s"] > 0 for p in s["points"])


def test_sweep_from_adds_the_sweep_to_an_earlier_run(quick_run, tmp_path) -> None:
    """--sweep-from: only the sweep, for an earlier run's engines, written beside that run's rows."""
    _, out, _ = quick_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    before = json.loads((copy / "results.json").read_text())
    argv = ["--sweep-from", str(copy), "--workdir", str(tmp_path / "work"), "--sweep-model", "tiny"]
    argv += ["--sweep-precisions", "fp32", "--sweep-batches", "1", "--sweep-sizes", "32", "--sweep-runs", "1"]
    argv += ["--peak-seconds", "0.05"]
    assert run.main(argv) == 0, (copy / "run.log").read_text()[-3000:]
    after = json.loads((copy / "results.json").read_text())
    assert [r["engine"] for r in after["results"]] == [r["engine"] for r in before["results"]]
    assert {s["precision"] for s in after["sweeps"]} == {"fp32"} and len(after["sweeps"]) == 4  # 2 engines x 2 axes
    md = (copy / "results.md").read_text()
    assert before["meta"]["command"] in md and "scaling sweep, run after it" in md and "--sweep-from" in md
    assert (copy / "scaling.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, error",
    [
        (["--sweep-from", "/nonexistent"], "results.json"),
        (["--sweep-from", ".", "--quick"], "results.json"),
    ],
)
def test_sweep_from_refuses(argv, error, capsys) -> None:
    with pytest.raises(SystemExit):
        run.parse_args(argv)
    assert error in capsys.readouterr().err


# ---- hygiene: --quick never writes the committed results ---------------------------------------------
def test_quick_never_touches_committed_results(tmp_path, monkeypatch) -> None:
    """Default output of a quick run is the scratch cache, even run from the checkout's root through
    benchmarks/run.py's entry (which names the committed folder)."""
    before = tree_digest(COMMITTED)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    argv = ["--quick", "--engines", "vitc", "--runs", "1", "--peak-seconds", "0.05", "--batch-size", "2"]
    assert run.main(argv, checkout_results=COMMITTED) == 0
    assert tree_digest(COMMITTED) == before
    assert (tmp_path / "cache" / "vitc" / "bench" / "results" / "results.md").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["--quick", "--update-results"],
        ["--quick", "--out", str(COMMITTED)],
        ["--quick", "--out", str(COMMITTED / "some-cpu")],
    ],
)
def test_quick_refuses_the_committed_results(argv, capsys) -> None:
    before = tree_digest(COMMITTED)
    with pytest.raises(SystemExit) as exc:
        run.parse_args(argv, checkout_results=COMMITTED)
    assert exc.value.code == 2
    assert "committed" in capsys.readouterr().err
    assert tree_digest(COMMITTED) == before


def test_benchmarks_run_py_refuses_quick_into_committed_results() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--update-results"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "never replace the committed results" in proc.stderr


def test_update_results_writes_under_the_cpu_kind(tmp_path) -> None:
    args = run.parse_args(["--update-results", "--models", "vit-b16-224"], checkout_results=tmp_path / "results")
    assert args.out == tmp_path / "results" / cpu_info().kind
    args = run.parse_args(["--models", "vit-b16-224"], checkout_results=tmp_path / "results")
    assert not str(args.out).startswith(str(tmp_path))  # no flag: scratch, never the checkout


# ---- one command for a slow machine: per-model settings ----------------------------------------------
def test_per_model_settings(tmp_path) -> None:
    """--per-model runs the big model with fewer engines, batch 1 and fewer images in the same run."""
    argv = ["--models", "vit-b16-224", "vit-l16-512", "--engines", "vitc", "ort", "ov", "hf-sdpa", "--runs", "4"]
    argv += ["--per-model", "vit-l16-512:engines=vitc,ov,ort", "--per-model", "vit-l16-512:batch_size=1"]
    argv += ["--per-model", "vit-l16-512:runs=2", "--per-model", "vit-l16-512:accuracy_images=2"]
    args = run.parse_args(argv + ["--out", str(tmp_path)])
    engines = ["vitc", "ort", "ov", "hf-sdpa"]
    assert run.engines_for(args, "vit-l16-512", engines) == ["vitc", "ort", "ov"]  # --engines order kept
    assert run.engines_for(args, "vit-b16-224", engines) == engines
    assert (run.batch_size_for(args, "vit-l16-512"), run.batch_size_for(args, "vit-b16-224")) == (1, 8)
    large, base = run.counts_for(args, "vit-l16-512"), run.counts_for(args, "vit-b16-224")
    assert (large["runs"], large["accuracy_images"], base["runs"]) == (2, 2, 4)
    meta = {"batch_size": 8, "batch_sizes": {"vit-b16-224": 8, "vit-l16-512": 1}}
    assert report._batch_text(meta) == "8 (vit-l16-512: 1, no batch run)"
    assert report._batch_text({"batch_size": 8, "batch_sizes": {"vit-b16-224": 8}}) == "8"


@pytest.mark.parametrize(
    "item, error",
    [
        ("vit-l16-512", "MODEL:KEY=VALUE"),
        ("vit-l16-512:runs", "MODEL:KEY=VALUE"),
        ("tiny:runs=2", "a model of this run"),
        ("vit-l16-512:threads=2", "a key from"),
        ("vit-l16-512:engines=vitc,nope", "expected engines"),
        ("vit-l16-512:runs=two", "an integer"),
        ("vit-l16-512:batch_size=0", "too small"),
    ],
)
def test_per_model_refuses(item, error, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run.parse_args(["--models", "vit-b16-224", "vit-l16-512", "--per-model", item])
    assert exc.value.code == 2 and error in capsys.readouterr().err


def test_wait_for_quiet_stops_when_quiet_or_out_of_time(monkeypatch) -> None:
    from vitc.bench import cpu

    share = cpu.busy_share(0.05)  # the real one: a share of the CPUs, or None without /proc/stat
    assert share is None or 0.0 <= share <= 1.0
    shares = iter([0.9, 0.6, 0.1, 0.9])
    monkeypatch.setattr(cpu, "busy_share", lambda seconds: next(shares))
    waited, share = cpu.wait_for_quiet(60)
    assert share == 0.1 and next(shares) == 0.9  # stopped at the first quiet window
    monkeypatch.setattr(cpu, "busy_share", lambda seconds: 1.0)
    assert cpu.wait_for_quiet(0) == (pytest.approx(0, abs=1), 1.0)  # no time: one look, then go


def _meta(quick: bool = False) -> dict:
    cpu = cpu_info(ZEN2)
    kinds = {"fp32_ymm": {"instruction": "vfmadd231ps ymm", "unit": "GFLOP/s", "per_core": 40.0, "total": 80.0}}
    return {
        "date": "2026-12-03 12:00:00 UTC",
        "command": "vitc bench --update-results",
        "quick": quick,
        "cpu": {**cpu.as_dict(), "logical_cpus": 2},
        "kernels": {"tier": "avx2", "kernels": {"float32 GEMM": "OpenBLAS sgemm"}, "openblas_core": "Haswell"},
        "threads": 2,
        "peaks": {"method": "fma_peak.c", "threads": 2, "kinds": kinds},
        "vitc_source": "abc1234 2026-12-03 a commit",
    }


@pytest.mark.parametrize("quick", [False, True])
def test_readme_table_and_chart_title_name_cpu_tier_peak(quick) -> None:
    """Every table and chart names the CPU model, vitc's kernel tier and the peak used; quick says so."""
    data = {"meta": _meta(quick), "results": [_row("vitc", "fp32", 50, 16, 1.0), _row("ov", "fp32", 40, 16, 1.0)]}
    table = report.readme_table(data)
    title = report._title(data["meta"])
    for text in (table, title):
        assert "AMD EPYC 7B12" in text and "avx2" in text and "80" in text and "vfmadd231ps ymm" in text
        assert ("mean little" in text) == quick
    assert "2026-12-03" in table and "abc1234" in table and "| m | fp32 | 1 | 50.0 | ov | 40.0 | 0.80x |" in table


# ---- CPU kinds and peaks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, kind, isa",
    [(ZEN2, "amd-zen2-avx2", "avx2"), (ZEN5, "amd-zen5-avx512", "avx512"), (SPR, "intel-amx", "amx")],
)
def test_cpu_kind(text, kind, isa) -> None:
    c = cpu_info(text)
    assert (c.kind, c.isa) == (kind, isa)
    assert c.model_name in c.description


def test_peak_kinds_per_cpu() -> None:
    assert peak.kinds_for(cpu_info(ZEN2).flags) == ["fp32_ymm", "int8_ymm"]
    assert peak.kinds_for(cpu_info(ZEN5).flags) == ["fp32_ymm", "fp32_zmm", "bf16_zmm", "int8_zmm"]
    assert peak.kinds_for(cpu_info(SPR).flags) == [
        "fp32_ymm", "fp32_zmm", "bf16_zmm", "int8_zmm", "amx_bf16", "amx_int8",
    ]  # fmt: skip


def _peaks(**kinds: float) -> dict:
    def unit(kind: str) -> str:
        return "GOP/s" if "int8" in kind else "GFLOP/s"

    return {
        "threads": 2,
        "kinds": {k: {"instruction": k, "unit": unit(k), "per_core": v / 2, "total": v} for k, v in kinds.items()},
    }


def test_peak_used_per_precision() -> None:
    zen2 = _peaks(fp32_ymm=100, int8_ymm=150)
    assert peak.peak_for(zen2, "fp32", 2)["rate"] == 100
    bf16 = peak.peak_for(zen2, "bf16", 2)
    assert bf16["kind"] == "fp32_ymm" and "no vdpbf16ps" in bf16["note"]
    assert peak.peak_for(zen2, "int8", 2)["kind"] == "int8_ymm"
    assert peak.peak_for(zen2, "int8", 1)["rate"] == 75  # one thread: the per-core figure
    assert peak.tile_peak_for(zen2, "int8", 2) is None
    spr = _peaks(fp32_ymm=300, fp32_zmm=330, bf16_zmm=340, int8_zmm=1300, amx_bf16=5000, amx_int8=10000)
    assert peak.peak_for(spr, "fp32", 2)["kind"] == "fp32_zmm"
    assert peak.peak_for(spr, "bf16", 2)["kind"] == "bf16_zmm" and not peak.peak_for(spr, "bf16", 2)["note"]
    assert peak.peak_for(spr, "int8", 2)["kind"] == "int8_zmm"
    assert peak.tile_peak_for(spr, "bf16", 2)["rate"] == 5000 and peak.tile_peak_for(spr, "fp32", 2) is None
    zen4 = _peaks(fp32_ymm=200, fp32_zmm=199)  # double-pumped AVX-512: the better one is the ceiling
    assert peak.peak_for(zen4, "fp32", 2)["kind"] == "fp32_ymm"
    with pytest.raises(ValueError, match="expected precision"):
        peak.peak_for(zen2, "fp16", 2)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_fma_peak_builds_every_kind(tmp_path) -> None:
    """The AVX-512 and AMX kernels compile everywhere (they only run where the CPU has them)."""
    exe = tmp_path / "fma_peak"
    proc = subprocess.run(["gcc", "-O3", "-pthread", "-Wall", str(peak.SOURCE), "-o", str(exe)], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    usage = subprocess.run([str(exe), "nope", "1", "1"], capture_output=True, text=True)
    assert usage.returncode == 2
    for kind in peak.KIND_FLAGS:
        assert kind in usage.stderr


def test_measure_peaks_on_this_machine() -> None:
    flags = set(cpu_info().flags)
    peaks = peak.measure_peaks(2, seconds=0.05, trials=1)
    want = peak.kinds_for(flags) if shutil.which("gcc") or shutil.which("cc") else ["fp32_sgemm"]
    assert list(peaks["kinds"]) == [k for k in want if k not in peaks["errors"]]
    for k in peaks["kinds"].values():
        assert k["per_core"] > 0 and k["total"] > 0 and k["unit"] in ("GFLOP/s", "GOP/s")


# ---- accuracy images, verdicts ---------------------------------------------------------------------
def test_accuracy_and_calibration_images_are_real_and_disjoint() -> None:
    evaluation, calibration = image_files(EVALUATION), image_files(CALIBRATION)
    assert len(evaluation) >= 10 and len(calibration) >= 2  # skimage (test extra) + vitc's digits
    assert not {p for _, p in evaluation} & {p for _, p in calibration}
    assert image_files(EVALUATION, 3) == evaluation[:3]


def _row(engine: str, precision: str, ms: float, top1: int, cos: float) -> dict:
    return {
        "engine": engine,
        "model": "m",
        "precision": precision,
        "status": "ok",
        "check": {"passed": True},
        "latency_s": {"median": ms / 1e3},
        "accuracy": {"images": 16, "top1_agree": top1, "cosine_min": cos, "cosine_mean": cos, "max_abs_diff": 0.1},
    }


def test_faster_but_less_accurate_is_marked() -> None:
    results = [
        _row("vitc-int8", "int8", 10, 14, 0.999),
        _row("ort-int8", "int8", 12, 16, 0.9995),  # slower peer, more accurate
        _row("ov-int8", "int8", 20, 16, 0.9999),
        _row("vitc", "fp32", 50, 16, 1.0),
        _row("ov", "fp32", 40, 16, 1.0),  # faster peer, as accurate
    ]
    comp = {(c["precision"], c["batch"]): c for c in report.comparisons(results)}
    int8 = comp[("int8", 1)]
    assert int8["peer"] == "ort-int8" and int8["speedup"] == pytest.approx(1.2)
    assert int8["verdict"] == "vitc faster, but less accurate"
    assert comp[("fp32", 1)]["verdict"] == "peer faster, vitc at least as accurate"
    assert ("bf16", 1) not in comp  # no vitc row, no comparison


def test_targets_say_met_or_by_how_much() -> None:
    """Issue 14's targets: 1.15x the fastest peer with accuracy no worse, batches pay, peak shares."""
    vitc = {**_row("vitc", "fp32", 50, 16, 1.0), "model": "vit-l16-512", "batch_size": 8}
    vitc["batch_s"] = {"median": 8 * 0.055}  # slower per image at batch 8
    int8 = {**_row("vitc-int8", "int8", 10, 16, 0.9995), "model": "vit-l16-512"}
    results = [
        vitc,
        {**_row("ov", "fp32", 40, 16, 1.0), "model": "vit-l16-512"},
        int8,
        {**_row("ov-int8", "int8", 12, 15, 0.999), "model": "vit-l16-512"},
    ]
    meta = _meta()
    kinds = meta["peaks"]["kinds"]
    kinds["int8_zmm"] = {"instruction": "vpdpbusd zmm", "unit": "GOP/s", "per_core": 1000, "total": 2000}
    # 10 GFLOP per image: fp32 at 50 ms = 200 GFLOP/s of 80 (above 100 %); int8 at 10 ms = 1000 of 2000 GOP/s
    report.add_derived(results, {"vit-l16-512": 10e9}, meta["peaks"], 2)
    rows = {t["target"]: t for t in report.targets(results, meta)}
    fp32 = rows["vit-l16-512 fp32 batch 1: ≥ 1.15x ov, accuracy no worse"]
    assert fp32["measured"].startswith("0.80x") and "needs 1.44x faster (≤ 34.8 ms/img)" in fp32["status"]
    assert rows["vit-l16-512 int8 batch 1: ≥ 1.15x ov-int8, accuracy no worse"]["status"] == "met"  # 1.2x
    assert rows["vit-l16-512 fp32: batch 8 ms/img ≤ batch 1"]["status"] == "missed by 10.0 %"
    assert rows["vit-l16-512 fp32: ≥ 85 % of vfmadd231ps ymm"]["status"] == "met"
    assert rows["vit-l16-512 int8: ≥ 65 % of vpdpbusd zmm"]["status"] == "missed by 15.0 points"
    less = {**results[2], "accuracy": {**results[2]["accuracy"], "top1_agree": 14}}
    rows = {t["target"]: t for t in report.targets([results[0], results[1], less, results[3]], meta)}
    assert rows["vit-l16-512 int8 batch 1: ≥ 1.15x ov-int8, accuracy no worse"]["status"].endswith(
        "less accurate than the peer"
    )
    text = "\n".join(report.targets_table(results, meta))
    assert text.startswith("| target (issue 14) | measured | status |")


def test_report_rewrite_names_a_model_without_rows(tmp_path, capsys) -> None:
    """python -m vitc.bench.report DIR/results.json --rewrite: results.md and the chart again from the
    JSON; a model the command asked for but never reached is named, not silently absent."""
    meta = {**_meta(), "flops": {"m": 10e9, "vit-l16-512": 724e9}, "batch_size": 8, "versions": {}}
    full = {"load_s": 0.1, "first_call_s": 0.2, "peak_rss_mb": 100.0, "variant": "v"}
    results = [{**_row("vitc", "fp32", 50, 16, 1.0), **full}, {**_row("ov", "fp32", 40, 16, 1.0), **full}]
    for r in results:
        r["latency_s"] |= {"p10": r["latency_s"]["median"], "p90": r["latency_s"]["median"]}
    report.add_derived(results, meta["flops"], meta["peaks"], 2)
    (tmp_path / "results.json").write_text(json.dumps({"meta": meta, "results": results, "sweeps": []}))
    assert report.main([str(tmp_path / "results.json"), "--rewrite"]) == 0
    md = (tmp_path / "results.md").read_text()
    assert "No results for vit-l16-512: the run stopped before it." in md and "## Targets" in md
    assert (tmp_path / "readme-table.md").read_text().startswith("2026-12-03, `vitc bench")
    assert (tmp_path / "latency.png").stat().st_size > 0 and "| m | fp32 | 1 |" in capsys.readouterr().out


# ---- the stage profile contract --------------------------------------------------------------------
class FakeCore:
    """A _core.Model whose forward has the profile keyword (vitc/bench/profile.py), with fixed timers."""

    def __init__(self, times=None, keyword=True):
        self.times = times if times is not None else {**{s: 0.01 for s in profile.STAGES}, "quantize": 0.0}
        self.keyword = keyword
        self.calls = []

    def forward(self, pixels, pos_table=None, output_hidden_states=False, output_attentions=False, **kw):
        if kw and not self.keyword:  # what CPython says for a keyword the C function does not know
            raise TypeError(f"'{next(iter(kw))}' is an invalid keyword argument for forward()")
        self.calls.append((pixels.shape, pos_table, kw))
        out = {"logits": np.zeros((pixels.shape[0], 2), np.float32)}
        if kw.get("profile"):
            out["profile"] = dict(self.times)
        return out


class FakeViT:
    """The two ViT helpers the profile uses (input checks, interpolated position table) + its _core.Model."""

    def __init__(self, core):
        self._model = core

    def _check_pixels(self, x, interpolate_pos_encoding):
        return np.ascontiguousarray(x, np.float32)

    def _pos_table(self, h, w):
        return np.full((1, 4), h, np.float32)


def test_profile_forward_percentages() -> None:
    times = {**{s: 0.01 for s in profile.STAGES}, "quantize": 0.0, "total": 0.1}
    core = FakeCore(times)
    p = profile.profile_forward(FakeViT(core), np.zeros((1, 3, 8, 8), np.float32), runs=3)
    assert len(core.calls) == 4 and all(kw == {"profile": True} for *_, kw in core.calls)  # 1 warm-up + 3
    assert p["percent"]["qkv"] == pytest.approx(10.0) and p["percent"]["quantize"] == 0.0
    assert p["percent"]["other"] == pytest.approx(100 - 80.0)
    assert p["staged_percent"] == pytest.approx(80.0) and p["runs"] == 3
    text = profile.format_profiles([{"engine": "vitc", "model": "m", "batch": 1, "profile": p}])
    assert "| attention | 10.0 % |" in text and "| other | 20.0 % |" in text
    assert "| forward (median) | 100.0 ms |" in text and "Note:" not in text


def test_profile_without_total_uses_the_measured_call() -> None:
    """No 'total' from C: the wall time of the forward call is the total (so every stage is <= 100 %)."""
    core = FakeCore({"qkv": 0.0, "attention": 0.0})
    p = profile.profile_forward(FakeViT(core), np.zeros((1, 3, 8, 8), np.float32), runs=2)
    assert p["seconds"]["total"] > 0 and p["percent"]["other"] == pytest.approx(100.0)


def test_profile_interpolated_positions_reach_the_core() -> None:
    core = FakeCore()
    core.times["total"] = 1.0
    profile.profile_forward(FakeViT(core), np.zeros((1, 3, 16, 16), np.float32), runs=1, interpolate_pos_encoding=True)
    assert core.calls[-1][1] is not None and core.calls[-1][1][0, 0] == 16


def test_format_profiles_unknown_stages_aliases_and_overlap() -> None:
    """A fake profile dict as the C side might name it: aliases folded into their stage, an unknown stage
    kept as its own row (never dropped), and overlapping timers flagged instead of adding up silently."""
    a = profile.summarize_profiles(
        [profile.check_stage_times({"fc1": 0.2, "mlp_up": 0.1, "softmax_exp": 0.1, "attention": 0.2, "total": 1.0})]
    )
    assert a["seconds"]["mlp_up"] == pytest.approx(0.3) and a["stages"][-1] == "softmax_exp"
    b = profile.summarize_profiles([profile.check_stage_times({"qkv": 0.9, "attention": 0.6, "total": 1.0})])
    rows = [
        {"engine": "vitc", "model": "m", "batch": 1, "profile": a},
        {"engine": "vitc-int8", "model": "m", "batch": 8, "profile": b},
    ]
    text = profile.format_profiles(rows)
    assert "| stage | vitc m b1 | vitc-int8 m b8 |" in text
    assert "| mlp_up | 30.0 % | 0.0 % |" in text
    assert "| softmax_exp | 10.0 % | – |" in text
    assert "| other | 40.0 % | 0.0 % |" in text
    assert "vitc-int8 m b8: 150 %" in text and "do not add up" in text
    assert profile.format_profiles([]) == ""


@pytest.mark.parametrize(
    "times, error",
    [
        ({"qkv": 0.1}, "'total'"),
        ({"qkv": -1.0, "total": 0.2}, "non-negative"),
        ({"qkv": float("nan"), "total": 0.2}, "finite"),
        ({"qkv": "1", "total": 0.2}, "seconds"),
        ({"qkv": True, "total": 0.2}, "seconds"),
        ({"other": 0.1, "total": 0.2}, "stage names"),
        ([("qkv", 0.1)], "dict"),
    ],
)
def test_profile_refuses_bad_timers(times, error) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        profile.check_stage_times(times)


def test_profile_not_wired_says_what_it_needs() -> None:
    """Until the C forward has the keyword, a clear NotImplementedError naming the interface."""
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(NotImplementedError, match=r"profile=True.*no _core\.Model"):
        profile.profile_method(object())
    with pytest.raises(NotImplementedError, match=r"profile=True.*refuses it: 'profile' is an invalid keyword"):
        profile.profile_forward(FakeViT(FakeCore(keyword=False)), x, runs=1)

    class NoProfileEntry(FakeCore):
        def forward(self, pixels, *a, **kw):
            return {"logits": np.zeros((1, 2), np.float32)}

    with pytest.raises(NotImplementedError, match="no 'profile' entry"):
        profile.profile_forward(FakeViT(NoProfileEntry()), x, runs=1)


def test_bench_profile_cli(tmp_path, capsys) -> None:
    """vitc bench --profile: a per-stage table once the C forward has timers; until then exit 2 with the
    interface it needs."""
    argv = ["--profile", "--quick", "--engines", "vitc", "--out", str(tmp_path / "o"), "--workdir", str(tmp_path)]
    rc = run.main(argv + ["--runs", "1", "--batch-size", "2"])
    captured = capsys.readouterr()
    if rc == 2:
        assert "profile=True" in captured.err and "_core.Model.forward" in captured.err
    else:
        assert rc == 0 and "| patch_embed |" in captured.out
        assert (tmp_path / "o" / "profile.json").is_file()
