"""vitc's own fp32 GEMM on packed weights (csrc/kernels/gemm_f32.c) through its private hooks.

Checked against a float64 NumPy reference (and torch for the activations and non-finite values),
and for determinism: every tier this CPU runs gives the bits of the portable scalar tier, and a
row's outputs do not depend on the batch around it, the column split or the thread count.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiers import TIERS

import vitc
from vitc import _core
from vitc import reference as _slow

# The tier policy's tiers this machine runs (AMX has no fp32 GEMM of its own: it runs AVX-512's).
# Where AVX2 runs, the AVX-512 tier's tile shape (14 x 32, two panels) and cache blocks also run
# on AVX2 instructions ("avx512_shape", test only): that logic is checked on every CI machine.
CHECKED_TIERS = tuple(t for t in TIERS if t != "amx") + (("avx512_shape",) if "avx2" in TIERS else ())
VECTOR_TIERS = tuple(t for t in CHECKED_TIERS if t != "portable")
# vitc_act: none, exact GELU, tanh GELU, quick GELU, ReLU
ACTS = {"none": 0, "gelu": 1, "gelu_tanh": 2, "quick_gelu": 3, "relu": 4}
# float32 GEMM vs the float64 reference: rtol 4e-6 and atol 1e-6 scaled by max |ref| (the sum's
# rounding error grows with K and is largest relative to outputs near zero), as tests/test_kernels.py.
GEMM_RTOL = 4e-6
GEMM_ATOL = 1e-6
ODD = (1, 3, 15, 16, 17, 33, 1025)
# Every (M, N, K) of ODD but the 1025^3 one (2 GFLOP in the scalar tier's fmaf calls): covers
# edge tiles in M and N, and more than one MC / NC / KC block in each tier.
ODD_SHAPES = [s for s in itertools.product(ODD, ODD, ODD) if s != (1025, 1025, 1025)]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def make(M: int, N: int, K: int, seed: int = 0):
    g = rng(seed)
    x = g.standard_normal((M, K), dtype=np.float32)
    w = (g.standard_normal((N, K)) / math.sqrt(max(K, 1))).astype(np.float32)
    b = g.standard_normal(N, dtype=np.float32)
    return x, w, b


def act64(name: str, y: np.ndarray) -> np.ndarray:
    """The activation in float64 (the slow twins for the GELUs)."""
    if name == "none":
        return y
    if name == "gelu":
        return _slow.gelu(y)
    if name == "gelu_tanh":
        return _slow.gelu_tanh(y)
    if name == "quick_gelu":
        with np.errstate(over="ignore"):
            return y / (1.0 + np.exp(-1.702 * y))
    return np.maximum(y, 0.0)


def reference(x, w, b, act="none", res=None) -> np.ndarray:
    """act(x w^T + b), or res + (x w^T + b), in float64."""
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if b is not None:
        y = y + b
    if res is not None:
        return res.astype(np.float64) + y
    return act64(act, y)


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    scale = float(np.nanmax(np.abs(expected), initial=0.0)) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=GEMM_RTOL, atol=GEMM_ATOL * max(scale, 1.0))


def assert_same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Bit-identical (signed zeros included); NaN matches NaN whatever its payload."""
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(nan_a, nan_b)
    diff = (a.view(np.uint32) != b.view(np.uint32)) & ~nan_a
    assert not diff.any(), f"{diff.sum()} of {a.size} elements differ, first at {np.argwhere(diff)[0]}"


def gemm(x, packed, b, N, act="none", res=None, **kw) -> np.ndarray:
    """_gemm_f32 with the activation by name; res is copied (the hook adds into it in place)."""
    res = None if res is None else res.copy()
    return _core._gemm_f32(x, packed, b, ACTS[act], res, N, **kw)


@pytest.fixture
def threads():
    """Restores vitc's thread count after a test that changes it."""
    old = vitc.get_num_threads()
    yield
    vitc.set_num_threads(old)


# ---------------------------------------------------------------------------------------------
# Tiers and packing


def test_the_policy_names_the_gemm_code():
    """show_config's "float32 GEMM" entry is the code the GEMM runs at each tier (no OpenBLAS)."""
    from tiers import at_tier

    for tier in TIERS:
        with at_tier(tier):
            assert _core.kernels()["float32 GEMM"] == ("avx512" if tier == "amx" else tier)


@pytest.mark.parametrize("N, K", [(1, 1), (16, 3), (17, 5), (40, 33), (3, 0), (0, 4)])
def test_pack_layout(N, K):
    w = rng(1).standard_normal((N, K), dtype=np.float32)
    packed = _core._gemm_f32_pack(w)
    panels = -(-N // 16)
    assert packed.shape == (panels * 16 * K,) and packed.dtype == np.float32
    assert packed.ctypes.data % 64 == 0 or packed.size == 0
    # panel p holds w[p*16 + j][k] at [p, k, j], zeros past N
    padded = np.zeros((panels * 16, K), np.float32)
    padded[:N] = w
    expected = padded.reshape(panels, 16, K).transpose(0, 2, 1).ravel()
    np.testing.assert_array_equal(packed, expected)


# ---------------------------------------------------------------------------------------------
# Values: the float64 reference, every tier bit-identical to the scalar one


@pytest.mark.parametrize("M, N, K", ODD_SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in ODD_SHAPES])
def test_odd_sizes_vs_reference_and_tiers(M, N, K):
    x, w, b = make(M, N, K, seed=M * 10007 + N * 101 + K)
    packed = _core._gemm_f32_pack(w)
    scalar = gemm(x, packed, b, N, tier="portable")
    assert_close(scalar, reference(x, w, b))
    for tier in VECTOR_TIERS:
        assert_same_bits(gemm(x, packed, b, N, tier=tier), scalar)


EPILOGUE_SHAPES = [(1, 1, 1), (7, 33, 5), (37, 50, 300), (130, 97, 600)]


@pytest.mark.parametrize("M, N, K", EPILOGUE_SHAPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_activations_and_bias(M, N, K, act, bias):
    x, w, b = make(M, N, K, seed=3)
    b = b if bias else None
    packed = _core._gemm_f32_pack(w)
    scalar = gemm(x, packed, b, N, act, tier="portable")
    assert_close(scalar, reference(x, w, b, act))
    for tier in VECTOR_TIERS:
        assert_same_bits(gemm(x, packed, b, N, act, tier=tier), scalar)


@pytest.mark.parametrize("M, N, K", EPILOGUE_SHAPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_residual(M, N, K, bias):
    x, w, b = make(M, N, K, seed=4)
    b = b if bias else None
    res = rng(5).standard_normal((M, N), dtype=np.float32)
    packed = _core._gemm_f32_pack(w)
    scalar = gemm(x, packed, b, N, res=res, tier="portable")
    assert_close(scalar, reference(x, w, b, res=res))
    # transformers' order: res + (x w^T + b), the bias added to the sum first
    plain = gemm(x, packed, b, N, tier="portable")
    assert_same_bits(scalar, res + plain)
    for tier in VECTOR_TIERS:
        assert_same_bits(gemm(x, packed, b, N, res=res, tier=tier), scalar)


def test_residual_in_place_with_row_strides():
    """x and residual_out as row-strided views (ld_inp > K, ld_out > N); columns past N untouched."""
    M, N, K = 29, 45, 70
    x_big = rng(6).standard_normal((M, K + 13), dtype=np.float32)
    x = x_big[:, 5 : 5 + K]
    _, w, b = make(M, N, K, seed=6)
    packed = _core._gemm_f32_pack(w)
    out_big = rng(7).standard_normal((M, N + 9), dtype=np.float32)
    before = out_big.copy()
    view = out_big[:, 3 : 3 + N]
    expected = gemm(x.copy(), packed, b, N, res=view.copy(), tier="portable")
    for tier in CHECKED_TIERS:
        out_big[:] = before
        assert _core._gemm_f32(x, packed, b, 0, view, N, tier=tier) is view
        assert_same_bits(view, expected)
        np.testing.assert_array_equal(out_big[:, :3], before[:, :3])
        np.testing.assert_array_equal(out_big[:, 3 + N :], before[:, 3 + N :])


def test_vs_torch_linear_and_activations():
    M, N, K = 50, 70, 200
    x, w, b = make(M, N, K, seed=8)
    packed = _core._gemm_f32_pack(w)
    y = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    torch_acts = {
        "none": lambda t: t,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "quick_gelu": lambda t: t * torch.sigmoid(1.702 * t),
        "relu": F.relu,
    }
    for name, fn in torch_acts.items():
        assert_close(gemm(x, packed, b, N, name), fn(y).numpy().astype(np.float64))


# ---------------------------------------------------------------------------------------------
# Determinism: batch composition, column split, thread count


@pytest.mark.parametrize("tier", CHECKED_TIERS)
def test_rows_do_not_depend_on_the_batch(tier):
    """A row gives the same bits alone, in any slice of rows and in the whole batch."""
    M, N, K = 1025, 80, 300
    x, w, b = make(M, N, K, seed=9)
    packed = _core._gemm_f32_pack(w)
    whole = gemm(x, packed, b, N, "gelu", tier=tier)
    for start, stop in [(0, 1), (1024, 1025), (5, 22), (7, 8), (100, 297), (511, 1025)]:
        assert_same_bits(gemm(x[start:stop], packed, b, N, "gelu", tier=tier), whole[start:stop])
    res = rng(10).standard_normal((M, N), dtype=np.float32)
    whole_res = gemm(x, packed, b, N, res=res, tier=tier)
    assert_same_bits(gemm(x[13:20], packed, b, N, res=res[13:20], tier=tier), whole_res[13:20])


@pytest.mark.parametrize("tier", CHECKED_TIERS)
@pytest.mark.parametrize("splits", [[16], [32], [48], [16, 32, 48, 64, 80], [96, 144], [160]])
def test_column_splits_give_the_same_bits(tier, splits):
    M, N, K = 45, 177, 333
    x, w, b = make(M, N, K, seed=11)
    packed = _core._gemm_f32_pack(w)
    res = rng(12).standard_normal((M, N), dtype=np.float32)
    for act, r in [("gelu_tanh", None), ("none", res)]:
        whole = gemm(x, packed, b, N, act, res=r, tier=tier, splits=[])
        assert_same_bits(gemm(x, packed, b, N, act, res=r, tier=tier, splits=splits), whole)


@pytest.mark.parametrize("tier", CHECKED_TIERS)
def test_thread_counts_give_the_same_bits(tier, threads):
    M, N, K = 197, 768, 300  # 2 M N K above the kernel's threshold for using a second thread
    x, w, b = make(M, N, K, seed=13)
    packed = _core._gemm_f32_pack(w)
    results = []
    for n in (1, 2, 3):
        vitc.set_num_threads(n)
        results.append(gemm(x, packed, b, N, "gelu", tier=tier))
    for r in results[1:]:
        assert_same_bits(r, results[0])
    assert_same_bits(results[0], gemm(x, packed, b, N, "gelu", tier=tier, splits=[]))


# ---------------------------------------------------------------------------------------------
# Edge values and empty sizes


@pytest.mark.parametrize("tier", CHECKED_TIERS)
def test_nonfinite_like_torch(tier):
    M, N, K = 9, 21, 40
    x, w, b = make(M, N, K, seed=14)
    x[1, 2], x[2, 3], x[3, 4] = np.nan, np.inf, -np.inf
    w[5, 1], w[19, 0] = np.inf, np.nan
    b[6] = np.nan
    x[4, 7] = 3e38  # finite inputs whose products overflow
    w[8, 7] = 3e38
    packed = _core._gemm_f32_pack(w)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    yt = F.linear(tx, tw, tb)
    res = rng(15).standard_normal((M, N), dtype=np.float32)
    res[0, 0], res[1, 5] = np.inf, -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        cases = [
            (gemm(x, packed, b, N, tier=tier), yt.numpy()),
            (gemm(x, packed, b, N, "relu", tier=tier), F.relu(yt).numpy()),
            (gemm(x, packed, b, N, "gelu", tier=tier), F.gelu(yt).numpy()),
            (gemm(x, packed, b, N, res=res, tier=tier), (torch.from_numpy(res) + yt).numpy()),
        ]
    assert np.isnan(cases[0][1][1]).all() and np.isnan(cases[0][1][:, 6]).all()  # the setup bites
    assert np.isposinf(cases[0][1][4, 8]) and not np.isfinite(cases[0][1][2]).any()
    for y, expected in cases:
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(y), np.isposinf(expected))
        np.testing.assert_array_equal(np.isneginf(y), np.isneginf(expected))
        finite = np.isfinite(expected)
        scale = np.abs(expected[finite]).max()
        np.testing.assert_allclose(y[finite], expected[finite], rtol=GEMM_RTOL, atol=GEMM_ATOL * scale)


@pytest.mark.parametrize("tier", CHECKED_TIERS)
def test_k_zero_is_the_bias(tier):
    M, N = 5, 20
    x = np.zeros((M, 0), np.float32)
    b = rng(16).standard_normal(N, dtype=np.float32)
    b[3] = -0.0  # 0.0f + -0.0f = +0.0 (the empty chain starts at +0.0)
    packed = _core._gemm_f32_pack(np.zeros((N, 0), np.float32))
    assert packed.size == 0
    expected = np.broadcast_to(np.float32(0.0) + b, (M, N))
    assert_same_bits(gemm(x, packed, b, N, tier=tier), np.ascontiguousarray(expected))
    assert_same_bits(gemm(x, packed, None, N, tier=tier), np.zeros((M, N), np.float32))
    relu = np.maximum(expected, np.float32(0))
    assert_same_bits(gemm(x, packed, b, N, "relu", tier=tier), np.ascontiguousarray(relu))
    res = rng(17).standard_normal((M, N), dtype=np.float32)
    assert_same_bits(gemm(x, packed, b, N, res=res, tier=tier), res + expected)


def test_empty_m_and_n():
    x, w, b = make(4, 3, 8)
    assert gemm(x[:0], _core._gemm_f32_pack(w), b, 3).shape == (0, 3)
    y = gemm(x, _core._gemm_f32_pack(w[:0]), b[:0], 0)
    assert y.shape == (4, 0)


# ---------------------------------------------------------------------------------------------
# Argument checks


def test_errors():
    x, w, b = make(4, 20, 8)
    packed = _core._gemm_f32_pack(w)
    run = _core._gemm_f32
    with pytest.raises(TypeError, match=r"_gemm_f32_pack: w: expected a numpy array, got list"):
        _core._gemm_f32_pack([[1.0]])
    with pytest.raises(ValueError, match=r"_gemm_f32_pack: w: expected dtype float32, got float64"):
        _core._gemm_f32_pack(w.astype(np.float64))
    with pytest.raises(ValueError, match=r"_gemm_f32_pack: w: expected 2 dimensions, got 1"):
        _core._gemm_f32_pack(b)
    with pytest.raises(ValueError, match=r"_gemm_f32_pack: w: expected a C-contiguous array"):
        _core._gemm_f32_pack(np.ones((20, 16), np.float32)[:, :8])
    with pytest.raises(ValueError, match=r"x: expected dtype float32, got float64"):
        run(x.astype(np.float64), packed, b, 0, None, 20)
    with pytest.raises(ValueError, match=r"x: expected an aligned float32 array with contiguous rows"):
        run(np.asfortranarray(x), packed, b, 0, None, 20)
    with pytest.raises(ValueError, match=r"packed: expected 256 floats \(N=20, K=8.*got 160"):
        run(x, packed[:160], b, 0, None, 20)
    with pytest.raises(ValueError, match=r"packed: expected 128 floats \(N=16, K=8.*got 256"):
        run(x, packed, b[:16], 0, None, 16)
    with pytest.raises(ValueError, match=r"b: expected 20 elements \(N\), got 19"):
        run(x, packed, b[:19], 0, None, 20)
    with pytest.raises(ValueError, match=r"act: expected 0..4, got 5"):
        run(x, packed, b, 5, None, 20)
    res = np.zeros((4, 20), np.float32)
    with pytest.raises(ValueError, match=r"act: expected 0 with a residual_out.*got 1"):
        run(x, packed, b, 1, res, 20)
    with pytest.raises(ValueError, match=r"residual_out: expected \(4, 20\), got \(4, 19\)"):
        run(x, packed, b, 0, res[:, :19], 20)
    with pytest.raises(ValueError, match=r"residual_out: expected a writeable array"):
        ro = res.copy()
        ro.flags.writeable = False
        run(x, packed, b, 0, ro, 20)
    with pytest.raises(ValueError, match=r"residual_out: expected memory apart from x, packed and b"):
        buf = np.zeros(80, np.float32)
        run(buf[:32].reshape(4, 8), packed, b, 0, buf.reshape(4, 20), 20)
    with pytest.raises(ValueError, match=r"tier: expected None, a tier of supported_tiers\(\).*got 'sse9'"):
        run(x, packed, b, 0, None, 20, tier="sse9")
    if "avx512" not in TIERS:
        with pytest.raises(ValueError, match=r"tier: expected None, a tier .*got 'avx512'"):
            run(x, packed, b, 0, None, 20, tier="avx512")
    with pytest.raises(ValueError, match=r"splits: expected increasing multiples of 16 in \(0, N=20\), got 8"):
        run(x, packed, b, 0, None, 20, splits=[8])
    with pytest.raises(ValueError, match=r"splits: expected increasing multiples of 16 in \(0, N=20\), got 32"):
        run(x, packed, b, 0, None, 20, splits=[32])
    with pytest.raises(ValueError, match=r"expected 0 <= N, K <= 2\*\*30, got N=-1"):
        run(x, packed, b, 0, None, -1)
