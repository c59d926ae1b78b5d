"""vitc's own fp32 GEMM (packed weights, deterministic) vs OpenBLAS sgemm on the ViT weight shapes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm_f32.py [--repeats 5]

For ViT-L/16-512 (M = 1025 tokens at batch 1, 4100 at batch 4; (N, K) of qkv, proj, fc1, fc2) and
ViT-B/16-224 (M = 197 and 1576 at batch 8) and 1 and 2 threads: checks vitc's result against
OpenBLAS's first, then times both back to back (interleaved, best of --repeats) and prints GFLOP/s
(2 M N K / time), vitc / OpenBLAS and percent of the machine's fp32 FMA peak, measured in the same
run by vitc/bench/fma_peak.c with pinned threads (per core for 1 thread, all cores for 2).

Two clocks, because the machines are shared: "wall" is elapsed time (what a user waits for, but a
busy neighbour on the same cores inflates it), "cpu" is the CPU time the threads were given (for
2 threads the process's CPU time, so it is per core-second, compared with the per-core peak, also
measured in CPU time). OpenBLAS counts its worker threads' spin-waits as CPU time, vitc's pool
sleeps: for 2 threads compare the wall columns when the machine is quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import vitc
from vitc import _core
from vitc.bench import peak  # compiles vitc/bench/fma_peak.c

VIT_L = {"qkv": (3072, 1024), "proj": (1024, 1024), "fc1": (4096, 1024), "fc2": (1024, 4096)}
VIT_B = {"qkv": (2304, 768), "proj": (768, 768), "fc1": (3072, 768), "fc2": (768, 3072)}
SHAPES = [("L", m, name, nk) for m in (1025, 4100) for name, nk in VIT_L.items()] + [
    ("B", m, name, nk) for m in (197, 1576) for name, nk in VIT_B.items()
]
MAX_REL = 1e-5  # Frobenius relative difference vitc vs OpenBLAS accepted before timing
PEAK_TRIALS = 15  # short FMA runs; the best is the ceiling (neighbours only ever push it down)
PEAK_SECONDS = 0.1


def measure_peak(threads: int) -> dict:
    """fp32 FMA peak for `threads` pinned threads: best GFLOP/s over short runs, wall and CPU time."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = peak._compile(Path(tmp))
        if exe is None:
            raise SystemExit("bench_gemm_f32: no C compiler for vitc/bench/fma_peak.c")
        best_wall = best_cpu = 0.0
        isa = ""
        for _ in range(PEAK_TRIALS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            out = subprocess.run(
                [str(exe), str(threads), str(PEAK_SECONDS)], check=True, capture_output=True, text=True
            )
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before
            r = json.loads(out.stdout)
            isa = r["isa"]
            flop = r["gflops"] * r["seconds"]
            best_wall = max(best_wall, r["gflops"])
            if cpu > 0:
                best_cpu = max(best_cpu, flop / cpu)  # per core-second
    return {"isa": isa, "wall": best_wall, "cpu_per_core": best_cpu}


def make_runs(x: np.ndarray, w: np.ndarray, b: np.ndarray, packed: np.ndarray) -> dict:
    """The two engines on one layer: vitc's GEMM on packed weights, OpenBLAS sgemm (vitc.linear)."""
    N = w.shape[0]
    return {
        "vitc": lambda: _core._gemm_f32(x, packed, b, 0, None, N),
        "blas": lambda: vitc.linear(x, w, b),
    }


def columns(gflops: dict, peak_gflops: float) -> str:
    """vitc, OpenBLAS, vitc / OpenBLAS and vitc's percent of the peak."""
    v, b = gflops["vitc"], gflops["blas"]
    return f"{v:6.1f} {b:6.1f} {v / b:5.2f} {100 * v / peak_gflops:5.0f}"


def timed(fn, threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call; CPU time of this thread (1 thread) or the process."""
    clock = time.thread_time if threads == 1 else time.process_time
    c0, t0 = clock(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, clock() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="L,B", help="comma-separated subset of L,B")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = ap.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    models = set(args.models.split(","))
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            print(f"note: {var}={os.environ[var]} is set (unset it in the benchmark command)")
    kernels = _core.kernels()
    info = _core.blas_info()
    peaks = {t: measure_peak(t) for t in thread_counts}
    cpu_name = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown CPU",
    )
    print(
        f"CPU: {cpu_name}; vitc tier: {_core.tier()} (float32 GEMM: {kernels['float32 GEMM']}); "
        f"OpenBLAS core: {info['corename']}"
    )
    for t, p in peaks.items():
        print(
            f"FMA peak ({p['isa']}, {t} pinned thread(s), best of {PEAK_TRIALS} x {PEAK_SECONDS} s): "
            f"{p['wall']:.1f} GFLOP/s wall, {p['cpu_per_core']:.1f} GFLOP per core-second"
        )
    print(f"best of {args.repeats} interleaved runs; bias added, no activation; GFLOP/s")
    head = (
        f"{'model':>5} {'M':>5} {'layer':>5} {'N':>5} {'K':>5} {'thr':>3} | {'vitc':>6} {'blas':>6} {'ratio':>5} "
        f"{'%peak':>5} | {'vitc':>6} {'blas':>6} {'ratio':>5} {'%peak':>5}"
    )
    print(f"{'':>36} | {'wall clock':^26} | {'cpu time (per core)':^26}")
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(0)
    old = vitc.get_num_threads()
    try:
        for model, M, name, (N, K) in SHAPES:
            if model not in models:
                continue
            x = rng.standard_normal((M, K), dtype=np.float32)
            w = (rng.standard_normal((N, K)) / np.sqrt(K)).astype(np.float32)
            b = (rng.standard_normal(N) * 0.02).astype(np.float32)
            packed = _core._gemm_f32_pack(w)
            runs = make_runs(x, w, b, packed)
            ref = runs["blas"]().astype(np.float64)
            rel = np.linalg.norm(runs["vitc"]() - ref) / np.linalg.norm(ref)
            if not rel < MAX_REL:
                raise SystemExit(f"{model} {name} M={M}: vitc vs OpenBLAS relative difference {rel:.2e} >= {MAX_REL}")
            flop = 2.0 * M * N * K
            for threads in thread_counts:
                vitc.set_num_threads(threads)
                wall = dict.fromkeys(runs, float("inf"))
                cpu = dict.fromkeys(runs, float("inf"))
                for _ in range(args.repeats):  # interleaved: a busy neighbour hits both
                    for k, fn in runs.items():
                        tw, tc = timed(fn, threads)
                        wall[k], cpu[k] = min(wall[k], tw), min(cpu[k], tc)
                gw = {k: flop / s / 1e9 for k, s in wall.items()}
                gc = {k: flop / s / 1e9 for k, s in cpu.items()}
                pk = peaks[threads]
                print(
                    f"{'ViT-' + model:>5} {M:>5} {name:>5} {N:>5} {K:>5} {threads:>3} | "
                    f"{columns(gw, pk['wall'])} | {columns(gc, pk['cpu_per_core'])}",
                    flush=True,
                )
    finally:
        vitc.set_num_threads(old)


if __name__ == "__main__":
    main()
