// norm.c: row-wise LayerNorm and softmax, float32 and float64.
// Statistics of float32 rows accumulate in double; rows may be updated in place (out == inp).
// Pure C: no Python, no allocation.
#include <math.h>

#include "internal.h"

// ---------------------------------------------------------------------------------------------
// LayerNorm. ref: torch.nn.functional.layer_norm (biased variance, eps inside the sqrt).

// Mean and biased variance of one row, two passes in double with four partial sums.
#define DEFINE_ROW_STATS(name, T)                                                        \
    static void name(const T *x, vitc_int n, double *mean_out, double *var_out) {        \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                           \
        vitc_int i = 0;                                                                  \
        for (; i + 4 <= n; i += 4) {                                                     \
            s0 += x[i];                                                                  \
            s1 += x[i + 1];                                                              \
            s2 += x[i + 2];                                                              \
            s3 += x[i + 3];                                                              \
        }                                                                                \
        for (; i < n; i++) s0 += x[i];                                                   \
        const double mean = ((s0 + s1) + (s2 + s3)) / (double)n;                         \
        s0 = s1 = s2 = s3 = 0;                                                           \
        for (i = 0; i + 4 <= n; i += 4) {                                                \
            const double d0 = x[i] - mean, d1 = x[i + 1] - mean, d2 = x[i + 2] - mean,   \
                         d3 = x[i + 3] - mean;                                           \
            s0 += d0 * d0;                                                               \
            s1 += d1 * d1;                                                               \
            s2 += d2 * d2;                                                               \
            s3 += d3 * d3;                                                               \
        }                                                                                \
        for (; i < n; i++) s0 += (x[i] - mean) * (x[i] - mean);                          \
        *mean_out = mean;                                                                \
        *var_out = ((s0 + s1) + (s2 + s3)) / (double)n;                                  \
    }
DEFINE_ROW_STATS(row_stats_f32, float)
DEFINE_ROW_STATS(row_stats_f64, double)

// out (rows,n), inp (rows,n), w (n) or NULL, b (n) or NULL
void layernorm_forward_f32(float *out, const float *inp, const float *w, const float *b, float eps,
                           vitc_int rows, vitc_int n, vitc_int ld_out, vitc_int ld_inp) {
    if (n <= 0) return;
    for (vitc_int r = 0; r < rows; r++) {
        const float *x = inp + r * ld_inp;
        float *y = out + r * ld_out;
        double mean, var;
        row_stats_f32(x, n, &mean, &var);
        const float m = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)eps));
        if (w && b)
            for (vitc_int i = 0; i < n; i++) y[i] = (x[i] - m) * rstd * w[i] + b[i];
        else
            for (vitc_int i = 0; i < n; i++)
                y[i] = (x[i] - m) * rstd * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
    }
}

// out (rows,n), inp (rows,n), w (n) or NULL, b (n) or NULL
void layernorm_forward_f64(double *out, const double *inp, const double *w, const double *b,
                           double eps, vitc_int rows, vitc_int n, vitc_int ld_out, vitc_int ld_inp) {
    if (n <= 0) return;
    for (vitc_int r = 0; r < rows; r++) {
        const double *x = inp + r * ld_inp;
        double *y = out + r * ld_out;
        double mean, var;
        row_stats_f64(x, n, &mean, &var);
        const double rstd = 1.0 / sqrt(var + eps);
        for (vitc_int i = 0; i < n; i++)
            y[i] = (x[i] - mean) * rstd * (w ? w[i] : 1.0) + (b ? b[i] : 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax. ref: torch.softmax: a NaN anywhere in a row, or a row of -inf only, gives a NaN row.

// Row maximum that returns NaN if the row has one.
#define DEFINE_ROW_MAX(name, T)                          \
    static T name(const T *x, vitc_int n) {              \
        T m = x[0];                                      \
        int has_nan = isnan(x[0]);                       \
        for (vitc_int i = 1; i < n; i++) {               \
            m = isgreater(x[i], m) ? x[i] : m;           \
            has_nan |= isnan(x[i]);                      \
        }                                                \
        return has_nan ? (T)NAN : m;                     \
    }
DEFINE_ROW_MAX(row_max_f64, double)

// out (rows,n), inp (rows,n)
void softmax_forward_f32(float *out, const float *inp, vitc_int rows, vitc_int n, vitc_int ld_out,
                         vitc_int ld_inp) {
    if (n <= 0) return;
    for (vitc_int r = 0; r < rows; r++) {
        const float *x = inp + r * ld_inp;
        float *y = out + r * ld_out;
        const float m = vitc_row_max_f32(x, n);
        // -inf max (all -inf): -inf - -inf = NaN, as torch. NaN max: NaN row.
        const double sum = vitc_exp_shift_sum_f32(y, x, m, n);
        vitc_scale_f32(y, (float)(1.0 / sum), n);
    }
}

// out (rows,n), inp (rows,n)
void softmax_forward_f64(double *out, const double *inp, vitc_int rows, vitc_int n,
                         vitc_int ld_out, vitc_int ld_inp) {
    if (n <= 0) return;
    for (vitc_int r = 0; r < rows; r++) {
        const double *x = inp + r * ld_inp;
        double *y = out + r * ld_out;
        const double m = row_max_f64(x, n);
        double sum = 0.0;
        for (vitc_int i = 0; i < n; i++) {
            y[i] = exp(x[i] - m);
            sum += y[i];
        }
        const double inv = 1.0 / sum;
        for (vitc_int i = 0; i < n; i++) y[i] *= inv;
    }
}
