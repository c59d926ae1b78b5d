// gemm_f32.c: vitc's fp32 GEMM for weight matrices packed once (see gemm_f32.h for the contract).
// Goto/BLIS structure: A (the activations) packed per call into MR-row panels, the weights
// pre-packed in 16-column panels; loops rows (MC block, A in L2) > columns (NC chunk) > K (KC
// block: a KC x 16 weight panel slice stays in L1) > panels > MR-row tiles > register tile. Partial
// sums over K blocks are stored and continued (exact), so each output element is one FMA chain in
// k order whatever the blocking. Not the model wiring; pure C, no Python, no allocation.
#include "gemm_f32.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define GEMM_HAVE_X86 1
#include <immintrin.h>
#else
#define GEMM_HAVE_X86 0
#endif

enum {
    MAX_MR = 14,        // largest tile (AVX-512): rows
    MAX_NR = 32,        //                         columns
    ALIGN_FLOATS = 16,  // 64 bytes: scratch parts start on a cache line
};

// Below this many flops (2 M N K) a GEMM runs on the calling thread: waking a worker costs more.
static const double PARALLEL_MIN_FLOP = 4e6;

static vitc_int round_up(vitc_int x, vitc_int m) {
    return (x + m - 1) / m * m;
}
static vitc_int min_int(vitc_int a, vitc_int b) {
    return a < b ? a : b;
}
static vitc_int max_int(vitc_int a, vitc_int b) {
    return a > b ? a : b;
}

static float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

// ---------------------------------------------------------------------------------------------
// Register tiles. Every tile has the signature of gemm_f32_tile.inc's (see there).

typedef void (*tile_fn)(const float *a, const float *b, vitc_int b_stride, vitc_int kc,
                        const float *cin, vitc_int ld_in, float *cout, vitc_int ld_out,
                        const float *bias, const float *res, vitc_int ld_res);

// Portable tile: SCALAR_MR x 16, fmaf explicitly (the compiler must not choose between a fused
// and an unfused multiply-add: the vector codes fuse, so this one does too).
enum { SCALAR_MR = 4 };

static void tile_scalar(const float *a, const float *b, vitc_int b_stride, vitc_int kc,
                        const float *cin, vitc_int ld_in, float *cout, vitc_int ld_out,
                        const float *bias, const float *res, vitc_int ld_res) {
    (void)b_stride;
    float acc[SCALAR_MR][GEMM_F32_NR];
    for (int r = 0; r < SCALAR_MR; r++)
        for (int j = 0; j < GEMM_F32_NR; j++) acc[r][j] = cin ? cin[r * ld_in + j] : 0.0f;
    for (vitc_int k = 0; k < kc; k++)
        for (int r = 0; r < SCALAR_MR; r++) {
            const float x = a[k * SCALAR_MR + r];
            for (int j = 0; j < GEMM_F32_NR; j++)
                acc[r][j] = fmaf(x, b[k * GEMM_F32_NR + j], acc[r][j]);
        }
    for (int r = 0; r < SCALAR_MR; r++)
        for (int j = 0; j < GEMM_F32_NR; j++) {
            float v = acc[r][j];
            if (bias) v = v + bias[j];
            if (res) v = res[r * ld_res + j] + v;
            cout[r * ld_out + j] = v;
        }
}

#if GEMM_HAVE_X86
// AVX2 + FMA: 6 x 16, 12 ymm accumulators, both B vectors from one panel row.
#define TILE_NAME tile_avx2
#define TILE_TARGET __attribute__((target("avx2,fma")))
#define TILE_MR 6
#define VEC __m256
#define VL 8
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps((p), (v))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_ZERO() _mm256_setzero_ps()
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define TILE_B1(b, b_stride) ((b) + 8)
#include "gemm_f32_tile.inc"

// AVX-512F: 14 x 32, 28 zmm accumulators, one B vector from each of two adjacent panels
// (b_stride floats apart; 0 when the second panel is past N: its columns are then discarded).
#define TILE_NAME tile_avx512
#define TILE_TARGET __attribute__((target("avx512f")))
#define TILE_MR 14
#define VEC __m512
#define VL 16
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define TILE_B1(b, b_stride) ((b) + (b_stride))
#include "gemm_f32_tile.inc"

// Test instantiation: the AVX-512 tile (14 x 32, two panels) with a 16-lane vector made of two
// ymm, so the AVX-512 tier's tile shape, panel pairing and blocking run (and are checked
// bit for bit) on AVX2 machines too. Never chosen by the tier policy.
typedef struct {
    __m256 lo, hi;
} v16_avx2;
#define AVX2_TARGET __attribute__((target("avx2,fma")))
AVX2_TARGET static inline v16_avx2 v16_loadu(const float *p) {
    return (v16_avx2){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
AVX2_TARGET static inline void v16_storeu(float *p, v16_avx2 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
AVX2_TARGET static inline v16_avx2 v16_fma(v16_avx2 a, v16_avx2 b, v16_avx2 c) {
    return (v16_avx2){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
AVX2_TARGET static inline v16_avx2 v16_bcast(const float *p) {
    const __m256 x = _mm256_broadcast_ss(p);
    return (v16_avx2){x, x};
}
AVX2_TARGET static inline v16_avx2 v16_zero(void) {
    return (v16_avx2){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
AVX2_TARGET static inline v16_avx2 v16_add(v16_avx2 a, v16_avx2 b) {
    return (v16_avx2){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
#define TILE_NAME tile_avx512_shape
#define TILE_TARGET AVX2_TARGET
#define TILE_MR 14
#define VEC v16_avx2
#define VL 16
#define V_LOADU(p) v16_loadu(p)
#define V_STOREU(p, v) v16_storeu((p), (v))
#define V_FMA(a, b, c) v16_fma((a), (b), (c))
#define V_BCAST(p) v16_bcast(p)
#define V_ZERO() v16_zero()
#define V_ADD(a, b) v16_add((a), (b))
#define TILE_B1(b, b_stride) ((b) + (b_stride))
#include "gemm_f32_tile.inc"
#endif

// ---------------------------------------------------------------------------------------------
// A packing: ap (round_up(rows, mr) / mr panels of (K, mr)) <- rows of x (rows, K), each panel
// k-major (the mr values of one k side by side: one broadcast per row), zero rows past `rows`.
// Data movement only: the packers of the different codes store the same values.

typedef void (*pack_fn)(float *ap, const float *x, vitc_int ld_x, vitc_int rows, vitc_int K,
                        int mr);

static void pack_rows(float *ap, const float *x, vitc_int ld_x, vitc_int rows, vitc_int K, int mr) {
    for (vitc_int i0 = 0; i0 < rows; i0 += mr) {
        float *panel = ap + i0 * K;
        for (int r = 0; r < mr; r++) {
            if (i0 + r >= rows) {
                for (vitc_int k = 0; k < K; k++) panel[k * mr + r] = 0.0f;
                continue;
            }
            const float *src = x + (i0 + r) * ld_x;
            for (vitc_int k = 0; k < K; k++) panel[k * mr + r] = src[k];
        }
    }
}

#if GEMM_HAVE_X86
// AVX2, mr = 6: eight k at a time, the 6 rows transposed as an 8 x 8 block (two zero rows) and
// each k's 6 values stored with an 8-float store that the next k's store partly overwrites (the
// last with 4 + 2 floats, so nothing past the 48 floats is written). Measured 2x the scalar
// packer (35 vs 68 us for a 144 x 1024 block on Zen 2); it matters at 2 threads, where each
// thread packs the whole A block for its half of the columns (~1% of the GEMM time, was ~2%).
AVX2_TARGET static void pack_rows_avx2(float *ap, const float *x, vitc_int ld_x, vitc_int rows,
                                       vitc_int K, int mr) {
    const vitc_int full = rows / 6 * 6;
    for (vitc_int i0 = 0; i0 < full; i0 += 6) {
        float *panel = ap + i0 * K;
        const float *src = x + i0 * ld_x;
        vitc_int k = 0;
        for (; k + 8 <= K; k += 8) {
            const __m256 r0 = _mm256_loadu_ps(src + k), r1 = _mm256_loadu_ps(src + ld_x + k);
            const __m256 r2 = _mm256_loadu_ps(src + 2 * ld_x + k);
            const __m256 r3 = _mm256_loadu_ps(src + 3 * ld_x + k);
            const __m256 r4 = _mm256_loadu_ps(src + 4 * ld_x + k);
            const __m256 r5 = _mm256_loadu_ps(src + 5 * ld_x + k);
            const __m256 z = _mm256_setzero_ps();
            // 8 x 8 transpose of rows r0..r5, 0, 0: t[j] = column j = (r0[k+j], ..., r5[k+j], 0, 0)
            const __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 u6 = _mm256_unpacklo_ps(z, z), u7 = u6;
            const __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
            const __m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
            const __m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
            const __m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
            const __m256 t[8] = {
                _mm256_permute2f128_ps(v0, v4, 0x20), _mm256_permute2f128_ps(v1, v5, 0x20),
                _mm256_permute2f128_ps(v2, v6, 0x20), _mm256_permute2f128_ps(v3, v7, 0x20),
                _mm256_permute2f128_ps(v0, v4, 0x31), _mm256_permute2f128_ps(v1, v5, 0x31),
                _mm256_permute2f128_ps(v2, v6, 0x31), _mm256_permute2f128_ps(v3, v7, 0x31),
            };
            float *dst = panel + k * 6;
            for (int j = 0; j < 7; j++) _mm256_storeu_ps(dst + 6 * j, t[j]);
            _mm_storeu_ps(dst + 42, _mm256_castps256_ps128(t[7]));
            _mm_storel_pi((__m64 *)(dst + 46), _mm256_extractf128_ps(t[7], 1));
        }
        for (; k < K; k++)
            for (int r = 0; r < 6; r++) panel[k * 6 + r] = src[r * ld_x + k];
    }
    if (full < rows) pack_rows(ap + full * K, x + full * ld_x, ld_x, rows - full, K, mr);
}
#endif

// ---------------------------------------------------------------------------------------------
// Codes: the tile and its cache blocks. KC x (tile columns) floats of weights stay in L1 while
// the MR-row tiles of an MC block pass over them; the MC x KC slice of A stays in L2; the partial
// sums of an MC x NC block (K > KC) stay in L2 between K blocks.

typedef struct {
    tile_fn tile;  // NULL: not compiled for this machine
    pack_fn pack;
    int mr, nr;  // tile rows, columns (nr: 16 or 32, one or two panels)
    vitc_int kc, mc, nc;
    const char *name;
} code_info;

static const code_info CODES[GEMM_F32_CODES] = {
    [GEMM_F32_PORTABLE] = {tile_scalar, pack_rows, SCALAR_MR, 16, 256, 64, 256, "portable"},
#if GEMM_HAVE_X86
    // Zen 2 (32 KiB L1d, 512 KiB L2): a 16 KiB weight slice, a 144 KiB A slice.
    [GEMM_F32_AVX2] = {tile_avx2, pack_rows_avx2, 6, 16, 256, 144, 256, "avx2"},
    // 48 KiB L1d, >= 1 MiB L2 (Zen 4/5, Sapphire Rapids): a 24 KiB weight slice (two panels).
    [GEMM_F32_AVX512] = {tile_avx512, pack_rows, 14, 32, 192, 196, 256, "avx512"},
    // Test only: the row above's shape and blocks on AVX2 instructions.
    [GEMM_F32_AVX512_SHAPE] = {tile_avx512_shape, pack_rows, 14, 32, 192, 196, 256, "avx512_shape"},
#else
    [GEMM_F32_AVX2] = {NULL, NULL, 6, 16, 256, 144, 256, "avx2"},
    [GEMM_F32_AVX512] = {NULL, NULL, 14, 32, 192, 196, 256, "avx512"},
    [GEMM_F32_AVX512_SHAPE] = {NULL, NULL, 14, 32, 192, 196, 256, "avx512_shape"},
#endif
};

int gemm_f32_code_runs(gemm_f32_code code) {
    if ((int)code < 0 || code >= GEMM_F32_CODES || CODES[code].tile == NULL) return 0;
    const unsigned f = vitc_cpu_features(), avx2 = VITC_CPU_AVX2 | VITC_CPU_FMA;
    switch (code) {
        case GEMM_F32_PORTABLE:
            return 1;
        case GEMM_F32_AVX2:
        case GEMM_F32_AVX512_SHAPE:
            return (f & avx2) == avx2;
        case GEMM_F32_AVX512:
            return (f & VITC_CPU_AVX512F) != 0;
        default:
            return 0;
    }
}

// The policy's tiers map onto the codes one to one (AMX has no fp32 GEMM: it runs AVX-512).
gemm_f32_code gemm_f32_code_at(vitc_tier tier) {
    const vitc_tier t = vitc_op_tier_at(VITC_OP_GEMM_F32, tier);
    const gemm_f32_code code = t >= VITC_TIER_AVX512 ? GEMM_F32_AVX512
                               : t == VITC_TIER_AVX2 ? GEMM_F32_AVX2
                                                     : GEMM_F32_PORTABLE;
    return gemm_f32_code_runs(code) ? code : GEMM_F32_PORTABLE;
}

gemm_f32_code gemm_f32_code_now(void) {
    return gemm_f32_code_at(vitc_active_tier());
}

const char *gemm_f32_code_name(gemm_f32_code code) {
    return (int)code >= 0 && code < GEMM_F32_CODES ? CODES[code].name : "unknown";
}

gemm_f32_micro gemm_f32_micro_kernel(gemm_f32_code code) {
    if (!gemm_f32_code_runs(code)) code = GEMM_F32_PORTABLE;
    const gemm_f32_micro k = {CODES[code].tile, CODES[code].mr, CODES[code].nr};
    return k;
}

// ---------------------------------------------------------------------------------------------
// Weights

vitc_int gemm_f32_packed_len(vitc_int N, vitc_int K) {
    return round_up(N, GEMM_F32_NR) * K;
}

typedef struct {
    float *packed;
    const float *w;
    vitc_int N, K, ld_w;
} pack_job;

// Panels [begin, end): rows of w read contiguously, 16 of them interleaved per panel.
static void pack_panels(void *ctx, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const pack_job *j = ctx;
    for (vitc_int p = begin; p < end; p++) {
        float *panel = j->packed + p * j->K * GEMM_F32_NR;
        for (int c = 0; c < GEMM_F32_NR; c++) {
            const vitc_int n = p * GEMM_F32_NR + c;
            const float *row = j->w + n * j->ld_w;
            if (n < j->N)
                for (vitc_int k = 0; k < j->K; k++) panel[k * GEMM_F32_NR + c] = row[k];
            else
                for (vitc_int k = 0; k < j->K; k++) panel[k * GEMM_F32_NR + c] = 0.0f;
        }
    }
}

// packed (gemm_f32_packed_len(N,K)), w (N,K)
void gemm_f32_pack(float *packed, const float *w, vitc_int N, vitc_int K) {
    if (N <= 0 || K <= 0) return;
    pack_job job = {packed, w, N, K, K};
    vitc_parallel_for(round_up(N, GEMM_F32_NR) / GEMM_F32_NR, vitc_get_num_threads(), pack_panels,
                      &job);
}

// packed (gemm_f32_packed_len(N,K)), w (N,K) rows ld_w apart
void gemm_f32_pack_serial(float *packed, const float *w, vitc_int N, vitc_int K, vitc_int ld_w) {
    if (N <= 0 || K <= 0) return;
    pack_job job = {packed, w, N, K, ld_w};
    pack_panels(&job, 0, round_up(N, GEMM_F32_NR) / GEMM_F32_NR, 0);
}

// ---------------------------------------------------------------------------------------------
// Forward

// Rows per MC block: equal blocks of at most `mc` rows, a multiple of mr (1025 rows at mc = 144:
// 8 blocks of 132 and a last of 101, not 7 x 144 + 17).
static vitc_int block_rows(vitc_int M, vitc_int mc, int mr) {
    const vitc_int blocks = (M + mc - 1) / mc;
    return round_up((M + blocks - 1) / blocks, mr);
}

// Scratch of one code, in floats: A block (round_up(mc, mr), K) | partial sums (round_up(mc, mr),
// ldp) when K > kc | 64-byte alignment slack.
static vitc_int code_scratch_len(const code_info *t, vitc_int M, vitc_int N, vitc_int K) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    const vitc_int rows = round_up(block_rows(M, t->mc, t->mr), t->mr);
    const vitc_int parts = K > t->kc ? rows * round_up(min_int(t->nc, N), t->nr) : 0;
    return ALIGN_FLOATS + round_up(rows * K, ALIGN_FLOATS) + parts;
}

vitc_int gemm_f32_scratch_len(vitc_int M, vitc_int N, vitc_int K) {
    vitc_int len = 0;
    for (int c = 0; c < GEMM_F32_CODES; c++) len = max_int(len, code_scratch_len(&CODES[c], M, N, K));
    return len;
}

// K = 0: every chain is empty, out = act(0.0f + b) or out += 0.0f + b.
static void empty_sum(float *out, const float *b, vitc_act act, int residual, vitc_int M,
                      vitc_int n0, vitc_int n1, vitc_int ld_out) {
    for (vitc_int m = 0; m < M; m++) {
        float *y = out + m * ld_out;
        for (vitc_int n = n0; n < n1; n++) {
            const float v = 0.0f + (b ? b[n] : 0.0f);
            y[n] = residual ? y[n] + v : v;
        }
        if (!residual) act_forward_f32(y + n0, y + n0, act, n1 - n0);
    }
}

// Everything a (column range of a) GEMM needs, fixed for the call.
typedef struct {
    const code_info *t;
    float *out;
    const float *inp, *packed, *b;
    vitc_act act;
    int residual;
    vitc_int M, N, K, ld_out, ld_inp;
} gemm_args;

// The last K block of tile rows [m, m + mr) x columns [n, n + nr) of out: bias, residual,
// activation. A tile that sticks out of the matrix (mr < MR or nr < NR) runs on a local copy:
// the same tile code, the same chains, and only its valid part is written.
static void finish_tile(const gemm_args *g, const float *a, const float *bp, vitc_int b_stride,
                        vitc_int kc, const float *cin, vitc_int ld_in, vitc_int m, vitc_int n,
                        vitc_int mr, vitc_int nr) {
    const code_info *t = g->t;
    float *dst = g->out + m * g->ld_out + n;
    if (mr == t->mr && nr == t->nr) {
        t->tile(a, bp, b_stride, kc, cin, ld_in, dst, g->ld_out, g->b ? g->b + n : NULL,
                g->residual ? dst : NULL, g->ld_out);
    } else {
        float tile[MAX_MR * MAX_NR], res[MAX_MR * MAX_NR], bias[MAX_NR];
        const vitc_int ld = t->nr;
        if (g->b) {
            memset(bias, 0, sizeof bias);
            memcpy(bias, g->b + n, (size_t)nr * sizeof(float));
        }
        if (g->residual) {
            memset(res, 0, sizeof res);
            for (vitc_int r = 0; r < mr; r++)
                memcpy(res + r * ld, dst + r * g->ld_out, (size_t)nr * sizeof(float));
        }
        t->tile(a, bp, b_stride, kc, cin, ld_in, tile, ld, g->b ? bias : NULL,
                g->residual ? res : NULL, ld);
        for (vitc_int r = 0; r < mr; r++)
            memcpy(dst + r * g->ld_out, tile + r * ld, (size_t)nr * sizeof(float));
    }
    if (!g->residual && g->act != VITC_ACT_NONE)
        for (vitc_int r = 0; r < mr; r++)
            act_forward_f32(dst + r * g->ld_out, dst + r * g->ld_out, g->act, nr);
}

// Software prefetches, issued before each tile for what the tiles after it read first: lines
// [l0, l1) of the next weight slice (kc lines per panel; spread over an MC block's tiles, so the
// first tile of each slice does not wait on memory for all of it), and the next tile's partial
// sums and the start of its A panel (both in L2). Measured ~2-4% on ViT-B shapes (M = 197).
static void prefetch_slice(const float *slice, vitc_int b_stride, vitc_int kc, vitc_int l0,
                           vitc_int l1) {
    for (vitc_int l = l0; l < l1;) {  // l = panel * kc + row, a panel's rows at a time
        const vitc_int panel = l / kc, row_end = min_int(kc, l1 - panel * kc);
        const float *p = slice + panel * b_stride;
        for (vitc_int row = l - panel * kc; row < row_end; row++)
            __builtin_prefetch(p + row * GEMM_F32_NR);
        l = panel * kc + row_end;
    }
}

static void prefetch_tile(const float *part, vitc_int ldp, int mr, int nr, const float *a) {
    if (part)
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < nr; c += 16) __builtin_prefetch(part + r * ldp + c);
    for (int l = 0; l < 4; l++) __builtin_prefetch(a + l * 16);
}

// Columns [n0, n1) of the GEMM, n0 a multiple of 16.
static void gemm_cols(const gemm_args *g, vitc_int n0, vitc_int n1, float *scratch) {
    const code_info *t = g->t;
    const vitc_int M = g->M, K = g->K, MR = t->mr, NR = t->nr;
    if (M <= 0 || n1 <= n0) return;
    if (K <= 0) {
        empty_sum(g->out, g->b, g->act, g->residual, M, n0, n1, g->ld_out);
        return;
    }
    const vitc_int panels = round_up(g->N, GEMM_F32_NR) / GEMM_F32_NR;
    const vitc_int mc = block_rows(M, t->mc, t->mr);
    const vitc_int ldp = round_up(min_int(t->nc, n1 - n0), NR);
    float *ap = align64(scratch);
    float *part = ap + round_up(round_up(mc, MR) * K, ALIGN_FLOATS);
    for (vitc_int ic = 0; ic < M; ic += mc) {
        const vitc_int mcur = min_int(mc, M - ic), ntiles = (mcur + MR - 1) / MR;
        t->pack(ap, g->inp + ic * g->ld_inp, g->ld_inp, mcur, K, t->mr);
        for (vitc_int jc = n0; jc < n1; jc += t->nc) {
            if (vitc_stopping()) return;  // the caller discards the output
            const vitc_int jend = min_int(jc + t->nc, n1);
            for (vitc_int pc = 0; pc < K; pc += t->kc) {
                const vitc_int kc = min_int(t->kc, K - pc);
                const int first = pc == 0, last = pc + kc == K;
                for (vitc_int jr = jc; jr < jend; jr += NR) {
                    const vitc_int p = jr / GEMM_F32_NR, nr = min_int(NR, jend - jr);
                    const float *bp = g->packed + (p * K + pc) * GEMM_F32_NR;
                    const vitc_int b_stride = p + 1 < panels ? K * GEMM_F32_NR : 0;
                    // the weight slice of the next tile columns (same K block)
                    const vitc_int pn = p + NR / GEMM_F32_NR;
                    const vitc_int next_lines =
                        jr + NR >= jend ? 0 : kc * min_int(NR / GEMM_F32_NR, panels - pn);
                    const float *next = next_lines ? g->packed + (pn * K + pc) * GEMM_F32_NR : bp;
                    const vitc_int share = (next_lines + ntiles - 1) / ntiles;
                    for (vitc_int ir = 0, i = 0; ir < mcur; ir += MR, i++) {
                        const float *a = ap + ir * K + pc * MR;
                        float *pt = part + ir * ldp + (jr - jc);
                        const float *cin = first ? NULL : pt;
                        prefetch_slice(next, K * GEMM_F32_NR, kc, min_int(i * share, next_lines),
                                       min_int((i + 1) * share, next_lines));
                        if (ir + MR < mcur)
                            prefetch_tile(first ? NULL : pt + MR * ldp, ldp, MR, NR, a + MR * K);
                        if (last)
                            finish_tile(g, a, bp, b_stride, kc, cin, ldp, ic + ir, jr,
                                        min_int(MR, mcur - ir), nr);
                        else
                            t->tile(a, bp, b_stride, kc, cin, ldp, pt, ldp, NULL, NULL, 0);
                    }
                }
            }
        }
    }
}

void gemm_f32_forward_cols_code(gemm_f32_code code, float *out, const float *inp,
                                const float *packed, const float *b, vitc_act act, int residual,
                                vitc_int M, vitc_int N, vitc_int K, vitc_int n0, vitc_int n1,
                                vitc_int ld_out, vitc_int ld_inp, float *scratch) {
    if (!gemm_f32_code_runs(code)) code = GEMM_F32_PORTABLE;
    const gemm_args g = {&CODES[code], out, inp, packed, b, act, residual, M, N, K, ld_out, ld_inp};
    gemm_cols(&g, n0, n1, scratch);
}

// out (M,N), inp (M,K), packed (gemm_f32_packed_len(N,K)), b (N) or NULL
void gemm_f32_forward(float *out, const float *inp, const float *packed, const float *b,
                      vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                      vitc_int ld_out, vitc_int ld_inp, float *scratch) {
    gemm_f32_forward_cols_code(gemm_f32_code_now(), out, inp, packed, b, act, residual, M, N, K, 0,
                               N, ld_out, ld_inp, scratch);
}

// ---------------------------------------------------------------------------------------------
// Column split on vitc's pool

typedef struct {
    gemm_args g;
    float *scratch;
    vitc_int scratch_len, unit;  // per thread; columns per work unit
} parallel_job;

static void parallel_task(void *ctx, vitc_int begin, vitc_int end, int thread_id) {
    const parallel_job *j = ctx;
    gemm_cols(&j->g, begin * j->unit, min_int(end * j->unit, j->g.N),
              j->scratch + thread_id * j->scratch_len);
}

void gemm_f32_forward_parallel_code(gemm_f32_code code, float *out, const float *inp,
                                    const float *packed, const float *b, vitc_act act, int residual,
                                    vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                    vitc_int ld_inp, int threads, float *scratch) {
    if (M <= 0 || N <= 0) return;
    if (!gemm_f32_code_runs(code)) code = GEMM_F32_PORTABLE;
    const code_info *t = &CODES[code];
    const vitc_int scratch_len = gemm_f32_scratch_len(M, N, K);
    parallel_job job = {{t, out, inp, packed, b, act, residual, M, N, K, ld_out, ld_inp},
                        scratch,
                        scratch_len,
                        t->nr};
    if (2.0 * (double)M * (double)N * (double)K < PARALLEL_MIN_FLOP) threads = 1;
    vitc_parallel_for((N + job.unit - 1) / job.unit, threads, parallel_task, &job);
}

// out (M,N), inp (M,K), packed (gemm_f32_packed_len(N,K)), b (N) or NULL
void gemm_f32_forward_parallel(float *out, const float *inp, const float *packed, const float *b,
                               vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                               vitc_int ld_out, vitc_int ld_inp, int threads, float *scratch) {
    gemm_f32_forward_parallel_code(gemm_f32_code_now(), out, inp, packed, b, act, residual, M, N,
                                   K, ld_out, ld_inp, threads, scratch);
}
