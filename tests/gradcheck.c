/* gradcheck.c - random inputs and central finite differences for the tests. */
#include "gradcheck.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>

#include "test.h"

/* ------------------------------------------------------------------ rng */

gc_rng gc_rng_new(uint64_t seed) {
    /* xorshift must not start at 0 */
    gc_rng g = {seed ? seed : 0x9E3779B97F4A7C15ull};
    return g;
}

uint64_t gc_rng_next(gc_rng *g) {
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 0x2545F4914F6CDD1Dull;
}

float gc_rng_uniform(gc_rng *g, float lo, float hi) {
    /* the top 24 bits give a float in [0, 1) exactly */
    float u = (float)(gc_rng_next(g) >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

void gc_fill(gc_rng *g, float *x, long n, float lo, float hi) {
    for (long i = 0; i < n; i++) x[i] = gc_rng_uniform(g, lo, hi);
}

/* ------------------------------------------------- finite differences */

double gc_dot(const float *r, const float *y, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

void gc_numeric_grad(float *x, long n, double h, gc_loss_fn f, void *ctx, float *out_grad) {
    /* one thread: thousands of tiny parallel regions on a busy machine can
     * each wait a scheduler slice; both sides of a difference take the same
     * path either way */
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    for (long i = 0; i < n; i++) {
        const float x0 = x[i];
        const double s = h * fmax(1.0, fabs((double)x0));
        const float xp = (float)(x0 + s), xm = (float)(x0 - s);
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = x0;
        out_grad[i] = (float)((fp - fm) / ((double)xp - (double)xm));
    }
    omp_set_num_threads(threads);
}

int gc_check(const char *what, const float *analytic, const float *numeric, long n,
             double h, double atol, double rtol) {
    char name[256];
    snprintf(name, sizeof name, "%s vs finite differences (h %g, atol %g, rtol %g)", what, h,
             atol, rtol);
    return check_close(name, analytic, numeric, n, atol, rtol);
}
