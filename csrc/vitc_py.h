// vitc_py.h: what the Python-facing C files (module.c, ufuncs.c, forward_py.c) share.
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

// ufuncs.c: creates the ufunc objects and adds them to the module; -1 with an exception set.
int vitc_register_ufuncs(PyObject *module);

// forward_py.c: method table entries for the model forward.
PyObject *vitc_py_vit_forward(PyObject *self, PyObject *args);
PyObject *vitc_py_vit_workspace_len(PyObject *self, PyObject *args);
#define VITC_PY_FORWARD_METHODS                                                               \
    {"vit_forward", vitc_py_vit_forward, METH_VARARGS, "internal: see vitc.model.ViT"},        \
    {"vit_workspace_len", vitc_py_vit_workspace_len, METH_VARARGS, "internal: see vitc.model"},

#endif  // VITC_PY_H
