/* kernels.c - forward/backward pairs of the Transformer's layers. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "common.h"

int kernels_timing;
double kernels_gemm_seconds;

/* Elementwise loops run in parallel only from this many elements on: below
 * it a parallel region costs more than it saves, and on a busy machine each
 * one can wait a scheduler time slice for a descheduled thread. Results do
 * not depend on it (the loops have no reductions). */
#define PAR_MIN (1L << 15)

/* ================================================================ dropout */

uint64_t dropout_seed(uint64_t base, uint64_t step, uint64_t slot) {
    uint64_t z = base ^ (step * 0xD1B54A32D192ED03ull) ^ (slot * 0x8CB92BA72F3D8DD7ull);
    z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
    z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53ull;
    return z ^ (z >> 33);
}

/* m[k] = scale or 0 for elements i0 .. i0 + n - 1 (i0 a multiple of 4): one
 * hash per four elements. */
static void dropout_scales(float *m, uint64_t seed, long i0, long n, float p) {
    enum { MAXB = 1024 / 4 };
    const uint32_t thr = dropout_threshold(p);
    const float scale = 1.0f / (1.0f - p);
    for (long k0 = 0; k0 < n; k0 += 4 * MAXB) {
        uint64_t hs[MAXB];
        const long len = n - k0 < 4 * MAXB ? n - k0 : 4 * MAXB, nb = (len + 3) / 4;
        const uint64_t b0 = (uint64_t)(i0 + k0) >> 2;
#pragma omp simd
        for (long b = 0; b < nb; b++) hs[b] = dropout_hash(seed, b0 + b);
#pragma omp simd
        for (long k = 0; k < len; k++) {
            uint32_t bits = (uint32_t)(hs[k >> 2] >> (16 * (k & 3))) & 0xFFFFu;
            m[k0 + k] = bits >= thr ? scale : 0.0f;
        }
    }
}

/* Chunks of elements handled by one thread at a time (a multiple of 4). */
enum { DROP_CHUNK = 1024 };

void dropout_forward(float *out, const float *inp, long n, float p, uint64_t seed) {
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, (size_t)n * sizeof *out);
        return;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long c = 0; c < n; c += DROP_CHUNK) {
        float m[DROP_CHUNK];
        long len = n - c < DROP_CHUNK ? n - c : DROP_CHUNK;
        dropout_scales(m, seed, c, len, p);
#pragma omp simd
        for (long k = 0; k < len; k++) out[c + k] = m[k] != 0.0f ? inp[c + k] * m[k] : 0.0f;
    }
}

void dropout_backward(float *dinp, const float *dout, long n, float p, uint64_t seed) {
    if (p <= 0.0f) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (long i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long c = 0; c < n; c += DROP_CHUNK) {
        float m[DROP_CHUNK];
        long len = n - c < DROP_CHUNK ? n - c : DROP_CHUNK;
        dropout_scales(m, seed, c, len, p);
#pragma omp simd
        for (long k = 0; k < len; k++)
            dinp[c + k] = m[k] != 0.0f ? dinp[c + k] + dout[c + k] * m[k] : dinp[c + k];
    }
}

void dropout_residual_forward(float *y, float *z, const float *x, const float *a, float p,
                              uint64_t seed, int N, int D) {
    const long n = (long)N * D;
#pragma omp parallel for schedule(static) if ((long)N * D >= PAR_MIN)
    for (long c = 0; c < n; c += DROP_CHUNK) {
        float m[DROP_CHUNK];
        long len = n - c < DROP_CHUNK ? n - c : DROP_CHUNK;
        if (p > 0.0f)
            dropout_scales(m, seed, c, len, p);
        else
            for (long k = 0; k < len; k++) m[k] = 1.0f;
#pragma omp simd
        for (long k = 0; k < len; k++) {
            z[c + k] = m[k] != 0.0f ? a[c + k] * m[k] : 0.0f;
            y[c + k] = x[c + k] + z[c + k];
        }
    }
}

void dropout_residual_backward(float *dx, float *da, const float *dy, const float *z, float c,
                               const uint8_t *row_pad, float p, uint64_t seed, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D >= PAR_MIN)
    for (int r = 0; r < N; r++) {
        const long o = (long)r * D;
        const float cr = (row_pad && row_pad[r]) ? 0.0f : c;
        float m[D];
        if (p > 0.0f && o % 4 == 0) {
            dropout_scales(m, seed, o, D, p);
        } else {
            for (int i = 0; i < D; i++)
                m[i] = p > 0.0f ? (dropout_keep(seed, (uint64_t)(o + i), p) ? 1.0f / (1.0f - p)
                                                                             : 0.0f)
                                : 1.0f;
        }
#pragma omp simd
        for (int i = 0; i < D; i++) {
            dx[o + i] = dy[o + i];
            float v = cr != 0.0f ? dy[o + i] + cr * z[o + i] : dy[o + i];
            da[o + i] = m[i] != 0.0f ? 0.0f + v * m[i] : 0.0f;
        }
    }
}

/* ============================================================== embedding */

void positions_init(float *pe, int P, int D) {
    int half = D / 2;
    double step = half > 1 ? log(10000.0) / (half - 1) : 0.0;
    for (int t = 0; t < P; t++) {
        for (int i = 0; i < half; i++) {
            double a = t * exp(-step * i);
            pe[(size_t)t * D + i] = (float)sin(a);
            pe[(size_t)t * D + half + i] = (float)cos(a);
        }
        if (D % 2) pe[(size_t)t * D + D - 1] = 0.0f;
    }
}

void embedding_forward(float *out, const int *ids, const float *emb, const float *pe,
                       int B, int T, int D) {
    const float scale = sqrtf((float)D);
#pragma omp parallel for schedule(static) if ((long)B * T * D >= PAR_MIN)
    for (int r = 0; r < B * T; r++) {
        const float *e = emb + (size_t)ids[r] * D;
        const float *p = pe + (size_t)(r % T) * D;
        float *o = out + (size_t)r * D;
        for (int i = 0; i < D; i++) o[i] = scale * e[i] + p[i];
    }
}

void embedding_backward(float *demb, const float *dout, const int *ids, int pad,
                        int B, int T, int D) {
    /* serial: several rows may share an id, and this is cheap next to the
     * matrix products */
    const float scale = sqrtf((float)D);
    for (int r = 0; r < B * T; r++) {
        if (ids[r] == pad) continue;
        float *de = demb + (size_t)ids[r] * D;
        const float *d = dout + (size_t)r * D;
        for (int i = 0; i < D; i++) de[i] += scale * d[i];
    }
}

/* ============================================================= layer norm */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *g, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D >= PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * D;
        float *y = out + (size_t)r * D;
        float m = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < D; i++) m += x[i];
        m /= D;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
        float s = 1.0f / sqrtf(v / D + 1e-5f);
#pragma omp simd
        for (int i = 0; i < D; i++) y[i] = (x[i] - m) * s * g[i] + b[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

/* Both forms: accumulate 1 adds into dinp, 0 overwrites it. */
static void layernorm_bwd(float *dinp, int accumulate, float *dg, float *db, const float *dout,
                          const float *mean, const float *rstd, const float *inp,
                          const float *g, int N, int D) {
    /* dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * g;
     * dg, db are summed per thread, then over threads in a fixed order so the
     * result does not depend on timing */
    int nt = omp_get_max_threads();
    float *part = mmt_calloc((size_t)nt * 2 * D, sizeof *part);
#pragma omp parallel num_threads(nt)
    {
        float *pdg = part + (size_t)omp_get_thread_num() * 2 * D, *pdb = pdg + D;
#pragma omp for schedule(static)
        for (int r = 0; r < N; r++) {
            const float *x = inp + (size_t)r * D, *dy = dout + (size_t)r * D;
            float *dx = dinp + (size_t)r * D;
            float m = mean[r], s = rstd[r], a = 0.0f, c = 0.0f;
#pragma omp simd reduction(+ : a, c)
            for (int i = 0; i < D; i++) {
                float xh = (x[i] - m) * s, dxh = dy[i] * g[i];
                a += dxh;
                c += dxh * xh;
                pdg[i] += dy[i] * xh;
                pdb[i] += dy[i];
            }
            a /= D;
            c /= D;
#pragma omp simd
            for (int i = 0; i < D; i++) {
                float xh = (x[i] - m) * s;
                dx[i] = (accumulate ? dx[i] : 0.0f) + s * (dy[i] * g[i] - a - xh * c);
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < D; i++) {
            dg[i] += part[(size_t)t * 2 * D + i];
            db[i] += part[(size_t)t * 2 * D + D + i];
        }
    free(part);
}

void layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                        const float *mean, const float *rstd, const float *inp,
                        const float *g, int N, int D) {
    layernorm_bwd(dinp, 1, dg, db, dout, mean, rstd, inp, g, N, D);
}

void layernorm_backward_into(float *dinp, float *dg, float *db, const float *dout,
                             const float *mean, const float *rstd, const float *inp,
                             const float *g, int N, int D) {
    layernorm_bwd(dinp, 0, dg, db, dout, mean, rstd, inp, g, N, D);
}

/* ================================================================= linear */

void linear_forward(float *out, int ld_out, const float *inp, int ld_inp,
                    const float *w, const float *b, int N, int K, int M) {
    double t0 = kernels_timing ? mmt_now() : 0.0;
    if (b) {
#pragma omp parallel for schedule(static) if ((long)N * M >= PAR_MIN)
        for (int r = 0; r < N; r++) memcpy(out + (size_t)r * ld_out, b, (size_t)M * sizeof *b);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, 1.0f, inp, ld_inp, w, K,
                b ? 1.0f : 0.0f, out, ld_out);
    if (kernels_timing) kernels_gemm_seconds += mmt_now() - t0;
}

/* Both forms: beta 1 adds into dinp, beta 0 overwrites it. */
static void linear_bwd(float *dinp, int ld_dinp, float beta, float *dw, float *db,
                       const float *dout, int ld_dout, const float *inp, int ld_inp,
                       const float *w, int N, int K, int M) {
    double t0 = kernels_timing ? mmt_now() : 0.0;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, M, 1.0f, dout, ld_dout,
                    w, K, beta, dinp, ld_dinp);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, K, N, 1.0f, dout, ld_dout,
                    inp, ld_inp, 1.0f, dw, K);
    if (db) {
        /* column sums, as the product dout^T 1 */
        float *ones = mmt_malloc((size_t)N * sizeof *ones);
        for (int r = 0; r < N; r++) ones[r] = 1.0f;
        cblas_sgemv(CblasRowMajor, CblasTrans, N, M, 1.0f, dout, ld_dout, ones, 1, 1.0f, db, 1);
        free(ones);
    }
    if (kernels_timing) kernels_gemm_seconds += mmt_now() - t0;
}

void linear_backward(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                     int ld_dout, const float *inp, int ld_inp, const float *w,
                     int N, int K, int M) {
    linear_bwd(dinp, ld_dinp, 1.0f, dw, db, dout, ld_dout, inp, ld_inp, w, N, K, M);
}

void linear_backward_into(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                          int ld_dout, const float *inp, int ld_inp, const float *w,
                          int N, int K, int M) {
    linear_bwd(dinp, ld_dinp, 0.0f, dw, db, dout, ld_dout, inp, ld_inp, w, N, K, M);
}

/* =================================================================== relu */

void relu_forward(float *out, const float *inp, long n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *out, long n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

/* ============================================================== attention */

/* Keys a query row may see: [0, n) minus padded keys. */
static inline int attn_visible(const attn_dims *a, int t) {
    return a->causal ? (t + 1 < a->Tk ? t + 1 : a->Tk) : a->Tk;
}

/* Sixteen floats as one value (GCC's vector extension): a sum kept in one
 * stays in a register, where a float[16] array may live on the stack. */
typedef float v16f __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4), may_alias));
static inline v16f ld16(const float *p) { return *(const v16f_u *)p; }
static inline void st16(float *p, v16f v) { *(v16f_u *)p = v; }

/* Interleaves of two vectors: a0 b0 a1 b1 .. a7 b7, and a8 b8 .. a15 b15. */
#ifdef __clang__
#define ZIP_LO(a, b) \
    __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define ZIP_HI(a, b) \
    __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#else
typedef int v16i __attribute__((vector_size(64)));
#define ZIP_LO(a, b) \
    __builtin_shuffle(a, b, (v16i){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define ZIP_HI(a, b) \
    __builtin_shuffle(a, b, (v16i){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#endif

/* A 16x16 tile transposed in registers: four rounds of pairing row k with
 * row k + 8 by interleaving (a perfect shuffle) transpose any 16x16. */
static inline void transpose16(v16f r[16]) {
    for (int round = 0; round < 4; round++) {
        v16f t[16];
        for (int k = 0; k < 8; k++) {
            t[2 * k] = ZIP_LO(r[k], r[k + 8]);
            t[2 * k + 1] = ZIP_HI(r[k], r[k + 8]);
        }
        for (int k = 0; k < 16; k++) r[k] = t[k];
    }
}

/* Copy head h of rows x (B*Tk, ld) of batch row b, transposed, into xt
 * (dh, Tkp) with zeros beyond Tk: loops over keys then run over contiguous
 * memory of a whole number of vectors (Tkp is Tk rounded up to 16). Head
 * widths that are multiples of 16 go by 16x16 tiles in registers. */
static __attribute__((noinline)) void head_transpose(float *xt, int Tkp, const float *x, int ld,
                                                     int b, int h, const attn_dims *a) {
    const int Tk = a->Tk, dh = a->dh;
    const float *x0 = x + (size_t)b * Tk * ld + (size_t)h * dh;
    if (dh % 16 == 0) {
        for (int j0 = 0; j0 < Tkp; j0 += 16)
            for (int i0 = 0; i0 < dh; i0 += 16) {
                v16f r[16];
                for (int k = 0; k < 16; k++)
                    r[k] = j0 + k < Tk ? ld16(x0 + (size_t)(j0 + k) * ld + i0) : (v16f){0};
                transpose16(r);
                for (int k = 0; k < 16; k++) st16(xt + (size_t)(i0 + k) * Tkp + j0, r[k]);
            }
        return;
    }
    for (int i = 0; i < dh; i++) {
        float *row = xt + (size_t)i * Tkp;
#pragma omp simd
        for (int j = 0; j < Tkp; j++) row[j] = j < Tk ? x0[(size_t)j * ld + i] : 0.0f;
    }
}

/* The kept fraction of attention dropout for element (b, h, t, j) of probs. */
static inline float attn_keep(const attn_dims *a, uint64_t base, int j) {
    if (a->dropout <= 0.0f) return 1.0f;
    return dropout_keep(a->seed, base + j, a->dropout) ? 1.0f / (1.0f - a->dropout) : 0.0f;
}

/* out[j] = scale * sum_i x[i] * yt[i * ld + j] for 16 columns j: four
 * independent sums over i, so additions do not wait on one another. */
static inline __attribute__((always_inline)) void dot16(float *out, const float *x,
                                                        const float *yt, int ld, const int n,
                                                        float scale) {
    v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *y0 = yt + (size_t)i * ld;
        a0 += x[i] * ld16(y0);
        a1 += x[i + 1] * ld16(y0 + ld);
        a2 += x[i + 2] * ld16(y0 + 2 * ld);
        a3 += x[i + 3] * ld16(y0 + 3 * ld);
    }
    for (; i < n; i++) a0 += x[i] * ld16(yt + (size_t)i * ld);
    st16(out, ((a0 + a1) + (a2 + a3)) * scale);
}

/* out (dh) = (accumulate ? out : 0) + sum_j w[j] * rows[j * ld ..]. For the
 * usual head widths the whole row of sums stays in registers, in two sets
 * (even and odd j) so that no addition waits on the one before it; other
 * widths go 16 columns at a time. */
#define WEIGHTED_ROWS_FIXED(DH)                                                          \
    static inline __attribute__((always_inline)) void weighted_rows_##DH(               \
        float *out, int accumulate, const float *w, const float *rows, int ld, int n) {  \
        enum { NV = DH / 16 };                                                           \
        v16f a0[NV], a1[NV];                                                             \
        for (int c = 0; c < NV; c++) a0[c] = a1[c] = (v16f){0};                          \
        int j = 0;                                                                       \
        for (; j + 2 <= n; j += 2) {                                                     \
            const float w0 = w[j], w1 = w[j + 1];                                        \
            const float *r0 = rows + (size_t)j * ld, *r1 = r0 + ld;                      \
            for (int c = 0; c < NV; c++) {                                               \
                a0[c] += w0 * ld16(r0 + 16 * c);                                         \
                a1[c] += w1 * ld16(r1 + 16 * c);                                         \
            }                                                                            \
        }                                                                                \
        if (j < n) {                                                                     \
            const float *r0 = rows + (size_t)j * ld;                                     \
            for (int c = 0; c < NV; c++) a0[c] += w[j] * ld16(r0 + 16 * c);              \
        }                                                                                \
        for (int c = 0; c < NV; c++) {                                                   \
            v16f o = accumulate ? ld16(out + 16 * c) : (v16f){0};                        \
            st16(out + 16 * c, o + (a0[c] + a1[c]));                                     \
        }                                                                                \
    }
WEIGHTED_ROWS_FIXED(32)
WEIGHTED_ROWS_FIXED(64)

static inline __attribute__((always_inline)) void weighted_rows(float *out, int accumulate,
                                                                const float *w,
                                                                const float *rows, int ld,
                                                                int n, const int dh) {
    if (dh == 32) {
        weighted_rows_32(out, accumulate, w, rows, ld, n);
        return;
    }
    if (dh == 64) {
        weighted_rows_64(out, accumulate, w, rows, ld, n);
        return;
    }
    for (int i0 = 0; i0 < dh; i0 += 16) {
        float acc[16] = {0};
        const int w16 = dh - i0 < 16 ? dh - i0 : 16;
        for (int j = 0; j < n; j++) {
            const float wj = w[j], *rj = rows + (size_t)j * ld + i0;
            if (w16 == 16) {
#pragma omp simd
                for (int i = 0; i < 16; i++) acc[i] += wj * rj[i];
            } else {
                for (int i = 0; i < w16; i++) acc[i] += wj * rj[i];
            }
        }
        for (int i = 0; i < w16; i++) out[i0 + i] = (accumulate ? out[i0 + i] : 0.0f) + acc[i];
    }
}

/* One (b, h) block of the forward pass; dh is a compile-time constant in the
 * specialised copies below, so a query's context stays in registers. Each
 * phase runs over all queries before the next starts, so the queries' work
 * is independent and overlaps in the CPU. S holds (Tq, Tkp) scores. */
static inline __attribute__((always_inline)) void
attn_fwd_block(float *ctx, float *probs, const float *q, const float *k, const float *v,
               const uint8_t *key_pad, const attn_dims *a, int b, int h, const int dh,
               float *kt, float *kpad, float *S) {
    const int Tq = a->Tq, Tk = a->Tk, H = a->H, D = H * dh, Tkp = (Tk + 15) / 16 * 16;
    const float scale = 1.0f / sqrtf((float)dh);
    head_transpose(kt, Tkp, k, a->ldk, b, h, a);
    for (int j = 0; j < Tkp; j++) /* 1 where the key is not padding */
        kpad[j] = j < Tk && !(key_pad && key_pad[(size_t)b * Tk + j]) ? 1.0f : 0.0f;

    /* scores = q k^T / sqrt(dh), 16 keys at a time */
    for (int t = 0; t < Tq; t++) {
        const float *qt = q + (size_t)(b * Tq + t) * a->ldq + h * dh;
        for (int j0 = 0; j0 < Tkp; j0 += 16)
            dot16(S + (size_t)t * Tkp + j0, qt, kt + j0, Tkp, dh, scale);
    }

    /* softmax over the visible keys (masked ones exactly 0) into probs; S
     * keeps the probabilities after dropout */
    for (int t = 0; t < Tq; t++) {
        float *st = S + (size_t)t * Tkp;
        float *p = probs + (((size_t)b * H + h) * Tq + t) * Tk;
        const int n = attn_visible(a, t);
        float *keep = kpad + Tkp, mx = -INFINITY, sum = 0.0f;
#pragma omp simd
        for (int j = 0; j < Tkp; j++) keep[j] = j < n ? kpad[j] : 0.0f;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < Tkp; j++) {
            float x = keep[j] != 0.0f ? st[j] : -INFINITY;
            mx = x > mx ? x : mx;
        }
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < Tkp; j++) {
            st[j] = fast_expf(st[j] - mx) * keep[j];
            sum += st[j];
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma omp simd
        for (int j = 0; j < Tk; j++) p[j] = st[j] * inv;
        if (a->dropout > 0.0f) {
            const uint64_t base = (((uint64_t)b * H + h) * Tq + t) * Tk;
            for (int j = 0; j < n; j++) st[j] = p[j] * attn_keep(a, base, j);
        } else {
#pragma omp simd
            for (int j = 0; j < Tk; j++) st[j] = p[j];
        }
    }

    /* ctx = dropout(probs) v, a query's row of sums in registers */
    for (int t = 0; t < Tq; t++) {
        float *c = ctx + (size_t)(b * Tq + t) * D + h * dh;
        weighted_rows(c, 0, S + (size_t)t * Tkp, v + (size_t)b * Tk * a->ldv + h * dh, a->ldv,
                      attn_visible(a, t), dh);
    }
}

void attention_forward(float *ctx, float *probs, const float *q, const float *k,
                       const float *v, const uint8_t *key_pad, const attn_dims *a) {
    const int B = a->B, Tq = a->Tq, Tk = a->Tk, H = a->H, dh = a->dh;
    const int Tkp = (Tk + 15) / 16 * 16;
#pragma omp parallel
    {
        float *kt = mmt_malloc((size_t)dh * Tkp * sizeof *kt);      /* (dh, Tkp) */
        float *kpad = mmt_malloc((size_t)2 * Tkp * sizeof *kpad);    /* key masks */
        float *S = mmt_malloc((size_t)Tq * Tkp * sizeof *S);         /* (Tq, Tkp) */
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                if (dh == 32)
                    attn_fwd_block(ctx, probs, q, k, v, key_pad, a, b, h, 32, kt, kpad, S);
                else if (dh == 64)
                    attn_fwd_block(ctx, probs, q, k, v, key_pad, a, b, h, 64, kt, kpad, S);
                else
                    attn_fwd_block(ctx, probs, q, k, v, key_pad, a, b, h, dh, kt, kpad, S);
            }
        free(kt);
        free(kpad);
        free(S);
    }
}

/* One (b, h) block of the backward pass; dh constant and phases as in
 * attn_fwd_block. DP holds (Tq, Tkp) gradients of the probabilities, then
 * of the scores; WT and DST (Tk, Tq) the dropped-out probabilities and the
 * scores' gradients transposed, so that each key's dv and dk is one sum
 * over the queries kept in registers. */
static inline __attribute__((always_inline)) void
attn_bwd_block(float *dq, float *dk, float *dv, const float *dctx, const float *probs,
               const float *q, const float *k, const float *v, const attn_dims *a, int b, int h,
               const int dh, float *vt, float *DP, float *WT, float *DST) {
    const int Tq = a->Tq, Tk = a->Tk, H = a->H, D = H * dh, Tkp = (Tk + 15) / 16 * 16;
    const float scale = 1.0f / sqrtf((float)dh);
    const float *dc0 = dctx + (size_t)b * Tq * D + h * dh;
    const float *q0 = q + (size_t)b * Tq * a->ldq + h * dh;
    head_transpose(vt, Tkp, v, a->ldv, b, h, a);

    /* through ctx = dropout(p) v: dp = dctx . v_j */
    for (int t = 0; t < Tq; t++)
        for (int j0 = 0; j0 < Tkp; j0 += 16)
            dot16(DP + (size_t)t * Tkp + j0, dc0 + (size_t)t * D, vt + j0, Tkp, dh, 1.0f);

    /* softmax: ds = p (dp - sum p dp) / sqrt(dh), dropout in between; masked
     * keys have p = 0, so their ds and w are 0 */
    for (int t = 0; t < Tq; t++) {
        const float *p = probs + (((size_t)b * H + h) * Tq + t) * Tk;
        float *dp = DP + (size_t)t * Tkp;
        float dot = 0.0f;
        if (a->dropout > 0.0f) {
            const uint64_t base = (((uint64_t)b * H + h) * Tq + t) * Tk;
            for (int j = 0; j < Tk; j++) {
                const float keep = attn_keep(a, base, j);
                WT[(size_t)j * Tq + t] = p[j] * keep;
                dp[j] *= keep;
            }
        } else {
            for (int j = 0; j < Tk; j++) WT[(size_t)j * Tq + t] = p[j];
        }
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < Tk; j++) dot += p[j] * dp[j];
#pragma omp simd
        for (int j = 0; j < Tk; j++) dp[j] = p[j] * (dp[j] - dot) * scale;
        for (int j = 0; j < Tk; j++) DST[(size_t)j * Tq + t] = dp[j];
    }

    /* dv_j = sum_t w_tj dctx_t, dk_j = sum_t ds_tj q_t (causal: t >= j) */
    for (int j = 0; j < Tk; j++) {
        const int t0 = a->causal ? (j < Tq ? j : Tq) : 0;
        float *dvj = dv + (size_t)(b * Tk + j) * a->ldv + h * dh;
        float *dkj = dk + (size_t)(b * Tk + j) * a->ldk + h * dh;
        weighted_rows(dvj, 0, WT + (size_t)j * Tq + t0, dc0 + (size_t)t0 * D, D, Tq - t0, dh);
        weighted_rows(dkj, 0, DST + (size_t)j * Tq + t0, q0 + (size_t)t0 * a->ldq, a->ldq,
                      Tq - t0, dh);
    }

    /* dq_t = sum_j ds_tj k_j */
    for (int t = 0; t < Tq; t++)
        weighted_rows(dq + (size_t)(b * Tq + t) * a->ldq + h * dh, 0, DP + (size_t)t * Tkp,
                      k + (size_t)b * Tk * a->ldk + h * dh, a->ldk, attn_visible(a, t), dh);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dctx,
                        const float *probs, const float *q, const float *k,
                        const float *v, const uint8_t *key_pad, const attn_dims *a) {
    const int B = a->B, Tq = a->Tq, Tk = a->Tk, H = a->H, dh = a->dh;
    const int Tkp = (Tk + 15) / 16 * 16;
    (void)key_pad; /* masked keys have probability 0: nothing flows to them */
    /* each (b, h) writes its own head's columns of dq, dk, dv: no races */
#pragma omp parallel
    {
        float *vt = mmt_malloc((size_t)dh * Tkp * sizeof *vt); /* (dh, Tkp) */
        float *DP = mmt_malloc((size_t)Tq * Tkp * sizeof *DP);  /* (Tq, Tkp) */
        float *WT = mmt_malloc((size_t)2 * Tk * Tq * sizeof *WT); /* (2, Tk, Tq) */
        float *DST = WT + (size_t)Tk * Tq;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                if (dh == 32)
                    attn_bwd_block(dq, dk, dv, dctx, probs, q, k, v, a, b, h, 32, vt, DP, WT, DST);
                else if (dh == 64)
                    attn_bwd_block(dq, dk, dv, dctx, probs, q, k, v, a, b, h, 64, vt, DP, WT, DST);
                else
                    attn_bwd_block(dq, dk, dv, dctx, probs, q, k, v, a, b, h, dh, vt, DP, WT, DST);
            }
        free(vt);
        free(DP);
        free(WT);
    }
}

/* ======================================================= residual, penal */

void residual_forward(float *y, const float *x, const float *z, long n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = x[i] + z[i];
}

void residual_backward(float *dx, float *dz, const float *dy, const float *z, float c,
                       const uint8_t *row_pad, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D >= PAR_MIN)
    for (int r = 0; r < N; r++) {
        const size_t o = (size_t)r * D;
        const float cr = (row_pad && row_pad[r]) ? 0.0f : c;
        if (cr == 0.0f) {
            for (int i = 0; i < D; i++) {
                dx[o + i] += dy[o + i];
                dz[o + i] += dy[o + i];
            }
        } else {
            for (int i = 0; i < D; i++) {
                dx[o + i] += dy[o + i];
                dz[o + i] += dy[o + i] + cr * z[o + i];
            }
        }
    }
}

/* ========================================================= cross entropy */

/* The shared pass of both forms: lse of every row; with expz, exp(logits -
 * row max) (zero on pad rows) and rinv = 1 / its row sums. Per-thread sums
 * are added in thread order, so the total does not depend on timing. */
static xent_result xent_rows(float *lse, float *expz, float *rinv, const float *logits,
                             const int *targets, int pad, float eps, int N, int V) {
    const float eps_i = V > 1 ? eps / (V - 1) : 0.0f;
    int nt = omp_get_max_threads();
    double *part = mmt_calloc((size_t)nt * 3, sizeof *part);
#pragma omp parallel num_threads(nt)
    {
        double *acc = part + 3 * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int r = 0; r < N; r++) {
            const float *x = logits + (size_t)r * V;
            float *e = expz ? expz + (size_t)r * V : NULL;
            const int y = targets[r];

            /* max and sum of the row, then the sum of exponentials (stored in e) */
            float mx = -INFINITY, xsum = 0.0f, sum = 0.0f;
#pragma omp simd reduction(max : mx) reduction(+ : xsum)
            for (int i = 0; i < V; i++) {
                mx = x[i] > mx ? x[i] : mx;
                xsum += x[i];
            }
            const float xy = y == pad ? 0.0f : x[y]; /* before e may overwrite x */
            if (e) {
#pragma omp simd reduction(+ : sum)
                for (int i = 0; i < V; i++) {
                    e[i] = fast_expf(x[i] - mx);
                    sum += e[i];
                }
            } else {
#pragma omp simd reduction(+ : sum)
                for (int i = 0; i < V; i++) sum += fast_expf(x[i] - mx);
            }
            const float l = mx + logf(sum);
            lse[r] = l;
            if (rinv) rinv[r] = y == pad ? 0.0f : 1.0f / sum;
            if (y == pad) {
                if (e) memset(e, 0, (size_t)V * sizeof *e);
                continue;
            }

            /* -log p_y, and the smoothing term -sum_v log p_v = V lse - sum x */
            double nl = (double)l - xy;
            double smooth = (double)V * l - xsum;
            acc[0] += (1.0 - eps - eps_i) * nl + eps_i * smooth;
            acc[1] += nl;
            acc[2] += 1.0;
        }
    }
    xent_result res = {0.0, 0.0, 0};
    for (int t = 0; t < nt; t++) {
        res.loss += part[3 * t];
        res.nll += part[3 * t + 1];
        res.ntokens += (long)part[3 * t + 2];
    }
    free(part);
    return res;
}

xent_result xent_forward(float *lse, float *dlogits, const float *logits, const int *targets,
                         int pad, float eps, int N, int V) {
    if (!dlogits) return xent_rows(lse, NULL, NULL, logits, targets, pad, eps, N, V);

    /* the gradient: softmax minus the smoothed target */
    float *rinv = mmt_malloc((size_t)(N > 0 ? N : 1) * sizeof *rinv);
    xent_result res = xent_rows(lse, dlogits, rinv, logits, targets, pad, eps, N, V);
    const float eps_i = V > 1 ? eps / (V - 1) : 0.0f;
#pragma omp parallel for schedule(static) if ((long)N * V >= PAR_MIN)
    for (int r = 0; r < N; r++) {
        if (targets[r] == pad) continue;
        float *d = dlogits + (size_t)r * V;
        const float inv = rinv[r];
#pragma omp simd
        for (int i = 0; i < V; i++) d[i] = d[i] * inv - eps_i;
        d[targets[r]] -= 1.0f - eps - eps_i;
    }
    free(rinv);
    return res;
}

xent_result xent_forward_exp(float *lse, float *expz, float *rinv, const float *logits,
                             const int *targets, int pad, float eps, int N, int V) {
    return xent_rows(lse, expz, rinv, logits, targets, pad, eps, N, V);
}

void xent_backward(float *dlogits, const float *lse, const float *logits,
                   const int *targets, int pad, float eps, float scale, int N, int V) {
    const float eps_i = V > 1 ? eps / (V - 1) : 0.0f;
#pragma omp parallel for schedule(static) if ((long)N * V >= PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = logits + (size_t)r * V;
        float *d = dlogits + (size_t)r * V;
        if (targets[r] == pad) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        float l = lse[r];
#pragma omp simd
        for (int i = 0; i < V; i++) d[i] = scale * (fast_expf(x[i] - l) - eps_i);
        d[targets[r]] -= scale * (1.0f - eps - eps_i);
    }
}
