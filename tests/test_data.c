/*
 * test_data.c - the data pipeline: reading plain and gzip text, the errors
 * for mismatched line counts and invalid UTF-8, filtering counts, the
 * token cache and its staleness, batching and its seeded order, the demo
 * corpus, and the NPY writer. Everything is written under a mkdtemp folder
 * that is removed at the end; a small SentencePiece model is trained on
 * the demo corpus for the encoding checks.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "data.h"
#include "demo.h"
#include "spm.h"
#include "test.h"

#define PATH_CAP 256

/* ------------------------------------------------------------- helpers */

static void join(char *out, const char *dir, const char *name) {
    int n = snprintf(out, PATH_CAP, "%s/%s", dir, name);
    MMT_ASSERT(n > 0 && n < PATH_CAP);
}

static void write_text(const char *path, const char *text) {
    FILE *f = mmt_fopen(path, "wb");
    mmt_fwrite(text, 1, strlen(text), f, path);
    mmt_fclose(f, path);
}

/* Writes len bytes of text as a gzip file; 0 on failure. */
static int write_gz(const char *path, const char *text, size_t len) {
    gzFile g = gzopen(path, "wb");
    if (!g) return 0;
    int ok = gzwrite(g, text, (unsigned)len) == (int)len;
    return gzclose(g) == Z_OK && ok;
}

/* Gzips the file src into dst; 0 on failure. */
static int gzip_file(const char *src, const char *dst) {
    size_t len;
    mmt_status st = {0};
    char *text = mmt_read_file(src, &len, &st);
    int ok = text && write_gz(dst, text, len);
    free(text);
    return ok;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int remove_tree(const char *dir) {
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int same_corpus(const pair_corpus *a, const pair_corpus *b) {
    if (a->n != b->n) return 0;
    size_t n1 = (size_t)a->n + 1;
    return memcmp(a->src_off, b->src_off, n1 * 8) == 0 &&
           memcmp(a->tgt_off, b->tgt_off, n1 * 8) == 0 &&
           memcmp(a->line, b->line, (size_t)a->n * 8) == 0 &&
           memcmp(a->src_ids, b->src_ids, (size_t)a->src_off[a->n] * 4) == 0 &&
           memcmp(a->tgt_ids, b->tgt_ids, (size_t)a->tgt_off[a->n] * 4) == 0;
}

/* The number of ids spm gives text; -1 on error. */
static int n_tokens(const spm_model *spm, const char *text) {
    int *ids = NULL, n = 0;
    mmt_status st = {0};
    if (spm_encode(spm, text, &ids, &n, &st) != MMT_OK) return -1;
    free(ids);
    return n;
}

/* ------------------------------------------------------------ reading */

static void check_read_lines(const char *dir) {
    static const char text[] = "  hello world \r\nsecond\n\n\t third\t\nlast, no newline";
    static const char *const want[] = {"hello world", "second", "", "third", "last, no newline"};
    char plain[PATH_CAP], gz[PATH_CAP], bom[PATH_CAP];
    join(plain, dir, "lines.txt");
    join(gz, dir, "lines.txt.gz");
    join(bom, dir, "bom.txt");
    write_text(plain, text);
    CHECK(write_gz(gz, text, strlen(text)), "data: wrote %s", gz);
    write_text(bom, "\xef\xbb\xbf  with bom\n");

    // plain and gzip read the same trimmed lines
    for (int z = 0; z < 2; z++) {
        const char *path = z ? gz : plain;
        data_lines t;
        mmt_status st = {0};
        int rc = data_read_lines(&t, path, &st);
        int same = rc == MMT_OK && t.n == 5;
        for (int i = 0; same && i < 5; i++)
            same = strcmp(t.line[i], want[i]) == 0;
        CHECK(same, "data: %s read as 5 trimmed lines (got %ld) %s", z ? "gzip" : "plain",
              rc == MMT_OK ? t.n : -1L, st.msg);
        data_lines_free(&t);
    }
    mmt_status st = {0};
    CHECK(data_is_gzip(gz, &st) == 1 && data_is_gzip(plain, &st) == 0,
          "data: gzip detected by magic bytes, plain is not");

    data_lines t;
    int rc = data_read_lines(&t, bom, &st);
    CHECK(rc == MMT_OK && t.n == 1 && strcmp(t.line[0], "with bom") == 0,
          "data: a UTF-8 byte order mark is dropped");
    data_lines_free(&t);

    // a missing file and a truncated gzip file are errors naming the file
    char missing[PATH_CAP];
    join(missing, dir, "no-such.txt");
    st = (mmt_status){0};
    rc = data_read_lines(&t, missing, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, missing), "data: missing file: %s", st.msg);

    char big[8192], trunc[PATH_CAP];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (i % 61 == 60) ? '\n' : 'a' + i * 7 % 26;
    big[sizeof big - 1] = '\0';
    join(trunc, dir, "trunc.gz");
    size_t len = 0;
    write_gz(trunc, big, strlen(big));
    char *bytes = mmt_read_file(trunc, &len, &st);
    FILE *f = mmt_fopen(trunc, "wb");
    mmt_fwrite(bytes, 1, len / 2, f, trunc);
    mmt_fclose(f, trunc);
    free(bytes);
    st = (mmt_status){0};
    rc = data_read_lines(&t, trunc, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, trunc), "data: truncated gzip is an error: %s", st.msg);
}

/* Invalid UTF-8 of each kind is an error naming file:line; valid text is not. */
static void check_utf8(const char *dir) {
    static const struct {
        const char *bytes, *what;
        int ok;
    } cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "2-, 3- and 4-byte characters", 1},
        {"bad \xc3\x28 here", "a lead byte without continuation", 0},
        {"\xc0\xaf", "a 2-byte overlong '/'", 0},
        {"\xe0\x80\xaf", "a 3-byte overlong '/'", 0},
        {"\xed\xa0\x80", "a surrogate", 0},
        {"\xf4\x90\x80\x80", "a code point above U+10FFFF", 0},
        {"cut \xe2\x82", "a character cut at the line end", 0},
        {"\x80", "a lone continuation byte", 0},
        {"\xff", "byte 0xff", 0},
    };
    char path[PATH_CAP], expect[PATH_CAP + 16];
    join(path, dir, "utf8.txt");
    snprintf(expect, sizeof expect, "%s:3:", path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "fine\nalso fine\n%s\nafter\n", cases[i].bytes);
        write_text(path, text);
        data_lines t;
        mmt_status st = {0};
        int rc = data_read_lines(&t, path, &st);
        if (cases[i].ok)
            CHECK(rc == MMT_OK && t.n == 4, "data: UTF-8 with %s is accepted", cases[i].what);
        else
            CHECK(rc == MMT_ERR && strstr(st.msg, expect), "data: UTF-8 with %s: %s", cases[i].what,
                  st.msg);
        if (rc == MMT_OK) data_lines_free(&t);
    }

    // a NUL byte is refused too, and gzip input reports the same place
    static const char nul_text[] = "one\ntwo\nth\0ree\n";
    write_text(path, "");
    FILE *f = mmt_fopen(path, "wb");
    mmt_fwrite(nul_text, 1, sizeof nul_text - 1, f, path);
    mmt_fclose(f, path);
    data_lines t;
    mmt_status st = {0};
    CHECK(data_read_lines(&t, path, &st) == MMT_ERR && strstr(st.msg, expect) &&
              strstr(st.msg, "NUL"),
          "data: NUL byte: %s", st.msg);

    char gz[PATH_CAP], expect_gz[PATH_CAP + 16];
    join(gz, dir, "utf8.txt.gz");
    snprintf(expect_gz, sizeof expect_gz, "%s:2:", gz);
    write_gz(gz, "ok\n\xc3\x28\n", 5);
    st = (mmt_status){0};
    CHECK(data_read_lines(&t, gz, &st) == MMT_ERR && strstr(st.msg, expect_gz),
          "data: invalid UTF-8 in gzip input: %s", st.msg);
}

/* ----------------------------------------------------------- the demo */

static long count_lines(const char *path) {
    data_lines t;
    mmt_status st = {0};
    if (data_read_lines(&t, path, &st) != MMT_OK) return -1;
    long n = t.n;
    data_lines_free(&t);
    return n;
}

static ino_t inode_of(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

/* Splits line into words in place; returns their number (at most cap). */
static int split_words(char *line, char **w, int cap) {
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " ", &save); t && n < cap; t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    return n;
}

/* Every source word maps to one target word: per line, each source word
 * occurs as often as its lexicon translation, and the two sides have the
 * same number of words; the target is a reordering, not a copy. */
static void check_demo_mapping(const char *demo_dir) {
    char sp[PATH_CAP], tp[PATH_CAP];
    join(sp, demo_dir, "train.src");
    join(tp, demo_dir, "train.tgt");
    data_lines s, t;
    mmt_status st = {0};
    if (data_read_lines(&s, sp, &st) != MMT_OK || data_read_lines(&t, tp, &st) != MMT_OK) {
        CHECK(0, "data: demo read: %s", st.msg);
        return;
    }
    int n_lex;
    const demo_word *lex = demo_lexicon(&n_lex);

    // the reference rule agrees with the files
    long bad_rule = 0, bad_len = 0, bad_count = 0, reordered = 0, unknown = 0;
    char out[512];
    for (long i = 0; i < s.n; i++) {
        if (demo_translate(s.line[i], out, sizeof out, &st) != MMT_OK ||
            strcmp(out, t.line[i]) != 0)
            bad_rule++;
    }

    // word counts: src word w occurs as often as its translation
    int seen[64] = {0};
    for (long i = 0; i < s.n; i++) {
        char *sw[16], *tw[16];
        int ns = split_words(s.line[i], sw, 16), nt = split_words(t.line[i], tw, 16);
        if (ns != nt || ns < 3 || ns > 12) bad_len++;
        int in_order = ns == nt;
        for (int a = 0; a < ns; a++) {
            int k = 0;
            while (k < n_lex && strcmp(lex[k].src, sw[a]) != 0)
                k++;
            if (k == n_lex) {
                unknown++;
                continue;
            }
            seen[k] = 1;
            int cs = 0, ct = 0;
            for (int b = 0; b < ns; b++)
                cs += strcmp(sw[b], sw[a]) == 0;
            for (int b = 0; b < nt; b++)
                ct += strcmp(tw[b], lex[k].tgt) == 0;
            if (cs != ct) bad_count++;
            if (a < nt && strcmp(tw[a], lex[k].tgt) != 0) in_order = 0;
        }
        reordered += !in_order;
    }
    int n_seen = 0;
    for (int k = 0; k < n_lex; k++)
        n_seen += seen[k];

    CHECK(bad_rule == 0, "data: demo targets follow demo_translate (%ld of %ld differ)", bad_rule,
          s.n);
    CHECK(bad_len == 0, "data: demo pairs have 3-12 words, same on both sides (%ld bad)", bad_len);
    CHECK(unknown == 0 && bad_count == 0,
          "data: each source word maps to its one target word (%ld unknown, %ld bad counts)",
          unknown, bad_count);
    CHECK(n_seen == n_lex && n_lex >= 30 && n_lex <= 60,
          "data: demo uses all %d of %d lexicon words", n_seen, n_lex);
    CHECK(reordered > s.n / 2, "data: demo is not a copy: %ld of %ld lines reordered", reordered,
          s.n);

    // the lexicon is one to one, and no target word is a source word
    int clash = 0;
    for (int a = 0; a < n_lex; a++)
        for (int b = 0; b < n_lex; b++)
            clash += (a != b && strcmp(lex[a].tgt, lex[b].tgt) == 0) ||
                     strcmp(lex[a].tgt, lex[b].src) == 0;
    CHECK(clash == 0, "data: demo lexicon is one to one (%d clashes)", clash);

    // a sentence outside the grammar is refused with the place
    CHECK(demo_translate("the dog sees the", out, sizeof out, &st) == MMT_ERR &&
              strstr(st.msg, "word"),
          "data: demo_translate refuses a broken sentence: %s", st.msg);
    data_lines_free(&s);
    data_lines_free(&t);
}

static void check_demo(const char *dir) {
    char d1[PATH_CAP], d2[PATH_CAP], d3[PATH_CAP], p[PATH_CAP], q[PATH_CAP];
    join(d1, dir, "demo");
    join(d2, dir, "demo-again/nested");
    join(d3, dir, "demo-other");
    mmt_status st = {0};
    int rc = demo_generate(d1, 42, DEMO_N_TRAIN, DEMO_N_VALID, DEMO_N_TEST, &st);
    CHECK(rc == MMT_OK, "data: demo_generate into %s %s", d1, st.msg);
    if (rc != MMT_OK) return;

    // line counts per split and side
    static const char *const names[] = {"train.src", "train.tgt", "valid.src",
                                        "valid.tgt", "test.src",  "test.tgt"};
    static const long want[] = {DEMO_N_TRAIN, DEMO_N_TRAIN, DEMO_N_VALID,
                                DEMO_N_VALID, DEMO_N_TEST,  DEMO_N_TEST};
    int counts_ok = 1;
    for (int i = 0; i < 6; i++) {
        join(p, d1, names[i]);
        counts_ok &= count_lines(p) == want[i];
    }
    CHECK(counts_ok, "data: demo splits have %d/%d/%d lines on both sides", DEMO_N_TRAIN,
          DEMO_N_VALID, DEMO_N_TEST);

    // the same seed gives the same files (into a new nested folder); another does not
    rc = demo_generate(d2, 42, DEMO_N_TRAIN, DEMO_N_VALID, DEMO_N_TEST, &st);
    int same = rc == MMT_OK;
    for (int i = 0; same && i < 6; i++) {
        join(p, d1, names[i]);
        join(q, d2, names[i]);
        same = test_same_file(p, q);
    }
    CHECK(same, "data: demo is deterministic for a seed %s", rc == MMT_OK ? "" : st.msg);
    rc = demo_generate(d3, 43, DEMO_N_TRAIN, DEMO_N_VALID, DEMO_N_TEST, &st);
    join(p, d1, "train.src");
    join(q, d3, "train.src");
    CHECK(rc == MMT_OK && !test_same_file(p, q), "data: another seed gives another corpus");

    // a second call with the same seed and sizes writes nothing; other sizes rewrite
    ino_t before = inode_of(p);
    rc = demo_generate(d1, 42, DEMO_N_TRAIN, DEMO_N_VALID, DEMO_N_TEST, &st);
    CHECK(rc == MMT_OK && before != 0 && inode_of(p) == before,
          "data: demo_generate is a no-op when the stamp matches");
    rc = demo_generate(d3, 43, 100, 10, 10, &st);
    CHECK(rc == MMT_OK && count_lines(q) == 100, "data: other sizes regenerate (%ld lines)",
          count_lines(q));

    check_demo_mapping(d1);
}

/* ---------------------------------------------------------------- npy */

static void check_npy(const char *dir) {
    char path[PATH_CAP];
    join(path, dir, "x.npy");
    float x[3 * 16];
    for (int i = 0; i < 48; i++)
        x[i] = 0.25f * i - 3.0f;
    mmt_status st = {0};
    int rc = data_write_npy_f32(path, x, 3, 16, &st);
    size_t len = 0;
    char *b = rc == MMT_OK ? mmt_read_file(path, &len, &st) : NULL;
    CHECK(b != NULL, "data: npy written %s", st.msg);
    if (!b) return;

    static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }";
    unsigned hlen = len >= 10 ? (unsigned char)b[8] | (unsigned char)b[9] << 8 : 0;
    CHECK(len >= 10 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0, "data: npy magic and version 1.0");
    CHECK((10 + hlen) % 64 == 0 && 10 + hlen <= len && b[10 + hlen - 1] == '\n',
          "data: npy header length %u aligns data to 64 bytes and ends in newline", hlen);
    int pad_ok = 10 + hlen <= len && memcmp(b + 10, dict, sizeof dict - 1) == 0;
    for (unsigned i = 10 + sizeof dict - 1; pad_ok && i < 10 + hlen - 1; i++)
        pad_ok = b[i] == ' ';
    CHECK(pad_ok, "data: npy header is the dict padded with spaces");
    CHECK(len == 10 + hlen + sizeof x && memcmp(b + 10 + hlen, x, sizeof x) == 0,
          "data: npy data follows the header, %zu bytes", sizeof x);
    free(b);

    // the demo features: one-hot of the first noun, shape (N, 16)
    char src[PATH_CAP], feat[PATH_CAP];
    join(src, dir, "demo/valid.src");
    join(feat, dir, "valid.feat.npy");
    rc = demo_write_features(src, feat, &st);
    b = rc == MMT_OK ? mmt_read_file(feat, &len, &st) : NULL;
    int ok = b && len > 10 && strstr(b + 10, "'shape': (200, 16)") != NULL;
    data_lines t = {0};
    ok = ok && data_read_lines(&t, src, &st) == MMT_OK && t.n == 200;
    int n_lex;
    const demo_word *lex = demo_lexicon(&n_lex);
    hlen = b ? (unsigned char)b[8] | (unsigned char)b[9] << 8 : 0;
    for (long i = 0; ok && i < t.n; i++) {
        const float *row = (const float *)(b + 10 + hlen) + i * DEMO_FEAT_DIM;
        char *w[16];
        int nw = split_words(t.line[i], w, 16), noun = -1, first_noun = -1;
        for (int a = 0; a < nw && first_noun < 0; a++)
            for (int k = 0, j = 0; k < n_lex; k++) {
                if (lex[k].cls != DEMO_NOUN) continue;
                if (strcmp(lex[k].src, w[a]) == 0) first_noun = j;
                j++;
            }
        float sum = 0;
        for (int j = 0; j < DEMO_FEAT_DIM; j++) {
            sum += row[j];
            if (row[j] == 1.0f) noun = j;
        }
        ok = sum == 1.0f && noun == first_noun && noun >= 0;
    }
    CHECK(ok, "data: demo features are the one-hot of the first noun %s", st.msg);
    data_lines_free(&t);
    free(b);
}

/* ---------------------------------------------------------- tokenizer */

/* Trains a joint model on the gzip'd demo training files. */
static spm_model *check_tokenizer(const char *dir, const char *name, int vocab) {
    char src[PATH_CAP], tgt[PATH_CAP], gsrc[PATH_CAP], gtgt[PATH_CAP], prefix[PATH_CAP];
    char model[PATH_CAP + 8];
    join(src, dir, "demo/train.src");
    join(tgt, dir, "demo/train.tgt");
    join(gsrc, dir, "train.src.gz");
    join(gtgt, dir, "train.tgt.gz");
    join(prefix, dir, name);
    snprintf(model, sizeof model, "%s.model", prefix);
    if (!gzip_file(src, gsrc) || !gzip_file(tgt, gtgt)) {
        CHECK(0, "data: gzip the demo training files");
        return NULL;
    }
    const char *files[] = {gsrc, gtgt};
    mmt_status st = {0};
    int rc = data_train_tokenizer(files, 2, prefix, vocab, "bpe", 1.0f, 0, &st);
    spm_model *m = rc == MMT_OK ? spm_load(model, &st) : NULL;
    CHECK(m && spm_vocab_size(m) <= vocab && spm_pad_id(m) == 0 && spm_unk_id(m) == 1 &&
              spm_bos_id(m) == 2 && spm_eos_id(m) == 3,
          "data: tokenizer trained on gzip input, V = %d %s", m ? spm_vocab_size(m) : 0, st.msg);
    if (!m) return NULL;

    // both languages round-trip through ids
    static const char *const texts[] = {"the big red dog sees a cat quickly",
                                        "ka hundo gaton roza mo miru rapide vidas"};
    int round = 1;
    for (int i = 0; i < 2; i++) {
        int *ids = NULL, n = 0;
        char *back = NULL;
        round &= spm_encode(m, texts[i], &ids, &n, &st) == MMT_OK &&
                 spm_decode(m, ids, n, &back, &st) == MMT_OK && strcmp(back, texts[i]) == 0;
        free(ids);
        free(back);
    }
    CHECK(round, "data: the joint model round-trips source and target text");

    char missing[PATH_CAP];
    join(missing, dir, "no-such.gz");
    const char *bad[] = {gsrc, missing};
    st = (mmt_status){0};
    rc = data_train_tokenizer(bad, 2, prefix, vocab, "bpe", 1.0f, 0, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, missing), "data: tokenizer with a missing input: %s",
          st.msg);
    return m;
}

/* ------------------------------------------------------------ encoding */

static void check_encode_demo(const char *dir, const spm_model *spm) {
    char src[PATH_CAP], tgt[PATH_CAP];
    join(src, dir, "demo/train.src");
    join(tgt, dir, "demo/train.tgt");
    pair_corpus c, c1;
    data_stats s;
    mmt_status st = {0};
    int rc = data_encode(&c, spm, src, tgt, 0, &s, &st);
    CHECK(rc == MMT_OK && c.n == DEMO_N_TRAIN && s.lines == DEMO_N_TRAIN && s.empty == 0 &&
              s.too_long == 0 && s.src_tokens == c.src_off[c.n],
          "data: demo train encodes to %ld pairs %s", rc == MMT_OK ? c.n : -1L, st.msg);
    if (rc != MMT_OK) return;

    // decoding each pair gives its line back
    data_lines ls, lt;
    long bad = 0;
    if (data_read_lines(&ls, src, &st) == MMT_OK && data_read_lines(&lt, tgt, &st) == MMT_OK) {
        for (long i = 0; i < c.n; i++) {
            char *a = NULL, *b = NULL;
            int ok = spm_decode(spm, c.src_ids + c.src_off[i],
                                (int)(c.src_off[i + 1] - c.src_off[i]), &a, &st) == MMT_OK &&
                     spm_decode(spm, c.tgt_ids + c.tgt_off[i],
                                (int)(c.tgt_off[i + 1] - c.tgt_off[i]), &b, &st) == MMT_OK;
            bad += !ok || c.line[i] != i || strcmp(a, ls.line[i]) || strcmp(b, lt.line[i]);
            free(a);
            free(b);
        }
        data_lines_free(&ls);
        data_lines_free(&lt);
    } else {
        bad = -1;
    }
    CHECK(bad == 0, "data: every encoded pair decodes to its lines (%ld differ)", bad);

    // one thread gives the same corpus as many
    int threads = mmt_get_threads();
    mmt_set_threads(1);
    rc = data_encode(&c1, spm, src, tgt, 0, NULL, &st);
    mmt_set_threads(threads);
    CHECK(rc == MMT_OK && same_corpus(&c, &c1), "data: encoding on 1 and %d threads agrees",
          threads);
    pair_corpus_free(&c1);
    pair_corpus_free(&c);
}

/* Empty and over-long pairs are dropped and counted; kept pairs keep their line. */
static void check_filtering(const char *dir, const spm_model *spm) {
    static const char *long_src = "the big red old green happy dog sees every small blue "
                                  "young tall quiet cat quickly";
    static const char *long_tgt = "ka hundo gaton roza vetu verda felin tuvi miru pikel "
                                  "bluma junas alti silen rapide vidas";
    char src_text[1024], tgt_text[1024];
    snprintf(src_text, sizeof src_text,
             "the dog sees a cat\n\nthe cat sees\n%s\na cat "
             "finds\nthis boy helps\n \n",
             long_src);
    snprintf(tgt_text, sizeof tgt_text,
             "ka hundo mo miru vidas\nka hundo vidas\n   \n"
             "ka miru vidas\n%s\nsel puero helpas\n\t\n",
             long_tgt);
    char src[PATH_CAP], tgt[PATH_CAP];
    join(src, dir, "filter.src");
    join(tgt, dir, "filter.tgt");
    write_text(src, src_text);
    write_text(tgt, tgt_text);

    // max_len: the longest side of the short lines, below both long lines
    int max_len = 0;
    static const char *const short_lines[] = {"the dog sees a cat", "ka hundo mo miru vidas",
                                              "this boy helps",     "sel puero helpas",
                                              "a cat finds",        "ka miru vidas"};
    for (int i = 0; i < 6; i++) {
        int n = n_tokens(spm, short_lines[i]);
        if (n > max_len) max_len = n;
    }
    CHECK(n_tokens(spm, long_src) > max_len && n_tokens(spm, long_tgt) > max_len,
          "data: filter lines set up: max_len %d, long lines %d and %d tokens", max_len,
          n_tokens(spm, long_src), n_tokens(spm, long_tgt));

    pair_corpus c;
    data_stats s;
    mmt_status st = {0};
    int rc = data_encode(&c, spm, src, tgt, max_len, &s, &st);
    CHECK(rc == MMT_OK && s.lines == 7 && s.kept == 2 && s.empty == 3 && s.too_long == 2,
          "data: filtering counts: %ld lines, %ld kept, %ld empty, %ld too long %s", s.lines,
          s.kept, s.empty, s.too_long, st.msg);
    CHECK(rc == MMT_OK && c.n == 2 && c.line[0] == 0 && c.line[1] == 5,
          "data: kept pairs remember lines 0 and 5");
    int *ids = NULL, n = 0;
    spm_encode(spm, "the dog sees a cat", &ids, &n, &st);
    CHECK(rc == MMT_OK && c.n == 2 && c.src_off[1] == n &&
              memcmp(c.src_ids, ids, (size_t)n * sizeof *ids) == 0,
          "data: the kept source has the ids spm_encode gives");
    free(ids);
    char line[256];
    CHECK(strstr(data_stats_str(&s, max_len, line, sizeof line), "2 kept") != NULL,
          "data: stats read \"%s\"", line);
    pair_corpus_free(&c);

    rc = data_encode(&c, spm, src, tgt, 0, &s, &st);
    CHECK(rc == MMT_OK && s.kept == 4 && s.too_long == 0 && s.empty == 3,
          "data: max_len 0 keeps the long pairs (%ld kept)", s.kept);
    pair_corpus_free(&c);

    // different line counts: an error naming both files and both counts
    char tgt4[PATH_CAP];
    join(tgt4, dir, "four.tgt");
    write_text(src, "a\nb\nc\n");
    write_text(tgt4, "a\nb\nc\nd\n");
    st = (mmt_status){0};
    rc = data_encode(&c, spm, src, tgt4, 0, &s, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, src) && strstr(st.msg, tgt4) &&
              strstr(st.msg, "has 3 lines") && strstr(st.msg, "has 4"),
          "data: line count mismatch: %s", st.msg);
    CHECK(c.n == 0 && c.src_ids == NULL, "data: a failed encode leaves the corpus empty");

    // invalid UTF-8 during encoding names file:line
    char expect[PATH_CAP + 8];
    write_text(tgt4, "a\nb\n\xe2\x28\xa1\n");
    snprintf(expect, sizeof expect, "%s:3:", tgt4);
    rc = data_encode(&c, spm, src, tgt4, 0, &s, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, expect), "data: encode with invalid UTF-8: %s", st.msg);
}

/* -------------------------------------------------------------- cache */

static int no_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int clean = 1;
    for (struct dirent *e; (e = readdir(d));)
        clean &= strstr(e->d_name, ".tmp.") == NULL;
    closedir(d);
    return clean;
}

static void check_cache(const char *dir, const spm_model *spm, const spm_model *spm2) {
    char src[PATH_CAP], tgt[PATH_CAP], cache[PATH_CAP];
    join(src, dir, "cache.src");
    join(tgt, dir, "cache.tgt");
    join(cache, dir, "train.cache");
    char vs[PATH_CAP], vt[PATH_CAP];
    join(vs, dir, "demo/valid.src");
    join(vt, dir, "demo/valid.tgt");
    size_t ns, nt;
    mmt_status st = {0};
    char *ts = mmt_read_file(vs, &ns, &st), *tt = mmt_read_file(vt, &nt, &st);
    write_text(src, ts);
    write_text(tgt, tt);

    // save, then load with the same key: a hit with the same corpus and stats
    pair_corpus c, c2;
    data_stats s, s2;
    int rc = data_encode(&c, spm, src, tgt, 50, &s, &st);
    char *key = data_cache_key(src, tgt, spm, 50, &st);
    CHECK(rc == MMT_OK && key && strstr(key, "max_len=50") && strstr(key, "mtime=") &&
              strstr(key, "spm=fnv1a64:"),
          "data: cache key names inputs, tokenizer hash and max_len %s", st.msg);
    if (rc != MMT_OK || !key) goto out;
    rc = data_cache_save(&c, &s, cache, key, &st);
    CHECK(rc == MMT_OK && no_tmp_files(dir), "data: cache saved, no temporary file left %s",
          st.msg);
    rc = data_cache_load(&c2, &s2, cache, key, &st);
    CHECK(rc == DATA_CACHE_HIT && same_corpus(&c, &c2) && memcmp(&s, &s2, sizeof s) == 0,
          "data: cache round trip gives the same corpus and stats");
    pair_corpus_free(&c2);

    // another max_len, another tokenizer, a missing file: stale, not an error
    char *k2 = data_cache_key(src, tgt, spm, 40, &st);
    rc = data_cache_load(&c2, NULL, cache, k2, &st);
    CHECK(rc == DATA_CACHE_STALE && st.code == MMT_OK && strstr(st.msg, "max_len"),
          "data: another max_len is stale: %s", st.msg);
    free(k2);
    k2 = data_cache_key(src, tgt, spm2, 50, &st);
    rc = data_cache_load(&c2, NULL, cache, k2, &st);
    CHECK(rc == DATA_CACHE_STALE && strstr(st.msg, "spm="), "data: another tokenizer is stale: %s",
          st.msg);
    free(k2);
    char missing[PATH_CAP];
    join(missing, dir, "none.cache");
    rc = data_cache_load(&c2, NULL, missing, key, &st);
    CHECK(rc == DATA_CACHE_STALE && c2.n == 0 && strstr(st.msg, "missing"),
          "data: a missing cache is stale: %s", st.msg);

    // data_prepare: the first call encodes and saves, the second loads
    char prep[PATH_CAP];
    join(prep, dir, "prep.cache");
    int from_cache = -1;
    rc = data_prepare(&c2, spm, src, tgt, 50, prep, &s2, &from_cache, &st);
    CHECK(rc == MMT_OK && from_cache == 0 && same_corpus(&c, &c2),
          "data: prepare encodes on the first call %s", st.msg);
    pair_corpus_free(&c2);
    st = (mmt_status){0};
    rc = data_prepare(&c2, spm, src, tgt, 50, prep, &s2, &from_cache, &st);
    CHECK(rc == MMT_OK && from_cache == 1 && same_corpus(&c, &c2) && s2.kept == s.kept,
          "data: prepare loads the cache on a restart %s", st.msg);
    pair_corpus_free(&c2);

    // a changed input changes the key: prepare re-encodes
    FILE *f = mmt_fopen(src, "ab");
    fputs("the cat sees\n", f);
    mmt_fclose(f, src);
    f = mmt_fopen(tgt, "ab");
    fputs("ka miru vidas\n", f);
    mmt_fclose(f, tgt);
    k2 = data_cache_key(src, tgt, spm, 50, &st);
    rc = data_cache_load(&c2, NULL, cache, k2, &st);
    CHECK(rc == DATA_CACHE_STALE && strstr(st.msg, "src="), "data: a changed input is stale: %s",
          st.msg);
    free(k2);
    rc = data_prepare(&c2, spm, src, tgt, 50, prep, &s2, &from_cache, &st);
    CHECK(rc == MMT_OK && from_cache == 0 && c2.n == c.n + 1,
          "data: prepare re-encodes a changed input (%ld pairs): %s", c2.n, st.msg);
    pair_corpus_free(&c2);

    // a truncated or corrupted cache is stale, not a crash and not a hit
    size_t len;
    char *bytes = mmt_read_file(cache, &len, &st);
    char bad[PATH_CAP];
    join(bad, dir, "bad.cache");
    f = mmt_fopen(bad, "wb");
    mmt_fwrite(bytes, 1, len - 100, f, bad);
    mmt_fclose(f, bad);
    rc = data_cache_load(&c2, NULL, bad, key, &st);
    CHECK(rc == DATA_CACHE_STALE && c2.n == 0, "data: a truncated cache is stale: %s", st.msg);
    bytes[len - 50] ^= 0x40;
    f = mmt_fopen(bad, "wb");
    mmt_fwrite(bytes, 1, len, f, bad);
    mmt_fclose(f, bad);
    rc = data_cache_load(&c2, NULL, bad, key, &st);
    CHECK(rc == DATA_CACHE_STALE && c2.n == 0 && strstr(st.msg, "checksum"),
          "data: a corrupted cache is stale: %s", st.msg);
    free(bytes);
out:
    pair_corpus_free(&c);
    free(key);
    free(ts);
    free(tt);
}

/* ------------------------------------------------------------ batching */

/* A corpus from (len_s, len_t) pairs, ids 100 + 10 * pair + position. */
static void make_corpus(pair_corpus *c, const int (*lens)[2], long n) {
    int64_t ns = 0, nt = 0;
    for (long i = 0; i < n; i++)
        ns += lens[i][0], nt += lens[i][1];
    c->n = n;
    c->src_ids = mmt_malloc((size_t)ns * 4);
    c->tgt_ids = mmt_malloc((size_t)nt * 4);
    c->src_off = mmt_malloc((size_t)(n + 1) * 8);
    c->tgt_off = mmt_malloc((size_t)(n + 1) * 8);
    c->line = mmt_malloc((size_t)n * 8);
    c->src_off[0] = c->tgt_off[0] = 0;
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < lens[i][0]; j++)
            c->src_ids[c->src_off[i] + j] = 100 + 10 * i + j;
        for (int j = 0; j < lens[i][1]; j++)
            c->tgt_ids[c->tgt_off[i] + j] = 500 + 10 * i + j;
        c->src_off[i + 1] = c->src_off[i] + lens[i][0];
        c->tgt_off[i + 1] = c->tgt_off[i] + lens[i][1];
        c->line[i] = i;
    }
}

/* The exact layout of a two-row batch. */
static void check_fill_layout(void) {
    static const int lens[2][2] = {{3, 2}, {1, 4}};
    pair_corpus c;
    make_corpus(&c, lens, 2);
    batch_plan p;
    batch_buf buf;
    mmt_status st = {0};
    batch_buf_init(&buf, 0, 2, 3);
    int rc = batch_plan_build(&p, &c, 1000, &st);
    CHECK(rc == MMT_OK && p.n_batches == 1, "data: two short pairs make one batch");
    if (rc != MMT_OK) return;

    // sorted by S: pair 1 (S = 2) first, then pair 0 (S = 4); T = 5
    static const int want_src[] = {110, 3, 0, 0, 100, 101, 102, 3};
    static const int want_in[] = {2, 510, 511, 512, 513, 2, 500, 501, 0, 0};
    static const int want_out[] = {510, 511, 512, 513, 3, 500, 501, 3, 0, 0};
    mmt_batch b;
    int ntok = batch_fill(&buf, &c, &p, 0, &b);
    int B;
    const long *rows = batch_plan_rows(&p, 0, &B);
    CHECK(b.B == 2 && b.S == 4 && b.T == 5 && B == 2 && rows[0] == 1 && rows[1] == 0,
          "data: batch is B=2 S=4 T=5 with rows (1, 0) (got %d %d %d)", b.B, b.S, b.T);
    CHECK(b.B == 2 && b.S == 4 && memcmp(b.src, want_src, sizeof want_src) == 0,
          "data: src rows are ids, eos, pad");
    CHECK(b.T == 5 && memcmp(b.tgt_in, want_in, sizeof want_in) == 0,
          "data: tgt_in rows are bos, ids, pad");
    CHECK(b.T == 5 && memcmp(b.tgt_out, want_out, sizeof want_out) == 0,
          "data: tgt_out rows are ids, eos, pad");
    CHECK(ntok == 8, "data: batch_fill counts 8 non-pad target tokens (got %d)", ntok);
    batch_plan_free(&p);
    batch_buf_free(&buf);
    pair_corpus_free(&c);

    rc = batch_plan_build(&p, &c, 0, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "max_tokens"), "data: max_tokens 0 refused: %s", st.msg);
}

/* Pairs longer than max_tokens get a batch each; the rest obey the bound. */
static void check_overlong(void) {
    static const int lens[][2] = {{3, 2}, {2, 3}, {20, 1}, {4, 4}, {1, 30},
                                  {2, 2}, {3, 3}, {1, 1},  {5, 2}};
    long n = sizeof lens / sizeof lens[0];
    pair_corpus c;
    make_corpus(&c, lens, n);
    batch_plan p;
    mmt_status st = {0};
    int rc = batch_plan_build(&p, &c, 12, &st);
    int ok = rc == MMT_OK, lone_long = 0;
    for (long k = 0; ok && k < p.n_batches; k++) {
        int B;
        const long *rows = batch_plan_rows(&p, k, &B);
        int S = 0, T = 0;
        for (int r = 0; r < B; r++) {
            S = lens[rows[r]][0] + 1 > S ? lens[rows[r]][0] + 1 : S;
            T = lens[rows[r]][1] + 1 > T ? lens[rows[r]][1] + 1 : T;
        }
        int m = S > T ? S : T;
        if (m > 12)
            lone_long += B == 1 && (rows[0] == 2 || rows[0] == 4);
        else
            ok = B * m <= 12;
    }
    CHECK(ok && lone_long == 2, "data: over-long pairs batch alone, the rest fit 12 tokens");
    batch_plan_free(&p);
    pair_corpus_free(&c);
}

/* 1 when order is a permutation of 0..n-1. */
static int is_permutation(const long *order, long n) {
    char *seen = mmt_calloc((size_t)n + 1, 1);
    int ok = 1;
    for (long k = 0; ok && k < n; k++) {
        ok = order[k] >= 0 && order[k] < n && !seen[order[k]];
        if (ok) seen[order[k]] = 1;
    }
    free(seen);
    return ok;
}

static void check_batching(const char *dir, const spm_model *spm) {
    check_fill_layout();
    check_overlong();

    char src[PATH_CAP], tgt[PATH_CAP];
    join(src, dir, "demo/train.src");
    join(tgt, dir, "demo/train.tgt");
    pair_corpus c;
    mmt_status st = {0};
    if (data_encode(&c, spm, src, tgt, 0, NULL, &st) != MMT_OK) {
        CHECK(0, "data: encode demo for batching: %s", st.msg);
        return;
    }
    const int max_tokens = 256;
    batch_plan p;
    int rc = batch_plan_build(&p, &c, max_tokens, &st);
    if (rc != MMT_OK) {
        CHECK(0, "data: batch plan: %s", st.msg);
        pair_corpus_free(&c);
        return;
    }
    batch_plan_shuffle(&p, 1234, 0);

    // every pair once per epoch; the bound; sorted rows; right maxima and counts
    batch_buf buf;
    batch_buf_init(&buf, 0, 2, 3);
    int *seen = mmt_calloc((size_t)c.n, sizeof *seen);
    int bound_ok = 1, sorted_ok = 1, ntok_ok = 1, maxB = 0, maxS = 0, maxT = 0;
    long rows_total = 0;
    for (long k = 0; k < p.n_batches; k++) {
        mmt_batch b;
        int ntok = batch_fill(&buf, &c, &p, k, &b), B;
        const long *rows = batch_plan_rows(&p, k, &B);
        int m = b.S > b.T ? b.S : b.T, want = 0;
        bound_ok &= b.B * m <= max_tokens || b.B == 1;
        for (int r = 0; r < B; r++) {
            seen[rows[r]]++;
            want += (int)(c.tgt_off[rows[r] + 1] - c.tgt_off[rows[r]]) + 1;
            if (r > 0) {
                int s0 = (int)(c.src_off[rows[r - 1] + 1] - c.src_off[rows[r - 1]]);
                int s1 = (int)(c.src_off[rows[r] + 1] - c.src_off[rows[r]]);
                sorted_ok &= s0 <= s1;
            }
        }
        ntok_ok &= ntok == want;
        rows_total += B;
        maxB = B > maxB ? B : maxB, maxS = b.S > maxS ? b.S : maxS, maxT = b.T > maxT ? b.T : maxT;
    }
    int once = rows_total == c.n;
    for (long i = 0; i < c.n; i++)
        once &= seen[i] == 1;
    CHECK(once, "data: every pair appears exactly once per epoch (%ld rows, %ld pairs)", rows_total,
          c.n);
    CHECK(bound_ok, "data: B * max(S, T) <= %d in all %ld batches", max_tokens, p.n_batches);
    CHECK(sorted_ok && ntok_ok, "data: rows sorted by length, token counts right");
    CHECK(maxB == p.max_B && maxS == p.max_S && maxT == p.max_T,
          "data: plan maxima B=%d S=%d T=%d match the batches", p.max_B, p.max_S, p.max_T);
    free(seen);

    // the shuffle: a permutation, fixed by (seed, epoch) alone, new each epoch
    long nb = p.n_batches;
    long *e1 = mmt_malloc((size_t)nb * sizeof *e1), *e2 = mmt_malloc((size_t)nb * sizeof *e2);
    batch_plan_shuffle(&p, 7, 1);
    memcpy(e1, p.order, (size_t)nb * sizeof *e1);
    batch_plan_shuffle(&p, 7, 2);
    memcpy(e2, p.order, (size_t)nb * sizeof *e2);
    int differs = memcmp(e1, e2, (size_t)nb * sizeof *e1) != 0;
    batch_plan_shuffle(&p, 7, 1);
    int again = memcmp(e1, p.order, (size_t)nb * sizeof *e1) == 0;
    batch_plan_shuffle(&p, 8, 1);
    int other_seed = memcmp(e1, p.order, (size_t)nb * sizeof *e1) != 0;
    CHECK(is_permutation(e1, nb) && is_permutation(e2, nb), "data: shuffles are permutations");
    CHECK(again, "data: shuffle is deterministic for (seed, epoch)");
    CHECK(differs && other_seed, "data: shuffle differs across epochs and seeds");
    batch_plan_sorted(&p);
    int identity = 1;
    for (long k = 0; k < nb; k++)
        identity &= p.order[k] == k;
    CHECK(identity, "data: batch_plan_sorted restores the length order");

    free(e1);
    free(e2);
    batch_buf_free(&buf);
    batch_plan_free(&p);
    pair_corpus_free(&c);
}

/* -------------------------------------------------------------- suite */

void suite_data(void) {
    char dir[] = "/tmp/mmt-test-data-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "data: mkdtemp %s", dir);
        return;
    }
    check_read_lines(dir);
    check_utf8(dir);
    check_demo(dir);
    check_npy(dir);
    spm_model *spm = check_tokenizer(dir, "spm", 100);
    spm_model *spm2 = spm ? check_tokenizer(dir, "spm2", 70) : NULL;
    if (spm && spm2) {
        check_encode_demo(dir, spm);
        check_filtering(dir, spm);
        check_cache(dir, spm, spm2);
        check_batching(dir, spm);
    }
    spm_free(spm);
    spm_free(spm2);
    CHECK(remove_tree(dir) == 0, "data: temp dir %s removed", dir);
}
