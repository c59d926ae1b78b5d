// attention.c: one attention head, softmax(q k^T scale) v, float32 and float64.
// Two implementations of the same thing:
//   - AVX-512 (float32): register-tiled q k^T and p v of vitc's own, 12 query rows at a time, k
//     transposed and v packed once per head so a head's keys and values stay in L2 (about 0.5 MiB
//     for ViT-L). On a ViT-L/16-512 head (T = 1025, D = 64) it runs at ~110 GFLOP/s on one core,
//     the FMA peak's ~70%, where OpenBLAS's two GEMMs per block pack k and v again for every block.
//   - BLAS: query rows in blocks, two GEMMs per block with the (block, T) scores in between; the
//     float64 kernel and CPUs without AVX-512.
// Pure C: no Python, no allocation (scratch comes from the caller).
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "blas.h"

// Query rows per BLAS block: a (512, 1025) float32 tile is 2 MiB; fewer, larger blocks measured up
// to 1.6x faster than 128-row blocks on ViT-L shapes (per-call BLAS overheads amortized).
static const vitc_int ATTN_ROW_BLOCK = 512;

// AVX-512 kernel: query rows per block and keys per q k^T register tile (12 x 32: 24 of the 32
// vector registers accumulate); p v runs 6 x 64 tiles (two per row block) and a 12 x 32 tile for
// a last 32 output columns. The hot loops have no masked loads (measured 3x slower on this CPU):
// keys are padded to a multiple of 32 and v columns to a multiple of 32, with zeros.
enum { QR = 12, QC = 32 };

static vitc_int round_up(vitc_int x, vitc_int m) { return (x + m - 1) / m * m; }

// Floats of the AVX-512 kernel's scratch, each part 64-byte aligned, in this order:
//   kt (Tp/32, D, 32)  k transposed in panels of 32 keys (a q k^T tile reads one panel,
//                      contiguously), zero past T
//   s  (QR, lds)       scores of a row block, then exp(s - row max) in place; lds = Tp + 16 so
//                      the rows do not alias in the cache
//   vp (T, Ep)         v rows packed contiguously (ViT's v rows are 3C apart: one page each),
//                      zero columns past E
//   qp (QR, D)         the last block's query rows padded with zeros to QR rows
//   + 16               the start of the caller's buffer may not be 64-byte aligned
typedef struct {
    vitc_int Tp, lds, Ep, kt, s, vp, qp, total;
} fast_plan;

static fast_plan plan_fast(vitc_int T, vitc_int D, vitc_int E) {
    fast_plan f;
    f.Tp = round_up(T, QC);
    f.lds = f.Tp + 16;
    f.Ep = round_up(E, QC);
    f.kt = 0;
    f.s = f.kt + round_up(f.Tp * D, 16);
    f.vp = f.s + QR * f.lds;
    f.qp = f.vp + T * f.Ep;
    f.total = f.qp + round_up(QR * D, 16) + 16;
    return f;
}

vitc_int attention_scratch_len(vitc_int S, vitc_int T, vitc_int D, vitc_int E) {
    const vitc_int rows = S < ATTN_ROW_BLOCK ? S : ATTN_ROW_BLOCK;
    const vitc_int blas = rows * T, fast = plan_fast(T, D, E).total;
    return blas > fast ? blas : fast;
}


#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

// s (QR, 32) = scale * q (QR, D) . kt (one panel: D rows of 32 keys).
AVX512 static inline void qk_tile(float *s, vitc_int ld_s, const float *q, vitc_int ld_q,
                                  const float *kt, vitc_int D, float scale) {
    __m512 acc[QR][2];
    for (int r = 0; r < QR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (vitc_int d = 0; d < D; d++) {
        const __m512 b0 = _mm512_load_ps(kt + d * QC), b1 = _mm512_load_ps(kt + d * QC + 16);
        for (int r = 0; r < QR; r++) {
            const __m512 a = _mm512_set1_ps(q[r * ld_q + d]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    const __m512 sv = _mm512_set1_ps(scale);
    for (int r = 0; r < QR; r++) {
        _mm512_storeu_ps(s + r * ld_s, _mm512_mul_ps(acc[r][0], sv));
        _mm512_storeu_ps(s + r * ld_s + 16, _mm512_mul_ps(acc[r][1], sv));
    }
}

// Mask of the first n (0..16) lanes.
static inline __mmask16 first_lanes(vitc_int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

// out (rows <= R, cols <= 16 NV) = p (R, T) . vp (T, 16 NV columns) * inv_sum per row: an R x 16 NV
// register tile (R NV <= 24); columns past `cols` and rows past `rows` are computed, not stored.
#define DEFINE_PV_TILE(name, R, NV)                                                             \
    AVX512 static inline void name(float *out, vitc_int ld_out, vitc_int rows, vitc_int cols,   \
                                   const float *p, vitc_int ld_p, const float *vp,              \
                                   vitc_int ld_v, vitc_int T, const float *inv_sum) {           \
        __m512 acc[R][NV];                                                                      \
        for (int r = 0; r < R; r++)                                                             \
            for (int j = 0; j < NV; j++) acc[r][j] = _mm512_setzero_ps();                       \
        for (vitc_int t = 0; t < T; t++) {                                                      \
            __m512 b[NV];                                                                       \
            for (int j = 0; j < NV; j++) b[j] = _mm512_load_ps(vp + t * ld_v + 16 * j);         \
            for (int r = 0; r < R; r++) {                                                       \
                const __m512 a = _mm512_set1_ps(p[r * ld_p + t]);                               \
                for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);   \
            }                                                                                   \
        }                                                                                       \
        for (vitc_int r = 0; r < rows && r < R; r++) {                                          \
            const __m512 inv = _mm512_set1_ps(inv_sum[r]);                                      \
            for (int j = 0; j < NV; j++)                                                        \
                _mm512_mask_storeu_ps(out + r * ld_out + 16 * j, first_lanes(cols - 16 * j),    \
                                      _mm512_mul_ps(acc[r][j], inv));                           \
        }                                                                                       \
    }
DEFINE_PV_TILE(pv_tile_6x64, 6, 4)
DEFINE_PV_TILE(pv_tile_12x32, QR, 2)

// D >= 1, E >= 1, T >= 1; scratch plan_fast(T, D, E).total floats.
// probs (S, T), if not NULL, receives the normalized probabilities (the same numbers p v uses).
AVX512 static void attention_avx512_f32(float *out, float *probs, const float *q, const float *k,
                                        const float *v, float scale, vitc_int S, vitc_int T,
                                        vitc_int D, vitc_int E, vitc_int ld_out, vitc_int ld_probs,
                                        vitc_int ld_q, vitc_int ld_k, vitc_int ld_v, float *scratch) {
    const fast_plan f = plan_fast(T, D, E);
    float *base = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *kt = base + f.kt, *s = base + f.s, *vp = base + f.vp, *qp = base + f.qp;
    for (vitc_int t = 0; t < f.Tp; t++) {  // zero keys past T: their scores are never used
        float *col = kt + (t / QC) * D * QC + t % QC;
        for (vitc_int d = 0; d < D; d++) col[d * QC] = t < T ? k[t * ld_k + d] : 0.0f;
    }
    for (vitc_int t = 0; t < T; t++) {
        memcpy(vp + t * f.Ep, v + t * ld_v, sizeof(float) * (size_t)E);
        memset(vp + t * f.Ep + E, 0, sizeof(float) * (size_t)(f.Ep - E));
    }

    float inv_sum[QR];
    for (vitc_int s0 = 0; s0 < S; s0 += QR) {
        const vitc_int rows = S - s0 < QR ? S - s0 : QR;
        const float *qb = q + s0 * ld_q;
        vitc_int ld_qb = ld_q;
        if (rows < QR) {  // the last block: pad to a full register tile
            memset(qp, 0, sizeof(float) * (size_t)(QR * D));
            for (vitc_int r = 0; r < rows; r++) memcpy(qp + r * D, qb + r * ld_q, sizeof(float) * (size_t)D);
            qb = qp, ld_qb = D;
        }
        for (vitc_int t0 = 0; t0 < f.Tp; t0 += QC) qk_tile(s + t0, f.lds, qb, ld_qb, kt + t0 * D, D, scale);
        // -inf max (all -inf): -inf - -inf = NaN, as torch; a NaN score makes its row NaN.
        for (vitc_int r = 0; r < rows; r++) {
            float *row = s + r * f.lds;
            inv_sum[r] = (float)(1.0 / vitc_exp_shift_sum_f32(row, row, vitc_row_max_f32(row, T), T));
            if (probs) {
                float *dst = probs + (s0 + r) * ld_probs;
                memcpy(dst, row, sizeof(float) * (size_t)T);
                vitc_scale_f32(dst, inv_sum[r], T);
            }
        }
        float *ob = out + s0 * ld_out;
        vitc_int e0 = 0;
        for (; f.Ep - e0 >= 2 * QC; e0 += 2 * QC) {
            pv_tile_6x64(ob + e0, ld_out, rows, E - e0, s, f.lds, vp + e0, f.Ep, T, inv_sum);
            if (rows > 6)
                pv_tile_6x64(ob + 6 * ld_out + e0, ld_out, rows - 6, E - e0, s + 6 * f.lds, f.lds,
                             vp + e0, f.Ep, T, inv_sum + 6);
        }
        if (e0 < f.Ep)
            pv_tile_12x32(ob + e0, ld_out, rows, E - e0, s, f.lds, vp + e0, f.Ep, T, inv_sum);
    }
}

// The vector kernel takes the float32 calls on AVX-512 CPUs.
static int attention_fast_f32(float *out, float *probs, const float *q, const float *k,
                              const float *v, float scale, vitc_int S, vitc_int T, vitc_int D,
                              vitc_int E, vitc_int ld_out, vitc_int ld_probs, vitc_int ld_q,
                              vitc_int ld_k, vitc_int ld_v, float *scratch) {
    if (D <= 0 || E <= 0 || vitc_op_tier(VITC_OP_ATTENTION_F32) < VITC_TIER_AVX512) return 0;
    attention_avx512_f32(out, probs, q, k, v, scale, S, T, D, E, ld_out, ld_probs, ld_q, ld_k, ld_v,
                         scratch);
    return 1;
}
#else
#define attention_fast_f32 NO_FAST_PATH
#endif

// The `fast` argument of DEFINE_ATTENTION for kernels without a vector version: never taken.
#define NO_FAST_PATH(...) 0

// ref: torch.nn.functional.scaled_dot_product_attention; T = 0 gives zeros, as torch does.
// `fast` returns nonzero when a vector kernel handled the call.
#define DEFINE_ATTENTION(name, T_, gemm, softmax, fast)                                          \
    void name(T_ *out, T_ *probs, const T_ *q, const T_ *k, const T_ *v, T_ scale, vitc_int S,   \
              vitc_int T, vitc_int D, vitc_int E, vitc_int ld_out, vitc_int ld_probs,            \
              vitc_int ld_q, vitc_int ld_k, vitc_int ld_v, T_ *scratch) {                        \
        if (S <= 0 || E < 0) return;                                                             \
        if (T <= 0) {                                                                            \
            for (vitc_int s = 0; s < S; s++)                                                     \
                for (vitc_int e = 0; e < E; e++) out[s * ld_out + e] = 0;                        \
            return;                                                                              \
        }                                                                                        \
        if (fast(out, probs, q, k, v, scale, S, T, D, E, ld_out, ld_probs, ld_q, ld_k, ld_v, scratch)) \
            return;                                                                              \
        for (vitc_int s0 = 0; s0 < S; s0 += ATTN_ROW_BLOCK) {                                    \
            const vitc_int rows = S - s0 < ATTN_ROW_BLOCK ? S - s0 : ATTN_ROW_BLOCK;             \
            T_ *scores = scratch; /* (rows, T) */                                                \
            if (D > 0)                                                                           \
                BLAS_FUNC(gemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)T, (int)D, \
                                scale, q + s0 * ld_q, (int)ld_q, k, (int)ld_k, (T_)0, scores,    \
                                (int)T);                                                         \
            else                                                                                 \
                for (vitc_int i = 0; i < rows * T; i++) scores[i] = 0;                           \
            softmax(scores, scores, rows, T, T, T);                                              \
            if (probs)                                                                           \
                for (vitc_int r = 0; r < rows; r++)                                              \
                    memcpy(probs + (s0 + r) * ld_probs, scores + r * T, sizeof(T_) * (size_t)T); \
            if (E > 0)                                                                           \
                BLAS_FUNC(gemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)E, (int)T, \
                                (T_)1, scores, (int)T, v, (int)ld_v, (T_)0, out + s0 * ld_out,   \
                                (int)ld_out);                                                    \
        }                                                                                        \
    }

// out (S,E), probs (S,T) or NULL, q (S,D), k (T,D), v (T,E), scratch attention_scratch_len(S, T, D, E)
DEFINE_ATTENTION(attention_forward_f32, float, cblas_sgemm, softmax_forward_f32, attention_fast_f32)
DEFINE_ATTENTION(attention_forward_f64, double, cblas_dgemm, softmax_forward_f64, NO_FAST_PATH)
