// threads.h: vitc's thread pool and the thread-count setting it shares with the BLAS (threads.c).
// Pure C, no Python: kernels and the forward call it.
#ifndef VITC_THREADS_H
#define VITC_THREADS_H

#include "kernels/kernels.h"

// One setting for vitc's own parallel loops and its BLAS.
void vitc_set_num_threads(int n);
int vitc_get_num_threads(void);

// Run fn(ctx, begin, end, thread_id) over a static partition of [0, n) on vitc's thread pool,
// at most max_threads threads (thread_id < max_threads, so per-thread scratch can be indexed by
// it), the caller taking the first chunk; BLAS calls inside fn are single-threaded. Returns when
// all chunks are done. Falls back to one serial call when threads are 1 or the pool is busy.
typedef void (*vitc_task_fn)(void *ctx, vitc_int begin, vitc_int end, int thread_id);
void vitc_parallel_for(vitc_int n, int max_threads, vitc_task_fn fn, void *ctx);

#endif  // VITC_THREADS_H
