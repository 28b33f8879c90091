/*
 * train.c - the training loop: recipe, data, model, optimizer, validation,
 * checkpoints, resume.
 *
 * Exact resume: the batch order of an epoch is a function of (seed, epoch),
 * dropout masks of (seed, step), and the checkpoint holds the step, the
 * epoch, the position in the epoch and Adam's moments; so rerunning after
 * an interruption replays the uninterrupted run bit for bit (for the same
 * thread count). Per-update losses go to steps.tsv, validations to log.tsv;
 * on resume both are cut back to the checkpoint's step.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bleu.h"
#include "checkpoint.h"
#include "data.h"
#include "demo.h"
#include "model.h"
#include "optim.h"
#include "recipe.h"
#include "spm.h"
#include "translate.h"
#include "imageset.h"

typedef struct {
    recipe *r;
    char dir[512];              /* the run folder */
    char train_src[1024], train_tgt[1024], valid_src[1024], valid_tgt[1024];
    spm_model *spm;
    char *spm_bytes;
    size_t spm_len;
    char *recipe_json;
    pair_corpus train, valid;
    batch_plan plan, vplan;
    batch_buf buf;
    data_lines vsrc_lines, vref_lines; /* raw validation text for BLEU */
    long train_lines, valid_lines;     /* lines of the text files, before filtering */
    int has_img;                       /* model.fusion is not none */
    imageset timg, vimg;               /* images of the training and validation lines */
    float *imgbuf;                     /* (max_B, P, Dv) the image regions of a batch */
    long *imglines;                    /* (max_B) their lines */
    mmt_model *m;
    adam_state adam;
    train_state ts;
    int update_freq, log_every, validate_every, save_every, max_epochs, patience;
    long max_updates;
    double lr, warmup_init_lr;
    long warmup;
    int inverse_sqrt;
    float clip;
    int metric_is_loss;
    uint64_t seed;
    FILE *steps;                /* steps.tsv */
} trainer;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

/* ---------------------------------------------------------------- files */

static int mkdirs(const char *path, mmt_status *st) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return mmt_fail(st, "cannot create folder %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return mmt_fail(st, "cannot create folder %s: %s", tmp, strerror(errno));
    return MMT_OK;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static void run_path(const trainer *t, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", t->dir, name);
}

/* Write text to path atomically. */
static int write_text(const char *path, const char *text, mmt_status *st) {
    data_atomic_file a;
    if (data_atomic_open(&a, path, st)) return MMT_ERR;
    fputs(text, a.f);
    return data_atomic_commit(&a, st);
}

/* Keep the header and the rows of a TSV whose first column (the step) is at
 * most step; used on resume so the logs match an uninterrupted run. */
static int cut_tsv(const char *path, long step, mmt_status *st) {
    if (!file_exists(path)) return MMT_OK;
    data_lines l;
    if (data_read_lines(&l, path, st)) return MMT_ERR;
    data_atomic_file a;
    if (data_atomic_open(&a, path, st)) {
        data_lines_free(&l);
        return MMT_ERR;
    }
    for (long i = 0; i < l.n; i++)
        if (i == 0 || atol(l.line[i]) <= step) fprintf(a.f, "%s\n", l.line[i]);
    data_lines_free(&l);
    return data_atomic_commit(&a, st);
}

/* ---------------------------------------------------------------- setup */

static int setup_data_paths(trainer *t, mmt_status *st) {
    const recipe *r = t->r;
    if (!strcmp(recipe_get_string(r, "data.generate"), "demo")) {
        char d[700];
        run_path(t, "data", d, sizeof d);
        if (mkdirs(d, st) || demo_generate(d, t->seed, 4000, 200, 200, st)) return MMT_ERR;
        snprintf(t->train_src, sizeof t->train_src, "%s/train.src", d);
        snprintf(t->train_tgt, sizeof t->train_tgt, "%s/train.tgt", d);
        snprintf(t->valid_src, sizeof t->valid_src, "%s/valid.src", d);
        snprintf(t->valid_tgt, sizeof t->valid_tgt, "%s/valid.tgt", d);
        return MMT_OK;
    }
    snprintf(t->train_src, sizeof t->train_src, "%s", recipe_get_string(r, "data.train.src"));
    snprintf(t->train_tgt, sizeof t->train_tgt, "%s", recipe_get_string(r, "data.train.tgt"));
    snprintf(t->valid_src, sizeof t->valid_src, "%s", recipe_get_string(r, "data.valid.src"));
    snprintf(t->valid_tgt, sizeof t->valid_tgt, "%s", recipe_get_string(r, "data.valid.tgt"));
    const char *files[4] = {t->train_src, t->train_tgt, t->valid_src, t->valid_tgt};
    for (int i = 0; i < 4; i++)
        if (!file_exists(files[i]))
            return mmt_fail(st, "%s: data file %s not found (for Multi30k run "
                            "data/get-multi30k.sh first)", recipe_path(r), files[i]);
    return MMT_OK;
}

/* The recipe's tokenizer, or the run's own, trained on first use. */
static int setup_tokenizer(trainer *t, mmt_status *st) {
    const recipe *r = t->r;
    char path[1100];
    const char *given = recipe_get_string(r, "tokenizer.model");
    if (given[0]) {
        snprintf(path, sizeof path, "%s", given);
    } else {
        char prefix[1050];
        run_path(t, "spm", prefix, sizeof prefix);
        snprintf(path, sizeof path, "%s.model", prefix);
        if (!file_exists(path)) {
            const char *files[2] = {t->train_src, t->train_tgt};
            log_info("training a joint %s tokenizer of %d pieces on %s and %s",
                     recipe_get_string(r, "tokenizer.type"),
                     recipe_get_int(r, "tokenizer.vocab_size"), files[0], files[1]);
            if (data_train_tokenizer(files, 2, prefix, recipe_get_int(r, "tokenizer.vocab_size"),
                                     recipe_get_string(r, "tokenizer.type"),
                                     (float)recipe_get_float(r, "tokenizer.character_coverage"),
                                     recipe_get_int(r, "tokenizer.input_sentence_size"), st))
                return MMT_ERR;
        }
    }
    t->spm = spm_load(path, st);
    if (!t->spm || spm_serialize(t->spm, &t->spm_bytes, &t->spm_len, st)) return MMT_ERR;
    log_info("tokenizer %s: %d pieces", path, spm_vocab_size(t->spm));
    return MMT_OK;
}

static int setup_corpora(trainer *t, mmt_status *st) {
    int max_len = recipe_get_int(t->r, "data.max_len"), cached;
    char cache[1100], buf[256];
    data_stats s;
    run_path(t, "train.cache", cache, sizeof cache);
    if (data_prepare(&t->train, t->spm, t->train_src, t->train_tgt, max_len, cache, &s,
                     &cached, st))
        return MMT_ERR;
    log_info("train %s: %s%s", t->train_src, data_stats_str(&s, max_len, buf, sizeof buf),
             cached ? " (from the token cache)" : "");
    t->train_lines = s.lines;
    run_path(t, "valid.cache", cache, sizeof cache);
    if (data_prepare(&t->valid, t->spm, t->valid_src, t->valid_tgt, max_len, cache, &s,
                     &cached, st))
        return MMT_ERR;
    log_info("valid %s: %s", t->valid_src, data_stats_str(&s, max_len, buf, sizeof buf));
    t->valid_lines = s.lines;
    if (t->train.n == 0) return mmt_fail(st, "%s: no training pairs left", t->train_src);
    if (data_read_lines(&t->vsrc_lines, t->valid_src, st) ||
        data_read_lines(&t->vref_lines, t->valid_tgt, st))
        return MMT_ERR;
    int max_tokens = recipe_get_int(t->r, "train.max_tokens");
    if (batch_plan_build(&t->plan, &t->train, max_tokens, st) ||
        batch_plan_build(&t->vplan, &t->valid, max_tokens, st))
        return MMT_ERR;
    batch_buf_init(&t->buf, spm_pad_id(t->spm), spm_bos_id(t->spm), spm_eos_id(t->spm));
    return MMT_OK;
}

/* The images of the training and validation lines, when the model has a
 * fusion: both must serve every line of their text files, with regions of
 * one shape. */
static int setup_images(trainer *t, mmt_status *st) {
    const recipe *r = t->r;
    t->has_img = strcmp(recipe_get_string(r, "model.fusion"), "none") != 0;
    if (!t->has_img) return MMT_OK;
    int size = recipe_get_int(r, "data.image_size"), patch = recipe_get_int(r, "data.image_patch");
    double t0 = mmt_now();
    if (imageset_open(&t->timg, recipe_get_string(r, "data.train.images"),
                      recipe_get_string(r, "data.train.image_index"), size, patch, st) ||
        imageset_check_lines(&t->timg, t->train_lines, t->train_src, st) ||
        imageset_open(&t->vimg, recipe_get_string(r, "data.valid.images"),
                      recipe_get_string(r, "data.valid.image_index"), size, patch, st) ||
        imageset_check_lines(&t->vimg, t->valid_lines, t->valid_src, st))
        return MMT_ERR;
    if (t->vimg.P != t->timg.P || t->vimg.Dv != t->timg.Dv)
        return mmt_fail(st, "%s: %d regions of %d values per image, but the training images %s "
                        "have %d of %d", t->vimg.path, t->vimg.P, t->vimg.Dv, t->timg.path,
                        t->timg.P, t->timg.Dv);
    int B = t->plan.max_B > t->vplan.max_B ? t->plan.max_B : t->vplan.max_B;
    t->imgbuf = mmt_malloc((size_t)B * t->timg.P * t->timg.Dv * sizeof(float));
    t->imglines = mmt_malloc((size_t)B * sizeof(long));
    log_info("images %s: %ld images for %ld lines, %d regions of %d values each (%.1f s)",
             t->timg.path, t->timg.n_images, t->timg.n_lines, t->timg.P, t->timg.Dv,
             mmt_now() - t0);
    return MMT_OK;
}

/* Points b->img at the image regions of the k-th batch of plan p over c. */
static void attach_images(trainer *t, const imageset *s, const pair_corpus *c,
                          const batch_plan *p, long k, mmt_batch *b) {
    if (!t->has_img) return;
    int B;
    const long *rows = batch_plan_rows(p, k, &B);
    for (int i = 0; i < B; i++) t->imglines[i] = c->line[rows[i]];
    imageset_fill(s, t->imglines, B, t->imgbuf);
    b->img = t->imgbuf;
}

/* model.image_norm "standard": the training images' statistics into the
 * new model's untrained tensors img.stats.mean and img.stats.scale, where
 * checkpoints keep them for resuming and translating. */
static void set_image_stats(trainer *t) {
    float *p = model_params(t->m);
    const param_tensor *mean = model_find_tensor(t->m, "img.stats.mean");
    const param_tensor *scale = model_find_tensor(t->m, "img.stats.scale");
    MMT_ASSERT(mean && scale && (int)mean->size == t->timg.Dv);
    double t0 = mmt_now();
    long n = imageset_stats(&t->timg, 1L << 25, p + mean->offset, p + scale->offset);
    double m = 0.0, s = 0.0;
    for (size_t j = 0; j < mean->size; j++) {
        m += p[mean->offset + j] / mean->size;
        s += 1.0 / p[scale->offset + j] / mean->size;
    }
    log_info("image statistics of %s from %ld of its %ld lines: mean value %.4g, mean "
             "deviation %.4g (%.1f s)", t->timg.path, n, t->timg.n_lines, m, s, mmt_now() - t0);
}

/* A fresh model from the recipe, or the one in checkpoint_last. */
static int setup_model(trainer *t, mmt_status *st) {
    model_config cfg;
    if (recipe_model_config(t->r, &cfg, st)) return MMT_ERR;
    cfg.V = spm_vocab_size(t->spm);
    cfg.pad_id = spm_pad_id(t->spm);
    cfg.bos_id = spm_bos_id(t->spm);
    cfg.eos_id = spm_eos_id(t->spm);
    cfg.unk_id = spm_unk_id(t->spm);
    if (t->has_img) {
        const int png = t->timg.patches != NULL;
        cfg.img_dim = t->timg.Dv;
        cfg.img_regions = t->timg.P;
        cfg.img_size = png ? recipe_get_int(t->r, "data.image_size") : 0;
        cfg.img_patch = png ? recipe_get_int(t->r, "data.image_patch") : 0;
    }
    float b1 = (float)recipe_get_list_float(t->r, "train.adam_betas", 0);
    float b2 = (float)recipe_get_list_float(t->r, "train.adam_betas", 1);
    float eps = (float)recipe_get_float(t->r, "train.adam_eps");
    float wd = (float)recipe_get_float(t->r, "train.weight_decay");

    char last[1100];
    run_path(t, "checkpoint_last.safetensors", last, sizeof last);
    if (!file_exists(last)) {
        t->m = model_create(&cfg);
        if (cfg.img_norm) set_image_stats(t);
        adam_init(&t->adam, model_num_params(t->m), b1, b2, eps, wd);
        t->ts = (train_state){0, 1, 0, -INFINITY, 0, 0.0, 0.0, 0.0, 0};
        return MMT_OK;
    }
    ckpt c;
    if (ckpt_load(last, &c, 1, st)) return MMT_ERR;
    char *want = model_config_to_json(&cfg), *have = model_config_to_json(model_cfg(c.model));
    int same = !strcmp(want, have);
    free(want);
    free(have);
    if (!same || !c.adam.m) {
        ckpt_free(&c);
        return mmt_fail(st, "%s: %s; use another output folder or remove it", last,
                        same ? "holds no optimizer state"
                             : "was trained with another model configuration than the recipe's");
    }
    if (c.recipe_json && strcmp(c.recipe_json, t->recipe_json))
        log_warn("%s: the recipe differs from the one this run started with; resuming with "
                 "the new one", last);
    t->m = c.model;
    t->adam = c.adam;
    t->adam.beta1 = b1, t->adam.beta2 = b2, t->adam.eps = eps, t->adam.weight_decay = wd;
    t->ts = c.ts;
    c.model = NULL;
    c.adam.m = c.adam.v = NULL;
    ckpt_free(&c);
    log_info("resuming %s: step %ld, epoch %d, batch %ld of the epoch", last, t->ts.step,
             t->ts.epoch, t->ts.batch_in_epoch);
    char p[1100];
    run_path(t, "steps.tsv", p, sizeof p);
    if (cut_tsv(p, t->ts.step, st)) return MMT_ERR;
    run_path(t, "log.tsv", p, sizeof p);
    return cut_tsv(p, t->ts.step, st);
}

/* ----------------------------------------------------------- validation */

typedef struct {
    double loss, nll, bleu; /* per target token; BLEU 0..100 */
    long ntokens;
} valid_result;

static int validate(trainer *t, valid_result *v, mmt_status *st) {
    /* loss over the encoded validation pairs, without dropout */
    double loss = 0.0, nll = 0.0;
    long ntok = 0;
    batch_plan_sorted(&t->vplan);
    for (long k = 0; k < t->vplan.n_batches; k++) {
        mmt_batch b;
        batch_fill(&t->buf, &t->valid, &t->vplan, k, &b);
        attach_images(t, &t->vimg, &t->valid, &t->vplan, k, &b);
        xent_result x = model_forward(t->m, &b, 0, 0);
        loss += x.loss;
        nll += x.nll;
        ntok += x.ntokens;
    }
    v->loss = ntok ? loss / ntok : 0.0;
    v->nll = ntok ? nll / ntok : 0.0;
    v->ntokens = ntok;
    v->bleu = 0.0;

    /* BLEU of the decoded validation sources against the raw references */
    translate_opts o = {decode_opts_default(), 64, 0};
    o.dec.beam = recipe_get_int(t->r, "decode.valid_beam");
    o.dec.nbest = 1;
    o.dec.lenpen = (float)recipe_get_float(t->r, "decode.lenpen");
    o.dec.max_len_a = (float)recipe_get_float(t->r, "decode.max_len_a");
    o.dec.max_len_b = recipe_get_int(t->r, "decode.max_len_b");
    long n = t->vsrc_lines.n;
    char **hyp = mmt_calloc(n + 1, sizeof *hyp);
    int rc = translate_lines(t->m, t->spm, (const char *const *)t->vsrc_lines.line, n,
                             t->has_img ? &t->vimg : NULL, &o, hyp, NULL, NULL, st);
    if (rc == MMT_OK) {
        bleu_config bc;
        bleu_config_default(&bc);
        if (!strcmp(recipe_get_string(t->r, "data.scoring"), "tok"))
            bc.tokenize = bleu_tokenizer_from_name("none"), bc.lowercase = 1;
        const char *const *refs[1] = {(const char *const *)t->vref_lines.line};
        bleu_score bs;
        rc = bleu_corpus(&bc, (const char *const *)hyp, refs, 1, (size_t)n, &bs, st);
        v->bleu = bs.score;
    }
    for (long i = 0; i < n; i++) free(hyp[i]);
    free(hyp);
    return rc;
}

/* ----------------------------------------------------------- checkpoints */

static int save(trainer *t, const char *name, int with_adam, mmt_status *st) {
    char p[1100];
    run_path(t, name, p, sizeof p);
    return ckpt_save(p, t->m, with_adam ? &t->adam : NULL, &t->ts, t->recipe_json, t->spm_bytes,
                     t->spm_len, st);
}

/* Steps of the numbered checkpoints (checkpoint_stepN) in the run folder,
 * ascending; returns their number. */
static int numbered_steps(const trainer *t, long **steps) {
    int n = 0, cap = 16;
    long *v = mmt_malloc(cap * sizeof *v);
    DIR *d = opendir(t->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        long step;
        char tail[32];
        if (sscanf(e->d_name, "checkpoint_step%ld.%31s", &step, tail) != 2 ||
            strcmp(tail, "safetensors"))
            continue;
        if (n == cap) v = mmt_realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = step;
    }
    if (d) closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            long x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    *steps = v;
    return n;
}

/* A numbered checkpoint at this step; the oldest beyond train.keep_last go. */
static int save_numbered(trainer *t, mmt_status *st) {
    char name[64], p[1100];
    snprintf(name, sizeof name, "checkpoint_step%ld.safetensors", t->ts.step);
    if (save(t, name, 0, st)) return MMT_ERR;
    long *steps;
    int n = numbered_steps(t, &steps), keep = recipe_get_int(t->r, "train.keep_last");
    for (int i = 0; i < n - keep; i++) {
        snprintf(name, sizeof name, "checkpoint_step%ld.safetensors", steps[i]);
        run_path(t, name, p, sizeof p);
        unlink(p);
    }
    free(steps);
    return MMT_OK;
}

/* Average the last K numbered checkpoints into checkpoint_avg.safetensors. */
static int average_last(trainer *t, mmt_status *st) {
    int k = recipe_get_int(t->r, "train.average_last");
    long *steps;
    int n = numbered_steps(t, &steps), m = n < k ? n : k, rc = MMT_OK;
    char **paths = mmt_calloc(m + 1, sizeof *paths);
    for (int i = 0; i < m; i++) {
        char name[64], p[1100];
        snprintf(name, sizeof name, "checkpoint_step%ld.safetensors", steps[n - m + i]);
        run_path(t, name, p, sizeof p);
        paths[i] = strdup(p);
    }
    if (m > 0) {
        char out[1100];
        run_path(t, "checkpoint_avg.safetensors", out, sizeof out);
        rc = ckpt_average((const char *const *)paths, m, out, st);
        if (rc == MMT_OK) log_info("averaged the last %d checkpoints into %s", m, out);
    }
    for (int i = 0; i < m; i++) free(paths[i]);
    free(paths);
    free(steps);
    return rc;
}

/* ---------------------------------------------------------------- loop */

static double lr_at(const trainer *t, long update) {
    if (update <= t->warmup && t->warmup > 0)
        return t->warmup_init_lr + (t->lr - t->warmup_init_lr) * update / t->warmup;
    if (!t->inverse_sqrt) return t->lr;
    return t->lr * sqrt((double)(t->warmup > 0 ? t->warmup : 1)) / sqrt((double)update);
}

/* One validation: log, TSV row, best and epoch checkpoints, patience. */
static int after_validation(trainer *t, const valid_result *v, double lr, double train_loss,
                            double tok_per_s, int *stop, mmt_status *st) {
    double metric = t->metric_is_loss ? -v->loss : v->bleu;
    int best = metric > t->ts.best_metric;
    if (best) {
        t->ts.best_metric = metric;
        t->ts.bad_validations = 0;
    } else {
        t->ts.bad_validations++;
    }
    log_info("valid | step %ld | epoch %d | loss %.4f | nll %.4f | ppl %.2f | BLEU %.2f%s",
             t->ts.step, t->ts.epoch, v->loss, v->nll, exp(v->nll), v->bleu,
             best ? " | best" : "");
    char p[1100];
    run_path(t, "log.tsv", p, sizeof p);
    int header = !file_exists(p);
    FILE *f = fopen(p, "a");
    if (!f) return mmt_fail(st, "cannot write %s: %s", p, strerror(errno));
    if (header)
        fprintf(f, "step\tepoch\tlr\ttrain_loss\tvalid_loss\tvalid_nll\tvalid_bleu\ttokens_per_s"
                   "\twall_s\n");
    fprintf(f, "%ld\t%d\t%.6g\t%.6f\t%.6f\t%.6f\t%.4f\t%.0f\t%.1f\n", t->ts.step, t->ts.epoch, lr,
            train_loss, v->loss, v->nll, v->bleu, tok_per_s, t->ts.train_seconds);
    if (fclose(f)) return mmt_fail(st, "cannot write %s: %s", p, strerror(errno));

    if (best && save(t, "checkpoint_best.safetensors", 0, st)) return MMT_ERR;
    if (save_numbered(t, st)) return MMT_ERR;
    if (t->patience > 0 && t->ts.bad_validations >= t->patience) {
        log_info("no better validation %s for %d validations: stopping early",
                 t->metric_is_loss ? "loss" : "BLEU", t->patience);
        *stop = 1;
    }
    return MMT_OK;
}

static int train_loop(trainer *t, mmt_status *st) {
    const long nb = t->plan.n_batches;
    double t_start = mmt_now(), t_log = t_start, seconds0 = t->ts.train_seconds;
    double log_loss = 0.0, log_nll = 0.0, log_gnorm = 0.0;
    long log_tok = 0, log_updates = 0, run_tok = 0, run_updates = 0;
    int stop = 0;
    float *grads = model_grads(t->m);
    size_t np = model_num_params(t->m);
    const long per_epoch = (nb + t->update_freq - 1) / t->update_freq;
    long total_updates = t->max_updates > 0 ? t->max_updates : (long)t->max_epochs * per_epoch;
    batch_plan_shuffle(&t->plan, t->seed, t->ts.epoch);

    while (!stop) {
        if (t->max_updates > 0 && t->ts.step >= t->max_updates) break;
        if (t->max_epochs > 0 && t->ts.epoch > t->max_epochs) break;

        /* one update: update_freq batches of this epoch, gradients summed */
        model_zero_grads(t->m);
        double loss = 0.0, nll = 0.0;
        long ntok = 0;
        int micro = 0;
        for (; micro < t->update_freq && t->ts.batch_in_epoch < nb; micro++) {
            mmt_batch b;
            long k = t->ts.batch_in_epoch++;
            batch_fill(&t->buf, &t->train, &t->plan, k, &b);
            attach_images(t, &t->timg, &t->train, &t->plan, k, &b);
            uint64_t dropout_step = (uint64_t)t->ts.step * t->update_freq + micro;
            xent_result x = model_forward(t->m, &b, 1, dropout_step);
            if (!isfinite(x.loss))
                return mmt_fail(st, "step %ld (epoch %d, batch %ld): the loss is %s; stopping "
                                "without writing a checkpoint (try a lower train.lr or "
                                "train.clip_norm)", t->ts.step + 1, t->ts.epoch, k,
                                isnan(x.loss) ? "NaN" : "infinite");
            model_backward(t->m, &b, 1.0f); /* gradient of the sum; divided below */
            loss += x.loss;
            nll += x.nll;
            ntok += x.ntokens;
        }
        grad_scale(grads, np, 1.0f / (float)(ntok > 0 ? ntok : 1));
        double gnorm = grad_norm(grads, np);
        if (!isfinite(gnorm))
            return mmt_fail(st, "step %ld (epoch %d): the gradient norm is not finite; stopping "
                            "without writing a checkpoint", t->ts.step + 1, t->ts.epoch);
        if (t->clip > 0.0f && gnorm > t->clip) grad_scale(grads, np, (float)(t->clip / gnorm));
        double lr = lr_at(t, t->ts.step + 1);
        adam_step(&t->adam, model_params(t->m), grads, (float)lr);
        t->ts.step++;
        t->ts.epoch_loss += loss;
        t->ts.epoch_nll += nll;
        t->ts.epoch_tokens += ntok;
        fprintf(t->steps, "%ld\t%d\t%.9g\t%.9g\t%ld\t%.6g\t%.6g\n", t->ts.step, t->ts.epoch,
                loss / ntok, nll / ntok, ntok, gnorm, lr);

        /* progress line */
        log_loss += loss, log_nll += nll, log_tok += ntok, log_gnorm += gnorm, log_updates++;
        run_tok += ntok;
        run_updates++;
        double now = mmt_now();
        t->ts.train_seconds = seconds0 + (now - t_start);
        if (t->ts.step % t->log_every == 0) {
            double tps = log_tok / (now - t_log + 1e-9);
            double eta = total_updates > t->ts.step && run_updates > 0
                             ? (total_updates - t->ts.step) * (now - t_start) / run_updates
                             : 0.0;
            log_info("step %ld | epoch %d | lr %.3g | loss %.4f | nll %.4f | ppl %.2f | gnorm "
                     "%.3f | %.0f tok/s | %.0f s | ETA %.0f s",
                     t->ts.step, t->ts.epoch, lr, log_loss / log_tok, log_nll / log_tok,
                     exp(log_nll / log_tok), log_gnorm / log_updates, tps, t->ts.train_seconds,
                     eta);
            fflush(t->steps);
            log_loss = log_nll = log_gnorm = 0.0;
            log_tok = log_updates = 0;
            t_log = now;
        }

        /* validation (with a numbered checkpoint) at the end of an epoch or
         * every N updates, and at the end of the run */
        int end_of_epoch = t->ts.batch_in_epoch >= nb;
        int last = (t->max_updates > 0 && t->ts.step >= t->max_updates) ||
                   (end_of_epoch && t->max_epochs > 0 && t->ts.epoch >= t->max_epochs);
        int due = (t->validate_every > 0 ? t->ts.step % t->validate_every == 0 : end_of_epoch) ||
                  last;
        if (due) {
            valid_result v;
            if (validate(t, &v, st)) return MMT_ERR;
            double train_loss = t->ts.epoch_tokens ? t->ts.epoch_loss / t->ts.epoch_tokens : 0;
            double tps = run_tok / (mmt_now() - t_start + 1e-9);
            if (after_validation(t, &v, lr, train_loss, tps, &stop, st)) return MMT_ERR;
        }
        if (end_of_epoch) {
            log_info("epoch %d done: train loss %.4f over %ld target tokens", t->ts.epoch,
                     t->ts.epoch_loss / (t->ts.epoch_tokens ? t->ts.epoch_tokens : 1),
                     t->ts.epoch_tokens);
            t->ts.epoch++;
            t->ts.batch_in_epoch = 0;
            t->ts.epoch_loss = t->ts.epoch_nll = 0.0;
            t->ts.epoch_tokens = 0;
            batch_plan_shuffle(&t->plan, t->seed, t->ts.epoch);
        }

        /* the resumable checkpoint */
        int periodic = t->save_every > 0 && t->ts.step % t->save_every == 0;
        if (due || periodic || stop || stop_requested) {
            fflush(t->steps);
            if (save(t, "checkpoint_last.safetensors", 1, st)) return MMT_ERR;
        }
        if (stop_requested) {
            log_info("signal %d: saved checkpoint_last at step %ld; rerun the same command to "
                     "resume", (int)stop_requested, t->ts.step);
            return mmt_fail(st, "interrupted at step %ld", t->ts.step);
        }
    }
    log_info("training done: %ld updates, %d epochs, %.0f s", t->ts.step, t->ts.epoch - 1,
             t->ts.train_seconds);
    return average_last(t, st);
}

/* ---------------------------------------------------------------- main */

static void trainer_free(trainer *t) {
    if (t->steps) fclose(t->steps);
    model_free(t->m);
    adam_free(&t->adam);
    batch_buf_free(&t->buf);
    batch_plan_free(&t->plan);
    batch_plan_free(&t->vplan);
    pair_corpus_free(&t->train);
    pair_corpus_free(&t->valid);
    data_lines_free(&t->vsrc_lines);
    data_lines_free(&t->vref_lines);
    imageset_close(&t->timg);
    imageset_close(&t->vimg);
    free(t->imgbuf);
    free(t->imglines);
    spm_free(t->spm);
    free(t->spm_bytes);
    free(t->recipe_json);
    recipe_free(t->r);
}

int train_run(const train_args *a, mmt_status *st) {
    trainer t = {0};
    int rc = MMT_ERR;
    t.r = recipe_load(a->recipe, a->sets, a->nsets, st);
    if (!t.r) return MMT_ERR;
    const recipe *r = t.r;

    /* the run folder, the resolved recipe (printed and saved) */
    snprintf(t.dir, sizeof t.dir, "%s", recipe_get_string(r, "output"));
    t.recipe_json = recipe_to_json(r);
    fprintf(stderr, "%s\n", t.recipe_json);
    char p[1100];
    run_path(&t, "recipe.json", p, sizeof p);
    if (mkdirs(t.dir, st) || write_text(p, t.recipe_json, st)) goto done;

    mmt_set_threads(a->threads > 0 ? a->threads : recipe_get_int(r, "threads"));
    mmt_set_ftz();
    t.seed = (uint64_t)recipe_get_int(r, "seed");
    t.update_freq = recipe_get_int(r, "train.update_freq");
    t.log_every = recipe_get_int(r, "train.log_every");
    t.validate_every = recipe_get_int(r, "train.validate_every");
    t.save_every = recipe_get_int(r, "train.save_every");
    t.max_updates = recipe_get_int(r, "train.max_updates");
    t.max_epochs = recipe_get_int(r, "train.max_epochs");
    t.patience = recipe_get_int(r, "train.patience");
    t.lr = recipe_get_float(r, "train.lr");
    t.warmup = recipe_get_int(r, "train.warmup_updates");
    t.warmup_init_lr = recipe_get_float(r, "train.warmup_init_lr");
    t.inverse_sqrt = !strcmp(recipe_get_string(r, "train.lr_scheduler"), "inverse_sqrt");
    t.clip = (float)recipe_get_float(r, "train.clip_norm");
    t.metric_is_loss = !strcmp(recipe_get_string(r, "decode.metric"), "loss");
    if (t.log_every < 1) t.log_every = 1;

    if (setup_data_paths(&t, st) || setup_tokenizer(&t, st) || setup_corpora(&t, st) ||
        setup_images(&t, st) || setup_model(&t, st))
        goto done;
    t.adam.n_update = model_num_trained(t.m); /* untrained data (image statistics) stay */
    log_info("model: %zu parameters, %d threads; %ld training batches per epoch of at most %d "
             "tokens, %d per update", model_num_trained(t.m), mmt_get_threads(),
             t.plan.n_batches, recipe_get_int(r, "train.max_tokens"), t.update_freq);

    run_path(&t, "steps.tsv", p, sizeof p);
    int header = !file_exists(p);
    t.steps = fopen(p, "a");
    if (!t.steps) {
        mmt_fail(st, "cannot write %s: %s", p, strerror(errno));
        goto done;
    }
    if (header) fprintf(t.steps, "step\tepoch\tloss\tnll\ttokens\tgnorm\tlr\n");

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = train_loop(&t, st);
done:
    trainer_free(&t);
    return rc;
}
