// model_py.c: vitc._core.Model, a ViT built once from its weights: every tensor is validated at
// build ("expected X, got Y", naming the tensor), GEMM weights are packed for their kernels
// (float32 ones for gemm_f32, those of a reduced-precision model for bf16 / int8), and the object
// keeps references to the arrays its pointers read. forward() then takes
// only what changes per call (pixels, an optional position table, output flags), manages its own
// working memory and runs vit_forward.c without the GIL. Not the user API: vitc/model.py wraps it.
#include <math.h>
#include <string.h>

#include "kernels/gemm_f32.h"
#include "threads.h"
#include "vit_forward.h"
#include "vitc_py.h"

// Idle workspaces a model keeps (one per batch shape, least recently used dropped first); calls
// that run at the same time each take their own.
enum { WORKSPACE_POOL_SIZE = 2 };
// Seconds between two signal checks of a forward on the main thread (Ctrl-C arrives within about
// this plus one work item).
static const double SIGNAL_POLL_SECONDS = 0.05;

typedef struct {
    float *buf;
    vitc_int len;  // floats
    vitc_int B, Hi, Wi;
    int in_use;
    unsigned long long id, last_use;
} workspace;

// A float32 GEMM weight waiting to be packed (pack_one).
typedef struct {
    char name[96];
    const float *w32;  // (N, K), inside the array self->tensors holds under `name`
    vitc_int N, K;
    vitc_weight *dst;  // a block's weight; NULL: the patch projection (m.patch_w)
} pending_pack;

typedef struct {
    PyObject_HEAD vit_model m;
    vit_block *blocks;          // (L), PyMem
    const float **prefix_rows;  // (prefix), PyMem
    PyObject *tensors;          // dict: name -> the array the model reads (packed copies included)
    const float *pos_embed;     // (T0, C)
    vitc_int image_h, image_w, T0;
    Py_ssize_t weight_nbytes;
    workspace *ws;  // the pool; changed only with the GIL held (so a fork leaves it consistent)
    Py_ssize_t n_ws;
    unsigned long long ws_clock, ws_ids;
    pending_pack *packs;  // (n_packs), PyMem; [next_pack, n_packs) not packed yet
    Py_ssize_t n_packs, next_pack;
} ModelObject;

// Largest bytes one workspace may take (test hook _core._set_workspace_limit); 0: no limit.
static size_t g_workspace_limit = 0;

// ---------------------------------------------------------------------------------------------
// Names

static int act_from_name(const char *what, const char *name, vitc_act *act) {
    for (int i = 0; i < VIT_NUM_ACTIVATIONS; i++)
        if (strcmp(name, VIT_ACTIVATIONS[i].name) == 0) {
            *act = (vitc_act)VIT_ACTIVATIONS[i].value;
            return 0;
        }
    PyObject *names = PyList_New(0);
    for (int i = 0; names && i < VIT_NUM_ACTIVATIONS; i++) {
        PyObject *s = PyUnicode_FromString(VIT_ACTIVATIONS[i].name);
        if (s == NULL || PyList_Append(names, s) < 0) Py_CLEAR(names);
        Py_XDECREF(s);
    }
    if (names)
        PyErr_Format(PyExc_ValueError, "Model: %s: expected one of %R, got '%s'", what, names,
                     name);
    Py_XDECREF(names);
    return -1;
}

static int index_of(const char *what, const char *name, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    char buf[128] = "";
    for (int i = 0; i < n; i++) {
        const size_t used = strlen(buf);
        PyOS_snprintf(buf + used, sizeof buf - used, "%s'%s'", i ? ", " : "", names[i]);
    }
    PyErr_Format(PyExc_ValueError, "Model: %s: expected one of %s, got '%s'", what, buf, name);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Building: each tensor is looked up by name, checked once, and kept in self->tensors. A name the
// model does not read is an error (ModelObject_new), so a misspelt optional tensor is not ignored.

typedef struct {
    ModelObject *self;
    PyObject *given;    // the caller's dict
    PyObject *missing;  // list of the names of required tensors not given
} builder;

static int has(builder *b, const char *name) {
    return PyDict_GetItemString(b->given, name) != NULL;
}

// The number of rows of `name` if it is a 2-d array, else `otherwise` (the shape check reports it).
static vitc_int rows_of(builder *b, const char *name, vitc_int otherwise) {
    PyObject *obj = PyDict_GetItemString(b->given, name);
    if (obj && PyArray_Check(obj) && PyArray_NDIM((PyArrayObject *)obj) == 2)
        return PyArray_DIM((PyArrayObject *)obj, 0);
    return otherwise;
}

static PyObject *shape_tuple(int ndim, const npy_intp *dims) {
    PyObject *t = PyTuple_New(ndim);
    for (int i = 0; t && i < ndim; i++) {
        PyObject *d = PyLong_FromSsize_t((Py_ssize_t)dims[i]);
        if (d == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, d);
    }
    return t;
}

// "weights: NAME: expected float32 (96, 32), got float64 (96, 31)"
static void tensor_error(const char *name, const char *want_dtype, int ndim, const npy_intp *dims,
                         PyArrayObject *got) {
    PyObject *want = shape_tuple(ndim, dims);
    PyObject *have = shape_tuple(PyArray_NDIM(got), PyArray_DIMS(got));
    if (want && have)
        PyErr_Format(PyExc_ValueError, "weights: %s: expected %s %R, got %S %R", name, want_dtype,
                     want, (PyObject *)PyArray_DESCR(got), have);
    Py_XDECREF(want);
    Py_XDECREF(have);
}

// Keep `arr` (a new reference is taken) under `name` and count its bytes.
static int keep(builder *b, const char *name, PyArrayObject *arr) {
    if (PyDict_SetItemString(b->self->tensors, name, (PyObject *)arr) < 0) return -1;
    b->self->weight_nbytes += (Py_ssize_t)PyArray_NBYTES(arr);
    return 0;
}

// Array `name` of `type` and exact shape, made native, aligned and C-contiguous (copied only if it
// is not), kept by the model. NULL and *err = 0: absent (a required one goes to the missing list);
// NULL and *err = 1: an error is set. A zero-size array gives NULL with *err = 0 too.
static void *typed(builder *b, const char *name, int type, const char *type_name, int ndim,
                   const npy_intp *dims, int required, int *err) {
    PyObject *obj = PyDict_GetItemString(b->given, name);  // borrowed
    if (obj == NULL) {
        if (required) {
            PyObject *s = PyUnicode_FromString(name);
            if (s == NULL || PyList_Append(b->missing, s) < 0) *err = 1;
            Py_XDECREF(s);
        }
        return NULL;
    }
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "weights: %s: expected a numpy array, got %s", name,
                     Py_TYPE(obj)->tp_name);
        *err = 1;
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    int same = PyArray_TYPE(arr) == type && PyArray_NDIM(arr) == ndim;
    for (int i = 0; same && i < ndim; i++) same = PyArray_DIM(arr, i) == dims[i];
    if (!same) {
        tensor_error(name, type_name, ndim, dims, arr);
        *err = 1;
        return NULL;
    }
    PyArrayObject *ready =
        (PyArrayObject *)PyArray_FromArray(arr, PyArray_DescrFromType(type), NPY_ARRAY_IN_ARRAY);
    if (ready == NULL || keep(b, name, ready) < 0) {
        Py_XDECREF(ready);
        *err = 1;
        return NULL;
    }
    void *data = PyArray_SIZE(ready) > 0 ? PyArray_DATA(ready) : NULL;
    Py_DECREF(ready);  // the model's dict holds it
    return data;
}

static const float *vec(builder *b, const char *name, vitc_int n, int required, int *err) {
    const npy_intp dims[1] = {(npy_intp)n};
    return typed(b, name, NPY_FLOAT32, "float32", 1, dims, required, err);
}

static const float *mat(builder *b, const char *name, vitc_int rows, vitc_int cols, int required,
                        int *err) {
    const npy_intp dims[2] = {(npy_intp)rows, (npy_intp)cols};
    return typed(b, name, NPY_FLOAT32, "float32", 2, dims, required, err);
}

// A new C-contiguous array of `count` elements of `type`, kept under `name`; NULL with an error.
static void *new_kept(builder *b, const char *name, int type, npy_intp count) {
    PyArrayObject *arr = (PyArrayObject *)PyArray_SimpleNew(1, &count, type);
    if (arr == NULL || keep(b, name, arr) < 0) {
        Py_XDECREF(arr);
        return NULL;
    }
    void *data = PyArray_DATA(arr);
    Py_DECREF(arr);  // the model's dict holds it
    return data;
}

// An optional layer `prefix`.weight / `prefix`.bias: both or neither (a lone half makes the other
// missing). Linear: weight (rows, cols), bias (rows), rows may be 0 (an identity head); norm
// (rows = 0): weight and bias (cols). *present: either was given.
static int optional_layer(builder *b, const char *prefix, int norm, vitc_int rows, vitc_int cols,
                          const float **w, const float **bias, int *present) {
    char w_name[64], b_name[64];
    PyOS_snprintf(w_name, sizeof w_name, "%s.weight", prefix);
    PyOS_snprintf(b_name, sizeof b_name, "%s.bias", prefix);
    *w = *bias = NULL;
    *present = has(b, w_name) || has(b, b_name);
    if (!*present) return 0;
    int err = 0;
    *w = norm ? vec(b, w_name, cols, 1, &err) : mat(b, w_name, rows, cols, 1, &err);
    if (err) return -1;
    *bias = vec(b, b_name, norm ? cols : rows, 1, &err);
    return err ? -1 : 0;
}

// Float32 GEMM weights are packed for gemm_f32 (kernels/gemm_f32.h) on the first forward, not at
// build: loading a memory-mapped .vitc file stays a matter of milliseconds (no page of it is read),
// and a model that is only inspected never packs. Each packed array then replaces its float32
// original in self->tensors (the model no longer reads the original; the caller keeps it if it
// wants to).
static int add_pending_pack(builder *b, const char *name, const float *w32, vitc_int N, vitc_int K,
                            vitc_weight *dst) {
    ModelObject *self = b->self;
    pending_pack *grown =
        PyMem_Realloc(self->packs, (size_t)(self->n_packs + 1) * sizeof(pending_pack));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->packs = grown;
    pending_pack *p = &self->packs[self->n_packs++];
    PyOS_snprintf(p->name, sizeof p->name, "%s", name);
    p->w32 = w32;
    p->N = N;
    p->K = K;
    p->dst = dst;
    return 0;
}

// Pack one pending weight into a new 64-byte-aligned array (a view into a slightly larger
// buffer: each k row of a panel is one cache line) that replaces the original in self->tensors.
// With the GIL held: no other call can see a half-made model. -1 with an error.
static int pack_one(ModelObject *self, const pending_pack *p) {
    const npy_intp len = (npy_intp)gemm_f32_packed_len(p->N, p->K), slack = 16;
    npy_intp count = len + slack;
    PyArrayObject *base = (PyArrayObject *)PyArray_SimpleNew(1, &count, NPY_FLOAT32);
    if (base == NULL) return -1;
    float *data = PyArray_DATA(base);
    data += (64 - (uintptr_t)data % 64) % 64 / sizeof(float);
    npy_intp dims[1] = {len};
    PyArrayObject *view = (PyArrayObject *)PyArray_New(&PyArray_Type, 1, dims, NPY_FLOAT32, NULL,
                                                       data, 0, NPY_ARRAY_CARRAY, NULL);
    if (view == NULL) {
        Py_DECREF(base);
        return -1;
    }
    if (PyArray_SetBaseObject(view, (PyObject *)base) < 0) {  // steals base, even on failure
        Py_DECREF(view);
        return -1;
    }
    PyObject *held = PyDict_GetItemString(self->tensors, p->name);
    Py_XINCREF(held);  // p->w32 points into it while the packed copy replaces it in the dict
    gemm_f32_pack(data, p->w32, p->N, p->K);
    const int rc = PyDict_SetItemString(self->tensors, p->name, (PyObject *)view);
    if (rc == 0) {
        self->weight_nbytes += (Py_ssize_t)PyArray_NBYTES(view);
        if (held) self->weight_nbytes -= (Py_ssize_t)PyArray_NBYTES((PyArrayObject *)held);
        if (p->dst)
            p->dst->data = data;
        else
            self->m.patch_w = data;
    }
    Py_DECREF(view);
    Py_XDECREF(held);
    return rc;
}

// Pack every pending weight (the first forward); a signal handler's exception (Ctrl-C) stops
// between weights and the next call goes on from there. -1 with an error.
static int pack_pending(ModelObject *self) {
    while (self->next_pack < self->n_packs) {
        if (PyErr_CheckSignals() < 0 || pack_one(self, &self->packs[self->next_pack]) < 0)
            return -1;
        self->next_pack++;
    }
    return 0;
}

// A float32 GEMM weight `name` for gemm_f32, stored in *dst (a block's weight; NULL: the patch
// projection): (N, K), packed on the first forward (add_pending_pack), or already packed (1-d, of
// gemm_f32_packed_len(N, K): what the `tensors` of a model that ran hold, so they build it again).
// -1 with an error.
static int f32_gemm_weight(builder *b, const char *name, vitc_int N, vitc_int K,
                           vitc_weight *dst) {
    int err = 0;
    PyObject *obj = PyDict_GetItemString(b->given, name);
    if (obj && PyArray_Check(obj) && PyArray_NDIM((PyArrayObject *)obj) == 1 &&
        PyArray_TYPE((PyArrayObject *)obj) == NPY_FLOAT32) {
        const npy_intp len = (npy_intp)gemm_f32_packed_len(N, K);
        char what[96];
        PyOS_snprintf(what, sizeof what, "float32 (N, K) or packed from (%zd, %zd)", (Py_ssize_t)N,
                      (Py_ssize_t)K);
        const float *packed = typed(b, name, NPY_FLOAT32, what, 1, &len, 1, &err);
        if (dst)
            dst->data = packed;
        else
            b->self->m.patch_w = packed;
        return err ? -1 : 0;
    }
    const float *w32 = mat(b, name, N, K, 1, &err);
    if (err || w32 == NULL) return err ? -1 : 0;  // missing: reported with the others
    return add_pending_pack(b, name, w32, N, K, dst);
}

// Pack a float32 (N, K) weight for the model's precision; the packed arrays are kept under
// `name` (and NAME.scales, NAME.col_sums for int8), the float32 one stays with the caller.
static int pack_gemm_weight(builder *b, const char *name, const float *w32, vitc_int N, vitc_int K,
                            vitc_weight *w) {
    if (b->self->m.wdtype == VITC_WEIGHTS_BF16) {
        uint16_t *packed = new_kept(b, name, NPY_UINT16, pack_bf16_len(N, K));
        if (packed == NULL) return -1;
        Py_BEGIN_ALLOW_THREADS vitc_busy_enter();
        pack_weights_bf16(packed, w32, N, K);
        vitc_busy_leave();
        Py_END_ALLOW_THREADS w->data = packed;
        return 0;
    }
    char scales_name[128], sums_name[128];
    PyOS_snprintf(scales_name, sizeof scales_name, "%s.scales", name);
    PyOS_snprintf(sums_name, sizeof sums_name, "%s.col_sums", name);
    int8_t *packed = new_kept(b, name, NPY_INT8, pack_int8_len(N, K));
    float *scales = packed ? new_kept(b, scales_name, NPY_FLOAT32, N) : NULL;
    int32_t *sums = scales ? new_kept(b, sums_name, NPY_INT32, N) : NULL;
    if (sums == NULL) return -1;
    Py_BEGIN_ALLOW_THREADS vitc_busy_enter();
    pack_weights_int8(packed, scales, sums, w32, N, K);
    vitc_busy_leave();
    Py_END_ALLOW_THREADS w->data = packed;
    w->scales = scales;
    w->col_sums = sums;
    return 0;
}

// A block's (N, K) GEMM weight in the model's precision: float32 (N, K) (packed here), float32
// packed for gemm_f32 (f32_gemm_weight), or already packed as a reduced-precision .vitc file stores it: uint16 (pack_bf16_len)
// for bf16; int8 (pack_int8_len) + NAME.scales float32 (N) + NAME.col_sums int32 (N) for int8.
static int gemm_weight(builder *b, const char *name, vitc_int N, vitc_int K, vitc_weight *w) {
    int err = 0;
    const vitc_wdtype wd = b->self->m.wdtype;
    memset(w, 0, sizeof *w);
    PyObject *obj = PyDict_GetItemString(b->given, name);
    const int type = obj && PyArray_Check(obj) ? PyArray_TYPE((PyArrayObject *)obj) : NPY_FLOAT32;
    if (type == NPY_FLOAT32 && wd == VITC_WEIGHTS_F32) {
        return f32_gemm_weight(b, name, N, K, w);
    }
    if (type == NPY_FLOAT32) {
        const float *w32 = mat(b, name, N, K, 1, &err);
        if (err || w32 == NULL) return err ? -1 : 0;  // missing: reported with the others
        PyObject *held = PyDict_GetItemString(b->self->tensors, name);
        Py_XINCREF(held);  // w32 points into it while the packed copy replaces it in the dict
        b->self->weight_nbytes -= (Py_ssize_t)(N * K * (vitc_int)sizeof(float));
        const int rc = pack_gemm_weight(b, name, w32, N, K, w);
        Py_XDECREF(held);
        return rc;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (wd == VITC_WEIGHTS_F32) {
        if (type == NPY_UINT16 || type == NPY_INT8)
            PyErr_Format(PyExc_ValueError,
                         "weights: %s is packed (%S): pass the precision it was packed for "
                         "(bfloat16 or int8), not float32",
                         name, (PyObject *)PyArray_DESCR(arr));
        else
            PyErr_Format(PyExc_ValueError, "weights: %s: expected float32, got %S", name,
                         (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    const int bf16 = wd == VITC_WEIGHTS_BF16;
    const int packed_type = bf16 ? NPY_UINT16 : NPY_INT8;
    if (type != packed_type) {
        PyErr_Format(PyExc_ValueError, "weights: %s: expected float32 or %s packed as %s, got %S",
                     name, VIT_PRECISIONS[wd], bf16 ? "uint16" : "int8",
                     (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    const npy_intp len = bf16 ? pack_bf16_len(N, K) : pack_int8_len(N, K);
    char what[96];
    PyOS_snprintf(what, sizeof what, "%s (%s packed from (%zd, %zd))", bf16 ? "uint16" : "int8",
                  VIT_PRECISIONS[wd], (Py_ssize_t)N, (Py_ssize_t)K);
    w->data = typed(b, name, packed_type, what, 1, &len, 1, &err);
    if (err || bf16) return err ? -1 : 0;
    char scales_name[128], sums_name[128];
    PyOS_snprintf(scales_name, sizeof scales_name, "%s.scales", name);
    PyOS_snprintf(sums_name, sizeof sums_name, "%s.col_sums", name);
    const npy_intp n = (npy_intp)N;
    w->scales = typed(b, scales_name, NPY_FLOAT32, "float32", 1, &n, 1, &err);
    if (err) return -1;
    w->col_sums = typed(b, sums_name, NPY_INT32, "int32", 1, &n, 1, &err);
    return err ? -1 : 0;
}

static int build_blocks(builder *b) {
    ModelObject *self = b->self;
    const vit_model *m = &self->m;
    const vitc_int C = m->C, F = m->F;
    char name[96];
#define NAME(suffix) (PyOS_snprintf(name, sizeof name, "blocks.%zd." suffix, (Py_ssize_t)l), name)
    for (vitc_int l = 0; l < m->L; l++) {
        vit_block *blk = &self->blocks[l];
        int err = 0;
        blk->norm1_w = vec(b, NAME("norm1.weight"), C, 1, &err);
        if (!err) blk->norm1_b = vec(b, NAME("norm1.bias"), C, 1, &err);
        if (err || gemm_weight(b, NAME("attn.qkv.weight"), 3 * C, C, &blk->qkv_w) < 0) return -1;
        blk->qkv_b = vec(b, NAME("attn.qkv.bias"), 3 * C, 0, &err);  // absent: qkv_bias false
        if (err || gemm_weight(b, NAME("attn.proj.weight"), C, C, &blk->proj_w) < 0) return -1;
        blk->proj_b = vec(b, NAME("attn.proj.bias"), C, 1, &err);
        if (!err) blk->norm2_w = vec(b, NAME("norm2.weight"), C, 1, &err);
        if (!err) blk->norm2_b = vec(b, NAME("norm2.bias"), C, 1, &err);
        if (err || gemm_weight(b, NAME("mlp.fc1.weight"), F, C, &blk->fc1_w) < 0) return -1;
        blk->fc1_b = vec(b, NAME("mlp.fc1.bias"), F, 1, &err);
        if (err || gemm_weight(b, NAME("mlp.fc2.weight"), C, F, &blk->fc2_w) < 0) return -1;
        blk->fc2_b = vec(b, NAME("mlp.fc2.bias"), C, 1, &err);
        if (err) return -1;
    }
#undef NAME
    return 0;
}

// Prefix tokens in sequence order: cls_token (C), dist_token (C), reg_token (R, C).
// ref: modeling_deit.py DeiTEmbeddings (cls, distillation); timm VisionTransformer._pos_embed
static int build_prefix(builder *b) {
    ModelObject *self = b->self;
    vit_model *m = &self->m;
    int err = 0;
    const float *cls = vec(b, "cls_token", m->C, 0, &err);
    const float *dist = err ? NULL : vec(b, "dist_token", m->C, 0, &err);
    const vitc_int R = has(b, "reg_token") ? rows_of(b, "reg_token", 1) : 0;
    const float *reg = err || R == 0 ? NULL : mat(b, "reg_token", R, m->C, 0, &err);
    if (err) return -1;
    if (dist && !cls) {
        PyErr_SetString(PyExc_ValueError, "weights: dist_token: expected a cls_token before it");
        return -1;
    }
    m->prefix = (cls != NULL) + (dist != NULL) + (reg != NULL ? R : 0);
    self->prefix_rows = PyMem_Calloc(m->prefix > 0 ? (size_t)m->prefix : 1, sizeof(float *));
    if (self->prefix_rows == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    vitc_int t = 0;
    if (cls) self->prefix_rows[t++] = cls;
    if (dist) self->prefix_rows[t++] = dist;
    for (vitc_int r = 0; reg && r < R; r++) self->prefix_rows[t++] = reg + r * m->C;
    m->prefix_rows = self->prefix_rows;
    return 0;
}

// Final norm, fc_norm, classifier head(s), pooler, and what they need of the sequence.
static int build_heads(builder *b) {
    ModelObject *self = b->self;
    vit_model *m = &self->m;
    const vitc_int C = m->C;
    const int has_cls = has(b, "cls_token"), has_dist = has(b, "dist_token");
    int present;
    if (optional_layer(b, "norm", 1, 0, C, &m->norm_w, &m->norm_b, &present) < 0 ||
        optional_layer(b, "fc_norm", 1, 0, C, &m->fc_norm_w, &m->fc_norm_b, &present) < 0)
        return -1;
    m->K = rows_of(b, "head.weight", 0);
    if (optional_layer(b, "head", 0, m->K, C, &m->head_w, &m->head_b, &m->head) < 0 ||
        optional_layer(b, "head_dist", 0, m->K, C, &m->head_dist_w, &m->head_dist_b,
                       &m->distilled) < 0)
        return -1;
    int pooler;
    m->Cp = rows_of(b, "pooler.weight", C);
    if (optional_layer(b, "pooler", 0, m->Cp, C, &m->pool_w, &m->pool_b, &pooler) < 0) return -1;
    if (!pooler) m->Cp = 0;
    if (pooler && m->Cp == 0) {
        PyErr_SetString(PyExc_ValueError, "weights: pooler.weight: expected at least one output");
        return -1;
    }
    if (m->head && m->pool == VITC_POOL_TOKEN && !has_cls) {
        PyErr_SetString(PyExc_ValueError,
                        "Model: pool 'token' reads the CLS token: expected a cls_token tensor");
        return -1;
    }
    if (pooler && !has_cls) {
        PyErr_SetString(PyExc_ValueError,
                        "Model: the pooler reads the CLS token: expected a cls_token tensor");
        return -1;
    }
    if (m->distilled && (!m->head || !has_dist || m->pool != VITC_POOL_TOKEN)) {
        PyErr_SetString(PyExc_ValueError,
                        "Model: a distillation head (head_dist.*) needs head.*, a dist_token and "
                        "pool 'token'");
        return -1;
    }
    return 0;
}

// pos_embed (T0, C), T0 = prefix + the grid of image_size.
static int build_pos_embed(builder *b) {
    ModelObject *self = b->self;
    const vit_model *m = &self->m;
    self->T0 = m->prefix + (self->image_h / m->Ph) * (self->image_w / m->Pw);
    int err = 0;
    self->pos_embed = mat(b, "pos_embed", self->T0, m->C, 1, &err);
    return err ? -1 : 0;
}

// After building: names given that the model does not read, then required ones not given.
static int check_names(builder *b) {
    PyObject *unexpected = PyList_New(0), *key, *value;
    Py_ssize_t pos = 0;
    if (unexpected == NULL) return -1;
    while (PyDict_Next(b->given, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "weights: expected str names, got %R", key);
            Py_DECREF(unexpected);
            return -1;
        }
        const int held = PyDict_Contains(b->self->tensors, key);
        if (held < 0 || (!held && PyList_Append(unexpected, key) < 0)) {
            Py_DECREF(unexpected);
            return -1;
        }
    }
    int rc = 0;
    if (PyList_GET_SIZE(b->missing) > 0) {
        PyErr_Format(PyExc_ValueError, "weights: missing tensors %R", b->missing);
        rc = -1;
    } else if (PyList_GET_SIZE(unexpected) > 0) {
        PyErr_Format(PyExc_ValueError,
                     "weights: unexpected tensors %R (this model reads none of them: a misspelt "
                     "name, or a part of another architecture)",
                     unexpected);
        rc = -1;
    }
    Py_DECREF(unexpected);
    return rc;
}

// patch_size / image_size: an int or a (height, width) pair of positive ints.
static int parse_pair(PyObject *obj, const char *what, vitc_int *h, vitc_int *w) {
    if (PyLong_Check(obj)) {
        *h = *w = PyLong_AsSsize_t(obj);
    } else if (PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 2) {
        *h = PyLong_AsSsize_t(PyTuple_GET_ITEM(obj, 0));
        *w = PyLong_AsSsize_t(PyTuple_GET_ITEM(obj, 1));
    } else {
        PyErr_Format(PyExc_TypeError, "Model: %s: expected an int or (height, width), got %R", what,
                     obj);
        return -1;
    }
    if (PyErr_Occurred()) return -1;
    if (*h < 1 || *w < 1) {
        PyErr_Format(PyExc_ValueError, "Model: %s: expected positive sizes, got %R", what, obj);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The type: construction and deallocation

static void Model_dealloc(ModelObject *self) {
    for (Py_ssize_t i = 0; i < self->n_ws; i++) PyMem_RawFree(self->ws[i].buf);
    PyMem_Free(self->ws);
    PyMem_Free(self->blocks);
    PyMem_Free(self->prefix_rows);
    PyMem_Free(self->packs);
    Py_XDECREF(self->tensors);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Model_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {
        "tensors",    "num_layers", "hidden_size",    "num_heads",  "mlp_size",  "num_channels",
        "patch_size", "image_size", "layer_norm_eps", "hidden_act", "precision", "pooler_act",
        "pool",       NULL};
    PyObject *given, *patch_obj = NULL, *image_obj = NULL;
    Py_ssize_t L = -1, C = -1, H = -1, F = -1, Cin = -1;
    double eps = -1.0;
    const char *act_name = NULL, *precision = "float32", *pool_act_name = "tanh", *pool = "token";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|$nnnnnOOdssss:Model", kwlist, &PyDict_Type,
                                     &given, &L, &C, &H, &F, &Cin, &patch_obj, &image_obj, &eps,
                                     &act_name, &precision, &pool_act_name, &pool))
        return NULL;
    if (L < 0 || C < 1 || H < 1 || F < 1 || Cin < 1 || patch_obj == NULL || image_obj == NULL ||
        act_name == NULL || !(eps >= 0.0 && isfinite(eps))) {
        char eps_text[32];
        PyOS_snprintf(eps_text, sizeof eps_text, "%g", eps);
        PyErr_Format(PyExc_ValueError,
                     "Model: expected num_layers >= 0, hidden_size, num_heads, mlp_size, "
                     "num_channels >= 1, patch_size, image_size, a finite layer_norm_eps >= 0 and "
                     "hidden_act, got num_layers=%zd hidden_size=%zd num_heads=%zd mlp_size=%zd "
                     "num_channels=%zd layer_norm_eps=%s (-1: not given)",
                     L, C, H, F, Cin, eps_text);
        return NULL;
    }
    if (C % H != 0) {
        PyErr_Format(PyExc_ValueError,
                     "Model: hidden_size (%zd) must be a multiple of num_heads (%zd)", C, H);
        return NULL;
    }
    ModelObject *self = (ModelObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    vit_model *m = &self->m;
    builder b = {self, given, PyList_New(0)};
    self->tensors = PyDict_New();
    self->blocks = PyMem_Calloc(L > 0 ? (size_t)L : 1, sizeof(vit_block));
    if (b.missing == NULL || self->tensors == NULL) goto fail;
    if (self->blocks == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    *m = (vit_model){.L = L, .C = C, .H = H, .F = F, .Cin = Cin, .eps = (float)eps};
    int wd, pool_kind;
    if (parse_pair(patch_obj, "patch_size", &m->Ph, &m->Pw) < 0 ||
        parse_pair(image_obj, "image_size", &self->image_h, &self->image_w) < 0 ||
        act_from_name("hidden_act", act_name, &m->act) < 0 ||
        act_from_name("pooler_act", pool_act_name, &m->pool_act) < 0 ||
        (wd = index_of("precision", precision, VIT_PRECISIONS, VITC_WEIGHTS_COUNT)) < 0 ||
        (pool_kind = index_of("pool", pool, VIT_POOLS, VITC_POOL_COUNT)) < 0)
        goto fail;
    if (self->image_h < m->Ph || self->image_w < m->Pw) {
        PyErr_Format(PyExc_ValueError, "Model: image_size %R is smaller than patch_size %R",
                     image_obj, patch_obj);
        goto fail;
    }
    m->wdtype = (vitc_wdtype)wd;
    m->pool = (vitc_pool)pool_kind;
    m->blocks = self->blocks;
    int err = 0;
    if (f32_gemm_weight(&b, "patch_embed.proj.weight", C, Cin * m->Ph * m->Pw, NULL) < 0) err = 1;
    if (!err) m->patch_b = vec(&b, "patch_embed.proj.bias", C, 1, &err);
    if (err || build_prefix(&b) < 0 || build_heads(&b) < 0 || build_pos_embed(&b) < 0 ||
        build_blocks(&b) < 0 || check_names(&b) < 0)
        goto fail;
    Py_DECREF(b.missing);
    return (PyObject *)self;
fail:
    Py_XDECREF(b.missing);
    Py_DECREF(self);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// Working memory: a small pool per model, changed only with the GIL held. An entry in use is
// found again by its id (other calls may reorder the pool meanwhile).

static void ws_remove(ModelObject *self, Py_ssize_t i) {
    PyMem_RawFree(self->ws[i].buf);
    self->ws[i] = self->ws[self->n_ws - 1];
    self->n_ws--;
}

// Free the least recently used idle entries until at most `keep` are idle.
static void ws_trim(ModelObject *self, Py_ssize_t keep) {
    for (;;) {
        Py_ssize_t idle = 0, oldest = -1;
        for (Py_ssize_t i = 0; i < self->n_ws; i++) {
            if (self->ws[i].in_use) continue;
            idle++;
            if (oldest < 0 || self->ws[i].last_use < self->ws[oldest].last_use) oldest = i;
        }
        if (idle <= keep) return;
        ws_remove(self, oldest);
    }
}

// A workspace of plan->total floats for this batch shape, marked in use; NULL with MemoryError.
static workspace *ws_acquire(ModelObject *self, const vit_plan *p) {
    const size_t bytes = (size_t)p->total * sizeof(float);
    if (g_workspace_limit && bytes > g_workspace_limit) {
        PyErr_Format(PyExc_MemoryError,
                     "forward: cannot allocate %zu bytes of working memory for a batch of %zd "
                     "images of %zdx%zd (over the limit _set_workspace_limit set)",
                     bytes, (Py_ssize_t)p->B, (Py_ssize_t)p->Hi, (Py_ssize_t)p->Wi);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->n_ws; i++) {
        workspace *w = &self->ws[i];
        if (!w->in_use && w->B == p->B && w->Hi == p->Hi && w->Wi == p->Wi && w->len >= p->total) {
            w->in_use = 1;
            return w;
        }
    }
    ws_trim(self, WORKSPACE_POOL_SIZE - 1);  // the oldest shapes go before the new one comes
    float *buf = PyMem_RawMalloc(bytes);
    workspace *grown =
        buf ? PyMem_Realloc(self->ws, (size_t)(self->n_ws + 1) * sizeof(workspace)) : NULL;
    if (grown == NULL) {
        PyMem_RawFree(buf);
        PyErr_Format(PyExc_MemoryError,
                     "forward: cannot allocate %zu bytes of working memory for a batch of %zd "
                     "images of %zdx%zd",
                     bytes, (Py_ssize_t)p->B, (Py_ssize_t)p->Hi, (Py_ssize_t)p->Wi);
        return NULL;
    }
    self->ws = grown;
    workspace *w = &self->ws[self->n_ws++];
    *w = (workspace){buf, p->total, p->B, p->Hi, p->Wi, 1, ++self->ws_ids, 0};
    return w;
}

static void ws_release(ModelObject *self, unsigned long long id) {
    for (Py_ssize_t i = 0; i < self->n_ws; i++)
        if (self->ws[i].id == id) {
            self->ws[i].in_use = 0;
            self->ws[i].last_use = ++self->ws_clock;
        }
    ws_trim(self, WORKSPACE_POOL_SIZE);
}

// ---------------------------------------------------------------------------------------------
// forward

// A signal handler's exception, raised on the main thread while the forward ran.
typedef struct {
    PyObject *type, *value, *tb;
} pending_error;

// Poll hook of the forward's stop scope (threads.h), on the main thread only: run Python's signal
// handlers; an exception (KeyboardInterrupt) stops the forward and is raised when it returns.
static int poll_signals(void *ctx) {
    pending_error *e = ctx;
    PyGILState_STATE st = PyGILState_Ensure();
    int stop = 0;
    if (PyErr_CheckSignals() < 0) {
        PyErr_Fetch(&e->type, &e->value, &e->tb);
        stop = 1;
    }
    PyGILState_Release(st);
    return stop;
}

// A float32 array of `ndim` dimensions, native, aligned and C-contiguous (a copy only if needed);
// NULL with an error naming `what` and `expected`.
static PyArrayObject *input_f32(PyObject *obj, const char *what, int ndim, const char *expected) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "forward: %s: expected a float32 numpy array %s, got %s", what,
                     expected, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (PyArray_TYPE((PyArrayObject *)obj) != NPY_FLOAT32 ||
        PyArray_NDIM((PyArrayObject *)obj) != ndim) {
        PyArrayObject *arr = (PyArrayObject *)obj;
        PyObject *shape = shape_tuple(PyArray_NDIM(arr), PyArray_DIMS(arr));
        if (shape)
            PyErr_Format(PyExc_ValueError, "forward: %s: expected a float32 array %s, got %S %R",
                         what, expected, (PyObject *)PyArray_DESCR(arr), shape);
        Py_XDECREF(shape);
        return NULL;
    }
    return (PyArrayObject *)PyArray_FromArray(
        (PyArrayObject *)obj, PyArray_DescrFromType(NPY_FLOAT32), NPY_ARRAY_IN_ARRAY);
}

static PyArrayObject *new_output(int ndim, npy_intp d0, npy_intp d1, npy_intp d2, npy_intp d3,
                                 npy_intp d4) {
    const npy_intp dims[5] = {d0, d1, d2, d3, d4};
    return (PyArrayObject *)PyArray_EMPTY(ndim, dims, NPY_FLOAT32, 0);
}

static float *data_or_null(PyArrayObject *a) {
    return a ? (float *)PyArray_DATA(a) : NULL;
}

static PyObject *Model_forward(ModelObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"pixels",  "pos_table", "output_hidden_states", "output_attentions",
                             "output_attention_means", "profile", NULL};
    PyObject *pixels_obj, *pos_obj = Py_None, *result = NULL, *profile = NULL;
    int want_hidden = 0, want_attn = 0, want_mean = 0, want_profile = 0;
    double stages[VIT_STAGE_COUNT] = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Opp$pp:forward", kwlist, &pixels_obj, &pos_obj,
                                     &want_hidden, &want_attn, &want_mean, &want_profile))
        return NULL;
    if (vitc_exiting()) {
        PyErr_SetString(PyExc_RuntimeError, "forward: the interpreter is exiting");
        return NULL;
    }
    if (pack_pending(self) < 0) return NULL;
    const vit_model *m = &self->m;
    char expected[96];
    PyOS_snprintf(expected, sizeof expected, "(B, %zd, H, W) with H >= %zd and W >= %zd",
                  (Py_ssize_t)m->Cin, (Py_ssize_t)m->Ph, (Py_ssize_t)m->Pw);
    PyArrayObject *pixels = input_f32(pixels_obj, "pixels", 4, expected), *pos = NULL;
    PyArrayObject *last = NULL, *logits = NULL, *cls_logits = NULL, *dist_logits = NULL,
                  *pooled = NULL, *hidden = NULL, *attn = NULL, *attn_mean = NULL;
    if (pixels == NULL) return NULL;
    const npy_intp *pd = PyArray_DIMS(pixels);
    if (pd[1] != m->Cin || pd[2] < m->Ph || pd[3] < m->Pw) {
        PyErr_Format(PyExc_ValueError, "forward: pixels: expected %s, got (%zd, %zd, %zd, %zd)",
                     expected, (Py_ssize_t)pd[0], (Py_ssize_t)pd[1], (Py_ssize_t)pd[2],
                     (Py_ssize_t)pd[3]);
        goto done;
    }
    const vit_plan plan = vit_plan_forward(m, pd[0], pd[2], pd[3], vitc_get_num_threads(),
                                           want_mean && !want_attn);
    if (plan.total < 0) {
        PyErr_Format(PyExc_MemoryError, "forward: a batch of %zd images of %zdx%zd is too large",
                     (Py_ssize_t)pd[0], (Py_ssize_t)pd[2], (Py_ssize_t)pd[3]);
        goto done;
    }
    const vitc_int B = plan.B, T = plan.T, C = m->C;
    const float *pos_data = self->pos_embed;
    if (pos_obj != Py_None) {
        char want[64];
        PyOS_snprintf(want, sizeof want, "(%zd, %zd)", (Py_ssize_t)T, (Py_ssize_t)C);
        pos = input_f32(pos_obj, "pos_table", 2, want);
        if (pos == NULL) goto done;
        if (PyArray_DIM(pos, 0) != T || PyArray_DIM(pos, 1) != C) {
            PyErr_Format(PyExc_ValueError,
                         "forward: pos_table: expected (%zd, %zd) for a %zdx%zd patch grid and %zd "
                         "prefix tokens, got (%zd, %zd)",
                         (Py_ssize_t)T, (Py_ssize_t)C, (Py_ssize_t)plan.gh, (Py_ssize_t)plan.gw,
                         (Py_ssize_t)m->prefix, (Py_ssize_t)PyArray_DIM(pos, 0),
                         (Py_ssize_t)PyArray_DIM(pos, 1));
            goto done;
        }
        pos_data = (const float *)PyArray_DATA(pos);
    } else if (T != self->T0) {
        PyErr_Format(PyExc_ValueError,
                     "forward: pixels of %zdx%zd make a %zdx%zd patch grid, the stored position "
                     "table is for %zdx%zd images: pass an interpolated pos_table",
                     (Py_ssize_t)plan.Hi, (Py_ssize_t)plan.Wi, (Py_ssize_t)plan.gh,
                     (Py_ssize_t)plan.gw, (Py_ssize_t)self->image_h, (Py_ssize_t)self->image_w);
        goto done;
    }
    const vitc_int K = m->K > 0 ? m->K : C;  // an identity head passes the C features through
    last = new_output(3, B, T, C, 0, 0);
    if (last == NULL) goto done;
    if (m->head && (logits = new_output(2, B, K, 0, 0, 0)) == NULL) goto done;
    if (m->distilled && ((cls_logits = new_output(2, B, K, 0, 0, 0)) == NULL ||
                         (dist_logits = new_output(2, B, K, 0, 0, 0)) == NULL))
        goto done;
    if (m->Cp > 0 && (pooled = new_output(2, B, m->Cp, 0, 0, 0)) == NULL) goto done;
    if (want_hidden && (hidden = new_output(4, m->L + 1, B, T, C, 0)) == NULL) goto done;
    if (want_attn && (attn = new_output(5, m->L, B, m->H, T, T)) == NULL) goto done;
    if (want_mean && (attn_mean = new_output(4, m->L, B, T, T, 0)) == NULL) goto done;

    if (B > 0) {
        workspace *w = ws_acquire(self, &plan);
        if (w == NULL) goto done;
        float *buf = w->buf;
        const unsigned long long ws_id = w->id;
        const vit_outputs out = {data_or_null(last),       data_or_null(logits),
                                 data_or_null(cls_logits), data_or_null(dist_logits),
                                 data_or_null(pooled),     data_or_null(hidden),
                                 data_or_null(attn),       data_or_null(attn_mean),
                                 want_profile ? stages : NULL};
        const float *pixel_data = (const float *)PyArray_DATA(pixels);
        pending_error err = {NULL, NULL, NULL};
        vitc_stop stop = {0};
        if (vitc_py_is_main_thread()) {  // Python runs signal handlers on the main thread only
            stop.poll = poll_signals;
            stop.poll_ctx = &err;
            stop.poll_interval = SIGNAL_POLL_SECONDS;
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS vitc_busy_enter();
        vitc_stop_scope_begin(&stop);
        rc = vit_forward(m, &plan, &out, pixel_data, pos_data, buf);
        vitc_stop_scope_end();
        vitc_busy_leave();
        Py_END_ALLOW_THREADS ws_release(self, ws_id);
        if (rc != VIT_DONE || err.type) {  // (a handler may raise at the forward's last check)
            if (err.type)
                PyErr_Restore(err.type, err.value, err.tb);
            else
                PyErr_SetString(PyExc_RuntimeError, "forward: stopped: the interpreter is exiting");
            goto done;
        }
    }
    if (want_profile) {  // stage -> seconds (all zero for an empty batch)
        profile = PyDict_New();
        for (int i = 0; profile && i < VIT_STAGE_COUNT; i++) {
            PyObject *v = PyFloat_FromDouble(stages[i]);
            if (v == NULL || PyDict_SetItemString(profile, VIT_STAGES[i], v) < 0) Py_CLEAR(profile);
            Py_XDECREF(v);
        }
        if (profile == NULL) goto done;
    }
    result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "last_hidden_state",
                           (PyObject *)last,
                           "logits", logits ? (PyObject *)logits : Py_None, "pooler_output",
                           pooled ? (PyObject *)pooled : Py_None, "hidden_states",
                           hidden ? (PyObject *)hidden : Py_None, "attentions",
                           attn ? (PyObject *)attn : Py_None, "cls_logits",
                           cls_logits ? (PyObject *)cls_logits : Py_None, "distillation_logits",
                           dist_logits ? (PyObject *)dist_logits : Py_None, "attention_means",
                           attn_mean ? (PyObject *)attn_mean : Py_None, "profile",
                           profile ? profile : Py_None);
done:
    Py_XDECREF(profile);
    Py_XDECREF(attn_mean);
    Py_XDECREF(pixels);
    Py_XDECREF(pos);
    Py_XDECREF(last);
    Py_XDECREF(logits);
    Py_XDECREF(cls_logits);
    Py_XDECREF(dist_logits);
    Py_XDECREF(pooled);
    Py_XDECREF(hidden);
    Py_XDECREF(attn);
    return result;
}

// ---------------------------------------------------------------------------------------------
// Introspection

// _workspaces() -> [(B, H, W, nbytes, id)] of the idle workspaces, least recently used first.
static PyObject *Model_workspaces(ModelObject *self, PyObject *unused) {
    (void)unused;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    unsigned long long after = 0;
    for (;;) {  // in last-use order: the smallest last_use above `after`, repeatedly
        Py_ssize_t next = -1;
        for (Py_ssize_t i = 0; i < self->n_ws; i++) {
            const workspace *w = &self->ws[i];
            if (w->in_use || w->last_use <= after) continue;
            if (next < 0 || w->last_use < self->ws[next].last_use) next = i;
        }
        if (next < 0) return list;
        const workspace *w = &self->ws[next];
        after = w->last_use;
        PyObject *item =
            Py_BuildValue("(nnnnK)", (Py_ssize_t)w->B, (Py_ssize_t)w->Hi, (Py_ssize_t)w->Wi,
                          (Py_ssize_t)(w->len * sizeof(float)), w->id);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
}

static PyObject *get_tensors(ModelObject *self, void *closure) {
    (void)closure;
    return PyDict_Copy(self->tensors);
}

#define SIZE_GETTER(name, expr)                                     \
    static PyObject *get_##name(ModelObject *self, void *closure) { \
        (void)closure;                                              \
        return PyLong_FromSsize_t((Py_ssize_t)(expr));              \
    }
SIZE_GETTER(num_layers, self->m.L)
SIZE_GETTER(hidden_size, self->m.C)
SIZE_GETTER(num_heads, self->m.H)
SIZE_GETTER(mlp_size, self->m.F)
SIZE_GETTER(num_channels, self->m.Cin)
SIZE_GETTER(num_prefix_tokens, self->m.prefix)
SIZE_GETTER(num_classes, self->m.K)
SIZE_GETTER(pooler_size, self->m.Cp)
SIZE_GETTER(weight_nbytes, self->weight_nbytes)

static PyObject *get_patch_size(ModelObject *self, void *closure) {
    (void)closure;
    return Py_BuildValue("(nn)", (Py_ssize_t)self->m.Ph, (Py_ssize_t)self->m.Pw);
}

static PyObject *get_image_size(ModelObject *self, void *closure) {
    (void)closure;
    return Py_BuildValue("(nn)", (Py_ssize_t)self->image_h, (Py_ssize_t)self->image_w);
}

static PyObject *get_precision(ModelObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(VIT_PRECISIONS[self->m.wdtype]);
}

static PyObject *get_pool(ModelObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(VIT_POOLS[self->m.pool]);
}

static PyObject *get_has_head(ModelObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->m.head);
}

static PyObject *get_distilled(ModelObject *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->m.distilled);
}

static PyGetSetDef Model_getset[] = {
    {"tensors", (getter)get_tensors, NULL, "dict: every array the model reads, by name (a copy)."},
    {"num_layers", (getter)get_num_layers, NULL, "L"},
    {"hidden_size", (getter)get_hidden_size, NULL, "C"},
    {"num_heads", (getter)get_num_heads, NULL, "H"},
    {"mlp_size", (getter)get_mlp_size, NULL, "F"},
    {"num_channels", (getter)get_num_channels, NULL, "input channels"},
    {"patch_size", (getter)get_patch_size, NULL, "(height, width) of a patch"},
    {"image_size", (getter)get_image_size, NULL, "(height, width) the stored pos_embed is for"},
    {"num_prefix_tokens", (getter)get_num_prefix_tokens, NULL,
     "tokens before the patches (CLS, distillation, registers)"},
    {"has_head", (getter)get_has_head, NULL, "whether the model has a classifier head"},
    {"num_classes", (getter)get_num_classes, NULL, "rows of the head (0: identity or no head)"},
    {"distilled", (getter)get_distilled, NULL, "a distillation head averaged with the CLS head"},
    {"pooler_size", (getter)get_pooler_size, NULL, "pooler output size (0: no pooler)"},
    {"precision", (getter)get_precision, NULL, "precision of the blocks' weight matrices"},
    {"pool", (getter)get_pool, NULL, "what the head reads: 'token' (CLS) or 'avg'"},
    {"weight_nbytes", (getter)get_weight_nbytes, NULL, "bytes of the arrays the model reads"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Model_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))Model_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(pixels, pos_table=None, output_hidden_states=False, output_attentions=False, *, "
     "output_attention_means=False, profile=False) -> dict\n\n"
     "Run the model on float32 pixels (B, num_channels, H, W) (a remainder of H, W that the patch\n"
     "does not divide is dropped). pos_table (T, hidden_size): the position table for this\n"
     "grid (None: the stored one, for image_size). Returns a dict of arrays: last_hidden_state,\n"
     "logits, pooler_output, hidden_states (L+1, B, T, C), attentions (L, B, H, T, T),\n"
     "cls_logits, distillation_logits, attention_means (L, B, T, T: attentions averaged over\n"
     "heads, without keeping every head's) (None where absent or not asked), and with profile=True\n"
     "profile: {stage: seconds} summed over layers (patch_embed, qkv, attention, out_proj,\n"
     "mlp_up, gelu, mlp_down, norms, quantize, other; the activation then runs as a pass of its\n"
     "own, the same values). Ctrl-C on the main thread stops it within about 50 ms plus one\n"
     "work item (KeyboardInterrupt)."},
    {"_workspaces", (PyCFunction)Model_workspaces, METH_NOARGS,
     "_workspaces() -> list\n\nInternal (tests): (B, H, W, nbytes, id) of the idle workspaces, "
     "least recently used first."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vitc._core.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc =
        "Model(tensors, *, num_layers, hidden_size, num_heads, mlp_size, num_channels, "
        "patch_size, image_size, layer_norm_eps, hidden_act, precision='float32', "
        "pooler_act='tanh', pool='token')\n\n"
        "A ViT built once from its weights (a dict of vitc tensor names to arrays): every\n"
        "shape is checked here, the GEMM weights are packed for their kernels, and\n"
        "the arrays are kept. Tensors: patch_embed.proj.*, pos_embed, cls_token, optional\n"
        "dist_token / reg_token, blocks.{i}.*, optional norm.*, fc_norm.*, head.*, head_dist.*,\n"
        "pooler.*. See vitc.model.ViT for the user API.",
    .tp_methods = Model_methods,
    .tp_getset = Model_getset,
    .tp_new = Model_new,
};

// ---------------------------------------------------------------------------------------------
// Registration: the type and the names it accepts (Python mirrors none of them).

PyObject *vitc_py_set_workspace_limit(PyObject *self, PyObject *arg) {
    (void)self;
    const Py_ssize_t n = arg == Py_None ? 0 : PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "_set_workspace_limit: expected bytes >= 0 or None, got %zd",
                     n);
        return NULL;
    }
    g_workspace_limit = (size_t)n;
    Py_RETURN_NONE;
}

// PyModule_AddObjectRef, taking over `obj` (NULL: an error is set already).
static int add_owned(PyObject *module, const char *name, PyObject *obj) {
    if (obj == NULL) return -1;
    const int rc = PyModule_AddObjectRef(module, name, obj);
    Py_DECREF(obj);
    return rc;
}

static PyObject *name_tuple(const char *const *names, int n) {
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (s == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

int vitc_register_model(PyObject *module) {
    if (PyType_Ready(&ModelType) < 0) return -1;
    PyObject *pool_size = PyLong_FromLong(WORKSPACE_POOL_SIZE);
    const int rc =
        pool_size ? PyDict_SetItemString(ModelType.tp_dict, "WORKSPACE_POOL_SIZE", pool_size) : -1;
    Py_XDECREF(pool_size);
    if (rc < 0 || PyModule_AddObjectRef(module, "Model", (PyObject *)&ModelType) < 0) return -1;
    PyType_Modified(&ModelType);
    const char *acts[64];
    for (int i = 0; i < VIT_NUM_ACTIVATIONS && i < 64; i++) acts[i] = VIT_ACTIVATIONS[i].name;
    PyObject *packing =
        Py_BuildValue("{s:s,s:s}", "bfloat16", VITC_BF16_PACKING, "int8", VITC_INT8_PACKING);
    if (add_owned(module, "ACTIVATIONS", name_tuple(acts, VIT_NUM_ACTIVATIONS)) < 0 ||
        add_owned(module, "PRECISIONS", name_tuple(VIT_PRECISIONS, VITC_WEIGHTS_COUNT)) < 0 ||
        add_owned(module, "POOLS", name_tuple(VIT_POOLS, VITC_POOL_COUNT)) < 0 ||
        add_owned(module, "PACKING", packing) < 0)
        return -1;
    return 0;
}
