"""Smoke test of vitc bench --quick (vitc/bench/run.py): the pipeline runs, checks pass, reports are written.

No timing thresholds: this machine is shared and a timing assertion would be a flaky test. ONNX rows
appear only when onnxruntime is installed (the `bench` extra); without it they are skipped, not the test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from vitc.bench import run
from vitc.bench.models import MODELS

VITL_GFLOP = 723.97  # PERF.md's count for ViT-L/16 at 512
HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def test_flop_count_matches_perf_md() -> None:
    assert MODELS["vit-l16-512"].flops_per_image() / 1e9 == pytest.approx(VITL_GFLOP, abs=0.01)


def test_quick_run_writes_checked_results(tmp_path: Path) -> None:
    engines = ["vitc", "hf-eager"] + (["ort"] if HAVE_ORT else [])
    rc = run.main(["--quick", "--engines", *engines, "--runs", "1", "--out", str(tmp_path)])
    assert rc == 0

    data = json.loads((tmp_path / "results.json").read_text())
    rows = {r["engine"]: r for r in data["results"]}
    assert set(rows) == set(engines)
    for r in rows.values():
        assert r["model"] == "tiny"
        assert r["check"]["passed"], r["check"]
        assert r["batch_check"]["passed"], r["batch_check"]
        assert r["check"]["max_abs_diff"] <= r["check"]["atol"]
        assert len(r["latency_s"]["times"]) == 1
        assert r["throughput_img_s"] > 0 and r["peak_rss_mb"] > 0 and r["gflops"] > 0
    assert rows["hf-eager"]["check"]["max_abs_diff"] == 0.0  # the reference against itself
    assert data["meta"]["peak"]["total_gflops"] > 0 and not data["meta"]["failed"]

    md = (tmp_path / "results.md").read_text()
    assert "| **vitc** | tiny |" in md and "FAILED" not in md
    assert (tmp_path / "latency.png").stat().st_size > 0
