// fma_peak.c: the machine's ceilings for every instruction vitc's kernels (and its peers') use, measured
// as vitc bench's "100% of peak". Each thread (pinned to one core) runs independent chains of one
// instruction that never touch memory; this is not a GEMM benchmark and says nothing about caches or
// bandwidth.
//
// Kinds (the first argument; the Python side, vitc/bench/peak.py, runs only those the CPU has):
//   fp32_ymm   vfmadd231ps ymm                        (AVX2 + FMA)         8 lanes x 2 flop
//   fp32_zmm   vfmadd231ps zmm                        (AVX-512F)          16 lanes x 2 flop
//   bf16_zmm   vdpbf16ps zmm                          (AVX512_BF16)       16 lanes x 2 pairs x 2 flop
//   int8_zmm   vpdpbusd zmm                           (AVX512_VNNI)       16 lanes x 4 pairs x 2 op
//   int8_ymm   vpmaddubsw + vpmaddwd + vpaddd ymm     (AVX2: the int8 GEMM sequence without VNNI)
//                                                                         32 u8 x s8 products x 2 op
//   amx_bf16   tdpbf16ps, 16x16 fp32 tiles, K = 32    (AMX-BF16)          16 x 16 x 32 x 2 flop
//   amx_int8   tdpbusd, 16x16 int32 tiles, K = 64     (AMX-INT8)          16 x 16 x 64 x 2 op
// An int8 "op" is a multiply or an add, as a flop is: one u8 x s8 multiply-accumulate is 2 ops.
//
// Every kernel carries its own target attribute, so the file builds with plain `gcc -O3 -pthread` and
// runs on any x86-64 CPU as long as only the kinds the CPU has are asked for. A compiler without the
// AVX-512 BF16 or AMX intrinsics builds it with -DFMA_PEAK_NO_AVX512 / -DFMA_PEAK_NO_AMX.
//
// Build: gcc -O3 -pthread fma_peak.c -o fma_peak
// Usage: ./fma_peak KIND THREADS SECONDS  ->  one JSON line on stdout (exit 2: usage, 3: kind refused).
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// Inner iterations between clock reads: long enough that the timer costs nothing, short enough that a
// one-second trial ends on time even for AMX (~16 cycles per instruction).
static const long ITERS_PER_ROUND = 1L << 16;

typedef struct {
    int cpu;              // core to pin to, -1 for none
    double seconds;       // how long to run
    long rounds;          // out: rounds completed
    double elapsed;       // out: wall time of this thread's loop
    double cpu_elapsed;   // out: CPU time this thread got during its loop
    double sink;          // out: keeps the chains alive
    int failed;           // out: the kernel could not run (AMX tile permission)
} job;

typedef void (*kernel_fn)(job *j);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// CPU time of the calling thread: on a machine shared with other processes the rate per second of CPU
// time is what the core delivers while the thread runs, the ceiling; the wall-clock rate is that times
// the share of the core the thread got.
static double thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// The timing loop shared by every kind: BODY runs ITERS_PER_ROUND times per round until SECONDS pass.
#define TIMED_LOOP(BODY)                                                 \
    double t0 = now(), t = t0, c0 = thread_cpu_now();                    \
    long rounds = 0;                                                     \
    while (t - t0 < j->seconds) {                                        \
        for (long i = 0; i < ITERS_PER_ROUND; i++) {                     \
            BODY                                                         \
        }                                                                \
        rounds++;                                                        \
        t = now();                                                       \
    }                                                                    \
    j->rounds = rounds;                                                  \
    j->elapsed = t - t0;                                                 \
    j->cpu_elapsed = thread_cpu_now() - c0;

// ---- fp32 FMA, ymm ------------------------------------------------------------------------------
// 12 accumulators: FMA latency (4-5 cycles) x 2 pipes, plus slack, so the chains never stall on a
// dependency and the FMA units are the only limit (14 of the 16 ymm registers).
#define YMM_CHAINS 12
__attribute__((target("avx2,fma"))) static void fp32_ymm(job *j) {
    // Multiplier just below 1 and a small addend: values stay finite and normal forever.
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 acc[YMM_CHAINS];
    for (int c = 0; c < YMM_CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    TIMED_LOOP(for (int c = 0; c < YMM_CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);)
    __m256 sum = acc[0];
    for (int c = 1; c < YMM_CHAINS; c++) sum = _mm256_add_ps(sum, acc[c]);
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    j->sink = lanes[0];
}

// ---- int8 without VNNI, ymm ------------------------------------------------------------------------
// The AVX2 int8 GEMM step (oneDNN's and MLAS's u8s8 path): vpmaddubsw multiplies 32 u8 x s8 pairs and
// adds neighbours into 16 int16, vpmaddwd against ones widens pairs into 8 int32, vpaddd accumulates.
// 4 activation x 2 weight vectors give 8 independent products per iteration into 8 accumulators (15
// ymm registers); the empty asm makes the weights "change" every iteration so the compiler cannot
// hoist the loop-invariant products out of the loop.
__attribute__((target("avx2"))) static void int8_ymm(job *j) {
    __m256i a0 = _mm256_set1_epi8(1), a1 = _mm256_set1_epi8(2), a2 = _mm256_set1_epi8(3),
            a3 = _mm256_set1_epi8(4);
    __m256i b0 = _mm256_set1_epi8(2), b1 = _mm256_set1_epi8(-1);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[8];
    for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_si256();
#define I8STEP(C, A, B) \
    acc[C] = _mm256_add_epi32(acc[C], _mm256_madd_epi16(_mm256_maddubs_epi16(A, B), ones));
    TIMED_LOOP(__asm__ volatile("" : "+x"(b0), "+x"(b1));
               I8STEP(0, a0, b0) I8STEP(1, a1, b0) I8STEP(2, a2, b0) I8STEP(3, a3, b0)
               I8STEP(4, a0, b1) I8STEP(5, a1, b1) I8STEP(6, a2, b1) I8STEP(7, a3, b1))
#undef I8STEP
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
    __m256i sum = acc[0];
    for (int c = 1; c < 8; c++) sum = _mm256_add_epi32(sum, acc[c]);
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, sum);
    j->sink = lanes[0];
}

#ifndef FMA_PEAK_NO_AVX512
// ---- AVX-512: fp32 FMA, vdpbf16ps, vpdpbusd, zmm -------------------------------------------------
// 16 accumulators of 32 zmm registers: enough for 2 pipes x 5-6 cycles of latency on every CPU seen.
#define ZMM_CHAINS 16
__attribute__((target("avx512f"))) static void fp32_zmm(job *j) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 acc[ZMM_CHAINS];
    for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    TIMED_LOOP(for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);)
    __m512 sum = acc[0];
    for (int c = 1; c < ZMM_CHAINS; c++) sum = _mm512_add_ps(sum, acc[c]);
    j->sink = _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512bf16"))) static void bf16_zmm(job *j) {
    // bf16 pairs of small values: each step adds 2 * 1e-3 * 1e-3 per lane, finite for days.
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3a83), b = (__m512bh)_mm512_set1_epi16(0x3a83);
    __m512 acc[ZMM_CHAINS];
    for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    TIMED_LOOP(for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);)
    __m512 sum = acc[0];
    for (int c = 1; c < ZMM_CHAINS; c++) sum = _mm512_add_ps(sum, acc[c]);
    j->sink = _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512vnni"))) static void int8_zmm(job *j) {
    const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1);  // int32 sums wrap harmlessly
    __m512i acc[ZMM_CHAINS];
    for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    TIMED_LOOP(for (int c = 0; c < ZMM_CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);)
    __m512i sum = acc[0];
    for (int c = 1; c < ZMM_CHAINS; c++) sum = _mm512_add_epi32(sum, acc[c]);
    j->sink = _mm512_reduce_add_epi32(sum);
}
#endif

#ifndef FMA_PEAK_NO_AMX
// ---- AMX tiles ------------------------------------------------------------------------------------
// Linux keeps the AMX tile data state off until a process asks for it (as csrc/cpu.c does).
enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };

typedef struct {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

// Tiles 0-3 accumulate (16 x 16 x 4 bytes), 4-5 are A (16 rows x 64 bytes), 6-7 are B: the 2 x 2
// blocking of every AMX GEMM, four independent accumulators to cover the instruction's latency.
static int amx_setup(const void *a, const void *b) {
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return -1;
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
    __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3" ::);
    const long stride = 64;
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm4" ::"r"(a), "r"(stride));
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm5" ::"r"(a), "r"(stride));
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm6" ::"r"(b), "r"(stride));
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm7" ::"r"(b), "r"(stride));
    return 0;
}

static double amx_finish(void) {
    static __thread float out[16 * 16];
    const long stride = 64;
    __asm__ volatile("tilestored %%tmm0, (%0,%1,1)" ::"r"(out), "r"(stride) : "memory");
    __asm__ volatile("tilerelease" ::);
    return out[0];
}

static void amx_bf16(job *j) {
    static __thread uint16_t a[16 * 32], b[16 * 32];
    for (int i = 0; i < 16 * 32; i++) a[i] = b[i] = 0x3a83;  // bf16 ~1e-3
    if (amx_setup(a, b) != 0) {
        j->failed = 1;
        return;
    }
    TIMED_LOOP(__asm__ volatile("tdpbf16ps %%tmm6, %%tmm4, %%tmm0\n\t"
                                "tdpbf16ps %%tmm7, %%tmm4, %%tmm1\n\t"
                                "tdpbf16ps %%tmm6, %%tmm5, %%tmm2\n\t"
                                "tdpbf16ps %%tmm7, %%tmm5, %%tmm3" ::);)
    j->sink = amx_finish();
}

static void amx_int8(job *j) {
    static __thread int8_t a[16 * 64], b[16 * 64];
    for (int i = 0; i < 16 * 64; i++) a[i] = b[i] = 1;
    if (amx_setup(a, b) != 0) {
        j->failed = 1;
        return;
    }
    TIMED_LOOP(__asm__ volatile("tdpbusd %%tmm6, %%tmm4, %%tmm0\n\t"
                                "tdpbusd %%tmm7, %%tmm4, %%tmm1\n\t"
                                "tdpbusd %%tmm6, %%tmm5, %%tmm2\n\t"
                                "tdpbusd %%tmm7, %%tmm5, %%tmm3" ::);)
    j->sink = amx_finish();
}
#endif

// What one loop iteration does: instruction name (for the report) and flop (or int8 op) count.
typedef struct {
    const char *kind, *instruction, *unit;
    kernel_fn fn;
    double ops_per_iter;
} kind_info;

static const kind_info KINDS[] = {
    {"fp32_ymm", "vfmadd231ps ymm", "GFLOP/s", fp32_ymm, YMM_CHAINS * 8 * 2.0},
    {"int8_ymm", "vpmaddubsw+vpmaddwd+vpaddd ymm", "GOP/s", int8_ymm, 8 * 32 * 2.0},
#ifndef FMA_PEAK_NO_AVX512
    {"fp32_zmm", "vfmadd231ps zmm", "GFLOP/s", fp32_zmm, ZMM_CHAINS * 16 * 2.0},
    {"bf16_zmm", "vdpbf16ps zmm", "GFLOP/s", bf16_zmm, ZMM_CHAINS * 16 * 2 * 2.0},
    {"int8_zmm", "vpdpbusd zmm", "GOP/s", int8_zmm, ZMM_CHAINS * 16 * 4 * 2.0},
#endif
#ifndef FMA_PEAK_NO_AMX
    {"amx_bf16", "tdpbf16ps tmm", "GFLOP/s", amx_bf16, 4 * 16 * 16 * 32 * 2.0},
    {"amx_int8", "tdpbusd tmm", "GOP/s", amx_int8, 4 * 16 * 16 * 64 * 2.0},
#endif
};

typedef struct {
    job *j;
    kernel_fn fn;
} thread_arg;

static void *run(void *arg) {
    thread_arg *ta = (thread_arg *)arg;
    if (ta->j->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(ta->j->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
    }
    ta->fn(ta->j);
    return NULL;
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "";
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 1.0;
    const kind_info *k = NULL;
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(KINDS[i].kind, kind) == 0) k = &KINDS[i];
    if (!k || threads < 1 || threads > 1024 || seconds <= 0) {
        fprintf(stderr, "usage: %s KIND THREADS SECONDS; KIND one of", argv[0]);
        for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++) fprintf(stderr, " %s", KINDS[i].kind);
        fprintf(stderr, "\n");
        return 2;
    }
    pthread_t *tid = calloc(threads, sizeof(*tid));
    job *jobs = calloc(threads, sizeof(*jobs));
    thread_arg *args = calloc(threads, sizeof(*args));
    if (!tid || !jobs || !args) return 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < threads; i++) {
        jobs[i].cpu = threads <= ncpu ? i : -1;
        jobs[i].seconds = seconds;
        args[i] = (thread_arg){&jobs[i], k->fn};
        if (pthread_create(&tid[i], NULL, run, &args[i]) != 0) return 1;
    }
    double total_ops = 0, max_elapsed = 0, sink = 0, cpu_rate = 0, cpu_share = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        const double ops = (double)jobs[i].rounds * ITERS_PER_ROUND * k->ops_per_iter;
        total_ops += ops;
        if (jobs[i].cpu_elapsed > 0) cpu_rate += ops / jobs[i].cpu_elapsed;
        if (jobs[i].elapsed > 0) cpu_share += jobs[i].cpu_elapsed / jobs[i].elapsed / threads;
        if (jobs[i].elapsed > max_elapsed) max_elapsed = jobs[i].elapsed;
        sink += jobs[i].sink;
        failed |= jobs[i].failed;
    }
    if (failed) {
        fprintf(stderr, "%s: the OS refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)\n", kind);
        return 3;
    }
    // rate: per second of wall time; cpu_rate: per second of CPU time each thread got, summed over the
    // threads (the ceiling); cpu_share: the mean share of its core a thread got (1 on an idle machine).
    printf("{\"kind\": \"%s\", \"instruction\": \"%s\", \"unit\": \"%s\", \"threads\": %d, \"seconds\": %.3f, "
           "\"rate\": %.2f, \"cpu_rate\": %.2f, \"cpu_share\": %.3f, \"sink\": %g}\n",
           k->kind, k->instruction, k->unit, threads, max_elapsed, total_ops / max_elapsed * 1e-9, cpu_rate * 1e-9,
           cpu_share, sink);
    free(tid);
    free(jobs);
    free(args);
    return 0;
}
