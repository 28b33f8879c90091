/* test_parity.c - the whole model against the PyTorch reference fixtures
 * (tests/reference, made by make_fixture.py): logits, loss, every gradient,
 * and the losses of a few Adam steps, for post-norm, pre-norm, the penal
 * connection and the two image fusions (gated, selective; penal on the
 * fusion too). The reference runs in float64; mmt in float32, so every
 * comparison states its tolerance. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "safetensors.h"
#include "test.h"

/* Tolerances: |mmt - reference| <= atol + rtol * |reference|. */
#define LOGITS_ATOL 1e-4
#define LOGITS_RTOL 1e-4
#define LOSS_RTOL 1e-5
#define GRAD_ATOL 1e-5
#define GRAD_RTOL 1e-3
#define ADAM_RTOL 1e-4

typedef struct {
    model_config cfg;
    float lr, beta1, beta2, eps;
    int steps;
} fixture_config;

/* ---------------------------------------------------------------- config */

/* The number cfg[key], or NaN (and a message in st) when missing. */
static double config_num(const cJSON *cfg, const char *key, const char *where,
                         mmt_status *st) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsNumber(it)) return it->valuedouble;
    mmt_fail(st, "%s: config: missing number \"%s\"", where, key);
    return NAN;
}

/* Build the model config (dropout 0) and Adam settings from the metadata. */
static int read_config(fixture_config *fc, const st_file *f, mmt_status *st) {
    const char *version = st_meta(f, "format_version"), *text = st_meta(f, "config");
    if (!version || strcmp(version, "1") != 0)
        return mmt_fail(st, "%s: format_version %s, expected 1", f->path,
                        version ? version : "(missing)");
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (!j) return mmt_fail(st, "%s: metadata \"config\" missing or not JSON", f->path);

    st->code = MMT_OK;
    model_config *c = &fc->cfg;
    *c = model_config_default();
    c->D = (int)config_num(j, "D", f->path, st);
    c->F = (int)config_num(j, "F", f->path, st);
    c->H = (int)config_num(j, "H", f->path, st);
    c->V = (int)config_num(j, "V", f->path, st);
    c->enc_layers = (int)config_num(j, "enc_layers", f->path, st);
    c->dec_layers = (int)config_num(j, "dec_layers", f->path, st);
    c->pre_norm = (int)config_num(j, "pre_norm", f->path, st);
    c->tau = (float)config_num(j, "tau", f->path, st);
    c->label_smoothing = (float)config_num(j, "label_smoothing", f->path, st);
    c->pad_id = (int)config_num(j, "pad_id", f->path, st);
    c->bos_id = (int)config_num(j, "bos_id", f->path, st);
    c->eos_id = (int)config_num(j, "eos_id", f->path, st);
    c->dropout = c->attn_dropout = c->act_dropout = 0.0f;
    c->penal_mask = PENAL_ALL; /* the fixture's tau covers all five sublayer kinds */
    c->penal_before_dropout = 0;
    c->seed = 1;
    fc->lr = (float)config_num(j, "adam_lr", f->path, st);
    fc->beta1 = (float)config_num(j, "adam_beta1", f->path, st);
    fc->beta2 = (float)config_num(j, "adam_beta2", f->path, st);
    fc->eps = (float)config_num(j, "adam_eps", f->path, st);
    fc->steps = (int)config_num(j, "adam_steps", f->path, st);
    const cJSON *fu = cJSON_GetObjectItemCaseSensitive(j, "fusion");
    if (cJSON_IsString(fu)) {
        c->fusion = !strcmp(fu->valuestring, "gated") ? FUSION_GATED : FUSION_SELECTIVE;
        c->img_dim = (int)config_num(j, "image_dim", f->path, st);
        c->img_regions = (int)config_num(j, "image_regions", f->path, st);
        c->img_positions = (int)config_num(j, "image_positions", f->path, st);
        if ((int)config_num(j, "penal_fusion", f->path, st)) c->penal_mask |= PENAL_FUSION;
        const cJSON *hid = cJSON_GetObjectItemCaseSensitive(j, "image_hidden");
        c->img_hidden = cJSON_IsNumber(hid) ? hid->valueint : 0;
    }
    cJSON_Delete(j);
    return st->code;
}

/* ------------------------------------------------------------- tensors */

/* The fixture tensor called name if its dtype is dtype and it has n elements. */
static const void *fixture_data(const st_file *f, const char *name, st_dtype dtype, long n) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != dtype || st_numel(t) != n) return NULL;
    return st_data(f, t);
}

static int same_shape(const st_tensor *t, const param_tensor *p) {
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

/* Copy every param.<name> of the fixture into the model; one check that the
 * two tables hold the same names and shapes, naming the first difference. */
static int load_params(mmt_model *m, const st_file *f, const char *label) {
    char bad[256] = "";
    float *params = model_params(m);
    memset(params, 0, model_num_params(m) * sizeof *params);
    int nfix = 0;
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->tensors[i];
        if (strncmp(t->name, "param.", 6) != 0) continue;
        nfix++;
        const param_tensor *p = model_find_tensor(m, t->name + 6);
        if (!p) {
            if (!*bad) snprintf(bad, sizeof bad, "%s not in the model", t->name);
        } else if (t->dtype != ST_F32 || !same_shape(t, p)) {
            if (!*bad) snprintf(bad, sizeof bad, "%s: dtype or shape differ", t->name);
        } else {
            memcpy(params + p->offset, st_data(f, t), p->size * sizeof(float));
        }
    }
    for (int i = 0; i < model_num_tensors(m) && !*bad; i++) {
        char name[80];
        snprintf(name, sizeof name, "param.%s", model_tensor(m, i)->name);
        if (!st_find(f, name))
            snprintf(bad, sizeof bad, "model tensor %s not in the fixture", name + 6);
    }
    CHECK(!*bad, "parity %s: %d fixture params match the model's %d tensors%s%s", label,
          nfix, model_num_tensors(m), *bad ? ": " : "", bad);
    return !*bad;
}

/* ----------------------------------------------------------------- run */

static void run_fixture(const char *label) {
    char path[256];
    snprintf(path, sizeof path, "%s/fixture-%s.safetensors", TEST_FIXTURE_DIR, label);
    st_file f;
    fixture_config fc;
    mmt_status st = {0};
    int rc = st_read(&f, path, &st);
    if (rc == MMT_OK) rc = read_config(&fc, &f, &st);
    CHECK(rc == MMT_OK, "parity %s: read %s", label, rc ? st.msg : path);
    if (rc != MMT_OK) {
        st_close(&f);
        return;
    }
    const model_config *c = &fc.cfg;

    // the batch
    const st_tensor *ts = st_find(&f, "input.src"), *tt = st_find(&f, "input.tgt_in");
    int ok = ts && tt && ts->ndim == 2 && tt->ndim == 2;
    mmt_batch b = {0};
    if (ok) {
        b.B = (int)ts->shape[0], b.S = (int)ts->shape[1], b.T = (int)tt->shape[1];
        b.src = fixture_data(&f, "input.src", ST_I32, (long)b.B * b.S);
        b.tgt_in = fixture_data(&f, "input.tgt_in", ST_I32, (long)b.B * b.T);
        b.tgt_out = fixture_data(&f, "input.tgt_out", ST_I32, (long)b.B * b.T);
        if (c->fusion != FUSION_NONE)
            b.img = fixture_data(&f, "input.img", ST_F32,
                                 (long)b.B * c->img_regions * c->img_dim);
    }
    const float *ref_logits = fixture_data(&f, "out.logits", ST_F32, (long)b.B * b.T * c->V);
    const double *ref_loss = fixture_data(&f, "out.loss", ST_F64, 3);
    const double *ref_adam = fixture_data(&f, "adam.losses", ST_F64, fc.steps + 1);
    ok = ok && b.src && b.tgt_in && b.tgt_out && ref_logits && ref_loss && ref_adam &&
         (c->fusion == FUSION_NONE || b.img);
    CHECK(ok, "parity %s: inputs and outputs present with the expected shapes", label);
    mmt_model *m = model_create(c);
    if (!ok || !load_params(m, &f, label)) {
        model_free(m);
        st_close(&f);
        return;
    }

    // one forward and backward: logits, loss, every gradient
    char name[160];
    model_zero_grads(m);
    xent_result r = model_forward(m, &b, 1, 0);
    model_backward(m, &b, 1.0f / (float)r.ntokens);
    snprintf(name, sizeof name, "parity %s: logits", label);
    check_close(name, model_logits(m), ref_logits, (long)b.B * b.T * c->V, LOGITS_ATOL,
                LOGITS_RTOL);
    double got[2] = {r.loss, r.nll};
    snprintf(name, sizeof name, "parity %s: loss and nll", label);
    check_close_d(name, got, ref_loss, 2, 0.0, LOSS_RTOL);
    CHECK(r.ntokens == (long)ref_loss[2], "parity %s: ntokens %ld (reference %.0f)", label,
          r.ntokens, ref_loss[2]);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const param_tensor *p = model_tensor(m, i);
        snprintf(name, sizeof name, "grad.%s", p->name);
        const float *ref = fixture_data(&f, name, ST_F32, (long)p->size);
        snprintf(name, sizeof name, "parity %s: grad %s", label, p->name);
        if (ref)
            check_close(name, model_grads(m) + p->offset, ref, (long)p->size, GRAD_ATOL,
                        GRAD_RTOL);
        else
            CHECK(0, "%s: missing from the fixture", name);
    }

    // Adam: the summed loss before each step, then after the last
    adam_state adam;
    double losses[16];
    MMT_ASSERT(fc.steps + 1 <= 16);
    adam_init(&adam, model_num_params(m), fc.beta1, fc.beta2, fc.eps, 0.0f);
    for (int s = 0; s <= fc.steps; s++) {
        model_zero_grads(m);
        r = model_forward(m, &b, 1, (uint64_t)s);
        losses[s] = r.loss;
        if (s == fc.steps) break;
        model_backward(m, &b, 1.0f / (float)r.ntokens);
        adam_step(&adam, model_params(m), model_grads(m), fc.lr);
    }
    snprintf(name, sizeof name, "parity %s: losses of %d Adam steps", label, fc.steps);
    check_close_d(name, losses, ref_adam, fc.steps + 1, 0.0, ADAM_RTOL);

    adam_free(&adam);
    model_free(m);
    st_close(&f);
}

void suite_parity(void) {
    run_fixture("postnorm");
    run_fixture("prenorm");
    run_fixture("penal");
    run_fixture("gated");
    run_fixture("selective");
    run_fixture("gated-hidden");
}
