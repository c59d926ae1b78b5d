// runtime_py.c: Python functions of vitc's run-time settings and reports: thread count, BLAS
// build, CPU features and the kernel tier (cpu.h). Not the ufuncs (ufuncs_py.c) or the model
// (model_py.c); module.c only registers these.
#include "cpu.h"
#include "kernels/blas.h"
#include "threads.h"
#include "vitc_py.h"

PyObject *vitc_py_set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: expected 1 <= n <= 4096, got %ld", n);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS vitc_set_num_threads((int)n);
    Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

PyObject *vitc_py_get_num_threads(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromLong(vitc_get_num_threads());
}

PyObject *vitc_py_blas_info(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    const char *config = BLAS_FUNC(openblas_get_config)();
    const char *core = BLAS_FUNC(openblas_get_corename)();
    return Py_BuildValue("{s:s,s:s,s:i}", "config", config ? config : "", "corename",
                         core ? core : "", "num_threads", BLAS_FUNC(openblas_get_num_threads)());
}

PyObject *vitc_py_cpu_features(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {VITC_CPU_AVX2, "avx2"},
        {VITC_CPU_FMA, "fma"},
        {VITC_CPU_AVX512F, "avx512f"},
        {VITC_CPU_AVX512BW, "avx512bw"},
        {VITC_CPU_AVX512VL, "avx512vl"},
        {VITC_CPU_AVX512_BF16, "avx512_bf16"},
        {VITC_CPU_AVX512_VNNI, "avx512_vnni"},
        {VITC_CPU_AMX_BF16, "amx_bf16"},
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

// ---------------------------------------------------------------------------------------------
// Tiers

PyObject *vitc_py_tier(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(vitc_tier_name(vitc_active_tier()));
}

// Tiers that may run here, lowest first: every tier up to min(best, VITC_TIER).
PyObject *vitc_py_supported_tiers(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    const vitc_tier max = vitc_max_tier();
    PyObject *out = PyTuple_New((Py_ssize_t)max + 1);
    if (out == NULL) return NULL;
    for (int t = 0; t <= (int)max; t++) {
        PyObject *name = PyUnicode_FromString(vitc_tier_name((vitc_tier)t));
        if (name == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, t, name);
    }
    return out;
}

// The accepted names, for messages: "amx, avx512, avx2, portable" (highest first, as documented).
static void tier_names(char *buf, size_t len) {
    buf[0] = '\0';
    for (int t = VITC_TIER_COUNT - 1; t >= 0; t--) {
        const size_t used = strlen(buf);
        PyOS_snprintf(buf + used, len - used, "%s%s", vitc_tier_name((vitc_tier)t),
                      t > 0 ? ", " : "");
    }
}

PyObject *vitc_py_set_tier(PyObject *self, PyObject *arg) {
    (void)self;
    char names[64];
    tier_names(names, sizeof names);
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "_set_tier: expected a tier name (%s), got %s", names,
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    vitc_tier tier;
    if (vitc_tier_parse(name, &tier) < 0) {
        PyErr_Format(PyExc_ValueError, "_set_tier: expected one of %s, got %R", names, arg);
        return NULL;
    }
    if (vitc_set_tier_override(tier) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "_set_tier: %s is not supported here: this CPU and VITC_TIER allow at most %s",
                     vitc_tier_name(tier), vitc_tier_name(vitc_max_tier()));
        return NULL;
    }
    Py_RETURN_NONE;
}

// {op name: the code it runs at the active tier}, in the order of cpu.h's op list.
PyObject *vitc_py_kernels(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (int op = 0; op < VITC_OP_COUNT; op++) {
        PyObject *code = PyUnicode_FromString(vitc_op_code((vitc_op)op));
        if (code == NULL || PyDict_SetItemString(out, vitc_op_name((vitc_op)op), code) < 0) {
            Py_XDECREF(code);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(code);
    }
    return out;
}

int vitc_check_tier_env(void) {
    const char *bad;
    if (vitc_tier_env_error(&bad) == 0) return 0;
    char names[64];
    tier_names(names, sizeof names);
    PyErr_Format(PyExc_ValueError, "VITC_TIER: expected one of %s (or unset), got '%s'", names,
                 bad);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Main thread and exit

// Seconds the exit hook waits for running calls to leave vitc's code: every kernel stops within
// one work item (threads.h), far less than this.
static const double EXIT_WAIT_SECONDS = 10.0;
static unsigned long g_main_thread = 0;

int vitc_py_is_main_thread(void) {
    return PyThread_get_thread_ident() == g_main_thread;
}

// At interpreter exit, daemon threads may still be inside vitc (a forward, a ufunc) when the
// process tears OpenBLAS down (seen: segfaults, and hangs in blas_thread_shutdown_). Python runs
// this hook before it finalizes: every kernel stops at its next work item, and the hook waits for
// the calls to leave vitc's code; they then block on the GIL, which they never get back.
PyObject *vitc_py_at_exit(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    vitc_begin_exit();
    int idle;
    Py_BEGIN_ALLOW_THREADS idle = vitc_wait_idle(EXIT_WAIT_SECONDS);
    Py_END_ALLOW_THREADS return PyBool_FromLong(idle);
}

int vitc_init_runtime(PyObject *module) {
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main ? PyObject_GetAttrString(main, "ident") : NULL;
    Py_XDECREF(threading);
    Py_XDECREF(main);
    if (ident == NULL) return -1;
    g_main_thread = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred()) return -1;
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *hook = atexit ? PyObject_GetAttrString(module, "_at_exit") : NULL;
    PyObject *r = hook ? PyObject_CallMethod(atexit, "register", "O", hook) : NULL;
    Py_XDECREF(atexit);
    Py_XDECREF(hook);
    Py_XDECREF(r);
    return r ? 0 : -1;
}
