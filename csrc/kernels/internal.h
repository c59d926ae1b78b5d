// internal.h: helpers shared between the kernel files (not part of the public kernel API).
// Pure C, no Python; kernels.h is the API the model and the ufunc loops call.
#ifndef VITC_KERNELS_INTERNAL_H
#define VITC_KERNELS_INTERNAL_H

#include "cpu.h"
#include "kernels.h"
#include "threads.h"


// out (n) = exp(inp (n) - shift); returns the sum of out (accumulated in double).
// Used by softmax; out may equal inp.
double vitc_exp_shift_sum_f32(float *out, const float *inp, float shift, vitc_int n);

// Row maximum of x (n >= 1), NaN if the row has a NaN (softmax).
float vitc_row_max_f32(const float *x, vitc_int n);
// x (n) *= s
void vitc_scale_f32(float *x, float s, vitc_int n);

// Any activation of the enum, float64 (the f64 mlp and linear kernels).
void act_forward_f64(double *out, const double *inp, vitc_act act, vitc_int n);

// The bf16 attention head without AMX (attention_avx512.c): vdpbf16ps code (the caller's op
// runs at the AVX-512 tier) and the same source on the portable emulation of its instructions
// (run instead of any hardware code while attention_bf16_emulated(), a test hook). Scratch:
// attention_avx512_scratch_bytes; arguments as attention_forward_bf16.
vitc_int attention_avx512_scratch_bytes(vitc_int T, vitc_int D);
int attention_bf16_emulated(void);
void attention_forward_bf16_avx512(float *out, const float *q, const float *k, const float *v,
                                   float scale, vitc_int S, vitc_int T, vitc_int D,
                                   vitc_int ld_out, vitc_int ld_q, vitc_int ld_k, vitc_int ld_v,
                                   void *scratch);
void attention_forward_bf16_emulated(float *out, const float *q, const float *k, const float *v,
                                     float scale, vitc_int S, vitc_int T, vitc_int D,
                                     vitc_int ld_out, vitc_int ld_q, vitc_int ld_k, vitc_int ld_v,
                                     void *scratch);

// AMX (x86-64 only): load the tile configuration every AMX kernel uses (8 tiles of 16 rows x 64
// bytes) on the calling thread (amx.c); the caller's op runs at the AMX tier (vitc_op_tier).
void vitc_amx_load_tile_config(void);

#endif  // VITC_KERNELS_INTERNAL_H
