/*
 * test_spm.c - the SentencePiece wrapper: train a small BPE model on a
 * generated corpus in a temporary folder, round-trip text through ids,
 * carry the model as bytes, and refuse missing or corrupt models and bad
 * training options with a message.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "spm.h"
#include "test.h"

#define SPM_VOCAB 80

/* Sentences made of corpus words, some in orders the corpus never has. */
static const char *const seen_texts[] = {
    "the cat sees a red ball.",
    "a young girl paints the river.",
    "the teacher opens a long letter.",
    "the river likes my friend.",
    "our neighbour reads the green tree the old man finds.",
};
#define N_SEEN (int)(sizeof seen_texts / sizeof seen_texts[0])

/* Cyrillic "zhe", a character the corpus never has. */
static const char *const unseen_text = "the cat sees \xd0\xb6.";
#define UNK_SURFACE "\xe2\x81\x87" /* U+2047, what unk decodes to */

typedef struct {
    char dir[64];       /* the mkdtemp folder */
    char corpus[128];   /* dir/corpus.txt */
    char prefix[128];   /* dir/m: the trained model's prefix */
    char model[128];    /* dir/m.model */
    char vocab[128];    /* dir/m.vocab */
    char corrupt[128];  /* dir/corrupt.model */
    char bad[128];      /* dir/bad: prefix of trainings that must fail */
} spm_paths;

static void paths_init(spm_paths *p) {
    snprintf(p->corpus, sizeof p->corpus, "%s/corpus.txt", p->dir);
    snprintf(p->prefix, sizeof p->prefix, "%s/m", p->dir);
    snprintf(p->model, sizeof p->model, "%s/m.model", p->dir);
    snprintf(p->vocab, sizeof p->vocab, "%s/m.vocab", p->dir);
    snprintf(p->corrupt, sizeof p->corrupt, "%s/corrupt.model", p->dir);
    snprintf(p->bad, sizeof p->bad, "%s/bad", p->dir);
}

/* A fixed linear congruential generator: the corpus is the same every run. */
static unsigned lcg_next(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

/* Write 400 lines "subject verb object." in lowercase ASCII. */
static void write_corpus(const char *path) {
    static const char *const subj[] = {"the cat", "a dog", "my friend", "the old man",
                                       "a young girl", "the teacher", "our neighbour"};
    static const char *const verb[] = {"sees", "likes", "finds", "walks to",
                                       "reads", "paints", "opens"};
    static const char *const obj[] = {"the house", "a red ball", "the green tree",
                                      "a small boat", "the window", "a long letter",
                                      "the river"};
    unsigned s = 42;
    FILE *f = mmt_fopen(path, "w");
    for (int i = 0; i < 400; i++) {
        fprintf(f, "%s %s %s.\n", subj[lcg_next(&s) % 7], verb[lcg_next(&s) % 7],
                obj[lcg_next(&s) % 7]);
    }
    mmt_fclose(f, path);
}

static spm_train_options train_defaults(const char *const *inputs, const char *prefix) {
    spm_train_options o = {0};
    o.inputs = inputs;
    o.n_inputs = 1;
    o.model_prefix = prefix;
    o.vocab_size = SPM_VOCAB;
    o.model_type = "bpe";
    o.character_coverage = 1.0f;
    o.seed = 1;
    o.num_threads = 2;
    return o;
}

static int has_id(const int *ids, int n, int id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

/* ---------------------------------------------------------------- checks */

static void check_special_ids(const spm_model *m) {
    int V = spm_vocab_size(m);
    CHECK(V > 4 && V <= SPM_VOCAB, "spm vocab size %d in (4, %d]", V, SPM_VOCAB);
    CHECK(spm_pad_id(m) == 0, "spm pad id %d == 0", spm_pad_id(m));
    CHECK(spm_unk_id(m) == 1, "spm unk id %d == 1", spm_unk_id(m));
    CHECK(spm_bos_id(m) == 2, "spm bos id %d == 2", spm_bos_id(m));
    CHECK(spm_eos_id(m) == 3, "spm eos id %d == 3", spm_eos_id(m));
    CHECK(spm_piece_to_id(m, "</s>") == 3, "spm piece_to_id(\"</s>\") == eos");
    CHECK(spm_piece_to_id(m, "no-such-piece") == 1, "spm piece_to_id of a missing piece == unk");
}

/* Encode then decode each seen text; every id must be a real piece. */
static void check_roundtrip(const spm_model *m) {
    mmt_status st = {0};
    for (int i = 0; i < N_SEEN; i++) {
        int *ids = NULL, n = 0;
        char *back = NULL;
        int rc = spm_encode(m, seen_texts[i], &ids, &n, &st);
        int ok = rc == MMT_OK && n > 0 && !has_id(ids, n, spm_unk_id(m));
        if (rc == MMT_OK) rc = spm_decode(m, ids, n, &back, &st);
        ok = ok && rc == MMT_OK && strcmp(back, seen_texts[i]) == 0;
        CHECK(ok, "spm round trip \"%s\" -> %d ids, no unk -> \"%s\"", seen_texts[i], n,
              back ? back : st.msg);
        free(ids);
        free(back);
    }
}

/* An unseen character becomes unk, and decodes to the unk surface. */
static void check_unk(const spm_model *m) {
    mmt_status st = {0};
    int *ids = NULL, n = 0;
    char *back = NULL;
    int rc = spm_encode(m, unseen_text, &ids, &n, &st);
    CHECK(rc == MMT_OK && has_id(ids, n, spm_unk_id(m)),
          "spm unseen character encodes to unk (%d ids)", n);
    if (rc == MMT_OK) rc = spm_decode(m, ids, n, &back, &st);
    CHECK(rc == MMT_OK && strncmp(back, "the cat sees ", 13) == 0 &&
              strstr(back, UNK_SURFACE) != NULL,
          "spm unk decodes to \"the cat sees \" + U+2047: \"%s\"", back ? back : st.msg);
    free(ids);
    free(back);

    int bad_id = spm_vocab_size(m);
    rc = spm_decode(m, &bad_id, 1, &back, &st);
    CHECK(rc == MMT_ERR && back == NULL && strstr(st.msg, "outside the vocabulary"),
          "spm decode refuses id %d past the vocabulary: %s", bad_id, st.msg);
}

/* A model carried as bytes encodes exactly as the file it came from. */
static void check_serialize(const spm_model *m) {
    mmt_status st = {0};
    char *buf = NULL;
    size_t len = 0;
    int rc = spm_serialize(m, &buf, &len, &st);
    CHECK(rc == MMT_OK && buf && len > 0, "spm serialize gives %zu bytes", len);
    spm_model *m2 = rc == MMT_OK ? spm_load_from_bytes(buf, len, &st) : NULL;
    CHECK(m2 && spm_vocab_size(m2) == spm_vocab_size(m), "spm load_from_bytes: %s",
          m2 ? "same vocab size" : st.msg);

    int same = m2 != NULL;
    for (int i = 0; same && i <= N_SEEN; i++) {
        const char *text = i < N_SEEN ? seen_texts[i] : unseen_text;
        int *a = NULL, *b = NULL, na = 0, nb = 0;
        same = spm_encode(m, text, &a, &na, &st) == MMT_OK &&
               spm_encode(m2, text, &b, &nb, &st) == MMT_OK && na == nb &&
               memcmp(a, b, (size_t)na * sizeof *a) == 0;
        free(a);
        free(b);
    }
    CHECK(same, "spm model from bytes encodes %d texts as the file does", N_SEEN + 1);

    /* half a model is not a model */
    spm_model *m3 = rc == MMT_OK ? spm_load_from_bytes(buf, len / 2, &st) : NULL;
    CHECK(rc == MMT_OK && !m3 && st.msg[0], "spm load_from_bytes refuses a truncated proto: %s",
          st.msg);
    spm_free(m3);
    spm_free(m2);
    free(buf);
}

/* A missing or corrupt model file is an error naming the file. */
static void check_bad_models(const spm_paths *p) {
    mmt_status st = {0};
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such.model", p->dir);
    spm_model *m = spm_load(missing, &st);
    CHECK(!m && st.code == MMT_ERR && strstr(st.msg, missing),
          "spm load of a missing file fails naming it: %s", st.msg);
    spm_free(m);

    unsigned char junk[512];
    unsigned s = 7;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)lcg_next(&s);
    FILE *f = mmt_fopen(p->corrupt, "wb");
    mmt_fwrite(junk, 1, sizeof junk, f, p->corrupt);
    mmt_fclose(f, p->corrupt);

    st = (mmt_status){0};
    m = spm_load(p->corrupt, &st);
    CHECK(!m && st.code == MMT_ERR && strstr(st.msg, p->corrupt),
          "spm load of random bytes fails naming the file: %s", st.msg);
    spm_free(m);

    st = (mmt_status){0};
    m = spm_load_from_bytes(junk, sizeof junk, &st);
    CHECK(!m && st.code == MMT_ERR && st.msg[0], "spm load_from_bytes of random bytes fails: %s",
          st.msg);
    spm_free(m);
}

/* Bad options fail with a message that says what was wrong. */
static void check_bad_training(const spm_paths *p) {
    char missing[160], comma[160];
    snprintf(missing, sizeof missing, "%s/no-such-corpus.txt", p->dir);
    snprintf(comma, sizeof comma, "%s/a,b.txt", p->dir);
    const char *corpus[] = {p->corpus}, *absent[] = {missing}, *split[] = {comma};
    mmt_status st = {0};

    spm_train_options o = train_defaults(corpus, p->bad);
    o.vocab_size = 0;
    int rc = spm_train(&o, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "vocab_size"), "spm train refuses vocab_size 0: %s",
          st.msg);

    st = (mmt_status){0};
    o = train_defaults(absent, p->bad);
    rc = spm_train(&o, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, missing),
          "spm train on a missing input fails naming it: %s", st.msg);

    st = (mmt_status){0};
    o = train_defaults(split, p->bad);
    rc = spm_train(&o, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "','"), "spm train refuses a path with ',': %s",
          st.msg);

    st = (mmt_status){0};
    o = train_defaults(corpus, p->bad);
    o.model_type = "word";
    rc = spm_train(&o, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "model_type"), "spm train refuses model_type word: %s",
          st.msg);
}

/* ----------------------------------------------------------------- suite */

void suite_spm(void) {
    spm_paths p;
    strcpy(p.dir, "/tmp/mmt-spm-XXXXXX");
    if (!mkdtemp(p.dir)) {
        CHECK(0, "spm mkdtemp %s", p.dir);
        return;
    }
    paths_init(&p);
    write_corpus(p.corpus);

    // train, then read the model back from its file
    const char *inputs[] = {p.corpus};
    spm_train_options o = train_defaults(inputs, p.prefix);
    mmt_status st = {0};
    int rc = spm_train(&o, &st);
    CHECK(rc == MMT_OK && access(p.model, R_OK) == 0 && access(p.vocab, R_OK) == 0,
          "spm train BPE V=%d writes .model and .vocab%s%s", SPM_VOCAB, rc ? ": " : "",
          rc ? st.msg : "");
    spm_model *m = rc == MMT_OK ? spm_load(p.model, &st) : NULL;
    CHECK(m != NULL, "spm load %s%s%s", p.model, m ? "" : ": ", m ? "" : st.msg);

    if (m) {
        check_special_ids(m);
        check_roundtrip(m);
        check_unk(m);
        check_serialize(m);
    }
    spm_free(m);
    check_bad_models(&p);
    check_bad_training(&p);

    // remove what the suite wrote; rmdir fails if anything is left
    const char *files[] = {p.corpus, p.model, p.vocab, p.corrupt};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
    CHECK(rmdir(p.dir) == 0, "spm temp dir %s removed", p.dir);
}
