// attention_avx512.c: one bf16 attention head with vdpbf16ps (AVX-512 BF16, no AMX) for the
// reduced-precision models, and the same kernel source (attention_bf16_body.h) compiled against
// a portable emulation of the instructions it uses, so that the code the AVX-512 machines run is
// also run and tested here on any CPU (attention_bf16_set_emulation, a test hook).
// Not the dispatch (attention_amx.c's attention_forward_bf16 picks AMX, this, or the emulation);
// pure C, no Python, no allocation: the scratch comes from the caller.
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

enum {
    QK_R = 8,  // query rows of a q k^T block (x 32 keys: 16 accumulators)
    PV_R = 6,  // query rows of a p v block (x up to 64 head dims: 24 accumulators)
    QB = 24,   // query rows per block: a multiple of QK_R and PV_R
};

static vitc_int round_up(vitc_int x, vitc_int m) {
    return (x + m - 1) / m * m;
}
static vitc_int align64(vitc_int x) {
    return round_up(x, 64);
}

// Byte offsets of the scratch parts, each 64-byte aligned (layout in attention_bf16_body.h).
typedef struct {
    vitc_int kt, vp, qb, s, pb, row, rowsum, total;
    vitc_int ldk;  // kT row stride in pairs: Tp plus 16 so rows spread over cache sets
} attn_avx512_plan;

static attn_avx512_plan avx512_plan(vitc_int T, vitc_int D) {
    const vitc_int Tp = round_up(T > 0 ? T : 1, 32);
    attn_avx512_plan p;
    p.ldk = Tp + 16;
    p.kt = 0;
    p.vp = p.kt + align64(D / 2 * p.ldk * 4);
    p.qb = p.vp + align64(Tp / 2 * D * 4);
    p.s = p.qb + align64(QB * D * 2);
    p.pb = p.s + align64(QB * Tp * 4);
    p.row = p.pb + align64(QB * Tp * 2);
    p.rowsum = p.row + align64(2 * D * 2);
    p.total = p.rowsum + align64(QB * 4) + 64;  // + 64: the caller's buffer may start unaligned
    return p;
}

vitc_int attention_avx512_scratch_bytes(vitc_int T, vitc_int D) {
    return avx512_plan(T, D).total;
}

// ---------------------------------------------------------------------------------------------
// The emulation: 16 lanes in plain C with the instructions' exact semantics (Intel SDM).
//   dp    vdpbf16ps: per fp32 lane j, acc += a.bf16[2j+1] * b.bf16[2j+1], then
//         acc += a.bf16[2j] * b.bf16[2j]: each step one fp32 FMA, round to nearest even, input
//         denormals (acc and the bf16 values) read as zero, denormal results flushed to zero;
//         MXCSR is neither read nor written (so the emulation does not touch the FP environment).
//   cvt2  vcvtne2ps2bf16 (lo, hi): bf16 lane w = lo[w] for w < 16, hi[w - 16] above; nearest even,
//         denormals to signed zero, NaN -> quiet NaN (the same rounding as gemm_bf16.c).
// One corner is not reproduced: a result that rounds up to exactly FLT_MIN from below is kept
// here, where the hardware (tininess before the final rounding) may flush it; attention sums of
// products of probabilities never sit there.

typedef struct {
    float f[16];
} emu_vf;
typedef struct {
    uint32_t u[16];
} emu_vp;

static inline uint32_t emu_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float emu_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
// Denormals (and zeros) to signed zero: DAZ on the way in, FTZ on the way out.
static inline float emu_flush(float x) {
    const uint32_t u = emu_bits(x);
    return (u & 0x7f800000u) == 0 ? emu_float(u & 0x80000000u) : x;
}
static inline uint32_t emu_bf16(float x) {
    const uint32_t u = emu_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;  // quiet NaN
    if ((u & 0x7f800000u) == 0) return (u >> 16) & 0x8000u;         // +-0, denormal
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

static inline emu_vf emu_zero(void) {
    emu_vf r;
    for (int i = 0; i < 16; i++) r.f[i] = 0.0f;
    return r;
}
static inline emu_vf emu_load(const float *p) {
    emu_vf r;
    memcpy(r.f, p, sizeof r.f);
    return r;
}
static inline void emu_store(float *p, emu_vf x) {
    memcpy(p, x.f, sizeof x.f);
}
static inline emu_vf emu_set1(float x) {
    emu_vf r;
    for (int i = 0; i < 16; i++) r.f[i] = x;
    return r;
}
static inline emu_vf emu_mul(emu_vf a, emu_vf b) {
    for (int i = 0; i < 16; i++) a.f[i] *= b.f[i];
    return a;
}
static inline emu_vp emu_pload(const uint32_t *p) {
    emu_vp r;
    memcpy(r.u, p, sizeof r.u);
    return r;
}
static inline void emu_pstore(uint32_t *p, emu_vp x) {
    memcpy(p, x.u, sizeof x.u);
}
static inline emu_vp emu_pset1(uint32_t pair) {
    emu_vp r;
    for (int i = 0; i < 16; i++) r.u[i] = pair;
    return r;
}
static inline emu_vp emu_cvt2(emu_vf lo, emu_vf hi) {
    emu_vp r;
    for (int j = 0; j < 8; j++) {
        r.u[j] = emu_bf16(lo.f[2 * j]) | emu_bf16(lo.f[2 * j + 1]) << 16;
        r.u[j + 8] = emu_bf16(hi.f[2 * j]) | emu_bf16(hi.f[2 * j + 1]) << 16;
    }
    return r;
}
static inline emu_vf emu_dp(emu_vf acc, emu_vp a, emu_vp b) {
    for (int j = 0; j < 16; j++) {
        const float a1 = emu_flush(emu_float(a.u[j] & 0xffff0000u));
        const float b1 = emu_flush(emu_float(b.u[j] & 0xffff0000u));
        const float a0 = emu_flush(emu_float(a.u[j] << 16)),
                    b0 = emu_flush(emu_float(b.u[j] << 16));
        float c = emu_flush(acc.f[j]);
        c = emu_flush(fmaf(a1, b1, c));
        acc.f[j] = emu_flush(fmaf(a0, b0, c));
    }
    return acc;
}

#define VF emu_vf
#define VP emu_vp
#define V(name) emu_##name
#define KTARGET
#define KNAME(name) name##_emulated
#include "attention_bf16_body.h"
#undef VF
#undef VP
#undef V
#undef KTARGET
#undef KNAME

static _Atomic int g_emulate = 0;

void attention_bf16_set_emulation(int on) {
    atomic_store_explicit(&g_emulate, on != 0, memory_order_relaxed);
}

int attention_bf16_emulated(void) {
    return atomic_load_explicit(&g_emulate, memory_order_relaxed);
}

void attention_forward_bf16_emulated(float *out, const float *q, const float *k, const float *v,
                                     float scale, vitc_int S, vitc_int T, vitc_int D,
                                     vitc_int ld_out, vitc_int ld_q, vitc_int ld_k, vitc_int ld_v,
                                     void *scratch) {
    if (S > 0 && T > 0)
        attention_emulated(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v, scratch);
}

// ---------------------------------------------------------------------------------------------
// The intrinsics (Intel Intrinsics Guide), one instruction each, the emulation's twins.
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

AVX512_BF16_TARGET static inline __m512 x86_zero(void) {
    return _mm512_setzero_ps();
}
AVX512_BF16_TARGET static inline __m512 x86_load(const float *p) {
    return _mm512_loadu_ps(p);
}
AVX512_BF16_TARGET static inline void x86_store(float *p, __m512 x) {
    _mm512_storeu_ps(p, x);
}
AVX512_BF16_TARGET static inline __m512 x86_set1(float x) {
    return _mm512_set1_ps(x);
}
AVX512_BF16_TARGET static inline __m512 x86_mul(__m512 a, __m512 b) {
    return _mm512_mul_ps(a, b);
}
AVX512_BF16_TARGET static inline __m512i x86_pload(const uint32_t *p) {
    return _mm512_loadu_si512(p);
}
AVX512_BF16_TARGET static inline void x86_pstore(uint32_t *p, __m512i x) {
    _mm512_storeu_si512(p, x);
}
AVX512_BF16_TARGET static inline __m512i x86_pset1(uint32_t pair) {
    return _mm512_set1_epi32((int)pair);
}
// _mm512_cvtne2ps_pbh(a, b): bf16 lanes 0-15 from b, 16-31 from a (vcvtne2ps2bf16).
AVX512_BF16_TARGET static inline __m512i x86_cvt2(__m512 lo, __m512 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}
// _mm512_dpbf16_ps(src, a, b): src + the pair products of a and b per fp32 lane (vdpbf16ps).
AVX512_BF16_TARGET static inline __m512 x86_dp(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

#define VF __m512
#define VP __m512i
#define V(name) x86_##name
#define KTARGET AVX512_BF16_TARGET
#define KNAME(name) name##_avx512
#include "attention_bf16_body.h"
#undef VF
#undef VP
#undef V
#undef KTARGET
#undef KNAME
#endif

// The caller's op runs at the AVX-512 tier with AVX-512 BF16 (vitc_op_tier); D is 32 or 64.
void attention_forward_bf16_avx512(float *out, const float *q, const float *k, const float *v,
                                   float scale, vitc_int S, vitc_int T, vitc_int D, vitc_int ld_out,
                                   vitc_int ld_q, vitc_int ld_k, vitc_int ld_v, void *scratch) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (S > 0 && T > 0)
        attention_avx512(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v, scratch);
#else
    attention_forward_bf16_emulated(out, q, k, v, scale, S, T, D, ld_out, ld_q, ld_k, ld_v,
                                    scratch);
#endif
}
