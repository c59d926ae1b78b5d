// vit_forward.c: the ViT forward pass, mirroring transformers' modeling_vit.py step by step,
// composed of vitc's kernels and BLAS. One workspace from the caller serves every layer: no
// allocation happens here. Not a model loader: weights arrive as pointers (vit_forward.h).
#include "vit_forward.h"

#include <math.h>
#include <string.h>

#include "vitc_blas.h"

// Workspace carve-up, in floats; one place so vit_workspace_len and vit_forward agree.
typedef struct {
    vitc_int x, a, qkv, ctx, big, attn;  // offsets
    vitc_int total;
} workspace_plan;

static workspace_plan plan_workspace(const vit_model *m, vitc_int B, vitc_int Hi, vitc_int Wi) {
    const vitc_int Np = (Hi / m->P) * (Wi / m->P), T = Np + 1, BT = B * T, C = m->C;
    const vitc_int patch_len = B * Np * m->Cin * m->P * m->P;  // im2col patches
    const vitc_int mlp_len = BT * m->F;                        // fc1 output
    workspace_plan p;
    p.x = 0;                        // (B*T, C) residual stream
    p.a = p.x + BT * C;             // (B*T, C) layernorm output
    p.qkv = p.a + BT * C;           // (B*T, 3C)
    p.ctx = p.qkv + BT * 3 * C;     // (B*T, C) attention context, heads concatenated
    p.big = p.ctx + BT * C;         // patches, then the MLP hidden (B*T, F)
    p.attn = p.big + (patch_len > mlp_len ? patch_len : mlp_len);
    p.total = p.attn + attention_scratch_len(T, T);
    return p;
}

vitc_int vit_workspace_len(const vit_model *m, vitc_int B, vitc_int Hi, vitc_int Wi) {
    return plan_workspace(m, B, Hi, Wi).total;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

// x (M, N) with row stride ld += b (N)
static void add_bias_rows(float *x, const float *b, vitc_int M, vitc_int N, vitc_int ld) {
    if (b == NULL) return;
    for (vitc_int i = 0; i < M; i++) {
        float *row = x + i * ld;
        for (vitc_int j = 0; j < N; j++) row[j] += b[j];
    }
}

// x (M, N) += inp (M, K) . w (N, K)^T + b (N): a residual connection fused into the GEMM (beta=1).
// ref: modeling_vit.py ViTLayer.forward `hidden_states = hidden_states + residual`
static void linear_residual(float *x, const float *inp, const float *w, const float *b,
                            vitc_int M, vitc_int N, vitc_int K) {
    if (M == 0 || N == 0) return;
    if (K > 0)
        BLAS_FUNC(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N,
                               (blasint)K, 1.0f, inp, (blasint)K, w, (blasint)K, 1.0f, x, (blasint)N);
    add_bias_rows(x, b, M, N, N);
}

// patches (B*Np, Cin*P*P) from pixels (B, Cin, Hi, Wi): each row one patch in (c, y, x) order,
// patches row-major over the grid, the layout of Conv2d(kernel=P, stride=P) as a GEMM.
static void im2col_patches(float *patches, const float *pixels, vitc_int B, vitc_int Cin,
                           vitc_int Hi, vitc_int Wi, vitc_int P) {
    const vitc_int gh = Hi / P, gw = Wi / P, row_len = Cin * P * P;
    for (vitc_int b = 0; b < B; b++)
        for (vitc_int py = 0; py < gh; py++)
            for (vitc_int px = 0; px < gw; px++) {
                float *row = patches + ((b * gh + py) * gw + px) * row_len;
                for (vitc_int c = 0; c < Cin; c++)
                    for (vitc_int y = 0; y < P; y++) {
                        const float *src = pixels + ((b * Cin + c) * Hi + py * P + y) * Wi + px * P;
                        memcpy(row + (c * P + y) * P, src, (size_t)P * sizeof(float));
                    }
            }
}

// ---------------------------------------------------------------------------------------------
// Forward

// ref: modeling_vit.py ViTEmbeddings.forward: cat(cls, patch_embeddings(pixels)) + position table
static void embed(const vit_model *m, float *x, float *patches, const float *pixels, vitc_int B,
                  vitc_int Hi, vitc_int Wi) {
    const vitc_int C = m->C, Np = (Hi / m->P) * (Wi / m->P), T = Np + 1;
    const vitc_int row_len = m->Cin * m->P * m->P;
    im2col_patches(patches, pixels, B, m->Cin, Hi, Wi, m->P);
    for (vitc_int b = 0; b < B; b++) {
        float *xb = x + b * T * C;
        for (vitc_int c = 0; c < C; c++) xb[c] = m->cls[c] + m->pos[c];
        linear_forward_f32(xb + C, patches + b * Np * row_len, m->patch_w, m->patch_b,
                           VITC_ACT_NONE, Np, C, row_len, C, row_len, row_len);
        for (vitc_int t = 1; t < T; t++) {
            float *row = xb + t * C;
            const float *pos = m->pos + t * C;
            for (vitc_int c = 0; c < C; c++) row[c] += pos[c];
        }
    }
}

// ref: modeling_vit.py ViTLayer.forward (pre-norm: attention then MLP, each with a residual)
static void block_forward(const vit_model *m, const vit_block *blk, const workspace_plan *p,
                          float *ws, float *attn_probs, vitc_int B, vitc_int T) {
    const vitc_int C = m->C, H = m->H, D = C / H, BT = B * T;
    float *x = ws + p->x, *a = ws + p->a, *qkv = ws + p->qkv, *ctx = ws + p->ctx;
    float *hidden = ws + p->big, *scratch = ws + p->attn;
    const float scale = 1.0f / sqrtf((float)D);

    layernorm_forward_f32(a, x, blk->norm1_w, blk->norm1_b, m->eps, BT, C, C, C);
    linear_forward_f32(qkv, a, blk->qkv_w, blk->qkv_b, VITC_ACT_NONE, BT, 3 * C, C, 3 * C, C, C);
    for (vitc_int b = 0; b < B; b++)
        for (vitc_int h = 0; h < H; h++) {
            const float *q = qkv + b * T * 3 * C + h * D;
            float *probs = attn_probs ? attn_probs + (b * H + h) * T * T : NULL;
            attention_forward_f32(ctx + b * T * C + h * D, probs, q, q + C, q + 2 * C, scale, T, T,
                                  D, D, C, T, 3 * C, 3 * C, 3 * C, scratch);
        }
    linear_residual(x, ctx, blk->proj_w, blk->proj_b, BT, C, C);

    layernorm_forward_f32(a, x, blk->norm2_w, blk->norm2_b, m->eps, BT, C, C, C);
    linear_forward_f32(hidden, a, blk->fc1_w, blk->fc1_b, m->act, BT, m->F, C, m->F, C, C);
    linear_residual(x, hidden, blk->fc2_w, blk->fc2_b, BT, C, m->F);
}

void vit_forward(const vit_model *m, const vit_outputs *out, const float *pixels, vitc_int B,
                 vitc_int Hi, vitc_int Wi, float *workspace) {
    const workspace_plan p = plan_workspace(m, B, Hi, Wi);
    const vitc_int C = m->C, T = (Hi / m->P) * (Wi / m->P) + 1, BT = B * T;
    float *x = workspace + p.x;
    if (B == 0) return;

    embed(m, x, workspace + p.big, pixels, B, Hi, Wi);
    if (out->hidden) memcpy(out->hidden, x, (size_t)(BT * C) * sizeof(float));
    for (vitc_int l = 0; l < m->L; l++) {
        float *probs = out->attn ? out->attn + l * B * m->H * T * T : NULL;
        block_forward(m, &m->blocks[l], &p, workspace, probs, B, T);
        if (out->hidden) memcpy(out->hidden + (l + 1) * BT * C, x, (size_t)(BT * C) * sizeof(float));
    }
    // ref: modeling_vit.py ViTModel.forward `sequence_output = self.layernorm(hidden_states)`
    layernorm_forward_f32(out->last, x, m->norm_w, m->norm_b, m->eps, BT, C, C, C);

    // ref: ViTForImageClassification.forward `logits = self.classifier(sequence_output[:, 0, :])`
    if (out->logits && m->head_w)
        linear_forward_f32(out->logits, out->last, m->head_w, m->head_b, VITC_ACT_NONE, B, m->K, C,
                           m->K, T * C, C);
    // ref: ViTPooler.forward `tanh(dense(hidden_states[:, 0]))`
    if (out->pooled && m->pool_w) {
        linear_forward_f32(out->pooled, out->last, m->pool_w, m->pool_b, VITC_ACT_NONE, B, C, C, C,
                           T * C, C);
        for (vitc_int i = 0; i < B * C; i++) out->pooled[i] = tanhf(out->pooled[i]);
    }
}
