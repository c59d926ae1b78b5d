#!/usr/bin/env python
"""Fault injection for vitc's runs: what a user's work survives (issue 15).

    python tools/fault_inject.py [--rounds N] [--seed S] [--dir DIR] [--keep] [--only SCENARIO ...]

Runs real ``vitc predict`` / ``vitc eval`` / ``vitc convert`` processes (a forward slowed by a sleep, so
a signal can land anywhere in a run) and, per round, one randomly chosen fault:

- ``predict-signal``: SIGINT, SIGTERM or SIGKILL at a random moment of ``vitc predict [--json]``;
- ``eval-signal``: the same on ``vitc eval -o OUT``, then the run is resumed;
- ``eval-concurrent``: a second ``vitc eval`` on the same OUT while the first runs (the first
  sometimes SIGKILLed), then resumed;
- ``eval-damaged-output``: a finished or killed output damaged before a resume or a merge
  (truncated at a random byte, a byte flipped, a garbage / duplicated / deleted line, a label of -1
  or num_labels, a header field of the wrong type, an incomplete line appended);
- ``damaged-images``: images of the dataset truncated, zeroed, flipped, replaced by text, deleted,
  replaced by a folder or a symlink loop, then ``vitc eval`` and ``vitc predict`` on them;
- ``convert-signal``: SIGINT, SIGTERM or SIGKILL at a random moment of ``vitc convert`` over an
  existing destination.

Invariants checked after each round (a broken one is a finding):

- no Python traceback on stderr, no hang (every process ends within a timeout);
- exit statuses mean something: 0 done, 1 a reported error (one line naming it), 130 after SIGINT,
  -15 / -9 after SIGTERM / SIGKILL;
- ``vitc predict`` output is whole lines, in input order, each equal to a clean run's; every image
  it cannot read is reported on stderr with its kind;
- an eval output is always either absent or valid (a header and whole records, each image at
  most once; only a kill may leave an incomplete last line); a resumed run ends with the same
  result and the same records as a clean run, leaving no lock or temporary file;
- two writers never share an output: the second is refused with a message, or starts after the
  first ended;
- a damaged output is refused (status 1, the file and line named, the file left as it was) or, for
  damage that only loses lines, recomputed to the clean result; a flipped byte inside a value that
  stays a valid value cannot be told apart and is counted ("accepted a changed value");
- a damaged image is an error record (or an evaluated image), never the end of a run;
- a ``.vitc`` destination is always the old file or the complete new one.

A Python ``KeyboardInterrupt`` traceback when SIGINT lands while the interpreter is still importing
vitc (before ``vitc.cli.main`` runs; nothing is written yet) is counted apart as ``startup``.

Needs the test extra (transformers and torch write the checkpoint ``convert`` reads). Exit status 0
if no invariant broke, 1 otherwise; the summary lists each scenario's runs and outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A child running `vitc ARGS...` with every forward slowed by VITC_FAULT_SLEEP seconds.
CHILD = """
import os, sys, time
sleep = float(os.environ.get("VITC_FAULT_SLEEP", "0"))
if sleep:
    import vitc.model
    forward = vitc.model.ViT.__call__
    def slow(self, *args, **kwargs):
        time.sleep(sleep)
        return forward(self, *args, **kwargs)
    vitc.model.ViT.__call__ = slow
import vitc.cli
sys.exit(vitc.cli.main(sys.argv[1:]))
"""
TIMEOUT = 180  # seconds any one child may take before it counts as a hang
PROB_ATOL = 2e-6
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
# After SIGINT: 130 from vitc's handler, or -2 when it lands while Python's handler is not installed
# (the interpreter starting or tearing down: the default action, as for any program).
EXPECTED_STATUS = {signal.SIGINT: {130, -2}, signal.SIGTERM: {-15, 143}, signal.SIGKILL: {-9}}
TRACEBACK = "Traceback (most recent call last)"


class Finding(Exception):
    """An invariant that broke."""


class Run:
    def __init__(self, argv, rc, out, err, seconds, sig=None, delay=None):
        self.argv, self.rc, self.out, self.err, self.seconds = argv, rc, out, err, seconds
        self.sig, self.delay = sig, delay

    def describe(self) -> str:
        sent = f", {signal.Signals(self.sig).name} after {self.delay:.2f} s" if self.sig else ""
        return f"vitc {' '.join(self.argv)} (status {self.rc}{sent})\nstderr: {self.err[-1500:]}"


def run_vitc(argv, sleep=0.0, sig=None, delay=None, env=None, cwd=None) -> Run:
    """Run vitc ARGV in a child; send ``sig`` after ``delay`` seconds if it still runs."""
    child_env = dict(os.environ, VITC_FAULT_SLEEP=str(sleep), **(env or {}))
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
        cwd=cwd,
    )
    sent = None
    if sig is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            sent = sig
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise Finding(f"hang: vitc {' '.join(map(str, argv))} still ran after {TIMEOUT} s") from None
    return Run([str(a) for a in argv], proc.returncode, out.decode(errors="replace"),
               err.decode(errors="replace"), time.monotonic() - start, sent, delay)


def startup_interrupt(run: Run) -> bool:
    """SIGINT while the interpreter still imported vitc (before ``vitc.cli.main`` ran): Python's own
    KeyboardInterrupt traceback (or an ImportError that NumPy's C import made of it)."""
    return (
        run.sig == signal.SIGINT
        and TRACEBACK in run.err
        and "KeyboardInterrupt" in run.err
        # (site.py's own main() runs the .pth files at startup: only vitc's main means vitc ran)
        and re.search(r'vitc[/\\]cli\.py", line \d+, in main\n', run.err) is None
        and run.out == ""
    )


def check_status(run: Run, allowed=(0,)) -> None:
    if TRACEBACK in run.err:
        raise Finding(f"traceback: {run.describe()}")
    ok = set(allowed) | (EXPECTED_STATUS.get(run.sig, set()) if run.sig else set())
    if run.rc not in ok:
        raise Finding(f"exit status {run.rc}, expected one of {sorted(ok)}: {run.describe()}")


# ---------------------------------------------------------------------------------------------
# Eval outputs


def read_lines(path: Path):
    """(header, records, incomplete tail) of an output, checked as vitc's own reader does."""
    sys.path.insert(0, str(REPO))
    from vitc.eval.output import parse_output

    c = parse_output(path)
    return c.header, c.records, c.partial_line is not None


def same_records(a, b) -> str | None:
    ra, rb = {r["index"]: r for r in a}, {r["index"]: r for r in b}
    if sorted(ra) != sorted(rb):
        return f"images differ: {len(ra)} vs {len(rb)} records, {sorted(set(ra) ^ set(rb))[:10]}"
    for i, x in ra.items():
        y = rb[i]
        if (x["path"], x["label"], x.get("topk"), x.get("error"), x.get("kind")) != (
            y["path"], y["label"], y.get("topk"), y.get("error"), y.get("kind")
        ):
            return f"record {i} differs: {x} vs {y}"
        if "probs" in x and max(abs(p - q) for p, q in zip(x["probs"], y["probs"])) > PROB_ATOL:
            return f"record {i} probabilities differ: {x['probs']} vs {y['probs']}"
    return None


def without_timing(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("seconds", "images_per_second")}


def leftovers(out: Path) -> list[str]:
    return sorted(
        p.name for p in out.parent.iterdir()
        if p.name.startswith(f".{out.name}.") or p.name == out.name + ".lock"
    )


class Workspace:
    """The model, dataset and clean reference runs every scenario compares with."""

    def __init__(self, root: Path, rng: random.Random):
        from PIL import Image

        from vitc.default_model import DEFAULT_MODEL_PATH, sample_images

        self.root, self.rng = root, rng
        self.model = Path(DEFAULT_MODEL_PATH)
        self.data = root / "val"
        images = sample_images()
        for i in range(3):  # 30 digits in their class folders, 10 classes
            for p in images:
                d = self.data / f"digit {p.name.split('_')[1]}"
                d.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, d / f"{i}_{p.name}")
        noise = random.Random(1)
        for i in range(12):  # and a few RGB noise images of other sizes
            side = noise.randint(12, 40)
            img = Image.frombytes("RGB", (side, side), bytes(noise.randrange(256) for _ in range(3 * side * side)))
            img.save(self.data / f"digit {i % 10}" / f"noise_{i}.png")
        self.images = sorted(str(p) for p in self.data.rglob("*.png"))
        self.eval_args = ["eval", "--model", self.model, self.data, "-b", "2", "--json", "--no-progress"]
        clean_out = root / "clean.jsonl"
        run = run_vitc([*self.eval_args, "-o", clean_out])
        check_status(run)
        self.clean_result = without_timing(json.loads(run.out))
        self.clean_header, self.clean_records, _ = read_lines(clean_out)
        self.clean_output = clean_out.read_bytes()
        run = run_vitc(["predict", "--model", self.model, "--json", "-b", "2", "-k", "3", *self.images])
        check_status(run)
        self.clean_predict = run.out.splitlines()
        # How long the slowed runs take: signals are sent at a random moment within that.
        self.eval_seconds = run_vitc([*self.eval_args, "-o", root / "timing.jsonl"], sleep=0.05).seconds
        self.predict_seconds = run_vitc(["predict", "--model", self.model, "-b", "2", *self.images], sleep=0.05).seconds
        self.hf = root / "hf"
        sys.path.insert(0, str(REPO / "tests"))
        from factories import write_default_hf

        write_default_hf(self.hf)
        self.converted = root / "clean.vitc"
        run = run_vitc(["convert", self.hf, self.converted])
        check_status(run)
        self.convert_seconds = run.seconds
        print(f"clean runs: eval {self.eval_seconds:.1f} s, predict {self.predict_seconds:.1f} s (forward slowed), "
              f"convert {self.convert_seconds:.1f} s: signals land within these", flush=True)

    def fresh(self, name: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=name + "-", dir=self.root))
        return d / "out.jsonl"


def check_eval_output(out: Path, run: Run) -> str:
    """An output after an interrupted run: absent, or valid; returns a word for the state."""
    if not out.exists():
        return "absent"
    try:
        header, records, partial = read_lines(out)
    except ValueError as e:
        raise Finding(f"an interrupted run left an invalid output: {e}\n{run.describe()}") from None
    if partial and run.sig not in (signal.SIGKILL, signal.SIGTERM):
        raise Finding(f"an incomplete last line after {run.sig}: {run.describe()}")
    if run.sig == signal.SIGINT and run.rc == 130 and (out.parent / (out.name + ".lock")).exists():
        raise Finding(f"SIGINT left the lock file behind: {run.describe()}")
    return "partial" if partial else ("complete" if header and len(records) else "empty")


def resume_and_compare(ws: Workspace, out: Path, note: str) -> None:
    run = run_vitc([*ws.eval_args, "-o", out])
    check_status(run)
    result = without_timing(json.loads(run.out))
    if result != ws.clean_result:
        raise Finding(f"{note}: the resumed result differs from a clean run's:\n{result}\nvs\n{ws.clean_result}")
    _, records, partial = read_lines(out)
    diff = same_records(records, ws.clean_records)
    if diff or partial:
        raise Finding(f"{note}: the resumed output differs from a clean run's: {diff or 'incomplete last line'}")
    if leftovers(out):
        raise Finding(f"{note}: the resumed run left {leftovers(out)} beside the output")


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns an outcome word, or raises Finding


def predict_signal(ws: Workspace) -> str:
    sig = ws.rng.choice(list(SIGNALS.values()))
    as_json = ws.rng.random() < 0.5
    delay = ws.rng.uniform(0, 0.8 * ws.predict_seconds)
    argv = ["predict", "--model", ws.model, "-b", "2", "-k", "3", *(["--json"] if as_json else []), *ws.images]
    run = run_vitc(argv, sleep=0.05, sig=sig, delay=delay)
    if startup_interrupt(run):
        return "startup"
    check_status(run)
    if run.out and not run.out.endswith("\n"):
        raise Finding(f"an incomplete line on stdout: {run.out[-200:]!r}\n{run.describe()}")
    if as_json:
        lines = run.out.splitlines()
        if lines != ws.clean_predict[: len(lines)]:
            raise Finding(f"printed lines differ from a clean run's (order or values)\n{run.describe()}")
        for line in lines:
            json.loads(line)
        done = len(lines)
    else:
        blocks = [b for b in run.out.split("\n") if b and not b.startswith(" ")]
        if blocks != ws.images[: len(blocks)]:
            raise Finding(f"printed images are not a prefix of the input\n{run.describe()}")
        if run.out and len(run.out.rstrip("\n").split("\n")) != 4 * len(blocks):
            raise Finding(f"a text block was cut short: {run.out[-300:]!r}\n{run.describe()}")
        done = len(blocks)
    if run.rc == 130 and "vitc predict: interrupted" not in run.err:
        raise Finding(f"SIGINT without the 'interrupted' line\n{run.describe()}")
    return "finished" if run.rc == 0 else f"{signal.Signals(run.sig).name}: {'some' if done else 'no'} lines"


def eval_signal(ws: Workspace) -> str:
    sig = ws.rng.choice(list(SIGNALS.values()))
    out = ws.fresh("signal")
    if ws.rng.random() < 0.3:  # interrupt a resumed run too
        out.write_bytes(ws.clean_output[: ws.clean_output.find(b"\n", len(ws.clean_output) // 3) + 1])
    run = run_vitc([*ws.eval_args, "-o", out], sleep=0.05, sig=sig, delay=ws.rng.uniform(0, 0.8 * ws.eval_seconds))
    if startup_interrupt(run):
        return "startup"
    check_status(run)
    if run.rc == 130 and "vitc eval: interrupted" not in run.err:
        raise Finding(f"SIGINT without the 'interrupted' line\n{run.describe()}")
    state = check_eval_output(out, run)
    resume_and_compare(ws, out, f"after {signal.Signals(sig).name}")
    return "finished" if run.rc == 0 else f"{signal.Signals(sig).name}, output {state}, resumed"


def eval_concurrent(ws: Workspace) -> str:
    out = ws.fresh("concurrent")
    cmd = [sys.executable, "-c", CHILD, *map(str, [*ws.eval_args, "-o", out])]
    env = dict(os.environ, VITC_FAULT_SLEEP="0.05")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(ws.rng.uniform(0, 0.5 * ws.eval_seconds))
    kill_first = ws.rng.random() < 0.4
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if kill_first:
        time.sleep(ws.rng.uniform(0, 0.3 * ws.eval_seconds))
        first.kill()
    outcomes = []
    for proc, name in ((first, "first"), (second, "second")):
        try:
            o, e = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise Finding(f"hang: the {name} of two concurrent vitc eval runs") from None
        err = e.decode(errors="replace")
        if TRACEBACK in err:
            raise Finding(f"traceback in the {name} concurrent run: {err[-1500:]}")
        if proc.returncode == 1:
            if "another evaluation" not in err:
                raise Finding(f"the {name} run failed without saying another run writes the output: {err}")
            outcomes.append("refused")
        elif proc.returncode == 0:
            outcomes.append("ran")
        elif proc.returncode == -9 and name == "first" and kill_first:
            outcomes.append("killed")
        else:
            raise Finding(f"the {name} concurrent run ended with status {proc.returncode}: {err[-1500:]}")
    try:
        read_lines(out)
    except ValueError as e:
        raise Finding(f"two writers corrupted the output: {e}") from None
    resume_and_compare(ws, out, "after two concurrent writers")
    return "+".join(outcomes)


def _damage(ws: Workspace, data: bytes) -> tuple[str, bytes]:
    lines = data.splitlines(keepends=True)
    rng = ws.rng
    ops = ["truncate", "flip", "garbage", "duplicate", "delete", "label-1", "label-K", "header-type", "partial"]
    op = rng.choice(ops)
    if op == "truncate":
        return op, data[: rng.randrange(len(data))]
    if op == "flip":
        b = bytearray(data)
        i = rng.randrange(len(b))
        b[i] ^= rng.randrange(1, 256)
        return op, bytes(b)
    records = list(range(1, len(lines)))
    if op == "partial":
        return op, data + b'{"index": 3, "pa'
    if not records:
        return "truncate", data[: len(data) // 2]
    i = rng.choice(records)
    if op == "garbage":
        lines.insert(i, b"this is not json\n")
    elif op == "duplicate":
        lines.insert(i, lines[i])
    elif op == "delete":
        del lines[i]
    elif op in ("label-1", "label-K"):
        r = json.loads(lines[i])
        r["label"] = -1 if op == "label-1" else len(ws.clean_header["labels"])
        lines[i] = (json.dumps(r) + "\n").encode()
    elif op == "header-type":
        h = json.loads(lines[0])
        key = rng.choice(["num_labels", "labels", "top_k", "shard", "dataset_size"])
        h[key] = "oops"
        lines[0] = (json.dumps(h) + "\n").encode()
    return op, b"".join(lines)


# Damage that only loses lines: a resume must recompute them and end with the clean result.
BENIGN = {"truncate", "delete", "partial"}


def eval_damaged_output(ws: Workspace) -> str:
    out = ws.fresh("damaged")
    merging = ws.rng.random() < 0.3
    if merging:  # damage one of two shards, then merge them
        shards = [out.with_name(f"s{i}.jsonl") for i in range(2)]
        for i, s in enumerate(shards):
            check_status(run_vitc([*ws.eval_args, "--shard", f"{i}/2", "-o", s]))
        target = ws.rng.choice(shards)
    else:
        out.write_bytes(ws.clean_output)
        target = out
    op, damaged = _damage(ws, target.read_bytes())
    target.write_bytes(damaged)
    if merging:
        run = run_vitc(["eval", "--merge", *shards, "--json", "-o", out])
    else:
        run = run_vitc([*ws.eval_args, "-o", out])
    check_status(run, allowed=(0, 1))
    if run.rc == 1:
        if target.read_bytes() != damaged:
            raise Finding(f"a refused {op} damage changed the file\n{run.describe()}")
        lines = run.err.strip().splitlines()
        if len(lines) != 1 or str(target) not in lines[0]:
            raise Finding(f"refusing {op} damage: expected one line naming {target}\n{run.describe()}")
        if op not in ("truncate", "flip", "header-type") and f"{target}:" not in lines[0]:
            raise Finding(f"refusing {op} damage: the line number is not named\n{run.describe()}")
        if op in BENIGN and not merging:
            raise Finding(f"{op} only loses lines, yet the resume was refused\n{run.describe()}")
        return f"{op}: refused"
    result = without_timing(json.loads(run.out))
    _, records, partial = read_lines(out)
    if partial or len({r["index"] for r in records}) != len(records):
        raise Finding(f"{op}: an accepted damaged file gave an invalid output\n{run.describe()}")
    if merging:
        if op in BENIGN:
            return f"{op}: merged with the lost images missing ({result['missing']})"
        clean = {k: v for k, v in ws.clean_result.items() if k not in ("seconds", "images_per_second")}
        return f"{op}: merged" + ("" if result == clean else " (accepted a changed value)")
    if result == ws.clean_result and not same_records(records, ws.clean_records):
        return f"{op}: recovered"
    if op in BENIGN:
        raise Finding(f"{op}: the resumed result differs from a clean run's\n{run.describe()}")
    if op != "flip":
        raise Finding(f"{op}: a damaged output was accepted\n{run.describe()}")
    return f"{op}: accepted a changed value"


def damaged_images(ws: Workspace) -> str:
    data = Path(tempfile.mkdtemp(prefix="images-", dir=ws.root)) / "val"
    shutil.copytree(ws.data, data)
    files = sorted(data.rglob("*.png"))
    expected = {}
    for p in ws.rng.sample(files, 5):
        op = ws.rng.choice(["truncate", "zero", "flip", "text", "delete", "folder", "loop"])
        raw = p.read_bytes()
        if op == "truncate":
            p.write_bytes(raw[: ws.rng.randrange(8, max(9, len(raw) - 1))])
        elif op == "zero":
            p.write_bytes(b"")
        elif op == "flip":
            b = bytearray(raw)
            for _ in range(4):
                i = ws.rng.randrange(len(b))
                b[i] ^= ws.rng.randrange(1, 256)
            p.write_bytes(bytes(b))
        elif op == "text":
            p.write_text("not an image")
        elif op == "delete":
            p.unlink()
            continue  # gone from the folder: not an image of the dataset any more
        elif op == "folder":
            p.unlink()
            p.mkdir()
            continue  # a folder is walked, not an image
        elif op == "loop":
            p.unlink()
            p.symlink_to(p.name)
        expected[p.relative_to(data).as_posix()] = op
    out = data.parent / "out.jsonl"
    run = run_vitc(["eval", "--model", ws.model, data, "-b", "2", "--json", "--no-progress", "-o", out])
    check_status(run)
    result = json.loads(run.out)
    n = len(list(data.rglob("*.png")))
    if result["evaluated"] + result["corrupt"] != result["total"] or result["missing"]:
        raise Finding(f"damaged images: counts do not add up: {result}")
    bad = set(result["corrupt_files"])
    if not bad <= set(expected):
        raise Finding(f"damaged images: undamaged images reported as errors: {sorted(bad - set(expected))}")
    _, records, _ = read_lines(out)
    if any("error" in r and "kind" not in r for r in records):
        raise Finding("damaged images: an error record without its kind")
    images = sorted(str(p) for p in data.rglob("*.png") if p.is_file() or p.is_symlink())
    run = run_vitc(["predict", "--model", ws.model, "-b", "2", "--json", *images])
    check_status(run, allowed=(0, 1))
    printed = len(run.out.splitlines())
    reported = [line for line in run.err.splitlines() if line.startswith("vitc predict: error: ")]
    if printed + len(reported) != len(images) or (run.rc == 1) != bool(reported):
        raise Finding(f"damaged images: predict printed {printed} and reported {len(reported)} of {len(images)}"
                      f"\n{run.describe()}")
    kinds = Counter(r.get("kind") for r in records if "error" in r)
    return f"{n} images, {len(bad)} errors" + (f" ({', '.join(sorted(kinds))})" if kinds else "")


def convert_signal(ws: Workspace) -> str:
    dst = ws.fresh("convert").with_name("model.vitc")
    old = b"an older file at the destination"
    dst.write_bytes(old)
    sig = ws.rng.choice(list(SIGNALS.values()))
    run = run_vitc(["convert", ws.hf, dst], sig=sig, delay=ws.rng.uniform(0, 0.8 * ws.convert_seconds))
    if startup_interrupt(run):
        return "startup"
    check_status(run)
    now = dst.read_bytes()
    if now not in (old, ws.converted.read_bytes()):
        raise Finding(f"convert left a destination that is neither the old file nor the new one\n{run.describe()}")
    state = "old" if now == old else "new"
    again = run_vitc(["convert", ws.hf, dst])
    check_status(again)
    left = [p.name for p in dst.parent.iterdir() if p.name != dst.name]
    if left:
        raise Finding(f"convert after an interrupted convert left {left} beside the destination")
    return "finished" if run.rc == 0 else f"{signal.Signals(sig).name}: {state} file kept"


SCENARIOS = {
    "predict-signal": predict_signal,
    "eval-signal": eval_signal,
    "eval-concurrent": eval_concurrent,
    "eval-damaged-output": eval_damaged_output,
    "damaged-images": damaged_images,
    "convert-signal": convert_signal,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=36, help="faults to inject (default: 36, ~5 min on 2 cores)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time; printed)")
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None, help="run only these")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="vitc-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"fault injection: seed {seed}, {args.rounds} rounds, work folder {root}", flush=True)
    started = time.monotonic()
    findings: list[str] = []
    outcomes: dict[str, Counter] = defaultdict(Counter)
    try:
        ws = Workspace(root, rng)
        names = args.only or sorted(SCENARIOS)
        for i in range(args.rounds):
            name = names[i % len(names)] if i < len(names) else rng.choice(names)
            try:
                outcome = SCENARIOS[name](ws)
                outcomes[name][outcome] += 1
                print(f"[{i + 1}/{args.rounds}] {name}: {outcome}", flush=True)
            except Finding as f:
                findings.append(f"{name}: {f}")
                outcomes[name]["FINDING"] += 1
                print(f"[{i + 1}/{args.rounds}] {name}: FINDING {f}", flush=True)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n================ fault injection summary (seed {seed}, {time.monotonic() - started:.0f} s) ==========")
    for name in sorted(outcomes):
        counts = outcomes[name]
        print(f"{name}: {sum(counts.values())} runs")
        for outcome, n in sorted(counts.items()):
            print(f"    {n:3d}  {outcome}")
    print(f"findings: {len(findings)}")
    for f in findings:
        print(f"  - {f}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
