/*
 * main_bleu.c - mmt-bleu: corpus BLEU / chrF of a hypothesis file against
 * one or more references, or paired significance tests between a baseline
 * and other systems, with sacreBLEU 2.3.1's numbers (see bleu.h).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"

static const char usage[] =
    "usage: mmt-bleu [options] REF [REF ...] < HYP\n"
    "       mmt-bleu [options] -i HYP REF [REF ...]\n"
    "       mmt-bleu [options] --paired-bs|--paired-ar --baseline FILE REF [REF ...]\n"
    "                --systems FILE [FILE ...]\n"
    "\n"
    "Corpus BLEU and chrF of a detokenized hypothesis against one or more references\n"
    "(one segment per line, UTF-8). The numbers follow sacreBLEU 2.3.1 with its\n"
    "defaults: BLEU with the 13a tokenizer and exp smoothing; chrF2 with character\n"
    "6-grams, no word n-grams, whitespace removed. Empty reference lines are skipped;\n"
    "a line whose references are all empty is an error, as in sacreBLEU.\n"
    "\n"
    "options:\n"
    "  -i, --input FILE         hypothesis file (default: standard input)\n"
    "  -m, --metrics NAME ...   bleu, chrf, or both (default: bleu)\n"
    "  -tok, --tokenize NAME    BLEU tokenizer: none | 13a | intl | char (default: 13a)\n"
    "  -lc, --lowercase         lowercase before BLEU (case:lc)\n"
    "  --chrf-lowercase         lowercase before chrF\n"
    "  -s, --smooth NAME        BLEU smoothing: exp | floor | add-k | none (default: exp);\n"
    "                           also spelled --smooth-method\n"
    "  -sv, --smooth-value X    value for floor (default 0.1) and add-k (default 1)\n"
    "  -w, --width N            decimals of the scores (default: 2)\n"
    "  -b, --score-only         print only the score(s)\n"
    "  -f, --format text|json   output format (default: text)\n"
    "  --paired-bs              paired bootstrap resampling test\n"
    "  --paired-ar              paired approximate randomisation test\n"
    "  --baseline FILE          the baseline system of a paired test\n"
    "  --systems FILE ...       the systems compared with it; takes every following\n"
    "                           argument up to the next option, so put the REF files\n"
    "                           before it (a system named like the baseline is skipped)\n"
    "  --paired-bs-n N          bootstrap resamples (default: 1000)\n"
    "  --paired-ar-n N          randomisation trials (default: 10000)\n"
    "  --seed N                 seed of the resampling (default: 12345, as sacreBLEU;\n"
    "                           the draws are numpy's default_rng(seed), as sacreBLEU's)\n"
    "  -h, --help               show this help\n"
    "  -V, --version            show mmt's version\n"
    "\n"
    "Output (text): per metric a score line, e.g.\n"
    "  BLEU = 29.06 83.3/40.0/25.0/16.7 (BP = 0.846 ratio = 0.857 hyp_len = 6 ref_len = 7)\n"
    "then its signature line, e.g.\n"
    "  nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1\n"
    "Paired tests print a table: per system and metric the score, the bootstrap mean\n"
    "and 95% confidence half-width (--paired-bs), and the p-value against the\n"
    "baseline; '*' marks p < 0.05. As in sacreBLEU, a system identical to the\n"
    "baseline gets the smallest p, 1/(N+1). Only results go to standard output.\n";

/* ------------------------------------------------------------- arguments */

typedef struct {
    const char *input; /* hypothesis file; NULL: standard input */
    const char *refs[64];
    int nrefs;
    const char *baseline; /* paired tests */
    const char *systems[256];
    int nsystems;
    int use_bleu, use_chrf;
    bleu_config bleu;
    int chrf_lowercase;
    int width, score_only, json;
    int paired; /* 0, 'b' (bootstrap) or 'a' (randomisation) */
    int bs_n, ar_n;
    uint64_t seed;
} options;

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "mmt-bleu: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(mmt-bleu --help shows the usage)\n");
    exit(2);
}

static long parse_long(const char *opt, const char *s, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min) die_usage("%s: expected a number", opt);
    return v;
}

static const char *need_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage("%s needs a value", argv[*i]);
    return argv[++*i];
}

static int is_opt(const char *s, const char *a, const char *b) {
    return strcmp(s, a) == 0 || (b && strcmp(s, b) == 0);
}

static void parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    bleu_config_default(&o->bleu);
    o->width = 2, o->bs_n = 1000, o->ar_n = 10000, o->seed = 12345;
    int metrics_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_opt(a, "-h", "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (is_opt(a, "-V", "--version")) {
            printf("mmt-bleu %s (scores as sacreBLEU %s)\n", MMT_VERSION, BLEU_SACREBLEU_VERSION);
            exit(0);
        } else if (is_opt(a, "-i", "--input")) {
            o->input = need_value(argc, argv, &i);
        } else if (is_opt(a, "-m", "--metrics")) {
            o->use_bleu = o->use_chrf = 0;
            metrics_given = 1;
            while (i + 1 < argc && (!strcmp(argv[i + 1], "bleu") || !strcmp(argv[i + 1], "chrf"))) {
                if (!strcmp(argv[++i], "bleu"))
                    o->use_bleu = 1;
                else
                    o->use_chrf = 1;
            }
            if (!o->use_bleu && !o->use_chrf) die_usage("%s: expected bleu and/or chrf", a);
        } else if (is_opt(a, "-tok", "--tokenize")) {
            const char *v = need_value(argc, argv, &i);
            int t = bleu_tokenizer_from_name(v);
            if (t < 0) die_usage("unknown tokenizer '%s' (none, 13a, intl, char)", v);
            o->bleu.tokenize = (bleu_tokenizer)t;
        } else if (is_opt(a, "-lc", "--lowercase")) {
            o->bleu.lowercase = 1;
        } else if (is_opt(a, "--chrf-lowercase", NULL)) {
            o->chrf_lowercase = 1;
        } else if (is_opt(a, "-s", "--smooth") || is_opt(a, "--smooth-method", NULL)) {
            const char *v = need_value(argc, argv, &i);
            int s = bleu_smooth_from_name(v);
            if (s < 0) die_usage("unknown smoothing '%s' (exp, floor, add-k, none)", v);
            o->bleu.smooth = (bleu_smooth)s;
        } else if (is_opt(a, "-sv", "--smooth-value")) {
            const char *v = need_value(argc, argv, &i);
            char *end;
            o->bleu.smooth_value = strtod(v, &end);
            if (*end || end == v || o->bleu.smooth_value < 0)
                die_usage("--smooth-value: expected a number >= 0, got '%s'", v);
        } else if (is_opt(a, "-w", "--width")) {
            o->width = (int)parse_long(a, need_value(argc, argv, &i), 0);
            if (o->width > 17) die_usage("%s: at most 17 decimals", a);
        } else if (is_opt(a, "-b", "--score-only")) {
            o->score_only = 1;
        } else if (is_opt(a, "-f", "--format")) {
            const char *v = need_value(argc, argv, &i);
            if (strcmp(v, "json") && strcmp(v, "text")) die_usage("unknown format '%s'", v);
            o->json = !strcmp(v, "json");
        } else if (is_opt(a, "--paired-bs", "-pbs")) {
            o->paired = 'b';
        } else if (is_opt(a, "--paired-ar", "-par")) {
            o->paired = 'a';
        } else if (is_opt(a, "--paired-bs-n", NULL)) {
            o->bs_n = (int)parse_long(a, need_value(argc, argv, &i), 1);
        } else if (is_opt(a, "--paired-ar-n", NULL)) {
            o->ar_n = (int)parse_long(a, need_value(argc, argv, &i), 1);
        } else if (is_opt(a, "--seed", NULL)) {
            const char *v = need_value(argc, argv, &i);
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-')
                die_usage("--seed: expected a number >= 0, got '%s'", v);
        } else if (is_opt(a, "--baseline", NULL)) {
            o->baseline = need_value(argc, argv, &i);
        } else if (is_opt(a, "--systems", NULL)) {
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                if (o->nsystems == (int)(sizeof o->systems / sizeof *o->systems))
                    die_usage("%s: too many systems", a);
                o->systems[o->nsystems++] = argv[++i];
            }
            if (o->nsystems == 0) die_usage("%s needs at least one file", a);
        } else if (a[0] == '-' && a[1] != '\0') {
            die_usage("unknown option '%s'", a);
        } else {
            if (o->nrefs == (int)(sizeof o->refs / sizeof *o->refs))
                die_usage("too many references (%s)", a);
            o->refs[o->nrefs++] = a;
        }
    }
    if (!metrics_given) o->use_bleu = 1;

    // the combinations that make sense
    if (o->nrefs == 0) die_usage("%s", "no reference file given");
    if (o->paired && (!o->baseline || o->nsystems == 0))
        die_usage("%s", "a paired test needs --baseline FILE and --systems FILE ...");
    if (!o->paired && (o->baseline || o->nsystems))
        die_usage("%s", "--baseline and --systems go with --paired-bs or --paired-ar");
    if (o->paired && o->input) die_usage("%s", "-i/--input does not go with a paired test");
}

/* ----------------------------------------------------------------- input */

typedef struct {
    const char *name; /* for messages */
    char *buf;        /* the file, split in place into lines */
    char **lines;
    size_t n;
} text_file;

static void free_lines(text_file *f) {
    free(f->buf);
    free(f->lines);
    f->buf = NULL;
    f->lines = NULL;
}

/* Read a file (NULL: standard input) as sacreBLEU does: lines end at '\n'
 * (a last line without one still counts), trailing whitespace is cut. It
 * reads standard input with Python's universal newlines, so there "\r" and
 * "\r\n" end lines too. */
static int read_lines(const char *path, text_file *f, mmt_status *st) {
    size_t len = 0;
    f->name = path ? path : "standard input";
    f->buf = path ? mmt_read_file(path, &len, st) : mmt_read_stream(stdin, f->name, &len, st);
    if (!f->buf) return MMT_ERR;

    // split into lines; check each for NUL bytes and UTF-8
    int universal = path == NULL;
    size_t cap = 1024;
    f->lines = mmt_malloc(cap * sizeof *f->lines);
    f->n = 0;
    for (size_t start = 0, next; start < len; start = next) {
        size_t end = start;
        while (end < len && f->buf[end] != '\n' && !(universal && f->buf[end] == '\r'))
            end++;
        next = end + 1;
        if (universal && end + 1 < len && f->buf[end] == '\r' && f->buf[end + 1] == '\n') next++;
        long bad = bleu_utf8_invalid(f->buf + start, end - start);
        if (memchr(f->buf + start, '\0', end - start))
            mmt_fail(st, "%s:%zu: NUL byte in the line", f->name, f->n + 1);
        else if (bad >= 0)
            mmt_fail(st, "%s:%zu: invalid UTF-8 at byte %ld of the line", f->name, f->n + 1,
                     bad + 1);
        if (st->code == MMT_ERR) {
            free_lines(f);
            return MMT_ERR;
        }
        f->buf[end] = '\0';
        if (f->n == cap) f->lines = mmt_realloc(f->lines, (cap *= 2) * sizeof *f->lines);
        f->lines[f->n] = f->buf + start;
        bleu_rstrip(f->lines[f->n]);
        f->n++;
    }
    return MMT_OK;
}

/* ---------------------------------------------------------------- output */

/* A JSON number as Python's float(f"{x:.{w}f}") prints: at least one decimal. */
static void json_number(double x, int width) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", width, x);
    char *dot = strchr(buf, '.');
    if (!dot) {
        printf("%s.0", buf);
        return;
    }
    char *end = buf + strlen(buf) - 1;
    while (end > dot + 1 && *end == '0')
        *end-- = '\0';
    printf("%s", buf);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* "64.3/40.0/25.0/0.0 (BP = 0.846 ratio = 0.857 hyp_len = 6 ref_len = 7)" */
static void bleu_verbose(const bleu_score *s, char *buf, size_t size) {
    snprintf(buf, size,
             "%.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)",
             s->precisions[0], s->precisions[1], s->precisions[2], s->precisions[3], s->bp,
             s->ratio, (long long)s->hyp_len, (long long)s->ref_len);
}

/* Metric `index` of `count` for a single system: as text, or as a JSON
 * object like sacreBLEU's (a list of them for several metrics). */
static void print_single(const options *o, const char *name, double score, const char *verbose,
                         const char *sig, int index, int count) {
    if (o->score_only) {
        printf("%.*f\n", o->width, score);
        return;
    }
    if (!o->json) {
        printf("%s = %.*f%s%s\n%s\n", name, o->width, score, verbose ? " " : "",
               verbose ? verbose : "", sig);
        return;
    }
    if (index == 0 && count > 1) printf("[\n");
    printf("{\n \"name\": \"%s\",\n \"score\": ", name);
    json_number(score, o->width);
    printf(",\n \"signature\": \"%s\"", sig);
    if (verbose) {
        printf(",\n \"verbose_score\": ");
        json_string(verbose);
    }
    // the signature's fields, each a string
    char copy[512];
    snprintf(copy, sizeof copy, "%s", sig);
    for (char *save = NULL, *kv = strtok_r(copy, "|", &save); kv; kv = strtok_r(NULL, "|", &save)) {
        char *colon = strchr(kv, ':');
        *colon = '\0';
        printf(",\n \"%s\": \"%s\"", kv, colon + 1);
    }
    printf("\n}");
    printf(count > 1 ? (index + 1 == count ? "\n]\n" : ",\n") : "\n");
}

/* ------------------------------------------------------------ single run */

static int score_single(const options *o, const text_file *hyp, const char *const *const *refs,
                        mmt_status *st) {
    int count = o->use_bleu + o->use_chrf, at = 0;
    char sig[512], verbose[256];
    if (o->use_bleu) {
        bleu_metric m = {BLEU_METRIC_BLEU, o->bleu, 0};
        int64_t *stats = mmt_malloc((hyp->n ? hyp->n : 1) * BLEU_NSTATS * sizeof *stats);
        int nrefs_used = 0;
        if (bleu_metric_stats(&m, (const char *const *)hyp->lines, refs, o->nrefs, hyp->n, stats,
                              &nrefs_used, st) != MMT_OK) {
            free(stats);
            return MMT_ERR;
        }
        int64_t sum[BLEU_NSTATS] = {0};
        for (size_t i = 0; i < hyp->n; i++)
            for (int k = 0; k < BLEU_NSTATS; k++)
                sum[k] += stats[i * BLEU_NSTATS + k];
        free(stats);
        bleu_score s;
        bleu_from_stats(&o->bleu, sum, &s);
        bleu_signature(&o->bleu, nrefs_used, NULL, sig, sizeof sig);
        bleu_verbose(&s, verbose, sizeof verbose);
        print_single(o, "BLEU", s.score, verbose, sig, at++, count);
    }
    if (o->use_chrf) {
        bleu_metric m = {BLEU_METRIC_CHRF, o->bleu, o->chrf_lowercase};
        int64_t *stats = mmt_malloc((hyp->n ? hyp->n : 1) * CHRF_NSTATS * sizeof *stats);
        int nrefs_used = 0;
        if (bleu_metric_stats(&m, (const char *const *)hyp->lines, refs, o->nrefs, hyp->n, stats,
                              &nrefs_used, st) != MMT_OK) {
            free(stats);
            return MMT_ERR;
        }
        int64_t sum[CHRF_NSTATS] = {0};
        for (size_t i = 0; i < hyp->n; i++)
            for (int k = 0; k < CHRF_NSTATS; k++)
                sum[k] += stats[i * CHRF_NSTATS + k];
        free(stats);
        chrf_signature(o->chrf_lowercase, nrefs_used, NULL, sig, sizeof sig);
        print_single(o, "chrF2", chrf_from_stats(sum), NULL, sig, at++, count);
    }
    return MMT_OK;
}

/* ---------------------------------------------------------- paired tests */

/* Display width of UTF-8 text: one column per code point. */
static int columns(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void print_padded(const char *s, int width) {
    int pad = width - columns(s);
    printf("%s%*s", s, pad > 0 ? pad : 0, "");
}

/* The paired results as a table: a row per system, a column per metric. */
static void print_paired_table(const options *o, const text_file *systems, int nsys,
                               const bleu_metric *metrics, int nm, const bleu_paired_result *res,
                               char sigs[][512]) {
    int bs = o->paired == 'b';
    printf("%s test with %d %s, seed %llu\n",
           bs ? "Paired bootstrap resampling" : "Paired approximate randomization",
           bs ? o->bs_n : o->ar_n, bs ? "resamples" : "trials", (unsigned long long)o->seed);

    // cells: row 0 the header, row s + 1 system s; column 0 the name
    int rows = nsys + 1, cols = nm + 1;
    char(*cell)[1024] = mmt_calloc((size_t)(rows * cols), sizeof *cell);
    snprintf(cell[0], sizeof cell[0], "System");
    for (int k = 0; k < nm; k++)
        snprintf(cell[k + 1], sizeof cell[0], "%s%s", bleu_metric_name(&metrics[k]),
                 bs ? " (μ ± 95% CI)" : "");
    for (int s = 0; s < nsys; s++) {
        char(*row)[1024] = cell + (s + 1) * cols;
        snprintf(row[0], sizeof row[0], "%s%s", s == 0 ? "Baseline: " : "", systems[s].name);
        for (int k = 0; k < nm; k++) {
            const bleu_paired_result *r = &res[k * nsys + s];
            int len = bs ? snprintf(row[k + 1], sizeof row[0], "%.*f (%.*f ± %.*f)", o->width,
                                    r->score, o->width, r->mean, o->width, r->ci)
                         : snprintf(row[k + 1], sizeof row[0], "%.*f", o->width, r->score);
            if (s > 0)
                snprintf(row[k + 1] + len, sizeof row[0] - (size_t)len, " (p = %.4f)%s", r->p,
                         r->p < 0.05 ? "*" : "");
        }
    }

    // print with each column as wide as its widest cell
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            int width = 0;
            for (int r = 0; r < rows; r++)
                if (columns(cell[r * cols + j]) > width) width = columns(cell[r * cols + j]);
            printf("%s", j ? "  " : "");
            print_padded(cell[i * cols + j], j + 1 < cols ? width : 0);
        }
        printf("\n");
    }
    printf("* p < 0.05: the difference from the baseline is unlikely to be chance\n");
    for (int k = 0; k < nm; k++)
        printf("%-6s %s\n", bleu_metric_name(&metrics[k]), sigs[k]);
    free(cell);
}

static int paired_tests(const options *o, text_file *systems, int nsys,
                        const char *const *const *refs, mmt_status *st) {
    bleu_metric metrics[2];
    int nm = 0;
    if (o->use_bleu) metrics[nm++] = (bleu_metric){BLEU_METRIC_BLEU, o->bleu, 0};
    if (o->use_chrf) metrics[nm++] = (bleu_metric){BLEU_METRIC_CHRF, o->bleu, o->chrf_lowercase};
    size_t n = systems[0].n;
    int samples = o->paired == 'b' ? o->bs_n : o->ar_n;
    bleu_paired_result *res = mmt_calloc((size_t)(nm * nsys), sizeof *res);
    char sigs[2][512];

    // per metric: statistics of every system, then each against the baseline
    for (int k = 0; k < nm; k++) {
        int nstats = bleu_metric_nstats(&metrics[k]), nrefs_used = 0;
        int64_t *stats = mmt_malloc((size_t)nsys * n * (size_t)nstats * sizeof *stats);
        for (int s = 0; s < nsys; s++) {
            if (bleu_metric_stats(&metrics[k], (const char *const *)systems[s].lines, refs,
                                  o->nrefs, n, stats + (size_t)s * n * nstats, &nrefs_used,
                                  st) != MMT_OK) {
                free(stats);
                free(res);
                return MMT_ERR;
            }
        }
        bleu_paired_result *r = res + k * nsys;
        if (o->paired == 'b') {
            bleu_bootstrap_ci(&metrics[k], stats, n, samples, o->seed, &r[0]);
            for (int s = 1; s < nsys; s++)
                bleu_paired_bs(&metrics[k], stats, stats + (size_t)s * n * nstats, n, samples,
                               o->seed, &r[s]);
        } else {
            int64_t sum[CHRF_NSTATS] = {0};
            for (size_t i = 0; i < n; i++)
                for (int c = 0; c < nstats; c++)
                    sum[c] += stats[i * nstats + c];
            r[0] = (bleu_paired_result){bleu_metric_score(&metrics[k], sum), NAN, NAN, NAN};
            for (int s = 1; s < nsys; s++)
                bleu_paired_ar(&metrics[k], stats, stats + (size_t)s * n * nstats, n, samples,
                               o->seed, &r[s]);
        }
        free(stats);
        char test[64];
        snprintf(test, sizeof test, "%s:%d|seed:%llu", o->paired == 'b' ? "bs" : "ar", samples,
                 (unsigned long long)o->seed);
        if (metrics[k].kind == BLEU_METRIC_BLEU)
            bleu_signature(&o->bleu, nrefs_used, test, sigs[k], sizeof sigs[k]);
        else
            chrf_signature(o->chrf_lowercase, nrefs_used, test, sigs[k], sizeof sigs[k]);
    }

    // report
    if (o->json) {
        printf("{\n \"test\": \"%s\",\n \"%s\": %d,\n \"seed\": %llu,\n \"baseline\": ",
               o->paired == 'b' ? "paired-bs" : "paired-ar",
               o->paired == 'b' ? "resamples" : "trials", samples, (unsigned long long)o->seed);
        json_string(systems[0].name);
        printf(",\n \"systems\": [\n");
        for (int s = 0; s < nsys; s++) {
            printf("  {\"name\": ");
            json_string(systems[s].name);
            for (int k = 0; k < nm; k++) {
                const bleu_paired_result *r = &res[k * nsys + s];
                printf(", \"%s\": {\"score\": ", bleu_metric_name(&metrics[k]));
                json_number(r->score, o->width);
                if (o->paired == 'b') {
                    printf(", \"mean\": ");
                    json_number(r->mean, o->width);
                    printf(", \"ci\": ");
                    json_number(r->ci, o->width);
                }
                if (s > 0) printf(", \"p_value\": %.4f", r->p);
                printf("}");
            }
            printf("}%s\n", s + 1 < nsys ? "," : "");
        }
        printf(" ],\n \"signatures\": {");
        for (int k = 0; k < nm; k++)
            printf("%s\"%s\": \"%s\"", k ? ", " : "", bleu_metric_name(&metrics[k]), sigs[k]);
        printf("}\n}\n");
    } else {
        print_paired_table(o, systems, nsys, metrics, nm, res, sigs);
    }
    free(res);
    return MMT_OK;
}

/* ------------------------------------------------------------------ main */

/* The agreements sacreBLEU checks before scoring: every file has as many
 * lines as the references, none is empty, and each line has a reference. */
static int check_inputs(const text_file *hyps, int nsys, const text_file *refs, int nrefs,
                        mmt_status *st) {
    for (int s = 0; s < nsys; s++) {
        if (hyps[s].n == 0) return mmt_fail(st, "%s: no lines", hyps[s].name);
        for (int r = 0; r < nrefs; r++)
            if (refs[r].n != hyps[s].n)
                return mmt_fail(st, "%s has %zu lines but %s has %zu", hyps[s].name, hyps[s].n,
                                refs[r].name, refs[r].n);
    }
    // empty reference lines are skipped, but a line needs one reference left
    for (size_t i = 0; i < refs[0].n; i++) {
        int any = 0;
        for (int r = 0; r < nrefs; r++)
            any |= refs[r].lines[i][0] != '\0';
        if (any) continue;
        if (nrefs == 1)
            return mmt_fail(st,
                            "%s:%zu: empty reference line (sacreBLEU rejects a segment "
                            "without a reference)",
                            refs[0].name, i + 1);
        return mmt_fail(st,
                        "line %zu is empty in all %d references (sacreBLEU rejects a "
                        "segment without a reference)",
                        i + 1, nrefs);
    }
    return MMT_OK;
}

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);
    mmt_status st = {0};
    int rc = MMT_ERR;

    // hypotheses: one file, or the baseline and the systems
    const char *names[257];
    int nsys = 0;
    if (o.paired) {
        names[nsys++] = o.baseline;
        for (int s = 0; s < o.nsystems; s++)
            if (strcmp(o.systems[s], o.baseline) != 0) names[nsys++] = o.systems[s];
        if (nsys == 1) die_usage("%s", "--systems names only the baseline");
    } else {
        names[nsys++] = o.input;
    }

    // read and check everything, then score
    text_file *hyps = mmt_calloc((size_t)nsys, sizeof *hyps);
    text_file *refs = mmt_calloc((size_t)o.nrefs, sizeof *refs);
    const char ***ref_lines = mmt_calloc((size_t)o.nrefs, sizeof *ref_lines);
    int nread_h = 0, nread_r = 0;
    for (; nread_r < o.nrefs; nread_r++)
        if (read_lines(o.refs[nread_r], &refs[nread_r], &st) != MMT_OK) goto done;
    for (; nread_h < nsys; nread_h++)
        if (read_lines(names[nread_h], &hyps[nread_h], &st) != MMT_OK) goto done;
    if (check_inputs(hyps, nsys, refs, o.nrefs, &st) != MMT_OK) goto done;
    for (int r = 0; r < o.nrefs; r++)
        ref_lines[r] = (const char **)refs[r].lines;
    const char *const *const *ref_view = (const char *const *const *)ref_lines;
    rc = o.paired ? paired_tests(&o, hyps, nsys, ref_view, &st)
                  : score_single(&o, &hyps[0], ref_view, &st);

done:
    if (rc != MMT_OK) fprintf(stderr, "mmt-bleu: error: %s\n", st.msg);
    for (int s = 0; s < nread_h; s++)
        free_lines(&hyps[s]);
    for (int r = 0; r < nread_r; r++)
        free_lines(&refs[r]);
    free(hyps);
    free(refs);
    free(ref_lines);
    return rc == MMT_OK ? 0 : 1;
}
