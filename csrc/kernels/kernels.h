// kernels.h: the pure C kernels of a ViT layer (no Python here).
// Kernels take pointers, sizes and leading dimensions (row strides, in elements) and never see
// Python or NumPy; the ufunc loops (ufuncs_py.c) and the model forward (vit_forward.c) call them.
//
// Dimension alphabet, used in every shape comment:
//   B batch, T tokens, C hidden, H heads, D head dim, F MLP dim, L layers, P patch, K classes,
//   S query rows, M/N/K GEMM sizes (K also classes where it is clearly a label count).
// Conventions (llm.c): outputs first, inputs const, params, sizes last; a NULL bias means no bias.
// Element-wise and row-wise kernels are correct when out == inp.
#ifndef VITC_KERNELS_H
#define VITC_KERNELS_H

#include <stddef.h>

typedef ptrdiff_t vitc_int;

// Activations a ViT MLP or pooler may use (HF ACT2FN names in comments).
typedef enum {
    VITC_ACT_NONE = 0,
    VITC_ACT_GELU = 1,        // "gelu": exact, 0.5 x (1 + erf(x / sqrt 2))
    VITC_ACT_GELU_TANH = 2,   // "gelu_new", "gelu_pytorch_tanh", "gelu_fast": tanh approximation
    VITC_ACT_QUICK_GELU = 3,  // "quick_gelu": x * sigmoid(1.702 x)
    VITC_ACT_RELU = 4,        // "relu"
    VITC_ACT_TANH = 5,        // "tanh" (the ViT pooler's default)
    VITC_ACT_COUNT = 6,
} vitc_act;

// ---------------------------------------------------------------------------------------------
// Element-wise activations: out (n) = act(inp (n)).
void gelu_forward_f32(float *out, const float *inp, vitc_int n);
void gelu_forward_f64(double *out, const double *inp, vitc_int n);
void gelu_tanh_forward_f32(float *out, const float *inp, vitc_int n);
void gelu_tanh_forward_f64(double *out, const double *inp, vitc_int n);
// Any activation of the enum, float32 (used by the model and the mlp kernel).
void act_forward_f32(float *out, const float *inp, vitc_act act, vitc_int n);

// ---------------------------------------------------------------------------------------------
// Row-wise kernels over `rows` rows of n elements; ld_* are row strides in elements.
// out (rows,n) = (inp - mean) / sqrt(var + eps) * w + b, biased variance; w, b (n), NULL = 1 / 0.
void layernorm_forward_f32(float *out, const float *inp, const float *w, const float *b, float eps,
                           vitc_int rows, vitc_int n, vitc_int ld_out, vitc_int ld_inp);
void layernorm_forward_f64(double *out, const double *inp, const double *w, const double *b,
                           double eps, vitc_int rows, vitc_int n, vitc_int ld_out, vitc_int ld_inp);
// out (rows,n) = softmax(inp) per row, row max subtracted first.
void softmax_forward_f32(float *out, const float *inp, vitc_int rows, vitc_int n, vitc_int ld_out,
                         vitc_int ld_inp);
void softmax_forward_f64(double *out, const double *inp, vitc_int rows, vitc_int n,
                         vitc_int ld_out, vitc_int ld_inp);

// ---------------------------------------------------------------------------------------------
// out (M,N) = act(inp (M,K) . w (N,K)^T + b (N)); w in PyTorch (out, in) layout; BLAS GEMM.
// Leading dimensions must be >= the row length (BLAS rule); callers copy other layouts to scratch.
void linear_forward_f32(float *out, const float *inp, const float *w, const float *b, vitc_act act,
                        vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                        vitc_int ld_w);
// out (M,N) += inp (M,K) . w (N,K)^T + b (N): a residual connection fused into the GEMM.
void linear_residual_forward_f32(float *out, const float *inp, const float *w, const float *b,
                                 vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                 vitc_int ld_inp, vitc_int ld_w);
void linear_forward_f64(double *out, const double *inp, const double *w, const double *b,
                        vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                        vitc_int ld_w);

// ---------------------------------------------------------------------------------------------
// One attention head: out (S,E) = softmax(q (S,D) . k (T,D)^T * scale) . v (T,E).
// Queries are processed in blocks so at most a (block, T) tile of scores exists at a time.
// scratch: attention_scratch_len(S, T, D, E) elements. probs (S,T), if not NULL, receives the
// attention probabilities (HF `output_attentions`), row stride ld_probs.
vitc_int attention_scratch_len(vitc_int S, vitc_int T, vitc_int D, vitc_int E);
// bf16 variant for the reduced-precision models: q k^T and p v with bf16 inputs (q pre-scaled),
// fp32 sums and softmax; no probs output. AMX tiles (attention_amx.c) or vdpbf16ps on AVX-512
// BF16 (attention_avx512.c), as the tier policy says. Only where attention_bf16_supported(D)
// (one of those runs, D = 32 or 64); scratch attention_bf16_scratch_bytes (either code).
int attention_bf16_supported(vitc_int D);
// Test hook: nonzero runs the AVX-512 BF16 kernel's source on a portable emulation of its
// instructions instead of any hardware code, on every CPU (attention_bf16_supported follows).
void attention_bf16_set_emulation(int on);
vitc_int attention_bf16_scratch_bytes(vitc_int T, vitc_int D);
void attention_forward_bf16(float *out, const float *q, const float *k, const float *v,
                            float scale, vitc_int S, vitc_int T, vitc_int D, vitc_int ld_out,
                            vitc_int ld_q, vitc_int ld_k, vitc_int ld_v, void *scratch);
void attention_forward_f32(float *out, float *probs, const float *q, const float *k, const float *v,
                           float scale, vitc_int S, vitc_int T, vitc_int D, vitc_int E,
                           vitc_int ld_out, vitc_int ld_probs, vitc_int ld_q, vitc_int ld_k,
                           vitc_int ld_v, float *scratch);
void attention_forward_f64(double *out, double *probs, const double *q, const double *k,
                           const double *v, double scale, vitc_int S, vitc_int T, vitc_int D,
                           vitc_int E, vitc_int ld_out, vitc_int ld_probs, vitc_int ld_q,
                           vitc_int ld_k, vitc_int ld_v, double *scratch);

// ---------------------------------------------------------------------------------------------
// MLP: out (M,C) = fc2(act(fc1(inp))) with w1 (F,C), b1 (F), w2 (C,F), b2 (C);
// bias + activation are applied in the fc1 output pass. scratch: mlp_scratch_len(M, F) elements.
vitc_int mlp_scratch_len(vitc_int M, vitc_int F);
void mlp_forward_f32(float *out, const float *inp, const float *w1, const float *b1,
                     const float *w2, const float *b2, vitc_act act, vitc_int M, vitc_int C,
                     vitc_int F, vitc_int ld_out, vitc_int ld_inp, float *scratch);
void mlp_forward_f64(double *out, const double *inp, const double *w1, const double *b1,
                     const double *w2, const double *b2, vitc_act act, vitc_int M, vitc_int C,
                     vitc_int F, vitc_int ld_out, vitc_int ld_inp, double *scratch);

// ---------------------------------------------------------------------------------------------
// Reduced-precision linear layers (gemm_bf16.c, gemm_int8.c). Weights are packed once into the layout
// of the microkernels; activations are converted per call into caller-provided scratch;
// accumulation, bias and activation stay fp32 (int32 for the int8 dot products).
// out (M,N) = act(inp (M,K) . w (N,K)^T + b (N)), row strides ld_out, ld_inp (elements).
// Run-time dispatch (cpu.h tiers): AMX or AVX-512 BF16 / VNNI microkernels, AVX2 (FMA on bf16
// widened to fp32, vpmaddwd for int8), or a portable scalar path with the same packed weight
// layouts (same values, see below; AVX2 and portable agree bit for bit in both precisions).
#include <stdint.h>

// bf16: w and inp are rounded to bf16 (nearest even; NaN stays NaN; float denormals become
// signed zero, as vcvtne2ps2bf16/vdpbf16ps treat them); products are exact in fp32 and summed in
// fp32. The fallback adds the odd then the even product of each K pair like vdpbf16ps does.
// Layout identifiers of the packed weights, as .vitc files record them: a change to a packing
// layout or to the quantization needs a new identifier (then old files are refused, not misread).
#define VITC_BF16_PACKING "nr32-k2"  // (N/32, K/2, 32, 2) uint16, N and K zero-padded
#define VITC_INT8_PACKING "nr32-k4"  // (N/32, K/4, 32, 4) int8, per-channel scale amax/127
vitc_int pack_bf16_len(vitc_int N, vitc_int K);  // uint16 elements
// packed (pack_bf16_len(N,K)), 4-byte aligned; w (N,K) contiguous
void pack_weights_bf16(uint16_t *packed, const float *w, vitc_int N, vitc_int K);
vitc_int linear_bf16_scratch_len(vitc_int M, vitc_int K);  // uint16 elements
// out (M,N), inp (M,K), w_packed from pack_weights_bf16, b (N) or NULL,
// scratch (linear_bf16_scratch_len(M,K)), 4-byte aligned
void linear_bf16_forward(float *out, const float *inp, const uint16_t *w_packed, const float *b,
                         vitc_act act, vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                         vitc_int ld_inp, uint16_t *scratch);

// int8: weights per output channel symmetric (scale = max|w| / 127, q = rint(w * 127 / max|w|));
// activations per row (token) symmetric the same way, stored as u8 q + 128 for vpdpbusd (u8 x s8),
// the offset removed with 128 * col_sums. out = (acc - 128 col_sum) * (row_scale * col_scale) + b.
// Int32 accumulations are exact, so both paths give bit-identical outputs. A row of inp (or a
// weight channel) holding NaN or inf has a NaN scale: its whole output row (column) is NaN.
vitc_int pack_int8_len(vitc_int N, vitc_int K);  // bytes
// packed (pack_int8_len(N,K)), scales (N), col_sums (N) sum of the quantized weights; w (N,K)
void pack_weights_int8(int8_t *packed, float *scales, int32_t *col_sums, const float *w, vitc_int N,
                       vitc_int K);
vitc_int linear_int8_scratch_len(vitc_int M, vitc_int K);  // bytes: row scales + u8 panels
// out (M,N), inp (M,K), w_packed/scales/col_sums from pack_weights_int8, b (N) or NULL,
// scratch (linear_int8_scratch_len(M,K) bytes), 4-byte aligned
void linear_int8_forward(float *out, const float *inp, const int8_t *w_packed, const float *scales,
                         const int32_t *col_sums, const float *b, vitc_act act, vitc_int M,
                         vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                         uint8_t *scratch);

// Which code runs (AMX tiles, AVX-512 BF16 / VNNI, AVX2, portable) is the tier policy's choice
// (cpu.h: vitc_op_tier); AMX also needs K a multiple of 32 for bf16, 64 for int8 (other K run
// AVX-512).
// ---------------------------------------------------------------------------------------------

#endif  // VITC_KERNELS_H
