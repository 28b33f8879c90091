/*
 * main_probe.c - mmt-probe: make the colour-deprivation probe from
 * Multi30k, score translations on it, and write stand-in image features
 * (see probe.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "probe.h"

static const char usage[] =
    "usage: mmt-probe make [--from DIR] [--out DIR] [--seed N]\n"
    "       mmt-probe score --colours FILE [--hyp FILE] [--json]\n"
    "       mmt-probe standin --out DIR --rows N [--kind avgpool|res4frelu] [--name NAME]\n"
    "\n"
    "The colour-deprivation probe: does a multimodal model read the image?\n"
    "\n"
    "make     masks every English colour word of Multi30k En-De as [c1] .. [c4],\n"
    "         keeps the German side, and draws a 16x16 PNG per sentence whose four\n"
    "         8x8 slots show the masked colours. Reads DIR/tok/{train,val,\n"
    "         test_2016_flickr}.lc.norm.tok.{en,de}.gz (--from, default data/multi30k);\n"
    "         writes SPLIT.{en,de,colours,images.txt,npy} and images/SPLIT/ for train,\n"
    "         valid and test, and test.shuffled.{images.txt,npy} (the images given\n"
    "         to other sentences), into --out (default data/probe). --seed (default 1)\n"
    "         fixes the images; the same command gives byte-identical files.\n"
    "score    the share of masked colour words whose German colour appears in the\n"
    "         translation (one per line, --hyp FILE or standard input), against\n"
    "         SPLIT.colours; prints \"accuracy 0.9312 (1234/1325)\" (or, with --json,\n"
    "         a JSON object) on standard output, per colour on standard error.\n"
    "standin  writes DIR/NAME-resnet50-KIND.npy (NAME default \"standin\", KIND\n"
    "         default avgpool): float16 (N, 2048) avgpool or (N, 1024, 14, 14)\n"
    "         res4frelu features whose values, in [0, 1), come from a hash of\n"
    "         (row, element) and say nothing about any sentence.\n"
    "\n"
    "  -h, --help     show this help\n"
    "  --version      show mmt's version\n";

/* Usage error: the message, a pointer to --help, exit status 2. */
static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "mmt-probe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(mmt-probe --help shows the usage)\n");
    return 2;
}

/* A non-negative integer argument; 0 with *ok cleared when it is not one. */
static unsigned long long parse_count(const char *s, int *ok) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    *ok = s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0;
    return *ok ? v : 0;
}

/* -------------------------------------------------------------------- make */

static void print_summary(const probe_summary *sum, const char *out, double secs) {
    fprintf(stderr, "mmt-probe: wrote %s in %.1f s\n", out, secs);
    for (int k = 0; k < PROBE_N_SPLITS; k++) {
        const probe_split_stats *s = &sum->split[k];
        fprintf(stderr,
                "  %-5s %6ld lines, %6ld masked colour words in %6ld lines, "
                "%ld lines with more than %d colours (%ld words left unmasked)\n",
                s->name, s->lines, s->masked, s->lines_masked, s->lines_over, PROBE_MAX_MASKS,
                s->unmasked);
        fprintf(stderr, "       ");
        for (int c = 0; c < PROBE_N_COLOURS; c++)
            fprintf(stderr, " %s %ld", probe_colours[c].name, s->masked_by[c]);
        fputc('\n', stderr);
    }
}

static int cmd_make(int argc, char **argv) {
    const char *from = "data/multi30k", *out = "data/probe";
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        int ok = 1;
        if (!strcmp(argv[i], "--from") && i + 1 < argc)
            from = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = parse_count(argv[++i], &ok);
        else
            return bad_usage("make: unknown or incomplete argument %s", argv[i]);
        if (!ok) return bad_usage("make: --seed expects a non-negative integer, got %s", argv[i]);
    }
    mmt_status st = {0};
    probe_summary sum;
    double t0 = mmt_now();
    if (probe_make(from, out, seed, &sum, &st) != MMT_OK) {
        fprintf(stderr, "mmt-probe: %s\n", st.msg);
        return 1;
    }
    print_summary(&sum, out, mmt_now() - t0);
    return 0;
}

/* ------------------------------------------------------------------- score */

static void print_score(const probe_counts *c, int json) {
    double acc = c->words ? (double)c->correct / c->words : 0.0;
    if (json) {
        printf("{\"accuracy\": %.4f, \"correct\": %ld, \"words\": %ld, \"lines\": %ld, "
               "\"per_colour\": {",
               acc, c->correct, c->words, c->lines);
        for (int k = 0; k < PROBE_N_COLOURS; k++)
            printf("%s\"%s\": {\"correct\": %ld, \"words\": %ld}", k ? ", " : "",
                   probe_colours[k].name, c->correct_by[k], c->words_by[k]);
        printf("}}\n");
        return;
    }
    printf("accuracy %.4f (%ld/%ld)\n", acc, c->correct, c->words);
    for (int k = 0; k < PROBE_N_COLOURS; k++)
        if (c->words_by[k])
            fprintf(stderr, "  %-6s %.4f (%ld/%ld)\n", probe_colours[k].name,
                    (double)c->correct_by[k] / c->words_by[k], c->correct_by[k],
                    c->words_by[k]);
}

static int cmd_score(int argc, char **argv) {
    const char *colours = NULL, *hyp = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--colours") && i + 1 < argc)
            colours = argv[++i];
        else if (!strcmp(argv[i], "--hyp") && i + 1 < argc)
            hyp = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else
            return bad_usage("score: unknown or incomplete argument %s", argv[i]);
    }
    if (!colours) return bad_usage("score: %s is required", "--colours FILE");

    // the hypotheses from a file or standard input, read the same way
    mmt_status st = {0};
    data_lines cl, hl;
    if (data_read_lines(&cl, colours, &st) != MMT_OK) {
        fprintf(stderr, "mmt-probe: %s\n", st.msg);
        return 1;
    }
    if (data_read_lines(&hl, hyp ? hyp : "/dev/stdin", &st) != MMT_OK) {
        fprintf(stderr, "mmt-probe: %s\n", st.msg);
        data_lines_free(&cl);
        return 1;
    }
    probe_counts c = {0};
    int rc = probe_score((const char *const *)cl.line, cl.n, colours,
                         (const char *const *)hl.line, hl.n, hyp ? hyp : "stdin", &c, &st);
    data_lines_free(&cl);
    data_lines_free(&hl);
    if (rc != MMT_OK) {
        fprintf(stderr, "mmt-probe: %s\n", st.msg);
        return 1;
    }
    print_score(&c, json);
    return 0;
}

/* ----------------------------------------------------------------- standin */

static int cmd_standin(int argc, char **argv) {
    const char *out = NULL, *name = "standin", *kind_name = "avgpool";
    long long rows = -1;
    for (int i = 0; i < argc; i++) {
        int ok = 1;
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = (long long)parse_count(argv[++i], &ok);
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc)
            kind_name = argv[++i];
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else
            return bad_usage("standin: unknown or incomplete argument %s", argv[i]);
        if (!ok || rows > (1ll << 32))
            return bad_usage("standin: --rows expects a count below 2^32, got %s", argv[i]);
    }
    if (!out || rows < 0) return bad_usage("standin: %s are required", "--out DIR and --rows N");
    probe_standin_kind kind;
    if (!strcmp(kind_name, "avgpool"))
        kind = PROBE_STANDIN_AVGPOOL;
    else if (!strcmp(kind_name, "res4frelu"))
        kind = PROBE_STANDIN_RES4FRELU;
    else
        return bad_usage("standin: --kind is avgpool or res4frelu, got %s", kind_name);
    if (!*name || strchr(name, '/'))
        return bad_usage("standin: --name must be a plain file name part, got \"%s\"", name);

    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s-resnet50-%s.npy", out, name, kind_name) >=
        (int)sizeof path)
        return bad_usage("standin: --out is too long: %s", out);
    mmt_status st = {0};
    double t0 = mmt_now();
    if (probe_standin(path, (long)rows, kind, &st) != MMT_OK) {
        fprintf(stderr, "mmt-probe: %s\n", st.msg);
        return 1;
    }
    fprintf(stderr, "mmt-probe: wrote %s (%lld rows of %s stand-ins) in %.1f s\n", path, rows,
            kind_name, mmt_now() - t0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("mmt-probe %s\n", MMT_VERSION);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    if (!strcmp(cmd, "make")) return cmd_make(argc - 2, argv + 2);
    if (!strcmp(cmd, "score")) return cmd_score(argc - 2, argv + 2);
    if (!strcmp(cmd, "standin")) return cmd_standin(argc - 2, argv + 2);
    return bad_usage("unknown command %s (make, score or standin)", cmd);
}
