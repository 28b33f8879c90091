/* checkpoint.c - save, load and average checkpoints (safetensors). */
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "safetensors.h"

#define CKPT_FORMAT "mmt-checkpoint"
#define CKPT_VERSION "1"

static char *state_to_json(const train_state *ts) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)ts->step);
    cJSON_AddNumberToObject(o, "epoch", ts->epoch);
    cJSON_AddNumberToObject(o, "batch_in_epoch", (double)ts->batch_in_epoch);
    cJSON_AddNumberToObject(o, "best_metric", ts->best_metric);
    cJSON_AddNumberToObject(o, "bad_validations", ts->bad_validations);
    cJSON_AddNumberToObject(o, "train_seconds", ts->train_seconds);
    cJSON_AddNumberToObject(o, "epoch_loss", ts->epoch_loss);
    cJSON_AddNumberToObject(o, "epoch_nll", ts->epoch_nll);
    cJSON_AddNumberToObject(o, "epoch_tokens", (double)ts->epoch_tokens);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int state_from_json(train_state *ts, const char *text, const char *path, mmt_status *st) {
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return mmt_fail(st, "%s: metadata \"train_state\" is not a JSON object", path);
    }
    static const char *keys[] = {"step", "epoch", "batch_in_epoch", "best_metric",
                                 "bad_validations", "train_seconds", "epoch_loss",
                                 "epoch_nll", "epoch_tokens"};
    double v[9];
    for (int i = 0; i < 9; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(it)) {
            cJSON_Delete(o);
            return mmt_fail(st, "%s: metadata \"train_state\" lacks the number \"%s\"", path,
                            keys[i]);
        }
        v[i] = it->valuedouble;
    }
    cJSON_Delete(o);
    *ts = (train_state){(long)v[0], (int)v[1], (long)v[2], v[3], (int)v[4], v[5],
                        v[6], v[7], (long)v[8]};
    return MMT_OK;
}

int ckpt_save(const char *path, mmt_model *m, const adam_state *adam, const train_state *ts,
              const char *recipe_json, const void *spm, size_t spm_len, mmt_status *st) {
    st_writer *w = st_writer_new();
    float *p = model_params(m);
    for (int i = 0; i < model_num_tensors(m); i++) {
        const param_tensor *t = model_tensor(m, i);
        int64_t shape[4];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        st_writer_add(w, t->name, ST_F32, t->ndim, shape, p + t->offset, t->size * sizeof(float));
    }
    if (adam && adam->m) {
        int64_t n = (int64_t)adam->n;
        st_writer_add(w, "optimizer.adam.m", ST_F32, 1, &n, adam->m, adam->n * sizeof(float));
        st_writer_add(w, "optimizer.adam.v", ST_F32, 1, &n, adam->v, adam->n * sizeof(float));
    }
    if (spm && spm_len) {
        int64_t n = (int64_t)spm_len;
        st_writer_add(w, "tokenizer.sentencepiece", ST_U8, 1, &n, spm, spm_len);
    }
    char *cfg = model_config_to_json(model_cfg(m));
    char *state = state_to_json(ts);
    char adam_step[32];
    snprintf(adam_step, sizeof adam_step, "%ld", adam ? adam->step : 0L);
    st_writer_meta(w, "format", CKPT_FORMAT);
    st_writer_meta(w, "format_version", CKPT_VERSION);
    st_writer_meta(w, "mmt_version", MMT_VERSION);
    st_writer_meta(w, "model_config", cfg);
    st_writer_meta(w, "train_state", state);
    st_writer_meta(w, "adam_step", adam_step);
    if (recipe_json) st_writer_meta(w, "recipe", recipe_json);
    int rc = st_writer_save(w, path, st);
    st_writer_free(w);
    free(cfg);
    free(state);
    return rc;
}

/* Copy a stored F32 tensor of n floats into dst, checking shape and dtype. */
static int copy_f32(const st_file *f, const char *name, float *dst, size_t n, mmt_status *st) {
    const st_tensor *t = st_find(f, name);
    if (!t) return mmt_fail(st, "%s: tensor \"%s\" missing", f->path, name);
    if (t->dtype != ST_F32 || (size_t)st_numel(t) != n)
        return mmt_fail(st, "%s: tensor \"%s\": expected %zu float32 values, found %lld of %s",
                        f->path, name, n, (long long)st_numel(t), st_dtype_name(t->dtype));
    memcpy(dst, st_data(f, t), n * sizeof(float));
    return MMT_OK;
}

int ckpt_load(const char *path, ckpt *c, int with_adam, mmt_status *st) {
    memset(c, 0, sizeof *c);
    st_file f;
    if (st_read(&f, path, st)) return MMT_ERR;
    int rc = MMT_ERR;
    const char *fmt = st_meta(&f, "format"), *cfg_text = st_meta(&f, "model_config");
    const char *state = st_meta(&f, "train_state");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) || !cfg_text || !state) {
        mmt_fail(st, "%s: not an mmt checkpoint (metadata \"format\", \"model_config\" or "
                 "\"train_state\" missing)", path);
        goto done;
    }

    /* the model, from its stored configuration */
    model_config cfg = model_config_default();
    cJSON *cj = cJSON_Parse(cfg_text);
    char where[1100];
    snprintf(where, sizeof where, "%s: model_config", path);
    int bad = !cj || model_config_apply(&cfg, cj, where, st);
    cJSON_Delete(cj);
    if (bad) {
        if (!cj) mmt_fail(st, "%s: metadata \"model_config\" is not valid JSON", path);
        goto done;
    }
    c->model = model_create(&cfg);
    for (int i = 0; i < model_num_tensors(c->model); i++) {
        const param_tensor *t = model_tensor(c->model, i);
        if (copy_f32(&f, t->name, model_params(c->model) + t->offset, t->size, st)) goto done;
    }
    if (state_from_json(&c->ts, state, path, st)) goto done;

    if (with_adam && st_find(&f, "optimizer.adam.m")) {
        size_t n = model_num_params(c->model);
        adam_init(&c->adam, n, 0.9f, 0.98f, 1e-8f, 0.0f);
        if (copy_f32(&f, "optimizer.adam.m", c->adam.m, n, st) ||
            copy_f32(&f, "optimizer.adam.v", c->adam.v, n, st))
            goto done;
        const char *as = st_meta(&f, "adam_step");
        c->adam.step = as ? atol(as) : 0;
    }
    const st_tensor *tok = st_find(&f, "tokenizer.sentencepiece");
    if (tok) {
        c->spm_len = tok->nbytes;
        c->spm = mmt_malloc(tok->nbytes);
        memcpy(c->spm, st_data(&f, tok), tok->nbytes);
    }
    const char *recipe = st_meta(&f, "recipe");
    if (recipe) c->recipe_json = strdup(recipe);
    rc = MMT_OK;
done:
    st_close(&f);
    if (rc) ckpt_free(c);
    return rc;
}

void ckpt_free(ckpt *c) {
    model_free(c->model);
    adam_free(&c->adam);
    free(c->recipe_json);
    free(c->spm);
    memset(c, 0, sizeof *c);
}

int ckpt_average(const char *const *paths, int n, const char *out, mmt_status *st) {
    MMT_ASSERT(n >= 1);
    ckpt first;
    if (ckpt_load(paths[0], &first, 0, st)) return MMT_ERR;
    size_t np = model_num_params(first.model);
    double *sum = mmt_calloc(np, sizeof *sum);
    float *p = model_params(first.model);
    for (size_t j = 0; j < np; j++) sum[j] = p[j];
    for (int i = 1; i < n; i++) {
        ckpt c;
        if (ckpt_load(paths[i], &c, 0, st)) {
            free(sum);
            ckpt_free(&first);
            return MMT_ERR;
        }
        size_t npi = model_num_params(c.model);
        int same = npi == np && model_num_tensors(c.model) == model_num_tensors(first.model);
        for (int k = 0; same && k < model_num_tensors(c.model); k++)
            same = !strcmp(model_tensor(c.model, k)->name, model_tensor(first.model, k)->name) &&
                   model_tensor(c.model, k)->size == model_tensor(first.model, k)->size;
        if (!same) {
            ckpt_free(&c);
            free(sum);
            ckpt_free(&first);
            return mmt_fail(st, "%s: a different model from %s (%zu vs %zu parameters)", paths[i],
                            paths[0], npi, np);
        }
        const float *q = model_params(c.model);
        for (size_t j = 0; j < np; j++) sum[j] += q[j];
        ckpt_free(&c);
    }
    for (size_t j = 0; j < np; j++) p[j] = (float)(sum[j] / n);
    free(sum);
    int rc = ckpt_save(out, first.model, NULL, &first.ts, first.recipe_json, first.spm,
                       first.spm_len, st);
    ckpt_free(&first);
    return rc;
}
