// gemm_bf16.c: the bf16 linear layer: weights packed once to bf16 panels, activations rounded to
// bf16 per call, products summed in fp32 (vdpbf16ps on AVX-512 BF16, tdpbf16ps on AMX, a portable
// scalar path with the same order). Layouts and AMX notes in gemm_lowp.h.
// Not the model wiring (the converter and vit_forward choose precisions); pure C, no Python, no
// allocation: packed weights and activation scratch come from the caller.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm_lowp.h"

// The code the tier policy (cpu.h) picks: AMX tiles, AVX-512 BF16, AVX2 FMA or portable.
static vitc_tier bf16_tier(void) {
    return LOWP_HAVE_X86_CODE ? vitc_op_tier(VITC_OP_GEMM_BF16) : VITC_TIER_PORTABLE;
}

// ---------------------------------------------------------------------------------------------
// bf16 conversion: round to nearest even, NaN stays a (quiet) NaN, float denormals become signed
// zero (what vcvtne2ps2bf16 and vdpbf16ps do: they treat denormal inputs as zero).

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static uint16_t f32_to_bf16(float x) {
    const uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000);         // +-0, denormal
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static float bf16_to_f32(uint32_t h) {
    const uint32_t u = h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint32_t bf16_pair(const float *x, vitc_int k, vitc_int K) {
    const uint32_t lo = k < K ? f32_to_bf16(x[k]) : 0;
    const uint32_t hi = k + 1 < K ? f32_to_bf16(x[k + 1]) : 0;
    return lo | hi << 16;
}

// ---------------------------------------------------------------------------------------------
// bf16 weights

vitc_int pack_bf16_len(vitc_int N, vitc_int K) {
    return round_up(N, NR) * round_up(K, 2);
}

// ---------------------------------------------------------------------------------------------
// bf16 activations: rows -> (M/MR, K/2, MR) pairs

// uint16 elements: the largest layout any tier uses (bf16 pair panels, AMX rows, or the AVX2
// tier's fp32 panels), so a tier change between a plan and a call never overflows it.
vitc_int linear_bf16_scratch_len(vitc_int M, vitc_int K) {
    const vitc_int panels = round_up(M, BF16_MR) * round_up(K, 2);
    const vitc_int rows = round_up(M, AMX_MR) * amx_row_bytes(round_up(K, 2), 2) / 2;
    return max_int(2 * panels, rows);
}

typedef struct {
    float *out;
    const float *inp;
    const uint32_t *w;  // packed pairs
    const float *b;
    vitc_act act;
    vitc_int M, N, K, ld_out, ld_inp;
    uint32_t *a;   // packed activation pairs (AVX2 tier: the same layout in fp32, 2 per pair)
    int simd;      // AVX-512 BF16 tiles
    int avx2;      // AVX2 FMA tiles on bf16 widened to fp32
    vitc_int lda;  // AMX path: a holds plain rows, lda pairs apart
} bf16_ctx;

#if LOWP_HAVE_X86_CODE
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// dst[p * stride] <- pair p of row x (K): stride BF16_MR in a panel, 1 in a plain AMX row.
BF16_TARGET static void bf16_pack_row_avx512(uint32_t *dst, const float *x, vitc_int K,
                                             vitc_int stride) {
    vitc_int k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512 lo = _mm512_loadu_ps(x + k), hi = _mm512_loadu_ps(x + k + 16);
        const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        uint32_t *d = dst + (k / 2) * stride;
        if (stride == 1) {
            _mm512_storeu_si512(d, pairs);
            continue;
        }
        uint32_t tmp[16];
        _mm512_storeu_si512(tmp, pairs);
        for (int p = 0; p < 16; p++) d[p * stride] = tmp[p];
    }
    for (; k < K; k += 2) dst[(k / 2) * stride] = bf16_pair(x, k, K);
}
#endif

static void bf16_pack_weight_panels(void *vjob, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const pack_job *j = vjob;
    const vitc_int K2 = round_up(j->K, 2) / 2;
    for (vitc_int panel = begin; panel < end; panel++)
        for (vitc_int c = 0; c < NR; c++) {
            const vitc_int n = panel * NR + c;
            uint32_t *col = (uint32_t *)j->packed + panel * NR * K2 + c;
            if (n >= j->N) {
                for (vitc_int p = 0; p < K2; p++) col[p * NR] = 0;
                continue;
            }
#if LOWP_HAVE_X86_CODE
            if (j->simd) {
                bf16_pack_row_avx512(col, j->w + n * j->K, j->K, NR);
                continue;
            }
#endif
            for (vitc_int p = 0; p < K2; p++) col[p * NR] = bf16_pair(j->w + n * j->K, 2 * p, j->K);
        }
}

// packed (pack_bf16_len(N,K)), 4-byte aligned; w (N,K)
void pack_weights_bf16(uint16_t *packed, const float *w, vitc_int N, vitc_int K) {
    pack_job job = {packed, NULL, NULL, w, N, K, bf16_tier() >= VITC_TIER_AVX512};
    vitc_parallel_for(round_up(N, NR) / NR, vitc_get_num_threads(), bf16_pack_weight_panels, &job);
}

static void bf16_pack_rows(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const bf16_ctx *c = vctx;
    const vitc_int K2 = round_up(c->K, 2) / 2;
    for (vitc_int panel = begin; panel < end; panel++) {
        uint32_t *dst = c->a + panel * K2 * BF16_MR;
        for (vitc_int i = 0; i < BF16_MR; i++) {
            const vitc_int m = panel * BF16_MR + i;
            if (m >= c->M) {
                for (vitc_int p = 0; p < K2; p++) dst[p * BF16_MR + i] = 0;
                continue;
            }
            const float *x = c->inp + m * c->ld_inp;
#if LOWP_HAVE_X86_CODE
            if (c->simd) {
                bf16_pack_row_avx512(dst + i, x, c->K, BF16_MR);
                continue;
            }
#endif
            for (vitc_int p = 0; p < K2; p++) dst[p * BF16_MR + i] = bf16_pair(x, 2 * p, c->K);
        }
    }
}

#if LOWP_HAVE_X86_CODE
// AMX layout: rows [begin, end) of round_up(M, AMX_MR), zeros past M (K % 32 == 0 here).
static void bf16_pack_rows_amx(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const bf16_ctx *c = vctx;
    for (vitc_int m = begin; m < end; m++) {
        uint32_t *dst = c->a + m * c->lda;
        if (m < c->M)
            bf16_pack_row_avx512(dst, c->inp + m * c->ld_inp, c->K, 1);
        else
            memset(dst, 0, (size_t)c->K * 2);
    }
}
#endif

// One (BF16_MR x NR) tile over kc pairs: c (rows, cols) [+]= a (kc, MR) . b (kc, NR).
// first: start from 0 instead of c; last: add the bias and apply the activation.
// Per pair the odd product is added before the even one, the order of vdpbf16ps.
static void bf16_tile_scalar(float *c, vitc_int ldc, const uint32_t *a, const uint32_t *b,
                             vitc_int kc, vitc_int rows, vitc_int cols, int first, int last,
                             const float *bias, vitc_act act) {
    for (vitc_int i = 0; i < rows; i++) {
        float acc[NR];
        for (int j = 0; j < NR; j++) acc[j] = (first || j >= cols) ? 0.0f : c[i * ldc + j];
        for (vitc_int p = 0; p < kc; p++) {
            const uint32_t av = a[p * BF16_MR + i];
            const float a0 = bf16_to_f32(av & 0xffff), a1 = bf16_to_f32(av >> 16);
            const uint32_t *bp = b + p * NR;
            for (int j = 0; j < NR; j++) {
                // bf16 x bf16 is exact in fp32, so a * b + acc rounds once, like a fused add.
                acc[j] = acc[j] + a1 * bf16_to_f32(bp[j] >> 16);
                acc[j] = acc[j] + a0 * bf16_to_f32(bp[j] & 0xffff);
            }
        }
        for (vitc_int j = 0; j < cols; j++)
            c[i * ldc + j] = (last && bias) ? acc[j] + bias[j] : acc[j];
    }
    if (last) apply_act_rows(c, ldc, act, rows, cols);
}

#if LOWP_HAVE_X86_CODE
BF16_TARGET static void bf16_tile_avx512(float *c, vitc_int ldc, const uint32_t *a,
                                         const uint32_t *b, vitc_int kc, vitc_int rows,
                                         vitc_int cols, int first, int last, const float *bias,
                                         vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32   ? 0xffff
                         : cols <= 16 ? 0
                                      : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 acc[BF16_MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < BF16_MR; i++) {
        if (first || i >= rows) {
            acc[i][0] = _mm512_setzero_ps();
            acc[i][1] = _mm512_setzero_ps();
        } else {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
            acc[i][1] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
        }
    }
    for (vitc_int p = 0; p < kc; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
        const uint32_t *ap = a + p * BF16_MR;
#pragma GCC unroll 12
        for (int i = 0; i < BF16_MR; i++) {
            const __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (last && bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 12
    for (int i = 0; i < BF16_MR; i++) {
        if (i >= rows) break;
        __m512 y0 = acc[i][0], y1 = acc[i][1];
        if (last && bias) {
            y0 = _mm512_add_ps(y0, bias0);
            y1 = _mm512_add_ps(y1, bias1);
        }
        _mm512_mask_storeu_ps(c + i * ldc, m0, y0);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, y1);
    }
    if (last) apply_act_rows(c, ldc, act, rows, cols);
}
#endif

#if LOWP_HAVE_X86_CODE
// ---------------------------------------------------------------------------------------------
// AVX2 tier: vfmadd231ps on bf16 values widened to fp32 (a shift or a mask of the packed pair),
// the activations pre-widened into fp32 panels (same (M/MR, K/2, MR, 2) layout, 4 bytes each).
// Per pair the odd product is added before the even one, as vdpbf16ps and the portable tile do;
// a bf16 x bf16 product is exact in fp32, so the fused add rounds as the portable a * b + acc:
// the same values as the portable tile (denormal products aside, which neither flushes).
#define BF16_AVX2_TARGET __attribute__((target("avx2,fma")))
enum { BF16_AVX2_MR = 6, BF16_AVX2_NR = 16 };  // 6 x 16 micro-tile: 12 accumulators

static void bf16_pack_rows_f32(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const bf16_ctx *c = vctx;
    const vitc_int K2 = round_up(c->K, 2) / 2;
    float *af = (float *)c->a;
    for (vitc_int panel = begin; panel < end; panel++) {
        float *dst = af + panel * K2 * BF16_MR * 2;
        for (vitc_int i = 0; i < BF16_MR; i++) {
            const vitc_int m = panel * BF16_MR + i;
            const float *x = c->inp + m * c->ld_inp;
            for (vitc_int p = 0; p < K2; p++) {
                const uint32_t pair = m < c->M ? bf16_pair(x, 2 * p, c->K) : 0;
                dst[(p * BF16_MR + i) * 2] = bf16_to_f32(pair & 0xffff);
                dst[(p * BF16_MR + i) * 2 + 1] = bf16_to_f32(pair >> 16);
            }
        }
    }
}

// Lanes < n of 8 set (n may be <= 0 or >= 8).
BF16_AVX2_TARGET static inline __m256i lanes_below(vitc_int n) {
    const int k = n < 0 ? 0 : n > 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// c (rows <= 6, cols <= 16) [+]= a (kc pairs of 6 rows, fp32, row stride 2 in a pair step of
// 2 BF16_MR) . b (kc pairs of 16 columns, pair step NR). first / last as bf16_tile_scalar.
BF16_AVX2_TARGET static void bf16_tile_avx2(float *c, vitc_int ldc, const float *a,
                                            const uint32_t *b, vitc_int kc, vitc_int rows,
                                            vitc_int cols, int first, int last, const float *bias,
                                            vitc_act act) {
    const __m256i m0 = lanes_below(cols), m1 = lanes_below(cols - 8);
    const __m256i hi16 = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[BF16_AVX2_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < BF16_AVX2_MR; i++) {
        if (first || i >= rows) {
            acc[i][0] = _mm256_setzero_ps();
            acc[i][1] = _mm256_setzero_ps();
        } else {
            acc[i][0] = _mm256_maskload_ps(c + i * ldc, m0);
            acc[i][1] = _mm256_maskload_ps(c + i * ldc + 8, m1);
        }
    }
    for (vitc_int p = 0; p < kc; p++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(b + p * NR));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(b + p * NR + 8));
        const float *ap = a + p * BF16_MR * 2;
        const __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(w0, hi16));
        const __m256 o1 = _mm256_castsi256_ps(_mm256_and_si256(w1, hi16));
#pragma GCC unroll 6
        for (int i = 0; i < BF16_AVX2_MR; i++) {
            const __m256 a1 = _mm256_broadcast_ss(ap + 2 * i + 1);
            acc[i][0] = _mm256_fmadd_ps(a1, o0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a1, o1, acc[i][1]);
        }
        const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
        const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
#pragma GCC unroll 6
        for (int i = 0; i < BF16_AVX2_MR; i++) {
            const __m256 a0 = _mm256_broadcast_ss(ap + 2 * i);
            acc[i][0] = _mm256_fmadd_ps(a0, e0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a0, e1, acc[i][1]);
        }
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (last && bias) {
        bias0 = _mm256_maskload_ps(bias, m0);
        bias1 = _mm256_maskload_ps(bias + 8, m1);
    }
#pragma GCC unroll 6
    for (int i = 0; i < BF16_AVX2_MR; i++) {
        if (i >= rows) break;
        __m256 y0 = acc[i][0], y1 = acc[i][1];
        if (last && bias) {
            y0 = _mm256_add_ps(y0, bias0);
            y1 = _mm256_add_ps(y1, bias1);
        }
        _mm256_maskstore_ps(c + i * ldc, m0, y0);
        _mm256_maskstore_ps(c + i * ldc + 8, m1, y1);
    }
    if (last) apply_act_rows(c, ldc, act, rows, cols);
}

// One (BF16_MR x NR) block as four 6 x 16 AVX2 micro-tiles; a at the row panel's pair p0.
static void bf16_block_avx2(float *c, vitc_int ldc, const float *a, const uint32_t *b, vitc_int kc,
                            vitc_int rows, vitc_int cols, int first, int last, const float *bias,
                            vitc_act act) {
    for (vitc_int i0 = 0; i0 < rows; i0 += BF16_AVX2_MR)
        for (vitc_int j0 = 0; j0 < cols; j0 += BF16_AVX2_NR)
            bf16_tile_avx2(c + i0 * ldc + j0, ldc, a + 2 * i0, b + j0, kc,
                           min_int(BF16_AVX2_MR, rows - i0), min_int(BF16_AVX2_NR, cols - j0),
                           first, last, bias ? bias + j0 : NULL, act);
}
#endif

// Work item: weight panels of NR columns; per row block (lowp_row_block), per K block, every
// panel of the item against every row panel of the block.
static void bf16_gemm_panels(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const bf16_ctx *c = vctx;
    const vitc_int K2 = round_up(c->K, 2) / 2;
    const vitc_int row_panels = round_up(c->M, BF16_MR) / BF16_MR;
    const vitc_int block_panels = lowp_row_block(c->M, BF16_MR) / BF16_MR;
    for (vitc_int rp0 = 0; rp0 < row_panels; rp0 += block_panels)
        for (vitc_int p0 = 0; p0 == 0 || p0 < K2; p0 += BF16_KC) {
            const vitc_int kc = min_int(BF16_KC, K2 - p0);
            const int first = p0 == 0, last = p0 + BF16_KC >= K2;
            for (vitc_int panel = begin; panel < end; panel++) {
                if (vitc_stopping()) return;  // the caller discards the output
                const vitc_int n0 = panel * NR, cols = min_int(NR, c->N - n0);
                const uint32_t *b = c->w + n0 * K2 + p0 * NR;
                const float *bias = c->b ? c->b + n0 : NULL;
                for (vitc_int rp = rp0; rp < min_int(rp0 + block_panels, row_panels); rp++) {
                    const vitc_int m0 = rp * BF16_MR, rows = min_int(BF16_MR, c->M - m0);
                    const uint32_t *a = c->a + rp * K2 * BF16_MR + p0 * BF16_MR;
                    float *out = c->out + m0 * c->ld_out + n0;
#if LOWP_HAVE_X86_CODE
                    if (c->simd) {
                        bf16_tile_avx512(out, c->ld_out, a, b, kc, rows, cols, first, last, bias,
                                         c->act);
                        continue;
                    }
                    if (c->avx2) {
                        const float *af = (const float *)c->a + (rp * K2 + p0) * BF16_MR * 2;
                        bf16_block_avx2(out, c->ld_out, af, b, kc, rows, cols, first, last, bias,
                                        c->act);
                        continue;
                    }
#endif
                    bf16_tile_scalar(out, c->ld_out, a, b, kc, rows, cols, first, last, bias,
                                     c->act);
                }
            }
        }
}

#if LOWP_HAVE_X86_CODE
// c (rows, cols) = acc (rows, NR) + bias, then the activation.
BF16_TARGET static void bf16_store_block(float *c, vitc_int ldc, const float *acc, vitc_int rows,
                                         vitc_int cols, const float *bias, vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32   ? 0xffff
                         : cols <= 16 ? 0
                                      : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (vitc_int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_add_ps(_mm512_load_ps(acc + i * NR), bias0));
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1,
                              _mm512_add_ps(_mm512_load_ps(acc + i * NR + 16), bias1));
    }
    apply_act_rows(c, ldc, act, rows, cols);
}

static void bf16_store_tile(const void *vctx, const void *acc, vitc_int m0, vitc_int n0) {
    const bf16_ctx *c = vctx;
    bf16_store_block(c->out + m0 * c->ld_out + n0, c->ld_out, acc, min_int(AMX_MR, c->M - m0),
                     min_int(NR, c->N - n0), c->b ? c->b + n0 : NULL, c->act);
}
#endif

// out (M,N), inp (M,K), w_packed (pack_bf16_len(N,K)), b (N) or NULL,
// scratch (linear_bf16_scratch_len(M,K))
void linear_bf16_forward(float *out, const float *inp, const uint16_t *w_packed, const float *b,
                         vitc_act act, vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                         vitc_int ld_inp, uint16_t *scratch) {
    if (M <= 0 || N <= 0) return;
    const vitc_tier tier = bf16_tier();
    bf16_ctx c = {out,
                  inp,
                  (const uint32_t *)w_packed,
                  b,
                  act,
                  M,
                  N,
                  K,
                  ld_out,
                  ld_inp,
                  (uint32_t *)scratch,
                  tier >= VITC_TIER_AVX512,
                  tier == VITC_TIER_AVX2,
                  0};
    const int threads = vitc_get_num_threads();
    const vitc_int panels = round_up(N, NR) / NR;
#if LOWP_HAVE_X86_CODE
    if (c.avx2) {
        vitc_parallel_for(round_up(M, BF16_MR) / BF16_MR, threads, bf16_pack_rows_f32, &c);
        vitc_parallel_for(panels, threads, bf16_gemm_panels, &c);
        return;
    }
    if (K % 32 == 0 && tier == VITC_TIER_AMX) {
        c.lda = amx_row_bytes(K, 2) / 4;
        vitc_parallel_for(round_up(M, AMX_MR), threads, bf16_pack_rows_amx, &c);
        amx_job job = {
            (const char *)c.a, c.lda * 4, (const char *)c.w, K * NR * 2, K / 32, 0, M, N, 0,
            bf16_store_tile,   &c};
        amx_gemm_run(&job, threads);
        return;
    }
#endif
    vitc_parallel_for(round_up(M, BF16_MR) / BF16_MR, threads, bf16_pack_rows, &c);
    vitc_parallel_for(panels, threads, bf16_gemm_panels, &c);
}
