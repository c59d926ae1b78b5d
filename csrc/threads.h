// threads.h: vitc's thread pool and the thread-count setting it shares with the BLAS (threads.c).
// Pure C, no Python: kernels and the forward call it.
#ifndef VITC_THREADS_H
#define VITC_THREADS_H

#include <stdatomic.h>

#include "kernels/kernels.h"

// Seconds on a monotonic clock (profiles, poll intervals).
double vitc_seconds(void);

// One setting for vitc's own parallel loops and its BLAS.
void vitc_set_num_threads(int n);
int vitc_get_num_threads(void);

// Run fn(ctx, begin, end, thread_id) over a static partition of [0, n) on vitc's thread pool,
// at most max_threads threads (thread_id < max_threads, so per-thread scratch can be indexed by
// it), the caller taking the first chunk; BLAS calls inside fn are single-threaded. Returns when
// all chunks are done. Falls back to one serial call when threads are 1 or the pool is busy.
typedef void (*vitc_task_fn)(void *ctx, vitc_int begin, vitc_int end, int thread_id);
void vitc_parallel_for(vitc_int n, int max_threads, vitc_task_fn fn, void *ctx);

// ---------------------------------------------------------------------------------------------
// Stopping early (Ctrl-C during a forward, the interpreter exiting). A caller that can be stopped
// opens a stop scope on its thread; vitc_parallel_for carries the scope to the workers of its
// regions. Kernels call vitc_stopping() between work items (a GEMM column block, an attention head,
// a panel) and return early when it is nonzero; the caller then discards its outputs. Work items
// are bounded (one image's rows by one column block at most), so a stop takes effect within one.
typedef struct {
    atomic_int requested;  // set by poll, by vitc_begin_exit, or by another thread
    // Called on the thread that opened the scope, at most every poll_interval seconds, from
    // vitc_stopping(); nonzero requests the stop (the Python glue checks for signals here).
    int (*poll)(void *ctx);
    void *poll_ctx;
    double poll_interval;
    double next_poll;  // private to threads.c
} vitc_stop;

// Open / close the calling thread's scope (scopes do not nest: the inner one replaces the outer
// until closed, then none is open).
void vitc_stop_scope_begin(vitc_stop *stop);
void vitc_stop_scope_end(void);
// Nonzero when the current work should stop: its scope's stop was requested, or vitc is exiting.
int vitc_stopping(void);

// Interpreter exit: calls into vitc that release the GIL count themselves busy; at exit every
// kernel stops (vitc_exiting) and vitc_wait_idle returns once none is busy (1) or after `seconds`
// (0), so no vitc or BLAS code runs when the process tears its libraries down.
void vitc_busy_enter(void);
void vitc_busy_leave(void);
void vitc_begin_exit(void);
int vitc_exiting(void);
int vitc_wait_idle(double seconds);

#endif  // VITC_THREADS_H
