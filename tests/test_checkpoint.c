/* test_checkpoint.c - checkpoints round-trip exactly, carry the state,
 * recipe and tokenizer, average correctly and reject bad files. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "test.h"

static mmt_model *tiny(uint64_t seed, int pre_norm) {
    model_config c = model_config_default();
    c.enc_layers = 1;
    c.dec_layers = 2;
    c.D = 8;
    c.F = 16;
    c.H = 2;
    c.V = 11;
    c.pre_norm = pre_norm;
    c.tau = 3e-4f;
    c.penal_mask = PENAL_ENC_FFN | PENAL_DEC_CROSS;
    c.seed = seed;
    return model_create(&c);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

void suite_checkpoint(void) {
    char dir[] = "/tmp/mmt-ckpt-XXXXXX";
    MMT_ASSERT(mkdtemp(dir));
    char path[256], path2[256], avg[256];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/b.safetensors", dir);
    snprintf(avg, sizeof avg, "%s/avg.safetensors", dir);
    mmt_status st = {0};

    /* round trip: parameters, moments, state, recipe, tokenizer */
    mmt_model *m = tiny(5, 1);
    adam_state a;
    adam_init(&a, model_num_params(m), 0.9f, 0.98f, 1e-8f, 0.0f);
    for (size_t i = 0; i < a.n; i++) a.m[i] = (float)i * 1e-3f, a.v[i] = (float)i * 1e-6f;
    a.step = 17;
    train_state ts = {1234, 3, 56, 41.25, 2, 99.5, 1000.5, 900.25, 321};
    const char spm[] = "not really a sentencepiece model";
    int rc = ckpt_save(path, m, &a, &ts, "{\"name\":\"x\"}", spm, sizeof spm, &st);
    CHECK(rc == MMT_OK, "save %s", rc ? st.msg : path);
    CHECK(count_files(dir) == 1, "save leaves exactly one file (no temporary)");

    ckpt c;
    rc = ckpt_load(path, &c, 1, &st);
    CHECK(rc == MMT_OK, "load %s", rc ? st.msg : path);
    if (rc == MMT_OK) {
        const model_config *x = model_cfg(c.model), *y = model_cfg(m);
        CHECK(x->pre_norm == 1 && x->D == 8 && x->V == 11 && x->dec_layers == 2 &&
                  x->penal_mask == y->penal_mask && x->tau == y->tau,
              "configuration restored (pre-norm, sizes, penal sublayers and tau)");
        CHECK(model_num_params(c.model) == model_num_params(m) &&
                  !memcmp(model_params(c.model), model_params(m),
                          model_num_params(m) * sizeof(float)),
              "parameters restored bit for bit");
        CHECK(c.adam.m && !memcmp(c.adam.m, a.m, a.n * sizeof(float)) &&
                  !memcmp(c.adam.v, a.v, a.n * sizeof(float)) && c.adam.step == 17,
              "Adam moments and step restored");
        CHECK(c.ts.step == 1234 && c.ts.epoch == 3 && c.ts.batch_in_epoch == 56 &&
                  c.ts.best_metric == 41.25 && c.ts.bad_validations == 2 &&
                  c.ts.train_seconds == 99.5 && c.ts.epoch_loss == 1000.5 &&
                  c.ts.epoch_nll == 900.25 && c.ts.epoch_tokens == 321,
              "training state restored");
        CHECK(c.recipe_json && !strcmp(c.recipe_json, "{\"name\":\"x\"}"), "recipe restored");
        CHECK(c.spm_len == sizeof spm && !memcmp(c.spm, spm, sizeof spm),
              "tokenizer bytes restored");
        ckpt_free(&c);
    }

    /* averaging two checkpoints gives the mean of each parameter */
    mmt_model *m2 = tiny(6, 1);
    ckpt_save(path2, m2, NULL, &ts, NULL, NULL, 0, &st);
    const char *both[2] = {path, path2};
    rc = ckpt_average(both, 2, avg, &st);
    CHECK(rc == MMT_OK, "average of two checkpoints %s", rc ? st.msg : "");
    if (rc == MMT_OK && ckpt_load(avg, &c, 1, &st) == MMT_OK) {
        const float *p = model_params(c.model), *p1 = model_params(m), *p2 = model_params(m2);
        double worst = 0.0;
        for (size_t i = 0; i < model_num_params(m); i++) {
            double d = p[i] - 0.5 * ((double)p1[i] + p2[i]);
            worst = d < 0 ? (-d > worst ? -d : worst) : (d > worst ? d : worst);
        }
        CHECK(worst < 1e-7, "averaged parameters are the means (worst |diff| %.2g)", worst);
        CHECK(c.adam.m == NULL, "an average carries no optimizer state");
        ckpt_free(&c);
    }

    /* a different model cannot be averaged in */
    mmt_model *m3 = tiny(7, 0);
    ckpt_save(path2, m3, NULL, &ts, NULL, NULL, 0, &st);
    rc = ckpt_average(both, 2, avg, &st);
    CHECK(rc == MMT_ERR, "averaging different models fails: %s", st.msg);

    /* bad files */
    rc = ckpt_load("/nonexistent/x.safetensors", &c, 0, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "/nonexistent/x.safetensors"),
          "missing checkpoint fails naming it: %s", st.msg);
    FILE *f = fopen(path2, "r+b");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    MMT_ASSERT(truncate(path2, len / 2) == 0);
    rc = ckpt_load(path2, &c, 0, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path2), "truncated checkpoint fails naming it: %s",
          st.msg);

    model_free(m);
    model_free(m2);
    model_free(m3);
    adam_free(&a);
    unlink(path);
    unlink(path2);
    unlink(avg);
    rmdir(dir);
}
