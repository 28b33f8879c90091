/*
 * test_model.c - the whole model: gradients of every parameter tensor
 * against finite differences on a tiny configuration with padding in source
 * and target and every dropout on; the penal connection against the
 * gradient of loss + tau/2 * sum ||z||^2; tau = 0 against the baseline bit
 * for bit. The same for the image fusions (gated, selective), with image
 * dropout on and the penal connection on the fusion's residual.
 *
 * Tolerance: the model runs in float32, so a central difference of the
 * summed loss (about 10) carries rounding of about 1e-6 * 10 / (2 h); with
 * h = 1e-3 that is about 1e-3 (h is small because tau = 0.5 makes the
 * penalty strongly curved). Checks use atol 2e-3, rtol 2e-2.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "model.h"
#include "optim.h"
#include "test.h"

enum { TB = 3, TS = 6, TT = 5 };

/* Source and target with padding (pad 0, bos 2, eos 3; real ids 4..V-1). */
static const int src_ids[TB * TS] = {
    5, 9, 4, 11, 7, 3, /* full */
    8, 6, 12, 3, 0, 0, /* two pads */
    10, 3, 0, 0, 0, 0, /* four pads */
};
static const int tgt_in[TB * TT] = {
    2, 7, 5, 9, 6,
    2, 11, 4, 0, 0,
    2, 0, 0, 0, 0,
};
static const int tgt_out[TB * TT] = {
    7, 5, 9, 6, 3,
    11, 4, 3, 0, 0,
    3, 0, 0, 0, 0,
};

static mmt_batch tiny_batch(void) {
    return (mmt_batch){TB, TS, TT, src_ids, tgt_in, tgt_out, NULL};
}

/* Image regions for the fusion models: P 3 regions of Dv 5 values per row. */
enum { TP = 3, TDV = 5 };
static float tiny_img[TB * TP * TDV];

static mmt_batch tiny_batch_img(void) {
    gc_rng g = gc_rng_new(99);
    gc_fill(&g, tiny_img, TB * TP * TDV, 0.0f, 1.0f);
    return (mmt_batch){TB, TS, TT, src_ids, tgt_in, tgt_out, tiny_img};
}

static model_config tiny_config(int pre_norm) {
    model_config c = model_config_default();
    c.enc_layers = 2;
    c.dec_layers = 2;
    c.D = 8;
    c.F = 12;
    c.H = 2;
    c.V = 13;
    c.max_positions = 16;
    c.pre_norm = pre_norm;
    c.dropout = 0.1f;
    c.attn_dropout = 0.1f;
    c.act_dropout = 0.1f;
    c.label_smoothing = 0.1f;
    c.seed = 42;
    return c;
}

/* Perturb the weights off their initial values so that norms and biases
 * are not at special points (all ones, all zeros). */
static void jitter(mmt_model *m, uint64_t seed) {
    gc_rng g = gc_rng_new(seed);
    float *p = model_params(m);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const param_tensor *t = model_tensor(m, i);
        for (size_t j = 0; j < t->size; j++) p[t->offset + j] += gc_rng_uniform(&g, -0.2f, 0.2f);
    }
}

typedef struct {
    mmt_model *m;
    mmt_batch b;
    float scale;
} loss_ctx;

/* scale * (loss + tau/2 * sum ||z||^2), with the same dropout masks (step 7). */
static double full_loss(void *p) {
    loss_ctx *c = p;
    xent_result r = model_forward(c->m, &c->b, 1, 7);
    double pen = 0.5 * model_cfg(c->m)->tau * model_penal_sumsq(c->m);
    return c->scale * (r.loss + pen);
}

/* Finite differences of tensor t, leaving out elements where the loss is not
 * smooth within the step (a ReLU input crossing zero): there the differences
 * with steps h and h/2 disagree. Returns how many were left out; their
 * numeric value is replaced by the analytic one. */
static int smooth_numeric_grad(loss_ctx *c, const param_tensor *t, const float *ana,
                               float *num) {
    float *half = mmt_malloc(t->size * sizeof(float));
    float *p = model_params(c->m) + t->offset;
    gc_numeric_grad(p, (long)t->size, 1e-3, full_loss, c, num);
    gc_numeric_grad(p, (long)t->size, 5e-4, full_loss, c, half);
    int kinks = 0;
    for (size_t j = 0; j < t->size; j++)
        if (fabsf(num[j] - half[j]) > 1e-3f + 1e-2f * fabsf(half[j])) {
            num[j] = ana[j];
            kinks++;
        }
    free(half);
    return kinks;
}

/* Analytic gradients of every tensor against finite differences. */
static void check_all_grads(mmt_model *m, const char *label) {
    const int img = model_cfg(m)->fusion != FUSION_NONE;
    loss_ctx c = {m, img ? tiny_batch_img() : tiny_batch(), 0.0f};
    xent_result r = model_forward(m, &c.b, 1, 7);
    c.scale = 1.0f / (float)r.ntokens;
    model_zero_grads(m);
    model_backward(m, &c.b, c.scale);
    float *ana = mmt_malloc(model_num_params(m) * sizeof(float));
    memcpy(ana, model_grads(m), model_num_params(m) * sizeof(float));

    int bad = 0, kinks = 0, untrained = 0;
    long total = 0;
    for (int i = 0; i < model_num_tensors(m); i++) {
        const param_tensor *t = model_tensor(m, i);
        if (t->offset >= model_num_trained(m)) {
            /* data the model reads (image statistics): no gradient */
            for (size_t j = 0; j < t->size; j++) bad += ana[t->offset + j] != 0.0f;
            untrained++;
            continue;
        }
        float *num = mmt_malloc(t->size * sizeof(float));
        kinks += smooth_numeric_grad(&c, t, ana + t->offset, num);
        total += (long)t->size;
        char what[160];
        snprintf(what, sizeof what, "%s: d %s", label, t->name);
        bad += !gc_check(what, ana + t->offset, num, (long)t->size, 1e-3, 2e-3, 2e-2);
        free(num);
    }
    CHECK(bad == 0, "%s: all %d parameter tensors match finite differences%s", label,
          model_num_tensors(m) - untrained,
          untrained ? "; the untrained ones have zero gradient" : "");
    CHECK(kinks * 100 <= total, "%s: %d of %ld elements left out as non-smooth (at most 1 %%)",
          label, kinks, total);
    free(ana);
}

static void test_grads(int pre_norm, float tau, int before_dropout, const char *label) {
    model_config cfg = tiny_config(pre_norm);
    cfg.tau = tau;
    cfg.penal_before_dropout = before_dropout;
    mmt_model *m = model_create(&cfg);
    jitter(m, 11 + pre_norm);
    check_all_grads(m, label);
    model_free(m);
}

/* The penal connection changes gradients only: logits and loss are the same,
 * and with tau = 0 every gradient equals the baseline's bit for bit. */
static void test_penal_forward_and_zero_tau(void) {
    model_config cfg = tiny_config(0);
    mmt_batch b = tiny_batch();
    mmt_model *m = model_create(&cfg);
    jitter(m, 5);
    size_t n = model_num_params(m), nl = (size_t)TB * TT * cfg.V;
    float *g_base = mmt_malloc(n * sizeof(float)), *logits = mmt_malloc(nl * sizeof(float));

    /* baseline: no sublayer carries the penal connection */
    model_set_penal(m, 0.0f, 0, 0);
    xent_result r0 = model_forward(m, &b, 1, 3);
    memcpy(logits, model_logits(m), nl * sizeof(float));
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r0.ntokens);
    memcpy(g_base, model_grads(m), n * sizeof(float));

    /* tau = 0 on every sublayer: bit-identical gradients */
    model_set_penal(m, 0.0f, PENAL_ALL, 0);
    xent_result r1 = model_forward(m, &b, 1, 3);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r1.ntokens);
    CHECK(memcmp(g_base, model_grads(m), n * sizeof(float)) == 0,
          "penal tau = 0: gradients identical to the baseline bit for bit");

    /* tau > 0: same logits and loss, different gradients */
    model_set_penal(m, 0.5f, PENAL_ALL, 0);
    xent_result r2 = model_forward(m, &b, 1, 3);
    CHECK(memcmp(logits, model_logits(m), nl * sizeof(float)) == 0 && r2.loss == r0.loss &&
              r2.nll == r0.nll && r2.ntokens == r0.ntokens,
          "penal tau = 0.5: logits and reported loss identical to the baseline (loss %.6f)",
          r2.loss);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r2.ntokens);
    CHECK(memcmp(g_base, model_grads(m), n * sizeof(float)) != 0,
          "penal tau = 0.5: gradients differ from the baseline");
    free(g_base);
    free(logits);
    model_free(m);
}

/* Each sublayer kind alone: the gradient equals finite differences of the
 * loss plus that kind's penalty only. */
static void test_penal_masks(void) {
    static const struct { unsigned bit; const char *name; } kinds[] = {
        {PENAL_ENC_SELF, "enc_self"}, {PENAL_ENC_FFN, "enc_ffn"}, {PENAL_DEC_SELF, "dec_self"},
        {PENAL_DEC_CROSS, "dec_cross"}, {PENAL_DEC_FFN, "dec_ffn"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        model_config cfg = tiny_config(0);
        mmt_model *m = model_create(&cfg);
        jitter(m, 21);
        model_set_penal(m, 0.5f, kinds[k].bit, 0);
        loss_ctx c = {m, tiny_batch(), 0.0f};
        xent_result r = model_forward(m, &c.b, 1, 7);
        c.scale = 1.0f / r.ntokens;
        model_zero_grads(m);
        model_backward(m, &c.b, c.scale);
        /* the embedding sees every sublayer: compare its whole gradient */
        const param_tensor *t = model_find_tensor(m, "embed.weight");
        float *num = mmt_malloc(t->size * sizeof(float));
        int kinks = smooth_numeric_grad(&c, t, model_grads(m) + t->offset, num);
        char what[128];
        snprintf(what, sizeof what, "penal only on %s: d embed.weight (%d non-smooth left out)",
                 kinds[k].name, kinks);
        gc_check(what, model_grads(m) + t->offset, num, (long)t->size, 1e-3, 2e-3, 2e-2);
        free(num);
        model_free(m);
    }
}

/* The same step twice gives the same gradients bit for bit; another step
 * draws other dropout masks. */
static void test_determinism(void) {
    model_config cfg = tiny_config(0);
    mmt_batch b = tiny_batch();
    mmt_model *m = model_create(&cfg);
    size_t n = model_num_params(m);
    float *g1 = mmt_malloc(n * sizeof(float));
    xent_result r1 = model_forward(m, &b, 1, 9);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f);
    memcpy(g1, model_grads(m), n * sizeof(float));
    xent_result r2 = model_forward(m, &b, 1, 9);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f);
    CHECK(r1.loss == r2.loss && memcmp(g1, model_grads(m), n * sizeof(float)) == 0,
          "same step twice: identical loss and gradients");
    xent_result r3 = model_forward(m, &b, 1, 10);
    CHECK(r3.loss != r1.loss, "another step: other dropout masks (loss %.6f vs %.6f)", r3.loss,
          r1.loss);
    xent_result e1 = model_forward(m, &b, 0, 9), e2 = model_forward(m, &b, 0, 10);
    CHECK(e1.loss == e2.loss, "evaluation (no dropout) does not depend on the step");
    free(g1);
    model_free(m);
}

/* Padding must not leak: appending pad columns leaves loss and gradients unchanged. */
static void test_padding_invariance(void) {
    model_config cfg = tiny_config(0);
    cfg.dropout = cfg.attn_dropout = cfg.act_dropout = 0.0f;
    mmt_model *m = model_create(&cfg);
    jitter(m, 3);
    mmt_batch b = tiny_batch();
    size_t n = model_num_params(m);
    xent_result r1 = model_forward(m, &b, 1, 1);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f);
    float *g1 = mmt_malloc(n * sizeof(float));
    memcpy(g1, model_grads(m), n * sizeof(float));

    /* the same sentences with two more pad columns on each side */
    enum { S2 = TS + 2, T2 = TT + 2 };
    int src2[TB * S2], in2[TB * T2], out2[TB * T2];
    for (int r = 0; r < TB; r++) {
        for (int j = 0; j < S2; j++) src2[r * S2 + j] = j < TS ? src_ids[r * TS + j] : 0;
        for (int j = 0; j < T2; j++) {
            in2[r * T2 + j] = j < TT ? tgt_in[r * TT + j] : 0;
            out2[r * T2 + j] = j < TT ? tgt_out[r * TT + j] : 0;
        }
    }
    mmt_batch b2 = {TB, S2, T2, src2, in2, out2, NULL};
    xent_result r2 = model_forward(m, &b2, 1, 1);
    model_zero_grads(m);
    model_backward(m, &b2, 1.0f);
    CHECK(fabs(r1.loss - r2.loss) < 1e-4 && r1.ntokens == r2.ntokens,
          "extra padding: same loss (%.6f vs %.6f)", r1.loss, r2.loss);
    check_close("extra padding: same gradients", model_grads(m), g1, (long)n, 1e-5, 1e-4);
    free(g1);
    model_free(m);
}

static model_config fusion_config(int fusion, int pre_norm) {
    model_config cfg = tiny_config(pre_norm);
    cfg.fusion = fusion;
    cfg.img_dim = TDV;
    cfg.img_regions = TP;
    cfg.img_dropout = 0.2f;
    return cfg;
}

static void test_fusion_grads(int fusion, int pre_norm, float tau, unsigned mask,
                              const char *label) {
    model_config cfg = fusion_config(fusion, pre_norm);
    cfg.img_norm = strstr(label, "standardised") != NULL;
    cfg.img_hidden = strstr(label, "hidden layer") ? 5 : 0;
    cfg.tau = tau;
    cfg.penal_mask = mask;
    mmt_model *m = model_create(&cfg);
    jitter(m, 31 + fusion);
    check_all_grads(m, label);
    model_free(m);
}

/* A fusion model reads the image: another image changes the logits; the
 * penal connection on the fusion alone matches the penalised loss; with
 * tau = 0 it is the baseline bit for bit. */
static void test_fusion_uses_image(int fusion, const char *name) {
    model_config cfg = fusion_config(fusion, 0);
    mmt_model *m = model_create(&cfg);
    jitter(m, 41);
    mmt_batch b = tiny_batch_img();
    size_t nl = (size_t)TB * TT * cfg.V, n = model_num_params(m);
    float *logits = mmt_malloc(nl * sizeof(float)), *g0 = mmt_malloc(n * sizeof(float));
    model_forward(m, &b, 0, 0);
    memcpy(logits, model_logits(m), nl * sizeof(float));
    float keep = tiny_img[4];
    tiny_img[4] += 0.5f;
    model_forward(m, &b, 0, 0);
    CHECK(memcmp(logits, model_logits(m), nl * sizeof(float)) != 0,
          "%s fusion: another image gives other logits", name);
    tiny_img[4] = keep;

    model_set_penal(m, 0.0f, 0, 0);
    xent_result r0 = model_forward(m, &b, 1, 3);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r0.ntokens);
    memcpy(g0, model_grads(m), n * sizeof(float));
    model_set_penal(m, 0.0f, PENAL_ALL | PENAL_FUSION, 0);
    xent_result r1 = model_forward(m, &b, 1, 3);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r1.ntokens);
    CHECK(memcmp(g0, model_grads(m), n * sizeof(float)) == 0,
          "%s fusion, penal tau = 0: gradients identical to the baseline bit for bit", name);

    model_set_penal(m, 0.5f, PENAL_FUSION, 0);
    loss_ctx c = {m, b, 0.0f};
    xent_result r = model_forward(m, &c.b, 1, 7);
    c.scale = 1.0f / r.ntokens;
    model_zero_grads(m);
    model_backward(m, &c.b, c.scale);
    CHECK(model_penal_sumsq(m) > 0.0, "%s fusion: the penalty on the fusion is not zero (%.4f)",
          name, model_penal_sumsq(m));
    static const char *const which[] = {"img.proj.weight", "embed.weight"};
    for (int k = 0; k < 2; k++) {
        const param_tensor *t = model_find_tensor(m, which[k]);
        float *num = mmt_malloc(t->size * sizeof(float));
        int kinks = smooth_numeric_grad(&c, t, model_grads(m) + t->offset, num);
        char what[160];
        snprintf(what, sizeof what, "%s fusion, penal only on the fusion: d %s (%d non-smooth "
                 "left out)", name, which[k], kinks);
        gc_check(what, model_grads(m) + t->offset, num, (long)t->size, 1e-3, 2e-3, 2e-2);
        free(num);
    }
    free(logits);
    free(g0);
    model_free(m);
}

/* model.image_norm "standard": the model with statistics (mean, scale)
 * gives, bit for bit, the logits of the same trained weights without them
 * reading (x - mean) * scale; the statistics come last and Adam leaves them
 * alone, weight decay and all. */
static void test_image_norm(int fusion, const char *name) {
    model_config cfg = fusion_config(fusion, 0);
    cfg.img_dropout = 0.0f;
    model_config plain = cfg;
    cfg.img_norm = 1;
    mmt_model *m = model_create(&cfg), *q = model_create(&plain);
    jitter(m, 43);
    size_t nt = model_num_trained(m), n = model_num_params(m);
    CHECK(nt == model_num_params(q) && n == nt + 2 * (size_t)((TDV + 15) / 16 * 16),
          "%s, standardised image: %zu trained values as without it, %zu in all", name, nt, n);
    const param_tensor *mean = model_find_tensor(m, "img.stats.mean");
    const param_tensor *scale = model_find_tensor(m, "img.stats.scale");
    CHECK(mean && scale && mean->offset >= nt && scale->offset >= nt,
          "%s, standardised image: img.stats.mean and img.stats.scale after the trained tensors",
          name);
    if (!mean || !scale) return;
    float *p = model_params(m);
    for (int j = 0; j < TDV; j++) {
        p[mean->offset + j] = 0.1f + 0.15f * (float)j;
        p[scale->offset + j] = 0.5f + 0.7f * (float)j;
    }
    memcpy(model_params(q), p, nt * sizeof(float));

    mmt_batch b = tiny_batch_img();
    float xn[TB * TP * TDV];
    for (int i = 0; i < TB * TP * TDV; i++)
        xn[i] = (tiny_img[i] - p[mean->offset + i % TDV]) * p[scale->offset + i % TDV];
    size_t nl = (size_t)TB * TT * cfg.V;
    model_forward(m, &b, 0, 0);
    float *logits = mmt_malloc(nl * sizeof(float));
    memcpy(logits, model_logits(m), nl * sizeof(float));
    b.img = xn;
    model_forward(q, &b, 0, 0);
    CHECK(memcmp(logits, model_logits(q), nl * sizeof(float)) == 0,
          "%s, standardised image: the logits of the plain model on (x - mean) * scale, bit for "
          "bit", name);

    /* training: the same gradients of the trained weights, none of the statistics */
    b.img = tiny_img;
    xent_result r = model_forward(m, &b, 1, 5);
    model_zero_grads(m);
    model_backward(m, &b, 1.0f / r.ntokens);
    b.img = xn;
    r = model_forward(q, &b, 1, 5);
    model_zero_grads(q);
    model_backward(q, &b, 1.0f / r.ntokens);
    int zero = 1;
    for (size_t j = nt; j < n; j++) zero &= model_grads(m)[j] == 0.0f;
    CHECK(!memcmp(model_grads(m), model_grads(q), nt * sizeof(float)) && zero,
          "%s, standardised image: in training, the plain model's gradients bit for bit, and "
          "none for the statistics", name);

    adam_state a;
    adam_init(&a, n, 0.9f, 0.98f, 1e-8f, 0.1f);
    a.n_update = nt;
    float *before = mmt_malloc(n * sizeof(float));
    memcpy(before, p, n * sizeof(float));
    float *g = model_grads(m);
    for (size_t j = 0; j < n; j++) g[j] = 0.01f;
    adam_step(&a, p, g, 1e-2f);
    int stats_same = !memcmp(before + nt, p + nt, (n - nt) * sizeof(float));
    int trained_moved = memcmp(before, p, nt * sizeof(float)) != 0;
    CHECK(stats_same && trained_moved,
          "%s, standardised image: an Adam step with weight decay moves the weights, not the "
          "statistics", name);
    adam_free(&a);
    free(before);
    free(logits);
    model_free(m);
    model_free(q);
}

void suite_model(void) {
    test_grads(0, 0.0f, 0, "post-norm");
    test_grads(1, 0.0f, 0, "pre-norm");
    test_grads(0, 0.1f, 0, "post-norm, penal tau 0.1");
    test_grads(1, 0.1f, 0, "pre-norm, penal tau 0.1");
    test_grads(0, 0.1f, 1, "post-norm, penal tau 0.1 before dropout");
    test_penal_forward_and_zero_tau();
    test_penal_masks();
    test_determinism();
    test_padding_invariance();
    test_fusion_grads(FUSION_GATED, 0, 0.0f, PENAL_ALL, "gated fusion, post-norm");
    test_fusion_grads(FUSION_SELECTIVE, 0, 0.0f, PENAL_ALL, "selective fusion, post-norm");
    test_fusion_grads(FUSION_GATED, 1, 0.1f, PENAL_ALL | PENAL_FUSION,
                      "gated fusion, pre-norm, penal tau 0.1 incl. the fusion");
    test_fusion_grads(FUSION_SELECTIVE, 1, 0.1f, PENAL_ALL | PENAL_FUSION,
                      "selective fusion, pre-norm, penal tau 0.1 incl. the fusion");
    test_fusion_uses_image(FUSION_GATED, "gated");
    test_fusion_uses_image(FUSION_SELECTIVE, "selective");
    static const char *const fusion_name[] = {"none", "gated", "selective"};
    for (int f = FUSION_GATED; f <= FUSION_SELECTIVE; f++) {
        char label[128];
        snprintf(label, sizeof label, "%s fusion, pre-norm, penal incl. the fusion, "
                 "standardised image", fusion_name[f]);
        test_fusion_grads(f, 1, 0.1f, PENAL_ALL | PENAL_FUSION, label);
        test_image_norm(f, fusion_name[f]);
        snprintf(label, sizeof label, "%s fusion, post-norm, penal incl. the fusion, "
                 "standardised image, image hidden layer of 5", fusion_name[f]);
        test_fusion_grads(f, 0, 0.1f, PENAL_ALL | PENAL_FUSION, label);
    }
}
