// vit_forward.h: the whole ViT forward pass (patch embedding -> L pre-norm blocks -> final norm
// -> classifier / pooler) composed of the kernels of kernels/kernels.h. No Python here.
#ifndef VITC_VIT_FORWARD_H
#define VITC_VIT_FORWARD_H

#include "kernels/kernels.h"

// Precision of the four weight matrices of each block (the rest of the model stays float32).
typedef enum {
    VITC_WEIGHTS_F32 = 0,   // float32 (N, K), PyTorch (out, in) layout: OpenBLAS sgemm
    VITC_WEIGHTS_BF16 = 1,  // pack_weights_bf16 layout: linear_bf16_forward
    VITC_WEIGHTS_INT8 = 2,  // pack_weights_int8 layout + per-channel scales: linear_int8_forward
} vitc_wdtype;

// One (N, K) weight matrix of a linear layer in the model's weight precision.
typedef struct {
    const void *data;          // float32 (N, K) | packed bf16 | packed int8
    const float *scales;       // int8 only: (N) per output channel
    const int32_t *col_sums;   // int8 only: (N) sums of the quantized weights
} vitc_weight;

// Weights of one encoder block; vectors float32, C-contiguous.
typedef struct {
    const float *norm1_w, *norm1_b;  // (C) layernorm_before
    vitc_weight qkv_w;               // (3C, C): query, key, value rows fused
    const float *qkv_b;              // (3C) or NULL
    vitc_weight proj_w;              // (C, C): attention output dense
    const float *proj_b;             // (C)
    const float *norm2_w, *norm2_b;  // (C) layernorm_after
    vitc_weight fc1_w;               // (F, C)
    const float *fc1_b;              // (F)
    vitc_weight fc2_w;               // (C, F)
    const float *fc2_b;              // (C)
} vit_block;

typedef struct {
    vitc_int L, C, H, F, K, P, Cin;  // K = 0: no classifier
    float eps;                       // layer_norm_eps of every layernorm
    vitc_act act;                    // MLP activation
    vitc_wdtype wdtype;              // precision of the blocks' weight matrices
    const float *patch_w, *patch_b;  // (C, Cin*P*P) conv weight flattened in (c, y, x) order, (C)
    const float *cls;                // (C)
    const float *pos;                // (T, C) position table for this input size (interpolated if needed)
    const float *norm_w, *norm_b;    // (C) final layernorm
    const float *head_w, *head_b;    // (K, C), (K) or NULL
    const float *pool_w, *pool_b;    // (C, C), (C) or NULL: pooler dense, tanh
    const vit_block *blocks;         // (L)
} vit_model;

// Optional outputs of vit_forward: NULL when not requested.
typedef struct {
    float *last;     // (B, T, C) last_hidden_state (after the final layernorm), required
    float *logits;   // (B, K)
    float *pooled;   // (B, C) pooler_output
    float *hidden;   // (L+1, B, T, C) hidden_states: embeddings, then each block's output
    float *attn;     // (L, B, H, T, T) attention probabilities
} vit_outputs;

// Floats of workspace vit_forward needs for a batch of B images of Hi x Wi pixels when it may
// use up to `threads` threads (each thread has its own attention scratch).
vitc_int vit_workspace_len(const vit_model *m, vitc_int B, vitc_int Hi, vitc_int Wi, int threads);

// pixels (B, Cin, Hi, Wi), Hi and Wi multiples of P; workspace of vit_workspace_len floats for
// the same `threads`, which bounds the threads the forward uses.
void vit_forward(const vit_model *m, const vit_outputs *out, const float *pixels, vitc_int B,
                 vitc_int Hi, vitc_int Wi, float *workspace, int threads);

#endif  // VITC_VIT_FORWARD_H
