// kernels_internal.h: helpers shared between the kernel files (not part of the public kernel API).
// Pure C, no Python; vitc_kernels.h is the API the model and the ufunc loops call.
#ifndef VITC_KERNELS_INTERNAL_H
#define VITC_KERNELS_INTERNAL_H

#include "vitc_kernels.h"

// Nonzero when the AVX-512 kernels may run: the CPU has them and they are not disabled.
int vitc_simd_avx512(void);
// Test hook: 0 forces the scalar fallbacks, 1 restores run-time detection.
void vitc_set_simd_enabled(int enabled);

// out (n) = exp(inp (n) - shift); returns the sum of out (accumulated in double).
// Used by softmax; out may equal inp.
double vitc_exp_shift_sum_f32(float *out, const float *inp, float shift, vitc_int n);

// Row maximum of x (n >= 1), NaN if the row has a NaN (softmax).
float vitc_row_max_f32(const float *x, vitc_int n);
// x (n) *= s
void vitc_scale_f32(float *x, float s, vitc_int n);

// Any activation of the enum, float64 (the f64 mlp and linear kernels).
void act_forward_f64(double *out, const double *inp, vitc_act act, vitc_int n);

// AMX (x86-64 only): load the tile configuration every AMX kernel uses (8 tiles of 16 rows x 64
// bytes) on the calling thread; the caller has checked vitc_amx_permitted().
void vitc_amx_load_tile_config(void);

#endif  // VITC_KERNELS_INTERNAL_H
