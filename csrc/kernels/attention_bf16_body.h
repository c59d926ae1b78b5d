// attention_bf16_body.h: the AVX-512 BF16 attention head (no AMX), written once against a thin
// set of 16-lane vector helpers and compiled twice by attention_avx512.c: with the intrinsics
// (vdpbf16ps, vcvtne2ps2bf16) and with a portable emulation of exactly their semantics, so the
// same source runs and is tested on CPUs without AVX-512 (test hook _set_attention_emulation).
// Not a public header: include it only from attention_avx512.c, after defining
//   VF, VP                 types: 16 fp32 lanes; 16 bf16 pairs (32 bf16, pair j = lanes 2j, 2j+1)
//   V(name)                the helper `name` of the set: zero, load, store, set1, mul, pload,
//                          pstore, pset1, cvt2, dp (semantics in attention_avx512.c)
//   KTARGET                the function attribute of the set (the target, or nothing)
//   KNAME(name)            the suffixed name of a kernel function
//
// Numerics: those of the AMX kernel (attention_amx.c): q * scale rounded to bf16 (nearest even),
// k and v rounded to bf16, scores summed in fp32 by vdpbf16ps, softmax numerators exp(s - max) in
// fp32 (the elementwise op's code), rounded to bf16 for p v, divided by their unrounded fp32 sum.
//
// Per head, Tp = T rounded up to 32 keys, in the caller's scratch (attn_avx512_plan):
//   kt (D/2, ldk) pairs   k transposed, two head dims per uint32, zero keys past T
//   vp (Tp/2, D) pairs    two consecutive keys per uint32 for each head dim, zero past T
//   then per block of QB query rows:
//   qb (QB, D) bf16       q * scale, zero rows past S
//   s  (QB, Tp) fp32      scores, then exp(s - row max)
//   pb (QB, Tp) bf16      numerators, zero past T and in rows past S
// Every lane of every product is an independent chain over the head dims (q k^T) or keys (p v)
// in a fixed order: no horizontal sums, and the result does not depend on the thread count.

// QK_R query rows x 32 keys of scores: s (rows, 32) = qb (QK_R, D) . kt[:, n0:n0+32].
KTARGET static inline __attribute__((always_inline)) void KNAME(qk_block)(
    float *s, vitc_int lds, const uint16_t *qb, vitc_int D, const uint32_t *kt, vitc_int ldk) {
    VF acc[QK_R][2];
#pragma GCC unroll 8
    for (int r = 0; r < QK_R; r++) acc[r][0] = acc[r][1] = V(zero)();
    const uint32_t *q = (const uint32_t *)qb;  // row r, pair p: q[r * D/2 + p]
    for (vitc_int p = 0; p < D / 2; p++) {
        const VP b0 = V(pload)(kt + p * ldk), b1 = V(pload)(kt + p * ldk + 16);
#pragma GCC unroll 8
        for (int r = 0; r < QK_R; r++) {
            const VP a = V(pset1)(q[r * (D / 2) + p]);
            acc[r][0] = V(dp)(acc[r][0], a, b0);
            acc[r][1] = V(dp)(acc[r][1], a, b1);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < QK_R; r++) {
        V(store)(s + r * lds, acc[r][0]);
        V(store)(s + r * lds + 16, acc[r][1]);
    }
}

// PV_R rows x 16 DV head dims of context over `pairs` key pairs, divided by the row sums; only
// the first `rows` rows are stored. out rows ld_out apart; pb rows ldp bf16 apart.
KTARGET static inline __attribute__((always_inline)) void KNAME(pv_block)(
    float *out, vitc_int ld_out, const uint16_t *pb, vitc_int ldp, const uint32_t *vp,
    const float *rowsum, vitc_int pairs, int rows, const int DV) {
    VF acc[PV_R][4];
#pragma GCC unroll 6
    for (int r = 0; r < PV_R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < DV; c++) acc[r][c] = V(zero)();
    for (vitc_int j = 0; j < pairs; j++) {
        VP b[4];
#pragma GCC unroll 4
        for (int c = 0; c < DV; c++) b[c] = V(pload)(vp + j * 16 * DV + 16 * c);
#pragma GCC unroll 6
        for (int r = 0; r < PV_R; r++) {
            const VP a = V(pset1)(((const uint32_t *)(pb + r * ldp))[j]);
#pragma GCC unroll 4
            for (int c = 0; c < DV; c++) acc[r][c] = V(dp)(acc[r][c], a, b[c]);
        }
    }
    for (int r = 0; r < rows; r++) {
        const VF inv = V(set1)(1.0f / rowsum[r]);
#pragma GCC unroll 4
        for (int c = 0; c < DV; c++) V(store)(out + r * ld_out + 16 * c, V(mul)(acc[r][c], inv));
    }
}

// dst (n) bf16 <- x (n) * scale, n a multiple of 32.
KTARGET static void KNAME(round_row)(uint16_t *dst, const float *x, float scale, vitc_int n) {
    const VF vs = V(set1)(scale);
    for (vitc_int i = 0; i < n; i += 32)
        V(pstore)
        ((uint32_t *)(dst + i),
         V(cvt2)(V(mul)(V(load)(x + i), vs), V(mul)(V(load)(x + i + 16), vs)));
}

// out (S,D) = softmax(q k^T * scale) v for one head (D 32 or 64); rows ld_* apart.
KTARGET static void KNAME(attention)(float *out, const float *q, const float *k, const float *v,
                                     float scale, vitc_int S, vitc_int T, vitc_int D,
                                     vitc_int ld_out, vitc_int ld_q, vitc_int ld_k, vitc_int ld_v,
                                     void *scratch) {
    const attn_avx512_plan pl = avx512_plan(T, D);
    const vitc_int Tp = round_up(T, 32), ldk = pl.ldk;
    char *base = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    uint32_t *kt = (uint32_t *)(base + pl.kt), *vp = (uint32_t *)(base + pl.vp);
    uint16_t *qb = (uint16_t *)(base + pl.qb), *pb = (uint16_t *)(base + pl.pb);
    uint16_t *row = (uint16_t *)(base + pl.row);  // two rows of D bf16: packing
    float *s = (float *)(base + pl.s), *rowsum = (float *)(base + pl.rowsum);

    // kt[i][n] = (k[n][2i], k[n][2i+1]); vp[j][d] = (v[2j][d], v[2j+1][d])
    for (vitc_int n = 0; n < Tp; n++) {
        const uint32_t *pairs = (const uint32_t *)row;
        if (n < T) KNAME(round_row)(row, k + n * ld_k, 1.0f, D);
        for (vitc_int i = 0; i < D / 2; i++) kt[i * ldk + n] = n < T ? pairs[i] : 0;
    }
    for (vitc_int j = 0; j < Tp / 2; j++) {
        const vitc_int r0 = 2 * j, r1 = 2 * j + 1;
        if (r0 < T) KNAME(round_row)(row, v + r0 * ld_v, 1.0f, D);
        if (r1 < T) KNAME(round_row)(row + D, v + r1 * ld_v, 1.0f, D);
        // bf16 d of a row is half d % 2 of its pair d / 2 (low half first, as in the vectors)
        const uint32_t *p0 = (const uint32_t *)row, *p1 = (const uint32_t *)(row + D);
        for (vitc_int d = 0; d < D; d++) {
            const int shift = (int)(d % 2) * 16;
            const uint32_t lo = r0 < T ? (p0[d / 2] >> shift) & 0xffffu : 0;
            const uint32_t hi = r1 < T ? (p1[d / 2] >> shift) & 0xffffu : 0;
            vp[j * D + d] = lo | hi << 16;
        }
    }
    const vitc_int pairs = (T + 1) / 2;  // p v: numerators and v rows are zero past T
    for (vitc_int s0 = 0; s0 < S; s0 += QB) {
        const vitc_int rows = S - s0 < QB ? S - s0 : QB;
        for (vitc_int r = 0; r < QB; r++) {
            if (r < rows)
                KNAME(round_row)(qb + r * D, q + (s0 + r) * ld_q, scale, D);
            else
                memset(qb + r * D, 0, (size_t)D * 2);
        }
        for (vitc_int r0 = 0; r0 < rows; r0 += QK_R)
            for (vitc_int n0 = 0; n0 < Tp; n0 += 32)
                KNAME(qk_block)(s + r0 * Tp + n0, Tp, qb + r0 * D, D, kt + n0, ldk);
        for (vitc_int r = 0; r < QB; r++) {
            uint16_t *prow = pb + r * Tp;
            if (r >= rows) {
                memset(prow, 0, (size_t)Tp * 2);
                continue;
            }
            float *srow = s + r * Tp;
            const float mx = vitc_row_max_f32(srow, T);
            rowsum[r] = (float)vitc_exp_shift_sum_f32(srow, srow, mx, T);
            for (vitc_int n = T; n < Tp; n++) srow[n] = 0.0f;
            KNAME(round_row)(prow, srow, 1.0f, Tp);
        }
        for (vitc_int r0 = 0; r0 < rows; r0 += PV_R) {
            const int rr = (int)(rows - r0 < PV_R ? rows - r0 : PV_R);
            float *o = out + (s0 + r0) * ld_out;
            if (D == 64)
                KNAME(pv_block)(o, ld_out, pb + r0 * Tp, Tp, vp, rowsum + r0, pairs, rr, 4);
            else
                KNAME(pv_block)(o, ld_out, pb + r0 * Tp, Tp, vp, rowsum + r0, pairs, rr, 2);
        }
    }
}
