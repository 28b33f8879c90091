/* demo.c - the built-in toy language pair: a fixed lexicon, a small
 * grammar, a reordering rule, and per-sentence features. See demo.h. */
#include "demo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

/* Grouped by class; nouns are numbered 0..15 in this order (the feature slot). */
static const demo_word lexicon[] = {
    {"the", "ka", DEMO_DET},         {"a", "mo", DEMO_DET},
    {"every", "tuvi", DEMO_DET},     {"this", "sel", DEMO_DET},
    {"red", "roza", DEMO_ADJ},       {"big", "gaton", DEMO_ADJ},
    {"small", "pikel", DEMO_ADJ},    {"old", "vetu", DEMO_ADJ},
    {"green", "verda", DEMO_ADJ},    {"happy", "felin", DEMO_ADJ},
    {"blue", "bluma", DEMO_ADJ},     {"young", "junas", DEMO_ADJ},
    {"tall", "alti", DEMO_ADJ},      {"quiet", "silen", DEMO_ADJ},
    {"dog", "hundo", DEMO_NOUN},     {"cat", "miru", DEMO_NOUN},
    {"bird", "pajo", DEMO_NOUN},     {"horse", "kabal", DEMO_NOUN},
    {"fish", "pesko", DEMO_NOUN},    {"child", "infa", DEMO_NOUN},
    {"woman", "fema", DEMO_NOUN},    {"man", "viro", DEMO_NOUN},
    {"teacher", "dosen", DEMO_NOUN}, {"farmer", "agrik", DEMO_NOUN},
    {"king", "regol", DEMO_NOUN},    {"girl", "ragaz", DEMO_NOUN},
    {"boy", "puero", DEMO_NOUN},     {"tree", "arbo", DEMO_NOUN},
    {"house", "domo", DEMO_NOUN},    {"boat", "navo", DEMO_NOUN},
    {"sees", "vidas", DEMO_VERB},    {"likes", "amas", DEMO_VERB},
    {"finds", "trovas", DEMO_VERB},  {"follows", "sekvas", DEMO_VERB},
    {"helps", "helpas", DEMO_VERB},  {"paints", "pentras", DEMO_VERB},
    {"calls", "vokas", DEMO_VERB},   {"watches", "rigardas", DEMO_VERB},
    {"feeds", "nutras", DEMO_VERB},  {"greets", "salutas", DEMO_VERB},
    {"quickly", "rapide", DEMO_ADV}, {"often", "ofte", DEMO_ADV},
    {"slowly", "lante", DEMO_ADV},   {"again", "denove", DEMO_ADV},
};
#define N_WORDS (int)(sizeof lexicon / sizeof lexicon[0])

/* First lexicon index and number of words of each class. */
static const int class_first[] = {0, 4, 14, 30, 40};
static const int class_count[] = {4, 10, 16, 10, 4};

#define MAX_WORDS 12 /* NP (5) + verb + NP (5) + adverb */
#define STAMP_NAME "demo.stamp"

const demo_word *demo_lexicon(int *n) {
    if (n) *n = N_WORDS;
    return lexicon;
}

static int lookup(const char *word) {
    for (int i = 0; i < N_WORDS; i++)
        if (strcmp(lexicon[i].src, word) == 0) return i;
    return -1;
}

/* ============================================================ sentences */

/* A sentence as lexicon indices: the subject and object noun phrases
 * (determiner, adjectives, noun), the verb, and the adverb (-1: none). */
typedef struct {
    int np[2][5], np_len[2]; /* np_len[1] == 0: no object */
    int verb, adv;
} demo_sent;

static int pick(uint64_t *s, int k) {
    return (int)(data_splitmix64(s) % (uint64_t)k);
}

static int pick_class(uint64_t *s, int cls) {
    return class_first[cls] + pick(s, class_count[cls]);
}

/* A noun phrase with 0-3 distinct adjectives (0 most often); returns its length. */
static int gen_np(uint64_t *s, int *w) {
    static const int n_adj_of[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 3};
    int n_adj = n_adj_of[pick(s, 10)], n = 0;
    w[n++] = pick_class(s, DEMO_DET);
    while (n < 1 + n_adj) {
        int a = pick_class(s, DEMO_ADJ), seen = 0;
        for (int j = 1; j < n; j++)
            seen |= w[j] == a;
        if (!seen) w[n++] = a;
    }
    w[n++] = pick_class(s, DEMO_NOUN);
    return n;
}

static void gen_sentence(uint64_t *s, demo_sent *d) {
    d->np_len[0] = gen_np(s, d->np[0]);
    d->verb = pick_class(s, DEMO_VERB);
    d->np_len[1] = pick(s, 5) < 4 ? gen_np(s, d->np[1]) : 0;
    d->adv = pick(s, 10) < 3 ? pick_class(s, DEMO_ADV) : -1;
}

/* Appends word (from lexicon entry w, source or target side) to out. */
static int put_word(char *out, size_t cap, size_t *len, int w, int tgt) {
    const char *text = tgt ? lexicon[w].tgt : lexicon[w].src;
    int k = snprintf(out + *len, cap - *len, "%s%s", *len ? " " : "", text);
    if (k < 0 || (size_t)k >= cap - *len) return MMT_ERR;
    *len += (size_t)k;
    return MMT_OK;
}

/* Source order: NP verb [NP] [adverb]. */
static int sent_source(const demo_sent *d, char *out, size_t cap) {
    size_t len = 0;
    int rc = MMT_OK;
    out[0] = '\0';
    for (int j = 0; j < d->np_len[0]; j++)
        rc |= put_word(out, cap, &len, d->np[0][j], 0);
    rc |= put_word(out, cap, &len, d->verb, 0);
    for (int j = 0; j < d->np_len[1]; j++)
        rc |= put_word(out, cap, &len, d->np[1][j], 0);
    if (d->adv >= 0) rc |= put_word(out, cap, &len, d->adv, 0);
    return rc ? MMT_ERR : MMT_OK;
}

/* Target order: each NP as determiner noun adjectives, then the adverb,
 * then the verb. */
static int sent_target(const demo_sent *d, char *out, size_t cap) {
    size_t len = 0;
    int rc = MMT_OK;
    out[0] = '\0';
    for (int p = 0; p < 2; p++) {
        int n = d->np_len[p];
        if (n == 0) continue;
        rc |= put_word(out, cap, &len, d->np[p][0], 1);
        rc |= put_word(out, cap, &len, d->np[p][n - 1], 1);
        for (int j = 1; j < n - 1; j++)
            rc |= put_word(out, cap, &len, d->np[p][j], 1);
    }
    if (d->adv >= 0) rc |= put_word(out, cap, &len, d->adv, 1);
    rc |= put_word(out, cap, &len, d->verb, 1);
    return rc ? MMT_ERR : MMT_OK;
}

/* =========================================================== translation */

/* Parses the noun phrase at words[*i]; returns 0 when it is not one. */
static int parse_np(const int *w, int n, int *i, int *np, int *np_len) {
    int k = 0;
    if (*i >= n || lexicon[w[*i]].cls != DEMO_DET) return 0;
    np[k++] = w[(*i)++];
    while (*i < n && lexicon[w[*i]].cls == DEMO_ADJ && k < 4)
        np[k++] = w[(*i)++];
    if (*i >= n || lexicon[w[*i]].cls != DEMO_NOUN) return 0;
    np[k++] = w[(*i)++];
    *np_len = k;
    return 1;
}

int demo_translate(const char *src, char *out, size_t cap, mmt_status *st) {
    // look every word up
    char copy[512];
    if (snprintf(copy, sizeof copy, "%s", src) >= (int)sizeof copy)
        return mmt_fail(st, "demo: sentence longer than %zu bytes", sizeof copy - 1);
    int w[MAX_WORDS], n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (n == MAX_WORDS)
            return mmt_fail(st, "demo: more than %d words in \"%s\"", MAX_WORDS, src);
        if ((w[n++] = lookup(t)) < 0)
            return mmt_fail(st, "demo: word %d \"%s\" is not in the lexicon", n, t);
    }

    // parse NP verb [NP] [adverb]
    demo_sent d = {.adv = -1};
    int i = 0;
    if (!parse_np(w, n, &i, d.np[0], &d.np_len[0]) || i >= n || lexicon[w[i]].cls != DEMO_VERB)
        return mmt_fail(st, "demo: word %d of \"%s\": expected a noun phrase and a verb", i + 1,
                        src);
    d.verb = w[i++];
    if (i < n && lexicon[w[i]].cls == DEMO_DET && !parse_np(w, n, &i, d.np[1], &d.np_len[1]))
        return mmt_fail(st, "demo: word %d of \"%s\": expected an object", i + 1, src);
    if (i < n && lexicon[w[i]].cls == DEMO_ADV) d.adv = w[i++];
    if (i != n) return mmt_fail(st, "demo: word %d of \"%s\": expected the end", i + 1, src);
    if (sent_target(&d, out, cap) != MMT_OK)
        return mmt_fail(st, "demo: translation longer than %zu bytes", cap - 1);
    return MMT_OK;
}

/* ============================================================ generation */

/* mkdir -p: creates path and its missing parents. */
static int make_dirs(const char *path, mmt_status *st) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return mmt_fail(st, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return mmt_fail(st, "%s: cannot create folder: %s", buf, strerror(errno));
        if (!(*p = c)) break;
    }
    return MMT_OK;
}

/* Writes n sentences to dir/split.src and dir/split.tgt. */
static int write_split(const char *dir, const char *split, int n, uint64_t *s, mmt_status *st) {
    char path[2][4200];
    data_atomic_file f[2];
    for (int side = 0; side < 2; side++) {
        snprintf(path[side], sizeof path[side], "%s/%s.%s", dir, split, side ? "tgt" : "src");
        if (data_atomic_open(&f[side], path[side], st) != MMT_OK) {
            if (side) data_atomic_abort(&f[0]);
            return MMT_ERR;
        }
    }
    char src[256], tgt[256];
    for (int i = 0; i < n; i++) {
        demo_sent d;
        gen_sentence(s, &d);
        int fits = sent_source(&d, src, sizeof src) == MMT_OK &&
                   sent_target(&d, tgt, sizeof tgt) == MMT_OK;
        MMT_ASSERT(fits); // 12 words of at most 8 letters
        fprintf(f[0].f, "%s\n", src);
        fprintf(f[1].f, "%s\n", tgt);
    }
    if (data_atomic_commit(&f[0], st) != MMT_OK) {
        data_atomic_abort(&f[1]);
        return MMT_ERR;
    }
    return data_atomic_commit(&f[1], st);
}

/* 1 when dir holds the stamp text and all six files. */
static int already_there(const char *dir, const char *stamp) {
    static const char *const names[] = {"train.src", "train.tgt", "valid.src",
                                        "valid.tgt", "test.src",  "test.tgt"};
    char path[4200];
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, R_OK) != 0) return 0;
    }
    snprintf(path, sizeof path, "%s/" STAMP_NAME, dir);
    mmt_status ignore = {0};
    char *have = mmt_read_file(path, NULL, &ignore);
    int same = have && strcmp(have, stamp) == 0;
    free(have);
    return same;
}

int demo_generate(const char *dir, uint64_t seed, int n_train, int n_valid, int n_test,
                  mmt_status *st) {
    if (n_train < 0 || n_valid < 0 || n_test < 0)
        return mmt_fail(st, "demo: negative split size (%d, %d, %d)", n_train, n_valid, n_test);
    char stamp[160];
    snprintf(stamp, sizeof stamp, "mmt demo corpus v1 seed=%llu train=%d valid=%d test=%d\n",
             (unsigned long long)seed, n_train, n_valid, n_test);
    if (already_there(dir, stamp)) return MMT_OK;
    if (make_dirs(dir, st) != MMT_OK) return MMT_ERR;

    // one generator stream across the splits, in a fixed order; the stamp last
    uint64_t s = seed;
    if (write_split(dir, "train", n_train, &s, st) != MMT_OK ||
        write_split(dir, "valid", n_valid, &s, st) != MMT_OK ||
        write_split(dir, "test", n_test, &s, st) != MMT_OK)
        return MMT_ERR;
    char path[4200];
    snprintf(path, sizeof path, "%s/" STAMP_NAME, dir);
    data_atomic_file f;
    if (data_atomic_open(&f, path, st) != MMT_OK) return MMT_ERR;
    fputs(stamp, f.f);
    return data_atomic_commit(&f, st);
}

/* ============================================================== features */

int demo_write_features(const char *src_path, const char *npy_path, mmt_status *st) {
    data_lines t;
    if (data_read_lines(&t, src_path, st) != MMT_OK) return MMT_ERR;
    float *x = mmt_calloc((size_t)(t.n ? t.n : 1) * DEMO_FEAT_DIM, sizeof *x);

    // row i: one-hot of the first noun of line i
    int rc = MMT_OK;
    for (long i = 0; rc == MMT_OK && i < t.n; i++) {
        int noun = -1;
        char *save = NULL;
        for (char *w = strtok_r(t.line[i], " ", &save); w && noun < 0;
             w = strtok_r(NULL, " ", &save)) {
            int k = lookup(w);
            if (k >= 0 && lexicon[k].cls == DEMO_NOUN) noun = k - class_first[DEMO_NOUN];
        }
        if (noun < 0)
            rc = mmt_fail(st, "%s:%ld: no demo noun in the line", src_path, i + 1);
        else
            x[i * DEMO_FEAT_DIM + noun] = 1.0f;
    }
    if (rc == MMT_OK) rc = data_write_npy_f32(npy_path, x, t.n, DEMO_FEAT_DIM, st);
    free(x);
    data_lines_free(&t);
    return rc;
}
