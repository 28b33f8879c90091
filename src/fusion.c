/*
 * fusion.c - image regions, pooling, gated and selective fusion (see fusion.h).
 */
#include "fusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ================================================================ regions */

void image_norm_forward(float *out, const float *x, const float *mean, const float *scale, long N,
                        int Dv) {
#pragma omp parallel for schedule(static) if (N * Dv >= (1L << 15))
    for (long r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * Dv;
        float *o = out + (size_t)r * Dv;
        for (int j = 0; j < Dv; j++) o[j] = (xr[j] - mean[j]) * scale[j];
    }
}

void image_proj_forward(float *v, float *xd, const float *x, const float *w_p, const float *b_p,
                        const float *pos, float p, uint64_t seed, int B, int P, int Dv, int D) {
    const int N = B * P;
    dropout_forward(xd, x, (long)N * Dv, p, seed);
    linear_forward(v, D, xd, Dv, w_p, b_p, N, Dv, D);
    if (!pos) return;
#pragma omp parallel for schedule(static) if ((long)N * D >= (1L << 15))
    for (int r = 0; r < N; r++) {
        const float *pr = pos + (size_t)(r % P) * D;
        float *vr = v + (size_t)r * D;
        for (int i = 0; i < D; i++) vr[i] += pr[i];
    }
}

void image_proj_backward(float *dw_p, float *db_p, float *dpos, const float *dv,
                         const float *xd, int B, int P, int Dv, int D) {
    linear_backward(NULL, Dv, dw_p, db_p, dv, D, xd, Dv, NULL, B * P, Dv, D);
    if (!dpos) return;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            const float *dr = dv + ((size_t)b * P + p) * D;
            float *dp = dpos + (size_t)p * D;
            for (int i = 0; i < D; i++) dp[i] += dr[i];
        }
}

void image_pool_forward(float *g, const float *v, int B, int P, int D) {
    const float inv = 1.0f / (float)P;
    for (int b = 0; b < B; b++) {
        float *gb = g + (size_t)b * D;
        for (int i = 0; i < D; i++) gb[i] = 0.0f;
        for (int p = 0; p < P; p++) {
            const float *vr = v + ((size_t)b * P + p) * D;
            for (int i = 0; i < D; i++) gb[i] += vr[i];
        }
        for (int i = 0; i < D; i++) gb[i] *= inv;
    }
}

void image_pool_backward(float *dv, const float *dg, int B, int P, int D) {
    const float inv = 1.0f / (float)P;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            float *dr = dv + ((size_t)b * P + p) * D;
            const float *gb = dg + (size_t)b * D;
            for (int i = 0; i < D; i++) dr[i] += inv * gb[i];
        }
}

/* ================================================================= gated */

void fusion_gated_forward(float *z, fusion_acts *a, const float *h, const float *g,
                          const fusion_weights *w, const fusion_dims *d) {
    const int B = d->B, S = d->S, D = d->D, N = B * S;
    float *gi = mmt_malloc((size_t)B * D * sizeof *gi); /* (B, D) image part of the gate */

    // lam = sigmoid(h w_t^T + (g w_i^T + b_g) of the row's example); z = lam * g
    linear_forward(a->lam, D, h, D, w->w_t, NULL, N, D, D);
    linear_forward(gi, D, g, D, w->w_i, w->b_g, B, D, D);
#pragma omp parallel for schedule(static) if ((long)N * D >= (1L << 15))
    for (int r = 0; r < N; r++) {
        const float *gir = gi + (size_t)(r / S) * D, *gr = g + (size_t)(r / S) * D;
        float *l = a->lam + (size_t)r * D, *zr = z + (size_t)r * D;
        for (int i = 0; i < D; i++) {
            l[i] = sigmoidf(l[i] + gir[i]);
            zr[i] = l[i] * gr[i];
        }
    }
    free(gi);
}

void fusion_gated_backward(float *dh, float *dg, const fusion_grads *dw, const float *dz,
                           const fusion_acts *a, const float *h, const float *g,
                           const fusion_weights *w, const fusion_dims *d) {
    const int B = d->B, S = d->S, D = d->D, N = B * S;
    float *dpre = mmt_malloc((size_t)N * D * sizeof *dpre); /* (N, D) before the sigmoid */
    float *dgi = mmt_calloc((size_t)B * D, sizeof *dgi);    /* (B, D) its sums per example */

    // z = lam * g: dg += dz lam; dpre = dz g lam (1 - lam), summed per example into dgi
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *gb = g + (size_t)b * D;
        float *dgb = dg + (size_t)b * D, *dgib = dgi + (size_t)b * D;
        for (int s = 0; s < S; s++) {
            const size_t r = (size_t)b * S + s;
            const float *l = a->lam + r * D, *dzr = dz + r * D;
            float *dp = dpre + r * D;
            for (int i = 0; i < D; i++) {
                dgb[i] += dzr[i] * l[i];
                dp[i] = dzr[i] * gb[i] * l[i] * (1.0f - l[i]);
                dgib[i] += dp[i];
            }
        }
    }

    // through h w_t^T and g w_i^T + b_g
    linear_backward(dh, D, dw->w_t, NULL, dpre, D, h, D, w->w_t, N, D, D);
    linear_backward(dg, D, dw->w_i, dw->b_g, dgi, D, g, D, w->w_i, B, D, D);
    free(dpre);
    free(dgi);
}

/* ============================================================= selective */

static attn_dims region_dims(const fusion_dims *d) {
    attn_dims ad = {d->B, d->S, d->P, 1, d->D, d->D, 2 * d->D, 2 * d->D, 0, 0.0f, 0};
    return ad;
}

void fusion_selective_forward(float *z, fusion_acts *a, const float *h, const float *v,
                              const fusion_weights *w, const fusion_dims *d) {
    const int B = d->B, S = d->S, P = d->P, D = d->D, N = B * S;
    float *t = mmt_malloc((size_t)N * D * sizeof *t); /* (N, D) h_img w_i^T */

    // h_img: one head of attention from the text rows over the image regions
    linear_forward(a->q, D, h, D, w->w_q, w->b_q, N, D, D);
    linear_forward(a->kv, 2 * D, v, D, w->w_kv, w->b_kv, B * P, D, 2 * D);
    attn_dims ad = region_dims(d);
    attention_forward(a->himg, a->probs, a->q, a->kv, a->kv + D, NULL, &ad);

    // lam = sigmoid(h w_t^T + h_img w_i^T + b_g); z = lam * (h_img - h)
    linear_forward(a->lam, D, h, D, w->w_t, w->b_g, N, D, D);
    linear_forward(t, D, a->himg, D, w->w_i, NULL, N, D, D);
#pragma omp parallel for schedule(static) if ((long)N * D >= (1L << 15))
    for (int r = 0; r < N; r++) {
        float *l = a->lam + (size_t)r * D, *zr = z + (size_t)r * D;
        const float *tr = t + (size_t)r * D, *hr = h + (size_t)r * D;
        const float *ir = a->himg + (size_t)r * D;
        for (int i = 0; i < D; i++) {
            l[i] = sigmoidf(l[i] + tr[i]);
            zr[i] = l[i] * (ir[i] - hr[i]);
        }
    }
    free(t);
}

void fusion_selective_backward(float *dh, float *dv, const fusion_grads *dw, const float *dz,
                               const fusion_acts *a, const float *h, const float *v,
                               const fusion_weights *w, const fusion_dims *d) {
    const int B = d->B, S = d->S, P = d->P, D = d->D, N = B * S;
    float *dpre = mmt_malloc((size_t)N * D * sizeof *dpre);  /* (N, D) before the sigmoid */
    float *dhimg = mmt_malloc((size_t)N * D * sizeof *dhimg); /* (N, D) */
    float *dq = mmt_calloc((size_t)N * D, sizeof *dq);
    float *dkv = mmt_calloc((size_t)B * P * 2 * D, sizeof *dkv);

    // z = lam (h_img - h): dh_img = dz lam, dh -= dz lam, dpre = dz (h_img - h) lam (1 - lam)
#pragma omp parallel for schedule(static) if ((long)N * D >= (1L << 15))
    for (int r = 0; r < N; r++) {
        const float *l = a->lam + (size_t)r * D, *dzr = dz + (size_t)r * D;
        const float *hr = h + (size_t)r * D, *ir = a->himg + (size_t)r * D;
        float *dp = dpre + (size_t)r * D, *di = dhimg + (size_t)r * D, *dhr = dh + (size_t)r * D;
        for (int i = 0; i < D; i++) {
            di[i] = dzr[i] * l[i];
            dhr[i] -= di[i];
            dp[i] = dzr[i] * (ir[i] - hr[i]) * l[i] * (1.0f - l[i]);
        }
    }

    // the gate's two products, then the attention and its projections
    linear_backward(dh, D, dw->w_t, dw->b_g, dpre, D, h, D, w->w_t, N, D, D);
    linear_backward(dhimg, D, dw->w_i, NULL, dpre, D, a->himg, D, w->w_i, N, D, D);
    attn_dims ad = region_dims(d);
    attention_backward(dq, dkv, dkv + D, dhimg, a->probs, a->q, a->kv, a->kv + D, NULL, &ad);
    linear_backward(dh, D, dw->w_q, dw->b_q, dq, D, h, D, w->w_q, N, D, D);
    linear_backward(dv, D, dw->w_kv, dw->b_kv, dkv, 2 * D, v, D, w->w_kv, B * P, D, 2 * D);
    free(dpre);
    free(dhimg);
    free(dq);
    free(dkv);
}
