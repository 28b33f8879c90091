/*
 * optim.h - Adam over the flat parameter buffer, as torch.optim.Adam
 * computes it (bias-corrected moments, eps added after the square root),
 * with optional decoupled weight decay, and the gradient norm.
 */
#ifndef MMT_OPTIM_H
#define MMT_OPTIM_H

#include <stddef.h>

typedef struct {
    float beta1, beta2, eps, weight_decay;
    size_t n;  /* parameters */
    size_t n_update; /* the leading values an update changes (n unless set lower: values
                        past it, such as stored data statistics, are left alone) */
    float *m;  /* (n) first moment */
    float *v;  /* (n) second moment */
    long step; /* updates taken */
} adam_state;

void adam_init(adam_state *a, size_t n, float beta1, float beta2, float eps, float wd);
void adam_free(adam_state *a);
/* One update of params[0 .. n_update): params -= lr * mhat / (sqrt(vhat) +
 * eps) (+ lr * wd * params). */
void adam_step(adam_state *a, float *params, const float *grads, float lr);
/* L2 norm of a buffer, accumulated in double in a fixed order. */
double grad_norm(const float *g, size_t n);
/* g *= s */
void grad_scale(float *g, size_t n, float s);

#endif
