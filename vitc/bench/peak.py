"""The machine's peaks for every instruction the kernels use, measured in the same run as the engines.

``fma_peak.c`` (package data) is compiled at run time with the system C compiler and run once per
instruction kind the CPU has (see the kinds in fma_peak.c), on 1 thread and on ``threads`` threads,
each thread pinned to its own core, best of ``TRIALS``: a shared machine only ever pushes a ceiling
down. The report divides each engine's rate by the peak of its precision (``peak_for``):

    fp32  the best fp32 FMA rate (vfmadd231ps zmm where AVX-512 exists, else ymm)
    bf16  vdpbf16ps zmm where the CPU has AVX512_BF16; elsewhere bf16 weights are computed with fp32
          FMAs, so the fp32 peak is the ceiling
    int8  vpdpbusd zmm where the CPU has AVX512_VNNI, else the AVX2 sequence vpmaddubsw + vpmaddwd
          + vpaddd (what the int8 GEMMs run without VNNI)
and, on AMX CPUs, ``tile_peak_for`` gives the tdpbf16ps / tdpbusd tile peaks as a second ceiling.

Without a working compiler the fp32 fallback is the best large NumPy sgemm rate, clearly labelled:
that is a BLAS rate, a lower bound on the peak, so "% of peak" reads high in that case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vitc.bench.cpu import cpu_info

SOURCE = Path(__file__).with_name("fma_peak.c")
SECONDS_PER_TRIAL = 1.0
# Best of a few trials: the peak is a ceiling, and a shared machine only ever pushes numbers down.
TRIALS = 3
FALLBACK_GEMM_N = 2048

# kind -> the /proc/cpuinfo flags it needs. Order: the report's row order.
KIND_FLAGS: dict[str, tuple[str, ...]] = {
    "fp32_ymm": ("avx2", "fma"),
    "fp32_zmm": ("avx512f",),
    "bf16_zmm": ("avx512f", "avx512_bf16"),
    "int8_zmm": ("avx512f", "avx512_vnni"),
    "int8_ymm": ("avx2",),
    "amx_bf16": ("amx_tile", "amx_bf16"),
    "amx_int8": ("amx_tile", "amx_int8"),
}
# Compiler fallbacks: an old gcc/binutils without the AVX-512 BF16 or AMX support still measures the rest.
BUILDS: tuple[tuple[str, ...], ...] = ((), ("-DFMA_PEAK_NO_AMX",), ("-DFMA_PEAK_NO_AMX", "-DFMA_PEAK_NO_AVX512"))
BUILD_DROPS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"amx_bf16", "amx_int8"}),
    frozenset({"amx_bf16", "amx_int8", "fp32_zmm", "bf16_zmm", "int8_zmm"}),
)


def kinds_for(flags: set[str] | frozenset[str] | tuple[str, ...]) -> list[str]:
    """The kinds to measure on a CPU with these flags: every instruction its kernels may use.

    The AVX2 int8 sequence only where there is no VNNI (with VNNI, every int8 GEMM uses vpdpbusd)."""
    flags = set(flags)
    kinds = [k for k, need in KIND_FLAGS.items() if set(need) <= flags]
    if "int8_zmm" in kinds:
        kinds.remove("int8_ymm")
    return kinds


def _compile(folder: Path) -> tuple[Path, frozenset[str]] | None:
    """(executable, kinds it lacks) or None without a working compiler."""
    cc = shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        return None
    exe = folder / "fma_peak"
    errors = []
    for defines, drops in zip(BUILDS, BUILD_DROPS):
        cmd = [cc, "-O3", "-pthread", *defines, str(SOURCE), "-o", str(exe)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode == 0:
            return exe, drops
        errors.append(f"{' '.join(cmd)}:\n{proc.stderr.strip()}")
    print("peak: fma_peak.c did not compile:\n" + "\n".join(errors))
    return None


def _best(exe: Path, kind: str, threads: int, seconds: float, trials: int) -> dict[str, Any]:
    runs = []
    for _ in range(trials):
        out = subprocess.run([str(exe), kind, str(threads), str(seconds)], check=False, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip() or f"exit code {out.returncode}")
        runs.append(json.loads(out.stdout))
    return max(runs, key=lambda r: r["cpu_rate"])


def _sgemm_fallback(threads: int) -> float:
    """GFLOP/s of a square NumPy sgemm, best of TRIALS (uses whatever BLAS NumPy has)."""
    from threadpoolctl import threadpool_limits

    a = np.ones((FALLBACK_GEMM_N, FALLBACK_GEMM_N), dtype=np.float32)
    best = 0.0
    with threadpool_limits(threads):
        a @ a
        for _ in range(TRIALS):
            t0 = time.perf_counter()
            a @ a
            best = max(best, 2 * FALLBACK_GEMM_N**3 / (time.perf_counter() - t0) / 1e9)
    return best


def measure_peaks(
    threads: int,
    flags: set[str] | tuple[str, ...] | None = None,
    seconds: float = SECONDS_PER_TRIAL,
    trials: int = TRIALS,
) -> dict[str, Any]:
    """Every kernel instruction's peak on 1 thread and on ``threads`` pinned threads.

    Returns {"method", "threads", "kinds": {kind: {"instruction", "unit", "per_core", "total",
    "wall_total", "cpu_share"}}, "errors": {kind: why it was not measured}}. ``per_core`` and ``total``
    are per second of CPU time the pinned threads got, so other users of a shared machine do not lower
    the ceiling (``wall_total`` and ``cpu_share``, the mean share of its core a thread got, show how
    much they took during the measurement)."""
    flags = set(cpu_info().flags if flags is None else flags)
    wanted = kinds_for(flags)
    result: dict[str, Any] = {"threads": threads, "kinds": {}, "errors": {}}
    with tempfile.TemporaryDirectory() as tmp:
        built = _compile(Path(tmp))
        if built is not None:
            exe, missing = built
            for kind in wanted:
                if kind in missing:
                    result["errors"][kind] = "this compiler cannot build it"
                    continue
                try:
                    one = _best(exe, kind, 1, seconds, trials)
                    total = _best(exe, kind, threads, seconds, trials) if threads > 1 else one
                except RuntimeError as exc:  # the OS refused AMX tiles: say so, measure the rest
                    result["errors"][kind] = str(exc)
                    continue
                result["kinds"][kind] = {
                    "instruction": one["instruction"],
                    "unit": one["unit"],
                    "per_core": one["cpu_rate"],
                    "total": total["cpu_rate"],
                    "wall_total": total["rate"],
                    "cpu_share": total["cpu_share"],
                }
            result["method"] = (
                f"fma_peak.c: independent chains of each instruction, threads pinned one per core, "
                f"best of {trials} x {seconds:g} s, per second of CPU time each thread got (what the cores "
                "deliver while running; the wall-clock rate on a shared machine is lower by the share of the "
                "cores other processes take)"
            )
            return result
    one = _sgemm_fallback(1)
    total = _sgemm_fallback(threads) if threads > 1 else one
    result["kinds"]["fp32_sgemm"] = {
        "instruction": f"NumPy sgemm {FALLBACK_GEMM_N}^3",
        "unit": "GFLOP/s",
        "per_core": one,
        "total": total,
    }
    result["method"] = "FALLBACK: NumPy sgemm (no C compiler): a BLAS rate, not the FMA peak; % of peak reads high"
    return result


def combine_peaks(peaks: dict[str, Any], again: dict[str, Any], when: str) -> dict[str, Any]:
    """The higher of two measurements per kind (a ceiling: other users of the machine only push it down),
    keeping each measurement's figures under "samples" so the report can show how much they moved."""
    samples = peaks.get("samples") or [{"when": "start", "kinds": peaks["kinds"]}]
    kinds = {k: dict(v) for k, v in peaks["kinds"].items()}
    for kind, v in again["kinds"].items():
        if kind not in kinds:
            kinds[kind] = dict(v)
            continue
        best_total = kinds[kind] if kinds[kind]["total"] >= v["total"] else v
        kinds[kind] = {**best_total, "per_core": max(kinds[kind]["per_core"], v["per_core"])}
    return {
        **peaks,
        "kinds": kinds,
        "samples": [*samples, {"when": when, "kinds": again["kinds"]}],
        "errors": {**again.get("errors", {}), **peaks.get("errors", {})},
    }


def _rate(peaks: dict[str, Any], kind: str, threads: int) -> float:
    k = peaks["kinds"][kind]
    return k["total"] if threads > 1 else k["per_core"]


def peak_for(peaks: dict[str, Any], precision: str, threads: int) -> dict[str, Any] | None:
    """The vector-instruction ceiling of an engine in ``precision`` ("fp32", "bf16", "int8") on
    ``threads`` threads: {"kind", "instruction", "unit", "rate", "note"}, None if nothing was measured."""
    kinds = peaks["kinds"]
    fp32 = [k for k in ("fp32_zmm", "fp32_ymm", "fp32_sgemm") if k in kinds]
    best_fp32 = max(fp32, key=lambda k: _rate(peaks, k, threads)) if fp32 else None
    note = ""
    if precision == "fp32":
        kind = best_fp32
    elif precision == "bf16":
        kind = "bf16_zmm" if "bf16_zmm" in kinds else best_fp32
        if kind == best_fp32:
            note = "no vdpbf16ps on this CPU: bf16 is computed with fp32 FMAs"
    elif precision == "int8":
        kind = next((k for k in ("int8_zmm", "int8_ymm") if k in kinds), None)
    else:
        raise ValueError(f"peak_for: expected precision fp32, bf16 or int8, got {precision!r}")
    if kind is None:
        return None
    return {
        "kind": kind,
        "instruction": kinds[kind]["instruction"],
        "unit": kinds[kind]["unit"],
        "rate": _rate(peaks, kind, threads),
        "note": note,
    }


def tile_peak_for(peaks: dict[str, Any], precision: str, threads: int) -> dict[str, Any] | None:
    """The AMX tile ceiling of ``precision`` where the CPU has AMX (and the OS allowed it), else None."""
    kind = {"bf16": "amx_bf16", "int8": "amx_int8"}.get(precision)
    if kind is None or kind not in peaks["kinds"]:
        return None
    k = peaks["kinds"][kind]
    return {"kind": kind, "instruction": k["instruction"], "unit": k["unit"], "rate": _rate(peaks, kind, threads)}


if __name__ == "__main__":
    print(json.dumps(measure_peaks(2), indent=1))
