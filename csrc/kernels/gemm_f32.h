// gemm_f32.h: vitc's own fp32 GEMM for the model's weight matrices (gemm_f32.c).
// out (M,N) = act(inp (M,K) . w (N,K)^T + b (N)), or out += inp . w^T + b (a residual), with the
// weights packed once into 16-column panels. Pure C, no Python, no allocation.
//
// Deterministic by construction: every output element is ONE fused-multiply-add chain over
// k = 0..K-1 in order, starting from 0.0f, then + b[n], then the activation (or the residual
// add: out + (chain + b), transformers' `dense(x) + residual`). The value of out[m][n] depends on
// row m of inp, column n of w and b[n] only: not on M, the row's place in a tile, the column
// split, the thread count or the code that runs (portable scalar with fmaf, AVX2+FMA, AVX-512F
// all give bit-identical sums). The activation is act_forward_f32's, applied to the finished rows
// (its code is the elementwise op's tier, cpu.h).
#ifndef VITC_GEMM_F32_H
#define VITC_GEMM_F32_H

#include "cpu.h"
#include "kernels.h"

// Output columns per weight panel: the packed layout, the same for every tier.
enum { GEMM_F32_NR = 16 };

// ---------------------------------------------------------------------------------------------
// Weights, packed once (at model build): panel p holds w[p*16 + j][k] at packed[(p*K + k)*16 + j],
// j = 0..15, k = 0..K-1 (K-major inside the panel), zero past N. For speed, packed should be
// 64-byte aligned (each k row of a panel is then one cache line); any float alignment is correct.
vitc_int gemm_f32_packed_len(vitc_int N, vitc_int K);  // floats: round_up(N, 16) * K
// packed (gemm_f32_packed_len(N,K)), w (N,K) contiguous (PyTorch (out, in) layout).
// Runs on vitc's thread pool (one task per panel).
void gemm_f32_pack(float *packed, const float *w, vitc_int N, vitc_int K);
// The same for ld_w-strided rows, on the calling thread only (attention packs k and v per head).
void gemm_f32_pack_serial(float *packed, const float *w, vitc_int N, vitc_int K, vitc_int ld_w);

// ---------------------------------------------------------------------------------------------
// Forward. inp rows are ld_inp floats apart, out rows ld_out; b may be NULL (no bias). With
// `residual` nonzero, out (M,N) += inp . w^T + b and `act` must be VITC_ACT_NONE (it is not
// applied: transformers has no activation after a residual add). K may be 0 (out = act(0 + b)).
// scratch: gemm_f32_scratch_len(M, N, K) floats per call (whatever the code; its alignment does
// not matter; for a fixed M it grows with N and K, and it is at most ~200 * (K + 256) floats).
// A stop request (threads.h) ends a call between cache blocks; the output is then incomplete.
vitc_int gemm_f32_scratch_len(vitc_int M, vitc_int N, vitc_int K);
// Single-threaded: out (M,N), inp (M,K), packed (gemm_f32_packed_len(N,K)), b (N) or NULL
void gemm_f32_forward(float *out, const float *inp, const float *packed, const float *b,
                      vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                      vitc_int ld_out, vitc_int ld_inp, float *scratch);
// Columns split across at most `threads` threads of vitc's pool (vitc_parallel_for), each
// streaming its own weight panels, in units of the code's tile width; one thread below 4 MFLOP.
// scratch: threads * gemm_f32_scratch_len(M, N, K) floats.
void gemm_f32_forward_parallel(float *out, const float *inp, const float *packed, const float *b,
                               vitc_act act, int residual, vitc_int M, vitc_int N, vitc_int K,
                               vitc_int ld_out, vitc_int ld_inp, int threads, float *scratch);

// ---------------------------------------------------------------------------------------------
// Codes. The tier policy picks one (vitc_op_tier(VITC_OP_GEMM_F32): portable, AVX2, AVX-512);
// the test hooks may name one explicitly. Every code gives the same bits.
typedef enum {
    GEMM_F32_PORTABLE = 0,  // portable C, fmaf, 4 x 16 tile: any CPU
    GEMM_F32_AVX2 = 1,      // AVX2 + FMA, 6 x 16 register tile
    GEMM_F32_AVX512 = 2,    // AVX-512F, 14 x 32 register tile (two panels)
    // Test only, never chosen by the policy: the AVX-512 tile shape (14 x 32, two panels) and
    // cache blocks run with AVX2 instructions, so that logic is checked on AVX2 machines too.
    GEMM_F32_AVX512_SHAPE = 3,
    GEMM_F32_CODES = 4,
} gemm_f32_code;
// The code the tier policy runs now.
gemm_f32_code gemm_f32_code_now(void);
// The code the policy runs at `tier` (at most vitc_max_tier(): the caller checks).
gemm_f32_code gemm_f32_code_at(vitc_tier tier);
// Compiled in and this CPU has its instructions.
int gemm_f32_code_runs(gemm_f32_code code);
const char *gemm_f32_code_name(gemm_f32_code code);  // "portable", "avx2", "avx512", ...
// Columns n0..n1-1 only (0 <= n0 <= n1 <= N, n0 a multiple of 16; n1 a multiple of 16 or N), on
// an explicit code (one that does not run here runs as portable); out, inp, packed and b are the
// whole matrices, as for gemm_f32_forward. Disjoint column ranges may run concurrently, each with
// its own scratch.
void gemm_f32_forward_cols_code(gemm_f32_code code, float *out, const float *inp,
                                const float *packed, const float *b, vitc_act act, int residual,
                                vitc_int M, vitc_int N, vitc_int K, vitc_int n0, vitc_int n1,
                                vitc_int ld_out, vitc_int ld_inp, float *scratch);
void gemm_f32_forward_parallel_code(gemm_f32_code code, float *out, const float *inp,
                                    const float *packed, const float *b, vitc_act act, int residual,
                                    vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                    vitc_int ld_inp, int threads, float *scratch);

// ---------------------------------------------------------------------------------------------
// Micro-kernel access for kernels that pack their own A (attention.c): the register tile of a
// code and its shape. tile(a, b, b_stride, kc, cin, ld_in, cout, ld_out, bias, res, ld_res):
//   cout (mr, nr) = [cin or 0] + a (kc, mr: rows k-major) . b (kc, 16-column panel rows; the
//   second panel of a 32-wide tile b_stride floats further), then + bias (nr), then res + that.
// Each element is one FMA chain in k order, as in the GEMM above.
typedef void (*gemm_f32_tile_fn)(const float *a, const float *b, vitc_int b_stride, vitc_int kc,
                                 const float *cin, vitc_int ld_in, float *cout, vitc_int ld_out,
                                 const float *bias, const float *res, vitc_int ld_res);
typedef struct {
    gemm_f32_tile_fn tile;
    int mr, nr;  // tile rows; columns (16 or 32: one or two panels)
} gemm_f32_micro;
gemm_f32_micro gemm_f32_micro_kernel(gemm_f32_code code);

#endif  // VITC_GEMM_F32_H
