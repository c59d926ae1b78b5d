"""Leak tests: repeated ufunc calls (including their error paths) and forward passes keep resident
memory, Python allocations and reference counts flat.

Each check runs a warm-up first (NumPy caches, the BLAS thread pool, vitc's workspaces), then measures
N more calls. A leak of one small array per call would show as N * nbytes; the slack constants are
far below that and far above allocator noise.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import numpy as np
import psutil
import pytest
from factories import make_checkpoint

import vitc

UFUNC_CALLS = 1000
FORWARD_CALLS = 200
WARMUP = 50
RSS_SLACK = 4 << 20  # bytes; a 64 kB leak per call would be 64 MB over 1000 calls
TRACED_SLACK = 256 << 10  # Python-level allocations surviving the loop
ROWS, COLS = 64, 256  # one 64 kB float32 array per call: a leaked output is easy to see


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def assert_flat(call, n: int, what: str) -> None:
    """Run call() WARMUP times, then n times; RSS and traced Python memory must not grow."""
    for _ in range(WARMUP):
        call()
    tracemalloc.start()
    before_rss = rss()
    snap0 = tracemalloc.take_snapshot()
    for _ in range(n):
        call()
    after_rss = rss()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert after_rss - before_rss < RSS_SLACK, f"{what}: RSS grew {after_rss - before_rss} bytes over {n} calls"
    assert grown < TRACED_SLACK, f"{what}: Python allocations grew {grown} bytes over {n} calls"


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def ufunc_calls() -> dict:
    g = rng()
    x = g.standard_normal((ROWS, COLS)).astype(np.float32)
    xt = np.asfortranarray(x)  # non-contiguous path: scratch copies
    w = g.standard_normal((COLS, COLS)).astype(np.float32)
    b = g.standard_normal(COLS).astype(np.float32)
    q = g.standard_normal((ROWS, 32)).astype(np.float32)
    out = np.empty_like(x)
    bad = np.ones((2, 5), np.float32)
    return {
        "gelu": lambda: vitc.gelu(x),
        "gelu_out": lambda: vitc.gelu(x, out=out),
        "gelu_tanh": lambda: vitc.gelu_tanh(xt),
        "layer_norm": lambda: vitc.layer_norm(x, b, b, 1e-5),
        "layer_norm_f64": lambda: vitc.layer_norm(x.astype(np.float64), b, b, 1e-5),
        "softmax": lambda: vitc.softmax(xt),
        "linear": lambda: vitc.linear(x, w, b),
        "linear_strided": lambda: vitc.linear(xt[:, ::2], w[:, ::2], b),
        "attention": lambda: vitc.attention(q, q, q, 0.125),
        "mlp": lambda: vitc.mlp(x, w, b, w, b),
    }, {
        "linear_shape_error": (
            lambda: vitc.linear(bad, np.ones((3, 4), np.float32), np.ones(3, np.float32)),
            ValueError,
        ),
        "layer_norm_shape_error": (lambda: vitc.layer_norm(x, b[:3], b, 1e-5), ValueError),
        "softmax_empty_rows": (lambda: vitc.softmax(np.ones((3, 0), np.float32)), ValueError),
        "gelu_bad_dtype": (lambda: vitc.gelu(np.ones(4, np.int64)), TypeError),
        "mlp_bad_dtype": (lambda: vitc.mlp(x.astype(np.complex64), w, b, w, b), TypeError),
        "attention_shape_error": (lambda: vitc.attention(q, q[:, :8], q, 1.0), ValueError),
        "linear_scratch_oom": (
            lambda: vitc.linear(
                np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1 << 20, 1 << 30), strides=(0, 0)),
                np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(1, 1 << 30), strides=(0, 0)),
                np.zeros(1, np.float32),
            ),
            MemoryError,
        ),
    }


OK_CALLS, ERROR_CALLS = ufunc_calls()


@pytest.mark.parametrize("name", sorted(OK_CALLS))
def test_ufunc_does_not_leak(name):
    assert_flat(OK_CALLS[name], UFUNC_CALLS, name)


@pytest.mark.parametrize("name", sorted(ERROR_CALLS))
def test_ufunc_error_path_does_not_leak(name):
    call, err = ERROR_CALLS[name]

    def failing():
        try:
            call()
        except err:
            return
        raise AssertionError(f"{name}: expected {err.__name__}")

    assert_flat(failing, UFUNC_CALLS, name)


def test_ufunc_refcounts_flat():
    """Inputs are not retained or over-released; outputs are owned only by the caller."""
    g = rng()
    x = g.standard_normal((8, 16)).astype(np.float32)
    w = g.standard_normal((16, 16)).astype(np.float32)
    b = np.zeros(16, np.float32)
    out = np.empty_like(x)
    before = [sys.getrefcount(a) for a in (x, w, b, out)]
    for _ in range(UFUNC_CALLS):
        count = sys.getrefcount(vitc.mlp(x, w, b, w, b))
        assert count == 1  # only getrefcount's argument: the result is owned by nobody else
        r = vitc.linear(x, w, b, out=out)
        assert r is out
        del r
        vitc.layer_norm(x, b, b, 1e-5)
        vitc.attention(x, x, x, 0.25)
    assert [sys.getrefcount(a) for a in (x, w, b, out)] == before


MODEL_DTYPES = ("float32", "bfloat16", "int8")  # weight modes: each has its own packed kernels


@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leak")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def small_model(checkpoint_folder):
    return vitc.ViT.from_pretrained(checkpoint_folder)


@pytest.mark.parametrize("dtype", MODEL_DTYPES)
def test_forward_does_not_leak(checkpoint_folder, dtype):
    model = vitc.ViT.from_pretrained(checkpoint_folder, dtype=dtype)
    assert model.dtype == dtype
    x = rng().standard_normal((2, 3, 30, 30)).astype(np.float32)
    assert_flat(lambda: model(x), FORWARD_CALLS, f"{dtype} forward")
    assert_flat(
        lambda: model(x, output_hidden_states=True, output_attentions=True),
        FORWARD_CALLS,
        f"{dtype} forward with hidden states and attentions",
    )


def test_forward_error_path_does_not_leak(small_model):
    bad = np.ones((1, 3, 31, 31), np.float32)

    def failing():
        with pytest.raises(ValueError):
            small_model(bad)

    assert_flat(failing, FORWARD_CALLS, "forward error")


def test_forward_refcounts_flat(small_model):
    x = rng().standard_normal((1, 3, 30, 30)).astype(np.float32)
    small_model(x)  # the first forward packs the float32 GEMM weights (they replace the originals)
    weights = list(small_model._model.tensors.values())  # what the C model reads on every call
    before_x = sys.getrefcount(x)
    before_w = [sys.getrefcount(a) for a in weights if a is not None]
    for _ in range(FORWARD_CALLS):
        out = small_model(x)
        # computed outside `assert`: pytest's assertion rewriting keeps temporaries alive
        counts = (sys.getrefcount(out.logits), sys.getrefcount(out.last_hidden_state))
        assert counts == (2, 2)  # the ViTOutput's reference + getrefcount's argument
    del out
    assert sys.getrefcount(x) == before_x
    assert [sys.getrefcount(a) for a in weights if a is not None] == before_w


def test_from_pretrained_does_not_leak(tmp_path):
    """Loading (memory maps, readers) repeatedly releases everything, including after errors."""
    make_checkpoint(tmp_path / "m")
    vitc.convert(tmp_path / "m", tmp_path / "m.vitc", progress=False)
    (tmp_path / "bad.vitc").write_bytes((tmp_path / "m.vitc").read_bytes()[:-4])

    def load():
        vitc.ViT.from_pretrained(tmp_path / "m.vitc")
        with pytest.raises(ValueError):
            vitc.ViT.from_pretrained(tmp_path / "bad.vitc")

    assert_flat(load, 200, "from_pretrained")
