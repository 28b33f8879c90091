/*
 * bench/kernel_times.h - wall time of every layer kernel in a training step,
 * for bench-train built with -DBENCH_KERNEL_TIMES and the linker's --wrap
 * (bench/profile-train.sh does both). Included by bench/train.c only.
 *
 * With -Wl,--wrap=attention_forward, model.c's calls to attention_forward go
 * to __wrap_attention_forward below, which times __real_attention_forward.
 * Kernels are called from the main thread between parallel regions, so the
 * sums need no locks. sgemm's seconds (kernels_gemm_seconds) are taken out
 * of linear_forward/backward, leaving their bias broadcast and bias column
 * sums. memset and memcpy are timed only when called outside a kernel and
 * outside a parallel region: the zeroing and copying model.c does itself.
 *
 *     kernel_times_reset();   ... steps ...   kernel_times_print(f, steps, step_s);
 */
#ifndef BENCH_KERNEL_TIMES_H
#define BENCH_KERNEL_TIMES_H

#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "kernels.h"

enum {
    KT_DROPOUT_F, KT_DROPOUT_B, KT_EMBED_F, KT_EMBED_B, KT_LN_F, KT_LN_B,
    KT_LINEAR_F, KT_LINEAR_B, KT_RELU_F, KT_RELU_B, KT_ATTN_F, KT_ATTN_B,
    KT_RESID_F, KT_RESID_B, KT_XENT_F, KT_XENT_B, KT_MEMSET, KT_MEMCPY, KT_XENT_EXP,
    KT_DROPRES_F, KT_DROPRES_B, KT_COUNT
};

static const char *const kt_names[KT_COUNT] = {
    "dropout_forward", "dropout_backward", "embedding_forward", "embedding_backward",
    "layernorm_forward", "layernorm_backward", "linear_forward (bias copy)",
    "linear_backward (bias sums)", "relu_forward", "relu_backward", "attention_forward",
    "attention_backward", "residual_forward", "residual_backward", "xent_forward",
    "xent_backward", "memset in model.c", "memcpy in model.c", "xent_forward_exp",
    "dropout_residual_forward", "dropout_residual_backward",
};

static double kt_seconds[KT_COUNT];
static long kt_calls[KT_COUNT];
static int kt_depth; /* > 0 inside a timed kernel */

static void kernel_times_reset(void) {
    for (int i = 0; i < KT_COUNT; i++) { /* not memset: that one is timed */
        kt_seconds[i] = 0.0;
        kt_calls[i] = 0;
    }
}

/* Open and close a timed call; nested calls are counted in the outer one. */
#define KT_BEGIN()                                        \
    double kt_t0 = kt_depth++ ? 0.0 : mmt_now();          \
    double kt_g0 = kernels_gemm_seconds
#define KT_END(k)                                                              \
    do {                                                                       \
        if (--kt_depth == 0) {                                                 \
            kt_seconds[k] += mmt_now() - kt_t0 - (kernels_gemm_seconds - kt_g0); \
            kt_calls[k]++;                                                     \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------ the wrappers */

void __real_dropout_forward(float *out, const float *inp, long n, float p, uint64_t seed);
void __wrap_dropout_forward(float *out, const float *inp, long n, float p, uint64_t seed) {
    KT_BEGIN();
    __real_dropout_forward(out, inp, n, p, seed);
    KT_END(KT_DROPOUT_F);
}

void __real_dropout_backward(float *dinp, const float *dout, long n, float p, uint64_t seed);
void __wrap_dropout_backward(float *dinp, const float *dout, long n, float p, uint64_t seed) {
    KT_BEGIN();
    __real_dropout_backward(dinp, dout, n, p, seed);
    KT_END(KT_DROPOUT_B);
}

void __real_embedding_forward(float *out, const int *ids, const float *emb, const float *pe,
                              int B, int T, int D);
void __wrap_embedding_forward(float *out, const int *ids, const float *emb, const float *pe,
                              int B, int T, int D) {
    KT_BEGIN();
    __real_embedding_forward(out, ids, emb, pe, B, T, D);
    KT_END(KT_EMBED_F);
}

void __real_embedding_backward(float *demb, const float *dout, const int *ids, int pad, int B,
                               int T, int D);
void __wrap_embedding_backward(float *demb, const float *dout, const int *ids, int pad, int B,
                               int T, int D) {
    KT_BEGIN();
    __real_embedding_backward(demb, dout, ids, pad, B, T, D);
    KT_END(KT_EMBED_B);
}

void __real_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *g, const float *b, int N, int D);
void __wrap_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                              const float *g, const float *b, int N, int D) {
    KT_BEGIN();
    __real_layernorm_forward(out, mean, rstd, inp, g, b, N, D);
    KT_END(KT_LN_F);
}

void __real_layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                               const float *mean, const float *rstd, const float *inp,
                               const float *g, int N, int D);
void __wrap_layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                               const float *mean, const float *rstd, const float *inp,
                               const float *g, int N, int D) {
    KT_BEGIN();
    __real_layernorm_backward(dinp, dg, db, dout, mean, rstd, inp, g, N, D);
    KT_END(KT_LN_B);
}

void __real_layernorm_backward_into(float *dinp, float *dg, float *db, const float *dout,
                                    const float *mean, const float *rstd, const float *inp,
                                    const float *g, int N, int D);
void __wrap_layernorm_backward_into(float *dinp, float *dg, float *db, const float *dout,
                                    const float *mean, const float *rstd, const float *inp,
                                    const float *g, int N, int D) {
    KT_BEGIN();
    __real_layernorm_backward_into(dinp, dg, db, dout, mean, rstd, inp, g, N, D);
    KT_END(KT_LN_B);
}

void __real_linear_forward(float *out, int ld_out, const float *inp, int ld_inp,
                           const float *w, const float *b, int N, int K, int M);
void __wrap_linear_forward(float *out, int ld_out, const float *inp, int ld_inp,
                           const float *w, const float *b, int N, int K, int M) {
    KT_BEGIN();
    __real_linear_forward(out, ld_out, inp, ld_inp, w, b, N, K, M);
    KT_END(KT_LINEAR_F);
}

void __real_linear_backward(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                            int ld_dout, const float *inp, int ld_inp, const float *w, int N,
                            int K, int M);
void __wrap_linear_backward(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                            int ld_dout, const float *inp, int ld_inp, const float *w, int N,
                            int K, int M) {
    KT_BEGIN();
    __real_linear_backward(dinp, ld_dinp, dw, db, dout, ld_dout, inp, ld_inp, w, N, K, M);
    KT_END(KT_LINEAR_B);
}

void __real_linear_backward_into(float *dinp, int ld_dinp, float *dw, float *db,
                                 const float *dout, int ld_dout, const float *inp, int ld_inp,
                                 const float *w, int N, int K, int M);
void __wrap_linear_backward_into(float *dinp, int ld_dinp, float *dw, float *db,
                                 const float *dout, int ld_dout, const float *inp, int ld_inp,
                                 const float *w, int N, int K, int M) {
    KT_BEGIN();
    __real_linear_backward_into(dinp, ld_dinp, dw, db, dout, ld_dout, inp, ld_inp, w, N, K, M);
    KT_END(KT_LINEAR_B);
}

void __real_relu_forward(float *out, const float *inp, long n);
void __wrap_relu_forward(float *out, const float *inp, long n) {
    KT_BEGIN();
    __real_relu_forward(out, inp, n);
    KT_END(KT_RELU_F);
}

void __real_relu_backward(float *dinp, const float *dout, const float *out, long n);
void __wrap_relu_backward(float *dinp, const float *dout, const float *out, long n) {
    KT_BEGIN();
    __real_relu_backward(dinp, dout, out, n);
    KT_END(KT_RELU_B);
}

void __real_attention_forward(float *ctx, float *probs, const float *q, const float *k,
                              const float *v, const uint8_t *key_pad, const attn_dims *a);
void __wrap_attention_forward(float *ctx, float *probs, const float *q, const float *k,
                              const float *v, const uint8_t *key_pad, const attn_dims *a) {
    KT_BEGIN();
    __real_attention_forward(ctx, probs, q, k, v, key_pad, a);
    KT_END(KT_ATTN_F);
}

void __real_attention_backward(float *dq, float *dk, float *dv, const float *dctx,
                               const float *probs, const float *q, const float *k,
                               const float *v, const uint8_t *key_pad, const attn_dims *a);
void __wrap_attention_backward(float *dq, float *dk, float *dv, const float *dctx,
                               const float *probs, const float *q, const float *k,
                               const float *v, const uint8_t *key_pad, const attn_dims *a) {
    KT_BEGIN();
    __real_attention_backward(dq, dk, dv, dctx, probs, q, k, v, key_pad, a);
    KT_END(KT_ATTN_B);
}

void __real_residual_forward(float *y, const float *x, const float *z, long n);
void __wrap_residual_forward(float *y, const float *x, const float *z, long n) {
    KT_BEGIN();
    __real_residual_forward(y, x, z, n);
    KT_END(KT_RESID_F);
}

void __real_residual_backward(float *dx, float *dz, const float *dy, const float *z, float c,
                              const uint8_t *row_pad, int N, int D);
void __wrap_residual_backward(float *dx, float *dz, const float *dy, const float *z, float c,
                              const uint8_t *row_pad, int N, int D) {
    KT_BEGIN();
    __real_residual_backward(dx, dz, dy, z, c, row_pad, N, D);
    KT_END(KT_RESID_B);
}

xent_result __real_xent_forward(float *lse, float *dlogits, const float *logits,
                                const int *targets, int pad, float eps, int N, int V);
xent_result __wrap_xent_forward(float *lse, float *dlogits, const float *logits,
                                const int *targets, int pad, float eps, int N, int V) {
    KT_BEGIN();
    xent_result r = __real_xent_forward(lse, dlogits, logits, targets, pad, eps, N, V);
    KT_END(KT_XENT_F);
    return r;
}

void __real_xent_backward(float *dlogits, const float *lse, const float *logits,
                          const int *targets, int pad, float eps, float scale, int N, int V);
void __wrap_xent_backward(float *dlogits, const float *lse, const float *logits,
                          const int *targets, int pad, float eps, float scale, int N, int V) {
    KT_BEGIN();
    __real_xent_backward(dlogits, lse, logits, targets, pad, eps, scale, N, V);
    KT_END(KT_XENT_B);
}

void *__real_memset(void *p, int c, size_t n);
void *__wrap_memset(void *p, int c, size_t n) {
    if (omp_in_parallel() || kt_depth) return __real_memset(p, c, n);
    KT_BEGIN();
    __real_memset(p, c, n);
    KT_END(KT_MEMSET);
    return p;
}

void *__real_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n) {
    if (omp_in_parallel() || kt_depth) return __real_memcpy(dst, src, n);
    KT_BEGIN();
    __real_memcpy(dst, src, n);
    KT_END(KT_MEMCPY);
    return dst;
}

/* ----------------------------------------------------------------- report */

/* Kernels by time per step, as ms and % of step_s (the mean step); the rest
 * of the step is sgemm (given) and model.c's own code. */
static void kernel_times_print(FILE *f, int steps, double step_s, double gemm_s) {
    int order[KT_COUNT];
    double total = 0.0;
    for (int i = 0; i < KT_COUNT; i++) {
        order[i] = i;
        total += kt_seconds[i] / steps;
    }
    for (int i = 1; i < KT_COUNT; i++) /* insertion sort, longest first */
        for (int j = i; j > 0 && kt_seconds[order[j]] > kt_seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(f, "  %-34s %9s %8s %7s\n", "wall time per step, mean", "ms", "% step", "calls");
    fprintf(f, "  %-34s %9.1f %7.1f%%\n", "sgemm (in linear_*)", 1e3 * gemm_s,
            100.0 * gemm_s / step_s);
    for (int i = 0; i < KT_COUNT; i++) {
        int k = order[i];
        if (!kt_calls[k]) continue;
        fprintf(f, "  %-34s %9.1f %7.1f%% %7ld\n", kt_names[k], 1e3 * kt_seconds[k] / steps,
                100.0 * kt_seconds[k] / steps / step_s, kt_calls[k] / steps);
    }
    double rest = step_s - gemm_s - total;
    fprintf(f, "  %-34s %9.1f %7.1f%%\n", "rest (model.c's own code)", 1e3 * rest,
            100.0 * rest / step_s);
}

xent_result __real_xent_forward_exp(float *lse, float *expz, float *rinv, const float *logits,
                                    const int *targets, int pad, float eps, int N, int V);
xent_result __wrap_xent_forward_exp(float *lse, float *expz, float *rinv, const float *logits,
                                    const int *targets, int pad, float eps, int N, int V) {
    KT_BEGIN();
    xent_result r = __real_xent_forward_exp(lse, expz, rinv, logits, targets, pad, eps, N, V);
    KT_END(KT_XENT_EXP);
    return r;
}

void __real_dropout_residual_forward(float *y, float *z, const float *x, const float *a, float p,
                                     uint64_t seed, int N, int D);
void __wrap_dropout_residual_forward(float *y, float *z, const float *x, const float *a, float p,
                                     uint64_t seed, int N, int D) {
    KT_BEGIN();
    __real_dropout_residual_forward(y, z, x, a, p, seed, N, D);
    KT_END(KT_DROPRES_F);
}

void __real_dropout_residual_backward(float *dx, float *da, const float *dy, const float *z,
                                      float c, const uint8_t *row_pad, float p, uint64_t seed,
                                      int N, int D);
void __wrap_dropout_residual_backward(float *dx, float *da, const float *dy, const float *z,
                                      float c, const uint8_t *row_pad, float p, uint64_t seed,
                                      int N, int D) {
    KT_BEGIN();
    __real_dropout_residual_backward(dx, da, dy, z, c, row_pad, p, seed, N, D);
    KT_END(KT_DROPRES_B);
}

#endif
