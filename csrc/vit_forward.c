// vit_forward.c: the ViT forward pass, mirroring transformers' modeling_vit.py step by step,
// composed of vitc's kernels and BLAS. One workspace from the caller serves every layer: no
// allocation happens here. Not a model loader: weights arrive as pointers (vit_forward.h).
//
// Threads: everything runs on vitc's pool (vitc_parallel_for). The float32 weight GEMMs (patch
// embedding and the blocks of a float32 model) are vitc's packed GEMM (kernels/gemm_f32.h), one
// call per linear with M = batch x tokens (the images of a batch share the weight stream), split
// by output columns; each output element is one FMA chain in a fixed order, so an image's values
// do not depend on the thread count or on the other images of its batch. Attention runs by
// (image, head) pairs, layernorms by rows; the small head GEMMs are single-threaded BLAS calls
// of one row each (vitc's threads only: OpenBLAS's own never spin beside them).
#include "vit_forward.h"

#include <math.h>
#include <string.h>

#include "kernels/blas.h"
#include "kernels/gemm_f32.h"
#include "threads.h"

// ---------------------------------------------------------------------------------------------
// Names the Python side uses (model_py.c exports them; Python mirrors none)

// ref: transformers activations.py ACT2FN ("gelu_fast" is the tanh form written differently:
// 0.5x(1+tanh(0.79788456x(1+0.044715x^2))), the same function as "gelu_new").
const vitc_named VIT_ACTIVATIONS[] = {
    {"gelu", VITC_ACT_GELU},
    {"gelu_new", VITC_ACT_GELU_TANH},
    {"gelu_pytorch_tanh", VITC_ACT_GELU_TANH},
    {"gelu_fast", VITC_ACT_GELU_TANH},
    {"quick_gelu", VITC_ACT_QUICK_GELU},
    {"relu", VITC_ACT_RELU},
    {"tanh", VITC_ACT_TANH},
};
const int VIT_NUM_ACTIVATIONS = (int)(sizeof(VIT_ACTIVATIONS) / sizeof(VIT_ACTIVATIONS[0]));
const char *const VIT_PRECISIONS[VITC_WEIGHTS_COUNT] = {"float32", "bfloat16", "int8"};
const char *const VIT_POOLS[VITC_POOL_COUNT] = {"token", "avg"};
const char *const VIT_STAGES[VIT_STAGE_COUNT] = {
    "patch_embed", "qkv",   "attention", "out_proj", "mlp_up",
    "gelu",        "mlp_down", "norms",  "quantize", "other"};

// ---------------------------------------------------------------------------------------------
// Workspace plan: one place, so the size the caller allocates and the carve-up vit_forward uses
// agree.

// Floats of scratch the reduced-precision GEMMs need for their converted activations.
static vitc_int lowp_scratch_floats(const vit_model *m, vitc_int BT) {
    vitc_int bytes = 0;
    if (m->wdtype == VITC_WEIGHTS_BF16) {
        const vitc_int a = linear_bf16_scratch_len(BT, m->C), b = linear_bf16_scratch_len(BT, m->F);
        bytes = (a > b ? a : b) * (vitc_int)sizeof(uint16_t);
    } else if (m->wdtype == VITC_WEIGHTS_INT8) {
        const vitc_int a = linear_int8_scratch_len(BT, m->C), b = linear_int8_scratch_len(BT, m->F);
        bytes = a > b ? a : b;
    }
    return (bytes + (vitc_int)sizeof(float) - 1) / (vitc_int)sizeof(float);
}

// Beyond this many floats (4 PiB) a plan is refused: no machine has it, and the offsets below
// stay far from overflowing.
static const double PLAN_MAX_FLOATS = 1e15;

vit_plan vit_plan_forward(const vit_model *m, vitc_int B, vitc_int Hi, vitc_int Wi, int threads,
                          int head_mean) {
    vit_plan p;
    memset(&p, 0, sizeof p);
    p.B = B;
    p.Hi = Hi;
    p.Wi = Wi;
    p.threads = threads > 0 ? threads : 1;
    // ref: ViTPatchEmbeddings / Conv2d(kernel=stride=patch): the grid drops a remainder
    p.gh = Hi / m->Ph;
    p.gw = Wi / m->Pw;
    p.Np = p.gh * p.gw;
    p.T = m->prefix + p.Np;
    const vitc_int T = p.T, C = m->C, D = m->C / m->H;
    const vitc_int row_len = m->Cin * m->Ph * m->Pw;
    // A bound on everything below (attention scratch: T^2 per thread, at most 16 T D + 64 T more).
    const double est = (double)B * (double)T * (8.0 * C + 2.0 * m->F + row_len + 64.0) +
                       (head_mean ? (double)B * m->H * (double)T * T : 0.0) +
                       (double)p.threads * ((double)T * T + 16.0 * T * D + 64.0 * T + 65536.0 +
                                        256.0 * ((double)C + m->F + row_len + 256.0));
    if (!(est < PLAN_MAX_FLOATS)) {
        p.total = -1;
        return p;
    }
    const vitc_int BT = B * T;
    const vitc_int patch_len = B * p.Np * row_len;  // im2col patches
    const vitc_int mlp_len = BT * m->F;             // fc1 output
    // Reduced-precision models run attention in bf16 on AMX where the tier allows it (measured on
    // ViT-L/16-512, int8: attention 0.67 s -> see README); the fp32 kernel otherwise and whenever
    // the attention probabilities are requested. Decided here, once per forward.
    p.bf16_attention = m->wdtype != VITC_WEIGHTS_F32 && attention_bf16_supported(D);
    p.x = 0;                     // (B*T, C) residual stream
    p.a = p.x + BT * C;          // (B*T, C) layernorm output
    p.qkv = p.a + BT * C;        // (B*T, 3C)
    p.ctx = p.qkv + BT * 3 * C;  // (B*T, C) attention context, heads concatenated
    p.big = p.ctx + BT * C;      // patches, then the MLP hidden (B*T, F)
    p.lowp = p.big + (patch_len > mlp_len ? patch_len : mlp_len);
    p.head = p.lowp + lowp_scratch_floats(m, BT);  // (B, C) pooled head input
    p.acc = (p.head + B * C + 1) / 2 * 2;  // (C) doubles (8-byte aligned): the avg pool's sums
    p.gemm = p.acc + 2 * C;
    // Float32 GEMM scratch for the largest of the GEMMs below (M = B*T, or B*Np for patches).
    const vitc_int shapes[5][2] = {{C, row_len}, {3 * C, C}, {C, C}, {m->F, C}, {C, m->F}};
    p.gemm_len = 0;
    for (int i = 0; i < 5; i++) {
        const vitc_int len = gemm_f32_scratch_len(BT, shapes[i][0], shapes[i][1]);
        if (len > p.gemm_len) p.gemm_len = len;
    }
    p.head_mean = head_mean != 0;
    p.probs = p.gemm + p.threads * p.gemm_len;  // (B, H, T, T) with head_mean
    p.attn = p.probs + (p.head_mean ? B * m->H * T * T : 0);
    p.attn_len = attention_scratch_len(T, T, D, D);
    if (p.bf16_attention) {
        const vitc_int bf16_len = attention_bf16_scratch_bytes(T, D) / (vitc_int)sizeof(float) + 1;
        if (bf16_len > p.attn_len) p.attn_len = bf16_len;
    }
    p.total = p.attn + p.threads * p.attn_len;
    return p;
}

// ---------------------------------------------------------------------------------------------
// Row-parallel passes on vitc's pool

// Rows of at least this many elements make a task worth waking a thread for.
static const vitc_int PARALLEL_MIN_ELEMS = 1 << 15;

static int row_threads(vitc_int rows, vitc_int n, int threads) {
    return rows * n >= PARALLEL_MIN_ELEMS ? threads : 1;
}

// Output columns per work item of a head GEMM: a multiple of the BLAS micro-tile widths.
static const vitc_int GEMM_COL_BLOCK = 64;

// The heads' GEMMs on unpacked float32 weights (OpenBLAS): out (M, N) = act(inp (M, K) .
// w (N, K)^T + b), or out += inp . w^T + b when `residual`, split by output columns: each thread
// multiplies the rows by its slice of the weights (single-threaded BLAS: it packs only its slice)
// and applies bias and activation to its columns while hot. Every BLAS call has the same shape
// whatever the thread count and batch: GEMM_COL_BLOCK columns by `rows_per_call` rows, so an
// image's outputs never depend on how many threads ran or which images shared its batch (BLAS
// kernels sum in an order that depends on the shape).
typedef struct {
    float *out;
    const float *inp, *w, *b;
    vitc_act act;
    int residual;
    vitc_int M, N, K, ld_inp, rows_per_call;
} gemm_job;

static void gemm_task(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const gemm_job *j = ctx;
    (void)tid;
    for (vitc_int blk = begin; blk < end; blk++) {
        const vitc_int n0 = blk * GEMM_COL_BLOCK;
        const vitc_int n1 = n0 + GEMM_COL_BLOCK < j->N ? n0 + GEMM_COL_BLOCK : j->N;
        const float *w = j->w + n0 * j->K, *b = j->b ? j->b + n0 : NULL;
        for (vitc_int m0 = 0; m0 < j->M; m0 += j->rows_per_call) {
            if (vitc_stopping()) return;  // between BLAS calls: each is one image by one block
            const vitc_int rows = j->M - m0 < j->rows_per_call ? j->M - m0 : j->rows_per_call;
            float *out = j->out + m0 * j->N + n0;
            const float *inp = j->inp + m0 * j->ld_inp;
            if (j->residual)
                linear_residual_forward_f32(out, inp, w, b, rows, n1 - n0, j->K, j->N, j->ld_inp,
                                            j->K);
            else
                linear_forward_f32(out, inp, w, b, j->act, rows, n1 - n0, j->K, j->N, j->ld_inp,
                                   j->K);
        }
    }
}

// inp rows are ld_inp apart (K for a contiguous matrix); BLAS calls of rows_per_call rows.
static void linear_strided(float *out, const float *inp, vitc_int ld_inp, const float *w,
                           const float *b, vitc_act act, int residual, vitc_int M, vitc_int N,
                           vitc_int K, vitc_int rows_per_call, int threads) {
    if (M == 0 || N == 0) return;
    gemm_job job = {out, inp, w, b, act, residual, M, N, K, ld_inp, rows_per_call};
    vitc_parallel_for((N + GEMM_COL_BLOCK - 1) / GEMM_COL_BLOCK, threads, gemm_task, &job);
}

// x (rows, N) += y (rows, N): the residual add after a reduced-precision GEMM, in transformers'
// order (the GEMM output already holds its bias).
typedef struct {
    float *x;
    const float *y;
    vitc_int N;
} add_job;

static void add_task(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const add_job *j = ctx;
    (void)tid;
    for (vitc_int i = begin * j->N; i < end * j->N; i++) j->x[i] += j->y[i];
}

// out (M, N) = act(inp (M, K) . w^T + b), or out += inp . w^T + b when `residual`, for a weight
// in the model's precision. tmp (M, N) holds a reduced-precision result before its residual add.
// Float32: one packed GEMM over all M rows, bias, activation and residual add in its epilogue.
static void block_linear(const vit_model *m, const vit_plan *p, float *ws, float *out,
                         const float *inp, const vitc_weight *w, const float *b, vitc_act act,
                         int residual, float *tmp, void *lowp_scratch, vitc_int M, vitc_int N,
                         vitc_int K) {
    const int threads = p->threads;
    if (m->wdtype == VITC_WEIGHTS_F32) {
        gemm_f32_forward_parallel(out, inp, w->data, b, act, residual, M, N, K, N, K, threads,
                                  ws + p->gemm);
        return;
    }
    float *dst = residual ? tmp : out;
    if (m->wdtype == VITC_WEIGHTS_BF16)
        linear_bf16_forward(dst, inp, w->data, b, act, M, N, K, N, K, lowp_scratch);
    else
        linear_int8_forward(dst, inp, w->data, w->scales, w->col_sums, b, act, M, N, K, N, K,
                            lowp_scratch);
    if (residual) {
        add_job job = {out, tmp, N};
        vitc_parallel_for(M, row_threads(M, N, threads), add_task, &job);
    }
}

typedef struct {
    float *out;
    const float *inp, *w, *b;
    float eps;
    vitc_int C;
} layernorm_job;

static void layernorm_task(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const layernorm_job *j = ctx;
    (void)tid;
    layernorm_forward_f32(j->out + begin * j->C, j->inp + begin * j->C, j->w, j->b, j->eps,
                          end - begin, j->C, j->C, j->C);
}

static void layernorm(float *out, const float *inp, const float *w, const float *b, float eps,
                      vitc_int rows, vitc_int C, int threads) {
    layernorm_job job = {out, inp, w, b, eps, C};
    vitc_parallel_for(rows, row_threads(rows, C, threads), layernorm_task, &job);
}

// One task per (image, head): softmax(q k^T / sqrt(D)) v with single-threaded GEMMs, each thread
// with its own scratch (a block of scores, never the whole T x T).
typedef struct {
    float *ctx, *probs, *scratch;
    const float *qkv;
    vitc_int T, C, H, scratch_len;
    float scale;
    int bf16;  // attention_forward_bf16 (no probs requested)
} attention_job;

static void attention_task(void *arg, vitc_int begin, vitc_int end, int tid) {
    const attention_job *j = arg;
    const vitc_int T = j->T, C = j->C, D = C / j->H;
    float *scratch = j->scratch + tid * j->scratch_len;
    for (vitc_int i = begin; i < end; i++) {
        if (vitc_stopping()) return;
        const vitc_int b = i / j->H, h = i % j->H;
        const float *q = j->qkv + b * T * 3 * C + h * D;  // row stride 3C: q | k | v
        float *probs = j->probs ? j->probs + i * T * T : NULL;
        if (j->bf16) {
            attention_forward_bf16(j->ctx + b * T * C + h * D, q, q + C, q + 2 * C, j->scale, T, T,
                                   D, C, 3 * C, 3 * C, 3 * C, scratch);
            continue;
        }
        attention_forward_f32(j->ctx + b * T * C + h * D, probs, q, q + C, q + 2 * C, j->scale, T,
                              T, D, D, C, T, 3 * C, 3 * C, 3 * C, scratch);
    }
}

// ---------------------------------------------------------------------------------------------
// Forward

// patches (B*Np, Cin*Ph*Pw) from pixels (B, Cin, Hi, Wi): each row one patch in (c, y, x) order,
// patches row-major over the (gh, gw) grid, the layout of Conv2d(kernel=stride=(Ph, Pw)) as a
// GEMM; pixels past the grid (a remainder the patch does not divide) are not read, as Conv2d
// drops them.
static void im2col_patches(float *patches, const float *pixels, vitc_int B, vitc_int Cin,
                           vitc_int Hi, vitc_int Wi, vitc_int Ph, vitc_int Pw, vitc_int gh,
                           vitc_int gw) {
    const vitc_int row_len = Cin * Ph * Pw;
    for (vitc_int b = 0; b < B; b++)
        for (vitc_int py = 0; py < gh; py++)
            for (vitc_int px = 0; px < gw; px++) {
                float *row = patches + ((b * gh + py) * gw + px) * row_len;
                for (vitc_int c = 0; c < Cin; c++)
                    for (vitc_int y = 0; y < Ph; y++) {
                        const float *src =
                            pixels + ((b * Cin + c) * Hi + py * Ph + y) * Wi + px * Pw;
                        memcpy(row + (c * Ph + y) * Pw, src, (size_t)Pw * sizeof(float));
                    }
            }
}

// x (B, T, C) = cat(prefix tokens, patch_embeddings(pixels)) + pos (T, C). proj (B*Np, C) holds
// the projection of every patch of the batch (one GEMM) before it is placed.
// ref: modeling_vit.py ViTEmbeddings.forward (modeling_deit.py DeiTEmbeddings: cls, distillation)
static void embed(const vit_model *m, const vit_plan *p, float *ws, float *x, float *patches,
                  float *proj, const float *pixels, const float *pos) {
    const vitc_int C = m->C, Np = p->Np, T = p->T, P0 = m->prefix;
    const vitc_int row_len = m->Cin * m->Ph * m->Pw;
    im2col_patches(patches, pixels, p->B, m->Cin, p->Hi, p->Wi, m->Ph, m->Pw, p->gh, p->gw);
    // patch projection (bias), then + position: the order of transformers' additions
    gemm_f32_forward_parallel(proj, patches, m->patch_w, m->patch_b, VITC_ACT_NONE, 0, p->B * Np, C,
                              row_len, C, row_len, p->threads, ws + p->gemm);
    for (vitc_int b = 0; b < p->B; b++) {
        float *xb = x + b * T * C;
        for (vitc_int t = 0; t < P0; t++)
            for (vitc_int c = 0; c < C; c++) xb[t * C + c] = m->prefix_rows[t][c] + pos[t * C + c];
        for (vitc_int t = P0; t < T; t++) {
            float *row = xb + t * C;
            const float *src = proj + (b * Np + t - P0) * C;
            for (vitc_int c = 0; c < C; c++) row[c] = src[c] + pos[t * C + c];
        }
    }
}

// Profile: add the seconds since t0 to prof[stage]; the time now (0 without a profile).
static double lap(double *prof, vit_stage stage, double t0) {
    if (prof == NULL) return 0.0;
    const double t = vitc_seconds();
    prof[stage] += t - t0;
    return t;
}

// x (rows, n) = act(x), rows split across threads (the profile's separate activation pass: the
// same elementwise code the GEMM epilogues apply, so the same values).
typedef struct {
    float *x;
    vitc_act act;
    vitc_int n;
} act_job;

static void act_task(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const act_job *j = ctx;
    (void)tid;
    for (vitc_int r = begin; r < end; r++) act_forward_f32(j->x + r * j->n, j->x + r * j->n, j->act, j->n);
}

// mean (B, T, T) = the average over heads of probs (B, H, T, T), heads summed in order (the same
// bits whatever the thread count), split by (image, query row).
// ref: vitc/predict.py attention_rollout `a.mean(axis=1)`
typedef struct {
    float *mean;
    const float *probs;
    vitc_int H, T;
} head_mean_job;

static void head_mean_task(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const head_mean_job *j = ctx;
    const vitc_int H = j->H, T = j->T;
    (void)tid;
    for (vitc_int r = begin; r < end; r++) {  // r = b * T + query row
        const vitc_int b = r / T, q = r % T;
        float *dst = j->mean + r * T;
        const float *src = j->probs + (b * H * T + q) * T;  // head 0's row q of image b
        for (vitc_int k = 0; k < T; k++) dst[k] = src[k];
        for (vitc_int h = 1; h < H; h++)
            for (vitc_int k = 0; k < T; k++) dst[k] += src[h * T * T + k];
        const float inv = 1.0f / (float)H;
        for (vitc_int k = 0; k < T; k++) dst[k] *= inv;
    }
}

// ref: modeling_vit.py ViTLayer.forward (pre-norm: attention then MLP, each with a residual)
static int block_forward(const vit_model *m, const vit_block *blk, const vit_plan *p, float *ws,
                         float *attn_probs, float *attn_mean, double *prof) {
    const vitc_int C = m->C, H = m->H, T = p->T, BT = p->B * T;
    const int threads = p->threads;
    float *x = ws + p->x, *a = ws + p->a, *qkv = ws + p->qkv, *ctx = ws + p->ctx;
    float *hidden = ws + p->big;
    // Head averages without all heads' probabilities asked: this layer's go to the workspace.
    if (attn_mean && attn_probs == NULL) attn_probs = ws + p->probs;
    void *lowp = ws + p->lowp;

    // `a` is free again once the GEMM after each layernorm has read it: it holds the
    // reduced-precision GEMM outputs before their residual adds. A stop request is honoured
    // between the stages (and inside the long ones).
    double t = prof ? vitc_seconds() : 0.0;
    layernorm(a, x, blk->norm1_w, blk->norm1_b, m->eps, BT, C, threads);
    t = lap(prof, VIT_STAGE_NORMS, t);
    block_linear(m, p, ws, qkv, a, &blk->qkv_w, blk->qkv_b, VITC_ACT_NONE, 0, NULL, lowp, BT, 3 * C,
                 C);
    t = lap(prof, VIT_STAGE_QKV, t);
    if (vitc_stopping()) return VIT_STOPPED;
    attention_job job = {ctx,
                         attn_probs,
                         ws + p->attn,
                         qkv,
                         T,
                         C,
                         H,
                         p->attn_len,
                         1.0f / sqrtf((float)(C / H)),
                         !attn_probs && p->bf16_attention};
    vitc_parallel_for(p->B * H, threads, attention_task, &job);
    if (attn_mean) {
        head_mean_job mj = {attn_mean, job.probs, H, T};
        vitc_parallel_for(BT, row_threads(BT, H * T, threads), head_mean_task, &mj);
    }
    t = lap(prof, VIT_STAGE_ATTENTION, t);
    if (vitc_stopping()) return VIT_STOPPED;
    block_linear(m, p, ws, x, ctx, &blk->proj_w, blk->proj_b, VITC_ACT_NONE, 1, a, lowp, BT, C, C);
    t = lap(prof, VIT_STAGE_OUT_PROJ, t);
    if (vitc_stopping()) return VIT_STOPPED;

    layernorm(a, x, blk->norm2_w, blk->norm2_b, m->eps, BT, C, threads);
    t = lap(prof, VIT_STAGE_NORMS, t);
    // Profiled: the activation as a pass of its own, so that its time shows (the same values).
    block_linear(m, p, ws, hidden, a, &blk->fc1_w, blk->fc1_b, prof ? VITC_ACT_NONE : m->act, 0,
                 NULL, lowp, BT, m->F, C);
    t = lap(prof, VIT_STAGE_MLP_UP, t);
    if (prof) {
        act_job aj = {hidden, m->act, m->F};
        vitc_parallel_for(BT, row_threads(BT, m->F, threads), act_task, &aj);
        t = lap(prof, VIT_STAGE_GELU, t);
    }
    if (vitc_stopping()) return VIT_STOPPED;
    block_linear(m, p, ws, x, hidden, &blk->fc2_w, blk->fc2_b, VITC_ACT_NONE, 1, a, lowp, BT, C,
                 m->F);
    lap(prof, VIT_STAGE_MLP_DOWN, t);
    return vitc_stopping() ? VIT_STOPPED : VIT_DONE;
}

// out (B, N) = head(inp rows ld_inp apart), or a copy of the rows (N = C) for an identity head.
static void apply_head(float *out, const float *inp, vitc_int ld_inp, const float *w,
                       const float *b, vitc_int B, vitc_int N, vitc_int C, int threads) {
    if (w == NULL) {  // ref: ViTForImageClassification with num_labels=0, classifier = Identity()
        for (vitc_int i = 0; i < B; i++)
            memcpy(out + i * C, inp + i * ld_inp, (size_t)C * sizeof(float));
        return;
    }
    linear_strided(out, inp, ld_inp, w, b, VITC_ACT_NONE, 0, B, N, C, 1, threads);
}

// head_in (B, C) = fc_norm(mean of the patch tokens of last), the prefix tokens excluded; the sum
// runs over tokens in order, in double, per image (the same value whatever the batch).
// ref: timm vision_transformer.py VisionTransformer.forward_head (global_pool="avg")
static void average_pool(const vit_model *m, const vit_plan *p, float *head_in, double *acc,
                         const float *last) {
    const vitc_int C = m->C, T = p->T;
    for (vitc_int b = 0; b < p->B; b++) {
        for (vitc_int c = 0; c < C; c++) acc[c] = 0.0;
        for (vitc_int t = m->prefix; t < T; t++) {
            const float *row = last + (b * T + t) * C;
            for (vitc_int c = 0; c < C; c++) acc[c] += row[c];
        }
        for (vitc_int c = 0; c < C; c++) head_in[b * C + c] = (float)(acc[c] / (double)p->Np);
    }
}

int vit_forward(const vit_model *m, const vit_plan *p, const vit_outputs *out, const float *pixels,
                const float *pos, float *workspace) {
    const vitc_int C = m->C, T = p->T, B = p->B, BT = B * T;
    const int threads = p->threads;
    float *x = workspace + p->x;
    double *prof = out->profile;
    if (B == 0) return VIT_DONE;

    const double t_start = prof ? vitc_seconds() : 0.0;
    embed(m, p, workspace, x, workspace + p->big, workspace + p->ctx, pixels, pos);
    lap(prof, VIT_STAGE_PATCH_EMBED, t_start);
    if (vitc_stopping()) return VIT_STOPPED;
    if (out->hidden) memcpy(out->hidden, x, (size_t)(BT * C) * sizeof(float));
    for (vitc_int l = 0; l < m->L; l++) {
        float *probs = out->attn ? out->attn + l * B * m->H * T * T : NULL;
        float *mean = out->attn_mean ? out->attn_mean + l * B * T * T : NULL;
        if (block_forward(m, &m->blocks[l], p, workspace, probs, mean, prof) != VIT_DONE)
            return VIT_STOPPED;
        if (out->hidden)
            memcpy(out->hidden + (l + 1) * BT * C, x, (size_t)(BT * C) * sizeof(float));
    }
    // ref: modeling_vit.py ViTModel.forward `sequence_output = self.layernorm(hidden_states)`;
    // timm with average pooling has no norm here (its fc_norm follows the pooling)
    double t = prof ? vitc_seconds() : 0.0;
    if (m->norm_w)
        layernorm(out->last, x, m->norm_w, m->norm_b, m->eps, BT, C, threads);
    else
        memcpy(out->last, x, (size_t)(BT * C) * sizeof(float));
    t = lap(prof, VIT_STAGE_NORMS, t);
    if (vitc_stopping()) return VIT_STOPPED;

    // The small GEMMs on the pooled tokens also run on vitc's pool: a multi-threaded BLAS call
    // here would leave OpenBLAS's threads spinning into the next forward, beside vitc's (seen:
    // blas_thread_server at 5-7 % of the int8 ViT-L profile). One image's row per BLAS call.
    const float *head_in = out->last;  // the CLS row of each image, T * C apart
    vitc_int ld_head = T * C;
    if (m->pool == VITC_POOL_AVG || m->fc_norm_w) {
        // ref: timm VisionTransformer.forward_head: pool, then fc_norm (identity when absent)
        float *pooled = workspace + p->head;
        if (m->pool == VITC_POOL_AVG)
            average_pool(m, p, pooled, (double *)(workspace + p->acc), out->last);
        else
            for (vitc_int b = 0; b < B; b++)
                memcpy(pooled + b * C, out->last + b * T * C, (size_t)C * sizeof(float));
        if (m->fc_norm_w) {
            t = lap(prof, VIT_STAGE_OTHER, t);
            layernorm(pooled, pooled, m->fc_norm_w, m->fc_norm_b, m->eps, B, C, 1);
            t = lap(prof, VIT_STAGE_NORMS, t);
        }
        head_in = pooled;
        ld_head = C;
    }
    const vitc_int K = m->K > 0 ? m->K : C;  // an identity head passes C features through
    if (m->head && !m->distilled) {
        // ref: ViTForImageClassification.forward: self.classifier(sequence_output[:, 0, :])
        apply_head(out->logits, head_in, ld_head, m->head_w, m->head_b, B, K, C, threads);
    } else if (m->head) {
        // ref: modeling_deit.py DeiTForImageClassificationWithTeacher.forward:
        // (cls_classifier(x[:, 0]) + distillation_classifier(x[:, 1])) / 2
        apply_head(out->cls_logits, out->last, T * C, m->head_w, m->head_b, B, K, C, threads);
        apply_head(out->dist_logits, out->last + C, T * C, m->head_dist_w, m->head_dist_b, B, K, C,
                   threads);
        for (vitc_int i = 0; i < B * K; i++)
            out->logits[i] = (out->cls_logits[i] + out->dist_logits[i]) / 2.0f;
    }
    // ref: ViTPooler.forward `activation(dense(hidden_states[:, 0]))` (tanh unless pooler_act)
    if (out->pooled && m->pool_w)
        linear_strided(out->pooled, out->last, T * C, m->pool_w, m->pool_b, m->pool_act, 0, B,
                       m->Cp, C, 1, threads);
    if (prof) {  // other: the whole forward's time minus the stages measured
        double staged = 0.0;
        for (int s = 0; s < VIT_STAGE_COUNT; s++)
            if (s != VIT_STAGE_OTHER) staged += prof[s];
        const double rest = vitc_seconds() - t_start - staged;
        prof[VIT_STAGE_OTHER] = rest > 0.0 ? rest : 0.0;
    }
    return vitc_stopping() ? VIT_STOPPED : VIT_DONE;
}
