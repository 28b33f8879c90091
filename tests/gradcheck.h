/*
 * gradcheck.h - finite-difference gradients for the tests: a deterministic
 * random source, central differences of a scalar loss over every element
 * of a float buffer, and a check that compares them with an analytic
 * gradient and names the tolerance it used.
 *
 * The kernels are float32, so the buffers are perturbed in float while the
 * loss is summed in double: the only rounding a difference sees is that of
 * the forward pass itself. A loss is usually sum(r * out) for a fixed
 * random r, so softmax and layer-norm gradients are not trivially zero.
 */
#ifndef MMT_GRADCHECK_H
#define MMT_GRADCHECK_H

#include <stdint.h>

/* ------------------------------------------------------------------ rng */

/* xorshift64*: small, fast and the same on every machine. */
typedef struct {
    uint64_t s;
} gc_rng;

gc_rng gc_rng_new(uint64_t seed);
uint64_t gc_rng_next(gc_rng *g);
/* Uniform in [lo, hi). */
float gc_rng_uniform(gc_rng *g, float lo, float hi);
/* x (n) uniform in [lo, hi). */
void gc_fill(gc_rng *g, float *x, long n, float lo, float hi);

/* ------------------------------------------------- finite differences */

/* A scalar loss of whatever buffers ctx points to; runs the forward pass. */
typedef double (*gc_loss_fn)(void *ctx);

/* sum r[i] * y[i] over n elements, in double. */
double gc_dot(const float *r, const float *y, long n);

/* out_grad (n) = central difference of f with respect to each x[i]:
 * (f(x + s e_i) - f(x - s e_i)) / (actual step), s = h * max(1, |x[i]|).
 * The actual step is the difference of the two perturbed floats, not 2s,
 * since x +- s is rounded to float. x is restored bit for bit. The loss
 * runs on one thread here; the caller's thread count is restored after. */
void gc_numeric_grad(float *x, long n, double h, gc_loss_fn f, void *ctx, float *out_grad);

/* One check line "<what> vs finite differences (h H, atol A, rtol R)":
 * passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere.
 * Returns 1 on pass. */
int gc_check(const char *what, const float *analytic, const float *numeric, long n,
             double h, double atol, double rtol);

#endif
