/*
 * kernels.h - the layers of the Transformer, each a forward/backward pair.
 *
 * Dimension letters, used in every shape comment of the project:
 *   N rows (tokens: B*S or B*T)   B batch   S source length   T target length
 *   D width   H heads   dh = D/H   F FFN width   V vocabulary   L layers
 *
 * Conventions:
 *   - X_forward(outputs, saved, inputs, weights, sizes);
 *     X_backward(dinputs, dweights, doutputs, saved, inputs, weights, sizes).
 *   - Every backward ACCUMULATES (+=) into its input and weight gradients,
 *     so a tensor read by two consumers gets the sum without extra copies;
 *     the caller zeroes gradient buffers before the backward pass.
 *   - Linear weights are stored as PyTorch does, (out, in): y = x w^T + b.
 *   - Dropout masks are never stored: element i of a dropout with seed s is
 *     kept when dropout_keep(s, i) holds, a counter-based hash, so forward
 *     and backward agree and a run is reproducible for any thread count.
 */
#ifndef MMT_KERNELS_H
#define MMT_KERNELS_H

#include <stdint.h>

/* --------------------------------------------------------------- dropout */

/* One 64-bit hash serves four consecutive elements, 16 bits each: element i
 * of a dropout with drop probability p and seed s is kept when its 16 bits
 * are at least round(p * 65536). */
static inline uint64_t dropout_hash(uint64_t seed, uint64_t block) {
    uint64_t z = seed + (block + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint32_t dropout_threshold(float p) {
    return (uint32_t)(p * 65536.0f + 0.5f);
}

/* True when element i of a dropout with drop probability p and seed s is kept. */
static inline int dropout_keep(uint64_t seed, uint64_t i, float p) {
    uint32_t bits = (uint32_t)(dropout_hash(seed, i >> 2) >> (16 * (i & 3))) & 0xFFFFu;
    return bits >= dropout_threshold(p);
}

/* Mix a base seed with a step and a slot into a fresh dropout seed. */
uint64_t dropout_seed(uint64_t base, uint64_t step, uint64_t slot);

/* out (n) = inp * keep / (1 - p); in place allowed. p = 0 copies. */
void dropout_forward(float *out, const float *inp, long n, float p, uint64_t seed);
void dropout_backward(float *dinp, const float *dout, long n, float p, uint64_t seed);

/* The dropout of a residual branch and the residual add in one pass:
 * z (n) = dropout(a), y (n) = x + z; the same as dropout_forward then
 * residual_forward, bit for bit. */
void dropout_residual_forward(float *y, float *z, const float *x, const float *a, float p,
                              uint64_t seed, int N, int D);
/* Its backward with the penal connection on z: dx = dy; da = dropout'(dy
 * + c z) on rows that are not padding, dropout'(dy) on padding rows. Both
 * are OVERWRITTEN. The same as residual_backward into a zeroed dx and dz,
 * then dropout_backward into a zeroed da, bit for bit. */
void dropout_residual_backward(float *dx, float *da, const float *dy, const float *z, float c,
                               const uint8_t *row_pad, float p, uint64_t seed, int N, int D);

/* ------------------------------------------------------------- embedding */

/* Sinusoidal table pe (P, D): pe[t][i] = sin(t * w_i), pe[t][D/2 + i] = cos(t * w_i),
 * w_i = 10000^(-i / (D/2 - 1)) for i < D/2 (fairseq's layout). */
void positions_init(float *pe, int P, int D);

/* out (B*T, D) = sqrt(D) * emb[ids] + pe[t]; ids (B*T), emb (V, D), pe (>=T, D). */
void embedding_forward(float *out, const int *ids, const float *emb, const float *pe,
                       int B, int T, int D);
/* demb (V, D) += sqrt(D) * dout rows, skipping ids equal to pad. */
void embedding_backward(float *demb, const float *dout, const int *ids, int pad,
                        int B, int T, int D);

/* -------------------------------------------------------- layer norm */

/* out (N, D) = (inp - mean) * rstd * g + b; saves mean (N), rstd (N). eps 1e-5. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *g, const float *b, int N, int D);
void layernorm_backward(float *dinp, float *dg, float *db, const float *dout,
                        const float *mean, const float *rstd, const float *inp,
                        const float *g, int N, int D);
/* The same with dinp overwritten: no zeroing first. */
void layernorm_backward_into(float *dinp, float *dg, float *db, const float *dout,
                             const float *mean, const float *rstd, const float *inp,
                             const float *g, int N, int D);

/* ---------------------------------------------------------------- linear */

/* out (N, M) = inp (N, K) w^T + b; w (M, K), b (M) or NULL. Row strides may
 * exceed the widths (ld_inp >= K, ld_out >= M) so a slice of a fused buffer
 * can be read or written in place. */
void linear_forward(float *out, int ld_out, const float *inp, int ld_inp,
                    const float *w, const float *b, int N, int K, int M);
/* dinp (N, K) += dout w; dw (M, K) += dout^T inp; db (M) += sum of dout rows.
 * dinp, dw or db may be NULL to skip that gradient. */
void linear_backward(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                     int ld_dout, const float *inp, int ld_inp, const float *w,
                     int N, int K, int M);
/* The same with dinp (N, K) = dout w, overwritten: no zeroing first. */
void linear_backward_into(float *dinp, int ld_dinp, float *dw, float *db, const float *dout,
                          int ld_dout, const float *inp, int ld_inp, const float *w,
                          int N, int K, int M);

/* ------------------------------------------------------------------ relu */

void relu_forward(float *out, const float *inp, long n);             /* in place ok */
/* dinp = dout where out > 0, else 0: overwritten. */
void relu_backward(float *dinp, const float *dout, const float *out, long n);

/* ------------------------------------------------------------- attention */

typedef struct {
    int B, Tq, Tk;       /* batch, query length, key length */
    int H, dh;           /* heads, width of a head (D = H * dh) */
    int ldq, ldk, ldv;   /* row strides of q (B*Tq, *), k and v (B*Tk, *) */
    int causal;          /* query t sees keys j <= t only */
    float dropout;       /* on the attention probabilities */
    uint64_t seed;       /* dropout seed */
} attn_dims;

/* ctx (B*Tq, D) = softmax(q k^T / sqrt(dh) + mask) v per head; probs (B, H, Tq, Tk)
 * saved before dropout. Keys with key_pad[b*Tk + j] != 0 are masked; a row with
 * every key masked gives zeros. */
void attention_forward(float *ctx, float *probs, const float *q, const float *k,
                       const float *v, const uint8_t *key_pad, const attn_dims *a);
/* dq, dk, dv use the strides of q, k, v; their head columns of every row are
 * overwritten (not added to), other columns are left as they are. */
void attention_backward(float *dq, float *dk, float *dv, const float *dctx,
                        const float *probs, const float *q, const float *k,
                        const float *v, const uint8_t *key_pad, const attn_dims *a);

/* ----------------------------------------------------- residual, penal */

/* y (n) = x + z. */
void residual_forward(float *y, const float *x, const float *z, long n);
/* The penal connection, on rows (N, D): dx += dy (skip); dz += dy + c * z
 * (branch), where c = tau times the loss's gradient scale (see
 * docs/ARCHITECTURE.md). Rows with row_pad[r] != 0 (padding) get no penal
 * term; row_pad may be NULL. c = 0 is the plain residual. */
void residual_backward(float *dx, float *dz, const float *dy, const float *z, float c,
                       const uint8_t *row_pad, int N, int D);

/* ------------------------------------------- softmax cross-entropy loss */

typedef struct {
    double loss;  /* summed label-smoothed loss over non-pad targets */
    double nll;   /* summed negative log-likelihood over non-pad targets */
    long ntokens; /* targets that are not pad */
} xent_result;

/* Label-smoothed cross entropy as fairseq defines it: the target gets
 * 1 - eps, every other class eps / (V - 1). Rows whose target is pad are
 * ignored. Saves lse (N), the log-sum-exp of each row of logits (N, V).
 * When dlogits is not NULL it also receives, in the same pass, the
 * gradient of the summed loss: softmax(logits) - smoothed target (zero on
 * pad rows), i.e. xent_backward with scale 1. */
xent_result xent_forward(float *lse, float *dlogits, const float *logits, const int *targets,
                         int pad, float eps, int N, int V);
/* The training form: as xent_forward, and expz (N, V) = exp(logits - row
 * max), zero on pad rows, with rinv (N) = 1 / the row sums of expz, so that
 * the gradient of the summed loss is rinv * expz - smoothed target. Left
 * unnormalised, the gradient's row scaling can be applied to the far smaller
 * (N, D) operands of the output layer's products instead of to (N, V).
 * expz may alias logits (the exponentials then replace them). */
xent_result xent_forward_exp(float *lse, float *expz, float *rinv, const float *logits,
                             const int *targets, int pad, float eps, int N, int V);
/* dlogits (N, V) = scale * (softmax(logits) - smoothed target), zero on pad
 * rows. Overwrites (does not accumulate), and may alias logits. */
void xent_backward(float *dlogits, const float *lse, const float *logits,
                   const int *targets, int pad, float eps, float scale, int N, int V);

/* ------------------------------------------------------- instrumentation */

/* When kernels_timing is set, linear_forward/backward add the seconds spent
 * in OpenBLAS (sgemm, and the sgemv of the bias gradient) to
 * kernels_gemm_seconds (benchmarks split a step this way). */
extern int kernels_timing;
extern double kernels_gemm_seconds;

/* ------------------------------------------------------------- helpers */

/* Vectorisable exp for float, relative error below 2e-7 on [-87, 88];
 * below and above, the values at the ends; NaN gives NaN (so a diverged
 * loss stays NaN). */
static inline float fast_expf(float x) {
    const int nan = x != x;
    float c = nan ? 0.0f : (x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x));
    float n = (c * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(c/ln2) */
    float r = c - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f / 5040 + r * (1.0f / 40320);
    p = 1.0f / 720 + r * p;
    p = 1.0f / 120 + r * p;
    p = 1.0f / 24 + r * p;
    p = 1.0f / 6 + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    union { float f; uint32_t i; } s;
    s.i = (uint32_t)((int32_t)n + 127) << 23;
    return nan ? x : p * s.f;
}

#endif
