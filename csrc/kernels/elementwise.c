// elementwise.c: element-wise activations (exact GELU, tanh GELU, quick GELU, ReLU, tanh) and the
// exp pass of softmax, float32 and float64. AVX-512 versions are chosen at run time; scalar
// fallbacks compute in double. Pure C: no Python, no allocation.
#include <math.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VITC_HAVE_AVX512_CODE 1
#include <immintrin.h>
#else
#define VITC_HAVE_AVX512_CODE 0
#endif

static const double INV_SQRT2 = 0.70710678118654752440;       // 1 / sqrt(2), exact GELU
static const double SQRT_2_OVER_PI = 0.79788456080286535588;  // sqrt(2 / pi), tanh GELU
static const double GELU_TANH_COEF = 0.044715;                // x^3 coefficient, tanh GELU
static const double QUICK_GELU_COEF = 1.702;                  // quick GELU sigmoid slope

// ---------------------------------------------------------------------------------------------
// Run-time dispatch: the tier policy (cpu.h) says whether the AVX-512 code runs.

static int use_avx512(void) {
    return VITC_HAVE_AVX512_CODE && vitc_op_tier(VITC_OP_ELEMENTWISE) >= VITC_TIER_AVX512;
}

// The AVX2 tier has AVX2 code for the exact GELU only (the rest runs its portable code there).
static int use_avx2(void) {
    return VITC_HAVE_AVX512_CODE && vitc_op_tier(VITC_OP_ELEMENTWISE) == VITC_TIER_AVX2;
}

// ---------------------------------------------------------------------------------------------
// Scalar definitions (double precision), the reference for the vector code.

// At +-inf, as PyTorch: gelu(+inf) = +inf, gelu(-inf) = NaN (torch evaluates -inf * 0; the limit
// would be -0, but NaN and inf propagate as PyTorch propagates them). The NaN is returned as a
// constant: no "invalid" flag for an input that is not a NaN.
static inline double gelu_scalar(double x) {
    if (isinf(x)) return x > 0 ? x : NAN;
    // 0.5 x erfc(-x / sqrt 2) == 0.5 x (1 + erf(x / sqrt 2)) without the cancellation for x < 0.
    return 0.5 * x * erfc(-x * INV_SQRT2);
}

// 0.5 x (1 + tanh(u)) == x * sigmoid(2u) == x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// x sigmoid(a) without overflow in exp (no spurious floating-point flags).
static inline double x_sigmoid(double x, double a) {
    if (isgreaterequal(a, 0.0)) return x / (1.0 + exp(-a));  // quiet compare: NaN raises nothing
    const double e = exp(a);
    return x * e / (1.0 + e);
}

// |x| beyond this: tanh GELU is x or -0 in double (and x^3 would overflow for huge x).
static const double GELU_TANH_SATURATE = 30.0;

// -inf gives NaN as in PyTorch (see gelu_scalar); finite x < -30 give -0 as PyTorch does.
static inline double gelu_tanh_scalar(double x) {
    if (isinf(x)) return x > 0 ? x : NAN;
    if (isgreater(fabs(x), GELU_TANH_SATURATE)) return x > 0 ? x : -0.0;
    const double u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x);
    return x_sigmoid(x, 2.0 * u);
}

// x sigmoid(1.702 x) (HF "quick_gelu"): -inf gives NaN as in PyTorch, -inf * sigmoid(-inf).
static inline double quick_gelu_scalar(double x) {
    if (isinf(x)) return x > 0 ? x : NAN;
    return x_sigmoid(x, QUICK_GELU_COEF * x);
}

static inline double relu_scalar(double x) { return isgreater(x, 0.0) || isnan(x) ? x : 0.0; }

#if VITC_HAVE_AVX512_CODE
// ---------------------------------------------------------------------------------------------
// AVX-512 float32: exp (Cephes expf polynomial, ~1 ulp), exact GELU via erfc, tanh GELU.
#define AVX512 __attribute__((target("avx512f")))

static const float EXP_LOG2E = 1.44269504088896341f;
static const float EXP_LN2_HI = 0.693359375f;  // few mantissa bits: n * LN2_HI is exact
static const float EXP_LN2_LO = -2.12194440e-4f;
static const float EXP_P0 = 1.9875691500e-4f, EXP_P1 = 1.3981999507e-3f, EXP_P2 = 8.3334519073e-3f,
                   EXP_P3 = 4.1665795894e-2f, EXP_P4 = 1.6666665459e-1f, EXP_P5 = 5.0000001201e-1f;
static const float EXP_UNDERFLOW = -104.0f;  // exp(x) < smallest denormal / 2 below this
static const float EXP_OVERFLOW = 88.72284f;  // exp(x) > FLT_MAX above this
static const float EXP_CLAMP_HI = 88.0f;      // largest clamped input: 2^n stays finite

// Clamp to [lo, hi] with quiet compares: NaN stays NaN and raises no "invalid" flag
// (vminps/vmaxps would raise it for quiet NaNs too).
AVX512 static inline __m512 clamp512(__m512 x, float lo, float hi) {
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_LT_OQ), _mm512_set1_ps(lo));
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(hi), _CMP_GT_OQ), _mm512_set1_ps(hi));
}

// NaN propagates; out-of-range inputs are clamped first so no spurious FP flags are raised.
AVX512 static inline __m512 exp512(__m512 x_in) {
    const __m512 x = clamp512(x_in, EXP_UNDERFLOW, EXP_CLAMP_HI);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P5));
    __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    y = _mm512_scalef_ps(y, n);  // y * 2^n, correct denormals
    // Ordered compares: NaN inputs keep the NaN computed above.
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x_in, _mm512_set1_ps(EXP_UNDERFLOW), _CMP_LE_OQ),
                           _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x_in, _mm512_set1_ps(EXP_OVERFLOW), _CMP_GE_OQ),
                           _mm512_set1_ps(INFINITY));
    return y;
}

// erfc(z) for z >= 0 (Numerical Recipes `erfcc`, relative error < 1.2e-7):
//   erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2).
static const float ERFC_P[10] = {-1.26551223f, 1.00002368f, 0.37409196f,  0.09678418f,
                                 -0.18628806f, 0.27886807f, -1.13520398f, 1.48851587f,
                                 -0.82215223f, 0.17087277f};
static const float GELU_CLAMP = 20.0f;  // |x| beyond this: Phi(x) is 0 or 1 in float32

// P(t) of erfcc by Horner (float; a double Horner measured no better, the t and exp roundings
// dominate: about 7 ulp worst case for the whole GELU).
AVX512 static inline __m512 erfc_poly512(__m512 t) {
    __m512 p = _mm512_set1_ps(ERFC_P[9]);
    for (int i = 8; i >= 0; i--) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ERFC_P[i]));
    return p;
}

// Exact GELU: x Phi(x), Phi(x) = h for x < 0 and 1 - h otherwise, h = erfc(|x| / sqrt 2) / 2.
// z^2 = x^2 / 2 is carried as hi + lo (FMA) so large |x| keep full relative accuracy.
AVX512 static inline __m512 gelu512(__m512 x) {
    const __m512 ax = clamp512(_mm512_abs_ps(x), 0.0f, GELU_CLAMP);
    const __m512 sq_hi = _mm512_mul_ps(ax, ax);
    const __m512 sq_lo = _mm512_fmsub_ps(ax, ax, sq_hi);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 z = _mm512_mul_ps(ax, _mm512_set1_ps((float)INV_SQRT2));
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, half, _mm512_set1_ps(1.0f)));
    const __m512 p = erfc_poly512(t);
    const __m512 e_hi = exp512(_mm512_mul_ps(sq_hi, _mm512_set1_ps(-0.5f)));
    const __m512 e_lo = exp512(_mm512_fnmadd_ps(sq_lo, half, p));  // P(t) - lo / 2
    const __m512 h = _mm512_mul_ps(_mm512_mul_ps(half, t), _mm512_mul_ps(e_hi, e_lo));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 phi = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(1.0f), h), neg, h);
    // -inf gives NaN as PyTorch (see gelu_scalar), set by mask: -inf * 0 would raise "invalid".
    // (torch's own float32 vectorised exact GELU also gives NaN at +inf, a quirk of its erf
    // path: vitc keeps inf there, as torch's float64 and tanh GELUs do.)
    const __mmask16 minus_inf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __m512 y = _mm512_mul_ps(_mm512_mask_mov_ps(x, minus_inf, _mm512_set1_ps(-0.0f)), phi);
    return _mm512_mask_mov_ps(y, minus_inf, _mm512_set1_ps(NAN));
}

// x sigmoid(arg) = x / (1 + e) for arg >= 0, x e / (1 + e) otherwise, e = exp(-|arg|): exp never
// overflows. -inf maps to NaN as in PyTorch (-inf * sigmoid(-inf) = -inf * 0), set by mask so
// the arithmetic raises no "invalid" flag.
AVX512 static inline __m512 x_sigmoid512(__m512 x, __m512 arg) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(arg)));
    const __mmask16 minus_inf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __mmask16 neg = _mm512_cmp_ps_mask(arg, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 xm = _mm512_mask_mov_ps(x, minus_inf, _mm512_set1_ps(-0.0f));
    const __m512 num = _mm512_mask_mul_ps(xm, neg, xm, e);
    const __m512 y = _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    return _mm512_mask_mov_ps(y, minus_inf, _mm512_set1_ps(NAN));
}

// |x| beyond this the float32 tanh GELU is x or -0; clamping the sigmoid argument keeps x^3 finite.
static const float GELU_TANH_CLAMP = 20.0f;

AVX512 static inline __m512 gelu_tanh512(__m512 x_in) {
    const __m512 x = clamp512(x_in, -GELU_TANH_CLAMP, GELU_TANH_CLAMP);
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 inner = _mm512_fmadd_ps(x3, _mm512_set1_ps((float)GELU_TANH_COEF), x);
    return x_sigmoid512(x_in, _mm512_mul_ps(inner, _mm512_set1_ps((float)(2.0 * SQRT_2_OVER_PI))));
}

AVX512 static inline __m512 quick_gelu512(__m512 x) {
    return x_sigmoid512(x, _mm512_mul_ps(x, _mm512_set1_ps((float)QUICK_GELU_COEF)));
}

#define DEFINE_MAP512(name, fn)                                                      \
    AVX512 static void name(float *out, const float *inp, vitc_int n) {            \
        vitc_int i = 0;                                                              \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, fn(_mm512_loadu_ps(inp + i))); \
        if (i < n) {                                                                 \
            const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);                   \
            _mm512_mask_storeu_ps(out + i, m, fn(_mm512_maskz_loadu_ps(m, inp + i))); \
        }                                                                            \
    }
DEFINE_MAP512(gelu_f32_avx512, gelu512)
DEFINE_MAP512(gelu_tanh_f32_avx512, gelu_tanh512)
DEFINE_MAP512(quick_gelu_f32_avx512, quick_gelu512)

AVX512 static double exp_shift_sum_f32_avx512(float *out, const float *inp, float shift, vitc_int n) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    vitc_int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(inp + i), s));
        _mm512_storeu_ps(out + i, e);
        acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, inp + i), s));
        _mm512_mask_storeu_ps(out + i, m, e);
        float tail[16];
        _mm512_storeu_ps(tail, e);
        for (vitc_int j = 0; j < n - i; j++) sum += tail[j];
    }
    return sum;
}

// Row maximum; NaN if the row has one. Quiet compares raise no FP flag for NaN inputs.
AVX512 static float row_max_f32_avx512(const float *x, vitc_int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    vitc_int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ), v);
    }
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ), v);
    }
    if (nan) return NAN;
    float lanes[16], best = -INFINITY;
    _mm512_storeu_ps(lanes, m);
    for (int j = 0; j < 16; j++) best = lanes[j] > best ? lanes[j] : best;
    return best;
}

AVX512 static void scale_f32_avx512(float *x, float s, vitc_int n) {
    const __m512 sv = _mm512_set1_ps(s);
    vitc_int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), sv));
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), sv));
    }
}
#endif  // VITC_HAVE_AVX512_CODE

#if VITC_HAVE_AVX512_CODE
// ---------------------------------------------------------------------------------------------
// AVX2 + FMA float32: the exact GELU of the AVX-512 code above, lane for lane (the same
// polynomials, operations and order; 2^n applied in two exact steps where vscalefps does it in
// one, the same rounding), for the AVX2 tier.
#define AVX2FMA __attribute__((target("avx2,fma")))

// Clamp to [lo, hi] with quiet compares (NaN stays NaN, no flag), as clamp512.
AVX2FMA static inline __m256 clamp256(__m256 x, float lo, float hi) {
    const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    x = _mm256_blendv_ps(x, l, _mm256_cmp_ps(x, l, _CMP_LT_OQ));
    return _mm256_blendv_ps(x, h, _mm256_cmp_ps(x, h, _CMP_GT_OQ));
}

// 2^k for integer-valued k in [-126, 127] (as float lanes): the exponent field. A NaN lane (a NaN
// input, whose result stays NaN anyway) converts as 0: vcvtps2dq would raise "invalid".
AVX2FMA static inline __m256 pow2_256(__m256 k) {
    k = _mm256_blendv_ps(k, _mm256_setzero_ps(), _mm256_cmp_ps(k, k, _CMP_UNORD_Q));
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

AVX2FMA static inline __m256 exp256(__m256 x_in) {
    const __m256 x = clamp256(x_in, EXP_UNDERFLOW, EXP_CLAMP_HI);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // y * 2^n, n in [-150, 127]: y * 2^h is exact (a normal float), then one rounding by 2^(n-h).
    const __m256 h = _mm256_round_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)),
                                     _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    y = _mm256_mul_ps(_mm256_mul_ps(y, pow2_256(h)), pow2_256(_mm256_sub_ps(n, h)));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(),
                         _mm256_cmp_ps(x_in, _mm256_set1_ps(EXP_UNDERFLOW), _CMP_LE_OQ));
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY),
                            _mm256_cmp_ps(x_in, _mm256_set1_ps(EXP_OVERFLOW), _CMP_GE_OQ));
}

AVX2FMA static inline __m256 erfc_poly256(__m256 t) {
    __m256 p = _mm256_set1_ps(ERFC_P[9]);
    for (int i = 8; i >= 0; i--) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERFC_P[i]));
    return p;
}

// gelu512 on 8 lanes (see there).
AVX2FMA static inline __m256 gelu256(__m256 x) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 ax = clamp256(_mm256_and_ps(x, abs_mask), 0.0f, GELU_CLAMP);
    const __m256 sq_hi = _mm256_mul_ps(ax, ax);
    const __m256 sq_lo = _mm256_fmsub_ps(ax, ax, sq_hi);
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 z = _mm256_mul_ps(ax, _mm256_set1_ps((float)INV_SQRT2));
    const __m256 t =
        _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, half, _mm256_set1_ps(1.0f)));
    const __m256 p = erfc_poly256(t);
    const __m256 e_hi = exp256(_mm256_mul_ps(sq_hi, _mm256_set1_ps(-0.5f)));
    const __m256 e_lo = exp256(_mm256_fnmadd_ps(sq_lo, half, p));
    const __m256 hh = _mm256_mul_ps(_mm256_mul_ps(half, t), _mm256_mul_ps(e_hi, e_lo));
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), hh), hh, neg);
    const __m256 minus_inf = _mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __m256 y = _mm256_mul_ps(_mm256_blendv_ps(x, _mm256_set1_ps(-0.0f), minus_inf), phi);
    return _mm256_blendv_ps(y, _mm256_set1_ps(NAN), minus_inf);
}

// out (n) = gelu(inp (n)); the tail through a zero-padded copy (lanes are independent).
AVX2FMA static void gelu_f32_avx2(float *out, const float *inp, vitc_int n) {
    vitc_int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, gelu256(_mm256_loadu_ps(inp + i)));
    if (i < n) {
        float tail[8] = {0};
        for (vitc_int j = 0; j < n - i; j++) tail[j] = inp[i + j];
        _mm256_storeu_ps(tail, gelu256(_mm256_loadu_ps(tail)));
        for (vitc_int j = 0; j < n - i; j++) out[i + j] = tail[j];
    }
}
#endif  // VITC_HAVE_AVX512_CODE (AVX2)

// ---------------------------------------------------------------------------------------------
// Public kernels

void gelu_forward_f32(float *out, const float *inp, vitc_int n) {
#if VITC_HAVE_AVX512_CODE
    if (use_avx512()) {
        gelu_f32_avx512(out, inp, n);
        return;
    }
    if (use_avx2()) {
        gelu_f32_avx2(out, inp, n);
        return;
    }
#endif
    for (vitc_int i = 0; i < n; i++) out[i] = (float)gelu_scalar(inp[i]);
}

void gelu_forward_f64(double *out, const double *inp, vitc_int n) {
    for (vitc_int i = 0; i < n; i++) out[i] = gelu_scalar(inp[i]);
}

void gelu_tanh_forward_f32(float *out, const float *inp, vitc_int n) {
#if VITC_HAVE_AVX512_CODE
    if (use_avx512()) {
        gelu_tanh_f32_avx512(out, inp, n);
        return;
    }
#endif
    for (vitc_int i = 0; i < n; i++) out[i] = (float)gelu_tanh_scalar(inp[i]);
}

void gelu_tanh_forward_f64(double *out, const double *inp, vitc_int n) {
    for (vitc_int i = 0; i < n; i++) out[i] = gelu_tanh_scalar(inp[i]);
}

void act_forward_f32(float *out, const float *inp, vitc_act act, vitc_int n) {
    switch (act) {
    case VITC_ACT_NONE:
        if (out != inp)
            for (vitc_int i = 0; i < n; i++) out[i] = inp[i];
        return;
    case VITC_ACT_GELU: gelu_forward_f32(out, inp, n); return;
    case VITC_ACT_GELU_TANH: gelu_tanh_forward_f32(out, inp, n); return;
    case VITC_ACT_QUICK_GELU:
#if VITC_HAVE_AVX512_CODE
        if (use_avx512()) {
            quick_gelu_f32_avx512(out, inp, n);
            return;
        }
#endif
        for (vitc_int i = 0; i < n; i++) out[i] = (float)quick_gelu_scalar(inp[i]);
        return;
    case VITC_ACT_RELU:
        for (vitc_int i = 0; i < n; i++) out[i] = (float)relu_scalar(inp[i]);
        return;
    case VITC_ACT_TANH:
        for (vitc_int i = 0; i < n; i++) out[i] = (float)tanh((double)inp[i]);
        return;
    case VITC_ACT_COUNT: return;  // not an activation
    }
}

void act_forward_f64(double *out, const double *inp, vitc_act act, vitc_int n) {
    switch (act) {
    case VITC_ACT_NONE:
        if (out != inp)
            for (vitc_int i = 0; i < n; i++) out[i] = inp[i];
        return;
    case VITC_ACT_GELU: gelu_forward_f64(out, inp, n); return;
    case VITC_ACT_GELU_TANH: gelu_tanh_forward_f64(out, inp, n); return;
    case VITC_ACT_QUICK_GELU:
        for (vitc_int i = 0; i < n; i++) out[i] = quick_gelu_scalar(inp[i]);
        return;
    case VITC_ACT_RELU:
        for (vitc_int i = 0; i < n; i++) out[i] = relu_scalar(inp[i]);
        return;
    case VITC_ACT_TANH:
        for (vitc_int i = 0; i < n; i++) out[i] = tanh(inp[i]);
        return;
    case VITC_ACT_COUNT: return;  // not an activation
    }
}

double vitc_exp_shift_sum_f32(float *out, const float *inp, float shift, vitc_int n) {
#if VITC_HAVE_AVX512_CODE
    if (use_avx512()) return exp_shift_sum_f32_avx512(out, inp, shift, n);
#endif
    double sum = 0.0;
    for (vitc_int i = 0; i < n; i++) {
        out[i] = expf(inp[i] - shift);
        sum += out[i];
    }
    return sum;
}

float vitc_row_max_f32(const float *x, vitc_int n) {
#if VITC_HAVE_AVX512_CODE
    if (use_avx512()) return row_max_f32_avx512(x, n);
#endif
    float m = x[0];
    int has_nan = isnan(x[0]);
    for (vitc_int i = 1; i < n; i++) {
        m = isgreater(x[i], m) ? x[i] : m;
        has_nan |= isnan(x[i]);
    }
    return has_nan ? NAN : m;
}

void vitc_scale_f32(float *x, float s, vitc_int n) {
#if VITC_HAVE_AVX512_CODE
    if (use_avx512()) {
        scale_f32_avx512(x, s, n);
        return;
    }
#endif
    for (vitc_int i = 0; i < n; i++) x[i] *= s;
}
