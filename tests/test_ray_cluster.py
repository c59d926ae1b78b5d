"""``vitc eval --ray ADDRESS`` as a cluster user runs it, and the faults it must survive (issue 15).

A head started with ``ray start --head`` and a second node joined with ``ray start --address`` (both
on 127.0.0.1, one CPU each, in a temporary folder), then ``vitc eval --ray 127.0.0.1:PORT``:

- a worker process SIGKILLed mid-run: the evaluation completes, every image counted once;
- the driver interrupted mid-run: its output resumes to the same result as one clean run.

The workers' forward is slowed by a ``sitecustomize`` on the nodes' PYTHONPATH, so a run lasts long
enough to be hit mid-way. The cluster's processes are all in one session of their own; the test ends
them by that session id (``ray stop`` would end every Ray on the machine, other users' included).
About a minute in all: a tiny model, 20 images.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from eval_factory import write_corrupt, write_image_folder
from factories import make_checkpoint

from vitc.eval import evaluate
from vitc.eval.output import read_output

PROB_ATOL = 2e-6
START_TIMEOUT = 180  # seconds for `ray start` (a loaded CI machine is slow to start Ray's daemons)
RUN_TIMEOUT = 300
FORWARD_SLEEP = 0.3  # seconds per batch in the workers

# Imported by every Python process of the nodes: slows vitc's forward once vitc.model is imported.
SITECUSTOMIZE = """
import importlib.abc, importlib.util, os, sys, time
SLEEP = float(os.environ.get("VITC_TEST_FORWARD_SLEEP", "0"))

class _SlowForward(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "vitc.model":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            forward = module.ViT.__call__

            def slow(self, *args, **kwargs):
                time.sleep(SLEEP)
                return forward(self, *args, **kwargs)

            module.ViT.__call__ = slow

        spec.loader.exec_module = exec_module
        return spec

if SLEEP:
    sys.meta_path.insert(0, _SlowForward())
"""
# `ray` of this interpreter (its workers then run this Python, which imports this vitc).
RAY = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A two-node Ray cluster on 127.0.0.1, started as a user would, stopped by session id."""

    def __init__(self, root: Path):
        self.root = root
        self.sessions: list[int] = []
        hook = root / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",  # token auth would need the token on each node: not the point here
        }
        self.node_env = {**self.env, "PYTHONPATH": str(hook), "VITC_TEST_FORWARD_SLEEP": str(FORWARD_SLEEP)}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def _ray(self, *args: str) -> None:
        proc = subprocess.Popen(
            [*RAY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.node_env,
            start_new_session=True,  # the daemons it leaves are in this session: see stop()
        )
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=START_TIMEOUT)
        assert proc.returncode == 0, f"ray {' '.join(args)} failed:\n{out.decode(errors='replace')[-3000:]}"

    def start(self) -> None:
        common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        self._ray("start", "--head", f"--port={self.port}", f"--temp-dir={self.root / 'ray'}",
                  "--include-dashboard=false", *common)
        self._ray("start", f"--address={self.address}", *common)

    def processes(self, word: str = "") -> list:
        import psutil

        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if os.getsid(p.pid) in self.sessions and word in " ".join(p.info["cmdline"] or []):
                    found.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return found

    def stop(self) -> None:
        import psutil

        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    c = Cluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A tiny model, 20 images (one corrupt) and the single-process result and output to compare with."""
    root = tmp_path_factory.mktemp("job")
    make_checkpoint(root / "model")
    data = write_image_folder(root / "val", {f"LABEL_{c}": 5 for c in (0, 3, 4, 8)})
    write_corrupt(data / "LABEL_3" / "broken.png")
    single = root / "single.jsonl"
    result = evaluate(root / "model", data, output=single, progress=False).to_dict()
    return root, data, single, without_timing(result)


def without_timing(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "images_per_second")}


def driver(cluster: Cluster, job, out: Path) -> subprocess.Popen:
    root, data, _, _ = job
    argv = ["eval", "--model", str(root / "model"), str(data), "--ray", cluster.address, "--workers", "2",
            "-b", "2", "-o", str(out), "--json", "--no-progress"]
    return subprocess.Popen([sys.executable, "-m", "vitc", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cluster.env)


def wait_for_records(proc: subprocess.Popen, out: Path, n: int) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (out.exists() and out.read_bytes().count(b"\n") >= 1 + n):
        assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"the driver wrote no {n} records in {RUN_TIMEOUT} s"
        time.sleep(0.05)


def assert_same_as_single(job, out: Path, printed: str) -> None:
    _, _, single, expected = job
    assert without_timing(json.loads(printed)) == expected
    _, records, _ = read_output(out)  # each image once (read_output refuses a repeated image)
    _, reference, _ = read_output(single)
    a = sorted(records, key=lambda r: r["index"])
    b = sorted(reference, key=lambda r: r["index"])
    assert [(r["index"], r["path"], r["label"], r.get("topk"), r.get("error")) for r in a] == [
        (r["index"], r["path"], r["label"], r.get("topk"), r.get("error")) for r in b
    ]
    for x, y in zip(a, b):
        if "probs" in x:
            np.testing.assert_allclose(x["probs"], y["probs"], atol=PROB_ATOL)


def test_a_killed_worker_costs_no_image_and_counts_none_twice(cluster, job, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = driver(cluster, job, out)
    try:
        wait_for_records(proc, out, 4)
        workers = cluster.processes("_Predictor")
        assert workers, "no vitc worker process found on the cluster"
        workers[0].kill()  # SIGKILL one worker mid-run
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert b"Traceback" not in stderr
    assert_same_as_single(job, out, stdout.decode())


def test_an_interrupted_driver_leaves_an_output_that_resumes(cluster, job, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = driver(cluster, job, out)
    try:
        wait_for_records(proc, out, 4)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    err = stderr.decode(errors="replace")
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert f"vitc eval: interrupted; {out} holds the images done" in err
    _, records, _ = read_output(out)
    assert 4 <= len(records) < 20
    assert not (tmp_path / "out.jsonl.lock").exists()
    proc = driver(cluster, job, out)  # the same command again: it resumes
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-3000:]
    assert_same_as_single(job, out, stdout.decode())
    assert read_output(out)[1][: len(records)] == records  # the old lines kept, the rest appended


def test_an_address_where_no_cluster_answers_is_refused_at_once(job, capsys):
    """ray.init retries a wrong address for minutes; vitc says at once that nothing answers there."""
    from vitc.cli import main

    root, data, _, _ = job
    port = free_port()  # nothing listens there
    assert main(["eval", "-m", str(root / "model"), str(data), "--ray", f"127.0.0.1:{port}", "--no-progress"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"vitc eval: error: --ray 127.0.0.1:{port}: no Ray cluster answers at 127.0.0.1:{port}")
    assert "ray start --head" in err
    import ray

    assert not ray.is_initialized()
