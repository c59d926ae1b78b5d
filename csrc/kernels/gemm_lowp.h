// gemm_lowp.h: what the reduced-precision GEMM files share (gemm_bf16.c, gemm_int8.c, amx.c):
// panel sizes, the AMX tile driver and small helpers. Internal to those files; pure C, no Python.
//
// Layouts (NR = 32 output columns per panel, MR rows per activation panel):
//   bf16 weights  (N/32, K/2, 32, 2): column panels, K pairs interleaved (a uint32 per pair)
//   bf16 acts     (M/MR, K/2, MR, 2): row panels, K pairs interleaved (one broadcast per row)
//   int8 weights  (N/32, K/4, 32, 4): K quads interleaved for vpdpbusd
//   u8 acts       (M/MR, K/4, MR, 4): q + 128 per element (symmetric per-row scale, zero point 128)
// N is padded to 32 with zero weights, K to 2 (bf16) or 4 (int8) with zeros, M to MR.
// Partial sums over K blocks live in `out` itself (fp32 for bf16, int32 bits for int8), so no
// extra scratch is needed and each output element is written once per K block.
//
// AMX (tdpbf16ps / tdpbusd, when the CPU and OS allow it and K is a multiple of 32 / 64): the
// weight panels above are already AMX B tiles (16 rows of K pairs / quads x 16 columns, row stride
// 128 bytes: the two halves of a panel), so only the activations change layout: plain rows
// (round_up(M, 32) rows, row stride K + one cache line so 16 tile rows do not share cache sets).
// A 2x2 block of 16x16 accumulator tiles holds a 32x32 output block over all of K.
// Bounds (tile loads are not seen by AddressSanitizer): activation tiles read rows < round_up(M,
// 32), the rows the scratch holds, and bytes < K * elem of each row; weight tiles read K/2 pairs
// (K/4 quads) x 32 columns of one panel, which exists for every column group, zero-padded past N.
#ifndef VITC_GEMM_LOWP_H
#define VITC_GEMM_LOWP_H

#include <stdint.h>

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define LOWP_HAVE_X86_CODE 1
#include <immintrin.h>
#else
#define LOWP_HAVE_X86_CODE 0
#endif

enum {
    NR = 32,       // output columns per weight panel (two zmm of 16 fp32/int32 lanes)
    BF16_MR = 12,  // activation rows per microkernel (24 accumulators)
    INT8_MR = 12,
    BF16_KC = 256,              // K pairs per cache block: a 32 KiB weight panel block stays in L1
    INT8_KC = 256,              // K quads per cache block: 32 KiB as well
    AMX_MR = 32,                // activation rows per AMX block (two A tiles)
    AMX_PAD = 64,               // bytes added to an AMX activation row
    AMX_L2_BLOCK = 512 * 1024,  // bytes of weight panels an AMX column group keeps in L2
    LOWP_MC = 256,              // most activation rows per cache block (256 KiB of one K block)
};

static inline vitc_int round_up(vitc_int x, vitc_int m) {
    return (x + m - 1) / m * m;
}
static inline vitc_int min_int(vitc_int a, vitc_int b) {
    return a < b ? a : b;
}
static inline vitc_int max_int(vitc_int a, vitc_int b) {
    return a > b ? a : b;
}

// Rows of the activation cache blocks of the panel drivers (a multiple of mr): M split into equal
// blocks of at most LOWP_MC rows, so one K block of them (1 KiB a row) stays in L2 while every
// weight panel of a work item passes over it. Without it a batch streamed all of its M rows from
// memory once per weight panel, and the per-image time rose with the batch. The blocks change
// which rows meet which panel when, never the order of any output's sum (K blocks in order).
static inline vitc_int lowp_row_block(vitc_int M, vitc_int mr) {
    const vitc_int blocks = (M + LOWP_MC - 1) / LOWP_MC;
    return round_up((M + blocks - 1) / max_int(blocks, 1), mr);
}

// Activation rows of the AMX layout, in bytes (elem: 2 for bf16, 1 for u8).
static inline vitc_int amx_row_bytes(vitc_int K, vitc_int elem) {
    return K * elem + AMX_PAD;
}

// Epilogue of the last K block: bias was added in the tile; the activation runs on stored rows.
static inline void apply_act_rows(float *c, vitc_int ldc, vitc_act act, vitc_int rows,
                                  vitc_int cols) {
    if (act == VITC_ACT_NONE) return;
    for (vitc_int i = 0; i < rows; i++) act_forward_f32(c + i * ldc, c + i * ldc, act, cols);
}

// Weight packing, one job per panel of NR output channels (parallel: ViT-L packs at load time).
typedef struct {
    void *packed;
    float *scales;      // int8 only
    int32_t *col_sums;  // int8 only
    const float *w;
    vitc_int N, K;
    int simd;
} pack_job;

#if LOWP_HAVE_X86_CODE
// One AMX GEMM for both precisions: the tile loop is the same in bytes (a K step is one 64-byte
// tile row: 32 bf16 or 64 int8 values, and 16 rows of a 128-byte weight panel); only the product
// instruction and the epilogue differ.
typedef struct {
    const char *a;         // activation rows, round_up(M, AMX_MR) of them
    vitc_int lda;          // bytes between rows
    const char *w;         // weight panels
    vitc_int panel_bytes;  // K x NR of one panel
    vitc_int steps;        // K / 32 (bf16) or K / 64 (int8)
    int int8;              // tdpbusd (u8 x s8 -> int32) instead of tdpbf16ps
    vitc_int M, N, group;  // group: weight panels per work item
    // acc (AMX_MR, NR) fp32 or int32 for output rows m0.., columns n0..
    void (*store)(const void *ctx, const void *acc, vitc_int m0, vitc_int n0);
    const void *ctx;
} amx_job;

// Run an AMX GEMM on vitc's pool, split into column groups (amx.c). The caller has checked that
// the active tier runs AMX code for its op (vitc_op_tier).
void amx_gemm_run(amx_job *job, int threads);
#endif

#endif  // VITC_GEMM_LOWP_H
