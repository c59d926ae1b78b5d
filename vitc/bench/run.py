"""vitc against its peers on this machine: one command, one process per engine, one report.

    vitc bench                                  # ViT-L/16-512 + ViT-B/16-224, every engine and precision
    vitc bench --quick                          # tiny model, a minute: a smoke test of the pipeline
    vitc bench --models vit-b16-224 --update-results   # from a checkout: benchmarks/results/<cpu-kind>/
    vitc bench --profile --models vit-l16-512   # vitc's per-stage time as % of the forward

Every engine loads the same random-weight checkpoint, is checked against transformers eager on a
fixed input before it is timed, runs in its own subprocess with the same thread count, and is scored
against fp32 transformers on real photos. Results go to a scratch folder (printed) unless an output
is named: ``--out DIR``, or ``--update-results`` for the committed benchmarks/results/<cpu-kind>/ of a
checkout; a ``--quick`` run never writes there. See benchmarks/README.md for how to read the output.
``main(argv)`` is the entry point of ``vitc bench`` and of benchmarks/run.py.
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
from vitc.bench.cpu import cpu_info, load_average, openblas_env, wait_for_quiet
from vitc.bench.engines import ENGINE_REQUIRES, ENGINES, VITC_ENGINES, kernel_config
from vitc.bench.models import DEFAULT_MODELS, MODELS, QUICK_MODELS
from vitc.bench.peak import combine_peaks, measure_peaks
from vitc.bench.profile import format_profiles

# The folder holding the vitc package this process imported: the children import the same one.
VITC_PARENT = Path(vitc.__file__).resolve().parent.parent
# The committed results of a checkout (absent in an installed wheel): written only with --update-results
# or an explicit --out, never by --quick.
CHECKOUT_RESULTS = VITC_PARENT / "benchmarks" / "results"
DEFAULT_ENGINES = (
    "vitc", "vitc-bf16", "vitc-int8", "hf-eager", "hf-sdpa", "ort", "ort-int8", "ov", "ov-bf16", "ov-int8",
)  # fmt: skip
QUICK_ENGINES = ("vitc", "vitc-int8", "hf-eager", "ort", "ov")
DEFAULT_BATCH = 8
VITC_OF = {"fp32": "vitc", "bf16": "vitc-bf16", "int8": "vitc-int8"}
SWEEP_MODEL = "vit-b16-224"
SWEEP_BATCHES = (1, 2, 4, 8, 16)
SWEEP_SIZES = (224, 384, 512, 640)
# Environment for every child: pin every thread pool to the requested count so no library
# (OpenMP, OpenBLAS, MKL, TBB via OpenVINO's own setting) spawns one thread per core on top of another's.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# What --per-model MODEL:KEY=VALUE may set for one model (a slow machine runs the big model with fewer
# engines, batch 1 and fewer images, in the same run and the same report as the small one).
PER_MODEL_COUNTS = ("warmup", "runs", "batch_warmup", "batch_runs", "accuracy_images", "calibration_images")
PER_MODEL_KEYS = ("engines", "batch_size", *PER_MODEL_COUNTS)


def cache_dir() -> Path:
    """Scratch space of ``vitc bench``: $XDG_CACHE_HOME/vitc/bench (default ~/.cache/vitc/bench)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vitc" / "bench"


def missing_modules(engine: str) -> list[str]:
    return [m for m in ENGINE_REQUIRES[engine] if importlib.util.find_spec(m) is None]


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
        return subprocess.run(cmd, check=False, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def parse_per_model(items: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """``["vit-l16-512:engines=vitc,ort", "vit-l16-512:batch_size=1"]`` -> {model: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        model, sep, setting = item.partition(":")
        key, eq, value = setting.partition("=")
        if not sep or not eq or not value:
            raise ValueError(f"--per-model: expected MODEL:KEY=VALUE, got {item!r}")
        if model not in models:
            raise ValueError(f"--per-model: expected a model of this run ({', '.join(models)}), got {model!r}")
        if key not in PER_MODEL_KEYS:
            raise ValueError(f"--per-model: expected a key from {', '.join(PER_MODEL_KEYS)}, got {key!r}")
        if key == "engines":
            names = [e for e in value.split(",") if e]
            unknown = [e for e in names if e not in ENGINES]
            if unknown or not names:
                raise ValueError(f"--per-model: expected engines from {', '.join(ENGINES)}, got {value!r}")
            out.setdefault(model, {})[key] = names
            continue
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--per-model: expected an integer for {key}, got {value!r}") from None
        if n < (1 if key in ("batch_size", "runs", "batch_runs", "accuracy_images", "calibration_images") else 0):
            raise ValueError(f"--per-model: {key} too small: {n}")
        out.setdefault(model, {})[key] = n
    return out


def engines_for(args: argparse.Namespace, model: str, engines: list[str]) -> list[str]:
    """The engines of ``engines`` (installed, asked for) that run on ``model``: --per-model engines=..."""
    only = args.per_model.get(model, {}).get("engines")
    return [e for e in engines if only is None or e in only]


def batch_size_for(args: argparse.Namespace, model: str) -> int:
    return args.per_model.get(model, {}).get("batch_size", args.batch_size)


def parse_args(argv: list[str] | None, checkout_results: Path | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vitc bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), help=f"default: {' '.join(DEFAULT_MODELS)}")
    p.add_argument("--engines", nargs="+", choices=list(ENGINES), help=f"default: {' '.join(DEFAULT_ENGINES)}")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads per engine (default: all cores)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", type=Path, help=f"results folder (default: scratch, {cache_dir() / 'results'})")
    out.add_argument(
        "--update-results",
        action="store_true",
        help="write the committed results of this checkout, benchmarks/results/<cpu-kind>/ (not with --quick)",
    )
    p.add_argument("--workdir", type=Path, help=f"checkpoint cache (default: {cache_dir() / 'work'})")
    p.add_argument(
        "--quick", action="store_true", help="tiny model, a few engines, 1 run: a smoke test, ratios mean little"
    )
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="the batch run's size (1: no batch run)")
    p.add_argument("--warmup", type=int, help="batch-1 warm-up calls, incl. the checked first call (>= 1)")
    p.add_argument("--runs", type=int, help="timed batch-1 calls")
    p.add_argument("--batch-warmup", type=int, help="untimed batch calls (0: the checked first batch call is timed)")
    p.add_argument("--batch-runs", type=int, help="timed batch calls")
    p.add_argument("--accuracy-images", type=int, help="real photos per engine for the accuracy columns")
    p.add_argument("--calibration-images", type=int, help="real photos NNCF calibrates OpenVINO int8 on")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="run every engine this many times, alternating the order, and report each engine's least "
        "disturbed round (default: 2, --quick: 1)",
    )
    p.add_argument(
        "--sweep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"scaling plot: vitc and the fastest peer per precision over batch and resolution (default: on, "
        f"for {SWEEP_MODEL} if it ran; off with --quick)",
    )
    p.add_argument("--sweep-model", choices=sorted(MODELS), help=f"model of the sweep (default: {SWEEP_MODEL})")
    p.add_argument("--sweep-batches", type=int, nargs="+", default=list(SWEEP_BATCHES))
    p.add_argument("--sweep-sizes", type=int, nargs="+", default=list(SWEEP_SIZES))
    p.add_argument("--sweep-runs", type=int, default=3, help="timed calls per sweep point (after 1 warm-up)")
    p.add_argument(
        "--sweep-from",
        type=Path,
        metavar="DIR",
        help="only the scaling sweep, for the engines of an earlier run's DIR/results.json, added to that "
        "report (written to --out / --update-results, default DIR itself): a busy machine's long run in two parts",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="only profile vitc: per-stage time (patch embed, QKV, attention, ...) as %% of the forward",
    )
    p.add_argument("--peak-seconds", type=float, default=1.0, help="seconds per peak trial (best of 3)")
    p.add_argument(
        "--per-model",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help=f"a setting for one model only (repeatable), KEY from {', '.join(PER_MODEL_KEYS)}; engines "
        "is a comma list, a subset of --engines (e.g. vit-l16-512:engines=vitc,ort,ov vit-l16-512:batch_size=1)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each engine, sweep point and peak measurement, wait up to SECONDS until other "
        "processes use at most a quarter of the CPUs (a shared machine; default 0: no wait)",
    )
    p.add_argument(
        "--sweep-precisions",
        nargs="+",
        choices=list(VITC_OF),
        default=list(VITC_OF),
        help="precisions the scaling sweep covers (default: all that have a peer)",
    )
    args = p.parse_args(argv)
    args.models = args.models or list(QUICK_MODELS if args.quick else DEFAULT_MODELS)
    try:
        args.per_model = parse_per_model(args.per_model, args.models)
    except ValueError as exc:
        p.error(str(exc))
    if args.profile:
        args.engines = [e for e in (args.engines or VITC_OF.values()) if e in VITC_ENGINES]
        if not args.engines:
            p.error(f"--profile profiles vitc: expected --engines from {', '.join(sorted(VITC_ENGINES))}")
    args.engines = args.engines or list(QUICK_ENGINES if args.quick else DEFAULT_ENGINES)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    if args.sweep is None:
        args.sweep = not args.quick and not args.profile
    if args.threads < 1 or args.batch_size < 1 or args.rounds < 1:
        p.error("--threads, --batch-size and --rounds must be >= 1")

    if args.sweep_from is not None:
        if not (args.sweep_from / "results.json").is_file():
            p.error(f"--sweep-from: expected a folder with results.json, got {args.sweep_from}")
        if args.profile or args.quick:
            p.error("--sweep-from runs only the sweep: not with --profile or --quick")
        args.sweep = True
        args.threads = json.loads((args.sweep_from / "results.json").read_text())["meta"]["threads"]  # same as the run
        if args.out is None and not args.update_results:
            args.out = args.sweep_from
    # Where results go. The committed results change only when asked by name, never from --quick.
    committed = checkout_results if checkout_results is not None else CHECKOUT_RESULTS
    if args.update_results:
        if args.quick:
            p.error("--update-results with --quick: a quick run's numbers never replace the committed results")
        if not committed.parent.is_dir():
            p.error(f"--update-results needs a checkout: {committed.parent} does not exist (use --out DIR)")
        args.out = committed / cpu_info().kind
    elif args.out is not None:
        if args.quick and _inside(args.out, committed):
            p.error(f"--quick writes no results under {committed} (the committed results): choose another --out")
    else:
        args.out = cache_dir() / "results"
    args.committed = committed
    args.workdir = args.workdir or cache_dir() / "work"
    return args


def counts_for(args: argparse.Namespace, model: str) -> dict[str, int]:
    c = MODELS[model].counts

    own = args.per_model.get(model, {})

    def pick(name: str, minimum: int) -> int:
        given = own.get(name, getattr(args, name))
        return max(minimum, given if given is not None else getattr(c, name))

    return {
        "warmup": pick("warmup", 1),
        "runs": pick("runs", 1),
        "batch_warmup": pick("batch_warmup", 0),
        "batch_runs": pick("batch_runs", 1),
        "accuracy_images": pick("accuracy_images", 1),
        "calibration_images": pick("calibration_images", 1),
    }


def command_line(argv: list[str] | None) -> str:
    return shlex.join(["vitc", "bench", *(sys.argv[1:] if argv is None else argv)])


def vitc_source() -> str | None:
    """The commit of the checkout vitc runs from (``git describe --always --dirty``), None for a wheel:
    the results name the code they measured, not only the version string."""
    if not (VITC_PARENT / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(VITC_PARENT), "log", "-1", "--format=%h %cs %s"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(VITC_PARENT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out[:100]}{' (+ uncommitted changes)' if dirty else ''}"


def base_meta(args: argparse.Namespace, argv: list[str] | None, peaks: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command_line(argv),
        "quick": bool(args.quick),
        "cpu": cpu_info().as_dict(),
        "kernels": kernel_config(),
        "openblas_env": openblas_env(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "batch_sizes": {m: batch_size_for(args, m) for m in args.models},
        "per_model": args.per_model,
        "peaks": peaks,
        "flops": {m: MODELS[m].flops_per_image() for m in args.models},
        "counts": {m: counts_for(args, m) for m in args.models},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "vitc_source": vitc_source(),
    }


def remeasure_peaks(args: argparse.Namespace, meta: dict[str, Any], when: str) -> None:
    """Measure the peaks again and keep the higher figure per kind: the load of a shared machine drifts
    over a long run, and a peak measured in a busy minute would put a quiet minute's engine above 100 %."""
    quiet(args, "the peaks")
    meta["peaks"] = combine_peaks(meta["peaks"], measure_peaks(args.threads, seconds=args.peak_seconds), when)
    for k in meta["peaks"]["kinds"].values():
        print(f"bench: peak so far {k['instruction']:32s} {k['per_core']:8.1f} / {k['total']:8.1f} {k['unit']}")


def write_report(
    meta: dict[str, Any],
    results: list[dict[str, Any]],
    failed: list[str],
    out: Path,
    sweeps: list[dict[str, Any]] | None = None,
) -> None:
    """(Re)write results.md/json/png from what has run so far: a stopped run still leaves a report."""
    report.add_derived(results, meta["flops"], meta["peaks"], meta["threads"])
    versions: dict[str, str] = {"python": platform.python_version()}
    for r in results:
        versions.update(r.get("versions", {}))
    names = next((r["accuracy"]["image_names"] for r in results if r.get("accuracy")), None)
    meta.update(versions=versions, failed=failed, load_after=load_average())
    if names:
        meta.update(accuracy_images=len(names), accuracy_image_names=names)
    report.write_all(results, meta, out, sweeps)


def quiet(args: argparse.Namespace, what: str) -> dict[str, float] | None:
    """--wait-quiet: wait for a quiet moment before ``what``; the wait and the others' share it ended
    at (recorded in the result, so a run that never got one says so)."""
    if args.wait_quiet <= 0:
        return None
    waited, share = wait_for_quiet(args.wait_quiet)
    if share is None:
        return None
    if waited > 3:
        state = "quiet" if share <= 0.25 else "still busy"
        print(
            f"bench: waited {waited:.0f} s before {what}: others' CPU share {100 * share:.0f} % ({state})", flush=True
        )
    return {"waited_s": round(waited, 1), "others_share_at_start": round(share, 3)}


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
    wait = quiet(args, f"{engine} on {model}")
    child_args = ["--engine", engine, "--model", model, "--workdir", str(workdir), "--threads", str(args.threads)]
    child_args += ["--batch-size", str(batch_size_for(args, model)), "--counts", json.dumps(counts)]
    child_args += ["--out", str(res_path)]
    rc = run_child("engines", child_args, env, log, workdir)
    if not res_path.is_file():  # crashed before writing a result: a failure, never a silent gap
        failed.append(f"{engine}/{model}: exit code {rc}, no result (see {log})")
        print(f"bench: FAILED {engine} on {model}: exit code {rc}; see {log}", flush=True)
        return None
    r = json.loads(res_path.read_text())
    if wait:
        r["quiet_wait"] = wait
    if r.get("status") == "n/a":
        print(f"bench: {engine:9s} {model}: {r['reason']}", flush=True)
        return r
    chk = r["check"]
    if not chk["passed"]:
        failed.append(
            f"{engine}/{model}: max abs diff {chk['max_abs_diff']:.3g} > {chk['atol']:.3g} "
            f"or argmax disagrees ({chk['argmax_agree']})"
        )
        print(f"bench: FAILED CHECK {engine} on {model}: {chk}", flush=True)
        return r
    acc = r.get("accuracy")
    acc_text = f", cos {acc['cosine_min']:.5f}, top-1 {acc['top1_agree']}/{acc['images']}" if acc else ""
    batch = report.per_image_batch(r)
    batch_text = f", batch {batch * 1e3:9.1f} ms/img" if batch else ""
    print(
        f"bench: {engine:9s} {model}: median {r['latency_s']['median'] * 1e3:9.1f} ms{batch_text}, "
        f"peak RSS {r['peak_rss_mb']:6.0f} MB{acc_text} (load {r.get('load_avg_1min') or 0:.1f}, "
        f"{time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return r


def prepare_model(
    args: argparse.Namespace, model: str, engines: list[str], env: dict[str, str], log: Path, sizes: list[int] = ()
) -> None:
    counts = counts_for(args, model)
    peers = [e for e in engines if e not in VITC_ENGINES]
    prep_args = ["--model", model, "--workdir", str(args.workdir), "--seed", str(args.seed), "--engines", *peers]
    prep_args += ["--accuracy-images", str(counts["accuracy_images"])]
    prep_args += ["--calibration-images", str(counts["calibration_images"])]
    if sizes:
        prep_args += ["--sizes", *map(str, sizes)]
    t0 = time.perf_counter()
    print(f"bench: preparing {model} for {' '.join(engines)} (cached in {args.workdir / model}) ...", flush=True)
    if run_child("prepare", prep_args, env, log, args.workdir) != 0:
        raise SystemExit(f"bench: preparing {model} failed; see {log}")
    print(f"bench: prepared {model} in {time.perf_counter() - t0:.0f} s", flush=True)


def run_sweeps(
    args: argparse.Namespace, results: list[dict[str, Any]], env: dict[str, str], log: Path, failed: list[str]
) -> list[dict[str, Any]]:
    """vitc and the fastest peer of each precision (batch-1 medians of this run), over batch and size.

    The two engines of a precision alternate point by point (A B, B A, ...), each point in a fresh
    process: on a machine whose speed drifts over minutes, the ratio at each point is then measured in
    the same minute, which a whole curve of A followed by a whole curve of B is not."""
    model = args.sweep_model or SWEEP_MODEL
    if model not in args.models:
        print(f"bench: no sweep: {model} was not benchmarked in this run (--models, --sweep-model)", flush=True)
        return []
    pairs: list[tuple[str, str]] = []
    for precision, mine in VITC_OF.items():
        if precision not in args.sweep_precisions:
            continue
        if not any(r["engine"] == mine and r["model"] == model and report.ok(r) for r in results):
            continue
        peer = report.fastest_peer(results, model, precision, batch=False)
        if peer is not None:  # without a peer in this precision a curve compares nothing
            pairs.append((mine, peer["engine"]))
    if not pairs:
        return []
    engines = [e for pair in pairs for e in pair]
    prepare_model(args, model, engines, env, log, [s for s in args.sweep_sizes if s != MODELS[model].image_size])
    counts = {"warmup": 1, "runs": max(1, args.sweep_runs)}
    sweeps: dict[tuple[str, str], dict[str, Any]] = {}
    for pair in pairs:
        for axis, points in (("batch", args.sweep_batches), ("size", args.sweep_sizes)):
            for i, point in enumerate(points):
                for engine in pair if i % 2 == 0 else pair[::-1]:
                    t0 = time.perf_counter()
                    quiet(args, f"sweep {engine} {axis} {point}")
                    res_path = args.workdir / model / f"sweep.{engine}.{axis}.{point}.json"
                    res_path.unlink(missing_ok=True)
                    child = ["--engine", engine, "--model", model, "--workdir", str(args.workdir), "--threads"]
                    child += [str(args.threads), "--counts", json.dumps(counts), "--out", str(res_path)]
                    child += ["--sweep", axis, "--points", str(point)]
                    rc = run_child("engines", child, env, log, args.workdir)
                    if not res_path.is_file():
                        failed.append(f"sweep {engine}/{model}/{axis} {point}: exit code {rc} (see {log})")
                        print(f"bench: FAILED sweep {engine} {axis} {point}: exit code {rc}; see {log}", flush=True)
                        continue
                    s = json.loads(res_path.read_text())
                    if (engine, axis) not in sweeps:
                        sweeps[(engine, axis)] = {**s, "points": []}
                    sweeps[(engine, axis)]["points"] += s["points"]
                    per_image = s["points"][0]["per_image_s"] * 1e3
                    print(
                        f"bench: sweep {engine:9s} {axis:5s} {point:4d}: {per_image:9.1f} ms/img "
                        f"({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
    return list(sweeps.values())


def run_profiles(args: argparse.Namespace, env: dict[str, str], log: Path, out: Path) -> int:
    """``--profile``: vitc's per-stage times; exit 2 with the interface's message until C has the timers."""
    rows, missing = [], None
    for model in args.models:
        prepare_model(args, model, engines_for(args, model, args.engines), env, log)
        for engine in engines_for(args, model, args.engines):
            for batch in sorted({1, batch_size_for(args, model)}):
                res_path = args.workdir / model / f"profile.{engine}.b{batch}.json"
                res_path.unlink(missing_ok=True)
                child = ["--engine", engine, "--model", model, "--workdir", str(args.workdir), "--threads"]
                child += [str(args.threads), "--batch-size", str(batch), "--out", str(res_path), "--profile"]
                child += ["--counts", json.dumps({"runs": args.runs or 3})]
                rc = run_child("engines", child, env, log, args.workdir)
                if not res_path.is_file():
                    print(f"bench: FAILED profile {engine} {model} b{batch}: exit {rc}; see {log}", file=sys.stderr)
                    return 1
                r = json.loads(res_path.read_text())
                if r["status"] != "ok":
                    missing = r["reason"]
                    break
                rows.append(r)
            if missing:
                break
        if missing:
            break
    if missing:
        print(f"bench: --profile: {missing}", file=sys.stderr)
        return 2
    cpu = cpu_info()
    k = kernel_config()
    text = "\n".join(
        [
            "# vitc stage profile",
            "",
            f"- CPU: {cpu.description}; vitc tier: {k.get('tier') or 'no tier system'}; threads: {args.threads}",
            f"- command: `{command_line(None)}`; median of {args.runs or 3} profiled forwards",
            "",
            format_profiles(rows),
            "",
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.md").write_text(text)
    (out / "profile.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


def sweep_only(args: argparse.Namespace, argv: list[str] | None, env: dict[str, str], log: Path, out: Path) -> int:
    """--sweep-from: the sweep for an earlier run's results, merged into its report (its command kept,
    this one recorded beside it as the sweep's)."""
    data = json.loads((args.sweep_from / "results.json").read_text())
    meta, results = data["meta"], data["results"]
    args.models = list(dict.fromkeys(r["model"] for r in results))
    failed = list(meta.get("failed", []))
    print(f"bench: sweep only, for the run of {meta['date']} ({args.sweep_from / 'results.json'})", flush=True)
    sweeps = run_sweeps(args, results, env, log, failed)
    if not sweeps:
        print("bench: --sweep-from: nothing to sweep (no vitc engine with a peer in that run)", file=sys.stderr)
        return 1
    meta["sweep_command"] = command_line(argv)
    meta["sweep_date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    remeasure_peaks(args, meta, "after the sweep")
    write_report(meta, results, failed, out, sweeps)
    print(f"bench: wrote {out / 'results.md'}, results.json, latency.png, scaling.png")
    return 1 if failed else 0


def main(argv: list[str] | None = None, checkout_results: Path | None = None) -> int:
    """Run the benchmark; 0 if every engine passed its check, 1 otherwise.

    ``checkout_results``: the committed results folder (benchmarks/run.py passes its own results/);
    written only with ``--update-results`` (into <cpu-kind>/) or an explicit ``--out``."""
    args = parse_args(argv, checkout_results)
    out: Path = args.out.resolve()
    args.workdir = args.workdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    if args.sweep_from is None or log.resolve() != (args.sweep_from / "run.log").resolve():
        log.write_text("")  # a sweep added to a run's own folder appends to that run's log
    env = child_env(args.threads)
    if args.quick:
        print(f"bench: {report.QUICK_WARNING}", flush=True)

    engines = []
    for e in args.engines:
        missing = missing_modules(e)
        if missing:
            print(f"bench: skipping {e}: {', '.join(missing)} not installed (pip install 'vitc[bench]')")
        else:
            engines.append(e)
    if args.profile:
        return run_profiles(args, env, log, out)
    if args.sweep_from is not None:
        return sweep_only(args, argv, env, log, out)

    load_before = load_average()
    # Peaks first, while nothing else of ours is running.
    print(f"bench: measuring the instruction peaks on 1 and {args.threads} pinned thread(s) ...", flush=True)
    quiet(args, "the peaks")
    peaks = measure_peaks(args.threads, seconds=args.peak_seconds)
    for k in peaks["kinds"].values():
        print(f"bench: peak {k['instruction']:32s} {k['per_core']:8.1f} / {k['total']:8.1f} {k['unit']}", flush=True)
    meta = base_meta(args, argv, peaks)
    meta["load_before"] = load_before
    tier = meta["kernels"].get("tier") or "none (no tier system)"
    print(f"bench: {meta['cpu']['description']}; vitc tier: {tier}; load {load_before}")

    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for model in args.models:
        model_engines = engines_for(args, model, engines)
        prepare_model(args, model, model_engines, env, log)
        counts = counts_for(args, model)
        best: dict[str, dict[str, Any]] = {}
        for rnd in range(args.rounds):
            # Alternate the order so no engine always runs first or last on a machine whose speed drifts.
            for engine in model_engines if rnd % 2 == 0 else model_engines[::-1]:
                if any(f.startswith(f"{engine}/{model}:") for f in failed):
                    continue
                if best.get(engine, {}).get("status") == "n/a":
                    continue
                # Accuracy is the same every round (same inputs, same kernels): measured in the first.
                round_counts = {**counts, "accuracy": int(engine not in best)}
                r = run_one(args, engine, model, round_counts, args.workdir, env, log, failed)
                if r is None:
                    continue
                if "accuracy" in best.get(engine, {}):
                    r.setdefault("accuracy", best[engine]["accuracy"])
                # Keep the least disturbed round of each engine (shared machines only ever slow us down);
                # a failed or n/a round replaces it, so the report shows it.
                old = best.get(engine)
                if not report.ok(r) or old is None or not report.ok(old):
                    best[engine] = r
                if report.ok(r):
                    r["round_medians_s"] = (old or {}).get("round_medians_s", []) + [r["latency_s"]["median"]]
                    if best[engine] is not r and r["latency_s"]["median"] < old["latency_s"]["median"]:
                        best[engine] = r
                    else:
                        best[engine]["round_medians_s"] = r["round_medians_s"]
                results[:] = [x for x in results if not (x["model"] == model and x["engine"] == engine)]
                results.append(best[engine])
                results.sort(key=lambda x: (args.models.index(x["model"]), engines.index(x["engine"])))
                write_report(meta, results, failed, out)  # partial report after every engine
        remeasure_peaks(args, meta, f"after {model}")

    sweeps = run_sweeps(args, results, env, log, failed) if args.sweep else []
    if sweeps:
        remeasure_peaks(args, meta, "after the sweep")
    write_report(meta, results, failed, out, sweeps)
    print(
        f"bench: wrote {out / 'results.md'}, results.json, readme-table.md, latency.png"
        + (", scaling.png" if sweeps else "")
    )
    print((out / "results.md").read_text())
    if failed:
        print("bench: FAILED:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
