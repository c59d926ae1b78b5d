// vitc_py.h: what the Python-facing C files (module.c, runtime_py.c, ufuncs_py.c, model_py.c,
// lowp_py.c, gemm_f32_py.c) share.
// Kernel files never include this (it pulls in Python.h and NumPy's C API).
// module.c defines VITC_MODULE_INIT before including it: it alone imports the NumPy API tables.
#ifndef VITC_PY_H
#define VITC_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL vitc_ARRAY_API
#define PY_UFUNC_UNIQUE_SYMBOL vitc_UFUNC_API
#ifndef VITC_MODULE_INIT
#define NO_IMPORT_ARRAY
#define NO_IMPORT_UFUNC
#endif
#include <numpy/arrayobject.h>
#include <numpy/ufuncobject.h>

// ufuncs_py.c: creates the ufunc objects and adds them to the module; -1 with an exception set.
int vitc_register_ufuncs(PyObject *module);

// runtime_py.c: threads, BLAS and CPU reports, kernel tiers.
PyObject *vitc_py_set_num_threads(PyObject *self, PyObject *arg);
PyObject *vitc_py_get_num_threads(PyObject *self, PyObject *unused);
PyObject *vitc_py_blas_info(PyObject *self, PyObject *unused);
PyObject *vitc_py_cpu_features(PyObject *self, PyObject *unused);
PyObject *vitc_py_tier(PyObject *self, PyObject *unused);
PyObject *vitc_py_supported_tiers(PyObject *self, PyObject *unused);
PyObject *vitc_py_set_tier(PyObject *self, PyObject *arg);
PyObject *vitc_py_kernels(PyObject *self, PyObject *unused);
// -1 with ValueError set when the VITC_TIER environment variable names no tier.
int vitc_check_tier_env(void);

// At import: remember the main thread, register the exit hook (atexit.register(_core._at_exit)).
int vitc_init_runtime(PyObject *module);
// Whether the calling thread is Python's main thread (the one that runs signal handlers).
int vitc_py_is_main_thread(void);
// _at_exit(): stop every running vitc call and wait (bounded) until none runs vitc or BLAS code.
PyObject *vitc_py_at_exit(PyObject *self, PyObject *unused);

// model_py.c: the Model type and the names it accepts (ACTIVATIONS, PRECISIONS, POOLS, PACKING).
int vitc_register_model(PyObject *module);
PyObject *vitc_py_set_workspace_limit(PyObject *self, PyObject *arg);

// lowp_py.c: private hooks to test and benchmark the bf16/int8 kernels (kernels/gemm_*.c).
PyObject *vitc_py_pack_bf16(PyObject *self, PyObject *w);
PyObject *vitc_py_linear_bf16(PyObject *self, PyObject *args);
PyObject *vitc_py_pack_int8(PyObject *self, PyObject *w);
PyObject *vitc_py_linear_int8(PyObject *self, PyObject *args);
PyObject *vitc_py_attention_bf16(PyObject *self, PyObject *args);
PyObject *vitc_py_set_attention_emulation(PyObject *self, PyObject *on);
#define VITC_PY_LOWP_METHODS                                                                  \
    {"_pack_bf16", vitc_py_pack_bf16, METH_O,                                                  \
     "_pack_bf16(w) -> uint16 array\n\ninternal: pack float32 (N, K) weights for _linear_bf16."}, \
    {"_linear_bf16", vitc_py_linear_bf16, METH_VARARGS,                                        \
     "_linear_bf16(x, w_packed, N, K, b, act) -> out\n\ninternal: bf16 linear layer."},        \
    {"_pack_int8", vitc_py_pack_int8, METH_O,                                                  \
     "_pack_int8(w) -> (packed, scales, col_sums)\n\ninternal: int8 weights per channel."},   \
    {"_linear_int8", vitc_py_linear_int8, METH_VARARGS,                                        \
     "_linear_int8(x, packed, scales, col_sums, N, K, b, act) -> out\n\ninternal: int8 linear."}, \
    {"_attention_bf16", vitc_py_attention_bf16, METH_VARARGS,                                   \
     "_attention_bf16(q, k, v, scale) -> out\n\ninternal: the bf16 attention kernel (AMX or "     \
     "AVX-512 BF16, or their emulation)."},                                                     \
    {"_set_attention_emulation", vitc_py_set_attention_emulation, METH_O,                      \
     "_set_attention_emulation(on)\n\ninternal (tests): run the AVX-512 BF16 attention's "     \
     "source on a portable emulation of its instructions, on any CPU, in the models and "      \
     "_attention_bf16; False restores the tier's code."},

// gemm_f32_py.c: private hooks to test and benchmark the fp32 GEMM (kernels/gemm_f32.c).
PyObject *vitc_py_gemm_f32_pack(PyObject *self, PyObject *w);
PyObject *vitc_py_gemm_f32(PyObject *self, PyObject *args, PyObject *kwargs);
#define VITC_PY_GEMM_F32_METHODS                                                                 \
    {"_gemm_f32_pack", vitc_py_gemm_f32_pack, METH_O,                                            \
     "_gemm_f32_pack(w) -> packed\n\ninternal: float32 (N, K) weights in 16-column panels."},    \
    {"_gemm_f32", (PyCFunction)(void (*)(void))vitc_py_gemm_f32, METH_VARARGS | METH_KEYWORDS,   \
     "_gemm_f32(x, packed, b, act, residual_out, N, *, tier=None, splits=None) -> out\n\n"       \
     "internal: vitc's deterministic fp32 GEMM on packed weights; tier: a name of "             \
     "supported_tiers() or 'avx512_shape' (test only), None: the active tier."},

#endif  // VITC_PY_H
