/* optim.c - Adam and gradient-norm helpers. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void adam_init(adam_state *a, size_t n, float beta1, float beta2, float eps, float wd) {
    a->beta1 = beta1;
    a->beta2 = beta2;
    a->eps = eps;
    a->weight_decay = wd;
    a->n = n;
    a->n_update = n;
    a->m = mmt_calloc(n, sizeof *a->m);
    a->v = mmt_calloc(n, sizeof *a->v);
    a->step = 0;
}

void adam_free(adam_state *a) {
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void adam_step(adam_state *a, float *params, const float *grads, float lr) {
    a->step++;
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps, wd = a->weight_decay;
    const float bc1 = 1.0f - powf(b1, (float)a->step);
    const float sqrt_bc2 = sqrtf(1.0f - powf(b2, (float)a->step));
    const float step_size = lr / bc1;
    float *m = a->m, *v = a->v;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < a->n_update; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        if (wd != 0.0f) params[i] -= lr * wd * params[i];
        params[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

double grad_norm(const float *g, size_t n) {
    /* fixed-size blocks summed in order: the same result for any thread count */
    enum { BLOCK = 1 << 14 };
    size_t nb = (n + BLOCK - 1) / BLOCK;
    double *part = mmt_calloc(nb ? nb : 1, sizeof *part);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        double s = 0.0;
        for (size_t i = b * BLOCK; i < end; i++) s += (double)g[i] * g[i];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return sqrt(s);
}

void grad_scale(float *g, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}
