// cpu.h: what this CPU and OS can run (feature detection) and the one policy that decides which
// code every kernel runs (tiers). Pure C, no Python. Kernels never test CPU features themselves:
// they ask vitc_op_tier(op) and run the code of the tier it names.
#ifndef VITC_CPU_H
#define VITC_CPU_H

// CPU features detected at run time: bit set of VITC_CPU_*.
enum {
    VITC_CPU_AVX2 = 1 << 0,
    VITC_CPU_FMA = 1 << 1,
    VITC_CPU_AVX512F = 1 << 2,
    VITC_CPU_AVX512BW = 1 << 3,
    VITC_CPU_AVX512VL = 1 << 4,
    VITC_CPU_AVX512_BF16 = 1 << 5,
    VITC_CPU_AVX512_VNNI = 1 << 6,
    VITC_CPU_AMX_BF16 = 1 << 7,  // AMX tiles + tdpbf16ps, tile state enabled by the OS
    VITC_CPU_AMX_INT8 = 1 << 8,  // AMX tiles + tdpbusd
};
unsigned vitc_cpu_features(void);
// Nonzero once the OS has granted this process the AMX tile data state (Linux arch_prctl; asked
// once). Part of the AMX tier's condition.
int vitc_amx_permitted(void);

// ---------------------------------------------------------------------------------------------
// Tiers: ordered instruction-set levels. A CPU supports a tier when it and the OS support every
// feature the tier's kernels use (AVX2: AVX2 + FMA; AVX512: + AVX-512 F/BW/VL; AMX: + AMX tiles
// granted by the OS). The active tier is the lowest of: the best this machine supports, the cap
// the environment variable VITC_TIER sets (read once), and a test override.
typedef enum {
    VITC_TIER_PORTABLE = 0,
    VITC_TIER_AVX2 = 1,
    VITC_TIER_AVX512 = 2,
    VITC_TIER_AMX = 3,
} vitc_tier;
enum { VITC_TIER_COUNT = 4 };

vitc_tier vitc_active_tier(void);
// The highest tier that may be active here: min(best this machine supports, VITC_TIER cap).
vitc_tier vitc_max_tier(void);
// The best tier this CPU and OS support, whatever VITC_TIER says.
vitc_tier vitc_best_tier(void);
// "portable", "avx2", "avx512", "amx"; vitc_tier_parse returns 0 and sets *tier for those names
// (case-insensitive), -1 for anything else.
const char *vitc_tier_name(vitc_tier tier);
int vitc_tier_parse(const char *name, vitc_tier *tier);
// VITC_TIER as read at first use: 0 when unset, empty or valid; -1 when invalid (*value: the
// string found), the extension's import then fails naming the accepted values.
int vitc_tier_env_error(const char **value);
// Test hook: run at `tier` (at most vitc_max_tier(): -1 otherwise, nothing changed).
int vitc_set_tier_override(vitc_tier tier);

// ---------------------------------------------------------------------------------------------
// Ops with more than one implementation. An op runs the code of the highest tier <= the active
// tier at which it has code and the CPU has that code's extra features (AVX-512 BF16 for the bf16
// GEMM, ...); an op without code at a tier runs the code of the tier below (today only the bf16
// and int8 GEMMs have AVX2 code: at tier AVX2 other ops run their portable code). The table is in
// cpu.c.
typedef enum {
    VITC_OP_GEMM_F32,        // weight GEMMs of the float32 model (gemm_f32.c)
    VITC_OP_ATTENTION_F32,   // one float32 attention head (attention.c)
    VITC_OP_ELEMENTWISE,     // GELUs, softmax's exp and max passes (elementwise.c)
    VITC_OP_LAYERNORM,       // norm.c
    VITC_OP_GEMM_BF16,       // gemm_bf16.c
    VITC_OP_GEMM_INT8,       // gemm_int8.c
    VITC_OP_ATTENTION_BF16,  // attention_amx.c / _avx512.c (reduced-precision models); else float32
    VITC_OP_COUNT,
} vitc_op;

// The tier whose code `op` runs now; the one it runs when `active` is the active tier.
vitc_tier vitc_op_tier(vitc_op op);
vitc_tier vitc_op_tier_at(vitc_op op, vitc_tier active);
// "bf16 GEMM", ...; the name of the code `op` runs at the active tier ("amx_bf16", "portable").
const char *vitc_op_name(vitc_op op);
const char *vitc_op_code(vitc_op op);

#endif  // VITC_CPU_H
