/*
 * bench/train.c - time mmt's training step on a realistic batch.
 *
 * For each model: forward + backward (the step) and, apart from it, one Adam
 * update, on one synthetic token-batched batch shaped like Multi30k En-De
 * with a 10k joint BPE. Reports the median step, tokens/s, GFLOP/s, the share
 * of the step spent in sgemm, and the machine's own sgemm rate at the same
 * thread count, so the model's rate can be read against what BLAS can do.
 *
 *     bench-train [--model tiny|small|PATH]... [--threads N] [--steps K]
 *                 [--warmup W] [--max-tokens N] [--dropout P] [--vocab V]
 *                 [--seed S] [--no-ref] [--tsv]
 *
 * stdout: the table; with --tsv, rows "impl model threads metric value"
 * instead (bench/torch_train.py prints the same rows) and the table goes to
 * stderr. Run from the repository root: presets are read from models/.
 *
 * The batch: 29,000 sentence pairs (Multi30k's training set) with lengths
 * drawn as src ~ N(14, 4) in [4, 40], tgt ~ N(16, 5) in [4, 48], correlated
 * 0.8; sorted by source then target length, cut into batches that keep
 * B * max(S, T) <= max_tokens, as a token-batched trainer does; the batch
 * holding the median sentence is timed. torch_train.py draws the same
 * lengths and ids from the same generator.
 *
 * Built with -DBENCH_KERNEL_TIMES and the linker's --wrap for every layer
 * kernel (bench/profile-train.sh), it also prints each kernel's wall time.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"
#include "kernels.h"
#include "model.h"
#include "optim.h"

#ifdef BENCH_KERNEL_TIMES
#include "kernel_times.h"
#endif

enum { POOL = 29000, MAX_MODELS = 8 };

typedef struct {
    const char *models[MAX_MODELS];
    int nmodels;
    int threads, steps, warmup, max_tokens, vocab, tsv;
    int ref;       /* time the reference sgemm shapes */
    float dropout; /* < 0: the preset's */
    uint64_t seed;
} bench_opts;

/* ============================================================== options */

static void usage(void) {
    fprintf(stderr,
            "usage: bench-train [--model tiny|small|PATH]... [--threads N] [--steps K]\n"
            "                   [--warmup W] [--max-tokens N] [--dropout P] [--vocab V]\n"
            "                   [--seed S] [--no-ref] [--tsv] | --blas-core\n"
            "defaults: --model tiny --model small --threads 2 --steps 10 --warmup 2\n"
            "          --max-tokens 4096 --vocab 10000, dropout from the preset\n"
            "--no-ref skips the reference sgemm timings; --blas-core prints OpenBLAS's\n"
            "kernel family and exits\n");
    exit(2);
}

/* The value of option argv[i], as an integer in [lo, hi]; exits on bad input. */
static long opt_int(int argc, char **argv, int i, long lo, long hi) {
    if (i + 1 >= argc) {
        fprintf(stderr, "bench-train: %s: expected a value\n", argv[i]);
        exit(2);
    }
    char *end;
    long v = strtol(argv[i + 1], &end, 10);
    if (*end || end == argv[i + 1] || v < lo || v > hi) {
        fprintf(stderr, "bench-train: %s: expected an integer in %ld..%ld, got \"%s\"\n",
                argv[i], lo, hi, argv[i + 1]);
        exit(2);
    }
    return v;
}

static void parse_opts(bench_opts *o, int argc, char **argv) {
    *o = (bench_opts){.threads = 2, .steps = 10, .warmup = 2, .max_tokens = 4096,
                      .vocab = 10000, .dropout = -1.0f, .seed = 1, .ref = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--tsv")) {
            o->tsv = 1;
            continue;
        }
        if (!strcmp(a, "--no-ref")) {
            o->ref = 0;
            continue;
        }
        if (!strcmp(a, "--blas-core")) {
            printf("%s\n", openblas_get_corename());
            exit(0);
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h") || i + 1 >= argc) usage();
        if (!strcmp(a, "--model")) {
            if (o->nmodels == MAX_MODELS) usage();
            o->models[o->nmodels++] = argv[i + 1];
        } else if (!strcmp(a, "--threads")) o->threads = opt_int(argc, argv, i, 1, 1024);
        else if (!strcmp(a, "--steps")) o->steps = opt_int(argc, argv, i, 1, 100000);
        else if (!strcmp(a, "--warmup")) o->warmup = opt_int(argc, argv, i, 0, 100000);
        else if (!strcmp(a, "--max-tokens")) o->max_tokens = opt_int(argc, argv, i, 64, 1 << 24);
        else if (!strcmp(a, "--vocab")) o->vocab = opt_int(argc, argv, i, 8, 1 << 24);
        else if (!strcmp(a, "--seed")) o->seed = opt_int(argc, argv, i, 0, 1L << 40);
        else if (!strcmp(a, "--dropout")) {
            char *end;
            o->dropout = strtof(argv[i + 1], &end);
            if (*end || o->dropout < 0.0f || o->dropout >= 1.0f) {
                fprintf(stderr, "bench-train: --dropout: expected 0 <= p < 1, got \"%s\"\n",
                        argv[i + 1]);
                exit(2);
            }
        } else usage();
        i++;
    }
    if (!o->nmodels) {
        o->models[o->nmodels++] = "tiny";
        o->models[o->nmodels++] = "small";
    }
}

/* ====================================================== synthetic batch */

/* splitmix64: small, seedable, and easy to mirror in Python. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform on (0, 1]. */
static double rng_uniform(uint64_t *s) {
    return ((rng_next(s) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller, one value per two uniforms). */
static double rng_normal(uint64_t *s) {
    double u1 = rng_uniform(s), u2 = rng_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static int round_clamp(double x, int lo, int hi) {
    int v = (int)floor(x + 0.5);
    return v < lo ? lo : (v > hi ? hi : v);
}

typedef struct {
    int src, tgt; /* tokens, eos included; tgt counts tgt_out's tokens */
} pair_len;

static int pair_cmp(const void *pa, const void *pb) {
    const pair_len *a = pa, *b = pb;
    if (a->src != b->src) return a->src - b->src;
    return a->tgt - b->tgt;
}

typedef struct {
    mmt_batch b;
    int *ids;         /* backing store of src, tgt_in, tgt_out */
    long src_tokens;  /* non-pad source tokens */
    long tgt_tokens;  /* non-pad target tokens */
    int nbatches;     /* batches in the whole pool (one epoch) */
} bench_batch;

/* Cut the sorted pool into batches with B * max(S, T) <= max_tokens; the
 * batch holding pair n/2 is [*first, *first + *count). Returns the batches. */
static int cut_batches(const pair_len *p, int n, int max_tokens, int *first, int *count) {
    int nb = 0, start = 0, longest = 0;
    for (int i = 0; i <= n; i++) {
        int len = i < n ? (p[i].src > p[i].tgt ? p[i].src : p[i].tgt) : 0;
        int wider = len > longest ? len : longest;
        if (i == n || (i > start && (long)(i - start + 1) * wider > max_tokens)) {
            if (start <= n / 2 && n / 2 < i) {
                *first = start;
                *count = i - start;
            }
            nb++;
            start = i;
            wider = len;
        }
        longest = wider;
    }
    return nb;
}

/* Draw the pool, pick the median batch and fill it with random ids in
 * [4, V): src = words, eos; tgt_in = bos, words; tgt_out = words, eos. */
static void make_batch(bench_batch *bb, const model_config *c, int max_tokens, uint64_t seed) {
    pair_len *p = mmt_malloc(POOL * sizeof *p);
    uint64_t s = seed;
    for (int i = 0; i < POOL; i++) {
        double z1 = rng_normal(&s), z2 = rng_normal(&s);
        p[i].src = round_clamp(14.0 + 4.0 * z1, 4, 40);
        p[i].tgt = round_clamp(16.0 + 5.0 * (0.8 * z1 + 0.6 * z2), 4, 48);
    }
    qsort(p, POOL, sizeof *p, pair_cmp);
    int first = 0, B = 0, S = 0, T = 0;
    bb->nbatches = cut_batches(p, POOL, max_tokens, &first, &B);
    for (int i = first; i < first + B; i++) {
        S = p[i].src > S ? p[i].src : S;
        T = p[i].tgt > T ? p[i].tgt : T;
    }

    /* ids, from a second stream */
    int *ids = mmt_calloc((size_t)B * (S + 2 * T), sizeof *ids); /* pad_id 0 */
    int *src = ids, *tin = ids + (size_t)B * S, *tout = tin + (size_t)B * T;
    uint64_t r = seed ^ 0x5DEECE66Dull;
    const int V = c->V;
    bb->src_tokens = bb->tgt_tokens = 0;
    for (int b = 0; b < B; b++) {
        const pair_len *q = &p[first + b];
        for (int i = 0; i < q->src - 1; i++) src[b * S + i] = 4 + rng_next(&r) % (V - 4);
        src[b * S + q->src - 1] = c->eos_id;
        tin[b * T] = c->bos_id;
        for (int i = 0; i < q->tgt - 1; i++) {
            int w = 4 + rng_next(&r) % (V - 4);
            tout[b * T + i] = w;
            tin[b * T + i + 1] = w;
        }
        tout[b * T + q->tgt - 1] = c->eos_id;
        for (int i = q->src; i < S; i++) src[b * S + i] = c->pad_id;
        for (int i = q->tgt; i < T; i++) tin[b * T + i] = tout[b * T + i] = c->pad_id;
        bb->src_tokens += q->src;
        bb->tgt_tokens += q->tgt;
    }
    bb->ids = ids;
    bb->b = (mmt_batch){.B = B, .S = S, .T = T, .src = src, .tgt_in = tin, .tgt_out = tout};
    free(p);
}

/* ===================================================== sgemm reference */

typedef struct {
    const char *name;
    int M, N, K;
    int ta, tb; /* 1: that operand is transposed (row-major, as linear_* call it) */
} gemm_shape;

/* GFLOP/s of cblas_sgemm on one shape: best of repeats over >= 1 s. */
static double sgemm_rate(const gemm_shape *g) {
    size_t na = (size_t)g->M * g->K, nb = (size_t)g->K * g->N, nc = (size_t)g->M * g->N;
    float *a = mmt_aligned(na * sizeof *a), *b = mmt_aligned(nb * sizeof *b);
    float *c = mmt_aligned(nc * sizeof *c);
    uint64_t s = 42;
    for (size_t i = 0; i < na; i++) a[i] = (float)rng_uniform(&s) - 0.5f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)rng_uniform(&s) - 0.5f;
    memset(c, 0, nc * sizeof *c);
    const int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
    double best = INFINITY, spent = 0.0;
    for (int rep = 0; rep < 200 && (rep < 5 || spent < 1.0); rep++) {
        double t0 = mmt_now();
        cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                    g->tb ? CblasTrans : CblasNoTrans, g->M, g->N, g->K, 1.0f, a, lda, b, ldb,
                    0.0f, c, g->N);
        double dt = mmt_now() - t0;
        best = dt < best ? dt : best;
        spent += dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * g->M * g->N * g->K / best * 1e-9;
}

/* The large square product, then the model's main products at 4096 rows:
 * forward as linear_forward calls them (x w^T), and the backward of the
 * output projection and of fc1 (dx = dy w, dw = dy^T x). */
static int model_shapes(gemm_shape *g, const model_config *c) {
    const int N = 4096, D = c->D, F = c->F, V = c->V;
    int n = 0;
    g[n++] = (gemm_shape){"square_2048", 2048, 2048, 2048, 0, 0};
    g[n++] = (gemm_shape){"qkv_fwd", N, 3 * D, D, 0, 1};
    g[n++] = (gemm_shape){"out_fwd", N, D, D, 0, 1};
    g[n++] = (gemm_shape){"fc1_fwd", N, F, D, 0, 1};
    g[n++] = (gemm_shape){"fc2_fwd", N, D, F, 0, 1};
    g[n++] = (gemm_shape){"logits_fwd", N, V, D, 0, 1};
    g[n++] = (gemm_shape){"logits_dx", N, D, V, 0, 0};
    g[n++] = (gemm_shape){"logits_dw", V, D, N, 1, 0};
    g[n++] = (gemm_shape){"fc1_dw", F, D, N, 1, 0};
    return n;
}

/* ================================================================ timing */

typedef struct {
    double step_med, step_min, step_max; /* seconds of forward + backward */
    double adam_med;                     /* seconds of one Adam update */
    double gemm_s;                       /* sgemm seconds in the median step */
    double mean_s, gemm_mean_s;          /* mean step, and its sgemm seconds */
    double loss;                         /* per-token loss of the first step */
    double others;                       /* CPUs' share busy with other work (%) */
} step_times;

static int dbl_cmp(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static double median(double *x, int n) {
    qsort(x, n, sizeof *x, dbl_cmp);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Seconds the machine's CPUs have been busy (all processes, steal
 * included), from /proc/stat; 0 where it cannot be read. */
static double machine_busy_seconds(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0.0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8) return 0.0;
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK);
}

/* CPU seconds used by this process so far. */
static double own_cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Warm-up steps, then timed ones; every step zeroes the gradients, runs
 * forward and backward (timed together) and an Adam update (timed apart). */
static void time_steps(step_times *t, mmt_model *m, const mmt_batch *b, const bench_opts *o) {
    adam_state adam;
    adam_init(&adam, model_num_params(m), 0.9f, 0.98f, 1e-8f, 0.0f);
    double *step = mmt_malloc(o->steps * sizeof *step), *upd = mmt_malloc(o->steps * sizeof *upd);
    double gemm = 0.0, busy0 = 0.0, own0 = 0.0, wall0 = 0.0;
    kernels_timing = 1;
    for (int i = 0; i < o->warmup + o->steps; i++) {
        if (i == o->warmup) {
#ifdef BENCH_KERNEL_TIMES
            kernel_times_reset();
#endif
            busy0 = machine_busy_seconds();
            own0 = own_cpu_seconds();
            wall0 = mmt_now();
        }
        kernels_gemm_seconds = 0.0;
        double t0 = mmt_now();
        /* as mmt-train does: the gradient of the summed loss, then divided
         * by the number of target tokens */
        model_zero_grads(m);
        xent_result r = model_forward(m, b, 1, (uint64_t)i);
        model_backward(m, b, 1.0f);
        grad_scale(model_grads(m), model_num_params(m), 1.0f / (float)r.ntokens);
        double t1 = mmt_now();
        adam_step(&adam, model_params(m), model_grads(m), 5e-4f);
        double t2 = mmt_now();
        if (i == 0) t->loss = r.loss / (double)r.ntokens;
        fprintf(stderr, "  %s step %d: %.3f s (sgemm %.3f s), adam %.4f s, loss %.4f\n",
                i < o->warmup ? "warm-up" : "timed", i, t1 - t0, kernels_gemm_seconds, t2 - t1,
                r.loss / (double)r.ntokens);
        if (i < o->warmup) continue;
        step[i - o->warmup] = t1 - t0;
        upd[i - o->warmup] = t2 - t1;
        gemm += kernels_gemm_seconds;
    }
    kernels_timing = 0;
    /* other processes' load during the timed steps: a noisy run shows here */
    double others = machine_busy_seconds() - busy0 - (own_cpu_seconds() - own0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    t->others = 100.0 * others / ((mmt_now() - wall0) * (ncpu > 0 ? ncpu : 1));
    t->others = t->others < 0.0 ? 0.0 : t->others;
    /* the sgemm share is of all timed steps together, applied to the median */
    double total = 0.0;
    for (int i = 0; i < o->steps; i++) total += step[i];
    t->step_med = median(step, o->steps); /* sorts step */
    t->step_min = step[0];
    t->step_max = step[o->steps - 1];
    t->adam_med = median(upd, o->steps);
    t->gemm_s = gemm / total * t->step_med;
    t->mean_s = total / o->steps;
    t->gemm_mean_s = gemm / o->steps;
    free(step);
    free(upd);
    adam_free(&adam);
}

/* ================================================================ report */

typedef struct {
    const char *model; /* short name */
    int threads, tsv;
    int steps; /* timed */
} report;

/* One figure: a table line (stdout, or stderr under --tsv) and, under
 * --tsv, a row "mmt model threads metric value" on stdout. */
static void emit(const report *r, const char *metric, const char *label, double v,
                 const char *fmt, const char *note) {
    FILE *f = r->tsv ? stderr : stdout;
    char num[64];
    snprintf(num, sizeof num, fmt, v);
    fprintf(f, "  %-34s %14s  %s\n", label, num, note ? note : "");
    if (r->tsv) printf("mmt\t%s\t%d\t%s\t%.6g\n", r->model, r->threads, metric, v);
}

/* Multiply-adds of attention's q k^T and p v, as FLOPs of a step (the part of
 * model_step_flops that is not sgemm in mmt). */
static double attention_flops(const model_config *c, const mmt_batch *b) {
    double Ns = (double)b->B * b->S, Nt = (double)b->B * b->T;
    double enc = 2.0 * Ns * b->S * c->D;
    double dec = 2.0 * Nt * b->T * c->D + 2.0 * Nt * b->S * c->D;
    return 6.0 * (c->enc_layers * enc + c->dec_layers * dec);
}

static void report_model(const report *r, const model_config *c, mmt_model *m,
                         const bench_batch *bb, const step_times *t, const gemm_shape *g,
                         const double *rate, int nshapes) {
    const mmt_batch *b = &bb->b;
    char note[160];
    FILE *f = r->tsv ? stderr : stdout;
    double flops = model_step_flops(m, b), attn = attention_flops(c, b);
    fprintf(f, "\nmmt  %s  (L %d+%d, D %d, F %d, H %d, V %d, dropout %.2f)  threads %d  "
            "OpenBLAS core %s\n", r->model, c->enc_layers, c->dec_layers, c->D, c->F, c->H, c->V,
            c->dropout, r->threads, openblas_get_corename());
    emit(r, "params", "parameters", (double)model_num_params(m), "%.0f", NULL);
    snprintf(note, sizeof note, "S %d, T %d; %d batches per epoch of %d pairs", b->S, b->T,
             bb->nbatches, POOL);
    emit(r, "batch_B", "batch sentences B", b->B, "%.0f", note);
    emit(r, "batch_S", "batch S", b->S, "%.0f", NULL);
    emit(r, "batch_T", "batch T", b->T, "%.0f", NULL);
    snprintf(note, sizeof note, "of %d padded (%.0f %% real)", b->B * b->S,
             100.0 * bb->src_tokens / (b->B * b->S));
    emit(r, "src_tokens", "source tokens", bb->src_tokens, "%.0f", note);
    snprintf(note, sizeof note, "of %d padded (%.0f %% real)", b->B * b->T,
             100.0 * bb->tgt_tokens / (b->B * b->T));
    emit(r, "tgt_tokens", "target tokens", bb->tgt_tokens, "%.0f", note);
    emit(r, "loss", "loss per token, first step", t->loss, "%.4f", NULL);
    snprintf(note, sizeof note, "min %.4f, max %.4f", t->step_min, t->step_max);
    emit(r, "step_median_s", "fwd+bwd step, median (s)", t->step_med, "%.4f", note);
    emit(r, "step_min_s", "fwd+bwd step, min (s)", t->step_min, "%.4f", NULL);
    emit(r, "step_max_s", "fwd+bwd step, max (s)", t->step_max, "%.4f", NULL);
    emit(r, "adam_median_s", "adam step, median (s)", t->adam_med, "%.4f", NULL);
    emit(r, "tgt_tok_per_s", "target tokens/s", bb->tgt_tokens / t->step_med, "%.0f",
         "non-pad target tokens / median step");
    emit(r, "all_tok_per_s", "source+target tokens/s",
         (bb->src_tokens + bb->tgt_tokens) / t->step_med, "%.0f", NULL);
    snprintf(note, sizeof note, "%.1f GFLOP per step (%.1f of them attention)", flops * 1e-9,
             attn * 1e-9);
    emit(r, "step_gflop", "FLOPs per step (GFLOP)", flops * 1e-9, "%.2f", NULL);
    emit(r, "gflops", "achieved GFLOP/s", flops / t->step_med * 1e-9, "%.1f", note);
    if (nshapes)
        emit(r, "pct_peak", "% of square-sgemm peak",
             100.0 * flops / t->step_med * 1e-9 / rate[0], "%.1f", NULL);
    emit(r, "gemm_s", "sgemm seconds per step", t->gemm_s, "%.4f", NULL);
    emit(r, "gemm_share", "share in sgemm (%)", 100.0 * t->gemm_s / t->step_med, "%.1f", NULL);
    emit(r, "outside_share", "share outside sgemm (%)", 100.0 * (1.0 - t->gemm_s / t->step_med),
         "%.1f", "attention, norms, dropout, loss, ...");
    emit(r, "gemm_in_model_gflops", "sgemm GFLOP/s inside the step", (flops - attn) / t->gemm_s
         * 1e-9, "%.1f", "linear FLOPs / sgemm seconds");
    for (int i = 0; i < nshapes; i++) {
        char metric[64], label[64];
        snprintf(metric, sizeof metric, "ref_%s_gflops", g[i].name);
        snprintf(label, sizeof label, "ref sgemm %s (GFLOP/s)", g[i].name);
        snprintf(note, sizeof note, "M %d N %d K %d%s%s", g[i].M, g[i].N, g[i].K,
                 g[i].ta ? " A^T" : "", g[i].tb ? " B^T" : "");
        emit(r, metric, label, rate[i], "%.1f", note);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    snprintf(note, sizeof note, "whole process so far; arena %.0f MiB",
             model_arena_bytes(m) / 1048576.0);
#ifdef BENCH_KERNEL_TIMES
    fprintf(f, "\n");
    kernel_times_print(f, r->steps, t->mean_s, t->gemm_mean_s);
    fprintf(f, "\n");
#endif
    emit(r, "others_cpu_pct", "CPU used by other processes (%)", t->others, "%.1f",
         "during the timed steps, of all CPUs; above ~5 the figures are noisy");
    emit(r, "peak_rss_mib", "peak RSS (MiB)", ru.ru_maxrss / 1024.0, "%.0f", note);
}

/* ================================================================== main */

/* "tiny" and "small" name presets; anything else is a path. */
static const char *preset_path(const char *name, char *buf, size_t n) {
    if (!strcmp(name, "tiny") || !strcmp(name, "small")) {
        snprintf(buf, n, "models/transformer-%s.json", name);
        return buf;
    }
    return name;
}

/* The preset's file name without folder and ".json", for the report. */
static void short_name(const char *path, char *buf, size_t n) {
    const char *base = strrchr(path, '/');
    snprintf(buf, n, "%s", base ? base + 1 : path);
    char *dot = strstr(buf, ".json");
    if (dot) *dot = '\0';
    if (!strncmp(buf, "transformer-", 12)) memmove(buf, buf + 12, strlen(buf + 12) + 1);
}

static int bench_model(const bench_opts *o, const char *name) {
    char path[512], shortn[512];
    const char *file = preset_path(name, path, sizeof path);
    model_config c = model_config_default();
    mmt_status st = {0};
    if (model_config_load(&c, file, &st)) {
        fprintf(stderr, "bench-train: %s\n", st.msg);
        return 1;
    }
    c.V = o->vocab;
    if (o->dropout >= 0.0f) c.dropout = o->dropout;
    short_name(file, shortn, sizeof shortn);
    report r = {shortn, o->threads, o->tsv, o->steps};

    bench_batch bb;
    make_batch(&bb, &c, o->max_tokens, o->seed);
    mmt_model *m = model_create(&c);
    fprintf(stderr, "%s: B %d S %d T %d, %d warm-up + %d timed steps\n", shortn, bb.b.B,
            bb.b.S, bb.b.T, o->warmup, o->steps);
    step_times t = {0};
    time_steps(&t, m, &bb.b, o);

    /* after the steps, on a machine already busy: the first products of a
     * process often run slower */
    gemm_shape g[16];
    double rate[16];
    int nshapes = o->ref ? model_shapes(g, &c) : 0;
    if (nshapes) fprintf(stderr, "%s: sgemm reference rates\n", shortn);
    for (int i = 0; i < nshapes; i++) rate[i] = sgemm_rate(&g[i]);
    report_model(&r, &c, m, &bb, &t, g, rate, nshapes);
    model_free(m);
    free(bb.ids);
    return 0;
}

int main(int argc, char **argv) {
    bench_opts o;
    parse_opts(&o, argc, argv);
    mmt_set_threads(o.threads);
    mmt_set_ftz();
    if (o.tsv) printf("impl\tmodel\tthreads\tmetric\tvalue\n");
    int rc = 0;
    for (int i = 0; i < o.nmodels; i++) rc |= bench_model(&o, o.models[i]);
    return rc;
}
