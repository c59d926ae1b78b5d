"""vitc's kernel ufuncs against their slow NumPy twins (vitc/reference.py) and against torch.

Covers dtypes, odd sizes, memory layouts, loop-dimension broadcasting, out= and aliasing, edge values,
shape and dtype errors, threads, GIL release and the thread-count setting.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vitc
from vitc import _core
from vitc import reference as _slow

KERNELS = ("gelu", "gelu_tanh", "layer_norm", "softmax", "linear", "attention", "mlp")
DTYPES = (np.float32, np.float64)
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}

# Element-wise vs the float64 reference: float32 within 16 ulp (measured worst case ~10 ulp for the
# AVX-512 erfc GELU), float64 within 1e-12; ATOL only absorbs results near the underflow limit.
ELEM_RTOL = {np.float32: 16 * 2.0**-23, np.float64: 1e-12}
ELEM_ATOL = {np.float32: 1e-30, np.float64: 1e-300}
# torch's float32 GELUs compute 1 + erf / 1 + tanh and lose ~|x| * 2^-24 absolutely for x < 0.
TORCH_ELEM_ATOL = {np.float32: 1e-6, np.float64: 1e-14}
# Row kernels (layer_norm, softmax): relative to the row scale.
ROW_RTOL = {np.float32: 4e-6, np.float64: 1e-12}
ROW_ATOL = {np.float32: 1e-6, np.float64: 1e-13}
# GEMM-based kernels: atol is relative to max |ref| (the error of a float32 sum grows with the
# reduction length, up to 1025 here, and is largest for outputs near zero).
GEMM_RTOL = {np.float32: 4e-6, np.float64: 1e-12}
GEMM_ATOL = {np.float32: 1e-6, np.float64: 1e-12}

LAYOUTS = ("C", "F", "neg", "sliced", "padded")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def relayout(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as `a` in another memory layout (core dims are the last two axes)."""
    a = np.asarray(a)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "neg":  # negative strides on every axis
        b = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return b[(slice(None, None, -1),) * a.ndim]
    if layout == "sliced":  # every other element: non-unit inner stride
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
        view = big[(slice(1, None, 2),) * a.ndim]
        view[...] = a
        return view
    if layout == "padded":  # unit inner stride, row stride > row length (BLAS lda > n)
        big = np.zeros(a.shape[:-1] + (a.shape[-1] + 3,), a.dtype)
        view = big[..., 1 : 1 + a.shape[-1]]
        view[...] = a
        return view
    raise ValueError(layout)


def assert_close(actual, expected, rtol, atol_scale, dtype):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == np.dtype(dtype), (actual.dtype, dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = float(np.nanmax(np.abs(expected), initial=0.0)) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol_scale * max(scale, 1.0))


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------------------------------------
# The objects


@pytest.mark.parametrize("name", KERNELS)
def test_ufunc_objects(name):
    uf = getattr(_core, name)
    assert isinstance(uf, np.ufunc)
    assert sorted(uf.types) == sorted(t for t in uf.types if set(t) <= set("fd->"))
    assert uf.types[0].startswith("f") and uf.types[1].startswith("d")
    doc_signature = {
        "gelu": "gelu(x, /, out=None",
        "gelu_tanh": "gelu_tanh(x, /, out=None",
        "layer_norm": "layer_norm(x, weight, bias, eps, /, out=None",
        "softmax": "softmax(x, /, out=None",
        "linear": "linear(x, weight, bias, /, out=None",
        "attention": "attention(q, k, v, scale, /, out=None",
        "mlp": "mlp(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, /, out=None",
    }[name]
    # vitc's own call signature first, not NumPy's generic "layer_norm(x1, x2, x3, x4, /, ..." line
    # (replaced through the ufunc's __dict__, NumPy >= 2.2).
    assert uf.__doc__.startswith(doc_signature), uf.__doc__[:200]
    assert "x1" not in uf.__doc__
    expected = {
        "gelu": None,
        "gelu_tanh": None,
        "layer_norm": "(n),(n),(n),()->(n)",
        "softmax": "(n)->(n)",
        "linear": "(m,k),(n,k),(n)->(m,n)",
        "attention": "(s,d),(t,d),(t,e),()->(s,e)",
        "mlp": "(m,c),(f,c),(f),(c,f),(c)->(m,c)",
    }[name]
    assert uf.signature == expected


@pytest.mark.parametrize("name", KERNELS)
def test_exported_from_package(name):
    # The lead exports the ufuncs from vitc/__init__.py.
    assert getattr(vitc, name) is getattr(_core, name)


# ---------------------------------------------------------------------------------------------
# Element-wise GELUs

EDGE = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-30, 3e38, -3e38, 1e20, -1e20, 5.5, -5.5,
        -9.0, -12.0, -20.0, -200.0, 20.0]


def slow_gelu(name, x):
    """The slow twin in float64."""
    return getattr(_slow, name)(np.asarray(x, np.float64))


def assert_gelu_close(name, x, y, ref, dtype):
    if name == "gelu_tanh" and dtype == np.float32:
        # float32 tanh GELU: the exp argument (~87 at x = -10) carries ~1e-5 relative rounding
        # error, so below x = -5 (|y| < 1e-5) only an absolute bound is meaningful.
        tail = x < -5
        np.testing.assert_allclose(y[tail], ref[tail], rtol=0, atol=1e-12)
        x, y, ref = x[~tail], y[~tail], ref[~tail]
    np.testing.assert_allclose(y, ref, rtol=ELEM_RTOL[dtype], atol=ELEM_ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 17, 64, 1025])
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
def test_gelu_vs_slow_and_torch(name, n, dtype, tier):
    x = (rng(n).standard_normal(n) * 4).astype(dtype)
    y = getattr(_core, name)(x)
    assert_gelu_close(name, x, y, slow_gelu(name, x), dtype)
    assert y.dtype == dtype
    approximate = "none" if name == "gelu" else "tanh"
    yt = F.gelu(t(x), approximate=approximate).numpy()
    np.testing.assert_allclose(y, yt, rtol=ELEM_RTOL[dtype], atol=TORCH_ELEM_ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
def test_gelu_dense_range_and_edges(name, dtype, tier):
    x = np.concatenate([np.linspace(-15, 15, 30001), EDGE]).astype(dtype)
    with np.errstate(all="raise", under="ignore"):  # no spurious invalid/overflow flags
        y = getattr(_core, name)(x)
    assert_gelu_close(name, x, y, slow_gelu(name, x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["gelu", "gelu_tanh"])
def test_gelu_edges_like_torch(name, dtype, tier):
    """inf, NaN, -0, huge and tiny values as torch.nn.functional.gelu gives them: NaN at -inf."""
    x = np.array(EDGE * 2, dtype)  # 38 values: the vector body and its masked tail
    with np.errstate(all="raise", under="ignore"):
        y = getattr(_core, name)(x)
    approximate = "none" if name == "gelu" else "tanh"
    yt = F.gelu(t(x), approximate=approximate).numpy()
    if name == "gelu" and dtype == np.float32:
        # torch quirks of its AVX-512 float32 exact GELU, which forms x * (1 + erf) before halving:
        # NaN at +inf and inf for x > FLT_MAX / 2 (its AVX2, float64 and tanh GELUs give inf and x,
        # the true values). vitc gives the true values on every CPU, as the slow twin says; torch's
        # value is checked as either its quirk or the true one.
        pos_inf, huge = np.isposinf(x), np.isfinite(x) & (x > np.finfo(np.float32).max / 2)
        assert np.isposinf(y[pos_inf]).all() and (y[huge] == x[huge]).all()
        assert (np.isnan(yt[pos_inf]) | np.isposinf(yt[pos_inf])).all()
        assert (np.isposinf(yt[huge]) | (yt[huge] == x[huge])).all()
        yt[pos_inf], yt[huge] = np.inf, x[huge]
    np.testing.assert_allclose(y, yt, rtol=ELEM_RTOL[dtype], atol=TORCH_ELEM_ATOL[dtype])
    assert np.isnan(y[np.isneginf(x)]).all() and np.isposinf(y[np.isposinf(x)]).all()
    assert np.isnan(y[np.isnan(x)]).all()
    # The sign of a zero result (x * Phi(x) underflowing for large negative x is -0) as the slow
    # twin gives it; torch's sign differs between its AVX-512 (-0) and AVX2 (+0) paths.
    zeros = y == 0
    with np.errstate(all="ignore"):
        ref = getattr(_slow, name)(x)
    np.testing.assert_array_equal(np.signbit(y[zeros]), np.signbit(ref[zeros]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gelu_layouts_out_and_inplace(dtype, layout):
    x = (rng(1).standard_normal((7, 33)) * 3).astype(dtype)
    ref = _slow.gelu(x)
    xv = relayout(x, layout)
    np.testing.assert_allclose(_core.gelu(xv), ref, rtol=ELEM_RTOL[dtype], atol=ELEM_ATOL[dtype])
    out = relayout(np.zeros_like(x), layout)
    res = _core.gelu(xv, out=out)
    assert res is out
    np.testing.assert_allclose(out, ref, rtol=ELEM_RTOL[dtype], atol=ELEM_ATOL[dtype])
    _core.gelu(xv, out=xv)  # in place
    np.testing.assert_allclose(xv, ref, rtol=ELEM_RTOL[dtype], atol=ELEM_ATOL[dtype])


def test_gelu_overlapping_out():
    x = np.linspace(-3, 3, 101)
    ref = _slow.gelu(x[:-1])
    _core.gelu(x[:-1], out=x[1:])  # shifted overlap: NumPy copies
    np.testing.assert_allclose(x[1:], ref, rtol=ELEM_RTOL[np.float64])


# ---------------------------------------------------------------------------------------------
# layer_norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 17, 64, 1025])
def test_layer_norm_vs_slow_and_torch(n, dtype, tier):
    g = rng(n)
    x = (g.standard_normal((5, n)) * 3 + 2).astype(dtype)
    w, b = g.standard_normal(n).astype(dtype), g.standard_normal(n).astype(dtype)
    y = _core.layer_norm(x, w, b, 1e-5)
    assert_close(y, _slow.layer_norm(x, w, b, 1e-5), ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    yt = F.layer_norm(t(x), (n,), t(w), t(b), eps=1e-5).numpy()
    assert_close(y, yt, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layer_norm_layouts_broadcast_out(dtype, layout):
    g = rng(2)
    x = (g.standard_normal((2, 6, 19)) * 5).astype(dtype)
    w, b = g.standard_normal(19).astype(dtype), g.standard_normal(19).astype(dtype)
    eps = np.array([1e-5, 1e-2], dtype)[:, None]  # eps per batch, broadcast over rows
    ref = _slow.layer_norm(x, w, b, eps)
    xv, wv, bv = relayout(x, layout), relayout(w, layout), relayout(b, layout)
    assert_close(_core.layer_norm(xv, wv, bv, eps), ref, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    out = relayout(np.zeros_like(x), layout)
    _core.layer_norm(xv, wv, bv, eps, out=out)
    assert_close(out, ref, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    _core.layer_norm(xv, wv, bv, eps, out=xv)  # in place
    assert_close(xv, ref, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)


def test_layer_norm_edges_and_scalars(tier):
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, 2.0], [1e30, -1e30, 0.0], [7.0, 7.0, 7.0]], np.float32)
    w, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    with np.errstate(invalid="ignore"):
        y = _core.layer_norm(x, w, b, 1e-5)
    yt = F.layer_norm(t(x), (3,), eps=1e-5).numpy()
    # Row 2: torch's float32 variance overflows (1e60) and gives 0; vitc's double statistics don't.
    like_torch = [0, 1, 3]
    np.testing.assert_allclose(y[like_torch], yt[like_torch], rtol=ROW_RTOL[np.float32], atol=ROW_ATOL[np.float32])
    np.testing.assert_allclose(y[2], _slow.layer_norm(x[2], w, b, 1e-5), rtol=ROW_RTOL[np.float32])
    # eps as a Python float or int keeps float32; as a float64 array NumPy promotes to float64.
    assert _core.layer_norm(x[3:], w, b, 1e-5).dtype == np.float32
    assert _core.layer_norm(x[3:], w, b, 1).dtype == np.float32
    assert _core.layer_norm(x[3:], w, b, np.float64(1e-5)).dtype == np.float64


# ---------------------------------------------------------------------------------------------
# softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 17, 64, 1025])
def test_softmax_vs_slow_and_torch(n, dtype, tier):
    x = (rng(n).standard_normal((4, n)) * 10).astype(dtype)
    y = _core.softmax(x)
    assert_close(y, _slow.softmax(x), ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    assert_close(y, torch.softmax(t(x), -1).numpy(), ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_layouts_out_inplace(dtype, layout):
    x = (rng(3).standard_normal((3, 5, 21)) * 4).astype(dtype)
    ref = _slow.softmax(x)
    xv = relayout(x, layout)
    assert_close(_core.softmax(xv), ref, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    _core.softmax(xv, out=xv)
    assert_close(xv, ref, ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)
    y = x.copy()
    _core.softmax(y[..., ::-1], out=y)  # out aliases a reversed view of the input
    assert_close(y, _slow.softmax(x[..., ::-1]), ROW_RTOL[dtype], ROW_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_edges_like_torch(dtype, tier):
    x = np.array(
        [[0.0, np.nan, 1.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0], [1e30, -1e30, 0.0],
         [-1e-45, 0.0, 88.0], [-200.0, -150.0, -100.0]],
        dtype,
    )
    with np.errstate(invalid="ignore"):
        y = _core.softmax(x)
    yt = torch.softmax(t(x), -1).numpy()
    np.testing.assert_allclose(y, yt, rtol=ROW_RTOL[dtype], atol=ROW_ATOL[dtype])
    assert np.isnan(y[0]).all() and np.isnan(y[1]).all()


# ---------------------------------------------------------------------------------------------
# linear

LINEAR_SIZES = [(1, 1, 1), (3, 17, 5), (17, 3, 64), (64, 65, 33), (1025, 64, 17), (5, 1025, 1025)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mkn", LINEAR_SIZES)
def test_linear_vs_slow_and_torch(mkn, dtype, tier):
    m, k, n = mkn
    g = rng(m * k * n)
    x, w, b = (g.standard_normal(s).astype(dtype) for s in ((m, k), (n, k), (n,)))
    y = _core.linear(x, w, b)
    assert_close(y, _slow.linear(x, w, b), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    assert_close(y, F.linear(t(x), t(w), t(b)).numpy(), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_layout", LAYOUTS)
@pytest.mark.parametrize("w_layout", ["C", "F", "neg", "padded"])
def test_linear_layouts_and_batch_broadcast(dtype, x_layout, w_layout):
    g = rng(5)
    x = g.standard_normal((3, 9, 13)).astype(dtype)  # batch 3 shares w and b
    w, b = g.standard_normal((7, 13)).astype(dtype), g.standard_normal(7).astype(dtype)
    ref = _slow.linear(x, w, b)
    y = _core.linear(relayout(x, x_layout), relayout(w, w_layout), b)
    assert_close(y, ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    out = relayout(np.zeros(ref.shape, dtype), x_layout)
    assert _core.linear(relayout(x, x_layout), relayout(w, w_layout), b, out=out) is out
    assert_close(out, ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_aliasing_and_empty(dtype):
    g = rng(6)
    x, w = g.standard_normal((6, 6)).astype(dtype), g.standard_normal((6, 6)).astype(dtype)
    b = g.standard_normal(6).astype(dtype)
    ref = _slow.linear(x, w, b)
    _core.linear(x, w, b, out=x)
    assert_close(x, ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    w2 = w.copy()
    _core.linear(x, w2, b, out=w2)
    assert_close(w2, _slow.linear(x, w, b), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    # weights broadcast per batch as a (B, n, k) stack, bias per batch
    ws, bs = g.standard_normal((2, 4, 6)).astype(dtype), g.standard_normal((2, 4)).astype(dtype)
    xs = g.standard_normal((2, 3, 6)).astype(dtype)
    assert_close(_core.linear(xs, ws, bs), _slow.linear(xs, ws, bs), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    # k = 0: the output is the bias; m = 0 and n = 0: empty
    y = _core.linear(np.zeros((3, 0), dtype), np.zeros((4, 0), dtype), b[:4])
    np.testing.assert_array_equal(y, np.broadcast_to(b[:4], (3, 4)))
    assert _core.linear(np.zeros((0, 5), dtype), np.zeros((4, 5), dtype), b[:4]).shape == (0, 4)
    assert _core.linear(np.zeros((2, 5), dtype), np.zeros((0, 5), dtype), b[:0]).shape == (2, 0)


# ---------------------------------------------------------------------------------------------
# attention

# (s, t, d, e): tails of every tile of the AVX-512 kernel (12 query rows, 32 keys, 6x64 and
# 12x32 output tiles) and the single-element case
ATTN_SIZES = [(1, 1, 1, 1), (3, 17, 8, 5), (17, 3, 64, 64), (200, 130, 16, 24), (13, 33, 80, 80), (7, 64, 3, 100),
              (1025, 1025, 64, 64), (17, 1025, 3, 5)]


def sdpa(q, k, v, scale):
    return F.scaled_dot_product_attention(t(q), t(k), t(v), scale=float(scale)).numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stde", ATTN_SIZES)
def test_attention_vs_slow_and_torch(stde, dtype, tier):
    s, tt, d, e = stde
    g = rng(s + tt + d)
    batch = (2, 3) if s * tt < 100_000 else (2,)  # fewer heads of ViT-L's 1025 tokens: the refs are slow
    q, k, v = (g.standard_normal(batch + sh).astype(dtype) for sh in ((s, d), (tt, d), (tt, e)))
    scale = d**-0.5
    y = _core.attention(q, k, v, scale)
    assert y.shape == batch + (s, e)
    assert_close(y, _slow.attention(q, k, v, scale), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    assert_close(y, sdpa(q, k, v, scale), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


def test_attention_vit_large_sequence():
    g = rng(7)
    q, k, v = (g.standard_normal((1025, 64)).astype(np.float32) for _ in range(3))
    y = _core.attention(q, k, v, 0.125)
    assert_close(y, sdpa(q, k, v, 0.125), GEMM_RTOL[np.float32], GEMM_ATOL[np.float32], np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_attention_layouts_scale_broadcast_out(dtype, layout):
    g = rng(8)
    q, k, v = (g.standard_normal(sh).astype(dtype) for sh in ((2, 3, 11, 8), (2, 3, 9, 8), (2, 3, 9, 6)))
    scale = np.array([0.1, 0.3, 1.0], dtype)[None, :]  # one scale per head, broadcast over batch
    ref = _slow.attention(q, k, v, scale)
    args = [relayout(a, layout) for a in (q, k, v)]
    assert_close(_core.attention(*args, scale), ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    out = relayout(np.zeros(ref.shape, dtype), layout)
    _core.attention(*args, scale, out=out)
    assert_close(out, ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    # k and v shared by every batch (loop-dim broadcasting), out aliasing q (e == d)
    q2 = g.standard_normal((4, 5, 8)).astype(dtype)
    k2, v2 = g.standard_normal((7, 8)).astype(dtype), g.standard_normal((7, 8)).astype(dtype)
    ref2 = _slow.attention(q2, k2, v2, 0.5)
    _core.attention(q2, k2, v2, 0.5, out=q2)
    assert_close(q2, ref2, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_items_on_threads_with_broadcast_strided_keys(dtype, tier):
    """The loop dimension's items run on vitc's threads: a broadcast input that needs a copy (here
    k and v, shared by every item and not contiguous) is copied by every thread, not only the first."""
    g = rng(10)
    q = g.standard_normal((7, 13, 8)).astype(dtype)
    k = np.asfortranarray(g.standard_normal((20, 8)).astype(dtype))
    v = g.standard_normal((20, 12)).astype(dtype)[:, ::2]
    ref = _slow.attention(q, k, v, 0.3)
    before = vitc.get_num_threads()
    try:
        for threads in (1, 2, 3):
            vitc.set_num_threads(threads)
            assert_close(_core.attention(q, k, v, 0.3), ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    finally:
        vitc.set_num_threads(before)


def test_attention_empty_keys_like_torch():
    q = rng(9).standard_normal((3, 4)).astype(np.float32)
    k, v = np.zeros((0, 4), np.float32), np.zeros((0, 5), np.float32)
    y = _core.attention(q, k, v, 0.5)
    np.testing.assert_array_equal(y, sdpa(q[None], k[None], v[None], 0.5)[0])
    np.testing.assert_array_equal(y, np.zeros((3, 5), np.float32))
    assert _core.attention(np.zeros((0, 4), np.float32), q, q, 0.5).shape == (0, 4)


# ---------------------------------------------------------------------------------------------
# mlp

MLP_SIZES = [(1, 1, 1), (3, 17, 5), (17, 8, 64), (65, 64, 256), (1025, 32, 128), (3, 1025, 1025)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mcf", MLP_SIZES)
def test_mlp_vs_slow_and_torch(mcf, dtype, tier):
    m, c, f = mcf
    g = rng(m + c + f)
    x, w1, b1, w2, b2 = (g.standard_normal(s).astype(dtype) for s in ((m, c), (f, c), (f,), (c, f), (c,)))
    y = _core.mlp(x, w1, b1, w2, b2)
    assert_close(y, _slow.mlp(x, w1, b1, w2, b2), GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    yt = F.linear(F.gelu(F.linear(t(x), t(w1), t(b1))), t(w2), t(b2)).numpy()
    assert_close(y, yt, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_mlp_layouts_batch_out_inplace(dtype, layout):
    g = rng(10)
    x = g.standard_normal((2, 5, 12)).astype(dtype)
    w1, b1, w2, b2 = (g.standard_normal(s).astype(dtype) for s in ((20, 12), (20,), (12, 20), (12,)))
    ref = _slow.mlp(x, w1, b1, w2, b2)
    args = [relayout(a, layout) for a in (x, w1, b1, w2, b2)]
    assert_close(_core.mlp(*args), ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)
    _core.mlp(*args, out=args[0])  # in place on x
    assert_close(args[0], ref, GEMM_RTOL[dtype], GEMM_ATOL[dtype], dtype)


# ---------------------------------------------------------------------------------------------
# NaN and inf through the GEMM kernels, as torch propagates them


def _plant_nonfinite(a, spots):
    for index, value in spots:
        a[index] = value
    return a


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_nonfinite_like_torch(dtype, tier):
    g = rng(13)
    spots = [((1, 2), np.nan), ((2, 3), np.inf), ((3, 4), -np.inf)]
    x = _plant_nonfinite(g.standard_normal((6, 10)).astype(dtype), spots)
    w = _plant_nonfinite(g.standard_normal((7, 10)).astype(dtype), [((5, 1), np.inf)])
    b = _plant_nonfinite(g.standard_normal(7).astype(dtype), [(6, np.nan)])
    with np.errstate(invalid="ignore"):
        y = _core.linear(x, w, b)
    yt = F.linear(t(x), t(w), t(b)).numpy()
    assert np.isnan(yt[1]).all() and np.isnan(yt[:, 6]).all() and not np.isfinite(yt[2]).any()  # the setup bites
    np.testing.assert_allclose(y, yt, rtol=GEMM_RTOL[dtype], atol=GEMM_ATOL[dtype] * np.abs(yt[np.isfinite(yt)]).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_nonfinite_like_torch(dtype, tier):
    g = rng(14)
    q = _plant_nonfinite(g.standard_normal((3, 13, 8)).astype(dtype),
                         [((0, 1, 2), np.nan), ((0, 2, 3), np.inf), ((0, 3, 4), -np.inf)])
    k = _plant_nonfinite(g.standard_normal((3, 40, 8)).astype(dtype), [((1, 4, 0), -np.inf), ((2, 7, 1), np.nan)])
    v = _plant_nonfinite(g.standard_normal((3, 40, 5)).astype(dtype), [((1, 3, 2), np.inf)])
    with np.errstate(invalid="ignore", over="ignore"):
        y = _core.attention(q, k, v, 0.5)
    yt = sdpa(q, k, v, 0.5)
    assert np.isnan(yt[0, 1]).all() and np.isnan(yt[2]).all()  # a NaN query row; a NaN key spoils every row
    np.testing.assert_allclose(y, yt, rtol=GEMM_RTOL[dtype], atol=GEMM_ATOL[dtype] * np.abs(yt[np.isfinite(yt)]).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_nonfinite_like_torch(dtype, tier):
    g = rng(15)
    spots = [((1, 2), np.nan), ((2, 3), np.inf), ((3, 4), -np.inf)]
    x = _plant_nonfinite(g.standard_normal((6, 8)).astype(dtype), spots)
    w1 = _plant_nonfinite(g.standard_normal((16, 8)).astype(dtype), [((5, 1), -np.inf)])
    b1, w2, b2 = g.standard_normal(16).astype(dtype), g.standard_normal((8, 16)).astype(dtype), g.standard_normal(8)
    with np.errstate(invalid="ignore", over="ignore"):
        y = _core.mlp(x, w1, b1, w2, b2.astype(dtype))
    # torch in float64: its float32 exact GELU gives NaN at +inf (see test_gelu_edges_like_torch).
    x64, w164, b164, w264, b264 = (t(a.astype(np.float64)) for a in (x, w1, b1, w2, b2.astype(dtype)))
    yt = F.linear(F.gelu(F.linear(x64, w164, b164)), w264, b264).numpy()
    # -inf in w1 makes one hidden unit +-inf in every row: gelu(-inf) = NaN spoils the rows where it
    # is -inf, gelu(+inf) = inf gives +-inf outputs in the others.
    assert not np.isfinite(yt).any() and np.isnan(yt).any() and np.isinf(yt).any()
    np.testing.assert_allclose(y, yt.astype(dtype), rtol=GEMM_RTOL[dtype], atol=GEMM_ATOL[dtype])


# ---------------------------------------------------------------------------------------------
# Errors


def test_mismatched_core_dims_name_function_and_sizes():
    with pytest.raises(ValueError, match=r"linear.*size 4 is different from 5"):
        _core.linear(np.ones((2, 5)), np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match=r"linear.*size 2 is different from 3"):
        _core.linear(np.ones((2, 5)), np.ones((3, 5)), np.ones(2))
    with pytest.raises(ValueError, match=r"layer_norm.*size 4 is different from 5"):
        _core.layer_norm(np.ones(5), np.ones(4), np.ones(5), 1e-5)
    with pytest.raises(ValueError, match=r"attention.*size 6 is different from 7"):
        _core.attention(np.ones((2, 8)), np.ones((7, 8)), np.ones((6, 3)), 1.0)
    with pytest.raises(ValueError, match=r"mlp.*size 3 is different from 4"):
        _core.mlp(np.ones((2, 4)), np.ones((6, 3)), np.ones(6), np.ones((4, 6)), np.ones(4))


@pytest.mark.parametrize("call", [
    lambda: _core.softmax(np.ones((3, 0))),
    lambda: _core.layer_norm(np.ones((3, 0)), np.ones(0), np.ones(0), 1e-5),
])
def test_empty_rows_rejected(call):
    with pytest.raises(ValueError, match=r"(softmax|layer_norm): expected n >= 1 .* got n=0"):
        call()


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float16, np.complex64, np.complex128, np.bool_])
@pytest.mark.parametrize("name", KERNELS)
def test_unsupported_dtypes_raise_type_error(name, dtype):
    uf = getattr(_core, name)
    args = {
        "gelu": [(4,)], "gelu_tanh": [(4,)], "softmax": [(4,)],
        "layer_norm": [(4,), (4,), (4,)], "linear": [(2, 4), (3, 4), (3,)],
        "attention": [(2, 4), (3, 4), (3, 4)], "mlp": [(2, 4), (3, 4), (3,), (4, 3), (4,)],
    }[name]
    arrays = [np.ones(s, np.float32) for s in args]
    arrays[0] = arrays[0].astype(dtype)
    extra = [1e-5] if name in ("layer_norm", "attention") else []
    with pytest.raises(TypeError, match=r"float32 or float64"):
        uf(*arrays, *extra)


# ---------------------------------------------------------------------------------------------
# Threads, GIL, resources


@pytest.mark.parametrize("dtype", DTYPES)
def test_concurrent_calls_match_serial(dtype):
    g = rng(11)
    jobs = []
    for _ in range(4):
        x, w = g.standard_normal((64, 96)).astype(dtype), g.standard_normal((80, 96)).astype(dtype)
        b = g.standard_normal(80).astype(dtype)
        q = g.standard_normal((2, 50, 16)).astype(dtype)
        w2, b2 = g.standard_normal((96, 80)).astype(dtype), g.standard_normal(96).astype(dtype)
        jobs.append((x, w, b, q, w2, b2))

    def run(job):
        x, w, b, q, w2, b2 = job
        return (_core.linear(x, w, b), _core.layer_norm(x, x[0], x[1], 1e-5), _core.gelu(x), _core.gelu_tanh(x),
                _core.attention(q, q, q, 0.25), _core.softmax(x), _core.mlp(x, w, b, w2, b2))

    serial = [run(j) for j in jobs]
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))  # all four start their calls together

    def worker(i):
        barrier.wait()
        for _ in range(5):
            results[i] = run(jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, want in zip(results, serial):
        assert got is not None
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def _zero_stride(shape, dtype=np.float64):
    """A writable view of one element repeated over `shape`: any size, no memory."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape))


def _gil_work(name):
    """One call of ~0.2 s on this CI's cores (float64: the scalar paths), arrays built beforehand."""
    g = rng(12)
    if name in ("gelu", "gelu_tanh"):
        x = np.linspace(-6.0, 6.0, 12_000_000)
        return lambda: getattr(_core, name)(x, out=x)
    if name == "layer_norm":  # every row is the same row: big work, little memory
        x = np.broadcast_to(g.standard_normal(1000), (100_000, 1000))
        return lambda: _core.layer_norm(x, x[0], x[0], 1e-5, out=_zero_stride((100_000, 1000)))
    if name == "softmax":
        x = np.broadcast_to(g.standard_normal(1000), (15_000, 1000))
        return lambda: _core.softmax(x, out=_zero_stride((15_000, 1000)))
    if name == "linear":
        x, w, b = g.standard_normal((1500, 1500)), g.standard_normal((1500, 1500)), g.standard_normal(1500)
        return lambda: _core.linear(x, w, b)
    if name == "attention":
        q = np.broadcast_to(g.standard_normal((512, 64)), (32, 512, 64))
        return lambda: _core.attention(q, q, q, 0.125)
    if name == "mlp":
        x, w1, b1 = g.standard_normal((1536, 256)), g.standard_normal((1024, 256)), g.standard_normal(1024)
        w2, b2 = g.standard_normal((256, 1024)), g.standard_normal(256)
        return lambda: _core.mlp(x, w1, b1, w2, b2)
    raise ValueError(name)


@pytest.mark.parametrize("name", KERNELS)
def test_loops_release_the_gil(name):
    """Another Python thread runs while the ufunc's loop runs. A watcher sleeps in 1 ms steps and
    needs the GIL to note each wake-up; with the switch interval raised far above the call's length,
    a loop that held the GIL would keep it until the call returned, so the watcher could never see
    the call in progress."""
    call = _gil_work(name)
    call()  # warm up: first-use costs (pool start, page faults) out of the observed call
    state = {"in_call": False, "seen": 0}
    stop = threading.Event()

    def watcher():
        while not stop.is_set():
            time.sleep(0.001)  # releases the GIL, needs it back to go on
            if state["in_call"]:
                state["seen"] += 1

    old_interval = sys.getswitchinterval()
    th = threading.Thread(target=watcher)
    sys.setswitchinterval(100.0)
    try:
        th.start()
        state["in_call"] = True
        call()
        state["in_call"] = False
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(old_interval)
    assert state["seen"] > 0, f"{name}: no other Python thread ran during the call"


# Calls whose scratch copies cannot be allocated: zero-stride operands (not BLAS-readable, so copied)
# with absurd core sizes, and zero-stride outputs so NumPy allocates nothing large itself.
_G, _C, _HUGE = 1 << 30, 1 << 28, 1 << 45  # NumPy allows views up to 2**63 bytes
_z = _zero_stride
_NO_MEMORY_CALLS = {
    "linear": lambda: _core.linear(_z((1 << 20, _G), np.float32), _z((1, _G), np.float32), np.zeros(1, np.float32)),
    "attention": lambda: _core.attention(_z((_G, _C)), _z((1, _C)), _z((1, 1)), 1.0, out=_z((_G, 1))),
    "mlp": lambda: _core.mlp(_z((_G, _C)), _z((1, _C)), np.zeros(1), _z((_C, 1)), _z((_C,)), out=_z((_G, _C))),
    "layer_norm": lambda: _core.layer_norm(_z((1, _HUGE)), _z((_HUGE,)), _z((_HUGE,)), 1e-5, out=_z((1, _HUGE))),
    "softmax": lambda: _core.softmax(_z((1, _HUGE)), out=_z((1, _HUGE))),
    # Pieces whose sum lands within 64 elements of the size limit: a bound written as a subtraction
    # from the limit wrapped there, and the copy of x went into a 1.1 GB malloc (a segfault).
    "linear_near_limit": lambda: _core.linear(
        _z((1302186962, 1770746503), np.float32), _z((750371928, 1770746503), np.float32),
        _z((750371928,), np.float32), out=_z((1302186962, 750371928), np.float32),
    ),
}


@pytest.mark.parametrize("name", sorted(_NO_MEMORY_CALLS))
def test_scratch_allocation_failure_raises_memory_error(name):
    ufunc = name.removesuffix("_near_limit")
    with pytest.raises(MemoryError, match=rf"^{ufunc}: cannot allocate (\d+ bytes of scratch|scratch: .*\d+ bytes)"):
        _NO_MEMORY_CALLS[name]()


def _vitc_blas_threads():
    """vitc's OpenBLAS thread count as threadpoolctl sees it."""
    import scipy_openblas32
    import threadpoolctl

    # NumPy bundles its own (64-bit int) scipy-openblas: pick vitc's by file path.
    info = [
        i for i in threadpoolctl.threadpool_info()
        if i["prefix"] == "libscipy_openblas" and scipy_openblas32.get_lib_dir() in i["filepath"]
    ]
    assert len(info) == 1, threadpoolctl.threadpool_info()
    return info[0]["num_threads"]


def test_set_num_threads_during_a_parallel_region():
    """set_num_threads(1) while another thread runs attention heads on vitc's pool: the region's end
    must not put the BLAS back to the count read at the region's start. Each round waits for two
    more calls so the region that saw the change has ended, then compares the BLAS with the setting."""
    q = rng(16).standard_normal((64, 200, 64)).astype(np.float32)
    stop = threading.Event()
    calls = [0]

    def busy():
        while not stop.is_set():
            _core.attention(q, q, q, 0.125)
            calls[0] += 1

    def wait_calls(n):
        target = calls[0] + n
        while calls[0] < target and th.is_alive():
            time.sleep(0.0005)

    before = vitc.get_num_threads()
    th = threading.Thread(target=busy)
    mismatches = []
    try:
        th.start()
        for _ in range(8):
            vitc.set_num_threads(2)
            wait_calls(2)
            vitc.set_num_threads(np.int64(1))  # NumPy integers are accepted (operator.index)
            wait_calls(2)
            if _vitc_blas_threads() != vitc.get_num_threads():
                mismatches.append((_vitc_blas_threads(), vitc.get_num_threads()))
    finally:
        stop.set()
        th.join()
        vitc.set_num_threads(before)
    assert calls[0] >= 32
    assert not mismatches, mismatches
    assert _vitc_blas_threads() == vitc.get_num_threads() == before


def test_set_num_threads_argument_checks():
    before = vitc.get_num_threads()
    try:
        vitc.set_num_threads(np.int32(1))
        assert vitc.get_num_threads() == 1
        for bad in (True, 1.0, "2", np.float64(2.0)):
            with pytest.raises(TypeError, match="set_num_threads: expected an int"):
                vitc.set_num_threads(bad)
        with pytest.raises(ValueError, match="set_num_threads: expected 1 <= n <= 4096, got 0"):
            vitc.set_num_threads(np.int64(0))
    finally:
        vitc.set_num_threads(before)


def test_set_num_threads_and_threadpoolctl():
    before = vitc.get_num_threads()
    try:
        vitc.set_num_threads(1)
        assert vitc.get_num_threads() == 1
        assert _vitc_blas_threads() == 1
    finally:
        vitc.set_num_threads(before)
    assert vitc.get_num_threads() == before


# ---------------------------------------------------------------------------------------------
# Layering: the kernels never see Python

CSRC = Path(__file__).resolve().parents[1] / "csrc"
# The Python-facing C files (STYLE.md: ufunc loops, module init, their private hooks); every other
# csrc file is a kernel or a helper of the kernels.
PY_GLUE = {
    "module.c",
    "runtime_py.c",
    "ufuncs_py.c",
    "model_py.c",
    "lowp_py.c",
    "gemm_f32_py.c",
    "vitc_py.h",
}


def test_kernel_files_do_not_include_python():
    files = {str(p.relative_to(CSRC)): p for p in CSRC.rglob("*.[ch]")}
    assert PY_GLUE <= set(files), sorted(files)
    kernel_files = sorted(set(files) - PY_GLUE)
    assert {"kernels/linear.c", "kernels/attention.c", "threads.c", "cpu.c", "vit_forward.c"} <= set(kernel_files)
    # The pure kernels live in csrc/kernels/ and never include the glue's headers.
    assert all(not name.endswith("_py.c") for name in kernel_files)
    python_include = re.compile(r'^\s*#\s*include\s*[<"](Python\.h|numpy/[^>"]*|vitc_py\.h)[>"]', re.M)
    offenders = {name: python_include.findall(files[name].read_text()) for name in kernel_files}
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert python_include.search(files["ufuncs_py.c"].read_text())  # the pattern finds a real include


def test_unbuilt_source_tree_says_how_to_build(tmp_path):
    """Importing vitc from a source tree without its extension names the fix, not a circular import."""
    import shutil
    import subprocess

    pkg = Path(vitc.__file__).parent
    shutil.copytree(pkg, tmp_path / "vitc", ignore=shutil.ignore_patterns("*.so", "data", "__pycache__"))
    # -S: no site-packages, so neither an installed vitc nor its editable finder can supply _core.
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import vitc"
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "vitc's C extension (vitc._core) is not built" in r.stderr and "pip install" in r.stderr
