// vit_forward.h: the whole ViT forward pass (patch embedding -> L pre-norm blocks -> final norm ->
// pooling -> classifier(s) / pooler) composed of the kernels of kernels/kernels.h. No Python here.
// Covers transformers' ViT and DeiT (distillation token and head) and timm's ViT (average pooling,
// fc_norm): the same blocks, different prefix tokens and heads.
#ifndef VITC_VIT_FORWARD_H
#define VITC_VIT_FORWARD_H

#include "kernels/kernels.h"

// Precision of the four weight matrices of each block (the rest of the model stays float32).
typedef enum {
    VITC_WEIGHTS_F32 = 0,   // float32 packed by gemm_f32_pack (kernels/gemm_f32.h)
    VITC_WEIGHTS_BF16 = 1,  // pack_weights_bf16 layout: linear_bf16_forward
    VITC_WEIGHTS_INT8 = 2,  // pack_weights_int8 layout + per-channel scales: linear_int8_forward
    VITC_WEIGHTS_COUNT = 3,
} vitc_wdtype;

// What the classifier head reads.
typedef enum {
    VITC_POOL_TOKEN = 0,  // the first (CLS) token of the normed sequence (transformers' ViT, DeiT)
    VITC_POOL_AVG =
        1,  // the mean of the patch tokens (prefix tokens excluded), then fc_norm (timm)
    VITC_POOL_COUNT = 2,
} vitc_pool;

// Names as the Python side spells them, for the tables model_py.c exports (vit_forward.c).
typedef struct {
    const char *name;
    int value;
} vitc_named;
// transformers' ACT2FN names ViT checkpoints use for hidden_act / pooler_act, and "tanh".
extern const vitc_named VIT_ACTIVATIONS[];
extern const int VIT_NUM_ACTIVATIONS;
extern const char *const VIT_PRECISIONS[VITC_WEIGHTS_COUNT];  // "float32", "bfloat16", "int8"
extern const char *const VIT_POOLS[VITC_POOL_COUNT];          // "token", "avg"

// One (N, K) weight matrix of a linear layer in the model's weight precision.
typedef struct {
    const void *data;         // float32 gemm_f32_pack panels | packed bf16 | packed int8
    const float *scales;      // int8 only: (N) per output channel
    const int32_t *col_sums;  // int8 only: (N) sums of the quantized weights
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

// A model: sizes, choices and weight pointers, fixed at build (model_py.c validates every one).
typedef struct {
    vitc_int L, C, H, F, Cin, Ph, Pw;  // layers, hidden, heads, MLP, input channels, patch h x w
    vitc_int prefix;                   // tokens before the patches (CLS, distillation, registers)
    vitc_int K;                        // classes of the head(s); 0 with `head`: identity head
    vitc_int Cp;                       // pooler output size; 0: no pooler
    int head;                          // the model has a classifier head (K may be 0)
    int distilled;                     // DeiT: a second head on the distillation token (prefix 1)
    float eps;                         // layer_norm_eps of every layernorm
    vitc_act act;                      // MLP activation
    vitc_act pool_act;                 // pooler activation
    vitc_wdtype wdtype;                // precision of the blocks' weight matrices
    vitc_pool pool;                    // what the head reads
    // (C, Cin*Ph*Pw) conv weight flattened in (c, y, x) order, packed by gemm_f32_pack (every
    // precision); (C)
    const float *patch_w, *patch_b;
    const float *const *prefix_rows;  // (prefix) rows of (C): cls_token, dist_token, reg_token...
    const float *norm_w, *norm_b;     // (C) final layernorm, or NULL (timm average pooling)
    const float *fc_norm_w, *fc_norm_b;      // (C) layernorm of the pooled features, or NULL
    const float *head_w, *head_b;            // (K, C), (K); NULL when K = 0
    const float *head_dist_w, *head_dist_b;  // (K, C), (K) the distillation head; NULL when K = 0
    const float *pool_w, *pool_b;            // (Cp, C), (Cp) pooler dense, or NULL
    const vit_block *blocks;                 // (L)
} vit_model;

// Stages of a profiled forward (vit_outputs.profile), seconds summed over layers. VIT_STAGES names
// them as the Python side does. A profiled forward runs the MLP activation as its own pass (the
// same values) so that its time shows; otherwise it is fused into mlp_up's GEMM. quantize: the
// int8 activation quantization where it is a separate pass (none yet: inside the GEMM stages).
typedef enum {
    VIT_STAGE_PATCH_EMBED,
    VIT_STAGE_QKV,
    VIT_STAGE_ATTENTION,
    VIT_STAGE_OUT_PROJ,
    VIT_STAGE_MLP_UP,
    VIT_STAGE_GELU,
    VIT_STAGE_MLP_DOWN,
    VIT_STAGE_NORMS,
    VIT_STAGE_QUANTIZE,
    VIT_STAGE_OTHER,  // everything else: embeddings' adds, copies of requested outputs, the heads
    VIT_STAGE_COUNT,
} vit_stage;
extern const char *const VIT_STAGES[VIT_STAGE_COUNT];

// Optional outputs of vit_forward: NULL when not requested (or the model has no such part).
typedef struct {
    float *last;         // (B, T, C) last_hidden_state (after the final norm if any), required
    float *logits;       // (B, K) (identity head: (B, C)); with a distillation head the average
    float *cls_logits;   // (B, K) the CLS head of a distilled model (required with head_dist)
    float *dist_logits;  // (B, K) the distillation head (required with head_dist)
    float *pooled;       // (B, Cp) pooler_output
    float *hidden;       // (L+1, B, T, C) hidden_states: embeddings, then each block's output
    float *attn;         // (L, B, H, T, T) attention probabilities
    float *attn_mean;    // (L, B, T, T) attention probabilities averaged over heads (needs a plan
                         // made with head_mean)
    double *profile;     // (VIT_STAGE_COUNT) seconds per stage, added to (the caller zeroes it)
} vit_outputs;

// The layout of one forward's workspace and the choices that depend on the machine (the kernel
// tier when planned); vit_forward follows the plan it is given, so its workspace always fits.
typedef struct {
    vitc_int B, Hi, Wi, gh, gw, Np, T;  // batch, image, patch grid, patches, tokens
    int threads;                        // the most threads the forward uses
    int bf16_attention;                 // the AMX bf16 attention (when probabilities are not asked)
    int head_mean;                      // room for one layer's probabilities (attn_mean)
    vitc_int x, a, qkv, ctx, big, lowp, head, acc, gemm, probs, attn;  // workspace offsets (floats)
    vitc_int gemm_len;  // float32 GEMM scratch per thread (gemm_f32_scratch_len of every shape)
    vitc_int attn_len;  // attention scratch per thread
    vitc_int total;  // floats of workspace; -1: the sizes overflow (no such allocation exists)
} vit_plan;

// Plan a forward of B images of Hi x Wi pixels (at least one patch each way; a remainder that the
// patch does not divide is dropped, as Conv2d drops it) on up to `threads` threads; head_mean:
// with room for one layer's (B, H, T, T) probabilities, for outputs with attn_mean and no attn.
vit_plan vit_plan_forward(const vit_model *m, vitc_int B, vitc_int Hi, vitc_int Wi, int threads,
                          int head_mean);

// What vit_forward returns.
enum { VIT_DONE = 0, VIT_STOPPED = 1 };

// pixels (B, Cin, Hi, Wi) as planned; pos (T, C) position table for this grid (interpolated if
// needed); workspace of plan->total floats. VIT_STOPPED: a stop was requested (threads.h) and the
// outputs are incomplete.
int vit_forward(const vit_model *m, const vit_plan *plan, const vit_outputs *out,
                const float *pixels, const float *pos, float *workspace);

#endif  // VITC_VIT_FORWARD_H
