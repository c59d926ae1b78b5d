// attention_amx.c: one attention head in bf16 on AMX tiles, for the reduced-precision
// models: q k^T and p v as tdpbf16ps products (bf16 inputs, fp32 sums), softmax in fp32; and the
// entry points of the bf16 attention, which pick AMX or the AVX-512 BF16 code (attention_avx512.c).
// Not the fp32 attention (attention.c) and not the model's choice (vit_forward.c decides);
// pure C, no Python, no allocation: the scratch comes from the caller.
//
// Per head, with Tp = T rounded up to 32 keys:
//   kT (D/2, Tp) pairs   k transposed, two head dims per uint32: the B tiles of q k^T
//   vp (Tp/2, D) pairs   two consecutive keys per uint32: the B tiles of p v
// then per block of 32 query rows:
//   qb (32, D) bf16      q * scale (scale folded in before rounding)
//   s  (32, Tp) fp32     scores -> exp(s - row max) in place
//   pb (32, Tp) bf16     probabilities before normalization (zeros past T)
//   o  (16, D) fp32      p v for 16 rows, divided by the row sums on the way out
// Everything is a few hundred KiB for ViT shapes, so one head stays in L2. Tile loads and stores
// (not seen by AddressSanitizer) stay inside these buffers: keys and query rows are padded to 32,
// head dims are 32 or 64 (attention_bf16_supported), and qb/pb always hold 32 rows.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

enum { QB = 32 };  // query rows per block (two A tiles), keys padded to a multiple of it

static vitc_int round_up(vitc_int x, vitc_int m) { return (x + m - 1) / m * m; }

int attention_bf16_supported(vitc_int D) {
    return D > 0 && D % 32 == 0 && D <= 64 &&
           (vitc_op_tier(VITC_OP_ATTENTION_BF16) >= VITC_TIER_AVX512 || attention_bf16_emulated());
}

// Byte offsets of the scratch parts; each part 64-byte aligned.
typedef struct {
    vitc_int kt, vp, qb, s, pb, o, rowsum, total;
    vitc_int ldk;  // kT row stride in pairs: Tp plus 16 so tile rows spread over cache sets
} attn_amx_plan;

static vitc_int align64(vitc_int x) { return round_up(x, 64); }

static attn_amx_plan plan(vitc_int T, vitc_int D) {
    const vitc_int Tp = round_up(T > 0 ? T : 1, QB);
    attn_amx_plan p;
    p.ldk = Tp + 16;
    p.kt = 0;
    p.vp = p.kt + align64(D / 2 * p.ldk * 4);
    p.qb = p.vp + align64(Tp / 2 * D * 4);
    p.s = p.qb + align64(QB * D * 2);
    p.pb = p.s + align64(QB * Tp * 4);
    p.o = p.pb + align64(QB * Tp * 2);
    p.rowsum = p.o + align64(16 * D * 4);
    p.total = p.rowsum + align64(QB * 4) + 64;  // + 64: the caller's buffer may start unaligned
    return p;
}

// Enough for either code: the tier may change between a plan and the forward that follows it.
vitc_int attention_bf16_scratch_bytes(vitc_int T, vitc_int D) {
    const vitc_int amx = plan(T, D).total, avx512 = attention_avx512_scratch_bytes(T, D);
    return amx > avx512 ? amx : avx512;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ATTN_AMX_TARGET \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

// 16 fp32 -> 16 bf16 (round to nearest even), as the bf16 GEMMs round.
ATTN_AMX_TARGET static inline __m256i bf16x16(__m512 x) {
    return (__m256i)_mm512_cvtneps_pbh(x);
}

// kT[i][n] = (k[n][2i], k[n][2i+1]) for n < T, zero for T <= n < Tp.
ATTN_AMX_TARGET static void pack_k_transposed(uint32_t *kt, vitc_int ldk, const float *k,
                                              vitc_int ld_k, vitc_int T, vitc_int Tp, vitc_int D) {
    uint32_t pairs[32];
    for (vitc_int n = 0; n < Tp; n++) {
        if (n < T) {
            for (vitc_int d = 0; d < D; d += 32) {
                const __m512 lo = _mm512_loadu_ps(k + n * ld_k + d);
                const __m512 hi = _mm512_loadu_ps(k + n * ld_k + d + 16);
                _mm512_storeu_si512(pairs + d / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            }
        } else {
            memset(pairs, 0, sizeof pairs);
        }
        for (vitc_int i = 0; i < D / 2; i++) kt[i * ldk + n] = pairs[i];
    }
}

// vp[j][d] = (v[2j][d], v[2j+1][d]); rows past T are zero.
ATTN_AMX_TARGET static void pack_v_pairs(uint32_t *vp, const float *v, vitc_int ld_v, vitc_int T,
                                         vitc_int Tp, vitc_int D) {
    // Interleave the 16-bit lanes of two rows: lane l of the result takes a[l/2] or b[l/2].
    __m512i lo_idx, hi_idx;
    {
        uint16_t lo[32], hi[32];
        for (int l = 0; l < 32; l++) {
            lo[l] = (uint16_t)((l & 1 ? 32 : 0) + l / 2);
            hi[l] = (uint16_t)((l & 1 ? 32 : 0) + 16 + l / 2);
        }
        lo_idx = _mm512_loadu_si512(lo);
        hi_idx = _mm512_loadu_si512(hi);
    }
    for (vitc_int j = 0; j < Tp / 2; j++) {
        const vitc_int r0 = 2 * j, r1 = 2 * j + 1;
        for (vitc_int d = 0; d < D; d += 32) {
            const __m512 z = _mm512_setzero_ps();
            const __m512 a0 = r0 < T ? _mm512_loadu_ps(v + r0 * ld_v + d) : z;
            const __m512 a1 = r0 < T ? _mm512_loadu_ps(v + r0 * ld_v + d + 16) : z;
            const __m512 b0 = r1 < T ? _mm512_loadu_ps(v + r1 * ld_v + d) : z;
            const __m512 b1 = r1 < T ? _mm512_loadu_ps(v + r1 * ld_v + d + 16) : z;
            const __m512i a = (__m512i)_mm512_cvtne2ps_pbh(a1, a0);  // 32 bf16 of row r0
            const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(b1, b0);  // 32 bf16 of row r1
            _mm512_storeu_si512(vp + j * D + d, _mm512_permutex2var_epi16(a, lo_idx, b));
            _mm512_storeu_si512(vp + j * D + d + 16, _mm512_permutex2var_epi16(a, hi_idx, b));
        }
    }
}

// out (S,D) = softmax(q k^T * scale) v for one head; q, k, v rows with strides ld_q, ld_k, ld_v.
ATTN_AMX_TARGET static void attention_amx(float *out, const float *q, const float *k,
                                          const float *v, float scale, vitc_int S, vitc_int T,
                                          vitc_int D, vitc_int ld_out, vitc_int ld_q,
                                          vitc_int ld_k, vitc_int ld_v, void *scratch) {
    const attn_amx_plan p = plan(T, D);
    const vitc_int Tp = round_up(T, QB);
    char *base = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint32_t *kt = (uint32_t *)(base + p.kt), *vp = (uint32_t *)(base + p.vp);
    uint16_t *qb = (uint16_t *)(base + p.qb), *pb = (uint16_t *)(base + p.pb);
    float *s = (float *)(base + p.s), *o = (float *)(base + p.o);
    float *rowsum = (float *)(base + p.rowsum);

    pack_k_transposed(kt, p.ldk, k, ld_k, T, Tp, D);
    pack_v_pairs(vp, v, ld_v, T, Tp, D);
    vitc_amx_load_tile_config();
    const __m512 vscale = _mm512_set1_ps(scale);
    for (vitc_int s0 = 0; s0 < S; s0 += QB) {
        const vitc_int rows = S - s0 < QB ? S - s0 : QB;
        for (vitc_int r = 0; r < QB; r++)
            for (vitc_int d = 0; d < D; d += 16) {
                const __m512 x =
                    r < rows ? _mm512_mul_ps(_mm512_loadu_ps(q + (s0 + r) * ld_q + d), vscale)
                             : _mm512_setzero_ps();
                _mm256_storeu_si256((__m256i *)(qb + r * D + d), bf16x16(x));
            }
        // scores: 32 x 32 blocks over the keys, D in steps of 32 (one A tile width)
        for (vitc_int n0 = 0; n0 < Tp; n0 += QB) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (vitc_int d = 0; d < D; d += 32) {
                _tile_loadd(4, qb + d, D * 2);
                _tile_loadd(5, qb + 16 * D + d, D * 2);
                _tile_loadd(6, kt + (d / 2) * p.ldk + n0, p.ldk * 4);
                _tile_loadd(7, kt + (d / 2) * p.ldk + n0 + 16, p.ldk * 4);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, s + n0, Tp * 4);
            _tile_stored(1, s + n0 + 16, Tp * 4);
            _tile_stored(2, s + 16 * Tp + n0, Tp * 4);
            _tile_stored(3, s + 16 * Tp + n0 + 16, Tp * 4);
        }
        // softmax numerators in fp32 -> bf16; padded keys get probability 0
        for (vitc_int r = 0; r < rows; r++) {
            float *row = s + r * Tp;
            const float mx = vitc_row_max_f32(row, T);
            rowsum[r] = (float)vitc_exp_shift_sum_f32(row, row, mx, T);
            for (vitc_int n = T; n < Tp; n++) row[n] = 0.0f;
            for (vitc_int n = 0; n < Tp; n += 16)
                _mm256_storeu_si256((__m256i *)(pb + r * Tp + n), bf16x16(_mm512_loadu_ps(row + n)));
        }
        for (vitc_int r = rows; r < QB; r++) memset(pb + r * Tp, 0, (size_t)Tp * 2);
        // context: 16 rows at a time, D/16 accumulator tiles, 32 keys per step
        for (vitc_int h = 0; h < rows; h += 16) {
            const int dtiles = (int)(D / 16);
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (vitc_int n0 = 0; n0 < Tp; n0 += 32) {
                const uint32_t *b = vp + (n0 / 2) * D;
                _tile_loadd(4, pb + h * Tp + n0, Tp * 2);
                _tile_loadd(5, b, D * 4);
                _tile_loadd(6, b + 16, D * 4);
                _tile_dpbf16ps(0, 4, 5);
                _tile_dpbf16ps(1, 4, 6);
                if (dtiles > 2) {
                    _tile_loadd(7, b + 32, D * 4);
                    _tile_loadd(5, b + 48, D * 4);
                    _tile_dpbf16ps(2, 4, 7);
                    _tile_dpbf16ps(3, 4, 5);
                }
            }
            _tile_stored(0, o, D * 4);
            _tile_stored(1, o + 16, D * 4);
            if (dtiles > 2) {
                _tile_stored(2, o + 32, D * 4);
                _tile_stored(3, o + 48, D * 4);
            }
            const vitc_int hr = rows - h < 16 ? rows - h : 16;
            for (vitc_int r = 0; r < hr; r++) {
                const __m512 inv = _mm512_set1_ps(1.0f / rowsum[h + r]);
                for (vitc_int d = 0; d < D; d += 16)
                    _mm512_storeu_ps(out + (s0 + h + r) * ld_out + d,
                                     _mm512_mul_ps(_mm512_loadu_ps(o + r * D + d), inv));
            }
        }
    }
    _tile_release();
}
#endif

// Callers check attention_bf16_supported(D) first; T >= 1. The emulation (a test hook) first,
// then the code of the op's tier: AMX tiles, or vdpbf16ps at the AVX-512 tier.
void attention_forward_bf16(float *out, const float *q, const float *k, const float *v,
                            float scale, vitc_int S, vitc_int T, vitc_int D, vitc_int ld_out,
                            vitc_int ld_q, vitc_int ld_k, vitc_int ld_v, void *scratch) {
    // The emulation also where the tier fell below AVX-512 after the caller's check (a test
    // thread lowering it or ending the emulation meanwhile): never an instruction the CPU lacks.
    if (attention_bf16_emulated() || vitc_op_tier(VITC_OP_ATTENTION_BF16) < VITC_TIER_AVX512) {
        attention_forward_bf16_emulated(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v,
                                        scratch);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (vitc_op_tier(VITC_OP_ATTENTION_BF16) == VITC_TIER_AMX) {
        if (S > 0 && T > 0)
            attention_amx(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v, scratch);
        return;
    }
#endif
    attention_forward_bf16_avx512(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v, scratch);
}
