// kernels_gemm_lowp.c: reduced-precision linear layers: bf16 weights (vdpbf16ps) and int8 weights
// with dynamic per-row int8 activations (vpdpbusd), fp32 accumulation / int32 accumulation.
// Not the model wiring (the converter and vit_forward choose precisions); pure C, no Python, no
// allocation: packed weights and activation scratch come from the caller.
//
// Layouts (NR = 32 output columns per panel, MR rows per activation panel):
//   bf16 weights  (N/32, K/2, 32, 2): column panels, K pairs interleaved (a uint32 per pair)
//   bf16 acts     (M/MR, K/2, MR, 2): row panels, K pairs interleaved (one broadcast per row)
//   int8 weights  (N/32, K/4, 32, 4): K quads interleaved for vpdpbusd
//   u8 acts       (M/MR, K/4, MR, 4): q + 128 per element (symmetric per-row scale, zero point 128)
// N is padded to 32 with zero weights, K to 2 (bf16) or 4 (int8) with zeros, M to MR.
// Partial sums over K blocks live in `out` itself (fp32 for bf16, int32 bits for int8), so no
// extra scratch is needed and each output element is written once per K block.
//
// AMX (tdpbf16ps / tdpbusd, when the CPU and OS allow it and K is a multiple of 32 / 64): the
// weight panels above are already AMX B tiles (16 rows of K pairs / quads x 16 columns, row stride
// 128 bytes: the two halves of a panel), so only the activations change layout: plain rows
// (round_up(M, 32) rows, row stride K + one cache line so 16 tile rows do not share cache sets).
// A 2x2 block of 16x16 accumulator tiles holds a 32x32 output block over all of K.
// Bounds (tile loads are not seen by AddressSanitizer): activation tiles read rows < round_up(M,
// 32), the rows the scratch holds, and bytes < K * elem of each row; weight tiles read K/2 pairs
// (K/4 quads) x 32 columns of one panel, which exists for every column group, zero-padded past N.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define LOWP_HAVE_X86_CODE 1
#include <immintrin.h>
#else
#define LOWP_HAVE_X86_CODE 0
#endif

enum {
    NR = 32,          // output columns per weight panel (two zmm of 16 fp32/int32 lanes)
    BF16_MR = 12,     // activation rows per microkernel (24 accumulators)
    INT8_MR = 12,
    BF16_KC = 256,    // K pairs per cache block: a 32 KiB weight panel block stays in L1
    INT8_KC = 256,    // K quads per cache block: 32 KiB as well
    AMX_MR = 32,      // activation rows per AMX block (two A tiles)
    AMX_PAD = 64,     // bytes added to an AMX activation row
    AMX_L2_BLOCK = 512 * 1024,  // bytes of weight panels an AMX column group keeps in L2
};

// u8 activations carry q + 128 (q in [-127, 127]); the column sums remove the offset.
static const int32_t INT8_ZERO_POINT = 128;
static const float INT8_QMAX = 127.0f;

static vitc_int round_up(vitc_int x, vitc_int m) { return (x + m - 1) / m * m; }
static vitc_int min_int(vitc_int a, vitc_int b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Run-time dispatch

static vitc_lowp_level g_lowp_level = VITC_LOWP_BEST;

void vitc_set_lowp_level(vitc_lowp_level level) { g_lowp_level = level; }

int linear_bf16_uses_simd(void) {
    const unsigned need = VITC_CPU_AVX512F | VITC_CPU_AVX512BW | VITC_CPU_AVX512VL |
                          VITC_CPU_AVX512_BF16;
    return LOWP_HAVE_X86_CODE && g_lowp_level >= VITC_LOWP_AVX512 &&
           (vitc_cpu_features() & need) == need;
}

int linear_int8_uses_simd(void) {
    const unsigned need = VITC_CPU_AVX512F | VITC_CPU_AVX512BW | VITC_CPU_AVX512VL |
                          VITC_CPU_AVX512_VNNI;
    return LOWP_HAVE_X86_CODE && g_lowp_level >= VITC_LOWP_AVX512 &&
           (vitc_cpu_features() & need) == need;
}

// The AMX paths also use the AVX-512 code (activation packing, epilogues).
int linear_bf16_uses_amx(void) {
    return linear_bf16_uses_simd() && g_lowp_level >= VITC_LOWP_BEST &&
           (vitc_cpu_features() & VITC_CPU_AMX_BF16) && vitc_amx_permitted();
}

int linear_int8_uses_amx(void) {
    return linear_int8_uses_simd() && g_lowp_level >= VITC_LOWP_BEST &&
           (vitc_cpu_features() & VITC_CPU_AMX_INT8) && vitc_amx_permitted();
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

vitc_int pack_bf16_len(vitc_int N, vitc_int K) { return round_up(N, NR) * round_up(K, 2); }

// ---------------------------------------------------------------------------------------------
// bf16 activations: rows -> (M/MR, K/2, MR) pairs

// Activation rows of the AMX layout, in bytes (elem: 2 for bf16, 1 for u8).
static vitc_int amx_row_bytes(vitc_int K, vitc_int elem) { return K * elem + AMX_PAD; }

static vitc_int max_int(vitc_int a, vitc_int b) { return a > b ? a : b; }

vitc_int linear_bf16_scratch_len(vitc_int M, vitc_int K) {
    const vitc_int panels = round_up(M, BF16_MR) * round_up(K, 2);
    const vitc_int rows = round_up(M, AMX_MR) * amx_row_bytes(round_up(K, 2), 2) / 2;
    return max_int(panels, rows);
}

typedef struct {
    float *out;
    const float *inp;
    const uint32_t *w;  // packed pairs
    const float *b;
    vitc_act act;
    vitc_int M, N, K, ld_out, ld_inp;
    uint32_t *a;  // packed activation pairs
    int simd;
    vitc_int lda;   // AMX path: a holds plain rows, lda pairs apart
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

// Weight packing, one job per panel of NR output channels (parallel: ViT-L packs at load time).
typedef struct {
    void *packed;
    float *scales;      // int8 only
    int32_t *col_sums;  // int8 only
    const float *w;
    vitc_int N, K;
    int simd;
} pack_job;

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
    pack_job job = {packed, NULL, NULL, w, N, K, linear_bf16_uses_simd()};
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

// Epilogue of the last K block: bias was added in the tile; the activation runs on stored rows.
static void apply_act_rows(float *c, vitc_int ldc, vitc_act act, vitc_int rows, vitc_int cols) {
    if (act == VITC_ACT_NONE) return;
    for (vitc_int i = 0; i < rows; i++) act_forward_f32(c + i * ldc, c + i * ldc, act, cols);
}

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
    const __mmask16 m1 =
        cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
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

// Work item: one weight panel of NR columns; for each K block, every row panel.
static void bf16_gemm_panels(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const bf16_ctx *c = vctx;
    const vitc_int K2 = round_up(c->K, 2) / 2;
    const vitc_int row_panels = round_up(c->M, BF16_MR) / BF16_MR;
    for (vitc_int p0 = 0; p0 == 0 || p0 < K2; p0 += BF16_KC) {
        const vitc_int kc = min_int(BF16_KC, K2 - p0);
        const int first = p0 == 0, last = p0 + BF16_KC >= K2;
        for (vitc_int panel = begin; panel < end; panel++) {
            const vitc_int n0 = panel * NR, cols = min_int(NR, c->N - n0);
            const uint32_t *b = c->w + n0 * K2 + p0 * NR;
            const float *bias = c->b ? c->b + n0 : NULL;
            for (vitc_int rp = 0; rp < row_panels; rp++) {
                const vitc_int m0 = rp * BF16_MR, rows = min_int(BF16_MR, c->M - m0);
                const uint32_t *a = c->a + rp * K2 * BF16_MR + p0 * BF16_MR;
                float *out = c->out + m0 * c->ld_out + n0;
#if LOWP_HAVE_X86_CODE
                if (c->simd) {
                    bf16_tile_avx512(out, c->ld_out, a, b, kc, rows, cols, first, last, bias,
                                     c->act);
                    continue;
                }
#endif
                bf16_tile_scalar(out, c->ld_out, a, b, kc, rows, cols, first, last, bias, c->act);
            }
        }
    }
}

#if LOWP_HAVE_X86_CODE
// ---------------------------------------------------------------------------------------------
// AMX: tiles 0-3 accumulate a 32x32 output block (2x2 tiles of 16x16 fp32/int32), tiles 4-5 are
// two 16-row activation tiles, 6-7 the two 16-column halves of a weight panel.
#define AMX_TARGET                                                                           \
    __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512vl,avx512bf16," \
                          "avx512vnni")))

// Every tile 16 rows x 64 bytes; the configuration is per thread, so each work item loads it.
// ldtilecfg is written out here because GCC 12's _tile_loadconfig tells the compiler it reads
// only 8 bytes of the 64-byte configuration, which lets the stores of rows and colsb be dropped
// (seen: SIGILL on the first tile instruction of a pool thread).
AMX_TARGET void vitc_amx_load_tile_config(void) {
    struct {
        uint8_t palette_id, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

// Weight panels per column group: the group's panels stay in L2 while every row block passes
// over them; at least one group per thread.
static vitc_int amx_group_panels(vitc_int panels, vitc_int panel_bytes, int threads) {
    const vitc_int fit = max_int(1, AMX_L2_BLOCK / max_int(1, panel_bytes));
    return max_int(1, min_int(fit, (panels + threads - 1) / threads));
}

// 32x32 block of 16x16 tiles 0..3 -> buf (row stride NR elements of 4 bytes).
#define AMX_STORE_BLOCK(buf)                              \
    do {                                                  \
        _tile_stored(0, (buf), NR * 4);                   \
        _tile_stored(1, (buf) + 16, NR * 4);              \
        _tile_stored(2, (buf) + 16 * NR, NR * 4);         \
        _tile_stored(3, (buf) + 16 * NR + 16, NR * 4);    \
    } while (0)

// c (rows, cols) = acc (rows, NR) + bias, then the activation.
BF16_TARGET static void bf16_store_block(float *c, vitc_int ldc, const float *acc, vitc_int rows,
                                         vitc_int cols, const float *bias, vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 =
        cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (vitc_int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_add_ps(_mm512_load_ps(acc + i * NR), bias0));
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1,
                              _mm512_add_ps(_mm512_load_ps(acc + i * NR + 16), bias1));
    }
    apply_act_rows(c, ldc, act, rows, cols);
}

// One AMX GEMM for both precisions: the tile loop is the same in bytes (a K step is one 64-byte
// tile row: 32 bf16 or 64 int8 values, and 16 rows of a 128-byte weight panel); only the product
// instruction and the epilogue differ.
typedef struct {
    const char *a;        // activation rows, round_up(M, AMX_MR) of them
    vitc_int lda;         // bytes between rows
    const char *w;        // weight panels
    vitc_int panel_bytes; // K x NR of one panel
    vitc_int steps;       // K / 32 (bf16) or K / 64 (int8)
    int int8;             // tdpbusd (u8 x s8 -> int32) instead of tdpbf16ps
    vitc_int M, N, group; // group: weight panels per work item
    // acc (AMX_MR, NR) fp32 or int32 for output rows m0.., columns n0..
    void (*store)(const void *ctx, const void *acc, vitc_int m0, vitc_int n0);
    const void *ctx;
} amx_job;

// Work item: a group of weight panels; every 32-row block of activations against each panel,
// over all of K in the tiles.
AMX_TARGET static void amx_gemm(void *vjob, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const amx_job *j = vjob;
    const vitc_int panels = round_up(j->N, NR) / NR, Mp = round_up(j->M, AMX_MR);
    float acc[AMX_MR * NR] __attribute__((aligned(64)));  // fp32 or int32 bits
    vitc_amx_load_tile_config();
    for (vitc_int g = begin; g < end; g++) {
        const vitc_int p_end = min_int((g + 1) * j->group, panels);
        for (vitc_int m0 = 0; m0 < Mp; m0 += AMX_MR) {
            const char *a0 = j->a + m0 * j->lda, *a1 = a0 + 16 * j->lda;
            for (vitc_int panel = g * j->group; panel < p_end; panel++) {
                const char *b = j->w + panel * j->panel_bytes;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (vitc_int s = 0; s < j->steps; s++) {
                    _tile_loadd(4, a0 + s * 64, j->lda);
                    _tile_loadd(5, a1 + s * 64, j->lda);
                    _tile_loadd(6, b + s * 16 * NR * 4, NR * 4);
                    _tile_loadd(7, b + s * 16 * NR * 4 + 64, NR * 4);
                    if (j->int8) {
                        _tile_dpbusd(0, 4, 6);
                        _tile_dpbusd(1, 4, 7);
                        _tile_dpbusd(2, 5, 6);
                        _tile_dpbusd(3, 5, 7);
                    } else {
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                }
                AMX_STORE_BLOCK(acc);
                j->store(j->ctx, acc, m0, panel * NR);
            }
        }
    }
    _tile_release();
}

// Split an AMX GEMM into column groups on vitc's pool.
static void amx_gemm_run(amx_job *job, int threads) {
    const vitc_int panels = round_up(job->N, NR) / NR;
    job->group = amx_group_panels(panels, job->panel_bytes, threads);
    vitc_parallel_for((panels + job->group - 1) / job->group, threads, amx_gemm, job);
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
    bf16_ctx c = {out, inp, (const uint32_t *)w_packed, b, act, M, N, K, ld_out, ld_inp,
                  (uint32_t *)scratch, linear_bf16_uses_simd(), 0};
    const int threads = vitc_get_num_threads();
    const vitc_int panels = round_up(N, NR) / NR;
#if LOWP_HAVE_X86_CODE
    if (K % 32 == 0 && linear_bf16_uses_amx()) {
        c.lda = amx_row_bytes(K, 2) / 4;
        vitc_parallel_for(round_up(M, AMX_MR), threads, bf16_pack_rows_amx, &c);
        amx_job job = {(const char *)c.a, c.lda * 4, (const char *)c.w, K * NR * 2, K / 32, 0,
                       M, N, 0, bf16_store_tile, &c};
        amx_gemm_run(&job, threads);
        return;
    }
#endif
    vitc_parallel_for(round_up(M, BF16_MR) / BF16_MR, threads, bf16_pack_rows, &c);
    vitc_parallel_for(panels, threads, bf16_gemm_panels, &c);
}

// ---------------------------------------------------------------------------------------------
// int8 weights: per output channel symmetric, scale = max|w| / 127, q = rint(w * (127 / max|w|)).
// A channel of zeros (or of denormals only) has scale 0 and q = 0; a channel with NaN or inf has
// scale NaN (its outputs are NaN).

vitc_int pack_int8_len(vitc_int N, vitc_int K) { return round_up(N, NR) * round_up(K, 4); }

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
    return round_up(M, 16) * (vitc_int)sizeof(float) + max_int(panels, rows);
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
    uint32_t *a;  // u8 quads
    int simd;
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
    pack_job job = {packed, scales, col_sums, w, N, K, linear_int8_uses_simd()};
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
    __m512 y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc0, corr0)),
                              _mm512_mul_ps(r, cs0));
    __m512 y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc1, corr1)),
                              _mm512_mul_ps(r, cs1));
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
    const __mmask16 m1 =
        cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
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
VNNI_TARGET static void int8_store_block(float *c, vitc_int ldc, const int32_t *acc,
                                         vitc_int rows, vitc_int cols, const float *rs,
                                         const float *cs, const int32_t *csum, const float *bias,
                                         vitc_act act) {
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 =
        cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512i zp = _mm512_set1_epi32(INT8_ZERO_POINT);
    const __m512i corr0 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m0, csum));
    const __m512i corr1 = _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(m1, csum + 16));
    const __m512 cs0 = _mm512_maskz_loadu_ps(m0, cs), cs1 = _mm512_maskz_loadu_ps(m1, cs + 16);
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (vitc_int i = 0; i < rows; i++)
        int8_dequant_row(c + i * ldc, _mm512_load_si512(acc + i * NR),
                         _mm512_load_si512(acc + i * NR + 16), rs[i], corr0, corr1, cs0, cs1,
                         bias0, bias1, bias != NULL, m0, m1);
    apply_act_rows(c, ldc, act, rows, cols);
}
#endif

static void int8_gemm_panels(void *vctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const int8_ctx *c = vctx;
    const vitc_int K4 = round_up(c->K, 4) / 4;
    const vitc_int row_panels = round_up(c->M, INT8_MR) / INT8_MR;
    for (vitc_int p0 = 0; p0 == 0 || p0 < K4; p0 += INT8_KC) {
        const vitc_int kc = min_int(INT8_KC, K4 - p0);
        const int first = p0 == 0, last = p0 + INT8_KC >= K4;
        for (vitc_int panel = begin; panel < end; panel++) {
            const vitc_int n0 = panel * NR, cols = min_int(NR, c->N - n0);
            const int8_t *b = c->w + n0 * K4 * 4 + p0 * NR * 4;
            const float *bias = c->b ? c->b + n0 : NULL;
            for (vitc_int rp = 0; rp < row_panels; rp++) {
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
                     min_int(NR, c->N - n0), c->row_scale + m0, c->col_scale + n0,
                     c->col_sum + n0, c->b ? c->b + n0 : NULL, c->act);
}
#endif

// out (M,N), inp (M,K), w_packed (pack_int8_len(N,K)), scales (N), col_sums (N), b (N) or NULL,
// scratch (linear_int8_scratch_len(M,K) bytes, 4-byte aligned)
void linear_int8_forward(float *out, const float *inp, const int8_t *w_packed, const float *scales,
                         const int32_t *col_sums, const float *b, vitc_act act, vitc_int M,
                         vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                         uint8_t *scratch) {
    if (M <= 0 || N <= 0) return;
    int8_ctx c = {out, inp, w_packed, scales, col_sums, b, act, M, N, K, ld_out, ld_inp,
                  (float *)scratch, (uint32_t *)(scratch + round_up(M, 16) * sizeof(float)),
                  linear_int8_uses_simd(), 0};
    const int threads = vitc_get_num_threads();
    const vitc_int panels = round_up(N, NR) / NR;
#if LOWP_HAVE_X86_CODE
    if (K % 64 == 0 && linear_int8_uses_amx()) {
        c.lda = amx_row_bytes(K, 1) / 4;
        vitc_parallel_for(round_up(M, AMX_MR), threads, int8_pack_rows_amx, &c);
        amx_job job = {(const char *)c.a, c.lda * 4, (const char *)c.w, K * NR, K / 64, 1,
                       M, N, 0, int8_store_tile, &c};
        amx_gemm_run(&job, threads);
        return;
    }
#endif
    vitc_parallel_for(round_up(M, INT8_MR) / INT8_MR, threads, int8_pack_rows, &c);
    vitc_parallel_for(panels, threads, int8_gemm_panels, &c);
}
