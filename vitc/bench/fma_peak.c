// fma_peak.c: the machine's fp32 FMA ceiling, measured as vitc bench's "100% of peak".
// Each thread (pinned to one core) runs independent vfmadd231ps chains that never touch memory;
// this is not a GEMM benchmark and says nothing about caches or bandwidth.
//
// Build: gcc -O3 -mavx512f -mfma -pthread fma_peak.c   (or -mavx2 -mfma -DFMA_PEAK_AVX2)
// Usage: ./fma_peak THREADS SECONDS  ->  one JSON line on stdout.
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

// 12 accumulators: FMA latency (4 cycles) x 2 pipes, plus slack, so the chains never stall
// on a dependency and the core's FMA units are the only limit.
#define N_CHAINS 12
// Inner iterations between clock reads: long enough that the timer costs nothing.
static const long ITERS_PER_ROUND = 1L << 20;

#ifdef FMA_PEAK_AVX2
typedef __m256 vec;
#define VEC_LANES 8
#define VEC_SET1 _mm256_set1_ps
#define VEC_FMA _mm256_fmadd_ps
#define VEC_ADD _mm256_add_ps
#define VEC_STORE _mm256_storeu_ps
static const char *ISA = "avx2 vfmadd231ps ymm";
#else
typedef __m512 vec;
#define VEC_LANES 16
#define VEC_SET1 _mm512_set1_ps
#define VEC_FMA _mm512_fmadd_ps
#define VEC_ADD _mm512_add_ps
#define VEC_STORE _mm512_storeu_ps
static const char *ISA = "avx512f vfmadd231ps zmm";
#endif

typedef struct {
    int cpu;            // core to pin to, -1 for none
    double seconds;     // how long to run
    long rounds;        // out: rounds completed
    double elapsed;     // out: wall time of this thread's loop
    float sink;         // out: keeps the chains alive
} job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *run(void *arg) {
    job *j = (job *)arg;
    if (j->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(j->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
    }
    // Multiplier just below 1 and a small addend: values stay finite and normal forever.
    const vec a = VEC_SET1(0.999999f), b = VEC_SET1(1e-7f);
    vec acc[N_CHAINS];
    for (int c = 0; c < N_CHAINS; c++) acc[c] = VEC_SET1((float)c);
    double t0 = now(), t = t0;
    long rounds = 0;
    while (t - t0 < j->seconds) {
        for (long i = 0; i < ITERS_PER_ROUND; i++) {
            for (int c = 0; c < N_CHAINS; c++) acc[c] = VEC_FMA(acc[c], a, b);
        }
        rounds++;
        t = now();
    }
    vec sum = acc[0];
    for (int c = 1; c < N_CHAINS; c++) sum = VEC_ADD(sum, acc[c]);
    float lanes[VEC_LANES];
    VEC_STORE(lanes, sum);
    j->sink = lanes[0];
    j->rounds = rounds;
    j->elapsed = t - t0;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    if (threads < 1 || threads > 1024 || seconds <= 0) {
        fprintf(stderr, "usage: %s THREADS SECONDS\n", argv[0]);
        return 2;
    }
    pthread_t *tid = calloc(threads, sizeof(*tid));
    job *jobs = calloc(threads, sizeof(*jobs));
    if (!tid || !jobs) return 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < threads; i++) {
        jobs[i].cpu = threads <= ncpu ? i : -1;
        jobs[i].seconds = seconds;
        pthread_create(&tid[i], NULL, run, &jobs[i]);
    }
    double total_flop = 0, max_elapsed = 0, sink = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        // 2 flops (multiply + add) per lane per FMA.
        total_flop += (double)jobs[i].rounds * ITERS_PER_ROUND * N_CHAINS * VEC_LANES * 2.0;
        if (jobs[i].elapsed > max_elapsed) max_elapsed = jobs[i].elapsed;
        sink += jobs[i].sink;
    }
    printf("{\"isa\": \"%s\", \"threads\": %d, \"seconds\": %.3f, \"gflops\": %.2f, \"sink\": %g}\n", ISA,
           threads, max_elapsed, total_flop / max_elapsed * 1e-9, sink);
    free(tid);
    free(jobs);
    return 0;
}
