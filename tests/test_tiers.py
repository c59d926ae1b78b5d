"""Kernel tiers (csrc/cpu.c): one policy picks the code of every op, capped by VITC_TIER.

The kernels themselves are checked at every supported tier by the `tier` fixture of the kernel
tests; here the policy: what the machine supports, the environment cap, the test override and the
per-op report that show_config prints.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tiers import TIERS, at_tier

import vitc
from vitc import _core

ORDER = ("portable", "avx2", "avx512", "amx")


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "VITC_TIER"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def best_tier_from_features(flags: set[str]) -> str:
    if {"avx2", "fma", "avx512f", "avx512bw", "avx512vl"} <= flags:
        # AMX also needs the OS to grant the tile state; Linux does on every kernel since 5.16.
        return "amx" if flags & {"amx_bf16", "amx_int8"} else "avx512"
    return "avx2" if {"avx2", "fma"} <= flags else "portable"


def test_supported_tiers_follow_the_cpu():
    r = run("from vitc import _core; print(*_core.supported_tiers()); print(_core.tier())")
    assert r.returncode == 0, r.stderr
    supported, active = r.stdout.split("\n")[:2]
    best = best_tier_from_features(set(_core.cpu_features()))
    assert supported.split() == list(ORDER[: ORDER.index(best) + 1])
    assert active == best
    assert TIERS == _core.supported_tiers() and _core.tier() == TIERS[-1]  # nothing overridden here


def test_set_tier_lowers_and_restores():
    top = _core.tier()
    for name in TIERS:
        with at_tier(name):
            assert _core.tier() == name
    assert _core.tier() == top
    with pytest.raises(ValueError, match="expected one of amx, avx512, avx2, portable, got 'sse'"):
        _core._set_tier("sse")
    with pytest.raises(TypeError, match="expected a tier name"):
        _core._set_tier(2)
    assert _core.tier() == top


def test_portable_tier_runs_portable_code():
    with at_tier("portable"):
        kernels = _core.kernels()
    assert kernels == {
        "float32 GEMM": "portable",
        "float32 attention": "OpenBLAS sgemm",
        "elementwise/softmax": "portable",
        "layernorm": "portable",
        "bf16 GEMM": "portable",
        "int8 GEMM": "portable",
        "bf16/int8 attention": "float32",
    }


def test_avx512_code_only_from_the_avx512_tier():
    for name in TIERS:
        with at_tier(name):
            kernels = _core.kernels()
        vector = ORDER.index(name) >= ORDER.index("avx512")
        assert (kernels["elementwise/softmax"] == "avx512") == vector
        assert (kernels["float32 attention"] == "avx512") == vector
        if name != "amx":
            assert "amx" not in " ".join(kernels.values())


def test_environment_caps_the_tier():
    code = (
        "from vitc import _core\n"
        "print(_core.tier(), *_core.supported_tiers())\n"
        "print(set(_core.kernels().values()))\n"
        "try:\n    _core._set_tier('avx2')\nexcept ValueError as e:\n    print(e)\n"
    )
    r = run(code, VITC_TIER="portable")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "portable portable"
    assert "avx512" not in lines[1] and "amx" not in lines[1]
    assert lines[2] == "_set_tier: avx2 is not supported here: this CPU and VITC_TIER allow at most portable"
    # A cap above what the CPU has changes nothing; names are case-insensitive; empty means unset.
    for value in ("AMX", ""):
        r = run("from vitc import _core; print(_core.tier())", VITC_TIER=value)
        assert r.returncode == 0 and r.stdout.strip() == best_tier_from_features(set(_core.cpu_features()))
    r = run("from vitc import _core; print(_core.tier())", VITC_TIER="avx2")
    want = "avx2" if "avx2" in TIERS else "portable"
    assert r.returncode == 0 and r.stdout.strip() == want


def test_unknown_environment_value_fails_the_import():
    r = run("import vitc", VITC_TIER="avx1024")
    assert r.returncode != 0
    assert "ValueError: VITC_TIER: expected one of amx, avx512, avx2, portable (or unset), got 'avx1024'" in r.stderr


def test_show_config_reports_tier_and_kernels(capsys):
    vitc.show_config()
    out = capsys.readouterr().out
    assert f"tier: {_core.tier()}" in out
    for op, code in _core.kernels().items():
        assert f"{op}: {code}" in out
