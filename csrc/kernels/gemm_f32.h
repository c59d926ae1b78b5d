// gemm_f32.h: vitc's own fp32 GEMM for the model's weight matrices (gemm_f32.c).
// out (M,N) = act(inp (M,K) . w (N,K)^T + b (N)), or out += inp . w^T + b (a residual), with the
// weights packed once into 16-column panels. Pure C, no Python, no allocation.
//
// Deterministic by construction: every output element is ONE fused-multiply-add chain over
// k = 0..K-1 in order, starting from 0.0f, then + b[n], then the activation (or the residual
// add: out + (chain + b), transformers' `dense(x) + residual`). The value of out[m][n] depends on
// row m of inp, column n of w and b[n] only: not on M, the row's place in a tile, the column
// split, the thread count or the tier (portable scalar with fmaf, AVX2+FMA, AVX-512F all give
// bit-identical results). The activation is act_forward_f32's, applied to the finished rows.
#ifndef VITC_GEMM_F32_H
#define VITC_GEMM_F32_H

#include "vitc_kernels.h"

// Output columns per weight panel: the packed layout, the same for every tier.
enum { GEMM_F32_NR = 16 };

// ---------------------------------------------------------------------------------------------
// Weights, packed once (at model load): panel p holds w[p*16 + j][k] at packed[(p*K + k)*16 + j],
// j = 0..15, k = 0..K-1 (K-major inside the panel), zero past N. For speed, packed should be
// 64-byte aligned (each k row of a panel is then one cache line); any float alignment is correct.
vitc_int gemm_f32_packed_len(vitc_int N, vitc_int K);  // floats: round_up(N, 16) * K
// packed (gemm_f32_packed_len(N,K)), w (N,K) contiguous (PyTorch (out, in) layout).
// Runs on vitc's thread pool (one task per panel).
void gemm_f32_pack(float *packed, const float *w, vitc_int N, vitc_int K);

// ---------------------------------------------------------------------------------------------
// Forward. inp rows are ld_inp floats apart, out rows ld_out; b may be NULL (no bias). With
// `residual` nonzero, out (M,N) += inp . w^T + b and `act` must be VITC_ACT_NONE (it is not
// applied: transformers has no activation after a residual add). K may be 0 (out = act(0 + b)).
// scratch: gemm_f32_scratch_len(M, N, K) floats per call (whatever the tier; its alignment does
// not matter; for a fixed M it grows with N and K, and it is at most ~200 * (K + 256) floats).
// Single-threaded: the caller splits columns across threads (see _cols/_parallel).
vitc_int gemm_f32_scratch_len(vitc_int M, vitc_int N, vitc_int K);
// out (M,N), inp (M,K), packed (gemm_f32_packed_len(N,K)), b (N) or NULL
void gemm_f32_forward(float *out, const float *inp, const float *packed, const float *b,
                      vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                      vitc_int ld_out, vitc_int ld_inp, float *scratch);
// Columns n0..n1-1 only (0 <= n0 <= n1 <= N, n0 a multiple of 16; n1 a multiple of 16 or N);
// out, inp, packed and b are the whole matrices, as for gemm_f32_forward. Disjoint column ranges
// may run concurrently, each with its own scratch. gemm_f32_col_align() columns (16 or 32, the
// current tier's tile width) is the split unit that wastes nothing.
void gemm_f32_forward_cols(float *out, const float *inp, const float *packed, const float *b,
                           vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                           vitc_int n0, vitc_int n1, vitc_int ld_out, vitc_int ld_inp,
                           float *scratch);
vitc_int gemm_f32_col_align(void);
// Columns split across at most `threads` threads of vitc's pool (vitc_parallel_for), each
// streaming its own weight panels, in units of the tier's tile width; one thread below 4 MFLOP.
// scratch: threads * gemm_f32_scratch_len(M, N, K) floats.
void gemm_f32_forward_parallel(float *out, const float *inp, const float *packed, const float *b,
                               vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                               vitc_int ld_out, vitc_int ld_inp, int threads, float *scratch);

// ---------------------------------------------------------------------------------------------
// Tiers. gemm_f32_tier() is the one switch the forward consults: the best tier this CPU runs,
// at most the cap set by gemm_f32_set_max_tier (default: no cap). Every tier gives the same bits.
typedef enum {
    GEMM_F32_SCALAR = 0,  // portable C, fmaf: any CPU
    GEMM_F32_AVX2 = 1,    // AVX2 + FMA, 6 x 16 register tile
    GEMM_F32_AVX512 = 2,  // AVX-512F, 14 x 32 register tile (two panels)
    GEMM_F32_NTIERS = 3,
    // Test only, never chosen: the AVX-512 tier's tile shape (14 x 32, two panels) and cache
    // blocks run with AVX2 instructions, so that logic is checked on AVX2 machines too.
    GEMM_F32_AVX512_SHAPE = 3,
} gemm_f32_tier_id;
int gemm_f32_tier_available(gemm_f32_tier_id tier);  // compiled in and the CPU has it
gemm_f32_tier_id gemm_f32_tier(void);
void gemm_f32_set_max_tier(gemm_f32_tier_id tier);
const char *gemm_f32_tier_name(gemm_f32_tier_id tier);  // "scalar", "avx2", "avx512"
// The same on an explicit tier (test and benchmark hooks; an unavailable tier runs as scalar).
void gemm_f32_forward_cols_tier(gemm_f32_tier_id tier, float *out, const float *inp,
                                const float *packed, const float *b, vitc_act act, int residual,
                                vitc_int M, vitc_int N, vitc_int K, vitc_int n0, vitc_int n1,
                                vitc_int ld_out, vitc_int ld_inp, float *scratch);
void gemm_f32_forward_parallel_tier(gemm_f32_tier_id tier, float *out, const float *inp,
                                    const float *packed, const float *b, vitc_act act, int residual,
                                    vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                    vitc_int ld_inp, int threads, float *scratch);

#endif  // VITC_GEMM_F32_H
