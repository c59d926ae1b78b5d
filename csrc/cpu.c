// cpu.c: run-time CPU feature detection (cpuid + xgetbv) and the tier policy (cpu.h): the one
// place that decides which code each kernel runs, so the library is built for the baseline x86-64
// CPU and chooses its vector code per machine. Kernels ask vitc_op_tier(); nothing else decides.
#define _GNU_SOURCE  // syscall() under -std=c11
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static unsigned detect(void) {
    unsigned a, b, c, d, features = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int has_osxsave = (c >> 27) & 1, has_fma = (c >> 12) & 1, has_avx = (c >> 28) & 1;
    if (!has_osxsave || !has_avx) return 0;
    const unsigned long long xcr0 = read_xcr0();
    const int os_ymm = (xcr0 & 0x6) == 0x6;    // SSE + AVX state saved by the OS
    const int os_zmm = (xcr0 & 0xe6) == 0xe6;  // + opmask and upper ZMM state
    if (!os_ymm) return 0;
    if (has_fma) features |= VITC_CPU_FMA;
    if (__get_cpuid_max(0, 0) < 7) return features;
    __cpuid_count(7, 0, a, b, c, d);
    if ((b >> 5) & 1) features |= VITC_CPU_AVX2;
    if (os_zmm) {
        if ((b >> 16) & 1) features |= VITC_CPU_AVX512F;
        if ((b >> 30) & 1) features |= VITC_CPU_AVX512BW;
        if ((b >> 31) & 1) features |= VITC_CPU_AVX512VL;
        if ((c >> 11) & 1) features |= VITC_CPU_AVX512_VNNI;
        // AMX: tile, bf16 and int8 bits of leaf 7 EDX; the OS must save the tile config (XCR0 bit
        // 17) and tile data (bit 18) state.
        const int os_tiles = (xcr0 & 0x60000) == 0x60000;
        const int amx_tile = (d >> 24) & 1, amx_bf16 = (d >> 22) & 1, amx_int8 = (d >> 25) & 1;
        if (os_tiles && amx_tile && amx_bf16) features |= VITC_CPU_AMX_BF16;
        if (os_tiles && amx_tile && amx_int8) features |= VITC_CPU_AMX_INT8;
        __cpuid_count(7, 1, a, b, c, d);
        if ((a >> 5) & 1) features |= VITC_CPU_AVX512_BF16;
    }
    return features;
}
#else
static unsigned detect(void) {
    return 0;
}
#endif

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>

// Linux keeps the 8 KiB AMX tile data state off until a process asks for it (arch/x86 xstate).
enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
static int g_amx_permitted = 0;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void request_amx(void) {
    if (!(vitc_cpu_features() & (VITC_CPU_AMX_BF16 | VITC_CPU_AMX_INT8))) return;
    g_amx_permitted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int vitc_amx_permitted(void) {
    if (pthread_once(&g_amx_once, request_amx) != 0) return 0;
    return g_amx_permitted;
}
#else
int vitc_amx_permitted(void) {
    return 0;
}
#endif

static unsigned g_features;
static pthread_once_t g_features_once = PTHREAD_ONCE_INIT;
static void detect_once(void) {
    g_features = detect();
}

unsigned vitc_cpu_features(void) {
    if (pthread_once(&g_features_once, detect_once) != 0) return 0;  // nothing detected: portable
    return g_features;
}

// ---------------------------------------------------------------------------------------------
// Tiers

static const char *const TIER_NAMES[VITC_TIER_COUNT] = {"portable", "avx2", "avx512", "amx"};

// Features every kernel of a tier may use (the AMX tier also needs vitc_amx_permitted()).
static const unsigned AVX2_FEATURES = VITC_CPU_AVX2 | VITC_CPU_FMA;
static const unsigned AVX512_FEATURES =
    VITC_CPU_AVX2 | VITC_CPU_FMA | VITC_CPU_AVX512F | VITC_CPU_AVX512BW | VITC_CPU_AVX512VL;

// Each op's code per tier: its name for show_config (NULL: no code at that tier) and the features
// it needs beyond its tier's. A new kernel tier of an op is one entry here.
typedef struct {
    const char *code;
    unsigned extra;
} op_code;

static const struct {
    const char *name;
    op_code at[VITC_TIER_COUNT];  // portable, avx2, avx512, amx
} OPS[VITC_OP_COUNT] = {
    [VITC_OP_GEMM_F32] = {"float32 GEMM", {{"portable", 0}, {"avx2", 0}, {"avx512", 0}}},
    [VITC_OP_ATTENTION_F32] = {"float32 attention",
                               {{"OpenBLAS sgemm", 0}, {NULL, 0}, {"avx512", 0}}},
    // AVX2: the exact GELU only (softmax's passes and the other activations run portable there).
    [VITC_OP_ELEMENTWISE] = {"elementwise/softmax",
                             {{"portable", 0}, {"avx2 GELU, portable rest", 0}, {"avx512", 0}}},
    [VITC_OP_LAYERNORM] = {"layernorm", {{"portable", 0}}},
    [VITC_OP_GEMM_BF16] = {"bf16 GEMM",
                           {{"portable", 0},
                            {"avx2", 0},
                            {"avx512_bf16", VITC_CPU_AVX512_BF16},
                            {"amx_bf16", VITC_CPU_AVX512_BF16 | VITC_CPU_AMX_BF16}}},
    [VITC_OP_GEMM_INT8] = {"int8 GEMM",
                           {{"portable", 0},
                            {"avx2", 0},
                            {"avx512_vnni", VITC_CPU_AVX512_VNNI},
                            {"amx_int8", VITC_CPU_AVX512_VNNI | VITC_CPU_AMX_INT8}}},
    // Without AVX-512 BF16 the reduced-precision models run the float32 attention.
    [VITC_OP_ATTENTION_BF16] = {"bf16/int8 attention",
                                {{"float32", 0},
                                 {NULL, 0},
                                 {"avx512_bf16", VITC_CPU_AVX512_BF16},
                                 {"amx_bf16", VITC_CPU_AVX512_BF16 | VITC_CPU_AMX_BF16}}},
};

static struct {
    vitc_tier best, max;
    const char *env_bad;                                // VITC_TIER when invalid, else NULL
    vitc_tier op_tier[VITC_TIER_COUNT][VITC_OP_COUNT];  // [active tier][op]
} g_tiers;
static pthread_once_t g_tiers_once = PTHREAD_ONCE_INIT;
// VITC_TIER_COUNT: no override. Atomic: a test thread may set it while another reads it.
static _Atomic int g_override = VITC_TIER_COUNT;

static vitc_tier detect_best_tier(unsigned f) {
    if ((f & AVX512_FEATURES) == AVX512_FEATURES) {
        if ((f & (VITC_CPU_AMX_BF16 | VITC_CPU_AMX_INT8)) && vitc_amx_permitted())
            return VITC_TIER_AMX;
        return VITC_TIER_AVX512;
    }
    return (f & AVX2_FEATURES) == AVX2_FEATURES ? VITC_TIER_AVX2 : VITC_TIER_PORTABLE;
}

static void tiers_init(void) {
    const unsigned f = vitc_cpu_features();
    g_tiers.best = detect_best_tier(f);
    g_tiers.max = g_tiers.best;
    const char *env = getenv("VITC_TIER");
    vitc_tier cap;
    if (env != NULL && env[0] != '\0') {
        if (vitc_tier_parse(env, &cap) == 0) {
            if (cap < g_tiers.max) g_tiers.max = cap;
        } else {
            g_tiers.env_bad = env;  // the environment outlives this (no setenv in vitc)
        }
    }
    for (int active = 0; active < VITC_TIER_COUNT; active++)
        for (int op = 0; op < VITC_OP_COUNT; op++) {
            int t = active;
            while (t > 0 &&
                   (OPS[op].at[t].code == NULL || (f & OPS[op].at[t].extra) != OPS[op].at[t].extra))
                t--;
            g_tiers.op_tier[active][op] = (vitc_tier)t;
        }
}

static void tiers_ready(void) {
    // pthread_once fails only on invalid arguments; the zeroed state then means portable.
    (void)pthread_once(&g_tiers_once, tiers_init);
}

const char *vitc_tier_name(vitc_tier tier) {
    return (int)tier >= 0 && (int)tier < VITC_TIER_COUNT ? TIER_NAMES[tier] : "unknown";
}

int vitc_tier_parse(const char *name, vitc_tier *tier) {
    for (int t = 0; t < VITC_TIER_COUNT; t++)
        if (strcasecmp(name, TIER_NAMES[t]) == 0) {
            *tier = (vitc_tier)t;
            return 0;
        }
    return -1;
}

vitc_tier vitc_best_tier(void) {
    tiers_ready();
    return g_tiers.best;
}

vitc_tier vitc_max_tier(void) {
    tiers_ready();
    return g_tiers.max;
}

vitc_tier vitc_active_tier(void) {
    tiers_ready();
    const int o = atomic_load_explicit(&g_override, memory_order_relaxed);
    return o < (int)g_tiers.max ? (vitc_tier)o : g_tiers.max;
}

int vitc_tier_env_error(const char **value) {
    tiers_ready();
    *value = g_tiers.env_bad;
    return g_tiers.env_bad ? -1 : 0;
}

int vitc_set_tier_override(vitc_tier tier) {
    if ((int)tier < 0 || tier > vitc_max_tier()) return -1;
    atomic_store_explicit(&g_override, (int)tier, memory_order_relaxed);
    return 0;
}

vitc_tier vitc_op_tier(vitc_op op) {
    return g_tiers.op_tier[vitc_active_tier()][op];
}

vitc_tier vitc_op_tier_at(vitc_op op, vitc_tier active) {
    tiers_ready();
    if ((int)active < 0) active = VITC_TIER_PORTABLE;
    if ((int)active >= VITC_TIER_COUNT) active = VITC_TIER_AMX;
    return g_tiers.op_tier[active][op];
}

const char *vitc_op_name(vitc_op op) {
    return OPS[op].name;
}

const char *vitc_op_code(vitc_op op) {
    return OPS[op].at[vitc_op_tier(op)].code;
}
