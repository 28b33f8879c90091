/* test_bleu.c - BLEU, chrF, the tokenizers and the paired tests against
 * sacreBLEU 2.3.1's numbers.
 *
 * Where the expected values come from:
 *   - the worked examples of the task and sacreBLEU's README (multi- and
 *     variable-reference BLEU, chrF) are sacreBLEU's own output;
 *   - hand computations are shown next to their checks;
 *   - the rest (tokenizer outputs, the paired tests' p-values and means)
 *     come from scripts/bleu_reference.py, an independent Python model of
 *     sacreBLEU that uses the real `re`/`regex` modules and numpy's generator;
 *   - numpy draws were printed by numpy 1.24 itself.
 * The mmt-bleu checks at the end run the program built beside run-tests. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bleu.h"
#include "test.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int near(double a, double b, double tol) {
    return fabs(a - b) <= tol;
}

/* BLEU of one hypothesis line against one reference line. */
static bleu_score bleu1(const bleu_config *cfg, const char *hyp, const char *ref) {
    const char *h[1] = {hyp}, *r[1] = {ref};
    const char *const *refs[1] = {r};
    bleu_score s;
    mmt_status st = {0};
    if (bleu_corpus(cfg, h, refs, 1, 1, &s, &st) != MMT_OK) memset(&s, 0, sizeof s);
    return s;
}

/* -------------------------------------------------------------- tokenizers */

static void check_tokens(bleu_tokenizer tok, int lc, const char *in, const char *want) {
    char *got = bleu_tokenize(in, tok, lc);
    CHECK(got && strcmp(got, want) == 0, "bleu: tok %s%s \"%s\" -> \"%s\" (got \"%s\")",
          bleu_tokenizer_name(tok), lc ? " -lc" : "", in, want, got ? got : "(null)");
    free(got);
}

static void tokenizers(void) {
    // 13a: the mteval-v13a substitutions, applied left to right
    static const char *const t13a[][2] = {
        {"Hello, world!", "Hello , world !"},
        {"It costs $3.50, or 3,000 yen.", "It costs $ 3.50 , or 3,000 yen ."},
        {"pages 10-12 of a well-known book - really",
         "pages 10 - 12 of a well-known book - really"},
        {"In 2019.", "In 2019 ."}, /* the padding space splits a final period off a number */
        {"e.g. the U.S.A. (or not)", "e . g . the U . S . A . ( or not )"},
        {"&lt;b&gt;bold&lt;/b&gt; <skipped> text", "< b > bold < / b > text"},
        {"don't stop", "don't stop"},
        {"3.14,2.71 .5 5. x,y 1,a", "3.14,2.71 . 5 5 . x , y 1 , a"},
        {"a/b c:d [e] {f} @g #h ~i", "a / b c : d [ e ] { f } @ g # h ~ i"},
        {"wait...", "wait . . ."},
        {"50% off \u2014 2-for-1!", "50 % off \u2014 2 - for-1 !"},
        {"Tom &amp; Jerry said &quot;hi&quot;.", "Tom & Jerry said \" hi \" ."},
        {"  trailing  \t ", "trailing"},
    };
    for (size_t i = 0; i < N_OF(t13a); i++)
        check_tokens(BLEU_TOK_13A, 0, t13a[i][0], t13a[i][1]);

    // intl: punctuation next to a non-digit and every symbol, by Unicode category
    static const char *const tintl[][2] = {
        {"Hello, world!", "Hello , world !"},
        {"In 2019.", "In 2019."}, /* mteval-v14's quirk, kept by sacreBLEU */
        {"3.14 and 1,000", "3.14 and 1,000"},
        {"don't", "don ' t"},
        {"\u20ac5 \u00abquote\u00bb 2+2=4", "\u20ac 5 \u00ab quote \u00bb 2 + 2 = 4"},
        {"\u00bfQu\u00e9?", "\u00bf Qu\u00e9 ?"},
        {"\u65e5\u672c\u8a9e\u3002\u30c6\u30b9\u30c8\u3001\u3067\u3059",
         "\u65e5\u672c\u8a9e \u3002 \u30c6\u30b9\u30c8 \u3001 \u3067\u3059"},
        {"a-b 1-2", "a - b 1-2"},
        {"x.y.z", "x . y . z"},
    };
    for (size_t i = 0; i < N_OF(tintl); i++)
        check_tokens(BLEU_TOK_INTL, 0, tintl[i][0], tintl[i][1]);

    // char: every code point a token, whitespace dropped
    check_tokens(BLEU_TOK_CHAR, 0, "ab c", "a b c");
    check_tokens(BLEU_TOK_CHAR, 0, "na\u00efve caf\u00e9", "n a \u00ef v e c a f \u00e9");
    check_tokens(BLEU_TOK_CHAR, 0, "\u65e5\u672c", "\u65e5 \u672c");

    // none: exactly the whitespace-split tokens (Unicode whitespace, as str.split())
    check_tokens(BLEU_TOK_NONE, 0, "The  cat,sat\ton (the) mat .", "The cat,sat on (the) mat .");
    check_tokens(BLEU_TOK_NONE, 0, "a\u00a0b\u3000c\u2009d e\u200bf", "a b c d e\u200bf");
    check_tokens(BLEU_TOK_NONE, 1, "The CAT ,sat", "the cat ,sat");
}

/* ------------------------------------------------------------ lowercasing */

static void lowercasing(void) {
    static const char *const cases[][2] = {
        {"\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3.",
         "\u03bf\u03b4\u03bf\u03c2 \u03c3\u03b1\u03c2."},
        {"\u03a3\u0391 \u03a3", "\u03c3\u03b1 \u03c3"}, /* a lone sigma is not final */
        {"\u0421\u0422\u0420\u0410\u041d\u0410 \u041c\u043e\u0441\u043a\u0432\u0430",
         "\u0441\u0442\u0440\u0430\u043d\u0430 \u043c\u043e\u0441\u043a\u0432\u0430"},
        {"Stra\u00dfe STRASSE", "stra\u00dfe strasse"}, /* ß stays */
        {"\u00c0\u00c9\u00ce\u00d5\u00dc \u0100\u0179",
         "\u00e0\u00e9\u00ee\u00f5\u00fc \u0101\u017a"},
        {"\u0130stanbul", "i\u0307stanbul"},
        {"\u0531\u0532 \u10a0 \uff21", "\u0561\u0562 \u2d00 \uff41"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char *got = bleu_lowercase(cases[i][0]);
        CHECK(got && strcmp(got, cases[i][1]) == 0, "bleu: lowercase \"%s\" -> \"%s\" (got \"%s\")",
              cases[i][0], cases[i][1], got ? got : "(null)");
        free(got);
    }
    CHECK(bleu_lowercase("ok \xff") == NULL, "bleu: lowercase rejects invalid UTF-8");

    // -lc end to end: mixed case differs, lowercased matches
    bleu_config cfg;
    bleu_config_default(&cfg);
    // "Η ΓΑΤΑ ΚΑΘΕΤΑΙ ΣΤΟ ΧΑΛΙ" against its lowercase form
    const char *upper =
        "\u0397 \u0393\u0391\u03a4\u0391 \u039a\u0391\u0398\u0395\u03a4\u0391\u0399 "
        "\u03a3\u03a4\u039f \u03a7\u0391\u039b\u0399";
    const char *lower =
        "\u03b7 \u03b3\u03b1\u03c4\u03b1 \u03ba\u03b1\u03b8\u03b5\u03c4\u03b1\u03b9 "
        "\u03c3\u03c4\u03bf \u03c7\u03b1\u03bb\u03b9";
    bleu_score mixed = bleu1(&cfg, upper, lower);
    cfg.lowercase = 1;
    bleu_score lc = bleu1(&cfg, upper, lower);
    CHECK(mixed.score == 0.0 && near(lc.score, 100.0, 1e-9),
          "bleu: Greek -lc: mixed case %.4f (want 0), lowercased %.4f (want 100)", mixed.score,
          lc.score);
}

/* ----------------------------------------------------------- worked values */

static void worked_values(void) {
    bleu_config cfg;
    bleu_config_default(&cfg);

    // the cat is on the mat / there is a cat on the mat
    bleu_score s = bleu1(&cfg, "the cat is on the mat", "there is a cat on the mat");
    CHECK(near(s.score, 29.0593, 5e-5), "bleu: worked example BLEU %.4f (want 29.0593)", s.score);
    CHECK(s.correct[0] == 5 && s.total[0] == 6 && s.correct[1] == 2 && s.total[1] == 5 &&
              s.correct[2] == 1 && s.total[2] == 4 && s.correct[3] == 0 && s.total[3] == 3,
          "bleu: worked example matches %lld/%lld %lld/%lld %lld/%lld %lld/%lld (want 5/6 2/5 1/4 "
          "0/3)",
          (long long)s.correct[0], (long long)s.total[0], (long long)s.correct[1],
          (long long)s.total[1], (long long)s.correct[2], (long long)s.total[2],
          (long long)s.correct[3], (long long)s.total[3]);
    CHECK(near(s.bp, 0.8465, 5e-5) && s.hyp_len == 6 && s.ref_len == 7 &&
              near(s.ratio, 6.0 / 7.0, 1e-12),
          "bleu: worked example BP %.4f (want 0.8465), lengths %lld/%lld (want 6/7)", s.bp,
          (long long)s.hyp_len, (long long)s.ref_len);
    // exp smoothing: the zero 4-gram precision becomes 100 / (2 * 3)
    CHECK(near(s.precisions[0], 500.0 / 6, 1e-9) && near(s.precisions[1], 40.0, 1e-9) &&
              near(s.precisions[2], 25.0, 1e-9) && near(s.precisions[3], 100.0 / 6, 1e-9),
          "bleu: worked example precisions %.4f/%.4f/%.4f/%.4f (want 83.3333/40/25/16.6667)",
          s.precisions[0], s.precisions[1], s.precisions[2], s.precisions[3]);

    // a two-word hypothesis has no 3-grams: log(0) dominates, BLEU 0
    s = bleu1(&cfg, "the cat", "the cat is on the mat");
    CHECK(s.score == 0.0, "bleu: 'the cat' vs 'the cat is on the mat' BLEU %.4f (want 0.0)",
          s.score);

    // two lines, the first hypothesis empty: BP = exp(1 - 10/7)
    const char *hyps[2] = {"", "the cat sat on the mat ."};
    const char *r1[2] = {"a dog .", "the cat sat on the mat ."};
    const char *const *refs[1] = {r1};
    mmt_status st = {0};
    int rc = bleu_corpus(&cfg, hyps, refs, 1, 2, &s, &st);
    CHECK(rc == MMT_OK && near(s.score, 65.1439, 5e-5) && near(s.bp, 0.6514, 5e-5),
          "bleu: empty first hypothesis BLEU %.4f BP %.4f (want 65.1439, 0.6514) %s", s.score, s.bp,
          st.msg);

    // escaped entities are unescaped by 13a
    s = bleu1(&cfg, "Tom &amp; Jerry said &quot;hi&quot;.", "Tom & Jerry said \"hi\".");
    CHECK(near(s.score, 100.0, 1e-9), "bleu: &amp; &quot; unescaped: BLEU %.4f (want 100)",
          s.score);
}

/* ------------------------------------------------- smoothing, references */

static void smoothing(void) {
    static const struct {
        bleu_smooth smooth;
        double value, want, p4;
    } cases[] = {
        {BLEU_SMOOTH_EXP, -1, 29.05925408079185, 100.0 / 6},         /* 100 / (2 * 3) */
        {BLEU_SMOOTH_FLOOR, -1, 19.43309443637607, 100.0 * 0.1 / 3}, /* 100 * 0.1 / 3 */
        {BLEU_SMOOTH_FLOOR, 0.3, 25.57539057896621, 10.0},
        {BLEU_SMOOTH_ADD_K, -1, 38.244129131513816, 25.0}, /* (0 + 1) / (3 + 1) */
        {BLEU_SMOOTH_ADD_K, 2, 47.02407501998604, 40.0},   /* (0 + 2) / (3 + 2) */
        {BLEU_SMOOTH_NONE, -1, 0.0, 0.0},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        bleu_config cfg;
        bleu_config_default(&cfg);
        cfg.smooth = cases[i].smooth;
        cfg.smooth_value = cases[i].value;
        bleu_score s = bleu1(&cfg, "the cat is on the mat", "there is a cat on the mat");
        CHECK(near(s.score, cases[i].want, 1e-9) && near(s.precisions[3], cases[i].p4, 1e-9),
              "bleu: smooth %s %.2f: BLEU %.6f (want %.6f), p4 %.4f (want %.4f)",
              bleu_smooth_name(cases[i].smooth), cases[i].value, s.score, cases[i].want,
              s.precisions[3], cases[i].p4);
    }

    // add-k lifts the empty 3- and 4-gram orders of "the cat" to 1/1
    bleu_config cfg;
    bleu_config_default(&cfg);
    cfg.smooth = BLEU_SMOOTH_ADD_K;
    bleu_score s = bleu1(&cfg, "the cat", "the cat is on the mat");
    CHECK(near(s.score, 100.0 * exp(-2.0), 1e-9), "bleu: add-k 'the cat': %.6f (want 100 e^-2)",
          s.score);

    // signatures
    char sig[256];
    bleu_signature(&cfg, 1, NULL, sig, sizeof sig);
    CHECK(strcmp(sig, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|version:2.3.1") == 0,
          "bleu: add-k signature \"%s\"", sig);
    bleu_config_default(&cfg);
    cfg.lowercase = 1, cfg.tokenize = BLEU_TOK_INTL;
    bleu_signature(&cfg, -1, "bs:1000|seed:12345", sig, sizeof sig);
    CHECK(strcmp(sig,
                 "nrefs:var|bs:1000|seed:12345|case:lc|eff:no|tok:intl|smooth:exp|version:2.3.1") ==
              0,
          "bleu: paired signature \"%s\"", sig);
    chrf_signature(0, 2, NULL, sig, sizeof sig);
    CHECK(strcmp(sig, "nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1") == 0,
          "bleu: chrF signature \"%s\"", sig);
}

static void references(void) {
    bleu_config cfg;
    bleu_config_default(&cfg);
    mmt_status st = {0};
    int64_t stats[BLEU_NSTATS];

    // a 5-token hypothesis is 1 from both a 4- and a 6-token reference: the shorter wins
    const char *tie1[2] = {"a b c d", "a b c d e f"}, *tie2[2] = {"a b c d e f", "a b c d"};
    int ok1 = bleu_segment_stats(&cfg, "a b c d e", tie1, 2, stats, &st) == MMT_OK;
    int64_t len1 = stats[1];
    int ok2 = bleu_segment_stats(&cfg, "a b c d e", tie2, 2, stats, &st) == MMT_OK;
    CHECK(ok1 && ok2 && len1 == 4 && stats[1] == 4,
          "bleu: reference length tie goes to the shorter: %lld, %lld (want 4, 4)", (long long)len1,
          (long long)stats[1]);
    // n-gram counts are clipped by the largest count in any one reference
    const char *clip[2] = {"the the cat", "the cat the the"};
    bleu_segment_stats(&cfg, "the the the the", clip, 2, stats, &st);
    CHECK(stats[2] == 3 && stats[6] == 4 && stats[3] == 1 && stats[7] == 3,
          "bleu: clipping by the max over references: 1-grams %lld/%lld (want 3/4), 2-grams "
          "%lld/%lld (want 1/3)",
          (long long)stats[2], (long long)stats[6], (long long)stats[3], (long long)stats[7]);

    // sacreBLEU README: two reference streams, then the first reference of line 1 empty
    const char *hyps[3] = {"The dog bit the man.", "It wasn't surprising.",
                           "The man had just bitten him."};
    const char *ra[3] = {"The dog bit the man.", "It was not unexpected.",
                         "The man bit him first."};
    const char *rb[3] = {"The dog had bit the man.", "No one was surprised.",
                         "The man had bitten the dog."};
    const char *rv[3] = {"", "It was not unexpected.", "The man bit him first."};
    const char *const *two[2] = {ra, rb}, *const * var[2] = {rv, rb};
    bleu_score s;
    int rc = bleu_corpus(&cfg, hyps, two, 2, 3, &s, &st);
    CHECK(rc == MMT_OK && near(s.score, 48.530827009930, 1e-9) && s.hyp_len == 17 &&
              s.ref_len == 18 && near(s.bp, 0.942873143855, 1e-9),
          "bleu: README two references: %.6f (want 48.530827) BP %.4f len %lld/%lld", s.score, s.bp,
          (long long)s.hyp_len, (long long)s.ref_len);
    rc = bleu_corpus(&cfg, hyps, var, 2, 3, &s, &st);
    CHECK(rc == MMT_OK && near(s.score, 29.443657650965, 1e-9) && s.ref_len == 19,
          "bleu: README variable references: %.6f (want 29.443658) ref_len %lld (want 19)", s.score,
          (long long)s.ref_len);
    bleu_metric m = {BLEU_METRIC_BLEU, cfg, 0};
    int64_t per[3 * BLEU_NSTATS];
    int used2 = 0, usedv = 0;
    bleu_metric_stats(&m, hyps, two, 2, 3, per, &used2, &st);
    bleu_metric_stats(&m, hyps, var, 2, 3, per, &usedv, &st);
    CHECK(used2 == 2 && usedv == -1,
          "bleu: references per segment %d (want 2) and %d (want -1, var)", used2, usedv);
    double chrf = 0;
    rc = chrf_corpus(hyps, two, 2, 3, 0, &chrf, &st);
    CHECK(rc == MMT_OK && near(chrf, 59.727517826848, 1e-9),
          "bleu: README chrF2 %.6f (want 59.727518)", chrf);

    // errors name the line
    const char *bad_h[2] = {"fine", "bad \xc3("};
    const char *ok_r[2] = {"fine", "fine"}, *empty_r[2] = {"fine", ""};
    const char *const *one_ok[1] = {ok_r}, *const * one_empty[1] = {empty_r};
    st = (mmt_status){0};
    rc = bleu_corpus(&cfg, bad_h, one_ok, 1, 2, &s, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "hypothesis line 2"), "bleu: invalid UTF-8 named: \"%s\"",
          st.msg);
    st = (mmt_status){0};
    rc = bleu_corpus(&cfg, ok_r, one_empty, 1, 2, &s, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "line 2") && strstr(st.msg, "empty"),
          "bleu: a line without any reference is an error: \"%s\"", st.msg);
}

/* tokenize none -lc over tokenized text is multi-bleu.perl's BLEU: the
 * same counts over whitespace tokens, and no smoothing with no zero count. */
static void multi_bleu(void) {
    bleu_config cfg;
    bleu_config_default(&cfg);
    cfg.tokenize = BLEU_TOK_NONE, cfg.lowercase = 1;
    const char *hyps[2] = {"The cat sat on the mat .", "a b c d e"};
    const char *r[2] = {"the cat sat on a mat .", "a b c d e"};
    const char *const *refs[1] = {r};
    bleu_score s;
    mmt_status st = {0};
    bleu_corpus(&cfg, hyps, refs, 1, 2, &s, &st);
    // by hand: 1-grams 6/7 + 5/5, 2-grams 4/6 + 4/4, 3-grams 2/5 + 3/3, 4-grams 1/4 + 2/2
    double want = 100.0 * exp((log(11.0 / 12) + log(8.0 / 10) + log(5.0 / 8) + log(3.0 / 6)) / 4);
    CHECK(near(s.score, want, 1e-9) && s.bp == 1.0, "bleu: multi-bleu figure %.6f (want %.6f)",
          s.score, want);
}

/* ------------------------------------------------------------------- chrF */

static void chrf(void) {
    mmt_status st = {0};
    int64_t stats[CHRF_NSTATS];
    // "abc" vs "abd": 1-grams 2 of 3 both ways, 2-grams 1 of 2, 3-grams 0 of 1,
    // no 4..6-grams. Precision = recall = (2/3 + 1/2 + 0) / 3 = 7/18, and
    // F2 = 5 P R / (4 P + R) = P, so chrF = 700/18 = 38.8889.
    const char *r[1] = {"abd"};
    chrf_segment_stats("abc", r, 1, 0, stats, &st);
    double f = chrf_from_stats(stats);
    CHECK(near(f, 700.0 / 18, 1e-9) && stats[0] == 3 && stats[2] == 2 && stats[5] == 1 &&
              stats[8] == 0 && stats[9] == 0,
          "bleu: chrF abc/abd %.6f (want %.6f)", f, 700.0 / 18);
    const char *rs[1] = {"ab d"};
    chrf_segment_stats("a bc", rs, 1, 0, stats, &st);
    CHECK(near(chrf_from_stats(stats), 700.0 / 18, 1e-9), "bleu: chrF ignores whitespace: %.6f",
          chrf_from_stats(stats));

    // the best reference by sentence chrF is kept
    const char *two[2] = {"a cat sat", "the cat sat on"};
    chrf_segment_stats("the cat sat", two, 2, 0, stats, &st);
    CHECK(near(chrf_from_stats(stats), 79.34458487087204, 1e-9) && stats[1] == 11,
          "bleu: chrF best of two references %.6f (want 79.344585), ref 1-grams %lld (want 11)",
          chrf_from_stats(stats), (long long)stats[1]);

    // case: only equal with --chrf-lowercase
    const char *lower[1] = {"hello world"};
    chrf_segment_stats("Hello World", lower, 1, 0, stats, &st);
    double mixed = chrf_from_stats(stats);
    chrf_segment_stats("Hello World", lower, 1, 1, stats, &st);
    CHECK(near(mixed, 37.53968253968254, 1e-9) && near(chrf_from_stats(stats), 100.0, 1e-9),
          "bleu: chrF case %.6f (want 37.539683), lowercased %.6f (want 100)", mixed,
          chrf_from_stats(stats));
}

/* ------------------------------------------------------ numpy's generator */

static void numpy_rng(void) {
    bleu_rng rng;
    // numpy: np.random.default_rng(12345).bit_generator.random_raw(3)
    static const uint64_t raw[3] = {0x3a32b18db2ffc19dull, 0x51171315c9e4c4deull,
                                    0xcc2024823444efd9ull};
    bleu_rng_seed(&rng, 12345);
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok &= bleu_rng_next64(&rng) == raw[i];
    CHECK(ok, "bleu: PCG64 seeded through SeedSequence(12345) draws numpy's raw words");

    // numpy: default_rng(12345).choice(7, size=(2, 7)); default_rng(2**40 + 7).choice(3000, 12)
    static const uint32_t c7[14] = {4, 1, 5, 2, 1, 5, 4, 4, 6, 2, 5, 2, 3, 4};
    static const uint32_t c3000[12] = {619,  2489, 1828, 765,  51,  461,
                                       1514, 2023, 2655, 2216, 283, 1469};
    bleu_rng_seed(&rng, 12345);
    ok = 1;
    for (int i = 0; i < 14; i++)
        ok &= bleu_rng_below(&rng, 7) == c7[i];
    bleu_rng_seed(&rng, ((uint64_t)1 << 40) + 7);
    for (int i = 0; i < 12; i++)
        ok &= bleu_rng_below(&rng, 3000) == c3000[i];
    CHECK(ok, "bleu: bounded draws equal numpy's rng.choice (one- and two-word seeds)");

    // numpy: default_rng(12345).integers(2, size=(3, 30), dtype=bool)
    static const char bits[] = "10111001100000111111111101001101101100011000110101001100010111"
                               "0001111011001000110010011110";
    bleu_rng_seed(&rng, 12345);
    ok = 1;
    for (size_t i = 0; i + 1 < sizeof bits; i++)
        ok &= bleu_rng_bit(&rng) == bits[i] - '0';
    CHECK(ok, "bleu: boolean draws equal numpy's rng.integers(2, dtype=bool)");
}

/* ---------------------------------------------------------- paired tests */

static const char *const p_ref[12] = {
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "All that glitters is not gold.",
    "The early bird catches the worm.",
    "Actions speak louder than words.",
    "Beauty is in the eye of the beholder.",
    "Every cloud has a silver lining.",
    "Fortune favours the bold.",
    "Where there is a will, there is a way.",
    "Practice makes perfect.",
    "Knowledge is power.",
    "Time and tide wait for no man.",
};
static const char *const p_base[12] = {
    "A quick brown fox jumped over a lazy dog.",
    "A trip of thousand miles starts with one step.",
    "Everything that shines is not gold.",
    "The early bird gets the worm.",
    "Acts speak louder than words.",
    "Beauty lies in the eyes of the beholder.",
    "Each cloud has a silver lining.",
    "Luck favours the brave.",
    "Where a will is, there is a way.",
    "Practice makes it perfect.",
    "Knowing is power.",
    "Time and tide waits for nobody.",
};
/* the references but for lines 2 and 8: clearly better than the baseline */
static const char *const p_better[12] = {
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles starts with one step.",
    "All that glitters is not gold.",
    "The early bird catches the worm.",
    "Actions speak louder than words.",
    "Beauty is in the eye of the beholder.",
    "Every cloud has a silver lining.",
    "Luck favours the bold.",
    "Where there is a will, there is a way.",
    "Practice makes perfect.",
    "Knowledge is power.",
    "Time and tide wait for no man.",
};
/* different translations of about the baseline's quality */
static const char *const p_similar[12] = {
    "The fast brown fox jumps over a lazy dog.",
    "A journey of thousand miles starts with one step.",
    "All that shines is not gold.",
    "An early bird gets the worm.",
    "Actions speak more than words.",
    "Beauty is in the eyes of the viewer.",
    "Each cloud has a silver lining.",
    "Luck favours the bold.",
    "Where there is will, a way is there.",
    "Practice makes it perfect.",
    "Knowledge is strength.",
    "Time and tide wait for nobody.",
};

static void paired(void) {
    const char *const *refs[1] = {(const char *const *)p_ref};
    const char *const *systems[3] = {p_better, p_similar, p_base};
    mmt_status st = {0};
    for (int kind = 0; kind < 2; kind++) {
        bleu_metric m = {kind ? BLEU_METRIC_CHRF : BLEU_METRIC_BLEU, {0}, 0};
        bleu_config_default(&m.bleu);
        const char *name = bleu_metric_name(&m);
        int k = bleu_metric_nstats(&m);
        int64_t *base = mmt_malloc(12 * (size_t)k * sizeof *base);
        int64_t *sys = mmt_malloc(3 * 12 * (size_t)k * sizeof *sys);
        bleu_metric_stats(&m, (const char *const *)p_base, refs, 1, 12, base, NULL, &st);
        for (int s = 0; s < 3; s++)
            bleu_metric_stats(&m, systems[s], refs, 1, 12, sys + s * 12 * k, NULL, &st);

        // expected from scripts/bleu_reference.py (numpy's generator, seed 12345):
        // better, similar, identical
        static const double bs_p[2][3] = {{1.0 / 1001, 0.401598401598, 1.0 / 1001},
                                          {1.0 / 1001, 0.180819180819, 1.0 / 1001}};
        static const double bs_mean[2][3] = {{91.544379284943, 38.611764466728, 39.184503383021},
                                             {93.138808381682, 65.571945829799, 63.663156675595}};
        static const double bs_ci[2][3] = {{11.340219861890, 13.179402257500, 15.012623930692},
                                           {8.497886811691, 5.138140804058, 8.315183726330}};
        static const double ar_p[2][3] = {{1.0 / 10001, 0.980201979802, 1.0 / 10001},
                                          {1.0 / 10001, 0.573342665733, 1.0 / 10001}};
        static const char *const label[3] = {"better", "similar", "identical"};
        for (int s = 0; s < 3; s++) {
            bleu_paired_result bs, bs2, ar;
            bleu_paired_bs(&m, base, sys + s * 12 * k, 12, 1000, 12345, &bs);
            bleu_paired_bs(&m, base, sys + s * 12 * k, 12, 1000, 12345, &bs2);
            bleu_paired_ar(&m, base, sys + s * 12 * k, 12, 10000, 12345, &ar);
            CHECK(memcmp(&bs, &bs2, sizeof bs) == 0, "bleu: %s paired-bs %s repeats exactly", name,
                  label[s]);
            CHECK(near(bs.p, bs_p[kind][s], 1e-11) && near(bs.mean, bs_mean[kind][s], 1e-9) &&
                      near(bs.ci, bs_ci[kind][s], 1e-9),
                  "bleu: %s paired-bs %s: p %.6f mean %.6f ci %.6f (want %.6f %.6f %.6f)", name,
                  label[s], bs.p, bs.mean, bs.ci, bs_p[kind][s], bs_mean[kind][s], bs_ci[kind][s]);
            CHECK(near(ar.p, ar_p[kind][s], 1e-11), "bleu: %s paired-ar %s: p %.6f (want %.6f)",
                  name, label[s], ar.p, ar_p[kind][s]);
        }

        // what the numbers mean: a clearly better system is significant, a
        // system of similar quality is not. A system identical to the baseline
        // gets the smallest p, 1 / (N + 1): sacreBLEU counts resamples whose
        // |delta| is strictly greater than the actual 0, and none is.
        bleu_paired_result better, similar, other_seed;
        bleu_paired_bs(&m, base, sys, 12, 1000, 12345, &better);
        bleu_paired_bs(&m, base, sys + 12 * k, 12, 1000, 12345, &similar);
        bleu_paired_bs(&m, base, sys + 12 * k, 12, 1000, 777, &other_seed);
        CHECK(better.p < 0.05 && similar.p > 0.15,
              "bleu: %s better system p %.4f < 0.05, similar system p %.4f > 0.15", name, better.p,
              similar.p);
        CHECK(other_seed.p != similar.p,
              "bleu: %s another seed draws other resamples (p %.4f vs %.4f)", name, other_seed.p,
              similar.p);
        bleu_paired_result ci;
        bleu_bootstrap_ci(&m, base, 12, 1000, 12345, &ci);
        CHECK(near(ci.mean, bs_mean[kind][2], 1e-9) && near(ci.ci, bs_ci[kind][2], 1e-9),
              "bleu: %s baseline bootstrap mean %.6f ci %.6f", name, ci.mean, ci.ci);
        free(base);
        free(sys);
    }
}

/* ---------------------------------------------------------------- mmt-bleu */

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][128];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void write_text(const char *name, const char *text) {
    const char *path = tmp_path(name);
    FILE *f = mmt_fopen(path, "w");
    mmt_fwrite(text, 1, strlen(text), f, path);
    mmt_fclose(f, path);
}

/* s with newlines shown as "\n", so that a check stays one line. */
static const char *one_line(const char *s) {
    static char buf[8192];
    size_t n = 0;
    for (; *s && n + 3 < sizeof buf; s++) {
        if (*s == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Run a shell command; its stdout into out, its exit status returned. */
static int run(const char *cmd, char *out, size_t size) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void cli(void) {
    // mmt-bleu is built beside run-tests (make test builds both)
    char exe[PATH_MAX], bin[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = '\0';
    snprintf(bin, sizeof bin, "%s/mmt-bleu", exe);
    if (access(bin, X_OK) != 0) {
        printf("# bleu: %s not built, so its checks did not run (make %s)\n", bin, bin);
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mmt-bleu-test-XXXXXX");
    if (!mkdtemp(tmpdir)) return;
    write_text("hyp", "the cat is on the mat\n");
    write_text("ref", "there is a cat on the mat\n");
    write_text("ref2", "there is a cat on the mat\nsecond line\n");
    write_text("base", "the cat is on mat\n");

    char cmd[2 * PATH_MAX], out[8192];
    const char *hyp = tmp_path("hyp"), *ref = tmp_path("ref");
    snprintf(cmd, sizeof cmd, "'%s' '%s' < '%s' 2>/dev/null", bin, ref, hyp);
    int rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 &&
              strcmp(out, "BLEU = 29.06 83.3/40.0/25.0/16.7 (BP = 0.846 ratio = 0.857 "
                          "hyp_len = 6 ref_len = 7)\n"
                          "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1\n") == 0,
          "bleu: mmt-bleu REF < HYP prints the score and signature lines (got \"%s\")",
          one_line(out));

    snprintf(cmd, sizeof cmd, "'%s' -i '%s' '%s' -m bleu chrf -b -w 4 2>/dev/null", bin, hyp, ref);
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strncmp(out, "29.0593\n", 8) == 0 && strchr(out + 8, '\n'),
          "bleu: mmt-bleu -b -w 4 -m bleu chrf prints two scores (got \"%s\")", one_line(out));

    snprintf(cmd, sizeof cmd, "'%s' -i '%s' '%s' -f json 2>/dev/null", bin, hyp, ref);
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "\"score\": 29.06,") && strstr(out, "\"tok\": \"13a\""),
          "bleu: mmt-bleu -f json (got \"%s\")", one_line(out));

    // a line count mismatch names both files and counts; a missing file names it
    const char *ref2 = tmp_path("ref2");
    snprintf(cmd, sizeof cmd, "'%s' -i '%s' '%s' 2>&1 >/dev/null", bin, hyp, ref2);
    rc = run(cmd, out, sizeof out);
    CHECK(rc != 0 && strstr(out, hyp) && strstr(out, ref2) && strstr(out, "1 line") &&
              strstr(out, "2"),
          "bleu: mmt-bleu line count mismatch fails naming files (got \"%s\")", one_line(out));
    snprintf(cmd, sizeof cmd, "'%s' -i '%s' '%s/missing.txt' 2>&1 >/dev/null", bin, hyp, tmpdir);
    rc = run(cmd, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "missing.txt"),
          "bleu: mmt-bleu missing file fails naming it (got \"%s\")", one_line(out));

    snprintf(cmd, sizeof cmd, "'%s' --version", bin);
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, MMT_VERSION), "bleu: mmt-bleu --version prints %s (got \"%s\")",
          MMT_VERSION, one_line(out));

    snprintf(cmd, sizeof cmd, "'%s' '%s' --paired-bs --baseline '%s' --systems '%s' 2>/dev/null",
             bin, ref, tmp_path("base"), hyp);
    rc = run(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "(p = ") && strstr(out, "bs:1000|seed:12345"),
          "bleu: mmt-bleu --paired-bs prints p-values and the signature (got \"%s\")",
          one_line(out));

    const char *names[] = {"hyp", "ref", "ref2", "base"};
    for (size_t i = 0; i < N_OF(names); i++)
        remove(tmp_path(names[i]));
    rmdir(tmpdir);
}

void suite_bleu(void) {
    tokenizers();
    lowercasing();
    worked_values();
    smoothing();
    references();
    multi_bleu();
    chrf();
    numpy_rng();
    paired();
    cli();
}
