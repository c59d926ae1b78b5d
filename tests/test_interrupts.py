"""Ctrl-C, interpreter exit and fork around a running forward (issue 15, "Interrupts and exit").

Each case runs in a subprocess: a signal or an exit must not touch the test process. A forward
checks for a stop between its work items (one BLAS call, one attention head, one weight panel), the
main thread runs Python's signal handlers every few tens of milliseconds, and an exit hook stops
running calls and waits for them to leave vitc's code before the process tears OpenBLAS down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# A ViT-S/16 at 224 with random weights, and a batch large enough that one forward takes about
# TARGET_SECONDS on this machine (measured in the child, so the test scales with the machine).
MODEL = textwrap.dedent(
    """
    import json, math, os, signal, sys, threading, time
    import numpy as np
    import vitc
    from vitc.config import ViTConfig
    from vitc.weights import expected_shapes

    TARGET_SECONDS = 3.0
    cfg = ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                    image_size=224, patch_size=16, id2label={i: str(i) for i in range(10)})
    rng = np.random.default_rng(0)
    tensors = {k: (rng.standard_normal(s) * 0.02).astype(np.float32)
               for k, s in expected_shapes(cfg, head=True, pooler=False).items()}
    dtype = sys.argv[1] if len(sys.argv) > 1 else "float32"
    model = vitc.ViT(cfg, tensors, dtype=dtype)

    def images(n):
        return np.random.default_rng(1).standard_normal((n, 3, 224, 224)).astype(np.float32)
    """
)


def run(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", MODEL + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_ctrl_c_stops_a_forward_and_the_model_stays_usable(dtype):
    code = """
    t0 = time.perf_counter(); model(images(1)); one = time.perf_counter() - t0
    x = images(max(1, min(64, math.ceil(TARGET_SECONDS / one))))
    t0 = time.perf_counter(); clean = model(x).logits; full = time.perf_counter() - t0
    threading.Timer(full / 10, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.perf_counter()
    try:
        model(x)
        interrupted = None
    except KeyboardInterrupt:
        interrupted = time.perf_counter() - t0
    again = model(x).logits
    print(json.dumps({"full": full, "interrupted": interrupted, "same": bool(np.array_equal(again, clean)),
                      "batch": len(x)}))
    """
    r = run(code, dtype)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["interrupted"] is not None, result  # KeyboardInterrupt reached the caller
    # Sent at a tenth of the forward; arrived long before the forward would have ended.
    assert result["interrupted"] < result["full"] / 3, result
    assert result["same"], result  # the model runs again, with the same logits as a clean run


def test_interrupt_of_a_forward_in_another_thread_is_not_lost():
    """Ctrl-C while a worker thread runs a forward: the main thread gets KeyboardInterrupt, the
    worker's forward completes normally (Python delivers signals to the main thread only)."""
    code = """
    x = images(2)
    clean = model(x).logits
    out = {}
    def work():
        out["logits"] = model(x).logits
    th = threading.Thread(target=work); th.start()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        print(json.dumps({"interrupted": False}))
    except KeyboardInterrupt:
        th.join()
        print(json.dumps({"interrupted": True, "same": bool(np.array_equal(out["logits"], clean))}))
    """
    r = run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[-1]) == {"interrupted": True, "same": True}


EXIT_DURING_FORWARD = """
x = images(2)
def forwards():
    while True:
        model(x)
def attention():
    q = np.random.default_rng(2).standard_normal((8, 197, 64)).astype(np.float32)
    while True:
        vitc.attention(q, q, q, 0.125)
for target in (forwards, forwards, attention):  # two forwards: one owns vitc's pool, one runs serially
    threading.Thread(target=target, daemon=True).start()
time.sleep(float(sys.argv[2]))
print("exiting", flush=True)
"""


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_exit_while_daemon_threads_run_forwards(dtype):
    """The interpreter exits while daemon threads are inside vitc: no crash (it segfaulted, or hung
    in OpenBLAS's teardown, before the exit hook), several times at different moments."""
    for i in range(6):
        r = run(EXIT_DURING_FORWARD, dtype, str(0.05 + 0.1 * i), timeout=120)
        assert r.returncode == 0, (i, r.returncode, r.stderr[-3000:])
        assert r.stdout.strip().endswith("exiting")


def test_calls_after_the_exit_hook_are_refused():
    """A forward started after vitc's exit hook ran (another atexit callback, a daemon thread) is
    refused instead of racing the teardown."""
    code = """
    from vitc import _core
    assert _core._at_exit() is True
    try:
        model(images(1))
    except RuntimeError as e:
        print(e)
    try:
        vitc.gelu(np.ones(3, np.float32))
    except RuntimeError as e:
        print(e)
    """
    r = run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[-2:] == [
        "forward: the interpreter is exiting",
        "gelu: stopped: the interpreter is exiting",
    ]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_while_a_thread_runs_a_forward():
    """A child forked while another thread is inside a forward (holding vitc's pool and locks) runs
    forwards of its own and exits normally."""
    code = """
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: what this tests
    x = images(2)
    clean = model(x).logits
    def forwards():
        while True:
            model(x)
    threading.Thread(target=forwards, daemon=True).start()
    statuses = []
    for delay in (0.05, 0.2, 0.4):
        time.sleep(delay)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(model(x).logits, clean) and np.array_equal(model(x).logits, clean)
            sys.exit(0 if ok else 3)  # a normal exit: atexit hooks run in the child too
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(json.dumps(statuses))
    """
    r = run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.splitlines()[-1]) == [0, 0, 0]
