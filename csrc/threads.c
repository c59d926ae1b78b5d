// threads.c: the single thread-count setting shared by vitc's own loops and its BLAS.
// vitc never runs its own parallel region while a BLAS call is in flight, so one number
// bounds the busy threads (no oversubscription of the cores).
#include "vitc_blas.h"
#include "vitc_kernels.h"

static int g_num_threads = 0;  // 0: not set yet, BLAS default (all cores)

void vitc_set_num_threads(int n) {
    if (n < 1) n = 1;
    g_num_threads = n;
    BLAS_FUNC(openblas_set_num_threads)(n);
}

int vitc_get_num_threads(void) {
    if (g_num_threads == 0) return BLAS_FUNC(openblas_get_num_threads)();
    return g_num_threads;
}
