// ufuncs.c: the NumPy ufunc loops of vitc's kernels and their registration.
// Loops read dimensions/steps, take the direct (BLAS) path when strides allow, copy operands to one
// scratch block otherwise, and set errors (with the GIL) only on resource failures. Shapes are
// checked before the loop (process_core_dims_func), dtypes by a type resolver. No math here.
#include "vitc_py.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

// ---------------------------------------------------------------------------------------------
// Per-ufunc description, passed as the loop data of every loop and read by the type resolver.

typedef struct {
    const char *name;
    npy_intp elsize;           // 4 (float32 loop) or 8 (float64 loop)
    unsigned param_mask;       // inputs that are scalar parameters (eps, scale): any real dtype
    const char *const *names;  // input names for messages
} loop_spec;

static int is_f32(const void *data) { return ((const loop_spec *)data)->elsize == 4; }

// Allocation failure inside a loop (the GIL may be released): take it to set the error.
static void loop_no_memory(void) {
    PyGILState_STATE st = PyGILState_Ensure();
    PyErr_NoMemory();
    PyGILState_Release(st);
}

// ---------------------------------------------------------------------------------------------
// Strided 2-D blocks: a (rows, cols) view with byte strides.

typedef struct {
    char *ptr;
    npy_intp rows, cols, rs, cs;  // sizes; row and column strides in bytes
} block2d;

static block2d block(char *ptr, npy_intp rows, npy_intp cols, npy_intp rs, npy_intp cs) {
    block2d b = {ptr, rows, cols, rs, cs};
    return b;
}

// BLAS-usable layout: unit column stride and a positive row stride >= cols (in elements).
// On success *ld is the leading dimension in elements.
static int blasable(block2d b, npy_intp es, npy_intp *ld) {
    const npy_intp min_ld = b.cols > 0 ? b.cols : 1;
    if (b.rows == 0 || b.cols == 0) {
        *ld = min_ld;
        return 1;
    }
    if (b.cols > 1 && b.cs != es) return 0;
    if (b.rows == 1) {
        *ld = min_ld;
        return 1;
    }
    if (b.rs <= 0 || b.rs % es != 0 || b.rs / es < min_ld || b.rs / es > INT_MAX) return 0;
    *ld = b.rs / es;
    return 1;
}

// Address range [lo, hi) touched by a block.
static void block_range(block2d b, npy_intp es, char **lo, char **hi) {
    char *a = b.ptr, *z = b.ptr;
    if (b.rows > 0 && b.cols > 0) {
        const npy_intp dr = (b.rows - 1) * b.rs, dc = (b.cols - 1) * b.cs;
        if (dr < 0) a += dr; else z += dr;
        if (dc < 0) a += dc; else z += dc;
        z += es;
    }
    *lo = a;
    *hi = z;
}

static int blocks_overlap(block2d a, block2d b, npy_intp es) {
    char *alo, *ahi, *blo, *bhi;
    block_range(a, es, &alo, &ahi);
    block_range(b, es, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

// Copy a block into contiguous memory with leading dimension cols, or back out of it.
static void copy_in(void *dst, block2d src, npy_intp es) {
    for (npy_intp r = 0; r < src.rows; r++) {
        const char *s = src.ptr + r * src.rs;
        if (es == 4) {
            float *d = (float *)dst + r * src.cols;
            for (npy_intp c = 0; c < src.cols; c++) d[c] = *(const float *)(s + c * src.cs);
        } else {
            double *d = (double *)dst + r * src.cols;
            for (npy_intp c = 0; c < src.cols; c++) d[c] = *(const double *)(s + c * src.cs);
        }
    }
}

static void copy_out(block2d dst, const void *src, npy_intp es) {
    for (npy_intp r = 0; r < dst.rows; r++) {
        char *d = dst.ptr + r * dst.rs;
        if (es == 4) {
            const float *s = (const float *)src + r * dst.cols;
            for (npy_intp c = 0; c < dst.cols; c++) *(float *)(d + c * dst.cs) = s[c];
        } else {
            const double *s = (const double *)src + r * dst.cols;
            for (npy_intp c = 0; c < dst.cols; c++) *(double *)(d + c * dst.cs) = s[c];
        }
    }
}

// An input as (pointer, ld) for a kernel: the block itself when blasable, else a copy in `buf`.
static const void *input_view(block2d b, npy_intp es, void *buf, npy_intp *ld) {
    if (blasable(b, es, ld)) return b.ptr;
    copy_in(buf, b, es);
    *ld = b.cols > 0 ? b.cols : 1;
    return buf;
}

// Scratch: one malloc per loop call, carved into element-aligned pieces.
typedef struct {
    char *base;
    size_t used;
} arena;

static void *arena_take(arena *a, npy_intp n_elems, npy_intp es) {
    void *p = a->base + a->used;
    a->used += (size_t)(n_elems > 0 ? n_elems : 1) * (size_t)es;
    a->used = (a->used + 63) & ~(size_t)63;
    return p;
}

static size_t arena_size(const npy_intp *elems, int n, npy_intp es) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const size_t e = (size_t)(elems[i] > 0 ? elems[i] : 1);
        if (e > (SIZE_MAX / 2 - total) / (size_t)es - 64) return SIZE_MAX;  // overflow: fail malloc
        total += ((e * (size_t)es + 63) & ~(size_t)63);
    }
    return total;
}

// One malloc of `copies` arenas with the same pieces, arena_size() bytes apart (one per thread).
static int arena_init_copies(arena *a, const npy_intp *elems, int n, npy_intp es, int copies) {
    const size_t size = arena_size(elems, n, es);
    a->used = 0;
    a->base = size == SIZE_MAX || size > SIZE_MAX / (size_t)copies ? NULL : malloc(size * (size_t)copies);
    if (a->base == NULL) {
        loop_no_memory();
        return -1;
    }
    return 0;
}

static int arena_init(arena *a, const npy_intp *elems, int n, npy_intp es) {
    return arena_init_copies(a, elems, n, es, 1);
}

// ---------------------------------------------------------------------------------------------
// Element-wise: gelu, gelu_tanh (1 in, 1 out).

enum { ELEMENTWISE_CHUNK = 1024 };

typedef void (*map_f32)(float *, const float *, vitc_int);
typedef void (*map_f64)(double *, const double *, vitc_int);

static void map_loop(char **args, npy_intp const *dimensions, npy_intp const *steps, void *data,
                     map_f32 f32, map_f64 f64) {
    npy_intp n = dimensions[0];
    char *x = args[0], *y = args[1];
    const npy_intp x_stride = steps[0], y_stride = steps[1];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    if (x_stride == es && y_stride == es) {
        if (es == 4) f32((float *)y, (const float *)x, n);
        else f64((double *)y, (const double *)x, n);
        return;
    }
    double buf[ELEMENTWISE_CHUNK];  // room for the chunk in either dtype
    for (npy_intp i0 = 0; i0 < n; i0 += ELEMENTWISE_CHUNK) {
        const npy_intp len = n - i0 < ELEMENTWISE_CHUNK ? n - i0 : ELEMENTWISE_CHUNK;
        block2d xb = block(x + i0 * x_stride, 1, len, 0, x_stride);
        block2d yb = block(y + i0 * y_stride, 1, len, 0, y_stride);
        copy_in(buf, xb, es);
        if (es == 4) f32((float *)buf, (const float *)buf, len);
        else f64(buf, buf, len);
        copy_out(yb, buf, es);
    }
}

static void gelu_loop(char **args, npy_intp const *dimensions, npy_intp const *steps, void *data) {
    map_loop(args, dimensions, steps, data, gelu_forward_f32, gelu_forward_f64);
}

static void gelu_tanh_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                           void *data) {
    map_loop(args, dimensions, steps, data, gelu_tanh_forward_f32, gelu_tanh_forward_f64);
}

// ---------------------------------------------------------------------------------------------
// Row-wise: layer_norm (n),(n),(n),()->(n) and softmax (n)->(n).

static double read_scalar(const char *p, npy_intp es) {
    return es == 4 ? (double)*(const float *)p : *(const double *)p;
}

static void layer_norm_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                            void *data) {
    const npy_intp n_outer = dimensions[0], n = dimensions[1];
    const npy_intp x_outer = steps[0], w_outer = steps[1], b_outer = steps[2], eps_outer = steps[3],
                   out_outer = steps[4];
    const npy_intp x_stride = steps[5], w_stride = steps[6], b_stride = steps[7],
                   out_stride = steps[8];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    const npy_intp pieces[] = {n, n, n, n};  // x, w, b, out copies
    arena a;
    if (arena_init(&a, pieces, (int)(sizeof(pieces) / sizeof(pieces[0])), es) < 0) return;
    void *xbuf = arena_take(&a, n, es), *wbuf = arena_take(&a, n, es), *bbuf = arena_take(&a, n, es),
         *obuf = arena_take(&a, n, es);
    for (npy_intp i = 0; i < n_outer; i++) {
        block2d xb = block(args[0] + i * x_outer, 1, n, 0, x_stride);
        block2d wb = block(args[1] + i * w_outer, 1, n, 0, w_stride);
        block2d bb = block(args[2] + i * b_outer, 1, n, 0, b_stride);
        block2d ob = block(args[4] + i * out_outer, 1, n, 0, out_stride);
        const double eps = read_scalar(args[3] + i * eps_outer, es);
        npy_intp ld;
        const void *x = input_view(xb, es, xbuf, &ld);
        const void *w = input_view(wb, es, wbuf, &ld);
        const void *b = input_view(bb, es, bbuf, &ld);
        // Direct output if contiguous and not overlapping an input other than exactly x.
        const int direct = blasable(ob, es, &ld) &&
                           !(x != (void *)ob.ptr && x == xb.ptr && blocks_overlap(ob, xb, es)) &&
                           !(w == wb.ptr && blocks_overlap(ob, wb, es)) &&
                           !(b == bb.ptr && blocks_overlap(ob, bb, es));
        void *out = direct ? (void *)ob.ptr : obuf;
        if (es == 4)
            layernorm_forward_f32(out, x, w, b, (float)eps, 1, n, n, n);
        else
            layernorm_forward_f64(out, x, w, b, eps, 1, n, n, n);
        if (!direct) copy_out(ob, obuf, es);
    }
    free(a.base);
}

static void softmax_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                         void *data) {
    const npy_intp n_outer = dimensions[0], n = dimensions[1];
    const npy_intp x_outer = steps[0], out_outer = steps[1];
    const npy_intp x_stride = steps[2], out_stride = steps[3];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    const npy_intp pieces[] = {n, n};  // x, out copies
    arena a;
    if (arena_init(&a, pieces, (int)(sizeof(pieces) / sizeof(pieces[0])), es) < 0) return;
    void *xbuf = arena_take(&a, n, es), *obuf = arena_take(&a, n, es);
    for (npy_intp i = 0; i < n_outer; i++) {
        block2d xb = block(args[0] + i * x_outer, 1, n, 0, x_stride);
        block2d ob = block(args[1] + i * out_outer, 1, n, 0, out_stride);
        npy_intp ld;
        const void *x = input_view(xb, es, xbuf, &ld);
        const int direct = blasable(ob, es, &ld) &&
                           !(x != (void *)ob.ptr && x == xb.ptr && blocks_overlap(ob, xb, es));
        void *out = direct ? (void *)ob.ptr : obuf;
        if (es == 4) softmax_forward_f32(out, x, 1, n, n, n);
        else softmax_forward_f64(out, x, 1, n, n, n);
        if (!direct) copy_out(ob, obuf, es);
    }
    free(a.base);
}

// ---------------------------------------------------------------------------------------------
// GEMM-based: linear, attention, mlp. Each input is used in place when BLAS can read it, else
// copied; an input broadcast over the loop (outer stride 0) is copied once. The output is written
// directly when BLAS can write it and it overlaps no input, else through scratch.

// A cached copy of an input: re-copied only when its outer stride is nonzero.
static const void *cached_input(block2d b, npy_intp outer, npy_intp i, npy_intp es, void *buf,
                                npy_intp *ld) {
    if (blasable(b, es, ld)) return b.ptr;
    if (i == 0 || outer != 0) copy_in(buf, b, es);
    *ld = b.cols > 0 ? b.cols : 1;
    return buf;
}

static int output_direct(block2d ob, const block2d *ins, int n_in, npy_intp es, npy_intp *ld) {
    if (!blasable(ob, es, ld)) return 0;
    for (int j = 0; j < n_in; j++)
        if (blocks_overlap(ob, ins[j], es)) return 0;
    return 1;
}

static void linear_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                        void *data) {
    const npy_intp n_outer = dimensions[0], M = dimensions[1], K = dimensions[2], N = dimensions[3];
    const npy_intp x_outer = steps[0], w_outer = steps[1], b_outer = steps[2], out_outer = steps[3];
    const npy_intp x_m = steps[4], x_k = steps[5], w_n = steps[6], w_k = steps[7], b_n = steps[8],
                   out_m = steps[9], out_n = steps[10];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    const npy_intp pieces[] = {M * K, N * K, N, M * N};  // x, w, b, out copies
    arena a;
    if (arena_init(&a, pieces, (int)(sizeof(pieces) / sizeof(pieces[0])), es) < 0) return;
    void *xbuf = arena_take(&a, M * K, es), *wbuf = arena_take(&a, N * K, es),
         *bbuf = arena_take(&a, N, es), *obuf = arena_take(&a, M * N, es);
    for (npy_intp i = 0; i < n_outer; i++) {
        const block2d ins[] = {
            block(args[0] + i * x_outer, M, K, x_m, x_k),
            block(args[1] + i * w_outer, N, K, w_n, w_k),
            block(args[2] + i * b_outer, 1, N, 0, b_n),
        };
        const block2d ob = block(args[3] + i * out_outer, M, N, out_m, out_n);
        npy_intp ld_x, ld_w, ld_b, ld_out;
        const void *x = cached_input(ins[0], x_outer, i, es, xbuf, &ld_x);
        const void *w = cached_input(ins[1], w_outer, i, es, wbuf, &ld_w);
        const void *b = cached_input(ins[2], b_outer, i, es, bbuf, &ld_b);
        const int direct = output_direct(ob, ins, (int)(sizeof(ins) / sizeof(ins[0])), es, &ld_out);
        void *out = direct ? (void *)ob.ptr : obuf;
        if (!direct) ld_out = N > 0 ? N : 1;
        if (es == 4)
            linear_forward_f32(out, x, w, b, VITC_ACT_NONE, M, N, K, ld_out, ld_x, ld_w);
        else
            linear_forward_f64(out, x, w, b, M, N, K, ld_out, ld_x, ld_w);
        if (!direct) copy_out(ob, obuf, es);
    }
    free(a.base);
}

// One attention loop call: the loop dimension's items run on vitc's pool (each head is one
// single-threaded kernel call), every thread with its own copies and scratch.
typedef struct {
    char **args;
    npy_intp S, D, T, E, es, work;
    npy_intp q_outer, k_outer, v_outer, scale_outer, out_outer;
    npy_intp q_s, q_d, k_t, k_d, v_t, v_e, out_s, out_e;
    char *arenas;        // one per thread, arena_bytes apart
    size_t arena_bytes;
} attention_ufunc_job;

static void attention_items(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const attention_ufunc_job *j = ctx;
    const npy_intp S = j->S, D = j->D, T = j->T, E = j->E, es = j->es;
    arena a = {j->arenas + (size_t)tid * j->arena_bytes, 0};
    void *qbuf = arena_take(&a, S * D, es), *kbuf = arena_take(&a, T * D, es),
         *vbuf = arena_take(&a, T * E, es), *obuf = arena_take(&a, S * E, es),
         *tile = arena_take(&a, j->work, es);
    for (npy_intp i = begin; i < end; i++) {
        char **args = j->args;
        const block2d ins[] = {
            block(args[0] + i * j->q_outer, S, D, j->q_s, j->q_d),
            block(args[1] + i * j->k_outer, T, D, j->k_t, j->k_d),
            block(args[2] + i * j->v_outer, T, E, j->v_t, j->v_e),
        };
        const block2d ob = block(args[4] + i * j->out_outer, S, E, j->out_s, j->out_e);
        const double scale = read_scalar(args[3] + i * j->scale_outer, es);
        // A broadcast input (outer stride 0) is copied once per thread, at its first item.
        npy_intp ld_q, ld_k, ld_v, ld_out;
        const void *q = cached_input(ins[0], j->q_outer, i - begin, es, qbuf, &ld_q);
        const void *k = cached_input(ins[1], j->k_outer, i - begin, es, kbuf, &ld_k);
        const void *v = cached_input(ins[2], j->v_outer, i - begin, es, vbuf, &ld_v);
        const int direct = output_direct(ob, ins, (int)(sizeof(ins) / sizeof(ins[0])), es, &ld_out);
        void *out = direct ? (void *)ob.ptr : obuf;
        if (!direct) ld_out = E > 0 ? E : 1;
        if (es == 4)
            attention_forward_f32(out, NULL, q, k, v, (float)scale, S, T, D, E, ld_out, 1, ld_q, ld_k,
                                  ld_v, tile);
        else
            attention_forward_f64(out, NULL, q, k, v, scale, S, T, D, E, ld_out, 1, ld_q, ld_k, ld_v,
                                  tile);
        if (!direct) copy_out(ob, obuf, es);
    }
}

static void attention_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                           void *data) {
    const npy_intp n_outer = dimensions[0], S = dimensions[1], D = dimensions[2],
                   T = dimensions[3], E = dimensions[4];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    const npy_intp work = attention_scratch_len(S, T, D, E);
    const npy_intp pieces[] = {S * D, T * D, T * E, S * E, work};  // q, k, v, out copies, tile
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    int threads = vitc_get_num_threads();
    if (threads > n_outer) threads = n_outer > 0 ? (int)n_outer : 1;
    arena a;
    if (arena_init_copies(&a, pieces, n_pieces, es, threads) < 0) return;
    attention_ufunc_job job = {args, S, D, T, E, es, work,
                               steps[0], steps[1], steps[2], steps[3], steps[4],
                               steps[5], steps[6], steps[7], steps[8], steps[9], steps[10],
                               steps[11], steps[12], a.base, arena_size(pieces, n_pieces, es)};
    vitc_parallel_for(n_outer, threads, attention_items, &job);
    free(a.base);
}

static void mlp_loop(char **args, npy_intp const *dimensions, npy_intp const *steps, void *data) {
    const npy_intp n_outer = dimensions[0], M = dimensions[1], C = dimensions[2], F = dimensions[3];
    const npy_intp x_outer = steps[0], w1_outer = steps[1], b1_outer = steps[2],
                   w2_outer = steps[3], b2_outer = steps[4], out_outer = steps[5];
    const npy_intp x_m = steps[6], x_c = steps[7], w1_f = steps[8], w1_c = steps[9],
                   b1_f = steps[10], w2_c = steps[11], w2_f = steps[12], b2_c = steps[13],
                   out_m = steps[14], out_c = steps[15];
    const npy_intp es = ((const loop_spec *)data)->elsize;
    const npy_intp work = mlp_scratch_len(M, F);
    const npy_intp pieces[] = {M * C, F * C, F, C * F, C, M * C, work};
    arena a;
    if (arena_init(&a, pieces, (int)(sizeof(pieces) / sizeof(pieces[0])), es) < 0) return;
    void *xbuf = arena_take(&a, M * C, es), *w1buf = arena_take(&a, F * C, es),
         *b1buf = arena_take(&a, F, es), *w2buf = arena_take(&a, C * F, es),
         *b2buf = arena_take(&a, C, es), *obuf = arena_take(&a, M * C, es),
         *hidden = arena_take(&a, work, es);
    for (npy_intp i = 0; i < n_outer; i++) {
        const block2d ins[] = {
            block(args[0] + i * x_outer, M, C, x_m, x_c),
            block(args[1] + i * w1_outer, F, C, w1_f, w1_c),
            block(args[2] + i * b1_outer, 1, F, 0, b1_f),
            block(args[3] + i * w2_outer, C, F, w2_c, w2_f),
            block(args[4] + i * b2_outer, 1, C, 0, b2_c),
        };
        const block2d ob = block(args[5] + i * out_outer, M, C, out_m, out_c);
        npy_intp ld_x, ld_w1, ld_b1, ld_w2, ld_b2, ld_out;
        const void *x = cached_input(ins[0], x_outer, i, es, xbuf, &ld_x);
        const void *w1 = cached_input(ins[1], w1_outer, i, es, w1buf, &ld_w1);
        const void *b1 = cached_input(ins[2], b1_outer, i, es, b1buf, &ld_b1);
        const void *w2 = cached_input(ins[3], w2_outer, i, es, w2buf, &ld_w2);
        const void *b2 = cached_input(ins[4], b2_outer, i, es, b2buf, &ld_b2);
        // The mlp kernel takes packed weights (ld = row length): copy strided ones.
        if (w1 == ins[1].ptr && F > 1 && ld_w1 != C) {
            copy_in(w1buf, ins[1], es);
            w1 = w1buf;
        }
        if (w2 == ins[3].ptr && C > 1 && ld_w2 != F) {
            copy_in(w2buf, ins[3], es);
            w2 = w2buf;
        }
        const int direct = output_direct(ob, ins, (int)(sizeof(ins) / sizeof(ins[0])), es, &ld_out);
        void *out = direct ? (void *)ob.ptr : obuf;
        if (!direct) ld_out = C > 0 ? C : 1;
        if (es == 4)
            mlp_forward_f32(out, x, w1, b1, w2, b2, VITC_ACT_GELU, M, C, F, ld_out, ld_x, hidden);
        else
            mlp_forward_f64(out, x, w1, b1, w2, b2, VITC_ACT_GELU, M, C, F, ld_out, ld_x, hidden);
        if (!direct) copy_out(ob, obuf, es);
    }
    free(a.base);
}

// ---------------------------------------------------------------------------------------------
// Shape checks (NumPy >= 2.1 process_core_dims_func); core_dim_sizes follow signature order.

static int check_blas_size(const char *name, const char *dim, npy_intp size) {
    if (size > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %s=%zd exceeds the BLAS limit %d", name, dim,
                     (Py_ssize_t)size, INT_MAX);
        return -1;
    }
    return 0;
}

static int nonempty_n(PyUFuncObject *ufunc, npy_intp *core_dim_sizes) {
    if (core_dim_sizes[0] == 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected n >= 1 elements per row, got n=0", ufunc->name);
        return -1;
    }
    return 0;
}

static int linear_dims(PyUFuncObject *ufunc, npy_intp *core_dim_sizes) {  // m, k, n
    static const char *const dims[] = {"m", "k", "n"};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (check_blas_size(ufunc->name, dims[i], core_dim_sizes[i]) < 0) return -1;
    return 0;
}

static int attention_dims(PyUFuncObject *ufunc, npy_intp *core_dim_sizes) {  // s, d, t, e
    static const char *const dims[] = {"s", "d", "t", "e"};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (check_blas_size(ufunc->name, dims[i], core_dim_sizes[i]) < 0) return -1;
    return 0;
}

static int mlp_dims(PyUFuncObject *ufunc, npy_intp *core_dim_sizes) {  // m, c, f
    static const char *const dims[] = {"m", "c", "f"};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (check_blas_size(ufunc->name, dims[i], core_dim_sizes[i]) < 0) return -1;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Dtypes: data operands must be float32 or float64 (no silent int/half/complex casts); scalar
// parameters (eps, scale) may be any real number. Then NumPy's default resolution.

static int vitc_type_resolver(PyUFuncObject *ufunc, NPY_CASTING casting, PyArrayObject **operands,
                              PyObject *type_tup, PyArray_Descr **out_dtypes) {
    const loop_spec *spec = (const loop_spec *)ufunc->data[0];
    for (int i = 0; i < ufunc->nin; i++) {
        PyArray_Descr *descr = PyArray_DESCR(operands[i]);
        const int t = descr->type_num;
        const int ok = (spec->param_mask >> i) & 1
                           ? (PyTypeNum_ISBOOL(t) || PyTypeNum_ISINTEGER(t) || t == NPY_HALF ||
                              t == NPY_FLOAT || t == NPY_DOUBLE)
                           : (t == NPY_FLOAT || t == NPY_DOUBLE);
        if (!ok) {
            PyErr_Format(PyExc_TypeError,
                         "%s: %s must be float32 or float64 (the supported dtypes), got %S",
                         spec->name, spec->names[i], (PyObject *)descr);
            return -1;
        }
    }
    return PyUFunc_DefaultTypeResolver(ufunc, casting, operands, type_tup, out_dtypes);
}

// ---------------------------------------------------------------------------------------------
// Registration table.

static const char *const NAMES_X[] = {"x"};
static const char *const NAMES_LAYER_NORM[] = {"x", "weight", "bias", "eps"};
static const char *const NAMES_LINEAR[] = {"x", "weight", "bias"};
static const char *const NAMES_ATTENTION[] = {"q", "k", "v", "scale"};
static const char *const NAMES_MLP[] = {"x", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"};

#define SPECS(var, name, mask, names)                                                        \
    static const loop_spec var##_f32 = {name, 4, mask, names};                               \
    static const loop_spec var##_f64 = {name, 8, mask, names};                               \
    static void *var##_data[] = {(void *)&var##_f32, (void *)&var##_f64};

SPECS(gelu, "gelu", 0, NAMES_X)
SPECS(gelu_tanh, "gelu_tanh", 0, NAMES_X)
SPECS(layer_norm, "layer_norm", 1u << 3, NAMES_LAYER_NORM)
SPECS(softmax, "softmax", 0, NAMES_X)
SPECS(linear, "linear", 0, NAMES_LINEAR)
SPECS(attention, "attention", 1u << 3, NAMES_ATTENTION)
SPECS(mlp, "mlp", 0, NAMES_MLP)

static PyUFuncGenericFunction gelu_funcs[] = {gelu_loop, gelu_loop};
static PyUFuncGenericFunction gelu_tanh_funcs[] = {gelu_tanh_loop, gelu_tanh_loop};
static PyUFuncGenericFunction layer_norm_funcs[] = {layer_norm_loop, layer_norm_loop};
static PyUFuncGenericFunction softmax_funcs[] = {softmax_loop, softmax_loop};
static PyUFuncGenericFunction linear_funcs[] = {linear_loop, linear_loop};
static PyUFuncGenericFunction attention_funcs[] = {attention_loop, attention_loop};
static PyUFuncGenericFunction mlp_funcs[] = {mlp_loop, mlp_loop};

static const char types_1_1[] = {NPY_FLOAT, NPY_FLOAT, NPY_DOUBLE, NPY_DOUBLE};
static const char types_3_1[] = {NPY_FLOAT, NPY_FLOAT, NPY_FLOAT, NPY_FLOAT,
                                 NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE};
static const char types_4_1[] = {NPY_FLOAT,  NPY_FLOAT,  NPY_FLOAT,  NPY_FLOAT,  NPY_FLOAT,
                                 NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE};
static const char types_5_1[] = {NPY_FLOAT,  NPY_FLOAT,  NPY_FLOAT,  NPY_FLOAT,
                                 NPY_FLOAT,  NPY_FLOAT,  NPY_DOUBLE, NPY_DOUBLE,
                                 NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE, NPY_DOUBLE};

static const char DOC_GELU[] =
    "gelu(x, /, out=None, **kwargs)\n\n"
    "Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), element-wise (HF \"gelu\").\n"
    "float32 and float64; gelu(inf) = inf, gelu(-inf) = -0, NaN propagates.";
static const char DOC_GELU_TANH[] =
    "gelu_tanh(x, /, out=None, **kwargs)\n\n"
    "tanh-approximated GELU, 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))),\n"
    "element-wise (HF \"gelu_new\", \"gelu_pytorch_tanh\"). float32 and float64.";
static const char DOC_LAYER_NORM[] =
    "layer_norm(x, weight, bias, eps, /, out=None, **kwargs)\n\n"
    "LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, with the\n"
    "biased variance; gufunc signature (n),(n),(n),()->(n). float32 and float64 (float32\n"
    "statistics accumulate in double). n must be >= 1.";
static const char DOC_SOFTMAX[] =
    "softmax(x, /, out=None, **kwargs)\n\n"
    "Numerically stable softmax over the last axis (row max subtracted); gufunc signature\n"
    "(n)->(n). A row with NaN, or only -inf, gives NaN as torch.softmax. n must be >= 1.";
static const char DOC_LINEAR[] =
    "linear(x, weight, bias, /, out=None, **kwargs)\n\n"
    "x @ weight.T + bias with weight in PyTorch (out, in) layout; gufunc signature\n"
    "(m,k),(n,k),(n)->(m,n). BLAS GEMM when strides allow, else via a contiguous copy.";
static const char DOC_ATTENTION[] =
    "attention(q, k, v, scale, /, out=None, **kwargs)\n\n"
    "One attention head, softmax(q @ k.T * scale) @ v; gufunc signature\n"
    "(s,d),(t,d),(t,e),()->(s,e), batch and heads are loop dimensions. Queries go in blocks\n"
    "so the (s, t) score matrix is never stored whole. t = 0 gives zeros (as torch).";
static const char DOC_MLP[] =
    "mlp(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, /, out=None, **kwargs)\n\n"
    "ViT MLP block fc2(gelu(fc1(x))) with exact GELU, weights in PyTorch (out, in) layout;\n"
    "gufunc signature (m,c),(f,c),(f),(c,f),(c)->(m,c). Bias and GELU are applied in the fc1\n"
    "output pass.";

typedef struct {
    const char *name;
    PyUFuncGenericFunction *funcs;
    void **data;
    const char *types;
    int nin;
    const char *signature;  // NULL: element-wise
    PyUFunc_ProcessCoreDimsFunc *check_dims;
    const char *doc;
} ufunc_def;

static const ufunc_def UFUNCS[] = {
    {"gelu", gelu_funcs, gelu_data, types_1_1, 1, NULL, NULL, DOC_GELU},
    {"gelu_tanh", gelu_tanh_funcs, gelu_tanh_data, types_1_1, 1, NULL, NULL, DOC_GELU_TANH},
    {"layer_norm", layer_norm_funcs, layer_norm_data, types_4_1, 4, "(n),(n),(n),()->(n)",
     nonempty_n, DOC_LAYER_NORM},
    {"softmax", softmax_funcs, softmax_data, types_1_1, 1, "(n)->(n)", nonempty_n, DOC_SOFTMAX},
    {"linear", linear_funcs, linear_data, types_3_1, 3, "(m,k),(n,k),(n)->(m,n)", linear_dims,
     DOC_LINEAR},
    {"attention", attention_funcs, attention_data, types_4_1, 4, "(s,d),(t,d),(t,e),()->(s,e)",
     attention_dims, DOC_ATTENTION},
    {"mlp", mlp_funcs, mlp_data, types_5_1, 5, "(m,c),(f,c),(f),(c,f),(c)->(m,c)", mlp_dims,
     DOC_MLP},
};

// Test hook: vitc._core._set_simd(False) forces the scalar kernels.
static PyObject *py_set_simd(PyObject *self, PyObject *arg) {
    const int enabled = PyObject_IsTrue(arg);
    if (enabled < 0) return NULL;
    vitc_set_simd_enabled(enabled);
    Py_RETURN_NONE;
}

static PyObject *py_simd_active(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(vitc_simd_avx512());
}

static PyMethodDef ufunc_module_methods[] = {
    {"_set_simd", py_set_simd, METH_O,
     "_set_simd(enabled)\n\nInternal (tests): False forces the scalar kernel fallbacks."},
    {"_simd_active", py_simd_active, METH_NOARGS,
     "_simd_active() -> bool\n\nInternal (tests): whether the AVX-512 kernels run."},
    {NULL, NULL, 0, NULL},
};

int vitc_register_ufuncs(PyObject *module) {
    PyObject *uf = NULL;
    if (PyModule_AddFunctions(module, ufunc_module_methods) < 0) goto fail;
    for (size_t i = 0; i < sizeof(UFUNCS) / sizeof(UFUNCS[0]); i++) {
        const ufunc_def *d = &UFUNCS[i];
        const int ntypes = 2;  // float32, float64 (one entry per *_funcs element)
        uf = PyUFunc_FromFuncAndDataAndSignature(d->funcs, d->data, (char *)d->types, ntypes, d->nin,
                                                 1, PyUFunc_None, d->name, d->doc, 0, d->signature);
        if (uf == NULL) goto fail;
        PyUFuncObject *u = (PyUFuncObject *)uf;
        u->type_resolver = vitc_type_resolver;
        if (d->check_dims) u->process_core_dims_func = d->check_dims;
        if (PyModule_AddObjectRef(module, d->name, uf) < 0) goto fail;
        Py_CLEAR(uf);
    }
    return 0;
fail:
    Py_XDECREF(uf);
    return -1;
}
