// ufuncs_py.c: the NumPy ufunc loops of vitc's kernels and their registration.
// Loops read dimensions/steps, take the direct (BLAS) path when strides allow, copy operands to one
// scratch block otherwise, and set errors (with the GIL) only on resource failures. Shapes are
// checked before the loop (process_core_dims_func), dtypes by a type resolver. No math here.
#include "vitc_py.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "threads.h"

// ---------------------------------------------------------------------------------------------
// Per-ufunc description, passed as the loop data of every loop and read by the type resolver.

typedef struct {
    const char *name;
    npy_intp elsize;           // 4 (float32 loop) or 8 (float64 loop)
    unsigned param_mask;       // inputs that are scalar parameters (eps, scale): any real dtype
    const char *const *names;  // input names for messages
} loop_spec;

static int is_f32(const void *data) { return ((const loop_spec *)data)->elsize == 4; }

// Allocation failure inside a loop (the GIL may be released): take it to set the error, naming
// the ufunc and the size so a huge broadcast operand is easy to spot. SIZE_MAX: size overflowed.
static void loop_no_memory(const char *name, size_t bytes) {
    PyGILState_STATE st = PyGILState_Ensure();
    if (bytes == SIZE_MAX)
        PyErr_Format(PyExc_MemoryError,
                     "%s: cannot allocate scratch: its size overflows size_t (%zu bytes)", name,
                     bytes);
    else
        PyErr_Format(PyExc_MemoryError, "%s: cannot allocate %zu bytes of scratch", name, bytes);
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

// Scratch: one malloc per loop call, carved into 64-byte aligned pieces. Only operands that need
// a copy get a piece (piece() gives 0 elements for the others): a call whose operands BLAS reads
// in place allocates nothing for them, however large they are.
typedef struct {
    char *base;
    size_t used;
} arena;

// Elements of a piece: none when not needed, else at least one (kernels may touch the scratch of
// an empty operand's piece).
static npy_intp piece(int needed, npy_intp n_elems) {
    return needed ? (n_elems > 0 ? n_elems : 1) : 0;
}

static size_t piece_bytes(npy_intp n_elems, npy_intp es) {
    return n_elems > 0 ? (((size_t)n_elems * (size_t)es + 63) & ~(size_t)63) : 0;
}

// A piece of n_elems (from piece()); NULL for a piece that is not needed.
static void *arena_take(arena *a, npy_intp n_elems, npy_intp es) {
    if (n_elems <= 0) return NULL;
    void *p = a->base + a->used;
    a->used += piece_bytes(n_elems, es);
    return p;
}

// Bytes of one arena; SIZE_MAX if that overflows. Invariant: total <= SIZE_MAX / 2, so the
// per-thread multiple and the 63-byte round-up of each piece are checked, never wrapped (a bound
// written as a subtraction from the limit wrapped for totals near it: a small malloc, a huge copy).
static size_t arena_size(const npy_intp *elems, int n, npy_intp es) {
    const size_t limit = SIZE_MAX / 2;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (elems[i] <= 0) continue;
        size_t bytes;
        if (__builtin_mul_overflow((size_t)elems[i], (size_t)es, &bytes) || bytes > limit - 63)
            return SIZE_MAX;
        bytes = (bytes + 63) & ~(size_t)63;
        if (bytes > limit - total) return SIZE_MAX;
        total += bytes;
    }
    return total;
}

// One malloc of `copies` arenas with the same pieces, arena_size() bytes apart (one per thread).
// -1 with MemoryError set (naming `name`) if it fails.
static int arena_init_copies(arena *a, const char *name, const npy_intp *elems, int n, npy_intp es,
                             int copies) {
    const size_t size = arena_size(elems, n, es);
    const size_t total =
        size == SIZE_MAX || size > SIZE_MAX / (size_t)copies ? SIZE_MAX : size * (size_t)copies;
    a->used = 0;
    a->base = NULL;
    if (total == 0) return 0;  // nothing to copy: every operand is used in place
    if (total != SIZE_MAX) a->base = malloc(total);
    if (a->base == NULL) {
        loop_no_memory(name, total);
        return -1;
    }
    return 0;
}

static int arena_init(arena *a, const char *name, const npy_intp *elems, int n, npy_intp es) {
    return arena_init_copies(a, name, elems, n, es, 1);
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

// Whether an operand must be copied before a kernel reads it. Strides are the same for every
// item of a loop call, so this is decided once per call.
static int needs_copy(block2d b, npy_intp es) {
    npy_intp ld;
    return !blasable(b, es, &ld);
}

// A row is written in place unless the output is strided or overlaps an input the kernel reads in
// place; out == x exactly is fine (the row kernels allow it). copied[j]: input j is read from a
// copy.
static int row_out_direct(block2d ob, const block2d *ins, const int *copied, int n_in,
                          npy_intp es) {
    npy_intp ld;
    if (!blasable(ob, es, &ld)) return 0;
    for (int j = 0; j < n_in; j++) {
        if (copied[j] || (j == 0 && ins[0].ptr == ob.ptr)) continue;
        if (blocks_overlap(ob, ins[j], es)) return 0;
    }
    return 1;
}

static void layer_norm_row(char **args, npy_intp const *dimensions, npy_intp const *steps,
                           npy_intp i, block2d *ins, block2d *ob) {
    const npy_intp n = dimensions[1];
    const npy_intp x_outer = steps[0], w_outer = steps[1], b_outer = steps[2], out_outer = steps[4];
    const npy_intp x_stride = steps[5], w_stride = steps[6], b_stride = steps[7],
                   out_stride = steps[8];
    ins[0] = block(args[0] + i * x_outer, 1, n, 0, x_stride);
    ins[1] = block(args[1] + i * w_outer, 1, n, 0, w_stride);
    ins[2] = block(args[2] + i * b_outer, 1, n, 0, b_stride);
    *ob = block(args[4] + i * out_outer, 1, n, 0, out_stride);
}

static void layer_norm_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                            void *data) {
    const npy_intp n_outer = dimensions[0], n = dimensions[1];
    const npy_intp eps_outer = steps[3];
    const loop_spec *spec = data;
    const npy_intp es = spec->elsize;
    block2d ins[3], ob;
    layer_norm_row(args, dimensions, steps, 0, ins, &ob);
    const int copied[] = {needs_copy(ins[0], es), needs_copy(ins[1], es), needs_copy(ins[2], es)};
    int out_copy = 0;
    for (npy_intp i = 0; i < n_outer && !out_copy; i++) {
        layer_norm_row(args, dimensions, steps, i, ins, &ob);
        out_copy = !row_out_direct(ob, ins, copied, 3, es);
    }
    const npy_intp pieces[] = {piece(copied[0], n), piece(copied[1], n), piece(copied[2], n),
                               piece(out_copy, n)};  // x, w, b, out copies
    arena a;
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    if (arena_init(&a, spec->name, pieces, n_pieces, es) < 0) return;
    void *xbuf = arena_take(&a, pieces[0], es), *wbuf = arena_take(&a, pieces[1], es),
         *bbuf = arena_take(&a, pieces[2], es), *obuf = arena_take(&a, pieces[3], es);
    for (npy_intp i = 0; i < n_outer; i++) {
        layer_norm_row(args, dimensions, steps, i, ins, &ob);
        const double eps = read_scalar(args[3] + i * eps_outer, es);
        npy_intp ld;
        const void *x = input_view(ins[0], es, xbuf, &ld);
        const void *w = input_view(ins[1], es, wbuf, &ld);
        const void *b = input_view(ins[2], es, bbuf, &ld);
        const int direct = row_out_direct(ob, ins, copied, 3, es);
        void *out = direct ? (void *)ob.ptr : obuf;
        if (es == 4)
            layernorm_forward_f32(out, x, w, b, (float)eps, 1, n, n, n);
        else
            layernorm_forward_f64(out, x, w, b, eps, 1, n, n, n);
        if (!direct) copy_out(ob, obuf, es);
    }
    free(a.base);
}

static void softmax_row(char **args, npy_intp const *dimensions, npy_intp const *steps, npy_intp i,
                        block2d *xb, block2d *ob) {
    const npy_intp n = dimensions[1];
    const npy_intp x_outer = steps[0], out_outer = steps[1];
    const npy_intp x_stride = steps[2], out_stride = steps[3];
    *xb = block(args[0] + i * x_outer, 1, n, 0, x_stride);
    *ob = block(args[1] + i * out_outer, 1, n, 0, out_stride);
}

static void softmax_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                         void *data) {
    const npy_intp n_outer = dimensions[0], n = dimensions[1];
    const loop_spec *spec = data;
    const npy_intp es = spec->elsize;
    block2d xb, ob;
    softmax_row(args, dimensions, steps, 0, &xb, &ob);
    const int copied[] = {needs_copy(xb, es)};
    int out_copy = 0;
    for (npy_intp i = 0; i < n_outer && !out_copy; i++) {
        softmax_row(args, dimensions, steps, i, &xb, &ob);
        out_copy = !row_out_direct(ob, &xb, copied, 1, es);
    }
    const npy_intp pieces[] = {piece(copied[0], n), piece(out_copy, n)};  // x, out copies
    arena a;
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    if (arena_init(&a, spec->name, pieces, n_pieces, es) < 0) return;
    void *xbuf = arena_take(&a, pieces[0], es), *obuf = arena_take(&a, pieces[1], es);
    for (npy_intp i = 0; i < n_outer; i++) {
        softmax_row(args, dimensions, steps, i, &xb, &ob);
        npy_intp ld;
        const void *x = input_view(xb, es, xbuf, &ld);
        const int direct = row_out_direct(ob, &xb, copied, 1, es);
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
// directly when BLAS can write it and it overlaps no input, else through scratch. Scratch holds
// only the copies some item of the call needs.

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

// Where item's output is written: straight into `ob` when BLAS can address it and it overlaps no
// input, else into `obuf` (rows of `width`), which the caller copies out when *direct is 0.
static void *output_target(block2d ob, const block2d *ins, int n_in, npy_intp es, void *obuf,
                           npy_intp width, npy_intp *ld, int *direct) {
    *direct = output_direct(ob, ins, n_in, es, ld);
    if (*direct) return (void *)ob.ptr;
    *ld = width > 0 ? width : 1;
    return obuf;
}

// The blocks of loop item i: inputs (signature order, scalars left out) and the output.
typedef void (*item_blocks_fn)(char **args, npy_intp const *dimensions, npy_intp const *steps,
                               npy_intp i, block2d *ins, block2d *ob);

enum { MAX_GEMM_INPUTS = 5 };

// Whether some item's output has to go through scratch (strided, or overlapping an input there).
static int any_output_copy(item_blocks_fn item, int n_in, char **args, npy_intp const *dimensions,
                           npy_intp const *steps, npy_intp es) {
    block2d ins[MAX_GEMM_INPUTS], ob;
    npy_intp ld;
    for (npy_intp i = 0; i < dimensions[0]; i++) {
        item(args, dimensions, steps, i, ins, &ob);
        if (!output_direct(ob, ins, n_in, es, &ld)) return 1;
    }
    return 0;
}

// The mlp kernel takes packed weights (ld = row length): a strided or padded one is copied.
static int needs_packed_copy(block2d b, npy_intp es) {
    npy_intp ld;
    return !blasable(b, es, &ld) || (b.rows > 1 && ld != b.cols);
}

static void linear_item(char **args, npy_intp const *dimensions, npy_intp const *steps, npy_intp i,
                        block2d *ins, block2d *ob) {
    const npy_intp M = dimensions[1], K = dimensions[2], N = dimensions[3];
    const npy_intp x_outer = steps[0], w_outer = steps[1], b_outer = steps[2], out_outer = steps[3];
    const npy_intp x_m = steps[4], x_k = steps[5], w_n = steps[6], w_k = steps[7], b_n = steps[8],
                   out_m = steps[9], out_n = steps[10];
    ins[0] = block(args[0] + i * x_outer, M, K, x_m, x_k);
    ins[1] = block(args[1] + i * w_outer, N, K, w_n, w_k);
    ins[2] = block(args[2] + i * b_outer, 1, N, 0, b_n);
    *ob = block(args[3] + i * out_outer, M, N, out_m, out_n);
}

static void linear_loop(char **args, npy_intp const *dimensions, npy_intp const *steps,
                        void *data) {
    const npy_intp n_outer = dimensions[0], M = dimensions[1], K = dimensions[2], N = dimensions[3];
    const npy_intp x_outer = steps[0], w_outer = steps[1], b_outer = steps[2];
    const loop_spec *spec = data;
    const npy_intp es = spec->elsize;
    block2d ins[3], ob;
    linear_item(args, dimensions, steps, 0, ins, &ob);
    const int out_copy = any_output_copy(linear_item, 3, args, dimensions, steps, es);
    const npy_intp pieces[] = {piece(needs_copy(ins[0], es), M * K),
                               piece(needs_copy(ins[1], es), N * K),
                               piece(needs_copy(ins[2], es), N), piece(out_copy, M * N)};
    arena a;
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    if (arena_init(&a, spec->name, pieces, n_pieces, es) < 0) return;
    void *xbuf = arena_take(&a, pieces[0], es), *wbuf = arena_take(&a, pieces[1], es),
         *bbuf = arena_take(&a, pieces[2], es), *obuf = arena_take(&a, pieces[3], es);
    for (npy_intp i = 0; i < n_outer && !vitc_stopping(); i++) {
        linear_item(args, dimensions, steps, i, ins, &ob);
        npy_intp ld_x, ld_w, ld_b, ld_out;
        const void *x = cached_input(ins[0], x_outer, i, es, xbuf, &ld_x);
        const void *w = cached_input(ins[1], w_outer, i, es, wbuf, &ld_w);
        const void *b = cached_input(ins[2], b_outer, i, es, bbuf, &ld_b);
        int direct;
        void *out = output_target(ob, ins, 3, es, obuf, N, &ld_out, &direct);
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
    npy_intp const *dimensions, *steps;
    npy_intp S, E, es;
    npy_intp q_outer, k_outer, v_outer, scale_outer;
    const npy_intp *pieces;  // q, k, v, out copies, tile (elements; 0: not needed)
    char *arenas;            // one per thread, arena_bytes apart
    size_t arena_bytes;
} attention_ufunc_job;

static void attention_item(char **args, npy_intp const *dimensions, npy_intp const *steps,
                           npy_intp i, block2d *ins, block2d *ob) {
    const npy_intp S = dimensions[1], D = dimensions[2], T = dimensions[3], E = dimensions[4];
    const npy_intp q_outer = steps[0], k_outer = steps[1], v_outer = steps[2], out_outer = steps[4];
    const npy_intp q_s = steps[5], q_d = steps[6], k_t = steps[7], k_d = steps[8], v_t = steps[9],
                   v_e = steps[10], out_s = steps[11], out_e = steps[12];
    ins[0] = block(args[0] + i * q_outer, S, D, q_s, q_d);
    ins[1] = block(args[1] + i * k_outer, T, D, k_t, k_d);
    ins[2] = block(args[2] + i * v_outer, T, E, v_t, v_e);
    *ob = block(args[4] + i * out_outer, S, E, out_s, out_e);
}

static void attention_items(void *ctx, vitc_int begin, vitc_int end, int tid) {
    const attention_ufunc_job *j = ctx;
    const npy_intp S = j->S, E = j->E, es = j->es;
    const npy_intp D = j->dimensions[2], T = j->dimensions[3];
    arena a = {j->arenas + (size_t)tid * j->arena_bytes, 0};
    void *qbuf = arena_take(&a, j->pieces[0], es), *kbuf = arena_take(&a, j->pieces[1], es),
         *vbuf = arena_take(&a, j->pieces[2], es), *obuf = arena_take(&a, j->pieces[3], es),
         *tile = arena_take(&a, j->pieces[4], es);
    for (npy_intp i = begin; i < end && !vitc_stopping(); i++) {
        block2d ins[3], ob;
        attention_item(j->args, j->dimensions, j->steps, i, ins, &ob);
        const double scale = read_scalar(j->args[3] + i * j->scale_outer, es);
        // A broadcast input (outer stride 0) is copied once per thread, at its first item.
        npy_intp ld_q, ld_k, ld_v, ld_out;
        const void *q = cached_input(ins[0], j->q_outer, i - begin, es, qbuf, &ld_q);
        const void *k = cached_input(ins[1], j->k_outer, i - begin, es, kbuf, &ld_k);
        const void *v = cached_input(ins[2], j->v_outer, i - begin, es, vbuf, &ld_v);
        int direct;
        void *out = output_target(ob, ins, 3, es, obuf, E, &ld_out, &direct);
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
    const loop_spec *spec = data;
    const npy_intp es = spec->elsize;
    block2d ins[3], ob;
    attention_item(args, dimensions, steps, 0, ins, &ob);
    const int out_copy = any_output_copy(attention_item, 3, args, dimensions, steps, es);
    const npy_intp pieces[] = {piece(needs_copy(ins[0], es), S * D),
                               piece(needs_copy(ins[1], es), T * D),
                               piece(needs_copy(ins[2], es), T * E), piece(out_copy, S * E),
                               piece(1, attention_scratch_len(S, T, D, E))};  // q, k, v, out, tile
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    int threads = vitc_get_num_threads();
    if (threads > n_outer) threads = n_outer > 0 ? (int)n_outer : 1;
    arena a;
    if (arena_init_copies(&a, spec->name, pieces, n_pieces, es, threads) < 0) return;
    attention_ufunc_job job = {args, dimensions, steps, S, E, es,
                               steps[0], steps[1], steps[2], steps[3],
                               pieces, a.base, arena_size(pieces, n_pieces, es)};
    vitc_parallel_for(n_outer, threads, attention_items, &job);
    free(a.base);
}

static void mlp_item(char **args, npy_intp const *dimensions, npy_intp const *steps, npy_intp i,
                     block2d *ins, block2d *ob) {
    const npy_intp M = dimensions[1], C = dimensions[2], F = dimensions[3];
    const npy_intp x_outer = steps[0], w1_outer = steps[1], b1_outer = steps[2],
                   w2_outer = steps[3], b2_outer = steps[4], out_outer = steps[5];
    const npy_intp x_m = steps[6], x_c = steps[7], w1_f = steps[8], w1_c = steps[9],
                   b1_f = steps[10], w2_c = steps[11], w2_f = steps[12], b2_c = steps[13],
                   out_m = steps[14], out_c = steps[15];
    ins[0] = block(args[0] + i * x_outer, M, C, x_m, x_c);
    ins[1] = block(args[1] + i * w1_outer, F, C, w1_f, w1_c);
    ins[2] = block(args[2] + i * b1_outer, 1, F, 0, b1_f);
    ins[3] = block(args[3] + i * w2_outer, C, F, w2_c, w2_f);
    ins[4] = block(args[4] + i * b2_outer, 1, C, 0, b2_c);
    *ob = block(args[5] + i * out_outer, M, C, out_m, out_c);
}

static void mlp_loop(char **args, npy_intp const *dimensions, npy_intp const *steps, void *data) {
    const npy_intp n_outer = dimensions[0], M = dimensions[1], C = dimensions[2], F = dimensions[3];
    const npy_intp x_outer = steps[0], w1_outer = steps[1], b1_outer = steps[2],
                   w2_outer = steps[3], b2_outer = steps[4];
    const loop_spec *spec = data;
    const npy_intp es = spec->elsize;
    block2d ins[5], ob;
    mlp_item(args, dimensions, steps, 0, ins, &ob);
    const int copy_w1 = needs_packed_copy(ins[1], es), copy_w2 = needs_packed_copy(ins[3], es);
    const int out_copy = any_output_copy(mlp_item, 5, args, dimensions, steps, es);
    const npy_intp pieces[] = {piece(needs_copy(ins[0], es), M * C), piece(copy_w1, F * C),
                               piece(needs_copy(ins[2], es), F), piece(copy_w2, C * F),
                               piece(needs_copy(ins[4], es), C),
                               piece(out_copy, M * C),
                               piece(1, mlp_scratch_len(M, F))};  // x, w1, b1, w2, b2, out, hidden
    arena a;
    const int n_pieces = (int)(sizeof(pieces) / sizeof(pieces[0]));
    if (arena_init(&a, spec->name, pieces, n_pieces, es) < 0) return;
    void *xbuf = arena_take(&a, pieces[0], es), *w1buf = arena_take(&a, pieces[1], es),
         *b1buf = arena_take(&a, pieces[2], es), *w2buf = arena_take(&a, pieces[3], es),
         *b2buf = arena_take(&a, pieces[4], es), *obuf = arena_take(&a, pieces[5], es),
         *hidden = arena_take(&a, pieces[6], es);
    for (npy_intp i = 0; i < n_outer && !vitc_stopping(); i++) {
        mlp_item(args, dimensions, steps, i, ins, &ob);
        npy_intp ld_x, ld_b1, ld_b2, ld_out;
        const void *x = cached_input(ins[0], x_outer, i, es, xbuf, &ld_x);
        const void *b1 = cached_input(ins[2], b1_outer, i, es, b1buf, &ld_b1);
        const void *b2 = cached_input(ins[4], b2_outer, i, es, b2buf, &ld_b2);
        // Packed weights are read in place, others from a copy (made once if broadcast).
        const void *w1 = copy_w1 ? w1buf : ins[1].ptr, *w2 = copy_w2 ? w2buf : ins[3].ptr;
        if (copy_w1 && (i == 0 || w1_outer != 0)) copy_in(w1buf, ins[1], es);
        if (copy_w2 && (i == 0 || w2_outer != 0)) copy_in(w2buf, ins[3], es);
        int direct;
        void *out = output_target(ob, ins, 5, es, obuf, C, &ld_out, &direct);
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

// The interpreter began exiting during a loop (threads.h): the kernels stopped early, so the
// output is incomplete; say so instead of returning it (in a daemon thread, at exit).
static void loop_exiting(const char *name) {
    PyGILState_STATE st = PyGILState_Ensure();
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_RuntimeError, "%s: stopped: the interpreter is exiting", name);
    PyGILState_Release(st);
}

// Every loop counts as busy while it runs, so the exit hook waits for it to leave vitc's code.
#define GUARDED_LOOP(loop)                                                                        \
    static void loop##_guarded(char **args, npy_intp const *dimensions, npy_intp const *steps,    \
                               void *data) {                                                      \
        vitc_busy_enter();                                                                        \
        loop(args, dimensions, steps, data);                                                      \
        vitc_busy_leave();                                                                        \
        if (vitc_exiting()) loop_exiting(((const loop_spec *)data)->name);                       \
    }
GUARDED_LOOP(gelu_loop)
GUARDED_LOOP(gelu_tanh_loop)
GUARDED_LOOP(layer_norm_loop)
GUARDED_LOOP(softmax_loop)
GUARDED_LOOP(linear_loop)
GUARDED_LOOP(attention_loop)
GUARDED_LOOP(mlp_loop)

static PyUFuncGenericFunction gelu_funcs[] = {gelu_loop_guarded, gelu_loop_guarded};
static PyUFuncGenericFunction gelu_tanh_funcs[] = {gelu_tanh_loop_guarded, gelu_tanh_loop_guarded};
static PyUFuncGenericFunction layer_norm_funcs[] = {layer_norm_loop_guarded, layer_norm_loop_guarded};
static PyUFuncGenericFunction softmax_funcs[] = {softmax_loop_guarded, softmax_loop_guarded};
static PyUFuncGenericFunction linear_funcs[] = {linear_loop_guarded, linear_loop_guarded};
static PyUFuncGenericFunction attention_funcs[] = {attention_loop_guarded, attention_loop_guarded};
static PyUFuncGenericFunction mlp_funcs[] = {mlp_loop_guarded, mlp_loop_guarded};

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
    "float32 and float64; as torch.nn.functional.gelu: gelu(inf) = inf, gelu(-inf) = NaN,\n"
    "NaN propagates.";
static const char DOC_GELU_TANH[] =
    "gelu_tanh(x, /, out=None, **kwargs)\n\n"
    "tanh-approximated GELU, 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))),\n"
    "element-wise (HF \"gelu_new\", \"gelu_pytorch_tanh\"). float32 and float64; as torch:\n"
    "gelu_tanh(inf) = inf, gelu_tanh(-inf) = NaN, NaN propagates.";
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

// NumPy builds a ufunc's __doc__ as its generic signature line ("layer_norm(x1, x2, x3, x4, /,
// ...") followed by the doc given at creation; vitc's docs start with the real call signature.
// NumPy >= 2.2 gives ufuncs a __dict__ whose "__doc__" entry replaces that text; older NumPy keeps
// its own.
static int set_ufunc_doc(PyObject *uf, const char *doc) {
    PyObject *dict = PyObject_GetAttrString(uf, "__dict__");
    if (dict == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
        PyErr_Clear();  // NumPy < 2.2: no __dict__, the generated __doc__ stays
        return 0;
    }
    PyObject *text = PyUnicode_FromString(doc);
    const int rc = text == NULL ? -1 : PyDict_SetItemString(dict, "__doc__", text);
    Py_XDECREF(text);
    Py_DECREF(dict);
    return rc;
}

int vitc_register_ufuncs(PyObject *module) {
    PyObject *uf = NULL;
    for (size_t i = 0; i < sizeof(UFUNCS) / sizeof(UFUNCS[0]); i++) {
        const ufunc_def *d = &UFUNCS[i];
        const int ntypes = 2;  // float32, float64 (one entry per *_funcs element)
        uf = PyUFunc_FromFuncAndDataAndSignature(d->funcs, d->data, (char *)d->types, ntypes, d->nin,
                                                 1, PyUFunc_None, d->name, d->doc, 0, d->signature);
        if (uf == NULL) goto fail;
        PyUFuncObject *u = (PyUFuncObject *)uf;
        u->type_resolver = vitc_type_resolver;
        if (d->check_dims) u->process_core_dims_func = d->check_dims;
        if (set_ufunc_doc(uf, d->doc) < 0) goto fail;
        if (PyModule_AddObjectRef(module, d->name, uf) < 0) goto fail;
        Py_CLEAR(uf);
    }
    return 0;
fail:
    Py_XDECREF(uf);
    return -1;
}
