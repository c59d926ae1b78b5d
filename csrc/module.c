// module.c: the vitc._core extension module: a registration table and nothing else.
// Functions live in runtime_py.c (settings, reports, tiers, exit), lowp_py.c (reduced-precision
// kernel hooks), gemm_f32_py.c (fp32 GEMM hooks); ufuncs_py.c registers the ufuncs, model_py.c
// the Model type.
#define VITC_MODULE_INIT
#include "vitc_py.h"

static PyMethodDef module_methods[] = {
    {"set_num_threads", vitc_py_set_num_threads, METH_O,
     "set_num_threads(n)\n\nUse n threads in vitc's kernels and its BLAS."},
    {"get_num_threads", vitc_py_get_num_threads, METH_NOARGS,
     "get_num_threads() -> int\n\nThreads vitc and its BLAS use."},
    {"blas_info", vitc_py_blas_info, METH_NOARGS,
     "blas_info() -> dict\n\nOpenBLAS build configuration, core type and thread count."},
    {"cpu_features", vitc_py_cpu_features, METH_NOARGS,
     "cpu_features() -> list[str]\n\nCPU features detected at run time (usable by the OS)."},
    {"tier", vitc_py_tier, METH_NOARGS,
     "tier() -> str\n\nThe active kernel tier: 'amx', 'avx512', 'avx2' or 'portable' (the best "
     "this CPU supports, capped by the VITC_TIER environment variable)."},
    {"supported_tiers", vitc_py_supported_tiers, METH_NOARGS,
     "supported_tiers() -> tuple[str, ...]\n\nTiers that may run here, lowest first."},
    {"_set_tier", vitc_py_set_tier, METH_O,
     "_set_tier(name)\n\nInternal (tests, benchmarks): run the kernels of a lower tier; "
     "supported_tiers() lists the accepted names."},
    {"kernels", vitc_py_kernels, METH_NOARGS,
     "kernels() -> dict[str, str]\n\nFor each op with several implementations, the code it runs "
     "at the active tier."},
    {"_at_exit", vitc_py_at_exit, METH_NOARGS,
     "_at_exit() -> bool\n\nInternal (registered with atexit at import): stop running vitc calls "
     "and wait until none is in vitc's code; False if one was still running after the bound."},
    {"_set_workspace_limit", vitc_py_set_workspace_limit, METH_O,
     "_set_workspace_limit(nbytes)\n\nInternal (tests): a Model workspace larger than nbytes fails "
     "with MemoryError as an allocation failure does; None or 0: no limit."},
    VITC_PY_LOWP_METHODS VITC_PY_GEMM_F32_METHODS{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_core",
    "vitc's C core: NumPy ufuncs of ViT kernels and the forward pass.",
    -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (vitc_check_tier_env() < 0) return NULL;
    import_array();
    import_umath();
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    if (vitc_register_ufuncs(m) < 0 || vitc_register_model(m) < 0 || vitc_init_runtime(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
