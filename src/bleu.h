/*
 * bleu.h - corpus BLEU and chrF as sacreBLEU 2.3.1 computes them, and its
 * paired significance tests, so that mmt-bleu and the trainer's validation
 * share one implementation.
 *
 * Every number follows sacreBLEU's defaults: BLEU with the 13a tokenizer,
 * n-grams up to 4 summed over the corpus, exp smoothing, the closest
 * reference length (ties to the shorter); chrF2 with character n-grams up
 * to 6, no word n-grams, whitespace removed, per-order statistics summed
 * over the corpus; paired bootstrap resampling (1000 resamples) and
 * approximate randomisation (10000 trials) drawing the same random numbers
 * as numpy.random.default_rng(seed), seed 12345.
 *
 * Text is UTF-8. A reference stream is an array of lines; refs[r][i] is
 * line i of stream r. As in sacreBLEU, an empty reference line ("") is left
 * out of that segment, and a segment whose references are all empty is an
 * error.
 *
 * Validation BLEU in the trainer, one reference per line:
 *     bleu_config cfg;
 *     bleu_config_default(&cfg);
 *     const char *const *refs[1] = {ref_lines};
 *     bleu_score s;
 *     if (bleu_corpus(&cfg, hyp_lines, refs, 1, n, &s, &st) != MMT_OK) ...
 *
 * Where agreement with sacreBLEU rests on an approximation:
 *   - Unicode tables come from the Python and `regex` versions named in
 *     bleu.c; characters those versions classify differently may differ;
 *   - the final-sigma rule of lowercasing uses approximate Cased and
 *     Case_Ignorable properties (see uni_is_cased in bleu.c);
 *   - bootstrap resamples are scored as sacreBLEU does with numpy 1.x
 *     (float32 statistics; chrF's per-order ratios rounded to float), which
 *     is exact while every summed statistic stays below 2^24.
 *
 * Contents:
 *   configuration ........ bleu_config, bleu_config_default
 *   preprocessing ........ bleu_lowercase, bleu_tokenize, bleu_rstrip,
 *                          bleu_utf8_invalid
 *   BLEU ................. bleu_segment_stats, bleu_from_stats, bleu_corpus,
 *                          bleu_signature
 *   chrF ................. chrf_segment_stats, chrf_from_stats, chrf_corpus,
 *                          chrf_signature
 *   either metric ........ bleu_metric, bleu_metric_stats, bleu_metric_score
 *   numpy's generator .... bleu_rng_seed, bleu_rng_next64, bleu_rng_next32,
 *                          bleu_rng_below, bleu_rng_bit
 *   significance ......... bleu_bootstrap_ci, bleu_paired_bs, bleu_paired_ar
 */
#ifndef MMT_BLEU_H
#define MMT_BLEU_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* The sacreBLEU release whose numbers these are; it ends every signature. */
#define BLEU_SACREBLEU_VERSION "2.3.1"

#define BLEU_MAX_ORDER 4                     /* word n-grams 1..4 */
#define BLEU_NSTATS (2 + 2 * BLEU_MAX_ORDER) /* hyp_len, ref_len, correct[4], total[4] */
#define CHRF_ORDER 6                         /* character n-grams 1..6 */
#define CHRF_BETA 2                          /* recall weighs beta^2 = 4 times precision */
#define CHRF_NSTATS (3 * CHRF_ORDER)         /* per order: hyp, ref, match */

/* ---------------------------------------------------------- configuration */

typedef enum { BLEU_TOK_NONE, BLEU_TOK_13A, BLEU_TOK_INTL, BLEU_TOK_CHAR } bleu_tokenizer;
typedef enum {
    BLEU_SMOOTH_EXP,
    BLEU_SMOOTH_FLOOR,
    BLEU_SMOOTH_ADD_K,
    BLEU_SMOOTH_NONE
} bleu_smooth;

typedef struct {
    bleu_tokenizer tokenize; /* default 13a */
    int lowercase;           /* lowercase before tokenizing (sacreBLEU -lc) */
    bleu_smooth smooth;      /* default exp */
    double smooth_value;     /* floor / add-k value; < 0 means the default (0.1 / 1) */
} bleu_config;

/* sacreBLEU's defaults: 13a, mixed case, exp smoothing. */
void bleu_config_default(bleu_config *cfg);

/* Names as on the command line ("13a", "add-k", ...); -1 when unknown. */
int bleu_tokenizer_from_name(const char *name);
int bleu_smooth_from_name(const char *name);
const char *bleu_tokenizer_name(bleu_tokenizer tok);
const char *bleu_smooth_name(bleu_smooth smooth);

/* ---------------------------------------------------------- preprocessing */

/* Python's str.lower() on UTF-8 text (full Unicode mapping; U+0130 becomes
 * "i" + U+0307; capital sigma becomes final sigma at the end of a word; ß
 * stays). Returns a malloc'd string, or NULL when s is not valid UTF-8. */
char *bleu_lowercase(const char *s);

/* What BLEU sees of one line: optional lowercasing, trailing whitespace
 * stripped, the tokenizer applied, and the tokens joined by single spaces
 * (the tokens are those of Python's str.split(), which splits on Unicode
 * whitespace). Returns a malloc'd string, or NULL when line is not valid
 * UTF-8. */
char *bleu_tokenize(const char *line, bleu_tokenizer tok, int lowercase);

/* Python's str.rstrip(): cut trailing Unicode whitespace from s in place. */
void bleu_rstrip(char *s);

/* Byte offset of the first invalid UTF-8 sequence in s[0..len), or -1. */
long bleu_utf8_invalid(const char *s, size_t len);

/* ------------------------------------------------------------------- BLEU */

typedef struct {
    double score;                      /* 0..100 */
    double precisions[BLEU_MAX_ORDER]; /* percent, after smoothing */
    double bp;                         /* brevity penalty */
    double ratio;                      /* hyp_len / ref_len; 0 when ref_len is 0 */
    int64_t hyp_len, ref_len;          /* tokens, summed over the corpus */
    int64_t correct[BLEU_MAX_ORDER];   /* clipped n-gram matches, summed */
    int64_t total[BLEU_MAX_ORDER];     /* hypothesis n-grams, summed */
} bleu_score;

/* Statistics of one segment: hyp against its nrefs references (NULL or ""
 * references are skipped). stats gets {hyp_len, ref_len, correct[4],
 * total[4]}. MMT_ERR when the text is not UTF-8 or no reference is left. */
int bleu_segment_stats(const bleu_config *cfg, const char *hyp, const char *const *refs, int nrefs,
                       int64_t stats[BLEU_NSTATS], mmt_status *st);

/* The score from statistics summed over a corpus (sacreBLEU's compute_bleu). */
void bleu_from_stats(const bleu_config *cfg, const int64_t stats[BLEU_NSTATS], bleu_score *out);

/* Corpus BLEU of n hypotheses against nrefs reference streams. */
int bleu_corpus(const bleu_config *cfg, const char *const *hyps, const char *const *const *refs,
                int nrefs, size_t n, bleu_score *out, mmt_status *st);

/* "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1" into buf;
 * nrefs < 0 writes "var" (segments with differing numbers of references);
 * test, if not NULL, goes after nrefs (e.g. "bs:1000|seed:12345"). */
void bleu_signature(const bleu_config *cfg, int nrefs, const char *test, char *buf, size_t size);

/* ------------------------------------------------------------------- chrF */

/* Statistics of one segment against the reference that gives the best
 * sentence-level chrF; lowercase applies Python's str.lower() first. */
int chrf_segment_stats(const char *hyp, const char *const *refs, int nrefs, int lowercase,
                       int64_t stats[CHRF_NSTATS], mmt_status *st);

/* chrF2 (0..100) from statistics summed over a corpus: precision and recall
 * averaged over the orders that occur in both sides, then the F-score. */
double chrf_from_stats(const int64_t stats[CHRF_NSTATS]);

int chrf_corpus(const char *const *hyps, const char *const *const *refs, int nrefs, size_t n,
                int lowercase, double *score, mmt_status *st);

/* "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1", as above. */
void chrf_signature(int lowercase, int nrefs, const char *test, char *buf, size_t size);

/* ------------------------------------------------------------ either metric */

typedef enum { BLEU_METRIC_BLEU, BLEU_METRIC_CHRF } bleu_metric_kind;

typedef struct {
    bleu_metric_kind kind;
    bleu_config bleu;   /* BLEU only */
    int chrf_lowercase; /* chrF only */
} bleu_metric;

int bleu_metric_nstats(const bleu_metric *m);       /* BLEU_NSTATS or CHRF_NSTATS */
const char *bleu_metric_name(const bleu_metric *m); /* "BLEU" or "chrF2" */

/* Per-segment statistics of a corpus into stats (n rows of nstats). nrefs_used
 * (if not NULL) gets the number of non-empty references per segment, or -1
 * when it varies. Errors name the hypothesis or reference line. */
int bleu_metric_stats(const bleu_metric *m, const char *const *hyps, const char *const *const *refs,
                      int nrefs, size_t n, int64_t *stats, int *nrefs_used, mmt_status *st);

/* The metric's score from statistics summed over segments. */
double bleu_metric_score(const bleu_metric *m, const int64_t *sum);

/* --------------------------------------------------------- numpy's generator */

/* numpy.random.default_rng(seed): SeedSequence(seed) feeding PCG64, with
 * numpy's bounded-integer and boolean draws, so that resamples match
 * sacreBLEU's (which draws them with numpy) index for index. */
typedef struct {
    unsigned __int128 state, inc;
    int has32; /* PCG64 hands out 64 bits as two 32-bit halves */
    uint32_t next32;
    int nbits; /* bits left in bitbuf for boolean draws */
    uint32_t bitbuf;
} bleu_rng;

void bleu_rng_seed(bleu_rng *rng, uint64_t seed);
uint32_t bleu_rng_next32(bleu_rng *rng);
uint64_t bleu_rng_next64(bleu_rng *rng);
/* One element of rng.integers(0, n) (n >= 1, n <= 2^32). */
uint32_t bleu_rng_below(bleu_rng *rng, uint64_t n);
/* One element of rng.integers(2, dtype=bool) (a run of draws from one call). */
int bleu_rng_bit(bleu_rng *rng);

/* ------------------------------------------------------------ significance */

typedef struct {
    double score; /* the actual corpus score */
    double mean;  /* bootstrap estimate of the true mean; NAN when not resampled */
    double ci;    /* half-width of the 95% interval around mean; NAN likewise */
    double p;     /* p-value against the baseline; NAN for the baseline itself */
} bleu_paired_result;

/* Score, mean and 95% interval of one system from n_samples bootstrap
 * resamples of its n segment statistics (sacreBLEU's baseline column). */
void bleu_bootstrap_ci(const bleu_metric *m, const int64_t *stats, size_t n, int n_samples,
                       uint64_t seed, bleu_paired_result *out);

/* Paired bootstrap resampling (sacreBLEU --paired-bs): the system against
 * the baseline on the same resamples. p = (1 + #resamples whose centred
 * |delta| exceeds the actual |delta|) / (n_samples + 1). As in sacreBLEU,
 * "exceeds" is strict, so a system identical to the baseline gets the
 * smallest p, 1 / (n_samples + 1); the same holds for bleu_paired_ar. */
void bleu_paired_bs(const bleu_metric *m, const int64_t *base, const int64_t *sys, size_t n,
                    int n_samples, uint64_t seed, bleu_paired_result *out);

/* Paired approximate randomisation (sacreBLEU --paired-ar): each trial swaps
 * each segment's outputs between the two systems with probability 1/2.
 * p = (1 + #trials whose |delta| exceeds the actual) / (n_trials + 1). */
void bleu_paired_ar(const bleu_metric *m, const int64_t *base, const int64_t *sys, size_t n,
                    int n_trials, uint64_t seed, bleu_paired_result *out);

#endif
