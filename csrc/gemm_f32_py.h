// gemm_f32_py.h: method table entries of the private hooks in gemm_f32_py.c (vitc._core._gemm_f32,
// _gemm_f32_pack, _gemm_f32_tiers), for module.c. Includes Python; kernel files never include it.
#ifndef VITC_GEMM_F32_PY_H
#define VITC_GEMM_F32_PY_H

#include "vitc_py.h"

PyObject *vitc_py_gemm_f32_pack(PyObject *self, PyObject *w);
PyObject *vitc_py_gemm_f32(PyObject *self, PyObject *args, PyObject *kwargs);
PyObject *vitc_py_gemm_f32_tiers(PyObject *self, PyObject *noargs);

#define VITC_PY_GEMM_F32_METHODS                                                                   \
    {"_gemm_f32_pack", vitc_py_gemm_f32_pack, METH_O,                                              \
     "_gemm_f32_pack(w) -> packed\n\ninternal: float32 (N, K) weights in 16-column panels."},      \
        {"_gemm_f32", (PyCFunction)(void (*)(void))vitc_py_gemm_f32, METH_VARARGS | METH_KEYWORDS, \
         "_gemm_f32(x, packed, b, act, residual_out, N, *, tier=None, splits=None) -> out\n\n"     \
         "internal: vitc's deterministic fp32 GEMM on packed weights."},                           \
        {"_gemm_f32_tiers", vitc_py_gemm_f32_tiers, METH_NOARGS,                                   \
         "_gemm_f32_tiers() -> tuple[str, ...]\n\ninternal: the fp32 GEMM tiers this CPU runs, "   \
         "lowest first."},

#endif  // VITC_GEMM_F32_PY_H
