// amx.c: the AMX tile driver shared by the bf16 and int8 GEMMs (tdpbf16ps / tdpbusd): tile
// configuration, the tile loop over a 32x32 output block, the split into column groups.
// Not the packing or the epilogues (gemm_bf16.c, gemm_int8.c); pure C, no Python, no allocation.
#include <string.h>

#include "gemm_lowp.h"

#if LOWP_HAVE_X86_CODE
// ---------------------------------------------------------------------------------------------
// AMX: tiles 0-3 accumulate a 32x32 output block (2x2 tiles of 16x16 fp32/int32), tiles 4-5 are
// two 16-row activation tiles, 6-7 the two 16-column halves of a weight panel.
#define AMX_TARGET                                                                \
    __attribute__((                                                               \
        target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512vl,avx512bf16," \
               "avx512vnni")))

// Every tile 16 rows x 64 bytes; the configuration is per thread, so each work item loads it.
// ldtilecfg is written out here because GCC 12's _tile_loadconfig tells the compiler it reads
// only 8 bytes of the 64-byte configuration, which lets the stores of rows and colsb be dropped
// (seen: SIGILL on the first tile instruction of a pool thread).
AMX_TARGET void vitc_amx_load_tile_config(void) {
    struct {
        uint8_t palette_id, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

// Weight panels per column group: the group's panels stay in L2 while every row block passes
// over them; at least one group per thread.
static vitc_int amx_group_panels(vitc_int panels, vitc_int panel_bytes, int threads) {
    const vitc_int fit = max_int(1, AMX_L2_BLOCK / max_int(1, panel_bytes));
    return max_int(1, min_int(fit, (panels + threads - 1) / threads));
}

// 32x32 block of 16x16 tiles 0..3 -> buf (row stride NR elements of 4 bytes).
#define AMX_STORE_BLOCK(buf)                           \
    do {                                               \
        _tile_stored(0, (buf), NR * 4);                \
        _tile_stored(1, (buf) + 16, NR * 4);           \
        _tile_stored(2, (buf) + 16 * NR, NR * 4);      \
        _tile_stored(3, (buf) + 16 * NR + 16, NR * 4); \
    } while (0)

// Work item: a group of weight panels; every 32-row block of activations against each panel,
// over all of K in the tiles.
AMX_TARGET static void amx_gemm(void *vjob, vitc_int begin, vitc_int end, int thread_id) {
    (void)thread_id;
    const amx_job *j = vjob;
    const vitc_int panels = round_up(j->N, NR) / NR, Mp = round_up(j->M, AMX_MR);
    float acc[AMX_MR * NR] __attribute__((aligned(64)));  // fp32 or int32 bits
    vitc_amx_load_tile_config();
    for (vitc_int g = begin; g < end; g++) {
        const vitc_int p_end = min_int((g + 1) * j->group, panels);
        for (vitc_int m0 = 0; m0 < Mp; m0 += AMX_MR) {
            if (vitc_stopping()) goto done;  // the caller discards the output
            const char *a0 = j->a + m0 * j->lda, *a1 = a0 + 16 * j->lda;
            for (vitc_int panel = g * j->group; panel < p_end; panel++) {
                const char *b = j->w + panel * j->panel_bytes;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (vitc_int s = 0; s < j->steps; s++) {
                    _tile_loadd(4, a0 + s * 64, j->lda);
                    _tile_loadd(5, a1 + s * 64, j->lda);
                    _tile_loadd(6, b + s * 16 * NR * 4, NR * 4);
                    _tile_loadd(7, b + s * 16 * NR * 4 + 64, NR * 4);
                    if (j->int8) {
                        _tile_dpbusd(0, 4, 6);
                        _tile_dpbusd(1, 4, 7);
                        _tile_dpbusd(2, 5, 6);
                        _tile_dpbusd(3, 5, 7);
                    } else {
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                }
                AMX_STORE_BLOCK(acc);
                j->store(j->ctx, acc, m0, panel * NR);
            }
        }
    }
done:
    _tile_release();
}

// Split an AMX GEMM into column groups on vitc's pool.
void amx_gemm_run(amx_job *job, int threads) {
    const vitc_int panels = round_up(job->N, NR) / NR;
    job->group = amx_group_panels(panels, job->panel_bytes, threads);
    vitc_parallel_for((panels + job->group - 1) / job->group, threads, amx_gemm, job);
}
#endif
