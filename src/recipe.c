/*
 * recipe.c - the recipe key table, loading (extends, presets, --set,
 * defaults, validation), getters, and the resolved recipe as JSON and as
 * documentation.
 */
#include "recipe.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* ============================================================ key table */

#define NOLIMIT 2147483647.0 /* INT_MAX: an int key without an upper bound */
#define SUBLAYERS "enc_self|enc_ffn|dec_self|dec_cross|dec_ffn|fusion"

/* Sections are contiguous, in the order recipes print and docs list them.
 * Model keys mirror what model_config_apply accepts (a preset's keys);
 * their defaults are transformer-tiny's, as model_config_default(). */
static const recipe_key keys[] = {
    /* top level */
    {"name", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "run name; \"\" = the recipe file's name without .json"},
    {"description", RECIPE_STRING, "\"\"", 0, 0, NULL, 0, "free text about the experiment"},
    {"extends", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "recipe this one starts from, relative to this file; consumed while loading"},
    {"output", RECIPE_STRING, "\"\"", 0, 0, NULL, 0, "run folder; \"\" = runs/NAME"},
    {"seed", RECIPE_INT, "1", 0, NOLIMIT, NULL, 0,
     "seed of initialisation, dropout, batching and tokenizer training"},
    {"threads", RECIPE_INT, "0", 0, 1024, NULL, 0,
     "threads for OpenMP and OpenBLAS; 0 = their default (OMP_NUM_THREADS or all cores)"},

    /* data */
    {"data.src_lang", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "source language code (en), for logs and file names"},
    {"data.tgt_lang", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "target language code (de), for logs and file names"},
    {"data.generate", RECIPE_STRING, "\"\"", 0, 0, "|demo", 0,
     "\"demo\": generate the built-in synthetic corpus into the run folder and ignore the "
     "data paths; \"\" = read the files below"},
    {"data.train.src", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "training source text, one sentence a line, plain or .gz"},
    {"data.train.tgt", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "training target text, line by line parallel to data.train.src"},
    {"data.train.images", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "the image of each training line: a .npy feature file ((N, D), (N, P, D) or (N, C, H, "
     "W), float32 or float16) or a list file of PNG paths, one a line; \"\" = none"},
    {"data.train.image_index", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "the 0-based image of each training line, one number a line, when lines share images; "
     "\"\" = line i has image i"},
    {"data.valid.src", RECIPE_STRING, "\"\"", 0, 0, NULL, 0, "validation source text"},
    {"data.valid.tgt", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "validation target text (the references of validation BLEU)"},
    {"data.valid.images", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "the image of each validation line, as data.train.images"},
    {"data.valid.image_index", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "the image of each validation line, as data.train.image_index"},
    {"data.test.names", RECIPE_STRINGS, "[]", 0, 0, NULL, 0,
     "names of the test sets (test_2016_flickr), as evaluation reports them"},
    {"data.test.src", RECIPE_STRINGS, "[]", 0, 0, NULL, 0,
     "source file of each test set, in the order of data.test.names"},
    {"data.test.tgt", RECIPE_STRINGS, "[]", 0, 0, NULL, 0,
     "reference file of each test set, in the order of data.test.names"},
    {"data.test.images", RECIPE_STRINGS, "[]", 0, 0, NULL, 0,
     "the images of each test set, as data.train.images, in the order of data.test.names"},
    {"data.test.image_index", RECIPE_STRINGS, "[]", 0, 0, NULL, 0,
     "the image index of each test set, as data.train.image_index; [] = none"},
    {"data.image_size", RECIPE_INT, "224", 1, 65536, NULL, 0,
     "PNG images are resized (bilinear) to this many pixels square"},
    {"data.image_patch", RECIPE_INT, "16", 1, 65536, NULL, 0,
     "and cut into squares of this many pixels, each a region of patch*patch*3 values for the "
     "model's learned patch embedding (image_size = image_patch: the whole image, one region)"},
    {"data.max_len", RECIPE_INT, "256", 1, 65536, NULL, 0,
     "training pairs with a side longer than this many subword tokens are left out"},
    {"data.scoring", RECIPE_STRING, "\"raw\"", 0, 0, "tok|raw", 0,
     "tok: the files are tokenised and lowercased (Multi30k's official tok files) and BLEU "
     "compares lowercased tokens, as multi-bleu.perl; raw: raw text, BLEU on detokenised "
     "output with sacreBLEU's 13a tokeniser"},

    /* tokenizer */
    {"tokenizer.type", RECIPE_STRING, "\"bpe\"", 0, 0, "bpe|unigram", 0,
     "SentencePiece model type of the joint source-target vocabulary"},
    {"tokenizer.vocab_size", RECIPE_INT, "10000", 8, 1000000, NULL, 0,
     "vocabulary size, the 4 special pieces included (a soft limit on small corpora)"},
    {"tokenizer.character_coverage", RECIPE_FLOAT, "1.0", 0.5, 1.0, NULL, 0,
     "share of characters the vocabulary covers; the rarest others become unk"},
    {"tokenizer.input_sentence_size", RECIPE_INT, "0", 0, NOLIMIT, NULL, 0,
     "training lines sampled to train the tokenizer; 0 = all"},
    {"tokenizer.model", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "an existing SentencePiece .model to use; \"\" = train one into the run folder"},

    /* model */
    {"model.preset", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "architecture preset: NAME for models/NAME.json, or a path ending in .json; its keys "
     "are the defaults of the model keys; \"\" = the defaults below (transformer-tiny)"},
    {"model.description", RECIPE_STRING, "\"\"", 0, 0, NULL, 0,
     "free text about the architecture (presets describe themselves here)"},
    {"model.encoder_layers", RECIPE_INT, "4", 1, 64, NULL, 0, "encoder layers"},
    {"model.decoder_layers", RECIPE_INT, "4", 1, 64, NULL, 0, "decoder layers"},
    {"model.d_model", RECIPE_INT, "128", 2, 16384, NULL, 0,
     "model width D, a multiple of model.heads"},
    {"model.ffn_dim", RECIPE_INT, "256", 1, 65536, NULL, 0, "hidden width F of the FFN"},
    {"model.heads", RECIPE_INT, "4", 1, 256, NULL, 0, "attention heads H"},
    {"model.norm", RECIPE_STRING, "\"post\"", 0, 0, "post|pre", 0,
     "post: layer norm after the residual sum (the original Transformer); pre: on the "
     "branch input"},
    {"model.activation", RECIPE_STRING, "\"relu\"", 0, 0, "relu", 0, "activation of the FFN"},
    {"model.dropout", RECIPE_FLOAT, "0.3", 0, 0.99, NULL, 0,
     "dropout on the embeddings and every sublayer output"},
    {"model.attention_dropout", RECIPE_FLOAT, "0.0", 0, 0.99, NULL, 0,
     "dropout on attention probabilities"},
    {"model.activation_dropout", RECIPE_FLOAT, "0.0", 0, 0.99, NULL, 0,
     "dropout on the FFN's hidden activation"},
    {"model.share_embeddings", RECIPE_BOOL, "true", 0, 0, "true", 0,
     "one joint vocabulary: source, target and output embeddings are one matrix"},
    {"model.positions", RECIPE_STRING, "\"sinusoidal\"", 0, 0, "sinusoidal", 0,
     "position encoding"},
    {"model.max_positions", RECIPE_INT, "1024", 8, 65536, NULL, 0,
     "longest sequence, in tokens, the position table covers"},
    {"model.label_smoothing", RECIPE_FLOAT, "0.1", 0, 0.99, NULL, 0,
     "eps of the label-smoothed cross entropy"},
    {"model.penal.enabled", RECIPE_BOOL, "false", 0, 0, NULL, 0,
     "train with the penal connection; false forces tau to 0, so a penal recipe and its "
     "baseline differ in this one line"},
    {"model.penal.tau", RECIPE_FLOAT, "3e-4", 0, 1000, NULL, 0,
     "strength: each chosen branch output z also gets the gradient of tau/2 times the "
     "squared norm of z (3e-4, the default, is the reference; used only when enabled)"},
    {"model.penal.sublayers", RECIPE_STRINGS,
     "[\"enc_self\", \"enc_ffn\", \"dec_self\", \"dec_cross\", \"dec_ffn\"]", 0, 0, SUBLAYERS,
     0, "sublayers that carry the penal connection"},
    {"model.penal.before_dropout", RECIPE_BOOL, "false", 0, 0, NULL, 0,
     "penalise the branch output before its dropout instead of after"},
    {"model.fusion", RECIPE_STRING, "\"none\"", 0, 0, "none|gated|selective", 0,
     "how the image enters the model: none = text only; gated = a gated sum of the pooled "
     "image on every encoder output (Wu et al. 2021); selective = one-head attention from the "
     "encoder outputs over the image regions, mixed in by a gate (Li et al. 2022)"},
    {"model.image_dropout", RECIPE_FLOAT, "0.0", 0, 0.99, NULL, 0,
     "dropout on the image input (features or pixels)"},
    {"model.image_hidden", RECIPE_INT, "0", 0, 65536, NULL, 0,
     "0 = each image region (patch or feature) is projected linearly to the model width; "
     "N > 0 = it first goes through a hidden layer of width N with ReLU, so the image "
     "pathway can itself tell apart what a linear map cannot (a two-layer patch embedding)"},
    {"model.image_norm", RECIPE_STRING, "\"none\"", 0, 0, "none|standard", 0,
     "how image values are scaled before the model projects them: none = as read (PNG pixels "
     "in 0..1, features as stored); standard = each value standardised with the mean and "
     "deviation of the training images (kept in the checkpoint), so the projection does not "
     "learn a large constant offset"},
    {"model.image_positions", RECIPE_BOOL, "true", 0, 0, NULL, 0,
     "add a learned position embedding to each projected image region"},

    /* train */
    {"train.max_tokens", RECIPE_INT, "4096", 1, 1000000, NULL, 0,
     "batch size: at most this many tokens on either side of a batch, padding included"},
    {"train.update_freq", RECIPE_INT, "1", 1, 1024, NULL, 0,
     "batches whose gradients are summed into one update"},
    {"train.optimizer", RECIPE_STRING, "\"adam\"", 0, 0, "adam", 0,
     "optimizer (Adam with decoupled weight decay)"},
    {"train.lr", RECIPE_FLOAT, "0.005", 0, 10, NULL, 0, "peak learning rate"},
    {"train.adam_betas", RECIPE_FLOATS, "[0.9, 0.98]", 0, 0.999999, NULL, 2,
     "Adam's beta1 and beta2"},
    {"train.adam_eps", RECIPE_FLOAT, "1e-8", 0, 1, NULL, 0,
     "Adam's eps, added after the square root"},
    {"train.weight_decay", RECIPE_FLOAT, "0.0", 0, 10, NULL, 0, "decoupled weight decay"},
    {"train.lr_scheduler", RECIPE_STRING, "\"inverse_sqrt\"", 0, 0, "inverse_sqrt|fixed", 0,
     "inverse_sqrt: linear warmup from warmup_init_lr to lr, then lr * sqrt(warmup / "
     "update); fixed: the same warmup, then lr"},
    {"train.warmup_updates", RECIPE_INT, "2000", 0, 10000000, NULL, 0,
     "updates of linear warmup; 0 = none"},
    {"train.warmup_init_lr", RECIPE_FLOAT, "1e-7", 0, 10, NULL, 0,
     "learning rate at the start of the warmup"},
    {"train.clip_norm", RECIPE_FLOAT, "0.0", 0, 1e6, NULL, 0,
     "clip the gradient to this L2 norm; 0 = off"},
    {"train.max_updates", RECIPE_INT, "8000", 0, NOLIMIT, NULL, 0,
     "stop after this many updates; 0 = no limit"},
    {"train.max_epochs", RECIPE_INT, "0", 0, 1000000, NULL, 0,
     "stop after this many epochs; 0 = no limit"},
    {"train.patience", RECIPE_INT, "0", 0, 1000000, NULL, 0,
     "stop after this many validations without a better decode.metric; 0 = off"},
    {"train.validate_every", RECIPE_INT, "0", 0, NOLIMIT, NULL, 0,
     "validate every this many updates; 0 = at the end of each epoch"},
    {"train.log_every", RECIPE_INT, "100", 1, NOLIMIT, NULL, 0,
     "print a progress line every this many updates"},
    {"train.save_every", RECIPE_INT, "0", 0, NOLIMIT, NULL, 0,
     "write a checkpoint every this many updates; 0 = at the end of each epoch"},
    {"train.keep_last", RECIPE_INT, "10", 1, 1000000, NULL, 0,
     "checkpoints kept, the most recent ones (the best one is kept besides)"},
    {"train.average_last", RECIPE_INT, "10", 0, 1000000, NULL, 0,
     "at the end, average the last this many checkpoints into one; 0 = off"},

    /* decode */
    {"decode.beam", RECIPE_INT, "5", 1, 256, NULL, 0, "beam size for the test sets"},
    {"decode.lenpen", RECIPE_FLOAT, "1.0", 0, 10, NULL, 0,
     "length penalty: finished hypotheses rank by score / length^lenpen"},
    {"decode.max_len_a", RECIPE_FLOAT, "1.2", 0, 100, NULL, 0,
     "longest output: max_len_a * source length + max_len_b tokens"},
    {"decode.max_len_b", RECIPE_INT, "10", 0, 10000, NULL, 0,
     "longest output: max_len_a * source length + max_len_b tokens"},
    {"decode.valid_beam", RECIPE_INT, "1", 1, 256, NULL, 0,
     "beam size of the validation BLEU; 1 = greedy"},
    {"decode.metric", RECIPE_STRING, "\"bleu\"", 0, 0, "bleu|loss", 0,
     "validation metric for early stopping and the best checkpoint: bleu (higher is "
     "better) or loss (lower is better)"},
};
#define NKEYS (int)(sizeof keys / sizeof keys[0])

/* Model keys that are the recipe's, not the model's: model_config_apply
 * never sees them. */
static const char *const recipe_only_model_keys[] = {
    "model.preset", "model.description", "model.penal.enabled",
};

struct recipe {
    char *path;           /* as given to recipe_load */
    cJSON *values[NKEYS]; /* resolved value of keys[i], owned */
};

int recipe_num_keys(void) { return NKEYS; }

const recipe_key *recipe_key_at(int i) {
    MMT_ASSERT(i >= 0 && i < NKEYS);
    return &keys[i];
}

static int key_index(const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].key, key)) return i;
    return -1;
}

const recipe_key *recipe_find_key(const char *key) {
    int i = key_index(key);
    return i < 0 ? NULL : &keys[i];
}

/* A section is a path some key lies under: "train", "model.penal". */
static int is_section(const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < NKEYS; i++)
        if (!strncmp(keys[i].key, path, n) && keys[i].key[n] == '.') return 1;
    return 0;
}

/* ========================================================== JSON paths */

/* The value at a dotted path, or NULL. */
static const cJSON *get_path(const cJSON *obj, const char *key) {
    char buf[256];
    MMT_ASSERT(strlen(key) < sizeof buf);
    snprintf(buf, sizeof buf, "%s", key);
    char *p = buf, *dot;
    while ((dot = strchr(p, '.'))) {
        *dot = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(obj, p);
        if (!cJSON_IsObject(obj)) return NULL;
        p = dot + 1;
    }
    return cJSON_GetObjectItemCaseSensitive(obj, p);
}

/* Puts item (owned from now on by obj) at a dotted path, creating the
 * objects on the way and replacing what was there. */
static void set_path(cJSON *obj, const char *key, cJSON *item) {
    char buf[256];
    MMT_ASSERT(strlen(key) < sizeof buf);
    snprintf(buf, sizeof buf, "%s", key);
    char *p = buf, *dot;
    while ((dot = strchr(p, '.'))) {
        *dot = '\0';
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, p);
        if (!child) child = cJSON_AddObjectToObject(obj, p);
        MMT_ASSERT(cJSON_IsObject(child));
        obj = child;
        p = dot + 1;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, p))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, p, item);
    else
        cJSON_AddItemToObject(obj, p, item);
}

/* Deep merge: over's keys replace base's, objects merge key by key, lists
 * are replaced whole. Consumes over. */
static void merge(cJSON *base, cJSON *over) {
    cJSON *it;
    while ((it = over->child)) {
        cJSON_DetachItemViaPointer(over, it);
        cJSON *old = cJSON_GetObjectItemCaseSensitive(base, it->string);
        if (cJSON_IsObject(old) && cJSON_IsObject(it))
            merge(old, it);
        else if (old)
            cJSON_ReplaceItemViaPointer(base, old, it);
        else
            cJSON_AddItemToObject(base, it->string, it);
    }
    cJSON_Delete(over);
}

/* ========================================================= suggestions */

/* Levenshtein distance of the first 127 bytes of a and b. */
static int edit_distance(const char *a, const char *b) {
    int row[128], na = (int)strlen(a), nb = (int)strlen(b);
    if (na > 127) na = 127;
    if (nb > 127) nb = 127;
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static const char *last_part(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

/* " (did you mean "train.lr"?)" for the nearest key, or "" when none is
 * near. A key moved to the wrong section ("train.beam") is one edit from
 * its real place ("decode.beam"). */
static void did_you_mean(const char *key, char *buf, size_t n) {
    int best = INT_MAX, at = -1;
    for (int i = 0; i < NKEYS; i++) {
        int d = edit_distance(key, keys[i].key);
        int moved = edit_distance(last_part(key), last_part(keys[i].key)) + 1;
        if (moved < d) d = moved;
        if (d < best) best = d, at = i;
    }
    int limit = (int)strlen(key) / 3;
    if (limit < 2) limit = 2;
    if (at >= 0 && best <= limit)
        snprintf(buf, n, " (did you mean \"%s\"?)", keys[at].key);
    else
        buf[0] = '\0';
}

static int unknown_key(mmt_status *st, const char *where, const char *key) {
    char hint[160];
    did_you_mean(key, hint, sizeof hint);
    return mmt_fail(st, "%s: unknown key \"%s\"%s", where, key, hint);
}

/* ====================================================== checking values */

/* What a message says was found: "4k" quoted, 0, true, a list. */
static void describe(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsArray(v)) {
        snprintf(buf, n, "a list");
    } else if (cJSON_IsObject(v)) {
        snprintf(buf, n, "an object");
    } else if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%.15g", v->valuedouble);
    } else if (cJSON_IsString(v)) {
        char *s = cJSON_PrintUnformatted(v);
        if (strlen(s) > 60) strcpy(s + 56, "...\"");
        snprintf(buf, n, "%s", s);
        cJSON_free(s);
    } else if (cJSON_IsBool(v)) {
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(buf, n, "null");
    }
}

/* Whether s is one of the '|'-separated choices ("|demo" allows ""). */
static int choice_ok(const char *choices, const char *s) {
    size_t len = strlen(s);
    for (const char *p = choices;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, s, n)) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

/* The choices for a message: one of "bpe", "unigram" (bools unquoted). */
static void choices_text(const recipe_key *k, char *buf, size_t n) {
    int quote = k->type != RECIPE_BOOL, many = strchr(k->choices, '|') != NULL;
    size_t used = (size_t)snprintf(buf, n, "%s", many ? "one of " : "");
    for (const char *p = k->choices; used < n;) {
        const char *bar = strchr(p, '|');
        int len = bar ? (int)(bar - p) : (int)strlen(p);
        used += (size_t)snprintf(buf + used, n - used, "%s%s%.*s%s", p == k->choices ? "" : ", ",
                                 quote ? "\"" : "", len, p, quote ? "\"" : "");
        if (!bar) break;
        p = bar + 1;
    }
}

/* The name of a value in messages: "train.lr", or "train.adam_betas"[1]. */
static void value_name(const recipe_key *k, int idx, char *buf, size_t n) {
    if (idx < 0)
        snprintf(buf, n, "\"%s\"", k->key);
    else
        snprintf(buf, n, "\"%s\"[%d]", k->key, idx);
}

static int check_number(const recipe_key *k, const cJSON *v, int integer, int idx,
                        const char *where, mmt_status *st) {
    char name[160], got[96];
    value_name(k, idx, name, sizeof name);
    describe(v, got, sizeof got);
    if (!cJSON_IsNumber(v) || (integer && v->valuedouble != floor(v->valuedouble)))
        return mmt_fail(st, "%s: %s: expected %s, got %s", where, name,
                        integer ? "an integer" : "a number", got);
    if (v->valuedouble < k->min || v->valuedouble > k->max)
        return mmt_fail(st, "%s: %s: expected %.15g..%.15g, got %s", where, name, k->min,
                        k->max, got);
    return MMT_OK;
}

/* s, the text of v, must be one of k's choices when it has any. */
static int check_choice(const recipe_key *k, const cJSON *v, const char *s, int idx,
                        const char *where, mmt_status *st) {
    if (!k->choices || choice_ok(k->choices, s)) return MMT_OK;
    char name[160], got[96], expected[256];
    value_name(k, idx, name, sizeof name);
    describe(v, got, sizeof got);
    choices_text(k, expected, sizeof expected);
    return mmt_fail(st, "%s: %s: expected %s, got %s", where, name, expected, got);
}

/* Type, range and allowed values of one value for key k; where names the
 * file (or --set) it came from. */
static int check_value(const recipe_key *k, const cJSON *v, const char *where,
                       mmt_status *st) {
    char name[160], got[96];
    value_name(k, -1, name, sizeof name);
    describe(v, got, sizeof got);
    switch (k->type) {
    case RECIPE_INT:
        return check_number(k, v, 1, -1, where, st);
    case RECIPE_FLOAT:
        return check_number(k, v, 0, -1, where, st);
    case RECIPE_BOOL:
        if (!cJSON_IsBool(v))
            return mmt_fail(st, "%s: %s: expected true or false, got %s", where, name, got);
        return check_choice(k, v, cJSON_IsTrue(v) ? "true" : "false", -1, where, st);
    case RECIPE_STRING:
        if (!cJSON_IsString(v))
            return mmt_fail(st, "%s: %s: expected a string, got %s", where, name, got);
        return check_choice(k, v, v->valuestring, -1, where, st);
    case RECIPE_STRINGS:
    case RECIPE_FLOATS: {
        const char *what = k->type == RECIPE_STRINGS ? "strings" : "numbers";
        if (!cJSON_IsArray(v))
            return mmt_fail(st, "%s: %s: expected a list of %s, got %s", where, name, what, got);
        int n = cJSON_GetArraySize(v);
        if (k->len && n != k->len)
            return mmt_fail(st, "%s: %s: expected a list of %d %s, got %d", where, name, k->len,
                            what, n);
        int i = 0;
        const cJSON *el;
        cJSON_ArrayForEach(el, v) {
            if (k->type == RECIPE_FLOATS) {
                if (check_number(k, el, 0, i, where, st)) return MMT_ERR;
            } else if (!cJSON_IsString(el)) {
                value_name(k, i, name, sizeof name);
                describe(el, got, sizeof got);
                return mmt_fail(st, "%s: %s: expected a string, got %s", where, name, got);
            } else if (check_choice(k, el, el->valuestring, i, where, st)) {
                return MMT_ERR;
            }
            i++;
        }
        return MMT_OK;
    }
    }
    MMT_ASSERT(0 && "unknown recipe_type");
    return MMT_ERR;
}

/* Every key of obj, a recipe or part of one under prefix, must be in the
 * table with a valid value; where names the file. */
static int check_tree(const cJSON *obj, const char *prefix, const char *where,
                      mmt_status *st) {
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string))
                return mmt_fail(st, "%s: \"%s\": given twice", where, path);

        const recipe_key *k = recipe_find_key(path);
        if (k) {
            if (check_value(k, it, where, st)) return MMT_ERR;
        } else if (is_section(path)) {
            char got[96];
            describe(it, got, sizeof got);
            if (!cJSON_IsObject(it))
                return mmt_fail(st, "%s: \"%s\": expected an object, got %s", where, path, got);
            if (check_tree(it, path, where, st)) return MMT_ERR;
        } else if (cJSON_IsObject(it) && it->child) {
            /* an unknown section: name the first key under it, whose
             * suggestion is more likely the key that was meant */
            if (check_tree(it, path, where, st)) return MMT_ERR;
        } else {
            return unknown_key(st, where, path);
        }
    }
    return MMT_OK;
}

/* ======================================================= reading files */

/* Parses a JSON object from path; NULL with "path:line: invalid JSON". */
static cJSON *parse_file(const char *path, mmt_status *st) {
    char *text = mmt_read_file(path, NULL, st);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        // the line where parsing stopped, quoted without its indent
        int line = 1;
        const char *start = text;
        if (!end) end = text;
        for (const char *p = text; p < end && *p; p++)
            if (*p == '\n') line++, start = p + 1;
        start += strspn(start, " \t");
        int len = (int)strcspn(start, "\r\n");
        mmt_fail(st, "%s:%d: invalid JSON: %.*s%s", path, line, len > 60 ? 60 : len, start,
                 len > 60 ? "..." : "");
    } else if (!cJSON_IsObject(root)) {
        mmt_fail(st, "%s: expected a JSON object ({...}) at the top", path);
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    return root;
}

/* rel taken relative to the folder of file (unless absolute). Caller frees. */
static char *join_dir(const char *file, const char *rel) {
    const char *slash = strrchr(file, '/');
    if (rel[0] == '/' || !slash) return strdup(rel);
    size_t n = (size_t)(slash - file) + 1, m = strlen(rel);
    char *out = mmt_malloc(n + m + 1);
    memcpy(out, file, n);
    memcpy(out + n, rel, m + 1);
    return out;
}

/* ============================================================ presets */

/* "known: a, b" for the *.json files in dir, sorted. */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_presets(const char *dir, char *buf, size_t n) {
    char *names[64];
    int count = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && count < 64 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json"))
            names[count++] = strndup(e->d_name, len - 5);
    }
    if (d) closedir(d);
    qsort(names, (size_t)count, sizeof names[0], cmp_str);
    size_t used = (size_t)snprintf(buf, n, "known:");
    for (int i = 0; i < count; i++) {
        if (used < n) used += (size_t)snprintf(buf + used, n - used, " %s", names[i]);
        free(names[i]);
    }
    if (!count) snprintf(buf, n, "the folder has no presets");
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The file of preset value v as named in file `from` (where, in messages):
 * a path ending in .json is relative to rel_base's folder (the current
 * folder when rel_base is NULL); a NAME is models/NAME.json in the first
 * folder holding models/ on the way up from `from`. *out is NULL for "". */
static int resolve_preset(const char *v, const char *from, const char *rel_base,
                          const char *where, char **out, mmt_status *st) {
    *out = NULL;
    size_t len = strlen(v);
    if (!len) return MMT_OK;
    if (len > 5 && !strcmp(v + len - 5, ".json")) {
        char *path = rel_base ? join_dir(rel_base, v) : strdup(v);
        if (access(path, R_OK) != 0) {
            mmt_fail(st, "%s: \"model.preset\": cannot open %s: %s", where, path,
                     strerror(errno));
            free(path);
            return MMT_ERR;
        }
        *out = path;
        return MMT_OK;
    }
    if (strchr(v, '/'))
        return mmt_fail(st, "%s: \"model.preset\": expected a preset name or a path ending "
                        "in .json, got \"%s\"", where, v);

    // walk up from the folder of `from` to the first one holding models/
    char dir[PATH_MAX], models[PATH_MAX + 16];
    if (!realpath(from, dir))
        return mmt_fail(st, "%s: cannot resolve the path: %s", from, strerror(errno));
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) break;
        if (slash == dir) slash[1] = '\0'; else *slash = '\0';
        snprintf(models, sizeof models, "%s%smodels", dir, slash == dir ? "" : "/");
        if (is_dir(models)) break;
        if (slash == dir) {
            return mmt_fail(st, "%s: \"model.preset\": no models/ folder on the way up from "
                            "%s for preset \"%s\"", where, from, v);
        }
    }
    size_t n = strlen(models) + len + 8;
    char *path = mmt_malloc(n);
    snprintf(path, n, "%s/%s.json", models, v);
    if (access(path, R_OK) != 0) {
        char known[512];
        list_presets(models, known, sizeof known);
        mmt_fail(st, "%s: \"model.preset\": no preset \"%s\" in %s (%s)", where, v, models,
                 known);
        free(path);
        return MMT_ERR;
    }
    *out = path;
    return MMT_OK;
}

/* A preset file as the model section of a recipe: {"model": {...}}. */
static cJSON *load_preset(const char *path, mmt_status *st) {
    cJSON *preset = parse_file(path, st);
    if (!preset) return NULL;
    if (cJSON_GetObjectItemCaseSensitive(preset, "preset")) {
        cJSON_Delete(preset);
        mmt_fail(st, "%s: \"preset\": a preset cannot name another preset", path);
        return NULL;
    }
    cJSON *wrapped = cJSON_CreateObject();
    cJSON_AddItemToObject(wrapped, "model", preset);
    if (check_tree(wrapped, "", path, st)) {
        cJSON_Delete(wrapped);
        return NULL;
    }
    return wrapped;
}

/* ====================================================== extends chain */

#define MAX_CHAIN 32

typedef struct {
    char *real[MAX_CHAIN];  /* canonical paths of the files being read */
    char *shown[MAX_CHAIN]; /* the same paths as messages show them */
    int depth;
    int preset_named;       /* a file (or --set) has named model.preset */
    char *preset;           /* its file; NULL for none */
} loader;

static void loader_free(loader *L) {
    for (int i = 0; i < L->depth; i++) free(L->real[i]), free(L->shown[i]);
    free(L->preset);
}

/* "a.json -> b.json -> a.json": the chain from entry i back to path. */
static int cycle_error(const loader *L, int i, const char *path, mmt_status *st) {
    char chain[768];
    size_t used = 0;
    for (int j = i; j < L->depth && used < sizeof chain; j++)
        used += (size_t)snprintf(chain + used, sizeof chain - used, "%s -> ", L->shown[j]);
    if (used < sizeof chain) snprintf(chain + used, sizeof chain - used, "%s", path);
    return mmt_fail(st, "%s: \"extends\": cycle: %s", L->shown[L->depth - 1], chain);
}

/* Reads path and, through "extends", the files it builds on, base first;
 * returns the merged tree without "extends". from is the extending file
 * (NULL for the recipe itself). */
static cJSON *load_chain(loader *L, const char *path, const char *from, mmt_status *st) {
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        if (from)
            mmt_fail(st, "%s: \"extends\": cannot open %s: %s", from, path, strerror(errno));
        else
            mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    for (int i = 0; i < L->depth; i++)
        if (!strcmp(L->real[i], real)) {
            cycle_error(L, i, path, st);
            return NULL;
        }
    if (L->depth == MAX_CHAIN) {
        mmt_fail(st, "%s: \"extends\": more than %d files in the chain", from, MAX_CHAIN);
        return NULL;
    }
    L->real[L->depth] = strdup(real);
    L->shown[L->depth] = strdup(path);
    L->depth++;

    // this file on its own: valid keys, and the preset it names
    cJSON *tree = parse_file(path, st);
    if (!tree || check_tree(tree, "", path, st)) goto fail;
    const cJSON *preset = get_path(tree, "model.preset");
    if (preset && !L->preset_named) {
        L->preset_named = 1;
        if (resolve_preset(preset->valuestring, path, path, path, &L->preset, st)) goto fail;
    }

    // the file it extends, with this one merged over it
    cJSON *ext = cJSON_DetachItemFromObjectCaseSensitive(tree, "extends");
    if (ext && ext->valuestring[0]) {
        char *base_path = join_dir(path, ext->valuestring);
        cJSON *base = load_chain(L, base_path, path, st);
        free(base_path);
        if (!base) {
            cJSON_Delete(ext);
            goto fail;
        }
        merge(base, tree);
        tree = base;
    }
    cJSON_Delete(ext);

    L->depth--;
    free(L->real[L->depth]);
    free(L->shown[L->depth]);
    return tree;

fail:
    cJSON_Delete(tree);
    return NULL; /* the chain is freed by loader_free */
}

/* ================================================================ --set */

/* Applies one "a.b.c=value" to tree; recipe_path is the recipe file, from
 * which a preset NAME is looked up. */
static int apply_set(loader *L, cJSON *tree, const char *recipe_path, const char *set,
                     mmt_status *st) {
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return mmt_fail(st, "--set %s: expected key=value", set);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    const char *text = eq + 1;
    const recipe_key *k = recipe_find_key(key);
    if (!k) return unknown_key(st, "--set", key);
    if (!strcmp(key, "extends"))
        return mmt_fail(st, "--set: \"extends\": can only be given in a recipe file");

    // JSON when it parses as JSON; strings as written; else a plain string
    cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
    char *end = NULL;
    double num = strtod(text, &end);
    if (!v && (k->type == RECIPE_INT || k->type == RECIPE_FLOAT) && text[0] && !*end &&
        isfinite(num))
        v = cJSON_CreateNumber(num);
    if (!v || (k->type == RECIPE_STRING && !cJSON_IsString(v))) {
        cJSON_Delete(v);
        v = cJSON_CreateString(text);
    }
    if (check_value(k, v, "--set", st)) {
        cJSON_Delete(v);
        return MMT_ERR;
    }
    if (!strcmp(key, "model.preset")) {
        free(L->preset);
        L->preset_named = 1;
        if (resolve_preset(v->valuestring, recipe_path, NULL, "--set", &L->preset, st)) {
            cJSON_Delete(v);
            return MMT_ERR;
        }
    }
    set_path(tree, key, v);
    return MMT_OK;
}

/* ========================================================== cross checks */

/* Unset name: the recipe file's name without .json; unset output: runs/NAME. */
static int fill_run_name(recipe *r, mmt_status *st) {
    int in = key_index("name"), io = key_index("output");
    if (!r->values[in]->valuestring[0]) {
        const char *slash = strrchr(r->path, '/');
        const char *base = slash ? slash + 1 : r->path;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".json")) n -= 5;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)n, base);
        cJSON_Delete(r->values[in]);
        r->values[in] = cJSON_CreateString(stem);
    }
    const char *name = r->values[in]->valuestring;
    size_t ok = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    if (name[ok] || name[0] == '.')
        return mmt_fail(st, "%s: \"name\": expected letters, digits, '.', '-' or '_' (not "
                        "starting with '.'), got \"%s\"", r->path, name);
    if (!r->values[io]->valuestring[0]) {
        char out[300];
        snprintf(out, sizeof out, "runs/%s", name);
        cJSON_Delete(r->values[io]);
        r->values[io] = cJSON_CreateString(out);
    }
    return MMT_OK;
}

/* Rules that tie keys together; messages name the recipe file. */
static int check_recipe(const recipe *r, mmt_status *st) {
    const char *where = r->path;

    // data: files unless generated; one file per test set
    if (!recipe_get_string(r, "data.generate")[0]) {
        static const char *const need[] = {"data.train.src", "data.train.tgt",
                                           "data.valid.src", "data.valid.tgt"};
        for (int i = 0; i < 4; i++)
            if (!recipe_get_string(r, need[i])[0])
                return mmt_fail(st, "%s: \"%s\": required unless data.generate is \"demo\"",
                                where, need[i]);
    }
    int ntest = recipe_get_list_len(r, "data.test.names");
    static const char *const per_test[] = {"data.test.src", "data.test.tgt", "data.test.images",
                                           "data.test.image_index"};
    for (int i = 0; i < 4; i++) {
        int n = recipe_get_list_len(r, per_test[i]);
        if (n != ntest && !(i >= 2 && n == 0))
            return mmt_fail(st, "%s: \"%s\": expected %d files, one per data.test.names, got %d",
                            where, per_test[i], ntest, n);
    }
    if (recipe_get_int(r, "data.max_len") >= recipe_get_int(r, "model.max_positions"))
        return mmt_fail(st, "%s: \"data.max_len\": expected less than model.max_positions (%d), "
                        "got %d", where, recipe_get_int(r, "model.max_positions"),
                        recipe_get_int(r, "data.max_len"));

    // images: a fusion needs the training and validation images, and images a fusion
    if (strcmp(recipe_get_string(r, "model.fusion"), "none")) {
        static const char *const need[] = {"data.train.images", "data.valid.images"};
        for (int i = 0; i < 2; i++)
            if (!recipe_get_string(r, need[i])[0])
                return mmt_fail(st, "%s: \"%s\": required when model.fusion is \"%s\"", where,
                                need[i], recipe_get_string(r, "model.fusion"));
        if (recipe_get_int(r, "data.image_size") % recipe_get_int(r, "data.image_patch"))
            return mmt_fail(st, "%s: \"data.image_size\": expected a multiple of "
                            "data.image_patch (%d), got %d", where,
                            recipe_get_int(r, "data.image_patch"),
                            recipe_get_int(r, "data.image_size"));
    } else if (recipe_get_string(r, "data.train.images")[0]) {
        return mmt_fail(st, "%s: \"data.train.images\": given, but model.fusion is \"none\" "
                        "(set model.fusion to gated or selective, or remove the images)", where);
    }

    // model: heads divide the width; an enabled penal connection does something
    int D = recipe_get_int(r, "model.d_model"), H = recipe_get_int(r, "model.heads");
    if (D % H)
        return mmt_fail(st, "%s: \"model.d_model\": expected a multiple of model.heads (%d), "
                        "got %d", where, H, D);
    if (recipe_get_bool(r, "model.penal.enabled")) {
        if (recipe_get_float(r, "model.penal.tau") == 0.0)
            return mmt_fail(st, "%s: \"model.penal.tau\": expected more than 0 when "
                            "model.penal.enabled is true, got 0", where);
        if (!recipe_get_list_len(r, "model.penal.sublayers"))
            return mmt_fail(st, "%s: \"model.penal.sublayers\": expected at least one when "
                            "model.penal.enabled is true, got []", where);
    }

    // train: the run ends; averaged checkpoints still exist
    if (!recipe_get_int(r, "train.max_updates") && !recipe_get_int(r, "train.max_epochs") &&
        !recipe_get_int(r, "train.patience"))
        return mmt_fail(st, "%s: \"train.max_updates\": the run would never stop: set "
                        "train.max_updates, train.max_epochs or train.patience", where);
    if (recipe_get_int(r, "train.average_last") > recipe_get_int(r, "train.keep_last"))
        return mmt_fail(st, "%s: \"train.average_last\": expected at most train.keep_last (%d), "
                        "got %d", where, recipe_get_int(r, "train.keep_last"),
                        recipe_get_int(r, "train.average_last"));

    // whatever else the model refuses
    model_config cfg;
    return recipe_model_config(r, &cfg, st);
}

/* ============================================================ loading */

recipe *recipe_load(const char *path, const char *const *sets, int nsets, mmt_status *st) {
    loader L = {0};
    recipe *r = NULL;

    // the files, base first, then the --set overrides in order
    cJSON *tree = load_chain(&L, path, NULL, st);
    if (!tree) goto done;
    for (int i = 0; i < nsets; i++)
        if (apply_set(&L, tree, path, sets[i], st)) goto done;

    // the preset's keys are the defaults of the model keys
    if (L.preset) {
        cJSON *base = load_preset(L.preset, st);
        if (!base) goto done;
        merge(base, tree);
        tree = base;
    }

    // every key: its value, else the table's default (which must be valid)
    r = mmt_calloc(1, sizeof *r);
    r->path = strdup(path);
    for (int i = 0; i < NKEYS; i++) {
        const cJSON *v = get_path(tree, keys[i].key);
        if (v) {
            r->values[i] = cJSON_Duplicate(v, 1);
        } else {
            r->values[i] = cJSON_Parse(keys[i].def);
            MMT_ASSERT(r->values[i] && check_value(&keys[i], r->values[i], "default", NULL) == 0);
        }
    }
    if (fill_run_name(r, st) || check_recipe(r, st)) {
        recipe_free(r);
        r = NULL;
    }

done:
    cJSON_Delete(tree);
    loader_free(&L);
    return r;
}

void recipe_free(recipe *r) {
    if (!r) return;
    for (int i = 0; i < NKEYS; i++) cJSON_Delete(r->values[i]);
    free(r->path);
    free(r);
}

const char *recipe_path(const recipe *r) { return r->path; }

/* ============================================================ getters */

/* The value of key, which the table must hold with type t (a bug if not). */
static const cJSON *typed(const recipe *r, const char *key, recipe_type t, recipe_type t2) {
    int i = key_index(key);
    if (i < 0 || (keys[i].type != t && keys[i].type != t2))
        fprintf(stderr, "recipe: \"%s\": %s\n", key,
                i < 0 ? "not in the key table" : "read with the getter of another type");
    MMT_ASSERT(i >= 0 && (keys[i].type == t || keys[i].type == t2));
    return r->values[i];
}

int recipe_get_int(const recipe *r, const char *key) {
    return (int)typed(r, key, RECIPE_INT, RECIPE_INT)->valuedouble;
}

double recipe_get_float(const recipe *r, const char *key) {
    return typed(r, key, RECIPE_FLOAT, RECIPE_FLOAT)->valuedouble;
}

int recipe_get_bool(const recipe *r, const char *key) {
    return cJSON_IsTrue(typed(r, key, RECIPE_BOOL, RECIPE_BOOL));
}

const char *recipe_get_string(const recipe *r, const char *key) {
    return typed(r, key, RECIPE_STRING, RECIPE_STRING)->valuestring;
}

int recipe_get_list_len(const recipe *r, const char *key) {
    return cJSON_GetArraySize(typed(r, key, RECIPE_STRINGS, RECIPE_FLOATS));
}

const char *recipe_get_list_string(const recipe *r, const char *key, int i) {
    const cJSON *list = typed(r, key, RECIPE_STRINGS, RECIPE_STRINGS);
    MMT_ASSERT(i >= 0 && i < cJSON_GetArraySize(list));
    return cJSON_GetArrayItem(list, i)->valuestring;
}

double recipe_get_list_float(const recipe *r, const char *key, int i) {
    const cJSON *list = typed(r, key, RECIPE_FLOATS, RECIPE_FLOATS);
    MMT_ASSERT(i >= 0 && i < cJSON_GetArraySize(list));
    return cJSON_GetArrayItem(list, i)->valuedouble;
}

/* ========================================================= model config */

static int recipe_only(const char *key) {
    for (size_t i = 0; i < sizeof recipe_only_model_keys / sizeof recipe_only_model_keys[0]; i++)
        if (!strcmp(key, recipe_only_model_keys[i])) return 1;
    return 0;
}

/* The resolved model keys already hold the preset's values overridden by
 * the recipe's, so applying them once onto the defaults is the same as
 * applying the preset file, then the recipe's keys. */
int recipe_model_config(const recipe *r, model_config *cfg, mmt_status *st) {
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i < NKEYS; i++)
        if (!strncmp(keys[i].key, "model.", 6) && !recipe_only(keys[i].key))
            set_path(obj, keys[i].key + 6, cJSON_Duplicate(r->values[i], 1));
    if (!recipe_get_bool(r, "model.penal.enabled"))
        set_path(obj, "penal.tau", cJSON_CreateNumber(0.0));

    *cfg = model_config_default();
    int rc = model_config_apply(cfg, obj, r->path, st);
    cfg->seed = (uint64_t)recipe_get_int(r, "seed");
    cJSON_Delete(obj);
    return rc;
}

/* ============================================================ output */

char *recipe_to_json(const recipe *r) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].key, "extends"))
            set_path(root, keys[i].key, cJSON_Duplicate(r->values[i], 1));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);

    // two spaces per indent and one after a colon: cJSON writes tabs (and
    // escapes those inside strings, so every tab here is layout)
    size_t tabs = 0, n = 0;
    for (; text[n]; n++) tabs += text[n] == '\t';
    char *out = mmt_malloc(n + tabs + 2);
    char *o = out;
    for (const char *p = text; *p; p++) {
        if (*p != '\t') *o++ = *p;
        else if (p > text && p[-1] == ':') *o++ = ' ';
        else *o++ = ' ', *o++ = ' ';
    }
    *o++ = '\n';
    *o = '\0';
    cJSON_free(text);
    return out;
}

static const char *type_name(const recipe_key *k) {
    switch (k->type) {
    case RECIPE_INT: return "int";
    case RECIPE_FLOAT: return "float";
    case RECIPE_BOOL: return "bool";
    case RECIPE_STRING: return "string";
    case RECIPE_STRINGS: return "string list";
    case RECIPE_FLOATS: return "float list";
    }
    return "?";
}

/* The "allowed" cell: a range, or the choices. */
static void allowed_text(const recipe_key *k, char *buf, size_t n) {
    buf[0] = '\0';
    if (k->type == RECIPE_INT || k->type == RECIPE_FLOAT || k->type == RECIPE_FLOATS) {
        if (k->max == NOLIMIT)
            snprintf(buf, n, "%.15g or more", k->min);
        else
            snprintf(buf, n, "%.15g..%.15g", k->min, k->max);
        if (k->len) {
            size_t used = strlen(buf);
            snprintf(buf + used, n - used, ", %d of them", k->len);
        }
    } else if (k->choices) {
        size_t used = 0;
        for (const char *p = k->choices; used < n;) {
            const char *bar = strchr(p, '|');
            int len = bar ? (int)(bar - p) : (int)strlen(p);
            used += (size_t)snprintf(buf + used, n - used, "%s`%.*s`", p == k->choices ? "" : ", ",
                                     len ? len : 2, len ? p : "\"\"");
            if (!bar) break;
            p = bar + 1;
        }
    }
}

static const char docs_intro[] =
    "# Recipes\n"
    "\n"
    "A recipe is a JSON file that holds everything about one training run: data,\n"
    "tokenizer, model, optimizer, decoding. `mmt-train RECIPE.json [--set key=value ...]`\n"
    "reads it, prints the resolved recipe (every key, defaults filled in) on stderr at the\n"
    "start, and saves it into the run folder. The shipped recipes are in `recipes/`; each\n"
    "says what it is in its `description`.\n"
    "\n"
    "This page is written from the key table in `src/recipe.c` by `recipe_write_docs`:\n"
    "change the table, then regenerate the page. The `recipe` test suite fails when the\n"
    "two disagree.\n"
    "\n"
    "## How a recipe is read\n"
    "\n"
    "Keys nest: `\"train\": {\"lr\": 0.001}` sets `train.lr`. A key the tables below do not\n"
    "list is an error naming the file and the key's full path, with the nearest known key\n"
    "as a suggestion; so is a value of the wrong type, out of its range or not one of the\n"
    "allowed values. Values come from, in order of increasing priority:\n"
    "\n"
    "1. the defaults below;\n"
    "2. the model preset named by `model.preset`;\n"
    "3. the recipe files of the `extends` chain, base first;\n"
    "4. the `--set` overrides, in the order given.\n"
    "\n"
    "**extends.** `\"extends\": \"base.json\"` starts a recipe from another one, the path\n"
    "taken relative to the extending file. Chains are allowed; a cycle is an error.\n"
    "Objects merge key by key and the extending file wins; a list is replaced whole. So a\n"
    "penal recipe is its baseline plus one line:\n"
    "\n"
    "    {\n"
    "      \"extends\": \"multi30k-baseline.json\",\n"
    "      \"model\": {\"penal\": {\"enabled\": true}}\n"
    "    }\n"
    "\n"
    "**Model presets.** `model.preset` names an architecture: `transformer-tiny` is\n"
    "`models/transformer-tiny.json` in the first folder holding `models/` on the way up\n"
    "from the recipe file that names it; a value ending in `.json` is a path relative to\n"
    "that file. A preset holds model keys without the `model.` prefix; they become the\n"
    "defaults of the model keys, and the recipe's `model.*` keys override them. With\n"
    "`model.penal.enabled` false, `model.penal.tau` is forced to 0, so a baseline may keep\n"
    "the tau its penal variant uses.\n"
    "\n"
    "**--set.** `--set key=value` overrides one key by its full path. The value is read\n"
    "as JSON when it parses as JSON (`--set train.lr=0.001`,\n"
    "`--set model.penal.enabled=true`, `--set 'train.adam_betas=[0.9, 0.998]'`), else as\n"
    "a plain string (`--set name=run2`); for a string key, any value is taken as written.\n"
    "An unknown key is an error that suggests the nearest one (`--set train.lrr=1`: did\n"
    "you mean `train.lr`?). A preset path given with `--set` is relative to the current\n"
    "folder.\n"
    "\n"
    "**Paths and the run folder.** Data and tokenizer paths are used as written, relative\n"
    "to the folder mmt-train runs in (the repository root for the shipped recipes); `.gz`\n"
    "files are read directly. The run folder is `output`, by default `runs/NAME`, where\n"
    "NAME is `name` or else the recipe file's name without `.json`.\n";

int recipe_write_docs(FILE *f) {
    fputs(docs_intro, f);
    char section[64] = "-";
    for (int i = 0; i < NKEYS; i++) {
        const recipe_key *k = &keys[i];
        const char *dot = strchr(k->key, '.');
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", dot ? (int)(dot - k->key) : 0, k->key);
        if (strcmp(sec, section)) {
            snprintf(section, sizeof section, "%s", sec);
            fprintf(f, "\n## %s\n\n", sec[0] ? sec : "Top level");
            fputs("| key | type | default | allowed | meaning |\n", f);
            fputs("| --- | --- | --- | --- | --- |\n", f);
        }
        char allowed[256];
        allowed_text(k, allowed, sizeof allowed);
        fprintf(f, "| `%s` | %s | `%s` | %s | %s |\n", k->key, type_name(k), k->def, allowed,
                k->meaning);
    }
    return ferror(f) ? MMT_ERR : MMT_OK;
}
