/*
 * test_e2e.c - the programs end to end: the built-in demo trains to a
 * validation BLEU above 90; its checkpoint translates the test set; the
 * output does not depend on the batch size; empty lines stay; a run killed
 * with SIGKILL and rerun reproduces the uninterrupted run's losses and
 * parameters exactly; bad input stops a run with a message; a multimodal
 * (gated) demo trains from .npy features and translates only with images.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "demo.h"
#include "imageset.h"
#include "safetensors.h"
#include "test.h"

static char tmp[] = "/tmp/mmt-e2e-XXXXXX";

/* Run a shell command line; returns its exit status (-1 if it did not exit). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurp(const char *fmt, ...) {
    char path[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    char *s = mmt_read_file(path, NULL, NULL);
    return s ? s : strdup("");
}

/* Last value of column col (0-based) in a TSV with a header. */
static double last_tsv_value(const char *path, int col) {
    char *s = slurp("%s", path), *line = s, *last = NULL;
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        if (line != s) last = line;
    }
    double v = -1.0;
    for (int c = 0; last && c <= col; c++) {
        if (c == col) v = atof(last);
        last = strchr(last, '\t');
        if (last) last++;
    }
    free(s);
    return v;
}

/* The columns of steps.tsv that must be reproduced: all but none (they are
 * step, epoch, loss, nll, tokens, gradient norm and learning rate). */
static int same_file(const char *a, const char *b) {
    char *x = slurp("%s", a), *y = slurp("%s", b);
    int same = x[0] && !strcmp(x, y);
    free(x);
    free(y);
    return same;
}

static void test_demo(void) {
    const char *bin = test_bin_dir;
    int rc = sh("%s/mmt-train recipes/demo.json --set output=%s/demo > %s/demo.log 2>&1", bin,
                tmp, tmp);
    CHECK(rc == 0, "mmt-train recipes/demo.json runs to the end (log: %s/demo.log)", tmp);
    char p[4200];
    snprintf(p, sizeof p, "%s/demo/log.tsv", tmp);
    double bleu = last_tsv_value(p, 6);
    CHECK(bleu > 90.0, "demo: final validation BLEU %.2f > 90", bleu);

    /* translate the test set with the averaged checkpoint; score it */
    rc = sh("%s/mmt-translate --model %s/demo/checkpoint_avg.safetensors --beam 4 --quiet "
            "< %s/demo/data/test.src > %s/test.hyp", bin, tmp, tmp, tmp);
    CHECK(rc == 0, "mmt-translate decodes the demo test set");
    rc = sh("%s/mmt-bleu -b %s/demo/data/test.tgt < %s/test.hyp > %s/test.bleu", bin, tmp, tmp,
            tmp);
    char *b = slurp("%s/test.bleu", tmp);
    CHECK(rc == 0 && atof(b) > 90.0, "demo test BLEU (beam 4, averaged checkpoint) %.2f > 90",
          atof(b));
    free(b);

    /* batch size must not change the output; empty lines stay in place */
    rc = sh("%s/mmt-translate --model %s/demo/checkpoint_avg.safetensors --beam 4 --quiet "
            "--batch-size 1 < %s/demo/data/test.src > %s/test1.hyp && "
            "%s/mmt-translate --model %s/demo/checkpoint_avg.safetensors --beam 4 --quiet "
            "--batch-size 7 --batch-tokens 50 < %s/demo/data/test.src > %s/test7.hyp",
            bin, tmp, tmp, tmp, bin, tmp, tmp, tmp);
    char h0[4200], h1[4200], h7[4200];
    snprintf(h0, sizeof h0, "%s/test.hyp", tmp);
    snprintf(h1, sizeof h1, "%s/test1.hyp", tmp);
    snprintf(h7, sizeof h7, "%s/test7.hyp", tmp);
    CHECK(rc == 0 && same_file(h0, h1) && same_file(h0, h7),
          "translations identical with batch size 64, 1 and 7 (50 tokens)");
    rc = sh("printf 'the big dog sees a cat\\n\\n\\na red cat runs\\n' | %s/mmt-translate --model "
            "%s/demo/checkpoint_avg.safetensors --quiet > %s/empty.hyp", bin, tmp, tmp);
    char *e = slurp("%s/empty.hyp", tmp);
    int lines = 0;
    for (char *q = e; *q; q++) lines += *q == '\n';
    CHECK(rc == 0 && lines == 4 && strstr(e, "\n\n\n") && e[0] != '\n',
          "4 input lines with 2 empty give 4 output lines, the empty ones empty");
    free(e);
}

/* A run killed with SIGKILL and rerun equals one that was never stopped. */
static void test_resume(void) {
    const char *bin = test_bin_dir;
    const char *sets = "--set train.max_updates=60 --set train.validate_every=20 "
                       "--set train.log_every=10";
    int rc = sh("%s/mmt-train recipes/demo.json %s --set output=%s/a > %s/a.log 2>&1", bin, sets,
                tmp, tmp);
    CHECK(rc == 0, "uninterrupted 60-update run");

    /* start, wait until it has passed its step-20 checkpoint, then kill -9 */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec %s/mmt-train recipes/demo.json %s --set output=%s/b "
             "> %s/b1.log 2>&1", bin, sets, tmp, tmp);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int killed = 0;
    for (int i = 0; i < 6000 && !killed; i++) {
        usleep(20000);
        char p[4200];
        snprintf(p, sizeof p, "%s/b/steps.tsv", tmp);
        if (last_tsv_value(p, 0) >= 25) killed = kill(pid, SIGKILL) == 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;
    }
    waitpid(pid, NULL, 0);
    CHECK(killed, "second run killed with SIGKILL after step 25");
    rc = sh("%s/mmt-train recipes/demo.json %s --set output=%s/b > %s/b2.log 2>&1", bin, sets,
            tmp, tmp);
    char *log = slurp("%s/b2.log", tmp);
    CHECK(rc == 0 && strstr(log, "resuming"), "rerun resumes from checkpoint_last");
    free(log);
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/a/steps.tsv", tmp);
    snprintf(pb, sizeof pb, "%s/b/steps.tsv", tmp);
    CHECK(same_file(pa, pb), "per-update losses, gradient norms and learning rates identical "
          "(steps.tsv)");
    /* every tensor equal (the metadata differs in wall time only) */
    st_file fa, fb;
    mmt_status st;
    snprintf(pa, sizeof pa, "%s/a/checkpoint_last.safetensors", tmp);
    snprintf(pb, sizeof pb, "%s/b/checkpoint_last.safetensors", tmp);
    int same = 0, ntensors = 0;
    if (st_read(&fa, pa, &st) == MMT_OK) {
        if (st_read(&fb, pb, &st) == MMT_OK) {
            /* the tokenizer's bytes name its training files, which differ */
            same = fa.n == fb.n;
            for (int i = 0; same && i < fa.n; i++) {
                const st_tensor *ta = &fa.tensors[i], *tb = st_find(&fb, ta->name);
                if (!strcmp(ta->name, "tokenizer.sentencepiece")) continue;
                same = tb && ta->nbytes == tb->nbytes &&
                       !memcmp(st_data(&fa, ta), st_data(&fb, tb), ta->nbytes);
                ntensors++;
            }
            st_close(&fb);
        }
        st_close(&fa);
    }
    CHECK(same, "final checkpoints: all %d parameter and Adam tensors identical bit for bit",
          ntensors);
}

static void test_bad_input(void) {
    const char *bin = test_bin_dir;
    int rc = sh("%s/mmt-train recipes/demo.json --set train.max_tokenz=5 --set output=%s/bad "
                "> %s/bad.log 2>&1", bin, tmp, tmp);
    char *log = slurp("%s/bad.log", tmp);
    CHECK(rc != 0 && strstr(log, "train.max_tokenz") && strstr(log, "train.max_tokens"),
          "unknown --set key: non-zero exit naming it and the closest key");
    free(log);
    /* a NaN in the weights: the run stops, naming the step, and writes nothing */
    const char *sets = "--set train.validate_every=0 --set train.save_every=1";
    rc = sh("%s/mmt-train recipes/demo.json %s --set train.max_updates=1 --set output=%s/nan "
            "> %s/nan0.log 2>&1", bin, sets, tmp, tmp);
    char p[4200];
    snprintf(p, sizeof p, "%s/nan/checkpoint_last.safetensors", tmp);
    ckpt c;
    mmt_status st;
    int planted = rc == 0 && ckpt_load(p, &c, 1, &st) == MMT_OK;
    if (planted) {
        model_params(c.model)[model_tensor(c.model, 1)->offset] = 0.0f / 0.0f;
        planted = ckpt_save(p, c.model, &c.adam, &c.ts, c.recipe_json, c.spm, c.spm_len, &st) ==
                  MMT_OK;
        ckpt_free(&c);
    }
    char *before = slurp("%s", p);
    rc = sh("%s/mmt-train recipes/demo.json %s --set train.max_updates=3 --set output=%s/nan "
            "> %s/nan.log 2>&1", bin, sets, tmp, tmp);
    log = slurp("%s/nan.log", tmp);
    char *after = slurp("%s", p);
    CHECK(planted && rc != 0 && strstr(log, "step 2") && strstr(log, "NaN") &&
              !strcmp(before, after),
          "a NaN loss stops the run naming step 2; checkpoint_last is left as it was");
    free(log);
    free(before);
    free(after);
    rc = sh("printf 'a\\n' | %s/mmt-translate --model %s/nope.safetensors > /dev/null 2> "
            "%s/tr.log", bin, tmp, tmp);
    log = slurp("%s/tr.log", tmp);
    CHECK(rc != 0 && strstr(log, "nope.safetensors"), "missing checkpoint: error naming it");
    free(log);
}

/* The demo with a gated fusion over the demo's features (a one-hot of each
 * line's first noun, written next to the demo's data): the image pathway
 * end to end, in training, validation, checkpoints and mmt-translate. */
static void test_multimodal(void) {
    const char *bin = test_bin_dir;
    static const char *const splits[] = {"train", "valid", "test"};
    int ok = 1;
    mmt_status st = {0};
    for (int i = 0; i < 3 && ok; i++) {
        char src[4200], npy[4200];
        snprintf(src, sizeof src, "%s/demo/data/%s.src", tmp, splits[i]);
        snprintf(npy, sizeof npy, "%s/demo/data/%s.npy", tmp, splits[i]);
        ok = demo_write_features(src, npy, &st) == MMT_OK;
    }
    CHECK(ok, "demo features written next to the demo data %s", st.msg);
    int rc = sh("%s/mmt-train recipes/demo.json --set output=%s/mm --set model.fusion=gated "
                "--set data.train.images=%s/demo/data/train.npy "
                "--set data.valid.images=%s/demo/data/valid.npy --set train.max_updates=200 "
                "> %s/mm.log 2>&1", bin, tmp, tmp, tmp, tmp);
    char p[4200];
    snprintf(p, sizeof p, "%s/mm/log.tsv", tmp);
    double bleu = last_tsv_value(p, 6);
    CHECK(rc == 0 && bleu > 50.0, "gated demo: 200 updates from .npy features, validation "
          "BLEU %.2f > 50 (log: %s/mm.log)", bleu, tmp);
    ckpt c;
    snprintf(p, sizeof p, "%s/mm/checkpoint_last.safetensors", tmp);
    int loaded = ckpt_load(p, &c, 0, &st) == MMT_OK;
    CHECK(loaded && model_cfg(c.model)->fusion == FUSION_GATED &&
              model_find_tensor(c.model, "fusion.gate_image.weight") &&
              model_cfg(c.model)->img_regions == 1,
          "gated demo: the checkpoint holds the fusion, its tensors and the image shape");
    if (loaded) ckpt_free(&c);

    rc = sh("%s/mmt-translate --model %s/mm/checkpoint_last.safetensors --quiet "
            "< %s/demo/data/test.src > /dev/null 2> %s/mm-noimg.log", bin, tmp, tmp, tmp);
    char *log = slurp("%s/mm-noimg.log", tmp);
    CHECK(rc == 2 && strstr(log, "--images"), "mmt-translate of a multimodal model without "
          "images: exit 2, asks for --images");
    free(log);
    rc = sh("%s/mmt-translate --model %s/mm/checkpoint_last.safetensors --quiet "
            "--images %s/demo/data/train.npy < %s/demo/data/test.src > /dev/null 2> %s/mm-n.log",
            bin, tmp, tmp, tmp, tmp);
    log = slurp("%s/mm-n.log", tmp);
    CHECK(rc == 1 && strstr(log, "train.npy") && strstr(log, "4000") && strstr(log, "200"),
          "mmt-translate with images for another number of lines: error naming the file and "
          "both counts");
    free(log);
    rc = sh("%s/mmt-translate --model %s/mm/checkpoint_last.safetensors --quiet "
            "--images %s/demo/data/test.npy < %s/demo/data/test.src > %s/mm.hyp && "
            "%s/mmt-translate --model %s/mm/checkpoint_last.safetensors --quiet --batch-size 3 "
            "--images %s/demo/data/test.npy < %s/demo/data/test.src > %s/mm3.hyp && "
            "%s/mmt-bleu -b %s/demo/data/test.tgt < %s/mm.hyp > %s/mm.bleu",
            bin, tmp, tmp, tmp, tmp, bin, tmp, tmp, tmp, tmp, bin, tmp, tmp, tmp);
    char *b = slurp("%s/mm.bleu", tmp);
    char h1[4200], h3[4200];
    snprintf(h1, sizeof h1, "%s/mm.hyp", tmp);
    snprintf(h3, sizeof h3, "%s/mm3.hyp", tmp);
    CHECK(rc == 0 && atof(b) > 50.0 && same_file(h1, h3),
          "mmt-translate --images: test BLEU %.2f > 50, the same output with batch size 3",
          atof(b));
    free(b);
}

/* model.image_norm "standard" on the gated demo: the training images'
 * statistics go into the checkpoint as img.stats.*, exactly as
 * imageset_stats computes them, stay there unchanged through training and a
 * resume, and mmt-translate applies them. */
static void test_image_norm(void) {
    const char *bin = test_bin_dir;
    int rc = sh("%s/mmt-train recipes/demo.json --set output=%s/mmn --set model.fusion=gated "
                "--set model.image_norm=standard --set data.train.images=%s/demo/data/train.npy "
                "--set data.valid.images=%s/demo/data/valid.npy --set train.max_updates=20 "
                "--set train.weight_decay=0.01 > %s/mmn.log 2>&1 && "
                "%s/mmt-train recipes/demo.json --set output=%s/mmn --set model.fusion=gated "
                "--set model.image_norm=standard --set data.train.images=%s/demo/data/train.npy "
                "--set data.valid.images=%s/demo/data/valid.npy --set train.max_updates=30 "
                "--set train.weight_decay=0.01 >> %s/mmn.log 2>&1",
                bin, tmp, tmp, tmp, tmp, bin, tmp, tmp, tmp, tmp);
    char *log = slurp("%s/mmn.log", tmp);
    CHECK(rc == 0 && strstr(log, "image statistics of") && strstr(log, "resuming"),
          "gated demo, image_norm standard: trains 20 updates, resumes to 30, logs the image "
          "statistics (log: %s/mmn.log)", tmp);
    free(log);

    imageset s;
    mmt_status st = {0};
    char p[4200];
    snprintf(p, sizeof p, "%s/demo/data/train.npy", tmp);
    if (imageset_open(&s, p, NULL, 0, 0, &st)) {
        CHECK(0, "image_norm: %s opens: %s", p, st.msg);
        return;
    }
    float *mean = mmt_malloc((size_t)s.Dv * sizeof(float));
    float *scale = mmt_malloc((size_t)s.Dv * sizeof(float));
    imageset_stats(&s, 1L << 25, mean, scale);
    ckpt c;
    snprintf(p, sizeof p, "%s/mmn/checkpoint_last.safetensors", tmp);
    int loaded = ckpt_load(p, &c, 0, &st) == MMT_OK;
    const param_tensor *tm = loaded ? model_find_tensor(c.model, "img.stats.mean") : NULL;
    const param_tensor *ts = loaded ? model_find_tensor(c.model, "img.stats.scale") : NULL;
    CHECK(loaded && c.ts.step == 30 && model_cfg(c.model)->img_norm == 1 && tm && ts &&
              (int)tm->size == s.Dv &&
              !memcmp(model_params(c.model) + tm->offset, mean, tm->size * sizeof(float)) &&
              !memcmp(model_params(c.model) + ts->offset, scale, ts->size * sizeof(float)),
          "image_norm: after 30 updates with weight decay and a resume, the checkpoint holds "
          "the training images' statistics unchanged");
    if (loaded) ckpt_free(&c);
    free(mean);
    free(scale);
    imageset_close(&s);

    rc = sh("%s/mmt-translate --model %s/mmn/checkpoint_last.safetensors --quiet "
            "--images %s/demo/data/test.npy < %s/demo/data/test.src > %s/mmn.hyp",
            bin, tmp, tmp, tmp, tmp);
    snprintf(p, sizeof p, "%s/mmn.hyp", tmp);
    char *hyp = slurp("%s/mmn.hyp", tmp);
    long lines = 0;
    for (const char *q = hyp; *q; q++) lines += *q == '\n';
    free(hyp);
    CHECK(rc == 0 && lines == 200, "image_norm: mmt-translate --images translates every line "
          "(%ld of 200)", lines);
}

void suite_e2e(void) {
    MMT_ASSERT(mkdtemp(tmp));
    test_demo();
    test_resume();
    test_bad_input();
    test_multimodal();
    test_image_norm();
    if (test_failed == 0) sh("rm -rf %s", tmp);
}
