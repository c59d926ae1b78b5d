// gemm_int8.c: the int8 linear layer: weights quantized once per output channel, activations per
// row (token) per call, int32 sums (vpdpbusd on AVX-512 VNNI, tdpbusd on AMX, a portable scalar
// path with bit-identical results). Layouts and AMX notes in gemm_lowp.h. Not the model wiring;
// pure C, no Python, no allocation: packed weights and activation scratch come from the caller.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm_lowp.h"

// The code the tier policy (cpu.h) picks: AMX tiles, AVX-512 VNNI, AVX2 vpmaddwd or portable.
static vitc_tier int8_tier(void) {
    return LOWP_HAVE_X86_CODE ? vitc_op_tier(VITC_OP_GEMM_INT8) : VITC_TIER_PORTABLE;
}

// u8 activations carry q + 128 (q in [-127, 127]); the column sums remove the offset.
static const int32_t INT8_ZERO_POINT = 128;
static const float INT8_QMAX = 127.0f;

// ---------------------------------------------------------------------------------------------
// int8 weights: per output channel symmetric, scale = max|w| / 127, q = rint(w * (127 / max|w|)).
// A channel of zeros (or of denormals only) has scale 0 and q = 0; a channel with NaN or inf has
// scale NaN (its outputs are NaN).

vitc_int pack_int8_len(vitc_int N, vitc_int K) {
    return round_up(N, NR) * round_up(K, 4);
}

// Shared by weights and activations: scale and the multiplier that maps x to [-127, 127].
static void int8_scale(float amax, float *scale, float *inv) {
    if (!(amax <= 3.4028234663852886e38f)) {  // NaN or inf
        *scale = NAN;
        *inv = 0.0f;
    } else if (amax < 1.17549435e-38f) {  // zero or denormal: 127 / amax would overflow
        *scale = 0.0f;
        *inv = 0.0f;
    } else {
        *scale = amax / INT8_QMAX;
        *inv = INT8_QMAX / amax;
    }
}

static int32_t int8_quant(float x, float inv) {
    const float q = nearbyintf(x * inv);  // round half to even (default rounding mode)
    if (q != q) return 0;                 // NaN or inf in a channel whose scale is NaN
    return q > INT8_QMAX ? (int32_t)INT8_QMAX : q < -INT8_QMAX ? -(int32_t)INT8_QMAX : (int32_t)q;
}

static float abs_max(const float *x, vitc_int n) {
    float m = 0.0f;
    int finite = 1;
    for (vitc_int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (!(a <= 3.4028234663852886e38f)) finite = 0;
        m = a > m ? a : m;
    }
    return finite ? m : INFINITY;
}

// ---------------------------------------------------------------------------------------------
// int8 activations: per row (token) symmetric scale, u8 = q + 128.
// A row with NaN or inf gets scale NaN, so its whole output row is NaN.
// scratch: row scales (round_up(M, 16) floats) then the u8 panels (M/MR, K/4, MR, 4).

vitc_int linear_int8_scratch_len(vitc_int M, vitc_int K) {
    const vitc_int panels = round_up(M, INT8_MR) * round_up(K, 4);
    const vitc_int rows = round_up(M, AMX_MR) * amx_row_bytes(round_up(K, 4), 1);
    // The AVX2 tier's panels hold two int16 pairs (8 bytes) per quad: twice the u8 panels.
    return round_up(M, 16) * (vitc_int)sizeof(float) + max_int(2 * panels, rows);
}

typedef struct {
    float *out;
    const float *inp;
    const int8_t *w;
    const float *col_scale;
    const int32_t *col_sum;
    const float *b;
    vitc_act act;
    vitc_int M, N, K, ld_out, ld_inp;
    float *row_scale;
    uint32_t *a;   // u8 quads (AVX2 tier: two dwords of int16 pairs per quad)
    int simd;      // AVX-512 VNNI tiles
    int avx2;      // AVX2 vpmaddwd tiles
    vitc_int lda;  // AMX path: a holds plain rows, lda quads apart
} int8_ctx;

static uint32_t u8_quad(const float *x, vitc_int k, vitc_int K, float inv) {
    uint32_t v = 0;
    for (int t = 0; t < 4; t++) {
        const int32_t q = k + t < K ? int8_quant(x[k + t], inv) : 0;
        v |= (uint32_t)(q + INT8_ZERO_POINT) << (8 * t);
    }
    return v;
}

#if LOWP_HAVE_X86_CODE
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

VNNI_TARGET static float abs_max_avx512(const float *x, vitc_int n) {
    __m512 m = _mm512_setzero_ps();
    __mmask16 bad = 0;
    const __m512 fmax = _mm512_set1_ps(3.4028234663852886e38f);
    vitc_int k = 0;
    for (; k + 16 <= n; k += 16) {
        const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + k));
        bad |= _mm512_cmp_ps_mask(a, fmax, _CMP_NLE_UQ);  // NaN or inf
        m = _mm512_max_ps(m, a);
    }
    float r = _mm512_reduce_max_ps(m);
    int finite = bad == 0;
    for (; k < n; k++) {
        const float a = fabsf(x[k]);
        if (!(a <= 3.4028234663852886e38f)) finite = 0;
        r = a > r ? a : r;
    }
    return finite ? r : INFINITY;
}

// dst[p * stride] <- quad p of the quantized row x (K); same arithmetic as int8_quant.
// stride INT8_MR in a panel, 1 in a plain AMX row.
VNNI_TARGET static void u8_pack_row_avx512(uint32_t *dst, const float *x, vitc_int K, float inv,
                                           vitc_int stride) {
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    const __m512i zp = _mm512_set1_epi32(INT8_ZERO_POINT);
    vitc_int k = 0;
    for (; k + 64 <= K; k += 64) {
        uint32_t tmp[16];
        __m128i bytes[4];
        for (int t = 0; t < 4; t++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + k + 16 * t), vinv);
            __m512i q = _mm512_cvtps_epi32(v);  // round half to even (MXCSR default)
            q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), zp);
            bytes[t] = _mm512_cvtepi32_epi8(q);
        }
        uint32_t *d = dst + (k / 4) * stride;
        if (stride == 1) {
            for (int t = 0; t < 4; t++) _mm_storeu_si128((__m128i *)(d + 4 * t), bytes[t]);
            continue;
        }
        for (int t = 0; t < 4; t++) _mm_storeu_si128((__m128i *)(tmp + 4 * t), bytes[t]);
        for (int p = 0; p < 16; p++) d[p * stride] = tmp[p];
    }
    for (; k < K; k += 4) dst[(k / 4) * stride] = u8_quad(x, k, K, inv);
}
#endif

// Row m of the activations -> quads dst[p * stride] and its scale; rows past M hold q = 0.
static void int8_pack_row(const int8_ctx *c, vitc_int m, uint32_t *dst, vitc_int stride) {
    const vitc_int K4 = round_up(c->K, 4) / 4;
    const uint32_t pad = 0x80808080u;  // q = 0 in every byte
    if (m >= c->M) {
        for (vitc_int p = 0; p < K4; p++) dst[p * stride] = pad;
        return;
    }
    const float *x = c->inp + m * c->ld_inp;
    float scale, inv;
#if LOWP_HAVE_X86_CODE
    if (c->simd) {
        int8_scale(abs_max_avx512(x, c->K), &scale, &inv);
        c->row_scale[m] = scale;
        if (scale == scale) {
            u8_pack_row_avx512(dst, x, c->K, inv, stride);
            return;
        }
    } else
#endif
    {
        int8_scale(abs_max(x, c->K), &scale, &inv);
        c->row_scale[m] = scale;
    }
    if (scale != scale) {  // NaN/inf row: q = 0, the NaN scale makes the output NaN
        for (vitc_int p = 0; p < K4; p++) dst[p * stride] = pad;
        return;
    }
    for (vitc_int p = 0; p < K4; p++) dst[p * stride] = u8_quad(x, 4 * p, c->K, inv);
}

// Weight channel n -> quads dst[p * NR] (the (Kp/4, NR, 4) panel layout), its scale and sum.
// The AVX-512 path quantizes like the activations (u8 = q + 128), then flips the offset away.
static void int8_pack_weight_channel(const pack_job *j, vitc_int n, uint32_t *dst) {
    const vitc_int K = j->K, K4 = round_up(K, 4) / 4;
    const float *row = j->w + n * K;
    float scale, inv;
#if LOWP_HAVE_X86_CODE
    if (j->simd) {
        int8_scale(abs_max_avx512(row, K), &scale, &inv);
        if (scale == scale) {
            u8_pack_row_avx512(dst, row, K, inv, NR);
            for (vitc_int p = 0; p < K4; p++) dst[p * NR] ^= 0x80808080u;  // u8 -> int8 q
        } else {
            for (vitc_int p = 0; p < K4; p++) dst[p * NR] = 0;
        }
    } else
#endif
    {
        int8_scale(abs_max(row, K), &scale, &inv);
        for (vitc_int p = 0; p < K4; p++) {
            uint32_t quad = 0;
            for (int t = 0; t < 4; t++) {
                const int32_t q = 4 * p + t < K ? int8_quant(row[4 * p + t], inv) : 0;
                quad |= (uint32_t)(uint8_t)(int8_t)q << (8 * t);
            }
            dst[p * NR] = quad;
        }
    }
    int32_t sum = 0;
    for (vitc_int p = 0; p < K4; p++)
        for (int t = 0; t < 4; t++) sum += (int8_t)(uint8_t)(dst[p * NR] >> (8 * t));
    j->scales[n] = scale;
    j->col_sums[n] = sum;
}

static void int8_pack_weight_panels(void *vjob, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const pack_job *j = vjob;
    const vitc_int K4 = round_up(j->K, 4) / 4;
    for (vitc_int panel = begin; panel < end; panel++)
        for (vitc_int c = 0; c < NR; c++) {
            const vitc_int n = panel * NR + c;
            uint32_t *col = (uint32_t *)j->packed + panel * NR * K4 + c;
            if (n < j->N) {
                int8_pack_weight_channel(j, n, col);
                continue;
            }
            for (vitc_int p = 0; p < K4; p++) col[p * NR] = 0;
        }
}

// packed (pack_int8_len(N,K)), 4-byte aligned; scales (N), col_sums (N), w (N,K)
void pack_weights_int8(int8_t *packed, float *scales, int32_t *col_sums, const float *w, vitc_int N,
                       vitc_int K) {
    pack_job job = {packed, scales, col_sums, w, N, K, int8_tier() >= VITC_TIER_AVX512};
    vitc_parallel_for(round_up(N, NR) / NR, vitc_get_num_threads(), int8_pack_weight_panels, &job);
}

static void int8_pack_rows(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const int8_ctx *c = vctx;
    const vitc_int K4 = round_up(c->K, 4) / 4;
    for (vitc_int panel = begin; panel < end; panel++)
        for (vitc_int i = 0; i < INT8_MR; i++)
            int8_pack_row(c, panel * INT8_MR + i, c->a + panel * K4 * INT8_MR + i, INT8_MR);
}

// AMX layout: rows [begin, end) of round_up(M, AMX_MR), each lda quads apart.
static void int8_pack_rows_amx(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const int8_ctx *c = vctx;
    for (vitc_int m = begin; m < end; m++) int8_pack_row(c, m, c->a + m * c->lda, 1);
}

// Dequantization, identical in both paths:
//   (float)(acc - 128 col_sum) * (row_scale * col_scale) + b.
// One (INT8_MR x NR) tile over kc quads; partial sums are kept in c as int32 bits.
static void int8_tile_scalar(float *c, vitc_int ldc, const uint32_t *a, const int8_t *b,
                             vitc_int kc, vitc_int rows, vitc_int cols, int first, int last,
                             const float *rs, const float *cs, const int32_t *csum,
                             const float *bias, vitc_act act) {
    for (vitc_int i = 0; i < rows; i++) {
        int32_t acc[NR];
        for (int j = 0; j < NR; j++) {
            acc[j] = 0;
            if (!first && j < cols) memcpy(&acc[j], c + i * ldc + j, sizeof acc[j]);
        }
        for (vitc_int p = 0; p < kc; p++) {
            const uint32_t av = a[p * INT8_MR + i];
            const int8_t *bp = b + p * NR * 4;
            for (int j = 0; j < NR; j++)
                for (int t = 0; t < 4; t++)
                    acc[j] += (int32_t)((av >> (8 * t)) & 0xff) * (int32_t)bp[j * 4 + t];
        }
        for (vitc_int j = 0; j < cols; j++) {
            if (last) {
                const float s = rs[i] * cs[j];
                float y = (float)(acc[j] - INT8_ZERO_POINT * csum[j]) * s;
                if (bias) y = y + bias[j];
                c[i * ldc + j] = y;
            } else {
                memcpy(c + i * ldc + j, &acc[j], sizeof acc[j]);
            }
        }
    }
    if (last) apply_act_rows(c, ldc, act, rows, cols);
}

#if LOWP_HAVE_X86_CODE
// One output row of 32: (float)(acc - 128 col_sum) * (row_scale * col_scale) [+ bias].
VNNI_TARGET static inline void int8_dequant_row(float *dst, __m512i acc0, __m512i acc1, float rs,
                                                __m512i corr0, __m512i corr1, __m512 cs0,
                                                __m512 cs1, __m512 bias0, __m512 bias1,
                                                int has_bias, __mmask16 m0, __mmask16 m1) {
    const __m512 r = _mm512_set1_ps(rs);
    __m512 y0 =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc0, corr0)), _mm512_mul_ps(r, cs0));
    __m512 y1 =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc1, corr1)), _mm512_mul_ps(r, cs1));
    if (has_bias) {
        y0 = _mm512_add_ps(y0, bias0);
        y1 = _mm512_add_ps(y1, bias1);
    }
    _mm512_mask_storeu_ps(dst, m0, y0);
    _mm512_mask_storeu_ps(dst + 16, m1, y1);
}

VNNI_TARGET static void int8_tile_vnni(float *c, vitc_int ldc, const uint32_t *a, const int8_t *b,
                                       vitc_int kc, vitc_int rows, vitc_int cols, int first,
                                       int last, const float *rs, const float *cs,
                                       const int32_t *csum, const float *bias, vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32   ? 0xffff
                         : cols <= 16 ? 0
                                      : (__mmask16)((1u << (cols - 16)) - 1);
    __m512i acc[INT8_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < INT8_MR; i++) {
        if (first || i >= rows) {
            acc[i][0] = _mm512_setzero_si512();
            acc[i][1] = _mm512_setzero_si512();
        } else {
            acc[i][0] = _mm512_maskz_loadu_epi32(m0, c + i * ldc);
            acc[i][1] = _mm512_maskz_loadu_epi32(m1, c + i * ldc + 16);
        }
    }
    for (vitc_int p = 0; p < kc; p++) {
        const __m512i b0 = _mm512_loadu_si512(b + p * NR * 4);
        const __m512i b1 = _mm512_loadu_si512(b + p * NR * 4 + 64);
        const uint32_t *ap = a + p * INT8_MR;
#pragma GCC unroll 12
        for (int i = 0; i < INT8_MR; i++) {
            const __m512i ai = _mm512_set1_epi32((int)ap[i]);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], ai, b1);
        }
    }
    if (!last) {
#pragma GCC unroll 12
        for (int i = 0; i < INT8_MR; i++) {
            if (i >= rows) break;
            _mm512_mask_storeu_epi32(c + i * ldc, m0, acc[i][0]);
            _mm512_mask_storeu_epi32(c + i * ldc + 16, m1, acc[i][1]);
        }
        return;
    }
    const __m512i zp = _mm512_set1_epi32(INT8_ZERO_POINT);
    const __m512i corr0 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m0, csum));
    const __m512i corr1 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m1, csum + 16));
    const __m512 cs0 = _mm512_maskz_loadu_ps(m0, cs), cs1 = _mm512_maskz_loadu_ps(m1, cs + 16);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < INT8_MR; i++) {
        if (i >= rows) break;
        int8_dequant_row(c + i * ldc, acc[i][0], acc[i][1], rs[i], corr0, corr1, cs0, cs1, bias0,
                         bias1, bias != NULL, m0, m1);
    }
    apply_act_rows(c, ldc, act, rows, cols);
}

// c (rows, cols) = dequantized acc (rows, NR) int32, then the activation (int8_tile_vnni's
// epilogue for a block the AMX tiles stored).
VNNI_TARGET static void int8_store_block(float *c, vitc_int ldc, const int32_t *acc, vitc_int rows,
                                         vitc_int cols, const float *rs, const float *cs,
                                         const int32_t *csum, const float *bias, vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32   ? 0xffff
                         : cols <= 16 ? 0
                                      : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512i zp = _mm512_set1_epi32(INT8_ZERO_POINT);
    const __m512i corr0 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m0, csum));
    const __m512i corr1 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m1, csum + 16));
    const __m512 cs0 = _mm512_maskz_loadu_ps(m0, cs), cs1 = _mm512_maskz_loadu_ps(m1, cs + 16);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (vitc_int i = 0; i < rows; i++)
        int8_dequant_row(c + i * ldc, _mm512_load_si512(acc + i * NR),
                         _mm512_load_si512(acc + i * NR + 16), rs[i], corr0, corr1, cs0, cs1, bias0,
                         bias1, bias != NULL, m0, m1);
    apply_act_rows(c, ldc, act, rows, cols);
}
#endif

#if LOWP_HAVE_X86_CODE
// ---------------------------------------------------------------------------------------------
// AVX2 tier: vpmaddwd on int16. A quad of u8 activations (a0..a3, q + 128) is stored as two int16
// pairs, E = (a0, a2) and O = (a1, a3); a weight quad (b0..b3) becomes (b0, b2) and (b1, b3) by
// shifts of its 16-bit halves, so two vpmaddwd give a0 b0 + a2 b2 and a1 b1 + a3 b3. Int32 sums
// are exact (|sum| <= 255 * 127 * K), so the outputs are bit-identical to the other tiers.
#define INT8_AVX2_TARGET __attribute__((target("avx2,fma")))
enum { INT8_AVX2_MR = 4, INT8_AVX2_NR = 16 };  // 4 x 16 micro-tile: 8 accumulators

// Rows of panels [begin, end) -> (K4 quads, INT8_MR rows, E then O) dwords and the row scales:
// each row quantized as the other tiers do (int8_pack_row), its quads then spread in place.
static void int8_pack_rows_avx2(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const int8_ctx *c = vctx;
    const vitc_int K4 = round_up(c->K, 4) / 4;
    for (vitc_int panel = begin; panel < end; panel++)
        for (vitc_int i = 0; i < INT8_MR; i++) {
            uint32_t *dst = c->a + panel * K4 * INT8_MR * 2 + 2 * i;
            int8_pack_row(c, panel * INT8_MR + i, dst, INT8_MR * 2);
            for (vitc_int p = 0; p < K4; p++) {
                const uint32_t q = dst[p * INT8_MR * 2];
                dst[p * INT8_MR * 2] = (q & 0xffu) | ((q >> 16) & 0xffu) << 16;
                dst[p * INT8_MR * 2 + 1] = ((q >> 8) & 0xffu) | (q >> 24) << 16;
            }
        }
}

// Lanes < n of 8 set (n may be <= 0 or >= 8).
INT8_AVX2_TARGET static inline __m256i int8_lanes_below(vitc_int n) {
    const int k = n < 0 ? 0 : n > 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// c (rows <= 4, cols <= 16) [+]= a (kc quads of 4 rows, E/O dwords, quad step 2 INT8_MR) .
// b (kc quads of 16 columns, quad step NR * 4 bytes); first / last and the epilogue as
// int8_tile_scalar (same arithmetic: no fused multiply-add).
INT8_AVX2_TARGET static void int8_tile_avx2(float *c, vitc_int ldc, const uint32_t *a,
                                            const int8_t *b, vitc_int kc, vitc_int rows,
                                            vitc_int cols, int first, int last, const float *rs,
                                            const float *cs, const int32_t *csum, const float *bias,
                                            vitc_act act) {
    const __m256i m0 = int8_lanes_below(cols), m1 = int8_lanes_below(cols - 8);
    __m256i acc[INT8_AVX2_MR][2];
#pragma GCC unroll 4
    for (int i = 0; i < INT8_AVX2_MR; i++) {
        if (first || i >= rows) {
            acc[i][0] = _mm256_setzero_si256();
            acc[i][1] = _mm256_setzero_si256();
        } else {  // partial sums of the previous K blocks, int32 bits
            acc[i][0] = _mm256_castps_si256(_mm256_maskload_ps(c + i * ldc, m0));
            acc[i][1] = _mm256_castps_si256(_mm256_maskload_ps(c + i * ldc + 8, m1));
        }
    }
    for (vitc_int p = 0; p < kc; p++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(b + p * NR * 4));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(b + p * NR * 4 + 32));
        // 16-bit halves (b0 | b1 << 8, b2 | b3 << 8) -> (b0, b2) and (b1, b3), sign-extended
        const __m256i e0 = _mm256_srai_epi16(_mm256_slli_epi16(w0, 8), 8);
        const __m256i e1 = _mm256_srai_epi16(_mm256_slli_epi16(w1, 8), 8);
        const __m256i o0 = _mm256_srai_epi16(w0, 8), o1 = _mm256_srai_epi16(w1, 8);
        const uint32_t *ap = a + p * INT8_MR * 2;
#pragma GCC unroll 4
        for (int i = 0; i < INT8_AVX2_MR; i++) {
            const __m256i ae = _mm256_set1_epi32((int)ap[2 * i]);
            const __m256i ao = _mm256_set1_epi32((int)ap[2 * i + 1]);
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(ae, e0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(ae, e1));
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(ao, o0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(ao, o1));
        }
    }
    if (!last) {
        for (int i = 0; i < INT8_AVX2_MR && i < rows; i++) {
            _mm256_maskstore_ps(c + i * ldc, m0, _mm256_castsi256_ps(acc[i][0]));
            _mm256_maskstore_ps(c + i * ldc + 8, m1, _mm256_castsi256_ps(acc[i][1]));
        }
        return;
    }
    // (float)(acc - 128 col_sum) * (row_scale * col_scale) [+ bias]
    const __m256i zp = _mm256_set1_epi32(INT8_ZERO_POINT);
    const __m256i corr0 = _mm256_mullo_epi32(_mm256_maskload_epi32(csum, m0), zp);
    const __m256i corr1 = _mm256_mullo_epi32(_mm256_maskload_epi32(csum + 8, m1), zp);
    const __m256 cs0 = _mm256_maskload_ps(cs, m0), cs1 = _mm256_maskload_ps(cs + 8, m1);
    const __m256 bias0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
    const __m256 bias1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
    for (int i = 0; i < INT8_AVX2_MR && i < rows; i++) {
        const __m256 r = _mm256_set1_ps(rs[i]);
        __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i][0], corr0)),
                                  _mm256_mul_ps(r, cs0));
        __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[i][1], corr1)),
                                  _mm256_mul_ps(r, cs1));
        if (bias) {
            y0 = _mm256_add_ps(y0, bias0);
            y1 = _mm256_add_ps(y1, bias1);
        }
        _mm256_maskstore_ps(c + i * ldc, m0, y0);
        _mm256_maskstore_ps(c + i * ldc + 8, m1, y1);
    }
    apply_act_rows(c, ldc, act, rows, cols);
}

// One (INT8_MR x NR) block as 4 x 16 AVX2 micro-tiles; a at the row panel's quad p0.
static void int8_block_avx2(float *c, vitc_int ldc, const uint32_t *a, const int8_t *b, vitc_int kc,
                            vitc_int rows, vitc_int cols, int first, int last, const float *rs,
                            const float *cs, const int32_t *csum, const float *bias, vitc_act act) {
    for (vitc_int i0 = 0; i0 < rows; i0 += INT8_AVX2_MR)
        for (vitc_int j0 = 0; j0 < cols; j0 += INT8_AVX2_NR)
            int8_tile_avx2(c + i0 * ldc + j0, ldc, a + 2 * i0, b + j0 * 4, kc,
                           min_int(INT8_AVX2_MR, rows - i0), min_int(INT8_AVX2_NR, cols - j0),
                           first, last, rs + i0, cs + j0, csum + j0, bias ? bias + j0 : NULL, act);
}
#endif

// Work item: weight panels of NR columns; per row block (lowp_row_block), per K block, every
// panel of the item against every row panel of the block.
static void int8_gemm_panels(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const int8_ctx *c = vctx;
    const vitc_int K4 = round_up(c->K, 4) / 4;
    const vitc_int row_panels = round_up(c->M, INT8_MR) / INT8_MR;
    const vitc_int block_panels = lowp_row_block(c->M, INT8_MR) / INT8_MR;
    for (vitc_int rp0 = 0; rp0 < row_panels; rp0 += block_panels)
        for (vitc_int p0 = 0; p0 == 0 || p0 < K4; p0 += INT8_KC) {
            const vitc_int kc = min_int(INT8_KC, K4 - p0);
            const int first = p0 == 0, last = p0 + INT8_KC >= K4;
            for (vitc_int panel = begin; panel < end; panel++) {
                if (vitc_stopping()) return;  // the caller discards the output
                const vitc_int n0 = panel * NR, cols = min_int(NR, c->N - n0);
                const int8_t *b = c->w + n0 * K4 * 4 + p0 * NR * 4;
                const float *bias = c->b ? c->b + n0 : NULL;
                for (vitc_int rp = rp0; rp < min_int(rp0 + block_panels, row_panels); rp++) {
                    const vitc_int m0 = rp * INT8_MR, rows = min_int(INT8_MR, c->M - m0);
                    const uint32_t *a = c->a + rp * K4 * INT8_MR + p0 * INT8_MR;
                    float *out = c->out + m0 * c->ld_out + n0;
                    const float *rs = c->row_scale + m0;
#if LOWP_HAVE_X86_CODE
                    if (c->simd) {
                        int8_tile_vnni(out, c->ld_out, a, b, kc, rows, cols, first, last, rs,
                                       c->col_scale + n0, c->col_sum + n0, bias, c->act);
                        continue;
                    }
                    if (c->avx2) {
                        const uint32_t *a16 = c->a + (rp * K4 + p0) * INT8_MR * 2;
                        int8_block_avx2(out, c->ld_out, a16, b, kc, rows, cols, first, last, rs,
                                        c->col_scale + n0, c->col_sum + n0, bias, c->act);
                        continue;
                    }
#endif
                    int8_tile_scalar(out, c->ld_out, a, b, kc, rows, cols, first, last, rs,
                                     c->col_scale + n0, c->col_sum + n0, bias, c->act);
                }
            }
        }
}

#if LOWP_HAVE_X86_CODE
static void int8_store_tile(const void *vctx, const void *acc, vitc_int m0, vitc_int n0) {
    const int8_ctx *c = vctx;
    int8_store_block(c->out + m0 * c->ld_out + n0, c->ld_out, acc, min_int(AMX_MR, c->M - m0),
                     min_int(NR, c->N - n0), c->row_scale + m0, c->col_scale + n0, c->col_sum + n0,
                     c->b ? c->b + n0 : NULL, c->act);
}
#endif

// out (M,N), inp (M,K), w_packed (pack_int8_len(N,K)), scales (N), col_sums (N), b (N) or NULL,
// scratch (linear_int8_scratch_len(M,K) bytes, 4-byte aligned)
void linear_int8_forward(float *out, const float *inp, const int8_t *w_packed, const float *scales,
                         const int32_t *col_sums, const float *b, vitc_act act, vitc_int M,
                         vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                         uint8_t *scratch) {
    if (M <= 0 || N <= 0) return;
    const vitc_tier tier = int8_tier();
    int8_ctx c = {out,
                  inp,
                  w_packed,
                  scales,
                  col_sums,
                  b,
                  act,
                  M,
                  N,
                  K,
                  ld_out,
                  ld_inp,
                  (float *)scratch,
                  (uint32_t *)(scratch + round_up(M, 16) * sizeof(float)),
                  tier >= VITC_TIER_AVX512,
                  tier == VITC_TIER_AVX2,
                  0};
    const int threads = vitc_get_num_threads();
    const vitc_int panels = round_up(N, NR) / NR;
#if LOWP_HAVE_X86_CODE
    if (c.avx2) {
        vitc_parallel_for(round_up(M, INT8_MR) / INT8_MR, threads, int8_pack_rows_avx2, &c);
        vitc_parallel_for(panels, threads, int8_gemm_panels, &c);
        return;
    }
    if (K % 64 == 0 && tier == VITC_TIER_AMX) {
        c.lda = amx_row_bytes(K, 1) / 4;
        vitc_parallel_for(round_up(M, AMX_MR), threads, int8_pack_rows_amx, &c);
        amx_job job = {(const char *)c.a, c.lda * 4, (const char *)c.w, K * NR, K / 64, 1, M, N, 0,
                       int8_store_tile,   &c};
        amx_gemm_run(&job, threads);
        return;
    }
#endif
    vitc_parallel_for(round_up(M, INT8_MR) / INT8_MR, threads, int8_pack_rows, &c);
    vitc_parallel_for(panels, threads, int8_gemm_panels, &c);
}
