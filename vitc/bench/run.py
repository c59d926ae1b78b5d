"""vitc against its peers on this machine: one command, one process per engine, one report.

    vitc bench --models vit-l16-512 vit-b16-224 --threads 2 --out benchmarks/results
    vitc bench --quick                        # tiny model, seconds: a smoke test of the pipeline
    python benchmarks/run.py --quick          # the same from a checkout (writes benchmarks/results/)

Every engine loads the same random-weight checkpoint, is checked against transformers eager on a
fixed input before it is timed, and runs in its own subprocess with the same thread count. See
benchmarks/README.md for how to read the output. ``main(argv)`` is the entry point of ``vitc bench`` and of
benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import vitc
from vitc.bench import report
from vitc.bench.engines import ENGINES, ONNX_ENGINES
from vitc.bench.models import DEFAULT_MODELS, MODELS, QUICK_MODELS
from vitc.bench.peak import measure_peak

# The folder holding the vitc package this process imported: the children import the same one.
VITC_PARENT = Path(vitc.__file__).resolve().parent.parent
DEFAULT_OUT = Path("benchmarks") / "results"  # in the current folder (a checkout's root: its results)
DEFAULT_ENGINES = ("vitc", "vitc-bf16", "vitc-int8", "hf-eager", "hf-sdpa", "ort", "ort-int8")
QUICK_ENGINES = ("vitc", "hf-eager", "ort")
DEFAULT_BATCH = 8
# Environment for every child: pin every thread pool to the requested count so no library
# (OpenMP, OpenBLAS, MKL) spawns one thread per core on top of another's.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def onnx_available() -> bool:
    """ONNX rows need onnxruntime + onnx (the `bench` extra), not the test extra."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(VITC_PARENT), env.get("PYTHONPATH")]))
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


def run_child(module: str, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    """``python -m vitc.bench.<module> args`` with output appended to ``log``; returns the exit code.

    ``cwd`` must not hold a ``vitc`` folder (python -m puts it first on sys.path): the work dir."""
    cmd = [sys.executable, "-m", f"vitc.bench.{module}", *args]
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        return subprocess.run(
            cmd, check=False, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT
        ).returncode


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv: list[str] | None, default_out: Path = DEFAULT_OUT) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vitc bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), help=f"default: {' '.join(DEFAULT_MODELS)}")
    p.add_argument(
        "--engines", nargs="+", choices=list(ENGINES), help=f"default: {' '.join(DEFAULT_ENGINES)}"
    )
    p.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="threads per engine (default: all cores)"
    )
    p.add_argument(
        "--out", type=Path, default=default_out, help=f"results folder (default: {default_out})"
    )
    p.add_argument("--workdir", type=Path, help="checkpoint cache (default: OUT/tmp)")
    p.add_argument(
        "--quick", action="store_true", help="tiny model, vitc + eager (+ ort if installed), 1 run"
    )
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--warmup", type=int, help="batch-1 warm-up calls, incl. the checked first call (>= 1)")
    p.add_argument("--runs", type=int, help="timed batch-1 calls")
    p.add_argument(
        "--batch-warmup", type=int, help="untimed batch calls (0: the checked first batch call is timed)"
    )
    p.add_argument("--batch-runs", type=int, help="timed batch calls")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="run every engine this many times, alternating the order, and report each engine's least "
        "disturbed round (default: 2, --quick: 1)",
    )
    args = p.parse_args(argv)
    args.models = args.models or list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    args.engines = args.engines or list(QUICK_ENGINES if args.quick else DEFAULT_ENGINES)
    args.workdir = args.workdir or args.out / "tmp"
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    if args.threads < 1 or args.batch_size < 1 or args.rounds < 1:
        p.error("--threads and --batch-size must be >= 1")
    return args


def counts_for(args: argparse.Namespace, model: str) -> dict[str, int]:
    c = MODELS[model].counts
    counts = {
        "warmup": max(1, args.warmup if args.warmup is not None else c.warmup),
        "runs": max(1, args.runs if args.runs is not None else c.runs),
        "batch_warmup": max(0, args.batch_warmup if args.batch_warmup is not None else c.batch_warmup),
        "batch_runs": max(1, args.batch_runs if args.batch_runs is not None else c.batch_runs),
    }
    return counts


def write_report(
    args: argparse.Namespace,
    argv: list[str] | None,
    peak: dict[str, Any],
    results: list[dict[str, Any]],
    failed: list[str],
    out: Path,
) -> None:
    """(Re)write results.md/json/png from what has run so far: a stopped run still leaves a report."""
    flops = {m: MODELS[m].flops_per_image() for m in args.models}
    report.add_derived(results, flops, peak)
    versions: dict[str, str] = {"python": platform.python_version()}
    for r in results:
        versions.update(r.get("versions", {}))
    meta = {
        "command": shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "peak": peak,
        "flops": flops,
        "counts": {m: counts_for(args, m) for m in args.models},
        "versions": versions,
        "failed": failed,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    report.write_all(results, meta, out)


def run_one(
    args: argparse.Namespace,
    engine: str,
    model: str,
    counts: dict[str, int],
    workdir: Path,
    env: dict[str, str],
    log: Path,
    failed: list[str],
) -> dict[str, Any] | None:
    """One engine on one model in its own subprocess; its result, or None (recorded in ``failed``)."""
    t0 = time.perf_counter()
    res_path = workdir / model / f"result.{engine}.json"
    res_path.unlink(missing_ok=True)
    child_args = ["--engine", engine, "--model", model, "--workdir", str(workdir), "--threads", str(args.threads)]
    child_args += ["--batch-size", str(args.batch_size), "--counts", json.dumps(counts), "--out", str(res_path)]
    rc = run_child("engines", child_args, env, log, workdir)
    if not res_path.is_file():  # crashed before writing a result: a failure, never a silent gap
        failed.append(f"{engine}/{model}: exit code {rc}, no result (see {log})")
        print(f"bench: FAILED {engine} on {model}: exit code {rc}; see {log}", flush=True)
        return None
    r = json.loads(res_path.read_text())
    chk = r["check"]
    if not chk["passed"]:
        failed.append(
            f"{engine}/{model}: max abs diff {chk['max_abs_diff']:.3g} > {chk['atol']:.3g} "
            f"or argmax disagrees ({chk['argmax_agree']})"
        )
        print(f"bench: FAILED CHECK {engine} on {model}: {chk}", flush=True)
        return r
    print(
        f"bench: {engine:9s} {model}: median {r['latency_s']['median'] * 1e3:9.1f} ms, "
        f"{r['throughput_img_s']:7.2f} img/s, peak RSS {r['peak_rss_mb']:6.0f} MB, "
        f"diff {chk['max_abs_diff']:.1e} ({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return r


def main(argv: list[str] | None = None, default_out: Path = DEFAULT_OUT) -> int:
    """Run the benchmark; 0 if every engine passed its check, 1 otherwise.

    ``default_out`` is the results folder when ``--out`` is not given (benchmarks/run.py passes its own
    results/ folder)."""
    args = parse_args(argv, default_out)
    out: Path = args.out.resolve()
    workdir: Path = args.workdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    log.write_text("")
    env = child_env(args.threads)

    engines = list(args.engines)
    if not onnx_available():
        skipped = [e for e in engines if e in ONNX_ENGINES]
        engines = [e for e in engines if e not in ONNX_ENGINES]
        if skipped:
            print(f"bench: onnxruntime/onnx not installed (pip install 'vitc[bench]'): skipping {skipped}")
    use_onnx = any(e in ONNX_ENGINES for e in engines)

    # Peak first, while nothing else of ours is running.
    print(f"bench: measuring the fp32 FMA peak on {args.threads} thread(s) ...", flush=True)
    peak = measure_peak(args.threads)
    print(
        f"bench: peak {peak['per_core_gflops']:.1f} GFLOP/s per core, {peak['total_gflops']:.1f} total "
        f"({peak['method']})",
        flush=True,
    )

    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for model in args.models:
        t0 = time.perf_counter()
        print(f"bench: preparing {model} (cached in {workdir / model}) ...", flush=True)
        prep_args = ["--model", model, "--workdir", str(workdir), "--seed", str(args.seed)]
        if run_child("prepare", prep_args + (["--onnx"] if use_onnx else []), env, log, workdir) != 0:
            raise SystemExit(f"bench: preparing {model} failed; see {log}")
        print(f"bench: prepared {model} in {time.perf_counter() - t0:.0f} s", flush=True)
        counts = counts_for(args, model)
        best: dict[str, dict[str, Any]] = {}
        for rnd in range(args.rounds):
            # Alternate the order so no engine always runs first or last on a machine whose speed drifts.
            for engine in engines if rnd % 2 == 0 else engines[::-1]:
                if any(f.startswith(f"{engine}/{model}:") for f in failed):
                    continue
                r = run_one(args, engine, model, counts, workdir, env, log, failed)
                if r is None:
                    continue
                r["round_medians_s"] = best.get(engine, {}).get("round_medians_s", []) + [r["latency_s"]["median"]]
                # Keep the least disturbed round of each engine: shared machines only ever slow us down.
                if engine not in best or r["latency_s"]["median"] < best[engine]["latency_s"]["median"]:
                    best[engine] = r
                else:
                    best[engine]["round_medians_s"] = r["round_medians_s"]
                results[:] = [x for x in results if not (x["model"] == model and x["engine"] == engine)]
                results.append(best[engine])
                results.sort(key=lambda x: (args.models.index(x["model"]), engines.index(x["engine"])))
                write_report(args, argv, peak, results, failed, out)  # partial report after every engine

    write_report(args, argv, peak, results, failed, out)
    print(f"bench: wrote {out / 'results.md'}, results.json, latency.png")
    print((out / "results.md").read_text())
    if failed:
        print("bench: FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
