// linear.c: linear layer (BLAS GEMM + fused bias/activation pass) and the ViT MLP
// (fc1 + bias + activation into scratch, then fc2), float32 and float64.
// Pure C: no Python, no allocation (scratch comes from the caller). BLAS sizes are 32-bit ints.
#include <string.h>

#include "internal.h"
#include "blas.h"

// Rows of the MLP hidden activation kept at once: bounds scratch to MLP_ROW_BLOCK * F elements
// (32 MiB at F = 4096) while each GEMM stays large enough for BLAS to run at full speed.
static const vitc_int MLP_ROW_BLOCK = 2048;

// ---------------------------------------------------------------------------------------------
// Linear. ref: torch.nn.functional.linear (y = x W^T + b), then the activation.

// out (M,N) = act(beta * out + inp (M,K) . w (N,K)^T + b); beta is 0 or 1 (a residual add).
static void linear_beta_f32(float *out, const float *inp, const float *w, const float *b,
                            vitc_act act, float beta, vitc_int M, vitc_int N, vitc_int K,
                            vitc_int ld_out, vitc_int ld_inp, vitc_int ld_w) {
    if (M <= 0 || N <= 0) return;
    if (K > 0 && b && beta == 0.0f) {
        // The bias goes in as the GEMM's C (beta = 1): OpenBLAS would otherwise zero C first and
        // a second pass would add the bias; same sum, (x . w^T) + b, one pass less over out.
        for (vitc_int m = 0; m < M; m++) memcpy(out + m * ld_out, b, sizeof(float) * (size_t)N);
        b = NULL;
        beta = 1.0f;
    }
    if (K > 0)
        BLAS_FUNC(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f,
                               inp, (int)ld_inp, w, (int)ld_w, beta, out, (int)ld_out);
    if (K > 0 && !b && act == VITC_ACT_NONE) return;
    for (vitc_int m = 0; m < M; m++) {
        float *y = out + m * ld_out;
        if (K <= 0 && beta == 0.0f)  // empty sum: BLAS is not asked about K = 0
            for (vitc_int n = 0; n < N; n++) y[n] = 0.0f;
        if (b)
            for (vitc_int n = 0; n < N; n++) y[n] += b[n];
        act_forward_f32(y, y, act, N);
    }
}

// out (M,N), inp (M,K), w (N,K), b (N) or NULL
void linear_forward_f32(float *out, const float *inp, const float *w, const float *b, vitc_act act,
                        vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                        vitc_int ld_w) {
    linear_beta_f32(out, inp, w, b, act, 0.0f, M, N, K, ld_out, ld_inp, ld_w);
}

// out (M,N) += inp (M,K) . w (N,K)^T + b (N) or NULL
void linear_residual_forward_f32(float *out, const float *inp, const float *w, const float *b,
                                 vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                 vitc_int ld_inp, vitc_int ld_w) {
    linear_beta_f32(out, inp, w, b, VITC_ACT_NONE, 1.0f, M, N, K, ld_out, ld_inp, ld_w);
}

// out (M,N), inp (M,K), w (N,K), b (N) or NULL
void linear_forward_f64(double *out, const double *inp, const double *w, const double *b,
                        vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out, vitc_int ld_inp,
                        vitc_int ld_w) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (vitc_int m = 0; m < M; m++)
            for (vitc_int n = 0; n < N; n++) out[m * ld_out + n] = b ? b[n] : 0.0;
        return;
    }
    BLAS_FUNC(cblas_dgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0, inp,
                           (int)ld_inp, w, (int)ld_w, 0.0, out, (int)ld_out);
    if (!b) return;
    for (vitc_int m = 0; m < M; m++)
        for (vitc_int n = 0; n < N; n++) out[m * ld_out + n] += b[n];
}

// f64 linear with an activation (the header's f64 linear has none).
static void linear_act_forward_f64(double *out, const double *inp, const double *w, const double *b,
                                   vitc_act act, vitc_int M, vitc_int N, vitc_int K, vitc_int ld_out,
                                   vitc_int ld_inp, vitc_int ld_w) {
    linear_forward_f64(out, inp, w, b, M, N, K, ld_out, ld_inp, ld_w);
    if (act == VITC_ACT_NONE) return;
    for (vitc_int m = 0; m < M; m++) act_forward_f64(out + m * ld_out, out + m * ld_out, act, N);
}

// ---------------------------------------------------------------------------------------------
// MLP. ref: transformers ViTIntermediate + ViTOutput dense layers (timm Mlp fc1/act/fc2).

vitc_int mlp_scratch_len(vitc_int M, vitc_int F) {
    const vitc_int rows = M < MLP_ROW_BLOCK ? M : MLP_ROW_BLOCK;
    return rows * F;
}

// Equal row blocks of at most MLP_ROW_BLOCK rows (1025 rows: one block, not 1024 + 1).
static vitc_int mlp_block_rows(vitc_int M) {
    const vitc_int blocks = (M + MLP_ROW_BLOCK - 1) / MLP_ROW_BLOCK;
    return blocks ? (M + blocks - 1) / blocks : 0;
}

// out (M,C), inp (M,C), w1 (F,C), b1 (F), w2 (C,F), b2 (C), scratch mlp_scratch_len(M, F)
void mlp_forward_f32(float *out, const float *inp, const float *w1, const float *b1,
                     const float *w2, const float *b2, vitc_act act, vitc_int M, vitc_int C,
                     vitc_int F, vitc_int ld_out, vitc_int ld_inp, float *scratch) {
    const vitc_int block = mlp_block_rows(M);
    const vitc_int ld_h = F > 0 ? F : 1;
    for (vitc_int m0 = 0; m0 < M && !vitc_stopping(); m0 += block) {
        const vitc_int rows = M - m0 < block ? M - m0 : block;
        linear_forward_f32(scratch, inp + m0 * ld_inp, w1, b1, act, rows, F, C, ld_h, ld_inp,
                           C > 0 ? C : 1);
        linear_forward_f32(out + m0 * ld_out, scratch, w2, b2, VITC_ACT_NONE, rows, C, F, ld_out,
                           ld_h, ld_h);
    }
}

// out (M,C), inp (M,C), w1 (F,C), b1 (F), w2 (C,F), b2 (C), scratch mlp_scratch_len(M, F)
void mlp_forward_f64(double *out, const double *inp, const double *w1, const double *b1,
                     const double *w2, const double *b2, vitc_act act, vitc_int M, vitc_int C,
                     vitc_int F, vitc_int ld_out, vitc_int ld_inp, double *scratch) {
    const vitc_int block = mlp_block_rows(M);
    const vitc_int ld_h = F > 0 ? F : 1;
    for (vitc_int m0 = 0; m0 < M; m0 += block) {
        const vitc_int rows = M - m0 < block ? M - m0 : block;
        linear_act_forward_f64(scratch, inp + m0 * ld_inp, w1, b1, act, rows, F, C, ld_h, ld_inp,
                               C > 0 ? C : 1);
        linear_forward_f64(out + m0 * ld_out, scratch, w2, b2, rows, C, F, ld_out, ld_h, ld_h);
    }
}
