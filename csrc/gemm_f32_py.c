// gemm_f32_py.c: private Python hooks (vitc._core._gemm_f32_pack, _gemm_f32) to test and
// benchmark the fp32 GEMM of kernels/gemm_f32.c. Not the user API and not the model wiring: every
// argument is checked here so a caller cannot make the kernel read or write out of bounds;
// compute runs without the GIL.
#include "vitc_py.h"  // first: Python.h before any system header

#include <string.h>

#include "cpu.h"
#include "kernels/gemm_f32.h"
#include "threads.h"

// Largest N or K accepted: sizes and offsets stay far from overflow.
static const Py_ssize_t MAX_DIM = (Py_ssize_t)1 << 30;

// A float32 array of `ndim` dimensions whose rows are contiguous (unit inner stride, row stride a
// whole number of floats, not negative), aligned; NULL with TypeError/ValueError otherwise.
static PyArrayObject *f32_rows(PyObject *obj, const char *fn, const char *arg, int ndim,
                               int writeable) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected a numpy array, got %s", fn, arg,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected dtype float32, got %S", fn, arg,
                     (PyObject *)PyArray_DESCR(a));
        return NULL;
    }
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected %d dimensions, got %d", fn, arg, ndim,
                     PyArray_NDIM(a));
        return NULL;
    }
    if (writeable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected a writeable array", fn, arg);
        return NULL;
    }
    if (PyArray_SIZE(a) == 0 && PyArray_ISALIGNED(a)) return a;  // no element is read or written
    const npy_intp *st = PyArray_STRIDES(a), *dims = PyArray_DIMS(a);
    const int inner_ok = dims[ndim - 1] <= 1 || st[ndim - 1] == (npy_intp)sizeof(float);
    const int rows_ok =
        ndim == 1 || dims[0] <= 1 ||
        (st[0] % (npy_intp)sizeof(float) == 0 && st[0] >= dims[1] * (npy_intp)sizeof(float));
    if (!PyArray_ISALIGNED(a) || !inner_ok || !rows_ok) {
        const char *align = PyArray_ISALIGNED(a) ? "" : "unaligned, ";
        if (ndim == 1)
            PyErr_Format(PyExc_ValueError,
                         "%s: %s: expected an aligned contiguous float32 array, got %sstride %zd",
                         fn, arg, align, (Py_ssize_t)st[0]);
        else
            PyErr_Format(PyExc_ValueError,
                         "%s: %s: expected an aligned float32 array with contiguous rows (byte "
                         "strides (>= 4 * columns, 4)), got %sstrides (%zd, %zd)",
                         fn, arg, align, (Py_ssize_t)st[0], (Py_ssize_t)st[1]);
        return NULL;
    }
    return a;
}

// Row stride in floats (the kernel's ld), at least `min_ld` for arrays of 0 or 1 row.
static vitc_int row_ld(PyArrayObject *a, vitc_int min_ld) {
    if (PyArray_DIM(a, 0) <= 1 || PyArray_SIZE(a) == 0) return min_ld > 1 ? min_ld : 1;
    return (vitc_int)(PyArray_STRIDE(a, 0) / (npy_intp)sizeof(float));
}

// [lo, hi) bytes an array's elements span (empty arrays span nothing).
static void byte_span(PyArrayObject *a, char **lo, char **hi) {
    char *p = PyArray_DATA(a);
    *lo = *hi = p;
    if (PyArray_SIZE(a) == 0) return;
    npy_intp last = 0;
    for (int d = 0; d < PyArray_NDIM(a); d++)
        last += (PyArray_DIM(a, d) - 1) * PyArray_STRIDE(a, d);
    *hi = p + last + (npy_intp)sizeof(float);
}

static int overlaps(PyArrayObject *a, PyArrayObject *b) {
    char *alo, *ahi, *blo, *bhi;
    byte_span(a, &alo, &ahi);
    byte_span(b, &blo, &bhi);
    return alo < bhi && blo < ahi;
}

// _gemm_f32_pack(w (N,K) float32) -> packed float32 (gemm_f32_packed_len(N,K)), 64-byte aligned
PyObject *vitc_py_gemm_f32_pack(PyObject *self, PyObject *w_obj) {
    (void)self;
    const char *fn = "_gemm_f32_pack";
    PyArrayObject *w = f32_rows(w_obj, fn, "w", 2, 0);
    if (!w) return NULL;
    const Py_ssize_t N = PyArray_DIM(w, 0), K = PyArray_DIM(w, 1);
    if (N > MAX_DIM || K > MAX_DIM) {
        PyErr_Format(PyExc_ValueError, "%s: expected N, K <= 2**30, got N=%zd K=%zd", fn, N, K);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(w)) {
        PyErr_Format(PyExc_ValueError, "%s: w: expected a C-contiguous array", fn);
        return NULL;
    }
    // 16 floats more than needed: the returned view starts at the first 64-byte boundary.
    const npy_intp len = gemm_f32_packed_len(N, K);
    npy_intp base_dims[1] = {len + 16};
    PyArrayObject *base = (PyArrayObject *)PyArray_SimpleNew(1, base_dims, NPY_FLOAT32);
    if (!base) return NULL;
    const size_t off = (64 - (size_t)PyArray_DATA(base) % 64) % 64 / sizeof(float);
    float *packed = (float *)PyArray_DATA(base) + off;
    npy_intp dims[1] = {len};
    PyArrayObject *view =
        (PyArrayObject *)PyArray_NewFromDescr(&PyArray_Type, PyArray_DescrFromType(NPY_FLOAT32), 1,
                                              dims, NULL, packed, NPY_ARRAY_CARRAY, NULL);
    if (!view) {
        Py_DECREF(base);
        return NULL;
    }
    if (PyArray_SetBaseObject(view, (PyObject *)base) < 0) {  // steals base, even on failure
        Py_DECREF(view);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS gemm_f32_pack(packed, (const float *)PyArray_DATA(w), N, K);
    Py_END_ALLOW_THREADS return (PyObject *)view;
}

// The code of the tier named `obj` (None: the active tier's; "avx512_shape": the test-only AVX-512
// tile shape on AVX2 instructions), or -1 with ValueError.
static int parse_tier(PyObject *obj, const char *fn) {
    if (obj == Py_None) return (int)gemm_f32_code_now();
    const char *name = PyUnicode_Check(obj) ? PyUnicode_AsUTF8(obj) : NULL;
    if (name == NULL && PyErr_Occurred()) return -1;
    vitc_tier tier;
    if (name && strcmp(name, "avx512_shape") == 0 && gemm_f32_code_runs(GEMM_F32_AVX512_SHAPE) &&
        vitc_max_tier() >= VITC_TIER_AVX2)
        return GEMM_F32_AVX512_SHAPE;
    if (name && vitc_tier_parse(name, &tier) == 0 && tier <= vitc_max_tier())
        return (int)gemm_f32_code_at(tier);
    PyErr_Format(PyExc_ValueError,
                 "%s: tier: expected None, a tier of supported_tiers() or 'avx512_shape', got %R",
                 fn, obj);
    return -1;
}

// Column boundaries from `splits` (None: no explicit split): 0 < s1 < ... < N, multiples of 16.
// Fills bounds[0..*count] with 0, s1, ..., N; returns 0, or -1 with an exception.
static int parse_splits(PyObject *obj, Py_ssize_t N, const char *fn, Py_ssize_t **bounds,
                        Py_ssize_t *count) {
    *bounds = NULL;
    *count = 0;
    if (obj == Py_None) return 0;
    PyObject *seq = PySequence_Fast(obj, "_gemm_f32: splits: expected a sequence of ints");
    if (!seq) return -1;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t *b = PyMem_Malloc((size_t)(n + 2) * sizeof(Py_ssize_t));
    if (!b) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    b[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const Py_ssize_t s = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i));
        if (s == -1 && PyErr_Occurred()) goto fail;
        if (s <= b[i] || s >= N || s % GEMM_F32_NR != 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s: splits: expected increasing multiples of 16 in (0, N=%zd), got %zd "
                         "after %zd",
                         fn, N, s, b[i]);
            goto fail;
        }
        b[i + 1] = s;
    }
    b[n + 1] = N;
    Py_DECREF(seq);
    *bounds = b;
    *count = n + 1;
    return 0;
fail:
    Py_DECREF(seq);
    PyMem_Free(b);
    return -1;
}

// _gemm_f32(x (M,K), packed, b (N) or None, act, residual_out (M,N) or None, N, *, tier=None,
//           splits=None) -> out (M,N): act(x . w^T + b), or residual_out += x . w^T + b in place
// (then returned). tier: a name from _gemm_f32_tiers() (None: the current choice), or
// "avx512_shape" (test only: the AVX-512 tile shape on AVX2 instructions). splits: column
// boundaries run one after another on this thread; None: columns split over vitc's threads.
PyObject *vitc_py_gemm_f32(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    const char *fn = "_gemm_f32";
    static char *kwlist[] = {"x", "packed", "b",      "act", "residual_out",
                             "N", "tier",   "splits", NULL};
    PyObject *x_obj, *p_obj, *b_obj, *r_obj, *tier_obj = Py_None, *splits_obj = Py_None;
    int act;
    Py_ssize_t N;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOiOn|$OO", kwlist, &x_obj, &p_obj, &b_obj,
                                     &act, &r_obj, &N, &tier_obj, &splits_obj))
        return NULL;
    PyArrayObject *x = f32_rows(x_obj, fn, "x", 2, 0);
    if (!x) return NULL;
    const Py_ssize_t M = PyArray_DIM(x, 0), K = PyArray_DIM(x, 1);
    if (N < 0 || N > MAX_DIM || K > MAX_DIM) {
        PyErr_Format(PyExc_ValueError, "%s: expected 0 <= N, K <= 2**30, got N=%zd K=%zd", fn, N,
                     K);
        return NULL;
    }
    if (act < VITC_ACT_NONE || act > VITC_ACT_RELU) {
        PyErr_Format(PyExc_ValueError, "%s: act: expected 0..4, got %d", fn, act);
        return NULL;
    }
    PyArrayObject *packed = f32_rows(p_obj, fn, "packed", 1, 0);
    if (!packed) return NULL;
    if (PyArray_SIZE(packed) != gemm_f32_packed_len(N, K)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: packed: expected %zd floats (N=%zd, K=%zd packed by _gemm_f32_pack), "
                     "got %zd",
                     fn, (Py_ssize_t)gemm_f32_packed_len(N, K), N, K,
                     (Py_ssize_t)PyArray_SIZE(packed));
        return NULL;
    }
    PyArrayObject *bias = NULL;
    if (b_obj != Py_None) {
        bias = f32_rows(b_obj, fn, "b", 1, 0);
        if (!bias) return NULL;
        if (PyArray_DIM(bias, 0) != N) {
            PyErr_Format(PyExc_ValueError, "%s: b: expected %zd elements (N), got %zd", fn, N,
                         (Py_ssize_t)PyArray_DIM(bias, 0));
            return NULL;
        }
    }
    const int residual = r_obj != Py_None;
    PyArrayObject *out;
    if (residual) {
        if (act != VITC_ACT_NONE) {
            PyErr_Format(PyExc_ValueError,
                         "%s: act: expected 0 with a residual_out (no activation after a residual "
                         "add), got %d",
                         fn, act);
            return NULL;
        }
        out = f32_rows(r_obj, fn, "residual_out", 2, 1);
        if (!out) return NULL;
        if (PyArray_DIM(out, 0) != M || PyArray_DIM(out, 1) != N) {
            PyErr_Format(PyExc_ValueError, "%s: residual_out: expected (%zd, %zd), got (%zd, %zd)",
                         fn, M, N, (Py_ssize_t)PyArray_DIM(out, 0),
                         (Py_ssize_t)PyArray_DIM(out, 1));
            return NULL;
        }
        if (overlaps(out, x) || overlaps(out, packed) || (bias && overlaps(out, bias))) {
            PyErr_Format(PyExc_ValueError,
                         "%s: residual_out: expected memory apart from x, packed and b, got an "
                         "overlap",
                         fn);
            return NULL;
        }
        Py_INCREF(out);
    } else {
        npy_intp dims[2] = {M, N};
        out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
        if (!out) return NULL;
    }
    const int tier = parse_tier(tier_obj, fn);
    Py_ssize_t *bounds = NULL, nranges = 0;
    if (tier < 0 || parse_splits(splits_obj, N, fn, &bounds, &nranges) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    const int threads = bounds ? 1 : vitc_get_num_threads();
    const vitc_int per_thread = gemm_f32_scratch_len(M, N, K);
    float *scratch = NULL;
    if (per_thread > 0) {
        if ((size_t)per_thread > PY_SSIZE_T_MAX / sizeof(float) / (size_t)threads ||
            !(scratch = PyMem_RawMalloc((size_t)per_thread * (size_t)threads * sizeof(float)))) {
            PyMem_Free(bounds);
            Py_DECREF(out);
            return PyErr_NoMemory();
        }
    }
    float *o = PyArray_DATA(out);
    const float *xd = PyArray_DATA(x), *pd = PyArray_DATA(packed);
    const float *bd = bias ? PyArray_DATA(bias) : NULL;
    const vitc_int ld_out = row_ld(out, N), ld_x = row_ld(x, K);
    Py_BEGIN_ALLOW_THREADS if (bounds) for (Py_ssize_t i = 0; i < nranges; i++)
        gemm_f32_forward_cols_code((gemm_f32_code)tier, o, xd, pd, bd, (vitc_act)act, residual,
                                   M, N, K, bounds[i], bounds[i + 1], ld_out, ld_x, scratch);
    else gemm_f32_forward_parallel_code((gemm_f32_code)tier, o, xd, pd, bd, (vitc_act)act,
                                        residual, M, N, K, ld_out, ld_x, threads, scratch);
    Py_END_ALLOW_THREADS PyMem_RawFree(scratch);
    PyMem_Free(bounds);
    return (PyObject *)out;
}
