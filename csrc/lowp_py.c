// lowp_py.c: private Python hooks (vitc._core._pack_bf16, _linear_bf16, _pack_int8, _linear_int8,
// _attention_bf16) to test and benchmark the reduced-precision kernels (kernels/gemm_bf16.c,
// gemm_int8.c, attention_amx.c). Not the user API and not the model wiring: every argument is checked here
// so a caller cannot make the kernels read or write out of bounds; compute runs without the GIL.
#include "vitc_py.h"

#include "kernels/kernels.h"
#include "threads.h"

// An aligned C-contiguous array of `type` with ndim dimensions (ndim < 0: any), or NULL with
// ValueError/TypeError naming the function and argument.
static PyArrayObject *checked_array(PyObject *obj, const char *fn, const char *arg, int type,
                                    const char *type_name, int ndim) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s: expected a numpy array, got %s", fn, arg,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (PyArray_TYPE(arr) != type) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected dtype %s, got %S", fn, arg, type_name,
                     (PyObject *)PyArray_DESCR(arr));
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr)) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected an aligned C-contiguous array", fn, arg);
        return NULL;
    }
    if (ndim >= 0 && PyArray_NDIM(arr) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected %d dimensions, got %d", fn, arg, ndim,
                     PyArray_NDIM(arr));
        return NULL;
    }
    return arr;
}

static int check_size(PyArrayObject *arr, const char *fn, const char *arg, npy_intp want) {
    if (PyArray_SIZE(arr) != want) {
        PyErr_Format(PyExc_ValueError, "%s: %s: expected %zd elements, got %zd", fn, arg,
                     (Py_ssize_t)want, (Py_ssize_t)PyArray_SIZE(arr));
        return -1;
    }
    return 0;
}

// The MLP activations (the blocks' GEMMs are what these kernels serve).
static int check_act(int act, const char *fn) {
    if (act < VITC_ACT_NONE || act > VITC_ACT_RELU) {
        PyErr_Format(PyExc_ValueError, "%s: act: expected 0..%d, got %d", fn, VITC_ACT_RELU, act);
        return -1;
    }
    return 0;
}

static int check_dims(Py_ssize_t N, Py_ssize_t K, const char *fn) {
    if (N < 1 || K < 1 || N > (Py_ssize_t)1 << 30 || K > (Py_ssize_t)1 << 30) {
        PyErr_Format(PyExc_ValueError, "%s: expected 1 <= N, K <= 2**30, got N=%zd K=%zd", fn, N,
                     K);
        return -1;
    }
    return 0;
}

// 1-D array of `n` elements, or NULL with MemoryError.
static PyArrayObject *new_1d(npy_intp n, int type) {
    npy_intp dims[1] = {n};
    return (PyArrayObject *)PyArray_SimpleNew(1, dims, type);
}

// x (M,K) float32 and the optional bias (N) float32, shared by both linear hooks.
static int linear_inputs(PyObject *x_obj, PyObject *b_obj, Py_ssize_t N, Py_ssize_t K,
                         const char *fn, PyArrayObject **x, const float **b) {
    *x = checked_array(x_obj, fn, "x", NPY_FLOAT32, "float32", 2);
    if (!*x) return -1;
    if (PyArray_DIM(*x, 1) != K) {
        PyErr_Format(PyExc_ValueError, "%s: x: expected (M, %zd), got (%zd, %zd)", fn, K,
                     (Py_ssize_t)PyArray_DIM(*x, 0), (Py_ssize_t)PyArray_DIM(*x, 1));
        return -1;
    }
    *b = NULL;
    if (b_obj != Py_None) {
        PyArrayObject *barr = checked_array(b_obj, fn, "b", NPY_FLOAT32, "float32", 1);
        if (!barr || check_size(barr, fn, "b", N) < 0) return -1;
        *b = (const float *)PyArray_DATA(barr);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// bf16

// _pack_bf16(w (N,K) float32) -> uint16 (pack_bf16_len(N,K))
PyObject *vitc_py_pack_bf16(PyObject *self, PyObject *w_obj) {
    (void)self;
    PyArrayObject *w = checked_array(w_obj, "_pack_bf16", "w", NPY_FLOAT32, "float32", 2);
    if (!w) return NULL;
    const Py_ssize_t N = PyArray_DIM(w, 0), K = PyArray_DIM(w, 1);
    if (check_dims(N, K, "_pack_bf16") < 0) return NULL;
    PyArrayObject *packed = new_1d(pack_bf16_len(N, K), NPY_UINT16);
    if (!packed) return NULL;
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();  // the exit hook waits for busy calls
    pack_weights_bf16((uint16_t *)PyArray_DATA(packed), (const float *)PyArray_DATA(w), N, K);
    vitc_busy_leave();
    Py_END_ALLOW_THREADS
    return (PyObject *)packed;
}

// _linear_bf16(x (M,K), w_packed, N, K, b (N) or None, act) -> out (M,N) float32
PyObject *vitc_py_linear_bf16(PyObject *self, PyObject *args) {
    (void)self;
    const char *fn = "_linear_bf16";
    PyObject *x_obj, *w_obj, *b_obj;
    Py_ssize_t N, K;
    int act;
    if (!PyArg_ParseTuple(args, "OOnnOi", &x_obj, &w_obj, &N, &K, &b_obj, &act)) return NULL;
    if (check_dims(N, K, fn) < 0 || check_act(act, fn) < 0) return NULL;
    PyArrayObject *x;
    const float *b;
    if (linear_inputs(x_obj, b_obj, N, K, fn, &x, &b) < 0) return NULL;
    PyArrayObject *w = checked_array(w_obj, fn, "w_packed", NPY_UINT16, "uint16", 1);
    if (!w || check_size(w, fn, "w_packed", pack_bf16_len(N, K)) < 0) return NULL;
    if ((size_t)PyArray_DATA(w) % 4 != 0) {
        PyErr_Format(PyExc_ValueError, "%s: w_packed: expected a 4-byte aligned array", fn);
        return NULL;
    }
    const Py_ssize_t M = PyArray_DIM(x, 0);
    npy_intp out_dims[2] = {M, N};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, out_dims, NPY_FLOAT32);
    if (!out) return NULL;
    PyArrayObject *scratch = new_1d(linear_bf16_scratch_len(M, K), NPY_UINT16);
    if (!scratch) {
        Py_DECREF(out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();  // the exit hook waits for busy calls
    linear_bf16_forward((float *)PyArray_DATA(out), (const float *)PyArray_DATA(x),
                        (const uint16_t *)PyArray_DATA(w), b, (vitc_act)act, M, N, K, N, K,
                        (uint16_t *)PyArray_DATA(scratch));
    vitc_busy_leave();
    Py_END_ALLOW_THREADS
    Py_DECREF(scratch);
    return (PyObject *)out;
}

// ---------------------------------------------------------------------------------------------
// int8

// _pack_int8(w (N,K) float32) -> (packed int8 (pack_int8_len), scales float32 (N),
//                                 col_sums int32 (N))
PyObject *vitc_py_pack_int8(PyObject *self, PyObject *w_obj) {
    (void)self;
    PyArrayObject *w = checked_array(w_obj, "_pack_int8", "w", NPY_FLOAT32, "float32", 2);
    if (!w) return NULL;
    const Py_ssize_t N = PyArray_DIM(w, 0), K = PyArray_DIM(w, 1);
    if (check_dims(N, K, "_pack_int8") < 0) return NULL;
    PyArrayObject *packed = new_1d(pack_int8_len(N, K), NPY_INT8);
    PyArrayObject *scales = new_1d(N, NPY_FLOAT32);
    PyArrayObject *sums = new_1d(N, NPY_INT32);
    if (!packed || !scales || !sums) goto fail;
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();  // the exit hook waits for busy calls
    pack_weights_int8((int8_t *)PyArray_DATA(packed), (float *)PyArray_DATA(scales),
                      (int32_t *)PyArray_DATA(sums), (const float *)PyArray_DATA(w), N, K);
    vitc_busy_leave();
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(NNN)", packed, scales, sums);
fail:
    Py_XDECREF(packed);
    Py_XDECREF(scales);
    Py_XDECREF(sums);
    return NULL;
}

// _linear_int8(x (M,K), packed, scales (N), col_sums (N), N, K, b (N) or None, act) -> out (M,N)
PyObject *vitc_py_linear_int8(PyObject *self, PyObject *args) {
    (void)self;
    const char *fn = "_linear_int8";
    PyObject *x_obj, *w_obj, *s_obj, *cs_obj, *b_obj;
    Py_ssize_t N, K;
    int act;
    if (!PyArg_ParseTuple(args, "OOOOnnOi", &x_obj, &w_obj, &s_obj, &cs_obj, &N, &K, &b_obj, &act))
        return NULL;
    if (check_dims(N, K, fn) < 0 || check_act(act, fn) < 0) return NULL;
    PyArrayObject *x;
    const float *b;
    if (linear_inputs(x_obj, b_obj, N, K, fn, &x, &b) < 0) return NULL;
    PyArrayObject *w = checked_array(w_obj, fn, "packed", NPY_INT8, "int8", 1);
    if (!w || check_size(w, fn, "packed", pack_int8_len(N, K)) < 0) return NULL;
    PyArrayObject *scales = checked_array(s_obj, fn, "scales", NPY_FLOAT32, "float32", 1);
    if (!scales || check_size(scales, fn, "scales", N) < 0) return NULL;
    PyArrayObject *sums = checked_array(cs_obj, fn, "col_sums", NPY_INT32, "int32", 1);
    if (!sums || check_size(sums, fn, "col_sums", N) < 0) return NULL;
    const Py_ssize_t M = PyArray_DIM(x, 0);
    npy_intp out_dims[2] = {M, N};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, out_dims, NPY_FLOAT32);
    if (!out) return NULL;
    // int32 elements: the kernel wants 4-byte alignment for the row scales.
    PyArrayObject *scratch = new_1d((linear_int8_scratch_len(M, K) + 3) / 4, NPY_INT32);
    if (!scratch) {
        Py_DECREF(out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();  // the exit hook waits for busy calls
    linear_int8_forward((float *)PyArray_DATA(out), (const float *)PyArray_DATA(x),
                        (const int8_t *)PyArray_DATA(w), (const float *)PyArray_DATA(scales),
                        (const int32_t *)PyArray_DATA(sums), b, (vitc_act)act, M, N, K, N, K,
                        (uint8_t *)PyArray_DATA(scratch));
    vitc_busy_leave();
    Py_END_ALLOW_THREADS
    Py_DECREF(scratch);
    return (PyObject *)out;
}

// ---------------------------------------------------------------------------------------------
// bf16 attention

// _attention_bf16(q (S,D), k (T,D), v (T,D) float32, scale) -> out (S,D) float32.
// RuntimeError where no bf16 attention runs (no AMX nor AVX-512 BF16 and no emulation, or D not
// 32 or 64).
PyObject *vitc_py_attention_bf16(PyObject *self, PyObject *args) {
    (void)self;
    const char *fn = "_attention_bf16";
    PyObject *q_obj, *k_obj, *v_obj;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOf", &q_obj, &k_obj, &v_obj, &scale)) return NULL;
    PyArrayObject *q = checked_array(q_obj, fn, "q", NPY_FLOAT32, "float32", 2);
    PyArrayObject *k = q ? checked_array(k_obj, fn, "k", NPY_FLOAT32, "float32", 2) : NULL;
    PyArrayObject *v = k ? checked_array(v_obj, fn, "v", NPY_FLOAT32, "float32", 2) : NULL;
    if (!v) return NULL;
    const Py_ssize_t S = PyArray_DIM(q, 0), D = PyArray_DIM(q, 1), T = PyArray_DIM(k, 0);
    if (PyArray_DIM(k, 1) != D || PyArray_DIM(v, 0) != T || PyArray_DIM(v, 1) != D || T < 1) {
        PyErr_Format(PyExc_ValueError, "%s: expected q (S, D), k and v (T, D) with T >= 1", fn);
        return NULL;
    }
    if (!attention_bf16_supported(D)) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: the bf16 attention does not run here (D=%zd; needs AMX or AVX-512 BF16, "
                     "and D 32 or 64)",
                     fn, D);
        return NULL;
    }
    npy_intp out_dims[2] = {S, D};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, out_dims, NPY_FLOAT32);
    if (!out) return NULL;
    PyArrayObject *scratch = new_1d(attention_bf16_scratch_bytes(T, D), NPY_UINT8);
    if (!scratch) {
        Py_DECREF(out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();  // the exit hook waits for busy calls
    attention_forward_bf16((float *)PyArray_DATA(out), (const float *)PyArray_DATA(q),
                           (const float *)PyArray_DATA(k), (const float *)PyArray_DATA(v), scale,
                           S, T, D, D, D, D, D, PyArray_DATA(scratch));
    vitc_busy_leave();
    Py_END_ALLOW_THREADS
    Py_DECREF(scratch);
    return (PyObject *)out;
}

// _set_attention_emulation(on: bool) -> None (kernels.h attention_bf16_set_emulation).
PyObject *vitc_py_set_attention_emulation(PyObject *self, PyObject *on) {
    (void)self;
    if (!PyBool_Check(on)) {
        PyErr_Format(PyExc_TypeError, "_set_attention_emulation: expected a bool, got %s",
                     Py_TYPE(on)->tp_name);
        return NULL;
    }
    attention_bf16_set_emulation(on == Py_True);
    Py_RETURN_NONE;
}
