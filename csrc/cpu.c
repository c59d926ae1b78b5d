// cpu.c: run-time CPU feature detection (cpuid + xgetbv), so vector kernels are chosen per
// machine instead of compiling the library for one CPU. Not a dispatcher itself.
#define _GNU_SOURCE  // syscall() under -std=c11
#include "vitc_kernels.h"

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
    const int os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state saved by the OS
    const int os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask and upper ZMM state
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
static unsigned detect(void) { return 0; }
#endif

#if defined(__linux__) && defined(__x86_64__)
#include <pthread.h>
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
int vitc_amx_permitted(void) { return 0; }
#endif

unsigned vitc_cpu_features(void) {
    // Benign race: every thread computes the same value.
    static int done = 0;
    static unsigned cached = 0;
    if (!done) {
        cached = detect();
        done = 1;
    }
    return cached;
}
