// forward_py.c: vitc._core.vit_forward, the Python entry to vit_forward.c.
// It checks every array it is handed (dtype, contiguity, size) so no caller can make the C
// forward read or write out of bounds, then runs the forward with the GIL released.
// Not the user API: vitc/model.py builds the arguments.
#include "vitc_py.h"

#include "vit_forward.h"

// Per-block weights in the order vitc/model.py passes them.
enum { BLOCK_NORM1_W, BLOCK_NORM1_B, BLOCK_QKV_W, BLOCK_QKV_B, BLOCK_PROJ_W, BLOCK_PROJ_B,
       BLOCK_NORM2_W, BLOCK_NORM2_B, BLOCK_FC1_W, BLOCK_FC1_B, BLOCK_FC2_W, BLOCK_FC2_B,
       BLOCK_NTENSORS };
// Model-level weights, followed by L * BLOCK_NTENSORS block weights.
enum { MODEL_PATCH_W, MODEL_PATCH_B, MODEL_CLS, MODEL_POS, MODEL_NORM_W, MODEL_NORM_B,
       MODEL_HEAD_W, MODEL_HEAD_B, MODEL_POOL_W, MODEL_POOL_B, MODEL_NTENSORS };

// The data of an aligned C-contiguous array of `type` with exactly `count` elements (writeable if
// asked), or NULL with an exception naming `what` `index` and what was expected.
static void *typed_array(PyObject *obj, int type, const char *type_name, const char *what,
                         Py_ssize_t index, npy_intp count, int writeable) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "vit_forward: %s %zd: expected a numpy array, got %s", what,
                     index, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (PyArray_TYPE(arr) != type || !PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) ||
        PyArray_SIZE(arr) != count || (writeable && !PyArray_ISWRITEABLE(arr))) {
        PyErr_Format(PyExc_ValueError,
                     "vit_forward: %s %zd: expected an aligned C-contiguous%s %s array of %zd "
                     "elements, got %zd",
                     what, index, writeable ? " writeable" : "", type_name, (Py_ssize_t)count,
                     (Py_ssize_t)PyArray_SIZE(arr));
        return NULL;
    }
    return PyArray_DATA(arr);
}

// A float32 array of exactly `count` elements; `obj` may be None when `optional` (*data NULL).
static int as_f32(PyObject *obj, const char *what, Py_ssize_t index, npy_intp count, int optional,
                  int writeable, float **data) {
    *data = NULL;
    if (obj == Py_None) {
        if (optional) return 0;
        PyErr_Format(PyExc_ValueError, "vit_forward: %s %zd is required, got None", what, index);
        return -1;
    }
    *data = typed_array(obj, NPY_FLOAT32, "float32", what, index, count, writeable);
    return *data ? 0 : -1;
}

static int weight(PyObject *weights, Py_ssize_t i, npy_intp count, int optional, const float **out) {
    float *data;
    if (as_f32(PyTuple_GET_ITEM(weights, i), "weight", i, count, optional, 0, &data) < 0) return -1;
    *out = data;
    return 0;
}

// A block's (N, K) weight matrix in the model's precision: float32 (N, K); bf16 packed as uint16;
// int8 as a tuple (packed int8, float32 scales (N), int32 col_sums (N)).
static int gemm_weight(PyObject *weights, Py_ssize_t i, vitc_wdtype wdtype, npy_intp N, npy_intp K,
                       vitc_weight *out) {
    PyObject *obj = PyTuple_GET_ITEM(weights, i);
    out->scales = NULL;
    out->col_sums = NULL;
    if (wdtype == VITC_WEIGHTS_F32) {
        const float *data;
        if (weight(weights, i, N * K, 0, &data) < 0) return -1;
        out->data = data;
        return 0;
    }
    if (wdtype == VITC_WEIGHTS_BF16) {
        out->data = typed_array(obj, NPY_UINT16, "uint16 (packed bf16)", "weight", i,
                                pack_bf16_len(N, K), 0);
        return out->data ? 0 : -1;
    }
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 3) {
        PyErr_Format(PyExc_ValueError,
                     "vit_forward: weight %zd: expected (packed int8, scales, col_sums)", i);
        return -1;
    }
    out->data = typed_array(PyTuple_GET_ITEM(obj, 0), NPY_INT8, "int8 (packed)", "weight", i,
                            pack_int8_len(N, K), 0);
    if (out->data == NULL) return -1;
    out->scales = typed_array(PyTuple_GET_ITEM(obj, 1), NPY_FLOAT32, "float32 (scales)", "weight", i, N, 0);
    if (out->scales == NULL) return -1;
    out->col_sums = typed_array(PyTuple_GET_ITEM(obj, 2), NPY_INT32, "int32 (col_sums)", "weight", i, N, 0);
    return out->col_sums ? 0 : -1;
}

// vit_forward(weights, dims, eps, act, wdtype, pixels, last, logits, pooled, hidden, attn, workspace,
//             threads)
//   weights: tuple of MODEL_NTENSORS + L*BLOCK_NTENSORS arrays or None (optional ones)
//   dims: (L, C, H, F, K, P, Cin); pixels (B, Cin, Hi, Wi) float32
//   threads: the count the workspace was sized for (vit_workspace_len), the most the forward uses
PyObject *vitc_py_vit_forward(PyObject *self, PyObject *args) {
    PyObject *weights, *pixels_obj, *last_obj, *logits_obj, *pooled_obj, *hidden_obj, *attn_obj, *ws_obj;
    Py_ssize_t L, C, H, F, K, P, Cin;
    double eps;
    int act, wdtype, threads;
    vit_block *blocks = NULL;
    if (!PyArg_ParseTuple(args, "O!(nnnnnnn)diiOOOOOOOi", &PyTuple_Type, &weights, &L, &C, &H, &F,
                          &K, &P, &Cin, &eps, &act, &wdtype, &pixels_obj, &last_obj, &logits_obj,
                          &pooled_obj, &hidden_obj, &attn_obj, &ws_obj, &threads))
        return NULL;
    if (wdtype < VITC_WEIGHTS_F32 || wdtype > VITC_WEIGHTS_INT8) {
        PyErr_Format(PyExc_ValueError, "vit_forward: unknown weight precision %d", wdtype);
        return NULL;
    }
    if (threads < 1 || threads > 4096) {
        PyErr_Format(PyExc_ValueError, "vit_forward: expected 1 <= threads <= 4096, got %d", threads);
        return NULL;
    }
    if (L < 0 || C < 1 || H < 1 || C % H != 0 || F < 1 || K < 0 || P < 1 || Cin < 1 ||
        act < VITC_ACT_NONE || act > VITC_ACT_RELU) {
        PyErr_SetString(PyExc_ValueError, "vit_forward: invalid model dimensions");
        return NULL;
    }
    if (PyTuple_GET_SIZE(weights) != MODEL_NTENSORS + L * BLOCK_NTENSORS) {
        PyErr_Format(PyExc_ValueError, "vit_forward: expected %zd weights, got %zd",
                     (Py_ssize_t)(MODEL_NTENSORS + L * BLOCK_NTENSORS), PyTuple_GET_SIZE(weights));
        return NULL;
    }
    if (!PyArray_Check(pixels_obj) || PyArray_NDIM((PyArrayObject *)pixels_obj) != 4) {
        PyErr_SetString(PyExc_ValueError, "vit_forward: pixels must be a 4-d array (B, Cin, H, W)");
        return NULL;
    }
    const npy_intp *pdims = PyArray_DIMS((PyArrayObject *)pixels_obj);
    const npy_intp B = pdims[0], Hi = pdims[2], Wi = pdims[3];
    if (pdims[1] != Cin || Hi % P != 0 || Wi % P != 0 || Hi < P || Wi < P) {
        PyErr_Format(PyExc_ValueError,
                     "vit_forward: pixels: expected (B, %zd, H, W) with H, W positive multiples of "
                     "%zd, got (%zd, %zd, %zd, %zd)",
                     Cin, P, (Py_ssize_t)B, (Py_ssize_t)pdims[1], (Py_ssize_t)Hi, (Py_ssize_t)Wi);
        return NULL;
    }
    const npy_intp T = (Hi / P) * (Wi / P) + 1;

    vit_model m = {.L = L, .C = C, .H = H, .F = F, .K = K, .P = P, .Cin = Cin, .eps = (float)eps,
                   .act = (vitc_act)act, .wdtype = (vitc_wdtype)wdtype};
    if (weight(weights, MODEL_PATCH_W, C * Cin * P * P, 0, &m.patch_w) < 0 ||
        weight(weights, MODEL_PATCH_B, C, 0, &m.patch_b) < 0 ||
        weight(weights, MODEL_CLS, C, 0, &m.cls) < 0 ||
        weight(weights, MODEL_POS, T * C, 0, &m.pos) < 0 ||
        weight(weights, MODEL_NORM_W, C, 0, &m.norm_w) < 0 ||
        weight(weights, MODEL_NORM_B, C, 0, &m.norm_b) < 0 ||
        weight(weights, MODEL_HEAD_W, K * C, 1, &m.head_w) < 0 ||
        weight(weights, MODEL_HEAD_B, K, 1, &m.head_b) < 0 ||
        weight(weights, MODEL_POOL_W, C * C, 1, &m.pool_w) < 0 ||
        weight(weights, MODEL_POOL_B, C, 1, &m.pool_b) < 0)
        return NULL;
    if ((m.head_w == NULL) != (K == 0)) {
        PyErr_SetString(PyExc_ValueError, "vit_forward: head weight present iff K > 0");
        return NULL;
    }
    blocks = PyMem_Calloc(L > 0 ? (size_t)L : 1, sizeof(vit_block));
    if (blocks == NULL) return PyErr_NoMemory();
    for (Py_ssize_t l = 0; l < L; l++) {
        const Py_ssize_t o = MODEL_NTENSORS + l * BLOCK_NTENSORS;
        vit_block *blk = &blocks[l];
        if (weight(weights, o + BLOCK_NORM1_W, C, 0, &blk->norm1_w) < 0 ||
            weight(weights, o + BLOCK_NORM1_B, C, 0, &blk->norm1_b) < 0 ||
            gemm_weight(weights, o + BLOCK_QKV_W, m.wdtype, 3 * C, C, &blk->qkv_w) < 0 ||
            weight(weights, o + BLOCK_QKV_B, 3 * C, 1, &blk->qkv_b) < 0 ||
            gemm_weight(weights, o + BLOCK_PROJ_W, m.wdtype, C, C, &blk->proj_w) < 0 ||
            weight(weights, o + BLOCK_PROJ_B, C, 0, &blk->proj_b) < 0 ||
            weight(weights, o + BLOCK_NORM2_W, C, 0, &blk->norm2_w) < 0 ||
            weight(weights, o + BLOCK_NORM2_B, C, 0, &blk->norm2_b) < 0 ||
            gemm_weight(weights, o + BLOCK_FC1_W, m.wdtype, F, C, &blk->fc1_w) < 0 ||
            weight(weights, o + BLOCK_FC1_B, F, 0, &blk->fc1_b) < 0 ||
            gemm_weight(weights, o + BLOCK_FC2_W, m.wdtype, C, F, &blk->fc2_w) < 0 ||
            weight(weights, o + BLOCK_FC2_B, C, 0, &blk->fc2_b) < 0)
            goto fail;
    }
    m.blocks = blocks;

    float *pixels, *workspace;
    vit_outputs out;
    if (as_f32(pixels_obj, "pixels", 0, B * Cin * Hi * Wi, 0, 0, &pixels) < 0 ||
        as_f32(last_obj, "output", 0, B * T * C, 0, 1, &out.last) < 0 ||
        as_f32(logits_obj, "output", 1, B * K, 1, 1, &out.logits) < 0 ||
        as_f32(pooled_obj, "output", 2, B * C, 1, 1, &out.pooled) < 0 ||
        as_f32(hidden_obj, "output", 3, (L + 1) * B * T * C, 1, 1, &out.hidden) < 0 ||
        as_f32(attn_obj, "output", 4, L * B * H * T * T, 1, 1, &out.attn) < 0 ||
        as_f32(ws_obj, "workspace", 0, vit_workspace_len(&m, B, Hi, Wi, threads), 0, 1, &workspace) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS vit_forward(&m, &out, pixels, B, Hi, Wi, workspace, threads);
    Py_END_ALLOW_THREADS

    PyMem_Free(blocks);
    Py_RETURN_NONE;
fail:
    PyMem_Free(blocks);
    return NULL;
}

// The workspace size for a model and input shape, so Python can allocate it once per shape.
PyObject *vitc_py_vit_workspace_len(PyObject *self, PyObject *args) {
    Py_ssize_t L, C, H, F, K, P, Cin, B, Hi, Wi;
    int threads, wdtype;
    if (!PyArg_ParseTuple(args, "(nnnnnnn)nnnii", &L, &C, &H, &F, &K, &P, &Cin, &B, &Hi, &Wi, &threads,
                          &wdtype))
        return NULL;
    if (C < 1 || P < 1 || Cin < 1 || F < 1 || B < 0 || Hi < P || Wi < P || threads < 1 || threads > 4096 ||
        wdtype < VITC_WEIGHTS_F32 || wdtype > VITC_WEIGHTS_INT8) {
        PyErr_SetString(PyExc_ValueError, "vit_workspace_len: invalid dimensions");
        return NULL;
    }
    vit_model m = {.L = L, .C = C, .H = H, .F = F, .K = K, .P = P, .Cin = Cin,
                   .wdtype = (vitc_wdtype)wdtype};
    return PyLong_FromSsize_t(vit_workspace_len(&m, B, Hi, Wi, threads));
}
