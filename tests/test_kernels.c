/*
 * test_kernels.c - every layer in kernels.h, checked two ways:
 *   - its backward against central finite differences of the scalar loss
 *     sum(r * out) for a fixed random r, on small random shapes, every
 *     element of every input and weight gradient (see gradcheck.h);
 *   - where the forward is more than a copy, its output against a naive
 *     reference written here in double precision.
 * Tolerances sit in each check's name. They allow for float32 forwards:
 * a step h of 1e-2 on inputs in [-1, 1] leaves a truncation error of
 * order h^2 and a rounding error of order 1e-7 / h.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gradcheck.h"
#include "kernels.h"
#include "suites.h"
#include "test.h"

static float *alloc_f(long n) {
    return mmt_calloc((size_t)n, sizeof(float));
}

/* Largest |a[i] - b[i]|: 0 means bit-equal (or both -0/+0). */
static double max_abs_diff(const float *a, const float *b, long n) {
    double m = 0.0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

/* dst (rows, width) = columns [col, col + width) of src (rows, ld). */
static void copy_cols(float *dst, const float *src, int rows, int ld, int col, int width) {
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * width, src + (size_t)r * ld + col, (size_t)width * sizeof *dst);
}

/* ============================================================== embedding */

typedef struct {
    float *out;        /* (B*T, D) */
    const int *ids;    /* (B*T) */
    const float *emb;  /* (V, D) */
    const float *pe;   /* (T, D) */
    const float *r;    /* (B*T, D) loss weights */
    int B, T, D;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    embedding_forward(c->out, c->ids, c->emb, c->pe, c->B, c->T, c->D);
    return gc_dot(c->r, c->out, (long)c->B * c->T * c->D);
}

static void test_embedding(gc_rng *g) {
    enum { B = 2, T = 4, D = 6, V = 7, PAD = 1 };
    /* id 3 twice, the pad id 1 three times, ids 2 and 4 not at all */
    const int ids[B * T] = {3, 5, 3, 1, 0, 6, 1, 1};
    float *emb = alloc_f(V * D), *pe = alloc_f(T * D), *out = alloc_f(B * T * D);
    float *r = alloc_f(B * T * D), *demb = alloc_f(V * D), *num = alloc_f(V * D);
    gc_fill(g, emb, V * D, -1, 1);
    gc_fill(g, r, B * T * D, -1, 1);
    positions_init(pe, T, D);

    /* forward: sqrt(D) emb[id] + pe[t], pe from the formula in kernels.h */
    emb_ctx c = {out, ids, emb, pe, r, B, T, D};
    emb_loss(&c);
    float ref[B * T * D];
    for (int row = 0; row < B * T; row++)
        for (int i = 0; i < D / 2; i++) {
            double t = row % T, w = pow(10000.0, -(double)i / (D / 2 - 1));
            const float *e = emb + ids[row] * D;
            ref[row * D + i] = (float)(sqrt(D) * e[i] + sin(t * w));
            ref[row * D + D / 2 + i] = (float)(sqrt(D) * e[D / 2 + i] + cos(t * w));
        }
    check_close("embedding forward vs sqrt(D) emb + sinusoid in double (atol 1e-5, rtol 1e-6)",
                out, ref, B * T * D, 1e-5, 1e-6);

    /* backward: the pad row gets no gradient although the forward reads it */
    embedding_backward(demb, r, ids, PAD, B, T, D);
    gc_numeric_grad(emb, V * D, 1e-2, emb_loss, &c, num);
    memset(num + PAD * D, 0, D * sizeof *num);
    gc_check("embedding demb (pad row zero, repeated id summed)", demb, num, V * D, 1e-2, 1e-4,
             1e-3);

    free(emb), free(pe), free(out), free(r), free(demb), free(num);
}

/* ============================================================= layer norm */

typedef struct {
    float *out, *mean, *rstd;         /* (N, D), (N), (N) */
    const float *inp, *g, *b, *r;     /* (N, D), (D), (D), (N, D) */
    int N, D;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->g, c->b, c->N, c->D);
    return gc_dot(c->r, c->out, (long)c->N * c->D);
}

static void test_layernorm(gc_rng *g) {
    enum { N = 4, D = 10 };
    float *inp = alloc_f(N * D), *gam = alloc_f(D), *bet = alloc_f(D), *r = alloc_f(N * D);
    float *out = alloc_f(N * D), *mean = alloc_f(N), *rstd = alloc_f(N);
    float *dinp = alloc_f(N * D), *dg = alloc_f(D), *db = alloc_f(D), *num = alloc_f(N * D);
    gc_fill(g, inp, N * D, -1, 1);
    gc_fill(g, gam, D, 0.5f, 1.5f);
    gc_fill(g, bet, D, -1, 1);
    gc_fill(g, r, N * D, -1, 1);
    ln_ctx c = {out, mean, rstd, inp, gam, bet, r, N, D};
    ln_loss(&c);

    /* forward: (x - mean) / sqrt(var + 1e-5) * g + b with the biased variance */
    float ref[N * D];
    for (int row = 0; row < N; row++) {
        const float *x = inp + row * D;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < D; i++) m += x[i];
        m /= D;
        for (int i = 0; i < D; i++) v += (x[i] - m) * (x[i] - m);
        double s = 1.0 / sqrt(v / D + 1e-5);
        for (int i = 0; i < D; i++) ref[row * D + i] = (float)((x[i] - m) * s * gam[i] + bet[i]);
    }
    check_close("layernorm forward vs double reference (atol 1e-5, rtol 1e-5)", out, ref, N * D,
                1e-5, 1e-5);

    /* backward */
    layernorm_backward(dinp, dg, db, r, mean, rstd, inp, gam, N, D);
    gc_numeric_grad(inp, N * D, 1e-2, ln_loss, &c, num);
    gc_check("layernorm dinp", dinp, num, N * D, 1e-2, 5e-4, 5e-3);
    gc_numeric_grad(gam, D, 1e-2, ln_loss, &c, num);
    gc_check("layernorm dg", dg, num, D, 1e-2, 1e-4, 1e-3);
    gc_numeric_grad(bet, D, 1e-2, ln_loss, &c, num);
    gc_check("layernorm db", db, num, D, 1e-2, 1e-4, 1e-3);

    free(inp), free(gam), free(bet), free(r), free(out), free(mean), free(rstd);
    free(dinp), free(dg), free(db), free(num);
}

/* ================================================================= linear */

typedef struct {
    float *out_buf;      /* (N, ld_out); the kernel writes columns [out_col, out_col + M) */
    const float *inp;    /* (N, K) with row stride ld_inp */
    const float *w, *b;  /* (M, K), (M) */
    const float *r;      /* (N, ld_out) loss weights over the whole buffer */
    int ld_out, out_col, ld_inp, N, K, M;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out_buf + c->out_col, c->ld_out, c->inp, c->ld_inp, c->w, c->b, c->N,
                   c->K, c->M);
    return gc_dot(c->r, c->out_buf, (long)c->N * c->ld_out);
}

/* inp is columns [in_col, in_col + K) of an (N, ld_inp) buffer, out columns
 * [out_col, out_col + M) of an (N, ld_out) one; ld = width and col = 0 is the
 * plain case. With accumulate set, also check that a second backward adds. */
static void test_linear_case(gc_rng *g, const char *name, int N, int K, int M, int ld_inp,
                             int in_col, int ld_out, int out_col, int accumulate) {
    const long n_in = (long)N * ld_inp, n_out = (long)N * ld_out;
    float *inp_buf = alloc_f(n_in), *w = alloc_f(M * K), *b = alloc_f(M), *r = alloc_f(n_out);
    float *out_buf = alloc_f(n_out), *sentinel = alloc_f(n_out);
    float *dinp_buf = alloc_f(n_in), *dw = alloc_f(M * K), *db = alloc_f(M);
    float *num = alloc_f(n_in > M * K ? n_in : M * K);
    gc_fill(g, inp_buf, n_in, -1, 1);
    gc_fill(g, w, M * K, -1, 1);
    gc_fill(g, b, M, -1, 1);
    gc_fill(g, r, n_out, -1, 1);
    gc_fill(g, sentinel, n_out, 2, 3);
    memcpy(out_buf, sentinel, n_out * sizeof *out_buf);
    const float *inp = inp_buf + in_col;
    lin_ctx c = {out_buf, inp, w, b, r, ld_out, out_col, ld_inp, N, K, M};
    lin_loss(&c);
    char what[160];

    /* forward: x w^T + b in double inside the slice, the sentinel outside it */
    float *ref = alloc_f(n_out);
    memcpy(ref, sentinel, n_out * sizeof *ref);
    for (int row = 0; row < N; row++)
        for (int o = 0; o < M; o++) {
            double s = b[o];
            for (int i = 0; i < K; i++) s += (double)inp[row * ld_inp + i] * w[o * K + i];
            ref[row * ld_out + out_col + o] = (float)s;
        }
    snprintf(what, sizeof what,
             "linear %s forward vs double reference, outside the slice untouched "
             "(atol 1e-5, rtol 1e-5)", name);
    check_close(what, out_buf, ref, n_out, 1e-5, 1e-5);

    /* backward: dinp over the whole input buffer, zero outside the slice */
    linear_backward(dinp_buf + in_col, ld_inp, dw, db, r + out_col, ld_out, inp, ld_inp, w, N,
                    K, M);
    gc_numeric_grad(inp_buf, n_in, 1e-2, lin_loss, &c, num);
    snprintf(what, sizeof what, "linear %s dinp", name);
    gc_check(what, dinp_buf, num, n_in, 1e-2, 1e-4, 1e-3);
    gc_numeric_grad(w, M * K, 1e-2, lin_loss, &c, num);
    snprintf(what, sizeof what, "linear %s dw", name);
    gc_check(what, dw, num, M * K, 1e-2, 1e-4, 1e-3);
    gc_numeric_grad(b, M, 1e-2, lin_loss, &c, num);
    snprintf(what, sizeof what, "linear %s db", name);
    gc_check(what, db, num, M, 1e-2, 1e-4, 1e-3);

    if (accumulate) {
        /* a second call adds the same gradient again: every element doubles */
        float *once = alloc_f(n_in + M * K + M), *twice = alloc_f(n_in + M * K + M);
        memcpy(once, dinp_buf, n_in * sizeof *once);
        memcpy(once + n_in, dw, M * K * sizeof *once);
        memcpy(once + n_in + M * K, db, M * sizeof *once);
        linear_backward(dinp_buf + in_col, ld_inp, dw, db, r + out_col, ld_out, inp, ld_inp, w,
                        N, K, M);
        memcpy(twice, dinp_buf, n_in * sizeof *twice);
        memcpy(twice + n_in, dw, M * K * sizeof *twice);
        memcpy(twice + n_in + M * K, db, M * sizeof *twice);
        for (long i = 0; i < n_in + M * K + M; i++) once[i] *= 2.0f;
        snprintf(what, sizeof what,
                 "linear %s backward accumulates: dinp, dw, db double on a second call "
                 "(atol 1e-6, rtol 1e-6)", name);
        check_close(what, twice, once, n_in + M * K + M, 1e-6, 1e-6);
        free(once), free(twice);
    }

    free(inp_buf), free(w), free(b), free(r), free(out_buf), free(sentinel), free(ref);
    free(dinp_buf), free(dw), free(db), free(num);
}

static void test_linear(gc_rng *g) {
    test_linear_case(g, "(ld = width)", 5, 7, 6, 7, 0, 6, 0, 0);
    /* input: columns 2..8 of a (5, 12) buffer; output: the key slice of a fused
     * (5, 3*6) QKV buffer */
    test_linear_case(g, "(strided: ld_inp 12, ld_out 18)", 5, 7, 6, 12, 2, 18, 6, 1);
}

/* =================================================================== relu */

typedef struct {
    float *out;
    const float *inp, *r;
    long n;
} relu_ctx;

static double relu_loss(void *p) {
    relu_ctx *c = p;
    relu_forward(c->out, c->inp, c->n);
    return gc_dot(c->r, c->out, c->n);
}

static void test_relu(gc_rng *g) {
    enum { N = 64 };
    float inp[N], out[N], r[N], dinp[N] = {0}, num[N];
    /* keep |x| >= 0.05 so no step of 1e-2 crosses the kink at 0 */
    for (int i = 0; i < N; i++) {
        float u = gc_rng_uniform(g, 0.05f, 1.0f);
        inp[i] = (gc_rng_next(g) & 1) ? u : -u;
    }
    gc_fill(g, r, N, -1, 1);
    relu_ctx c = {out, inp, r, N};
    relu_loss(&c);
    relu_backward(dinp, r, out, N);
    gc_numeric_grad(inp, N, 1e-2, relu_loss, &c, num);
    gc_check("relu dinp", dinp, num, N, 1e-2, 1e-5, 1e-4);
}

/* ================================================================ dropout */

typedef struct {
    float *out;
    const float *inp, *r;
    long n;
    float p;
    uint64_t seed;
} drop_ctx;

static double drop_loss(void *q) {
    drop_ctx *c = q;
    dropout_forward(c->out, c->inp, c->n, c->p, c->seed);
    return gc_dot(c->r, c->out, c->n);
}

static void test_dropout(gc_rng *g) {
    enum { BIG = 100000, N = 64 };
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    const uint64_t seed = 1234;
    float *inp = alloc_f(BIG), *out = alloc_f(BIG), *out2 = alloc_f(BIG);
    /* no zeros in the input, so a zero output always means dropped */
    gc_fill(g, inp, BIG, 0.1f, 1.0f);

    /* forward: each element is inp * 1/(1-p) or 0, about 1-p of them kept */
    dropout_forward(out, inp, BIG, p, seed);
    long kept = 0, bad = 0;
    for (long i = 0; i < BIG; i++) {
        if (out[i] != 0.0f) kept++;
        if (out[i] != 0.0f && out[i] != inp[i] * scale) bad++;
    }
    CHECK(bad == 0, "dropout forward: every output is inp/(1-p) or 0 (%ld of %d wrong)", bad,
          BIG);
    /* binomial standard deviation sqrt(p(1-p)/n) = 0.0014: 0.01 is 7 of them */
    double frac = (double)kept / BIG;
    CHECK(fabs(frac - (1.0 - p)) < 0.01,
          "dropout p=0.3 keeps %.4f of %d elements (want 0.7 +- 0.01)", frac, BIG);

    /* the mask is a function of (seed, index): same seed, same mask; in place too */
    dropout_forward(out2, inp, BIG, p, seed);
    CHECK(memcmp(out, out2, BIG * sizeof *out) == 0, "dropout: same seed gives the same mask");
    memcpy(out2, inp, BIG * sizeof *out2);
    dropout_forward(out2, out2, BIG, p, seed);
    CHECK(memcmp(out, out2, BIG * sizeof *out) == 0, "dropout: in place equals out of place");
    dropout_forward(out2, inp, BIG, p, seed + 1);
    long differ = 0;
    for (long i = 0; i < BIG; i++) differ += (out[i] == 0.0f) != (out2[i] == 0.0f);
    /* independent masks disagree on 2 p (1 - p) = 0.42 of the elements */
    CHECK(differ > BIG / 4, "dropout: another seed gives another mask (%ld of %d differ, "
          "want > 1/4)", differ, BIG);

    /* backward: linear in inp with the same mask */
    float r[N], dinp[N] = {0}, num[N];
    gc_fill(g, r, N, -1, 1);
    drop_ctx c = {out, inp, r, N, p, seed};
    dropout_backward(dinp, r, N, p, seed);
    gc_numeric_grad(inp, N, 1e-2, drop_loss, &c, num);
    gc_check("dropout p=0.3 dinp", dinp, num, N, 1e-2, 1e-5, 1e-4);

    free(inp), free(out), free(out2);
}

/* ============================================================== attention */

/* The inputs: self-attention reads q, k, v as column slices of one fused
 * (B*T, 3D) buffer; cross-attention reads q from its own (B*Tq, D) buffer and
 * k, v from a fused (B*Tk, 2D) one. */
typedef struct {
    attn_dims a;
    float *qbuf, *kvbuf;      /* kvbuf == qbuf for self-attention */
    const float *q, *k, *v;   /* slices of the buffers */
    const uint8_t *key_pad;   /* (B, Tk) */
    float *ctx, *probs;       /* (B*Tq, D), (B, H, Tq, Tk) */
    const float *r;           /* (B*Tq, D) loss weights */
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *c = p;
    attention_forward(c->ctx, c->probs, c->q, c->k, c->v, c->key_pad, &c->a);
    return gc_dot(c->r, c->ctx, (long)c->a.B * c->a.Tq * c->a.H * c->a.dh);
}

/* May query t of batch row b see key j? */
static int attn_sees(const attn_dims *a, const uint8_t *key_pad, int b, int t, int j) {
    if (a->causal && j > t) return 0;
    return !(key_pad && key_pad[b * a->Tk + j]);
}

/* Naive attention in double: softmax over the visible keys only (a row with
 * none gives zeros), dropout on element (b, h, t, j) of probs with the
 * kernel's hash, then the weighted sum of v. probs (B, H, Tq, Tk) before dropout. */
static void attn_reference(double *ctx, double *probs, const float *q, const float *k,
                           const float *v, const uint8_t *key_pad, const attn_dims *a) {
    const int D = a->H * a->dh;
    double s[a->Tk];
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int t = 0; t < a->Tq; t++) {
                const float *qt = q + (size_t)(b * a->Tq + t) * a->ldq + h * a->dh;
                double *p = probs + (((size_t)b * a->H + h) * a->Tq + t) * a->Tk;
                double *c = ctx + (size_t)(b * a->Tq + t) * D + h * a->dh;

                /* scores and their softmax over the visible keys */
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < a->Tk; j++) {
                    const float *kj = k + (size_t)(b * a->Tk + j) * a->ldk + h * a->dh;
                    s[j] = 0.0;
                    for (int i = 0; i < a->dh; i++) s[j] += (double)qt[i] * kj[i];
                    s[j] /= sqrt(a->dh);
                    if (attn_sees(a, key_pad, b, t, j) && s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < a->Tk; j++) {
                    p[j] = attn_sees(a, key_pad, b, t, j) ? exp(s[j] - mx) : 0.0;
                    sum += p[j];
                }
                for (int j = 0; j < a->Tk; j++) p[j] = sum > 0.0 ? p[j] / sum : 0.0;

                /* ctx = dropout(p) v */
                uint64_t base = (((uint64_t)b * a->H + h) * a->Tq + t) * a->Tk;
                for (int i = 0; i < a->dh; i++) c[i] = 0.0;
                for (int j = 0; j < a->Tk; j++) {
                    double w = p[j];
                    if (a->dropout > 0.0f)
                        w = dropout_keep(a->seed, base + j, a->dropout) ? w / (1.0 - a->dropout)
                                                                       : 0.0;
                    const float *vj = v + (size_t)(b * a->Tk + j) * a->ldv + h * a->dh;
                    for (int i = 0; i < a->dh; i++) c[i] += w * vj[i];
                }
            }
}

/* Forward against the reference; probs rows sum to 1 over the visible keys
 * and are exactly 0 on masked ones. */
static void attn_check_forward(const char *name, attn_ctx *c) {
    const attn_dims *a = &c->a;
    const long n_ctx = (long)a->B * a->Tq * a->H * a->dh;
    const long n_p = (long)a->B * a->H * a->Tq * a->Tk;
    double *ref_ctx = mmt_malloc(n_ctx * sizeof *ref_ctx);
    double *ref_p = mmt_malloc(n_p * sizeof *ref_p);
    double *got = mmt_malloc((n_ctx > n_p ? n_ctx : n_p) * sizeof *got);
    char what[200];

    /* garbage first: the kernel must write every element, zeros included */
    for (long i = 0; i < n_ctx; i++) c->ctx[i] = 7.0f;
    for (long i = 0; i < n_p; i++) c->probs[i] = 7.0f;
    attention_forward(c->ctx, c->probs, c->q, c->k, c->v, c->key_pad, a);
    attn_reference(ref_ctx, ref_p, c->q, c->k, c->v, c->key_pad, a);
    for (long i = 0; i < n_ctx; i++) got[i] = c->ctx[i];
    snprintf(what, sizeof what, "attention %s ctx vs double reference (atol 1e-5, rtol 1e-4)",
             name);
    check_close_d(what, got, ref_ctx, n_ctx, 1e-5, 1e-4);
    for (long i = 0; i < n_p; i++) got[i] = c->probs[i];
    snprintf(what, sizeof what, "attention %s probs vs double reference (atol 1e-6, rtol 1e-5)",
             name);
    check_close_d(what, got, ref_p, n_p, 1e-6, 1e-5);

    long bad_rows = 0, rows = 0;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int t = 0; t < a->Tq; t++, rows++) {
                const float *p = c->probs + (((size_t)b * a->H + h) * a->Tq + t) * a->Tk;
                double sum = 0.0;
                int visible = 0, bad = 0;
                for (int j = 0; j < a->Tk; j++) {
                    if (attn_sees(a, c->key_pad, b, t, j)) {
                        sum += p[j];
                        visible = 1;
                    } else if (p[j] != 0.0f) {
                        bad = 1;
                    }
                }
                if (fabs(sum - (visible ? 1.0 : 0.0)) > 1e-5) bad = 1;
                bad_rows += bad;
            }
    CHECK(bad_rows == 0, "attention %s probs: rows sum to 1 over visible keys (within 1e-5), "
          "exactly 0 on masked keys (%ld of %ld rows wrong)", name, bad_rows, rows);
    free(ref_ctx), free(ref_p), free(got);
}

/* dq, dk, dv against finite differences over the input buffers. */
static void attn_check_backward(const char *name, attn_ctx *c, int self) {
    const attn_dims *a = &c->a;
    const int D = a->H * a->dh, Nq = a->B * a->Tq, Nk = a->B * a->Tk;
    const long n_q = (long)Nq * a->ldq, n_kv = self ? 0 : (long)Nk * a->ldk;
    float *dqbuf = alloc_f(n_q), *dkvbuf = self ? dqbuf : alloc_f(n_kv);
    float *numq = alloc_f(n_q), *numkv = self ? numq : alloc_f(n_kv);
    const long n_rows = Nq > Nk ? Nq : Nk;
    float *an = alloc_f(n_rows * D), *nu = alloc_f(n_rows * D);
    const double h = 1e-2, atol = 2e-4, rtol = 2e-3;
    char what[160];

    /* analytic: dq, dk, dv land in the slices of the gradient buffers that
     * mirror q, k, v */
    attention_forward(c->ctx, c->probs, c->q, c->k, c->v, c->key_pad, a);
    float *dq = dqbuf + (c->q - c->qbuf);
    float *dk = dkvbuf + (c->k - c->kvbuf), *dv = dkvbuf + (c->v - c->kvbuf);
    attention_backward(dq, dk, dv, c->r, c->probs, c->q, c->k, c->v, c->key_pad, a);

    /* numeric: perturb every element of the input buffers */
    gc_numeric_grad(c->qbuf, n_q, h, attn_loss, c, numq);
    if (!self) gc_numeric_grad(c->kvbuf, n_kv, h, attn_loss, c, numkv);

    /* compare per slice; q, k, v sit at columns q - qbuf etc. of their buffers */
    int cq = (int)(c->q - c->qbuf), ck = (int)(c->k - c->kvbuf), cv = (int)(c->v - c->kvbuf);
    copy_cols(an, dqbuf, Nq, a->ldq, cq, D);
    copy_cols(nu, numq, Nq, a->ldq, cq, D);
    snprintf(what, sizeof what, "attention %s dq", name);
    gc_check(what, an, nu, (long)Nq * D, h, atol, rtol);
    copy_cols(an, dkvbuf, Nk, a->ldk, ck, D);
    copy_cols(nu, numkv, Nk, a->ldk, ck, D);
    snprintf(what, sizeof what, "attention %s dk", name);
    gc_check(what, an, nu, (long)Nk * D, h, atol, rtol);
    copy_cols(an, dkvbuf, Nk, a->ldv, cv, D);
    copy_cols(nu, numkv, Nk, a->ldv, cv, D);
    snprintf(what, sizeof what, "attention %s dv", name);
    gc_check(what, an, nu, (long)Nk * D, h, atol, rtol);

    free(dqbuf), free(numq), free(an), free(nu);
    if (!self) free(dkvbuf), free(numkv);
}

/* Self-attention over a fused (B*T, 3D) QKV buffer. */
static void test_attention_self(gc_rng *g, const char *name, int B, int T, int H, int dh,
                                int causal, float dropout, const uint8_t *key_pad) {
    const int D = H * dh, N = B * T;
    float *qkv = alloc_f((long)N * 3 * D), *r = alloc_f((long)N * D);
    float *ctx = alloc_f((long)N * D), *probs = alloc_f((long)B * H * T * T);
    gc_fill(g, qkv, (long)N * 3 * D, -1, 1);
    gc_fill(g, r, (long)N * D, -1, 1);
    attn_ctx c = {
        .a = {B, T, T, H, dh, 3 * D, 3 * D, 3 * D, causal, dropout, 77},
        .qbuf = qkv, .kvbuf = qkv, .q = qkv, .k = qkv + D, .v = qkv + 2 * D,
        .key_pad = key_pad, .ctx = ctx, .probs = probs, .r = r,
    };
    attn_check_forward(name, &c);
    attn_check_backward(name, &c, 1);
    free(qkv), free(r), free(ctx), free(probs);
}

/* Cross-attention: q (B*Tq, D), k and v from a fused (B*Tk, 2D) buffer. */
static void test_attention_cross(gc_rng *g, const char *name, int B, int Tq, int Tk, int H,
                                 int dh, const uint8_t *key_pad) {
    const int D = H * dh;
    float *q = alloc_f((long)B * Tq * D), *kv = alloc_f((long)B * Tk * 2 * D);
    float *r = alloc_f((long)B * Tq * D), *ctx = alloc_f((long)B * Tq * D);
    float *probs = alloc_f((long)B * H * Tq * Tk);
    gc_fill(g, q, (long)B * Tq * D, -1, 1);
    gc_fill(g, kv, (long)B * Tk * 2 * D, -1, 1);
    gc_fill(g, r, (long)B * Tq * D, -1, 1);
    attn_ctx c = {
        .a = {B, Tq, Tk, H, dh, D, 2 * D, 2 * D, 0, 0.0f, 0},
        .qbuf = q, .kvbuf = kv, .q = q, .k = kv, .v = kv + D,
        .key_pad = key_pad, .ctx = ctx, .probs = probs, .r = r,
    };
    attn_check_forward(name, &c);
    attn_check_backward(name, &c, 0);
    free(q), free(kv), free(r), free(ctx), free(probs);
}

static void test_attention(gc_rng *g) {
    /* (B=2, T=5): batch row 1 has its last two keys padded */
    static const uint8_t pad_enc[2 * 5] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    test_attention_self(g, "encoder self (fused QKV, key padding)", 2, 5, 2, 4, 0, 0.0f,
                        pad_enc);
    /* (B=2, T=6): causal, batch row 0 has its last key padded */
    static const uint8_t pad_dec[2 * 6] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    test_attention_self(g, "decoder self (causal, key padding)", 2, 6, 2, 4, 1, 0.0f, pad_dec);
    /* (B=3, Tk=5), Tq=4: row 0 pads one key, row 2 pads every key (gives zeros) */
    static const uint8_t pad_x[3 * 5] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    test_attention_cross(g, "cross (Tq 4, Tk 5, fused KV, key padding)", 3, 4, 5, 2, 4, pad_x);
    test_attention_self(g, "encoder self with dropout 0.3", 2, 5, 2, 4, 0, 0.3f, pad_enc);

    /* the head widths compiled as constants (32, 64), the generic width-16
     * path, and more than 16 keys (two tiles of the transposed keys) */
    static uint8_t pad20[2 * 20], pad18[2 * 18], pad17[2 * 17], pad7[7];
    pad20[20 + 17] = pad20[20 + 18] = pad20[20 + 19] = 1;
    pad18[17] = 1;
    pad17[16] = pad17[17 + 3] = 1;
    test_attention_self(g, "encoder self, head width 32, 20 keys", 2, 20, 2, 32, 0, 0.0f, pad20);
    test_attention_self(g, "decoder self, head width 32, causal, 18 keys, dropout 0.2", 2, 18, 1,
                        32, 1, 0.2f, pad18);
    test_attention_cross(g, "cross, head width 64, Tq 3, Tk 17", 2, 3, 17, 1, 64, pad17);
    test_attention_self(g, "encoder self, head width 16", 1, 7, 2, 16, 0, 0.0f, pad7);
}

/* ======================================================= residual, penal */

typedef struct {
    float *y;                 /* (N, D) */
    const float *x, *z, *r;   /* (N, D) */
    const uint8_t *row_pad;   /* (N) or NULL */
    float c;
    int N, D;
} res_ctx;

/* sum(r * (x + z)) + c/2 ||z||^2 over the rows that are not padding: its
 * gradient in z is the penal connection's branch gradient with dy = r. */
static double res_loss(void *p) {
    res_ctx *c = p;
    residual_forward(c->y, c->x, c->z, (long)c->N * c->D);
    double zz = 0.0;
    for (int row = 0; row < c->N; row++) {
        if (c->row_pad && c->row_pad[row]) continue;
        for (int i = 0; i < c->D; i++) zz += (double)c->z[row * c->D + i] * c->z[row * c->D + i];
    }
    return gc_dot(c->r, c->y, (long)c->N * c->D) + 0.5 * c->c * zz;
}

static void test_residual(gc_rng *g) {
    enum { N = 6, D = 8 };
    const float cpen = 0.3f;
    const uint8_t row_pad[N] = {0, 0, 1, 0, 0, 1};
    float x[N * D], z[N * D], y[N * D], r[N * D], dx[N * D], dz[N * D], num[N * D];
    gc_fill(g, x, N * D, -1, 1);
    gc_fill(g, z, N * D, -1, 1);
    gc_fill(g, r, N * D, -1, 1);

    /* c = 0: the plain residual passes dy to both sides unchanged */
    memset(dx, 0, sizeof dx);
    memset(dz, 0, sizeof dz);
    residual_backward(dx, dz, r, z, 0.0f, row_pad, N, D);
    CHECK(max_abs_diff(dx, r, N * D) == 0.0 && max_abs_diff(dz, r, N * D) == 0.0,
          "residual c=0: dx == dz == dy exactly");

    /* c > 0: the branch also gets c z on rows that are not padding, the skip
     * never does; once with padded rows, once with row_pad NULL */
    for (int with_pad = 1; with_pad >= 0; with_pad--) {
        const uint8_t *pad = with_pad ? row_pad : NULL;
        const char *how = with_pad ? "rows 2 and 5 padded" : "row_pad NULL";
        memset(dx, 0, sizeof dx);
        memset(dz, 0, sizeof dz);
        residual_backward(dx, dz, r, z, cpen, pad, N, D);
        CHECK(max_abs_diff(dx, r, N * D) == 0.0, "residual c=0.3 (%s): dx == dy exactly", how);
        res_ctx c = {y, x, z, r, pad, cpen, N, D};
        gc_numeric_grad(z, N * D, 1e-2, res_loss, &c, num);
        char what[120];
        snprintf(what, sizeof what, "residual c=0.3 (%s) dz (= dy + c z off padding)", how);
        gc_check(what, dz, num, N * D, 1e-2, 1e-5, 1e-4);
    }
}

/* ========================================================= cross entropy */

typedef struct {
    float *lse;                /* (N) */
    const float *logits;       /* (N, V) */
    const int *targets;        /* (N) */
    int pad, N, V;
    float eps, scale;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    xent_result res =
        xent_forward(c->lse, NULL, c->logits, c->targets, c->pad, c->eps, c->N, c->V);
    return c->scale * res.loss;
}

static void test_xent_case(gc_rng *g, float eps) {
    enum { N = 5, V = 7, PAD = 1 };
    const int targets[N] = {3, 1, 0, 6, 3}; /* row 1 is pad */
    const float scale = 0.25f;
    float logits[N * V], lse[N], dlogits[N * V], num[N * V];
    gc_fill(g, logits, N * V, -3, 3);
    char what[160];

    /* reference: target weight 1 - eps, every other class eps / (V - 1) */
    double ref_loss = 0.0, ref_nll = 0.0, ref_lse[N], got_lse[N];
    long ref_ntok = 0;
    for (int row = 0; row < N; row++) {
        const float *x = logits + row * V;
        double s = 0.0;
        for (int i = 0; i < V; i++) s += exp((double)x[i]);
        ref_lse[row] = log(s);
        if (targets[row] == PAD) continue;
        for (int i = 0; i < V; i++) {
            double logp = x[i] - ref_lse[row];
            ref_loss -= (i == targets[row] ? 1.0 - eps : eps / (V - 1)) * logp;
        }
        ref_nll -= x[targets[row]] - ref_lse[row];
        ref_ntok++;
    }
    xent_result res = xent_forward(lse, NULL, logits, targets, PAD, eps, N, V);
    for (int row = 0; row < N; row++) got_lse[row] = lse[row];
    snprintf(what, sizeof what, "xent eps=%g lse vs double (atol 1e-6, rtol 1e-6)", eps);
    check_close_d(what, got_lse, ref_lse, N, 1e-6, 1e-6);
    snprintf(what, sizeof what, "xent eps=%g loss and nll vs double reference, pad row ignored "
             "(rtol 1e-6)", eps);
    double got[2] = {res.loss, res.nll}, want[2] = {ref_loss, ref_nll};
    check_close_d(what, got, want, 2, 0.0, 1e-6);
    CHECK(res.ntokens == ref_ntok, "xent eps=%g ntokens %ld (want %ld non-pad)", eps,
          res.ntokens, ref_ntok);

    /* backward overwrites: start from garbage */
    for (int i = 0; i < N * V; i++) dlogits[i] = 7.0f;
    xent_backward(dlogits, lse, logits, targets, PAD, eps, scale, N, V);
    xent_ctx c = {lse, logits, targets, PAD, N, V, eps, scale};
    gc_numeric_grad(logits, N * V, 1e-2, xent_loss, &c, num);
    snprintf(what, sizeof what, "xent eps=%g dlogits of %g * loss (overwrites, pad row 0)", eps,
             scale);
    gc_check(what, dlogits, num, N * V, 1e-2, 1e-4, 1e-3);

    /* dlogits may alias logits */
    float inplace[N * V];
    memcpy(inplace, logits, sizeof inplace);
    xent_forward(lse, NULL, logits, targets, PAD, eps, N, V);
    xent_backward(inplace, lse, inplace, targets, PAD, eps, scale, N, V);
    CHECK(memcmp(inplace, dlogits, sizeof inplace) == 0,
          "xent eps=%g backward in place (dlogits == logits) gives the same bits", eps);

    /* the fused gradient of xent_forward is the backward's with scale 1 */
    float fused[N * V], unit[N * V];
    xent_result r2 = xent_forward(lse, fused, logits, targets, PAD, eps, N, V);
    xent_backward(unit, lse, logits, targets, PAD, eps, 1.0f, N, V);
    snprintf(what, sizeof what, "xent eps=%g gradient fused into the forward equals the "
             "backward's (atol 1e-7, rtol 1e-5)", eps);
    check_close(what, fused, unit, N * V, 1e-7, 1e-5);
    CHECK(r2.loss == res.loss && r2.nll == res.nll && r2.ntokens == res.ntokens,
          "xent eps=%g the fused forward reports the same loss", eps);

    /* the training form: rinv * expz - smoothed target is the same gradient */
    float expz[N * V], rinv[N], fromexp[N * V];
    xent_result r3 = xent_forward_exp(lse, expz, rinv, logits, targets, PAD, eps, N, V);
    for (int row = 0; row < N; row++)
        for (int i = 0; i < V; i++) {
            float q = targets[row] == PAD ? 0.0f
                      : i == targets[row] ? 1.0f - eps : eps / (V - 1);
            fromexp[row * V + i] = rinv[row] * expz[row * V + i] - q;
        }
    snprintf(what, sizeof what, "xent eps=%g rinv * expz - target of xent_forward_exp equals "
             "the backward's gradient (atol 1e-7, rtol 1e-5)", eps);
    check_close(what, fromexp, unit, N * V, 1e-7, 1e-5);
    CHECK(fabs(r3.loss - res.loss) <= 1e-6 * fabs(res.loss) && r3.ntokens == res.ntokens,
          "xent eps=%g xent_forward_exp reports the same loss (rtol 1e-6)", eps);
}

static void test_xent(gc_rng *g) {
    test_xent_case(g, 0.0f);
    test_xent_case(g, 0.1f);
}

/* ============================================================== fast_expf */

static void test_fast_expf(void) {
    /* 1.6 million points; the relative error of exp in float itself is 6e-8 */
    double worst = 0.0, at = 0.0;
    for (long i = 0; i <= 1600000; i++) {
        float x = (float)(-80.0 + i * 1e-4);
        double want = exp((double)x), err = fabs(fast_expf(x) - want) / want;
        if (err > worst || err != err) worst = err, at = x;
    }
    CHECK(worst < 3e-7, "fast_expf max relative error on [-80, 80] step 1e-4: %.3g at %g "
          "(want < 3e-7)", worst, at);
}

/* ================================================================== suite */

/* ================================================ fused dropout, residual */

/* The fused kernels equal the composition of the kernels they replace, bit
 * for bit (so their gradients are those checked above). */
static void test_dropout_residual(gc_rng *g) {
    enum { N = 7, D = 12, NN = N * D };
    float x[NN], a[NN], dy[NN], y1[NN], z1[NN], y2[NN], z2[NN];
    float dx1[NN], dx2[NN], da1[NN], da2[NN], dz[NN];
    const uint8_t pad[N] = {0, 0, 1, 0, 0, 1, 0};
    gc_fill(g, x, NN, -1, 1);
    gc_fill(g, a, NN, -1, 1);
    gc_fill(g, dy, NN, -1, 1);
    for (int k = 0; k < 2; k++) {
        const float p = k ? 0.3f : 0.0f, c = 0.25f;
        const uint64_t seed = 77;
        dropout_forward(z1, a, NN, p, seed);
        residual_forward(y1, x, z1, NN);
        dropout_residual_forward(y2, z2, x, a, p, seed, N, D);
        CHECK(!memcmp(y1, y2, sizeof y1) && !memcmp(z1, z2, sizeof z1),
              "dropout_residual_forward (p %.1f) equals dropout then residual, bit for bit", p);

        memset(dx1, 0, sizeof dx1);
        for (int i = 0; i < NN; i++) dx2[i] = -7.0f; /* overwritten */
        memset(dz, 0, sizeof dz);
        memset(da1, 0, sizeof da1);
        residual_backward(dx1, dz, dy, z1, c, pad, N, D);
        dropout_backward(da1, dz, NN, p, seed);
        for (int i = 0; i < NN; i++) da2[i] = 123.0f; /* overwritten */
        dropout_residual_backward(dx2, da2, dy, z2, c, pad, p, seed, N, D);
        CHECK(!memcmp(dx1, dx2, sizeof dx1) && !memcmp(da1, da2, sizeof da1),
              "dropout_residual_backward (p %.1f, penal c %.2f, padded rows) equals residual "
              "then dropout backward, bit for bit", p, c);
    }
}

void suite_kernels(void) {
    gc_rng g = gc_rng_new(20240601);
    test_embedding(&g);
    test_layernorm(&g);
    test_linear(&g);
    test_relu(&g);
    test_dropout(&g);
    test_attention(&g);
    test_residual(&g);
    test_dropout_residual(&g);
    test_xent(&g);
    test_fast_expf();
}
