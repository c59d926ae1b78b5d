// module.c: the vitc._core extension module: a registration table and nothing else.
// Ufuncs are registered by ufuncs.c, the model forward lives in forward_py.c.
#define VITC_MODULE_INIT
#include "vitc_py.h"
#include "gemm_f32_py.h"

#include "vitc_blas.h"
#include "vitc_kernels.h"

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected 1 <= n <= 4096, got %ld", n);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS vitc_set_num_threads((int)n);
    Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(vitc_get_num_threads());
}

static PyObject *py_blas_info(PyObject *self, PyObject *unused) {
    const char *config = BLAS_FUNC(openblas_get_config)();
    const char *core = BLAS_FUNC(openblas_get_corename)();
    return Py_BuildValue("{s:s,s:s,s:i}", "config", config ? config : "", "corename",
                         core ? core : "", "num_threads", BLAS_FUNC(openblas_get_num_threads)());
}

static PyObject *py_cpu_features(PyObject *self, PyObject *unused) {
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {VITC_CPU_AVX2, "avx2"},           {VITC_CPU_FMA, "fma"},
        {VITC_CPU_AVX512F, "avx512f"},     {VITC_CPU_AVX512BW, "avx512bw"},
        {VITC_CPU_AVX512VL, "avx512vl"},   {VITC_CPU_AVX512_BF16, "avx512_bf16"},
        {VITC_CPU_AVX512_VNNI, "avx512_vnni"}, {VITC_CPU_AMX_BF16, "amx_bf16"},
        {VITC_CPU_AMX_INT8, "amx_int8"},
    };
    const unsigned features = vitc_cpu_features();
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(features & names[i].bit)) continue;
        PyObject *s = PyUnicode_FromString(names[i].name);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyMethodDef module_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O,
     "set_num_threads(n)\n\nUse n threads in vitc's kernels and its BLAS."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS,
     "get_num_threads() -> int\n\nThreads vitc and its BLAS use."},
    {"blas_info", py_blas_info, METH_NOARGS,
     "blas_info() -> dict\n\nOpenBLAS build configuration, core type and thread count."},
    {"cpu_features", py_cpu_features, METH_NOARGS,
     "cpu_features() -> list[str]\n\nCPU features detected at run time (usable by the OS)."},
    VITC_PY_FORWARD_METHODS VITC_PY_LOWP_METHODS VITC_PY_GEMM_F32_METHODS{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_core", "vitc's C core: NumPy ufuncs of ViT kernels and the forward pass.",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    import_umath();
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    if (vitc_register_ufuncs(m) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
