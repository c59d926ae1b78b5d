// forward_py.c: placeholder until the model forward lands.
#include "vitc_py.h"
PyObject *vitc_py_vit_forward(PyObject *self, PyObject *args) {
    PyErr_SetString(PyExc_NotImplementedError, "vit_forward is not built yet");
    return NULL;
}
