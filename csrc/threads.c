// threads.c: vitc's one thread pool and the thread-count setting it shares with the BLAS.
// While a vitc parallel region runs, OpenBLAS is set to one thread, so BLAS calls inside the
// region run on the calling worker and vitc's workers and OpenBLAS's never compete for the
// cores; outside regions, BLAS calls use the same number of threads as vitc. Not a general task
// system: one static partition of [0, n) per region. Also the stop scopes (Ctrl-C, exit) that
// regions carry to their workers, and the busy count the exit hook waits on.
#define _POSIX_C_SOURCE 200809L  // clock_gettime, nanosleep under -std=c11
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/blas.h"
#include "threads.h"

enum { MAX_THREADS = 256 };

// The thread-count setting and the BLAS count it drives. A region sets OpenBLAS to one thread
// and must restore the setting current at its end (not the one read at its start: another Python
// thread may call set_num_threads meanwhile). set_num_threads during a region only records the
// value; the region owner applies it to the BLAS when the region ends. Both under `setting.lock`
// so a restore never overwrites a newer setting.
static struct {
    pthread_mutex_t lock;
    int num_threads;    // 0: not set yet, the BLAS default (all cores)
    int region_active;  // a region has the BLAS at one thread
} setting = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

// Callers hold setting.lock. The first read takes the BLAS default (all cores); vitc_parallel_for
// reads the setting before its first region lowers the BLAS count.
static int num_threads_locked(void) {
    if (setting.num_threads == 0) setting.num_threads = BLAS_FUNC(openblas_get_num_threads)();
    return setting.num_threads;
}

// ---------------------------------------------------------------------------------------------
// The pool: workers sleep on `wake` until `generation` changes, run their chunk, count down.
static struct {
    pthread_mutex_t lock;      // guards everything below
    pthread_cond_t wake, done;
    pthread_mutex_t region;    // held by the thread that owns the pool during a region
    int started;               // workers created
    unsigned long generation;  // bumped per region
    int pending;               // workers still running the current region
    int nthreads;              // threads of the current region (caller included)
    vitc_int n;
    vitc_task_fn fn;
    void *ctx;
    vitc_stop *stop;  // the region owner's stop scope, carried to the workers
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, NULL, NULL, NULL};

// The calling thread's stop scope; `owner`: this thread opened it (and may poll it).
static _Thread_local vitc_stop *tls_stop = NULL;
static _Thread_local int tls_owner = 0;
static atomic_int g_busy = 0;  // calls into vitc running without the GIL
static atomic_int g_exit = 0;  // the interpreter is exiting

static void chunk(vitc_int n, int nthreads, int t, vitc_int *begin, vitc_int *end) {
    *begin = n * t / nthreads;
    *end = n * (t + 1) / nthreads;
}

static void *worker_main(void *arg) {
    const int id = (int)(size_t)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        if (id >= pool.nthreads) continue;  // this region uses fewer threads
        const vitc_int n = pool.n;
        const int nthreads = pool.nthreads;
        vitc_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        tls_stop = pool.stop;
        tls_owner = 0;  // only the scope's own thread polls
        pthread_mutex_unlock(&pool.lock);
        vitc_int begin, end;
        chunk(n, nthreads, id, &begin, &end);
        if (begin < end) fn(ctx, begin, end, id);
        tls_stop = NULL;
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

// A forked child has none of the parent's workers: start again lazily.
static void reset_after_fork(void) {
    pthread_mutex_init(&setting.lock, NULL);
    setting.region_active = 0;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_mutex_init(&pool.region, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.pending = 0;
    atomic_store(&g_busy, 0);  // the threads that were busy do not exist in the child
}

// Before a fork: no vitc thread may be inside openblas_set_num_threads (always called under
// setting.lock), or the child inherits OpenBLAS's own server lock held by a thread it does not
// have (seen: a region's BLAS count change racing OpenBLAS's fork handler, which shuts its server
// down so that the next set_num_threads restarts it; the child then hung in its first region).
// Handlers registered later run their prepare step first: this one before OpenBLAS's.
static void prepare_fork(void) {
    pthread_mutex_lock(&setting.lock);
}

static void parent_after_fork(void) {
    pthread_mutex_unlock(&setting.lock);
}

// Registered once, before the first use of any lock here (the setting's included): a fork while
// another thread holds one must not leave the child's copy locked forever.
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_registered = 0;
static void register_atfork(void) {
    atfork_registered = pthread_atfork(prepare_fork, parent_after_fork, reset_after_fork) == 0;
}

// Start workers up to `want` - 1 (the caller is thread 0); returns how many threads are usable.
static int ensure_workers(int want) {
    pthread_once(&atfork_once, register_atfork);
    if (!atfork_registered) return 1;  // no fork handler: run on the calling thread only
    while (pool.started < want - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) != 0) break;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int rc = pthread_create(&tid, &attr, worker_main, (void *)(size_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;  // fewer threads than asked: still correct
        pool.started++;
    }
    return pool.started + 1;
}

static void run_serial(vitc_int n, vitc_task_fn fn, void *ctx) {
    if (n > 0) fn(ctx, 0, n, 0);
}

// Wait for the region's workers. A caller whose stop scope polls (Ctrl-C on the main thread) keeps
// polling while it waits, so workers slower than the caller still hear a stop within a work item.
static void wait_for_workers(void) {
    const int polls = tls_stop != NULL && tls_owner && tls_stop->poll != NULL;
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) {
        if (!polls) {
            pthread_cond_wait(&pool.done, &pool.lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000 * 1000;  // 20 ms
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&pool.done, &pool.lock, &until) == 0 || pool.pending == 0)
            continue;
        pthread_mutex_unlock(&pool.lock);  // the poll may take the GIL: hold no lock of ours
        vitc_stopping();
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
}

void vitc_parallel_for(vitc_int n, int max_threads, vitc_task_fn fn, void *ctx) {
    int want = vitc_get_num_threads();
    if (want > max_threads) want = max_threads;
    if (want > MAX_THREADS) want = MAX_THREADS;
    if (want > n) want = (int)n;
    // One thread, or another Python thread owns the pool: run on the calling thread alone
    // (its BLAS calls may then use BLAS threads: no vitc worker competes with them).
    if (want <= 1 || pthread_mutex_trylock(&pool.region) != 0) {
        run_serial(n, fn, ctx);
        return;
    }
    // The BLAS thread count is process-wide in OpenBLAS (no per-thread setting in the wheel's
    // build): single-threaded for the region, back to the setting after it.
    pthread_mutex_lock(&setting.lock);
    num_threads_locked();  // the default is read before the BLAS count is lowered
    setting.region_active = 1;
    BLAS_FUNC(openblas_set_num_threads)(1);
    pthread_mutex_unlock(&setting.lock);
    pthread_mutex_lock(&pool.lock);
    const int nthreads = ensure_workers(want) < want ? pool.started + 1 : want;
    pool.n = n;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.stop = tls_stop;
    pool.nthreads = nthreads;
    pool.pending = nthreads - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    vitc_int begin, end;
    chunk(n, nthreads, 0, &begin, &end);
    if (begin < end) fn(ctx, begin, end, 0);

    wait_for_workers();
    // The setting as it is now: a set_num_threads during the region only recorded its value.
    pthread_mutex_lock(&setting.lock);
    setting.region_active = 0;
    BLAS_FUNC(openblas_set_num_threads)(setting.num_threads);
    pthread_mutex_unlock(&setting.lock);
    pthread_mutex_unlock(&pool.region);
}

// ---------------------------------------------------------------------------------------------
void vitc_set_num_threads(int n) {
    if (n < 1) n = 1;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&setting.lock);
    setting.num_threads = n;
    // During a region the BLAS stays at one thread; the region's end applies n.
    if (!setting.region_active) BLAS_FUNC(openblas_set_num_threads)(n);
    pthread_mutex_unlock(&setting.lock);
}

int vitc_get_num_threads(void) {
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&setting.lock);
    const int n = num_threads_locked();
    pthread_mutex_unlock(&setting.lock);
    return n;
}

// ---------------------------------------------------------------------------------------------
// Stop scopes, busy count, exit

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double vitc_seconds(void) {
    return monotonic_seconds();
}

void vitc_stop_scope_begin(vitc_stop *stop) {
    stop->next_poll = monotonic_seconds() + stop->poll_interval;
    tls_stop = stop;
    tls_owner = 1;
}

void vitc_stop_scope_end(void) {
    tls_stop = NULL;
    tls_owner = 0;
}

int vitc_stopping(void) {
    if (atomic_load_explicit(&g_exit, memory_order_relaxed)) return 1;
    vitc_stop *s = tls_stop;
    if (s == NULL) return 0;
    if (atomic_load_explicit(&s->requested, memory_order_relaxed)) return 1;
    if (!tls_owner || s->poll == NULL) return 0;
    const double now = monotonic_seconds();
    if (now < s->next_poll) return 0;
    s->next_poll = now + s->poll_interval;
    if (!s->poll(s->poll_ctx)) return 0;
    atomic_store_explicit(&s->requested, 1, memory_order_relaxed);
    return 1;
}

void vitc_busy_enter(void) { atomic_fetch_add(&g_busy, 1); }

void vitc_busy_leave(void) { atomic_fetch_sub(&g_busy, 1); }

void vitc_begin_exit(void) { atomic_store(&g_exit, 1); }

int vitc_exiting(void) { return atomic_load_explicit(&g_exit, memory_order_relaxed); }

int vitc_wait_idle(double seconds) {
    const double deadline = monotonic_seconds() + seconds;
    const struct timespec nap = {0, 1000000};  // 1 ms
    while (atomic_load(&g_busy) > 0) {
        if (monotonic_seconds() >= deadline) return 0;
        nanosleep(&nap, NULL);
    }
    return 1;
}
