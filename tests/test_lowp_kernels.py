"""bf16 and int8 linear kernels (csrc/kernels/gemm_bf16.c, gemm_int8.c, amx.c) against NumPy twins.

bf16: inputs and weights rounded to bf16 (nearest even, NaN kept, float denormals to zero), exact
products, fp32 sums: compared with a float64 sum of the same rounded values.
int8: quantization emulated in float32 exactly as the kernel defines it, int32 sums in int64:
packed weights, scales, column sums and (without activation) outputs must match bit for bit.
Every kernel tier the machine supports is run (the `tier` fixture: AMX tiles on this CI's Xeon,
AVX-512 without AMX, AVX2 and portable, which run the portable code), with 1 and 2 threads. The bf16
attention kernels (AMX, AVX-512 BF16, and the latter's source on a portable emulation of its instructions,
which runs on every CPU) are checked against a float64 softmax of the same bf16-rounded inputs.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from tiers import TIERS, at_tier, attention_emulation

import vitc
from vitc import _core

NR = 32  # output columns per packed panel
ACTS = [0, 1, 2, 3, 4]  # none, gelu, gelu_tanh, quick_gelu, relu


GELU_EXACT = 1


def assert_same_epilogue_result(fast: np.ndarray, slow: np.ndarray, act: int) -> None:
    """Equal bits, except through the exact GELU: its code is chosen per tier (portable erff vs the
    AVX2/AVX-512 polynomial), so those differ by an ulp or so; the GEMM sums under it are compared
    bit for bit by the act=none cases."""
    if act == GELU_EXACT:
        np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_array_equal(fast, slow)
SHAPES = [
    (1, 1, 1),
    (3, 17, 3),
    (17, 3, 17),
    (1, 100, 64),
    (64, 64, 100),
    (100, 33, 17),
    (37, 70, 1100),
    (1025, 40, 64),
    (13, 129, 513),
    # K a multiple of 32 / 64: the AMX kernels, with row and column tails and several K tiles
    (33, 100, 64),
    (70, 33, 256),
    (1, 64, 1024),
]
# fp32 accumulation of K exact products: |error| <= K * 2^-24 * sum|a b| (loose bound).
FP32_EPS = 2.0**-24
BF16_REL_VS_FP32 = 6e-3  # relative (Frobenius) error of the bf16 linear vs fp32, realistic data
INT8_REL_VS_FP32 = 3e-2


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# NumPy twins


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 (as float32 values): nearest even, quiet NaN, denormals to signed zero."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    tiny = (u & 0x7F800000) == 0
    h = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    h = np.where(nan, (u >> 16) | 0x40, h)
    h = np.where(tiny, (u >> 16) & 0x8000, h)
    return (h.astype(np.uint32) << 16).view(np.float32)


def act_ref(y: np.ndarray, act: int) -> np.ndarray:
    from math import erf

    y = y.astype(np.float64)
    if act == 0:
        return y
    if act == 1:
        return 0.5 * y * (1 + np.vectorize(erf)(y / np.sqrt(2.0)))
    if act == 2:
        return 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y**3)))
    if act == 3:
        return y / (1 + np.exp(-1.702 * y))
    return np.maximum(y, 0)


def unpack_bf16(packed: np.ndarray, N: int, K: int) -> np.ndarray:
    Np, Kp = -(-N // NR) * NR, -(-K // 2) * 2
    p = packed.reshape(Np // NR, Kp // 2, NR, 2).transpose(0, 2, 1, 3).reshape(Np, Kp)
    return (p.astype(np.uint32) << 16).view(np.float32)


def unpack_int8(packed: np.ndarray, N: int, K: int) -> np.ndarray:
    Np, Kp = -(-N // NR) * NR, -(-K // 4) * 4
    return packed.reshape(Np // NR, Kp // 4, NR, 4).transpose(0, 2, 1, 3).reshape(Np, Kp)


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 as the kernel defines it, in float32: (q int64, scale float32)."""
    x = x.astype(np.float32)
    amax = np.abs(x).max(axis=1)
    finite = np.isfinite(x).all(axis=1)
    tiny = amax < np.finfo(np.float32).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(tiny | ~finite, np.float32(0), np.float32(127) / amax).astype(np.float32)
        scale = np.where(tiny, np.float32(0), amax / np.float32(127)).astype(np.float32)
    scale = np.where(finite, scale, np.float32(np.nan)).astype(np.float32)
    q = np.clip(np.rint(np.nan_to_num(x * inv[:, None], nan=0.0)), -127, 127).astype(np.int64)
    return q, scale


def int8_ref(x, w, b):
    """Bit-exact float32 twin of linear_int8_forward without activation."""
    qx, rs = quantize_rows(x)
    qw, cs = quantize_rows(w)
    acc = qx @ qw.T  # int64: exact
    y = acc.astype(np.float32) * (rs[:, None] * cs[None, :])
    if b is not None:
        y = y + b
    return y.astype(np.float32)


def data(rng, M, N, K, bias):
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = (rng.standard_normal((N, K), dtype=np.float32) * 0.1).astype(np.float32)
    b = rng.standard_normal(N, dtype=np.float32) if bias else None
    return x, w, b


# ---------------------------------------------------------------------------------------------
# bf16


def expected_lowp_kernels(flags: set[str], tier: str) -> dict[str, str]:
    """The reduced-precision code cpu.c's policy should pick at ``tier`` on a CPU with ``flags``."""
    amx, avx512, avx2 = tier == "amx", tier in ("avx512", "amx"), tier != "portable"

    def pick(amx_code: str, avx512_code: str, avx2_code: str | None) -> str:
        if amx and amx_code in flags:
            return amx_code
        if avx512 and avx512_code in flags:
            return avx512_code
        return avx2_code if avx2 and avx2_code else "portable"  # any tier above portable has AVX2

    bf16, int8 = pick("amx_bf16", "avx512_bf16", "avx2"), pick("amx_int8", "avx512_vnni", "avx2")
    attention = bf16 if bf16 not in ("portable", "avx2") else "float32"  # AMX or vdpbf16ps, as the GEMM
    return {"bf16 GEMM": bf16, "int8 GEMM": int8, "bf16/int8 attention": attention}


def test_dispatch_report():
    """The report follows the CPU's features and the tier."""
    flags = set(_core.cpu_features())
    # AMX also needs the OS to grant the tile state; Linux does on every kernel since 5.16.
    for tier in TIERS:
        with at_tier(tier):
            kernels = _core.kernels()
            assert {k: kernels[k] for k in ("bf16 GEMM", "int8 GEMM", "bf16/int8 attention")} == (
                expected_lowp_kernels(flags, tier)
            )
            if tier != "amx":
                assert "amx" not in "".join(kernels.values())
    with at_tier("portable"):
        assert _core.kernels()["bf16 GEMM"] == "portable" and _core.kernels()["int8 GEMM"] == "portable"
        assert _core.kernels()["bf16/int8 attention"] == "float32"
    with pytest.raises(ValueError, match="expected one of amx, avx512, avx2, portable"):
        _core._set_tier("fastest")


def test_pack_bf16_rounding(rng):
    w = rng.standard_normal((45, 19), dtype=np.float32)
    w[0, :6] = [np.nan, np.inf, -np.inf, 1e-40, -1e-40, 3.3895e38]
    w[1, :4] = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x80000000], np.uint32).view(np.float32)
    got = unpack_bf16(_core._pack_bf16(w), 45, 19)
    want = bf16_round(w)
    np.testing.assert_array_equal(got[:45, :19].view(np.uint32), want.view(np.uint32))
    assert not got[45:].any() and not got[:, 19:].any()  # zero padding
    assert np.isnan(got[0, 0]) and got[0, 3] == 0 and np.signbit(got[0, 4])


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_bf16(rng, tier, M, N, K, bias):
    x, w, b = data(rng, M, N, K, bias)
    out = _core._linear_bf16(x, _core._pack_bf16(w), N, K, b, 0)
    xb, wb = bf16_round(x).astype(np.float64), bf16_round(w).astype(np.float64)
    ref = xb @ wb.T + (b if bias else 0)
    bound = K * FP32_EPS * (np.abs(xb) @ np.abs(wb).T) + 2 * FP32_EPS * np.abs(ref) + 1e-30
    assert out.shape == (M, N) and out.dtype == np.float32
    assert (np.abs(out - ref) <= bound).all()


@pytest.mark.parametrize("act", ACTS)
def test_linear_bf16_act(rng, tier, act):
    M, N, K = 19, 45, 70
    x, w, b = data(rng, M, N, K, True)
    out = _core._linear_bf16(x, _core._pack_bf16(w), N, K, b, act)
    ref = bf16_round(x).astype(np.float64) @ bf16_round(w).astype(np.float64).T + b
    np.testing.assert_allclose(out, act_ref(ref, act), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("M,N,K", [(17, 100, 64), (100, 33, 1100), (1025, 64, 17)])
def test_bf16_simd_matches_fallback(rng, M, N, K, act):
    x, w, b = data(rng, M, N, K, True)
    wp = _core._pack_bf16(w)
    fast = _core._linear_bf16(x, wp, N, K, b, act)
    with at_tier("portable"):
        slow = _core._linear_bf16(x, wp, N, K, b, act)
    # Same products, fp32 sums; the fallback even follows vdpbf16ps's order (odd, then even).
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5 * np.sqrt(K))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (17, 100, 64), (100, 33, 1100), (1025, 64, 17), (13, 129, 513)])
def test_bf16_avx2_equals_portable(rng, M, N, K, act):
    """The AVX2 tier's FMA tiles add the same exact products in the same order (odd, then even, pair
    after pair) as the portable tile: bit-identical outputs on normal data."""
    if "avx2" not in TIERS:
        pytest.skip("no AVX2 + FMA here")
    x, w, b = data(rng, M, N, K, True)
    wp = _core._pack_bf16(w)
    with at_tier("avx2"):
        assert _core.kernels()["bf16 GEMM"] == "avx2"
        fast = _core._linear_bf16(x, wp, N, K, b, act)
    with at_tier("portable"):
        slow = _core._linear_bf16(x, wp, N, K, b, act)
    assert_same_epilogue_result(fast, slow, act)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (17, 100, 64), (100, 33, 1100), (1025, 64, 17), (13, 129, 513)])
def test_int8_avx2_equals_portable(rng, M, N, K, act):
    """The AVX2 tier's vpmaddwd tiles: exact int32 sums, the same epilogue: bit-identical outputs."""
    if "avx2" not in TIERS:
        pytest.skip("no AVX2 + FMA here")
    x, w, b = data(rng, M, N, K, True)
    x[M // 2, K // 2] = np.nan if M > 2 else x[M // 2, K // 2]  # a NaN row: NaN scale, NaN outputs
    packed, scales, sums = _core._pack_int8(w)
    with at_tier("avx2"):
        assert _core.kernels()["int8 GEMM"] == "avx2"
        fast = _core._linear_int8(x, packed, scales, sums, N, K, b, act)
    with at_tier("portable"):
        slow = _core._linear_int8(x, packed, scales, sums, N, K, b, act)
    assert_same_epilogue_result(fast, slow, act)


def test_bf16_nonfinite(rng, tier):
    """NaN in a row of x makes that output row NaN; inf gives inf or NaN (inf * 0 weights)."""
    M, N, K = 5, 40, 33
    x, w, b = data(rng, M, N, K, True)
    x[1, 7] = np.nan
    x[3, 2] = np.inf
    out = _core._linear_bf16(x, _core._pack_bf16(w), N, K, b, 0)
    assert np.isnan(out[1]).all()
    assert (~np.isfinite(out[3])).all()
    keep = [0, 2, 4]
    ref = bf16_round(x[keep]).astype(np.float64) @ bf16_round(w).astype(np.float64).T + b
    np.testing.assert_allclose(out[keep], ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# int8


def test_pack_int8(rng):
    N, K = 45, 19
    w = rng.standard_normal((N, K), dtype=np.float32)
    w[3] = 0
    w[4, 5] = np.nan
    packed, scales, sums = _core._pack_int8(w)
    q, s = quantize_rows(w)
    got = unpack_int8(packed, N, K)
    np.testing.assert_array_equal(got[:N, :K], q)
    assert not got[N:].any() and not got[:, K:].any()
    np.testing.assert_array_equal(scales.view(np.uint32), s.view(np.uint32))
    np.testing.assert_array_equal(sums, q.sum(axis=1))
    assert scales[3] == 0 and np.isnan(scales[4])


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_int8_exact(rng, tier, M, N, K, bias):
    x, w, b = data(rng, M, N, K, bias)
    out = _core._linear_int8(x, *_core._pack_int8(w), N, K, b, 0)
    np.testing.assert_array_equal(out, int8_ref(x, w, b))


@pytest.mark.parametrize("act", ACTS)
def test_linear_int8_act(rng, tier, act):
    M, N, K = 19, 45, 70
    x, w, b = data(rng, M, N, K, True)
    out = _core._linear_int8(x, *_core._pack_int8(w), N, K, b, act)
    np.testing.assert_allclose(out, act_ref(int8_ref(x, w, b), act), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("act", ACTS)
def test_int8_simd_matches_fallback(rng, act):
    M, N, K = 100, 70, 1100  # two K blocks: int32 partial sums stored in the output
    x, w, b = data(rng, M, N, K, True)
    packed = _core._pack_int8(w)
    fast = _core._linear_int8(x, *packed, N, K, b, act)
    with at_tier("portable"):
        slow = _core._linear_int8(x, *packed, N, K, b, act)
    assert_same_epilogue_result(fast, slow, act)  # int32 sums are exact, the same epilogue code but GELU


def test_int8_nonfinite(rng, tier):
    """A row of x with NaN/inf, or a weight channel with NaN/inf, gives an all-NaN row/column."""
    M, N, K = 6, 40, 33
    x, w, b = data(rng, M, N, K, True)
    x[1, 7], x[3, 2] = np.nan, -np.inf
    x[5] = 0  # zero row: scale 0, output = bias
    w[9, 4] = np.inf
    out = _core._linear_int8(x, *_core._pack_int8(w), N, K, b, 0)
    assert np.isnan(out[[1, 3]]).all() and np.isnan(out[:, 9]).all()
    np.testing.assert_array_equal(out[5, np.arange(N) != 9], b[np.arange(N) != 9])
    rows, cols = [0, 2, 4], np.arange(N) != 9
    np.testing.assert_array_equal(out[rows][:, cols], int8_ref(x[rows], w[cols], b[cols]))


# ---------------------------------------------------------------------------------------------
# Threads, accuracy, argument checks


@pytest.mark.parametrize("kind", ["bf16", "int8"])
def test_threads_identical(rng, kind):
    M, N, K = 300, 200, 600
    x, w, b = data(rng, M, N, K, True)
    if kind == "bf16":
        wp = _core._pack_bf16(w)
        run = lambda: _core._linear_bf16(x, wp, N, K, b, 1)  # noqa: E731
    else:
        packed = _core._pack_int8(w)
        run = lambda: _core._linear_int8(x, *packed, N, K, b, 1)  # noqa: E731
    old = vitc.get_num_threads()
    try:
        vitc.set_num_threads(1)
        one = run()
        vitc.set_num_threads(2)
        two = run()
    finally:
        vitc.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


def test_accuracy_vs_fp32(rng):
    """Realistic ViT data: layer-normed activations, weights ~ N(0, 0.02), fc2-like GELU input."""
    M, N, K = 257, 256, 1024
    x = rng.standard_normal((M, K), dtype=np.float32)
    w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
    b = (rng.standard_normal(N) * 0.02).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b

    def rel(y):
        return np.linalg.norm(y - ref) / np.linalg.norm(ref)

    err_bf16 = rel(_core._linear_bf16(x, _core._pack_bf16(w), N, K, b, 0))
    err_int8 = rel(_core._linear_int8(x, *_core._pack_int8(w), N, K, b, 0))
    assert 1e-4 < err_bf16 < BF16_REL_VS_FP32  # nonzero: bf16 rounding really happens
    assert 1e-3 < err_int8 < INT8_REL_VS_FP32


def test_argument_checks(rng):
    x, w, b = data(rng, 4, 40, 8, True)
    wp = _core._pack_bf16(w)
    packed, scales, sums = _core._pack_int8(w)
    with pytest.raises(ValueError, match="w: expected dtype float32"):
        _core._pack_bf16(w.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core._pack_int8(np.asfortranarray(w))
    with pytest.raises(ValueError, match=r"x: expected \(M, 8\)"):
        _core._linear_bf16(x[:, :4].copy(), wp, 40, 8, b, 0)
    with pytest.raises(ValueError, match="w_packed: expected"):
        _core._linear_bf16(x, wp[:-2], 40, 8, b, 0)
    with pytest.raises(ValueError, match="w_packed: expected dtype uint16"):
        _core._linear_bf16(x, wp.view(np.int16), 40, 8, b, 0)
    with pytest.raises(ValueError, match="b: expected 40 elements"):
        _core._linear_bf16(x, wp, 40, 8, b[:3].copy(), 0)
    with pytest.raises(ValueError, match="act: expected 0..4"):
        _core._linear_bf16(x, wp, 40, 8, b, 7)
    with pytest.raises(ValueError, match="expected 1 <= N"):
        _core._linear_int8(x, packed, scales, sums, 0, 8, b, 0)
    with pytest.raises(ValueError, match="col_sums: expected dtype int32"):
        _core._linear_int8(x, packed, scales, sums.astype(np.int64), 40, 8, b, 0)
    with pytest.raises(ValueError, match="scales: expected 40 elements"):
        _core._linear_int8(x, packed, scales[:5].copy(), sums, 40, 8, b, 0)
    with pytest.raises(ValueError, match="packed: expected dtype int8"):
        _core._linear_int8(x, packed.view(np.uint8), scales, sums, 40, 8, b, 0)
    with pytest.raises(TypeError):
        _core._linear_int8(x.tolist(), packed, scales, sums, 40, 8, b, 0)


# ---------------------------------------------------------------------------------------------
# bf16 attention (AMX, AVX-512 BF16 and its emulation)


def attention_bf16_ref(q, k, v, scale):
    """The kernel's arithmetic in float64: bf16 q*scale, k, v; softmax numerators rounded to bf16,
    divided by their unrounded sum."""
    qs = bf16_round((q * np.float32(scale)).astype(np.float32)).astype(np.float64)
    s = qs @ bf16_round(k).astype(np.float64).T
    e = np.exp(s - s.max(axis=1, keepdims=True))
    p = bf16_round(e.astype(np.float32)).astype(np.float64)
    return p @ bf16_round(v).astype(np.float64) / e.sum(axis=1, keepdims=True)


def attention_f64(q, k, v, scale):
    s = q.astype(np.float64) @ k.astype(np.float64).T * scale
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e @ v.astype(np.float64) / e.sum(axis=1, keepdims=True)


# at the best tier allowed here: AMX tiles or vdpbf16ps (AVX-512 BF16); float32 elsewhere
BF16_ATTENTION = _core.kernels()["bf16/int8 attention"] != "float32"
ATTENTION_SHAPES = [(1, 1, 64), (5, 7, 32), (33, 70, 64), (1025, 1025, 64), (64, 31, 32), (25, 197, 64)]


@contextlib.contextmanager
def attention_code(code: str):
    """The bf16 attention of this machine ("hardware") or the AVX-512 BF16 source on its emulation."""
    if code == "emulated":
        with attention_emulation():
            yield
    else:
        yield


def check_attention_bf16(out, q, k, v, scale):
    # bf16 rounding of a numerator can flip where the kernel's fp32 score differs from float64 in the
    # last bit: a few elements move by ~1e-4
    np.testing.assert_allclose(out, attention_bf16_ref(q, k, v, scale), rtol=1e-3, atol=1e-3)
    exact = attention_f64(q, k, v, scale)
    assert np.linalg.norm(out - exact) / np.linalg.norm(exact) < 1e-2


@pytest.mark.parametrize("code", ["hardware", "emulated"])
@pytest.mark.parametrize("S,T,D", ATTENTION_SHAPES)
def test_attention_bf16(rng, tier, code, S, T, D):
    q = rng.standard_normal((S, D), dtype=np.float32) * 2
    k = rng.standard_normal((T, D), dtype=np.float32)
    v = rng.standard_normal((T, D), dtype=np.float32)
    scale = 1 / np.sqrt(D)
    with attention_code(code):
        runs = code == "emulated" or _core.kernels()["bf16/int8 attention"] != "float32"
        if not runs:  # no AMX nor AVX-512 BF16 at this tier: the hook refuses, models keep fp32
            with pytest.raises(RuntimeError, match="does not run here"):
                _core._attention_bf16(q, k, v, scale)
            return
        out = _core._attention_bf16(q, k, v, scale)
    check_attention_bf16(out, q, k, v, scale)


def test_attention_bf16_emulation_matches_hardware(rng):
    """Where the CPU runs a bf16 attention, its emulated AVX-512 BF16 twin gives the same values up
    to the softmax's bf16 rounding flips (the AMX tiles may sum the pairs in another order)."""
    q = rng.standard_normal((70, 64), dtype=np.float32) * 2
    k, v = rng.standard_normal((2, 197, 64), dtype=np.float32)
    for tier in TIERS:
        with at_tier(tier):
            if _core.kernels()["bf16/int8 attention"] == "float32":
                continue
            hardware = _core._attention_bf16(q, k, v, 0.125)
            with attention_emulation():
                emulated = _core._attention_bf16(q, k, v, 0.125)
            np.testing.assert_allclose(hardware, emulated, rtol=0, atol=1e-3)
            assert np.abs(hardware - emulated).mean() < 1e-5


def test_attention_bf16_no_worse_than_amx_bar(rng):
    """The emulated AVX-512 BF16 kernel's error vs float64 is that of bf16 inputs: on ViT-B-like
    heads (T 197, D 64) within the bar the AMX kernel's test sets, and close to the error of the same
    arithmetic done in float64 on the bf16-rounded inputs (attention_bf16_ref)."""
    for _ in range(4):
        q = rng.standard_normal((197, 64), dtype=np.float32) * 3
        k, v = rng.standard_normal((2, 197, 64), dtype=np.float32)
        with attention_emulation():
            out = _core._attention_bf16(q, k, v, 0.125)
        exact = attention_f64(q, k, v, 0.125)
        err = np.linalg.norm(out - exact) / np.linalg.norm(exact)
        ref_err = np.linalg.norm(attention_bf16_ref(q, k, v, 0.125) - exact) / np.linalg.norm(exact)
        assert err < 1e-2 and err < 1.05 * ref_err + 1e-6


@pytest.mark.parametrize("code", ["hardware", "emulated"])
def test_attention_bf16_nan_and_shapes(rng, code):
    q = rng.standard_normal((20, 64), dtype=np.float32)
    kv = rng.standard_normal((40, 64), dtype=np.float32)
    with attention_code(code):
        with pytest.raises(ValueError, match=r"expected q \(S, D\)"):
            _core._attention_bf16(q, kv[:, :32].copy(), kv, 0.125)
        with pytest.raises(RuntimeError, match="D=48"):
            _core._attention_bf16(q[:, :48].copy(), kv[:, :48].copy(), kv[:, :48].copy(), 0.125)
        if code == "hardware" and not BF16_ATTENTION:
            return
        q[3, 5] = np.nan
        out = _core._attention_bf16(q, kv, kv, 0.125)
    assert np.isnan(out[3]).all() and np.isfinite(np.delete(out, 3, axis=0)).all()


def test_attention_bf16_denormals_and_ranges(rng):
    """bf16 rounding flushes denormal inputs to zero (vcvtne2ps2bf16, vdpbf16ps DAZ); huge scores
    (exp underflow of every other key) and a constant row are exact."""
    q = rng.standard_normal((9, 32), dtype=np.float32)
    k = rng.standard_normal((11, 32), dtype=np.float32)
    v = rng.standard_normal((11, 32), dtype=np.float32)
    q[0] = 1e-40  # denormal: a zero query, uniform probabilities
    q[1] = 0.0
    k[2] *= 1e4  # one dominating key for most rows
    v[:, 0] = 1e-39  # denormal values read as zero
    with attention_emulation():
        out = _core._attention_bf16(q, k, v, 1.0)
    uniform = bf16_round(v).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(out[0], uniform, rtol=1e-2, atol=1e-3)
    np.testing.assert_array_equal(out[0], out[1])
    assert (out[:, 0] == 0).all()
    check_attention_bf16(out, q, k, v, 1.0)
