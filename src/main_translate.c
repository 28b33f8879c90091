/* mmt-translate: source lines in, translations out, in input order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "translate.h"

static const char usage[] =
    "usage: mmt-translate --model CKPT [options] < SOURCE > TRANSLATIONS\n"
    "\n"
    "Translates source sentences, one a line, with a checkpoint written by mmt-train;\n"
    "writes one detokenised translation per input line, in input order. An empty\n"
    "line gives an empty line.\n"
    "\n"
    "options:\n"
    "  --model CKPT        checkpoint (.safetensors) to translate with (required)\n"
    "  --input FILE        read source lines from FILE instead of stdin\n"
    "  --output FILE       write translations to FILE instead of stdout\n"
    "  --beam N            beam size; 1 is greedy (default: the recipe's decode.beam, else 5)\n"
    "  --lenpen X          length penalty exponent: score = logprob / length^X (default 1)\n"
    "  --max-len-a A       longest output a * (source length + 1) + b tokens (default 1.2)\n"
    "  --max-len-b B       (default 10)\n"
    "  --nbest K           K hypotheses per line, as 'LINE<TAB>SCORE<TAB>TEXT' (default 1)\n"
    "  --batch-size N      sentences decoded together (default 64)\n"
    "  --batch-tokens N    at most N source tokens per batch (default 0: no limit)\n"
    "  --threads N         threads for OpenMP and OpenBLAS (default: all cores)\n"
    "  --images FEATS.npy  image features, row i for input line i (multimodal models)\n"
    "  --image-list LIST   or a list file of PNG images, one path a line, line i for line i\n"
    "  --image-index FILE  0-based image of each input line, when lines share images\n"
    "  --quiet             no speed report on stderr\n"
    "  --help, --version\n";

typedef struct {
    const char *model, *input, *output, *images, *image_list, *image_index;
    translate_opts t;
    int threads, quiet, beam_set;
} args;

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "mmt-translate: %s: expected an integer in %d..%d, got %s\n", flag, lo, hi,
                v ? v : "nothing");
        exit(2);
    }
    *out = (int)x;
    return 1;
}

static float parse_float(const char *flag, const char *v) {
    char *end;
    float x = v ? strtof(v, &end) : 0.0f;
    if (!v || *end) {
        fprintf(stderr, "mmt-translate: %s: expected a number, got %s\n", flag, v ? v : "nothing");
        exit(2);
    }
    return x;
}

static args parse(int argc, char **argv) {
    args a = {0};
    a.t.dec = decode_opts_default();
    a.t.batch_size = 64;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(f, "--version")) {
            printf("mmt-translate %s\n", MMT_VERSION);
            exit(0);
        } else if (!strcmp(f, "--model") && v) {
            a.model = v, i++;
        } else if (!strcmp(f, "--input") && v) {
            a.input = v, i++;
        } else if (!strcmp(f, "--output") && v) {
            a.output = v, i++;
        } else if (!strcmp(f, "--beam")) {
            i += parse_int(f, v, 1, 1000, &a.t.dec.beam);
            a.beam_set = 1;
        } else if (!strcmp(f, "--lenpen")) {
            a.t.dec.lenpen = parse_float(f, v), i++;
        } else if (!strcmp(f, "--max-len-a")) {
            a.t.dec.max_len_a = parse_float(f, v), i++;
        } else if (!strcmp(f, "--max-len-b")) {
            i += parse_int(f, v, 0, 100000, &a.t.dec.max_len_b);
        } else if (!strcmp(f, "--nbest")) {
            i += parse_int(f, v, 1, 1000, &a.t.dec.nbest);
        } else if (!strcmp(f, "--batch-size")) {
            i += parse_int(f, v, 1, 1 << 20, &a.t.batch_size);
        } else if (!strcmp(f, "--batch-tokens")) {
            i += parse_int(f, v, 0, 1 << 30, &a.t.batch_tokens);
        } else if (!strcmp(f, "--threads")) {
            i += parse_int(f, v, 1, 1024, &a.threads);
        } else if (!strcmp(f, "--images") && v) {
            a.images = v, i++;
        } else if (!strcmp(f, "--image-list") && v) {
            a.image_list = v, i++;
        } else if (!strcmp(f, "--image-index") && v) {
            a.image_index = v, i++;
        } else if (!strcmp(f, "--quiet")) {
            a.quiet = 1;
        } else {
            fprintf(stderr, "mmt-translate: unknown or incomplete option %s (see --help)\n", f);
            exit(2);
        }
    }
    if (!a.model) {
        fprintf(stderr, "mmt-translate: --model CKPT is required (see --help)\n");
        exit(2);
    }
    if (a.images && a.image_list) {
        fprintf(stderr, "mmt-translate: give --images or --image-list, not both\n");
        exit(2);
    }
    return a;
}

/* The recipe's decode.beam, when the checkpoint carries a recipe. */
static int recipe_beam(const char *recipe_json) {
    const char *p = recipe_json ? strstr(recipe_json, "\"decode\"") : NULL;
    p = p ? strstr(p, "\"beam\"") : NULL;
    p = p ? strchr(p, ':') : NULL;
    int b = p ? atoi(p + 1) : 0;
    return b > 0 ? b : 0;
}

/* Read every line of f; returns the count. */
static long read_lines(FILE *f, char ***lines) {
    long n = 0, cap = 1024;
    char **v = mmt_malloc(cap * sizeof *v);
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t got;
    while ((got = getline(&buf, &bcap, f)) >= 0) {
        while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) buf[--got] = '\0';
        if (n == cap) v = mmt_realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = strdup(buf);
    }
    free(buf);
    *lines = v;
    return n;
}

int main(int argc, char **argv) {
    mmt_blas_reexec(argv);
    args a = parse(argc, argv);
    mmt_set_threads(a.threads);
    mmt_set_ftz();
    mmt_status st = {0};
    int rc = 1;
    spm_model *spm = NULL;
    char **lines = NULL, **out = NULL;
    float *scores = NULL;
    long n = 0;
    int nb = a.t.dec.nbest;
    imageset img = {0};

    ckpt c;
    if (ckpt_load(a.model, &c, 0, &st)) {
        fprintf(stderr, "mmt-translate: %s\n", st.msg);
        return 1;
    }
    if (!c.spm) {
        fprintf(stderr, "mmt-translate: %s: the checkpoint holds no tokenizer\n", a.model);
        rc = 1;
        goto done;
    }
    spm = spm_load_from_bytes(c.spm, c.spm_len, &st);
    if (!spm) {
        fprintf(stderr, "mmt-translate: %s: %s\n", a.model, st.msg);
        rc = 1;
        goto done;
    }
    if (!a.beam_set && recipe_beam(c.recipe_json)) a.t.dec.beam = recipe_beam(c.recipe_json);
    if (a.t.dec.nbest > a.t.dec.beam) {
        fprintf(stderr, "mmt-translate: --nbest %d exceeds the beam size %d\n", a.t.dec.nbest,
                a.t.dec.beam);
        rc = 2;
        goto done;
    }

    FILE *in = a.input ? fopen(a.input, "r") : stdin;
    if (!in) {
        fprintf(stderr, "mmt-translate: cannot open %s: %s\n", a.input, strerror(errno));
        rc = 1;
        goto done;
    }
    n = read_lines(in, &lines);
    if (a.input) fclose(in);

    /* images, checked against the model and the input before decoding */
    const model_config *mc = model_cfg(c.model);
    const char *ipath = a.images ? a.images : a.image_list;
    if (mc->fusion != FUSION_NONE && !ipath) {
        fprintf(stderr, "mmt-translate: %s: the model reads images: give --images FEATS.npy or "
                "--image-list LIST\n", a.model);
        rc = 2;
        goto done;
    }
    if (mc->fusion == FUSION_NONE && ipath) {
        fprintf(stderr, "mmt-translate: %s: the model is text-only; %s is not used\n", a.model,
                ipath);
        rc = 2;
        goto done;
    }
    if (ipath) {
        if (a.images && !strstr(a.images, ".npy")) {
            fprintf(stderr, "mmt-translate: --images %s: expected a .npy file (PNG images go "
                    "with --image-list)\n", a.images);
            rc = 2;
            goto done;
        }
        int size = mc->img_size > 0 ? mc->img_size : 224;
        int patch = mc->img_patch > 0 ? mc->img_patch : 16;
        if (a.image_list && mc->img_patch == 0) {
            fprintf(stderr, "mmt-translate: %s: the model was trained on stored features; give "
                    "them with --images\n", a.model);
            rc = 2;
            goto done;
        }
        if (imageset_open(&img, ipath, a.image_index, size, patch, &st) ||
            imageset_check_lines(&img, n, a.input ? a.input : "the input", &st)) {
            fprintf(stderr, "mmt-translate: %s\n", st.msg);
            rc = 1;
            goto done;
        }
        if (img.P != mc->img_regions || img.Dv != mc->img_dim) {
            fprintf(stderr, "mmt-translate: %s: %d regions of %d values per image, but the "
                    "model %s reads %d of %d\n", ipath, img.P, img.Dv, a.model, mc->img_regions,
                    mc->img_dim);
            rc = 1;
            goto done;
        }
    }

    out = mmt_calloc(n * nb + 1, sizeof *out);
    scores = mmt_calloc(n * nb + 1, sizeof *scores);
    translate_stats ts;
    if (translate_lines(c.model, spm, (const char *const *)lines, n, ipath ? &img : NULL, &a.t,
                        out, scores, &ts, &st)) {
        fprintf(stderr, "mmt-translate: %s: %s\n", a.input ? a.input : "stdin", st.msg);
        rc = 1;
        goto done;
    }

    FILE *o = a.output ? fopen(a.output, "w") : stdout;
    if (!o) {
        fprintf(stderr, "mmt-translate: cannot write %s: %s\n", a.output, strerror(errno));
        rc = 1;
        goto done;
    }
    for (long i = 0; i < n; i++)
        for (int r = 0; r < nb; r++) {
            if (nb == 1)
                fprintf(o, "%s\n", out[i]);
            else
                fprintf(o, "%ld\t%.6f\t%s\n", i, scores[i * nb + r], out[i * nb + r]);
        }
    if (fflush(o) || (a.output && fclose(o))) {
        fprintf(stderr, "mmt-translate: write failed: %s\n", strerror(errno));
        rc = 1;
        goto done;
    }
    if (!a.quiet)
        fprintf(stderr, "mmt-translate: %ld sentences, %ld target tokens in %.2f s: "
                "%.1f sentences/s, %.0f target tokens/s (beam %d, %d threads)\n",
                ts.sentences, ts.tgt_tokens, ts.seconds, ts.sentences / (ts.seconds + 1e-9),
                ts.tgt_tokens / (ts.seconds + 1e-9), a.t.dec.beam, mmt_get_threads());
    rc = 0;
done:
    for (long i = 0; lines && i < n; i++) free(lines[i]);
    for (long i = 0; out && i < n * nb; i++) free(out[i]);
    free(lines);
    free(out);
    free(scores);
    imageset_close(&img);
    if (spm) spm_free(spm);
    ckpt_free(&c);
    return rc;
}
