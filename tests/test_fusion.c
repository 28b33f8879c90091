/*
 * test_fusion.c - the image pathway's layers (src/fusion.c) against central
 * finite differences: region projection (with dropout and positions),
 * pooling, gated fusion and selective attention fusion. The loss is
 * sum(r * out) for a fixed random r; every element of every input and
 * weight is compared.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion.h"
#include "gradcheck.h"
#include "kernels.h"
#include "test.h"

static float *alloc_f(long n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

/* One differentiable buffer of a layer: its values, analytic gradient and size. */
typedef struct {
    const char *name;
    float *x, *dx;
    long n;
} gc_buf;

/* Numeric gradient of every buffer against its analytic one. */
static void check_bufs(const char *layer, gc_buf *bufs, int nbufs, gc_loss_fn f, void *ctx,
                       double h, double atol, double rtol) {
    for (int i = 0; i < nbufs; i++) {
        float *num = alloc_f(bufs[i].n);
        gc_numeric_grad(bufs[i].x, bufs[i].n, h, f, ctx, num);
        char what[160];
        snprintf(what, sizeof what, "%s d%s", layer, bufs[i].name);
        gc_check(what, bufs[i].dx, num, bufs[i].n, h, atol, rtol);
        free(num);
    }
}

/* ============================================================== regions */

typedef struct {
    int B, P, Dv, D, pos;
    float p;
    float *x, *w, *b, *ps, *v, *xd, *r;
} proj_ctx;

static double proj_loss(void *vc) {
    proj_ctx *c = vc;
    image_proj_forward(c->v, c->xd, c->x, c->w, c->b, c->pos ? c->ps : NULL, c->p, 77, c->B,
                       c->P, c->Dv, c->D);
    return gc_dot(c->r, c->v, (long)c->B * c->P * c->D);
}

static void test_proj(gc_rng *g, int pos, float p) {
    proj_ctx c = {2, 3, 5, 4, pos, p, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const long nx = (long)c.B * c.P * c.Dv, nv = (long)c.B * c.P * c.D;
    c.x = alloc_f(nx), c.xd = alloc_f(nx), c.v = alloc_f(nv), c.r = alloc_f(nv);
    c.w = alloc_f((long)c.D * c.Dv), c.b = alloc_f(c.D), c.ps = alloc_f((long)c.P * c.D);
    gc_fill(g, c.x, nx, 0, 1);
    gc_fill(g, c.r, nv, -1, 1);
    gc_fill(g, c.w, (long)c.D * c.Dv, -1, 1);
    gc_fill(g, c.b, c.D, -1, 1);
    gc_fill(g, c.ps, (long)c.P * c.D, -1, 1);
    float *dw = alloc_f((long)c.D * c.Dv), *db = alloc_f(c.D), *dps = alloc_f((long)c.P * c.D);

    proj_loss(&c);
    image_proj_backward(dw, db, pos ? dps : NULL, c.r, c.xd, c.B, c.P, c.Dv, c.D);
    gc_buf bufs[] = {{"w_p", c.w, dw, (long)c.D * c.Dv}, {"b_p", c.b, db, c.D},
                     {"pos", c.ps, dps, (long)c.P * c.D}};
    char layer[96];
    snprintf(layer, sizeof layer, "image projection (positions %s, dropout %.1f)",
             pos ? "on" : "off", p);
    check_bufs(layer, bufs, pos ? 3 : 2, proj_loss, &c, 1e-2, 1e-4, 1e-3);

    // dropout really drops: some xd are 0 where x is not, the rest scaled by 1/(1-p)
    long dropped = 0, scaled = 0;
    for (long i = 0; i < nx; i++) {
        dropped += c.xd[i] == 0.0f && c.x[i] != 0.0f;
        scaled += fabsf(c.xd[i] - c.x[i] / (1.0f - p)) <= 1e-6f * fabsf(c.x[i]) + 1e-7f;
    }
    if (p > 0)
        CHECK(dropped > 0 && dropped + scaled == nx,
              "%s: %ld of %ld inputs dropped, the others scaled by 1/(1-p)", layer, dropped, nx);
    free(c.x), free(c.xd), free(c.v), free(c.r), free(c.w), free(c.b), free(c.ps);
    free(dw), free(db), free(dps);
}

typedef struct {
    int B, P, D;
    float *v, *g, *r;
} pool_ctx;

static double pool_loss(void *vc) {
    pool_ctx *c = vc;
    image_pool_forward(c->g, c->v, c->B, c->P, c->D);
    return gc_dot(c->r, c->g, (long)c->B * c->D);
}

static void test_pool(gc_rng *g) {
    pool_ctx c = {3, 4, 5, NULL, NULL, NULL};
    const long nv = (long)c.B * c.P * c.D;
    c.v = alloc_f(nv), c.g = alloc_f((long)c.B * c.D), c.r = alloc_f((long)c.B * c.D);
    gc_fill(g, c.v, nv, -1, 1);
    gc_fill(g, c.r, (long)c.B * c.D, -1, 1);
    float *dv = alloc_f(nv);
    pool_loss(&c);
    image_pool_backward(dv, c.r, c.B, c.P, c.D);
    gc_buf bufs[] = {{"v", c.v, dv, nv}};
    check_bufs("image pooling", bufs, 1, pool_loss, &c, 1e-2, 1e-5, 1e-4);
    free(c.v), free(c.g), free(c.r), free(dv);
}

/* ================================================================ fusion */

typedef struct {
    fusion_dims d;
    int selective;
    float *h, *img, *z, *r;                  /* img: g (B, D) or v (B*P, D) */
    float *w_t, *w_i, *b_g, *w_q, *b_q, *w_kv, *b_kv;
    fusion_acts a;
} fus_ctx;

static fusion_weights weights_of(const fus_ctx *c) {
    fusion_weights w = {c->w_t, c->w_i, c->b_g, c->w_q, c->b_q, c->w_kv, c->b_kv};
    return w;
}

static double fus_loss(void *vc) {
    fus_ctx *c = vc;
    fusion_weights w = weights_of(c);
    if (c->selective)
        fusion_selective_forward(c->z, &c->a, c->h, c->img, &w, &c->d);
    else
        fusion_gated_forward(c->z, &c->a, c->h, c->img, &w, &c->d);
    return gc_dot(c->r, c->z, (long)c->d.B * c->d.S * c->d.D);
}

static void test_fusion_kind(gc_rng *g, int selective) {
    fus_ctx c;
    memset(&c, 0, sizeof c);
    c.d = (fusion_dims){2, 3, selective ? 4 : 1, 6};
    c.selective = selective;
    const int B = c.d.B, D = c.d.D, N = B * c.d.S;
    const long nh = (long)N * D, nimg = (long)B * (selective ? c.d.P : 1) * D, dd = (long)D * D;
    c.h = alloc_f(nh), c.img = alloc_f(nimg), c.z = alloc_f(nh), c.r = alloc_f(nh);
    c.w_t = alloc_f(dd), c.w_i = alloc_f(dd), c.b_g = alloc_f(D);
    c.w_q = alloc_f(dd), c.b_q = alloc_f(D), c.w_kv = alloc_f(2 * dd), c.b_kv = alloc_f(2 * D);
    c.a.lam = alloc_f(nh), c.a.q = alloc_f(nh), c.a.himg = alloc_f(nh);
    c.a.kv = alloc_f(2 * (long)B * c.d.P * D), c.a.probs = alloc_f((long)N * c.d.P);
    gc_fill(g, c.h, nh, -1, 1);
    gc_fill(g, c.img, nimg, -1, 1);
    gc_fill(g, c.r, nh, -1, 1);
    float *wts[] = {c.w_t, c.w_i, c.w_q, c.w_kv};
    long wn[] = {dd, dd, dd, 2 * dd};
    for (int i = 0; i < 4; i++) gc_fill(g, wts[i], wn[i], -0.6f, 0.6f);
    gc_fill(g, c.b_g, D, -0.5f, 0.5f);
    gc_fill(g, c.b_q, D, -0.5f, 0.5f);
    gc_fill(g, c.b_kv, 2 * D, -0.5f, 0.5f);

    float *dh = alloc_f(nh), *dimg = alloc_f(nimg);
    fusion_grads dw = {alloc_f(dd), alloc_f(dd), alloc_f(D), alloc_f(dd), alloc_f(D),
                       alloc_f(2 * dd), alloc_f(2 * D)};
    fus_loss(&c);
    fusion_weights w = weights_of(&c);
    if (selective)
        fusion_selective_backward(dh, dimg, &dw, c.r, &c.a, c.h, c.img, &w, &c.d);
    else
        fusion_gated_backward(dh, dimg, &dw, c.r, &c.a, c.h, c.img, &w, &c.d);

    gc_buf bufs[] = {{"h", c.h, dh, nh},           {selective ? "v" : "g", c.img, dimg, nimg},
                     {"w_t", c.w_t, dw.w_t, dd},   {"w_i", c.w_i, dw.w_i, dd},
                     {"b_g", c.b_g, dw.b_g, D},    {"w_q", c.w_q, dw.w_q, dd},
                     {"b_q", c.b_q, dw.b_q, D},    {"w_kv", c.w_kv, dw.w_kv, 2 * dd},
                     {"b_kv", c.b_kv, dw.b_kv, 2 * D}};
    check_bufs(selective ? "selective fusion" : "gated fusion", bufs, selective ? 9 : 5,
               fus_loss, &c, 1e-2, 2e-4, 2e-3);

    // the forward (rerun: the differences left z perturbed) against a plain
    // double computation of the formulas
    fus_loss(&c);
    double worst = 0.0;
    for (int r = 0; r < N; r++) {
        const int b = r / c.d.S, P = c.d.P;
        double img[64], pre[64];
        if (selective) {
            double q[64], sc[16], mx = -1e300, sum = 0.0;
            for (int i = 0; i < D; i++) {
                q[i] = c.b_q[i];
                for (int j = 0; j < D; j++) q[i] += (double)c.h[r * D + j] * c.w_q[i * D + j];
            }
            for (int p = 0; p < P; p++) {
                const float *vr = c.img + ((long)b * P + p) * D;
                sc[p] = 0.0;
                for (int i = 0; i < D; i++) {
                    double k = c.b_kv[i];
                    for (int j = 0; j < D; j++) k += (double)vr[j] * c.w_kv[i * D + j];
                    sc[p] += q[i] * k / sqrt((double)D);
                }
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int p = 0; p < P; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int i = 0; i < D; i++) {
                img[i] = 0.0;
                for (int p = 0; p < P; p++) {
                    const float *vr = c.img + ((long)b * P + p) * D;
                    double u = c.b_kv[D + i];
                    for (int j = 0; j < D; j++) u += (double)vr[j] * c.w_kv[(D + i) * D + j];
                    img[i] += sc[p] / sum * u;
                }
            }
        } else {
            for (int i = 0; i < D; i++) img[i] = c.img[b * D + i];
        }
        for (int i = 0; i < D; i++) {
            pre[i] = c.b_g[i];
            for (int j = 0; j < D; j++)
                pre[i] += (double)c.h[r * D + j] * c.w_t[i * D + j] + img[j] * c.w_i[i * D + j];
            double lam = 1.0 / (1.0 + exp(-pre[i]));
            double z = selective ? lam * (img[i] - c.h[r * D + i]) : lam * img[i];
            double e = fabs(z - c.z[r * D + i]);
            worst = e > worst ? e : worst;
        }
    }
    CHECK(worst < 1e-5, "%s forward vs double reference of the formulas: worst error %.2e",
          selective ? "selective fusion" : "gated fusion", worst);

    free(c.h), free(c.img), free(c.z), free(c.r), free(c.w_t), free(c.w_i), free(c.b_g);
    free(c.w_q), free(c.b_q), free(c.w_kv), free(c.b_kv);
    free(c.a.lam), free(c.a.q), free(c.a.himg), free(c.a.kv), free(c.a.probs);
    free(dh), free(dimg), free(dw.w_t), free(dw.w_i), free(dw.b_g), free(dw.w_q), free(dw.b_q);
    free(dw.w_kv), free(dw.b_kv);
}

void suite_fusion(void) {
    gc_rng g = gc_rng_new(20261204);
    test_proj(&g, 0, 0.0f);
    test_proj(&g, 1, 0.3f);
    test_pool(&g);
    test_fusion_kind(&g, 0);
    test_fusion_kind(&g, 1);
}
