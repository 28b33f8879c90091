/*
 * test_decode.c - incremental decoding agrees with the full forward pass:
 * every hypothesis's log-probability equals the one the training forward
 * computes for the same tokens; greedy picks the argmax at every step;
 * the output does not depend on how sentences are batched.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "gradcheck.h"
#include "model.h"
#include "test.h"

static mmt_model *small_model(int pre_norm) {
    model_config c = model_config_default();
    c.enc_layers = 2;
    c.dec_layers = 2;
    c.D = 16;
    c.F = 24;
    c.H = 4;
    c.V = 23;
    c.max_positions = 64;
    c.pre_norm = pre_norm;
    c.seed = 3 + pre_norm;
    mmt_model *m = model_create(&c);
    /* sharpen the output distribution so hypotheses end before max length */
    gc_rng g = gc_rng_new(99);
    float *p = model_params(m);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const param_tensor *t = model_tensor(m, i);
        for (size_t j = 0; j < t->size; j++) p[t->offset + j] += gc_rng_uniform(&g, -0.3f, 0.3f);
    }
    return m;
}

enum { NS = 5 };
static const int s0[] = {4, 5, 6, 7}, s1[] = {8, 9}, s2[] = {10, 11, 12, 13, 14, 15, 16},
                 s3[] = {17}, s4[] = {18, 19, 20, 21, 22};
static const int *srcs[NS] = {s0, s1, s2, s3, s4};
static const int lens[NS] = {4, 2, 7, 1, 5};

/* Log-probability of tokens y (then eos) given src, by the training forward. */
static double forward_logprob(mmt_model *m, const int *src, int slen, const int *y, int ylen,
                              int forced_end, int *argmax_ok) {
    const model_config *c = model_cfg(m);
    int S = slen + 1, T = ylen + 1;
    int *sb = malloc(S * sizeof(int)), *ti = malloc(T * sizeof(int)), *to = malloc(T * sizeof(int));
    memcpy(sb, src, slen * sizeof(int));
    sb[slen] = c->eos_id;
    ti[0] = c->bos_id;
    for (int j = 0; j < ylen; j++) ti[j + 1] = to[j] = y[j];
    to[ylen] = c->eos_id;
    mmt_batch b = {1, S, T, sb, ti, to, NULL};
    xent_result r = model_forward(m, &b, 0, 0);
    /* label smoothing is on in the config: recompute the plain log-probability */
    const float *lg = model_logits(m);
    double lp = 0.0;
    *argmax_ok = 1;
    for (int j = 0; j < T; j++) {
        const float *z = lg + (size_t)j * c->V;
        double mx = -INFINITY, sum = 0.0;
        int best = -1;
        for (int v = 0; v < c->V; v++) {
            if (v == c->pad_id || v == c->bos_id) continue;
            if (z[v] > mx) mx = z[v], best = v;
        }
        for (int v = 0; v < c->V; v++) sum += exp(z[v] - mx);
        lp += z[to[j]] - mx - log(sum);
        /* at the length limit eos is forced, not chosen */
        if (best != to[j] && !(forced_end && j == ylen)) *argmax_ok = 0;
    }
    (void)r;
    free(sb);
    free(ti);
    free(to);
    return lp;
}

static void test_consistency(int pre_norm, int beam) {
    mmt_model *m = small_model(pre_norm);
    decode_opts o = decode_opts_default();
    o.beam = beam;
    o.nbest = beam;
    decode_hyp *h = calloc(NS * beam, sizeof *h);
    decode_batch(m, srcs, lens, NULL, NS, &o, h);
    const char *norm = pre_norm ? "pre-norm" : "post-norm";
    double worst = 0.0;
    int argmax_all = 1, sorted = 1, nonempty = 0;
    for (int i = 0; i < NS; i++)
        for (int r = 0; r < beam; r++) {
            decode_hyp *x = &h[i * beam + r];
            int am;
            int max_len = (int)(o.max_len_a * (lens[i] + 1)) + o.max_len_b;
            double lp = forward_logprob(m, srcs[i], lens[i], x->ids, x->len,
                                        x->len + 1 >= max_len, &am);
            double d = fabs(lp - x->logprob);
            worst = d > worst ? d : worst;
            if (r == 0) argmax_all &= am;
            if (r > 0 && x->score > h[i * beam + r - 1].score) sorted = 0;
            nonempty += x->len > 0;
        }
    CHECK(worst < 2e-4, "%s beam %d: hypothesis log-probabilities equal the full forward's "
          "(worst |diff| %.2g, tolerance 2e-4)", norm, beam, worst);
    if (beam == 1)
        CHECK(argmax_all, "%s greedy: every token is the argmax of the full forward", norm);
    else
        CHECK(sorted, "%s beam %d: n-best lists sorted by score", norm, beam);
    CHECK(nonempty > 0, "%s beam %d: %d non-empty hypotheses", norm, beam, nonempty);
    for (int i = 0; i < NS * beam; i++) decode_hyp_free(&h[i]);
    free(h);
    model_free(m);
}

/* Decoding each sentence alone gives the same output as one batch. */
static void test_batch_independence(int beam) {
    mmt_model *m = small_model(0);
    decode_opts o = decode_opts_default();
    o.beam = beam;
    decode_hyp all[NS], one;
    decode_batch(m, srcs, lens, NULL, NS, &o, all);
    int same = 1;
    for (int i = 0; i < NS; i++) {
        decode_batch(m, &srcs[i], &lens[i], NULL, 1, &o, &one);
        same &= one.len == all[i].len && !memcmp(one.ids, all[i].ids, one.len * sizeof(int)) &&
                fabsf(one.score - all[i].score) < 1e-5f;
        decode_hyp_free(&one);
    }
    CHECK(same, "beam %d: same output decoding sentences alone and in one batch", beam);
    for (int i = 0; i < NS; i++) decode_hyp_free(&all[i]);
    model_free(m);
}

/* Output length is bounded by a * (source length + 1) + b. */
static void test_max_len(void) {
    mmt_model *m = small_model(0);
    decode_opts o = decode_opts_default();
    o.beam = 3;
    o.max_len_a = 0.0f;
    o.max_len_b = 2;
    decode_hyp h[NS];
    decode_batch(m, srcs, lens, NULL, NS, &o, h);
    int ok = 1;
    for (int i = 0; i < NS; i++) {
        ok &= h[i].len <= 1; /* 2 tokens including eos */
        decode_hyp_free(&h[i]);
    }
    CHECK(ok, "max length a = 0, b = 2: at most one token before eos");
    model_free(m);
}

void suite_decode(void) {
    test_consistency(0, 1);
    test_consistency(0, 4);
    test_consistency(1, 1);
    test_consistency(1, 4);
    test_batch_independence(1);
    test_batch_independence(5);
    test_max_len();
}
