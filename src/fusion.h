/*
 * fusion.h - the image pathway: image regions projected to the model width,
 * and the two ways of fusing them into the encoder output. Each layer is a
 * forward/backward pair with the conventions of kernels.h (backward
 * accumulates into input and weight gradients).
 *
 * Letters: B batch, S source length, N = B*S encoder rows, P image regions
 * per example, Dv width of a region as stored, D model width.
 *
 *   regions    v (B*P, D) = dropout(x) w_p^T + b_p (+ pos[p])      x (B*P, Dv)
 *   pooling    g (B, D) = mean over p of v                            (gated only)
 *   gated      (Wu et al. 2021, "Good for misconceived reasons"):
 *                lam = sigmoid(h w_t^T + g[b] w_i^T + b_g)          (N, D)
 *                z   = lam * g[b]
 *   selective  (Li et al. 2022, "On vision features in multimodal MT"):
 *                q = h w_q^T + b_q,  [k | u] = v w_kv^T + b_kv
 *                h_img = softmax(q k^T / sqrt(D)) u                 one head over P
 *                lam = sigmoid(h w_t^T + h_img w_i^T + b_g)
 *                z   = lam * (h_img - h)
 * Both end in the residual h' = h + z, which the caller computes with
 * residual_forward/backward so that the penal connection can sit on z. For
 * the selective fusion h + z = (1 - lam) h + lam h_img, the paper's gate.
 * The gate's weight [w_t | w_i] on the concatenation [h; image] is kept as
 * two (D, D) matrices: the same function, two plain products.
 */
#ifndef MMT_FUSION_H
#define MMT_FUSION_H

#include <stdint.h>

typedef struct {
    int B, S, P, D;
} fusion_dims;

/* Parameters of a fusion (unused ones NULL): the gate for both, the
 * attention projections for the selective one. */
typedef struct {
    const float *w_t, *w_i, *b_g; /* (D, D) (D, D) (D) */
    const float *w_q, *b_q;       /* (D, D) (D)          selective */
    const float *w_kv, *b_kv;     /* (2D, D) (2D)        selective */
} fusion_weights;

/* Their gradients, in the same places. */
typedef struct {
    float *w_t, *w_i, *b_g, *w_q, *b_q, *w_kv, *b_kv;
} fusion_grads;

/* What the forward keeps for the backward. */
typedef struct {
    float *lam;   /* (N, D) gate */
    float *q;     /* (N, D) selective: queries */
    float *kv;    /* (B*P, 2D) selective: keys | values */
    float *probs; /* (B, 1, S, P) selective: attention over the regions */
    float *himg;  /* (N, D) selective: attended image */
} fusion_acts;

/* out (N, Dv) = (x - mean) * scale, per value of a region: the image
 * input standardised with the training set's statistics (model.image_norm
 * "standard"); out may be x. */
void image_norm_forward(float *out, const float *x, const float *mean, const float *scale, long N,
                        int Dv);

/* v (B*P, D) = xd w_p^T + b_p (+ pos (P, D) when pos is not NULL), where
 * xd (B*P, Dv) = dropout(x) with drop probability p and seed (xd is kept
 * for the backward; it may be x itself when p = 0). */
void image_proj_forward(float *v, float *xd, const float *x, const float *w_p, const float *b_p,
                        const float *pos, float p, uint64_t seed, int B, int P, int Dv, int D);
/* dw_p (D, Dv) += dv^T xd, db_p += column sums of dv, dpos (P, D) += sum
 * over b of dv (dpos NULL when there are no positions). */
void image_proj_backward(float *dw_p, float *db_p, float *dpos, const float *dv,
                         const float *xd, int B, int P, int Dv, int D);

/* g (B, D) = mean over the P regions of v (B*P, D). */
void image_pool_forward(float *g, const float *v, int B, int P, int D);
/* dv (B*P, D) += dg / P. */
void image_pool_backward(float *dv, const float *dg, int B, int P, int D);

/* Gated fusion: z (N, D) from h (N, D) and the pooled image g (B, D). */
void fusion_gated_forward(float *z, fusion_acts *a, const float *h, const float *g,
                          const fusion_weights *w, const fusion_dims *d);
/* dh (N, D) +=, dg (B, D) +=, weight gradients +=, from dz (N, D). */
void fusion_gated_backward(float *dh, float *dg, const fusion_grads *dw, const float *dz,
                           const fusion_acts *a, const float *h, const float *g,
                           const fusion_weights *w, const fusion_dims *d);

/* Selective attention fusion: z (N, D) from h (N, D) and the regions v (B*P, D). */
void fusion_selective_forward(float *z, fusion_acts *a, const float *h, const float *v,
                              const fusion_weights *w, const fusion_dims *d);
/* dh (N, D) +=, dv (B*P, D) +=, weight gradients +=, from dz (N, D). */
void fusion_selective_backward(float *dh, float *dv, const fusion_grads *dw, const float *dz,
                               const fusion_acts *a, const float *h, const float *v,
                               const fusion_weights *w, const fusion_dims *d);

#endif
