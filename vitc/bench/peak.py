"""The machine's fp32 FMA peak, measured in the same run as the engines (fma_peak.c).

The C source is compiled at run time with the system gcc (AVX-512 if the CPU has it, else AVX2).
Without a working compiler the fallback is the best large NumPy sgemm rate, clearly labelled: that
is a BLAS rate, a lower bound on the peak, so "% of peak" reads high in that case.
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

SOURCE = Path(__file__).with_name("fma_peak.c")
SECONDS_PER_TRIAL = 1.0
# Best of a few trials: the peak is a ceiling, and a shared machine only ever pushes numbers down.
TRIALS = 3
FALLBACK_GEMM_N = 2048


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _compile(folder: Path) -> Path | None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    flags = ["-mavx512f", "-mfma"] if "avx512f" in _cpu_flags() else ["-mavx2", "-mfma", "-DFMA_PEAK_AVX2"]
    exe = folder / "fma_peak"
    cmd = [gcc, "-O3", *flags, "-pthread", str(SOURCE), "-o", str(exe)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"peak: {' '.join(cmd)} failed:\n{proc.stderr}")
        return None
    return exe


def _best(exe: Path, threads: int) -> dict[str, Any]:
    runs = []
    for _ in range(TRIALS):
        out = subprocess.run(
            [str(exe), str(threads), str(SECONDS_PER_TRIAL)], check=True, capture_output=True, text=True
        )
        runs.append(json.loads(out.stdout))
    return max(runs, key=lambda r: r["gflops"])


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


def measure_peak(threads: int) -> dict[str, Any]:
    """fp32 peak for one core and for ``threads`` cores: {"method", "per_core_gflops", "total_gflops"}."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = _compile(Path(tmp))
        if exe is not None:
            one = _best(exe, 1)
            total = _best(exe, threads) if threads > 1 else one
            return {
                "method": f"fma_peak.c ({one['isa']}, independent chains, best of {TRIALS} x {SECONDS_PER_TRIAL} s)",
                "per_core_gflops": one["gflops"],
                "total_gflops": total["gflops"],
                "threads": threads,
            }
    one = _sgemm_fallback(1)
    total = _sgemm_fallback(threads) if threads > 1 else one
    return {
        "method": f"FALLBACK: NumPy sgemm {FALLBACK_GEMM_N}^3 (no C compiler): a BLAS rate, not the FMA peak",
        "per_core_gflops": one,
        "total_gflops": total,
        "threads": threads,
    }


if __name__ == "__main__":
    print(json.dumps(measure_peak(2), indent=1))
