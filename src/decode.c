/* decode.c - greedy and beam search over the model with cached keys and values. */
#include "decode.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_impl.h"

decode_opts decode_opts_default(void) {
    return (decode_opts){5, 1.0f, 1.2f, 10, 1};
}

void decode_hyp_free(decode_hyp *h) {
    free(h->ids);
    h->ids = NULL;
}

/* A live hypothesis: its slot in the caches, its tokens, its score. */
typedef struct {
    int sent;      /* sentence index */
    int slot;      /* row of the self-attention caches */
    float logprob;
    int *tokens;   /* (max_len) generated so far */
    int *hist;     /* (max_len) hist[j]: the cache slot holding position j's keys */
} beam_row;

/* Decoding state of one batch. */
typedef struct {
    mmt_model *m;
    int B, S, D, F, V, L, R, max_t; /* R: cache slots = B * beam */
    float *ckv;      /* (L, B*S, 2D) cross-attention keys and values */
    uint8_t *src_pad;/* (B, S) */
    float *kc, *vc;  /* (L, R, max_t, D) self-attention caches: (slot, position) is
                        written once, at that position's step, and read by every
                        descendant through its hist, so beams never copy caches */
    float *x, *h, *qkv, *ctx, *a, *hid, *logits; /* per live row */
    float *mean, *rstd;
    float *lse;      /* (R) log-sum-exp of each row of logits */
    int W;           /* candidates kept per row: 2 * beam */
    struct cand *rcand; /* (R, W) each row's best extensions, best first */
    int *rncand;     /* (R) how many */
} dec_state;

/* An extension of a live row by a token, with its summed log-probability. */
typedef struct cand {
    float score;
    int row, tok;
} cand;

/* Insert (s, row, tok) into the sorted list out (n of at most want; best
 * first): a candidate enters only if strictly better than the last, and
 * after any equal ones, so ties keep the order candidates were offered in. */
static inline void cand_insert(cand *out, int *n, int want, float s, int row, int tok) {
    if (*n == want && s <= out[*n - 1].score) return;
    int i = *n < want ? (*n)++ : *n - 1;
    while (i > 0 && out[i - 1].score < s) {
        out[i] = out[i - 1];
        i--;
    }
    out[i] = (cand){s, row, tok};
}

/* The best `want` extensions of row r by summed log-probability base + z -
 * lse, tokens offered in order. */
static int row_top(const float *z, float lse, float base, int r, int V, int want, cand *out) {
    int n = 0;
    for (int v0 = 0; v0 < V; v0 += 16) {
        const int v1 = v0 + 16 < V ? v0 + 16 : V;
        /* skip 16 tokens at once when even their best cannot enter the list
         * (the score is monotonic in z, so this changes nothing) */
        if (n == want) {
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int v = v0; v < v1; v++) mx = z[v] > mx ? z[v] : mx;
            if (base + (mx - lse) <= out[n - 1].score) continue;
        }
        for (int v = v0; v < v1; v++) {
            float s = base + (z[v] - lse);
            if (s != -INFINITY) cand_insert(out, &n, want, s, r, v);
        }
    }
    return n;
}

/* ---------------------------------------------------------------- a step */

typedef float v16f __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4), may_alias));
static inline v16f ld16(const float *p) { return *(const v16f_u *)p; }
static inline void st16(float *p, v16f v) { *(v16f_u *)p = v; }

/* One head of one query row against n keys (see attend_row). For head widths
 * that are multiples of 16 (constants in the copies below) the context is
 * summed in vector registers, two sets for even and odd keys. */
static inline __attribute__((always_inline)) void
attend_head(float *c, const float *qh, const float *k, const float *v, int ld,
            const size_t *koff, int n, const uint8_t *pad, const int dh, float *scores) {
    const float scale = 1.0f / sqrtf((float)dh);
    float mx = -INFINITY, sum = 0.0f;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (koff ? koff[j] : (size_t)j * ld);
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < dh; i++) s += qh[i] * kj[i];
        scores[j] = pad && pad[j] ? -INFINITY : s * scale;
        mx = scores[j] > mx ? scores[j] : mx;
    }
    for (int j = 0; j < n; j++) {
        scores[j] = scores[j] == -INFINITY ? 0.0f : fast_expf(scores[j] - mx);
        sum += scores[j];
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    if (dh % 16 == 0 && dh <= 64) {
        v16f a0[4] = {{0}}, a1[4] = {{0}};
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const float p0 = scores[j] * inv, p1 = scores[j + 1] * inv;
            const float *v0 = v + (koff ? koff[j] : (size_t)j * ld);
            const float *v1 = v + (koff ? koff[j + 1] : (size_t)(j + 1) * ld);
            for (int i = 0; i < dh / 16; i++) {
                a0[i] += p0 * ld16(v0 + 16 * i);
                a1[i] += p1 * ld16(v1 + 16 * i);
            }
        }
        if (j < n) {
            const float p0 = scores[j] * inv, *v0 = v + (koff ? koff[j] : (size_t)j * ld);
            for (int i = 0; i < dh / 16; i++) a0[i] += p0 * ld16(v0 + 16 * i);
        }
        for (int i = 0; i < dh / 16; i++) st16(c + 16 * i, a0[i] + a1[i]);
        return;
    }
    for (int i = 0; i < dh; i++) c[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        const float p = scores[j] * inv;
        const float *vj = v + (koff ? koff[j] : (size_t)j * ld);
#pragma omp simd
        for (int i = 0; i < dh; i++) c[i] += p * vj[i];
    }
}

/* One query row against n keys; key j is the row k + koff[j] (v likewise),
 * or k + j * ld when koff is NULL; masked keys get weight 0. All heads. */
static void attend_row(float *ctx, const float *q, const float *k, const float *v, int ld,
                       const size_t *koff, int n, const uint8_t *pad, int H, int dh,
                       float *scores) {
    for (int hh = 0; hh < H; hh++) {
        const int o = hh * dh;
        if (dh == 32)
            attend_head(ctx + o, q + o, k + o, v + o, ld, koff, n, pad, 32, scores);
        else if (dh == 64)
            attend_head(ctx + o, q + o, k + o, v + o, ld, koff, n, pad, 64, scores);
        else
            attend_head(ctx + o, q + o, k + o, v + o, ld, koff, n, pad, dh, scores);
    }
}

/* x += a: the residual add after a sublayer (its norm follows in post_norm). */
static void residual_add(dec_state *st, int n) {
    residual_forward(st->x, st->x, st->a, (long)n * st->D);
}

/* Branch input: LN(x) for pre-norm, x for post-norm. */
static const float *branch_in(dec_state *st, int n, size_t g, size_t b) {
    mmt_model *m = st->m;
    if (!m->cfg.pre_norm) return st->x;
    layernorm_forward(st->h, st->mean, st->rstd, st->x, m->params + g, m->params + b, n, st->D);
    return st->h;
}

static void post_norm(dec_state *st, int n, size_t g, size_t b) {
    mmt_model *m = st->m;
    if (m->cfg.pre_norm) return;
    layernorm_forward(st->x, st->mean, st->rstd, st->x, m->params + g, m->params + b, n, st->D);
}

/* Advance the n live rows by one token each (tok[r] at position t) and
 * leave log-probabilities in st->logits (n, V). */
static void step(dec_state *st, const beam_row *rows, const int *tok, int n, int t) {
    mmt_model *m = st->m;
    const int D = st->D, F = st->F, V = st->V, H = m->cfg.H, dh = D / H;
    const float *P = m->params;

    /* embeddings of the last tokens */
    embedding_forward(st->x, tok, P + m->embed, m->pe + (size_t)t * D, n, 1, D);

    for (int l = 0; l < st->L; l++) {
        const dec_off *w = &m->dec[l];
        float *kc = st->kc + (size_t)l * st->R * st->max_t * D;
        float *vc = st->vc + (size_t)l * st->R * st->max_t * D;

        /* self-attention over the cached positions 0..t */
        const float *h = branch_in(st, n, w->n1_g, w->n1_b);
        linear_forward(st->qkv, 3 * D, h, D, P + w->qkv_w, P + w->qkv_b, n, D, 3 * D);
#pragma omp parallel for schedule(static) if ((long)n * (t + 1) * D >= 1L << 15)
        for (int r = 0; r < n; r++) {
            const beam_row *br = &rows[r];
            size_t here = ((size_t)br->slot * st->max_t + t) * D;
            memcpy(kc + here, st->qkv + (size_t)r * 3 * D + D, D * sizeof(float));
            memcpy(vc + here, st->qkv + (size_t)r * 3 * D + 2 * D, D * sizeof(float));
            size_t koff[t + 1];
            float scores[t + 1];
            for (int j = 0; j < t; j++) koff[j] = ((size_t)br->hist[j] * st->max_t + j) * D;
            koff[t] = here;
            attend_row(st->ctx + (size_t)r * D, st->qkv + (size_t)r * 3 * D, kc, vc, D, koff,
                       t + 1, NULL, H, dh, scores);
        }
        linear_forward(st->a, D, st->ctx, D, P + w->out_w, P + w->out_b, n, D, D);
        residual_add(st, n);
        post_norm(st, n, w->n1_g, w->n1_b);

        /* cross-attention over the sentence's encoder output */
        h = branch_in(st, n, w->n2_g, w->n2_b);
        linear_forward(st->qkv, D, h, D, P + w->q_w, P + w->q_b, n, D, D);
        const float *ckv = st->ckv + (size_t)l * st->B * st->S * 2 * D;
#pragma omp parallel for schedule(static) if ((long)n * st->S * D >= 1L << 15)
        for (int r = 0; r < n; r++) {
            int b = rows[r].sent;
            const float *kv = ckv + (size_t)b * st->S * 2 * D;
            float scores[st->S];
            attend_row(st->ctx + (size_t)r * D, st->qkv + (size_t)r * D, kv, kv + D, 2 * D,
                       NULL, st->S, st->src_pad + (size_t)b * st->S, H, dh, scores);
        }
        linear_forward(st->a, D, st->ctx, D, P + w->cout_w, P + w->cout_b, n, D, D);
        residual_add(st, n);
        post_norm(st, n, w->n2_g, w->n2_b);

        /* feed-forward */
        h = branch_in(st, n, w->n3_g, w->n3_b);
        linear_forward(st->hid, F, h, D, P + w->fc1_w, P + w->fc1_b, n, D, F);
        relu_forward(st->hid, st->hid, (long)n * F);
        linear_forward(st->a, D, st->hid, F, P + w->fc2_w, P + w->fc2_b, n, F, D);
        residual_add(st, n);
        post_norm(st, n, w->n3_g, w->n3_b);
    }
    const float *y = st->x;
    if (m->cfg.pre_norm) {
        layernorm_forward(st->h, st->mean, st->rstd, st->x, P + m->dec_norm_g, P + m->dec_norm_b,
                          n, D);
        y = st->h;
    }

    /* logits and their log-sum-exp per row (log p = z - lse); pad and bos are
     * never produced */
    linear_forward(st->logits, V, y, D, P + m->embed, NULL, n, D, V);
#pragma omp parallel for schedule(static) if ((long)n * V >= 1L << 15)
    for (int r = 0; r < n; r++) {
        float *z = st->logits + (size_t)r * V, mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
        for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) sum += fast_expf(z[v] - mx);
        st->lse[r] = mx + logf(sum);
        z[m->cfg.pad_id] = -INFINITY;
        z[m->cfg.bos_id] = -INFINITY;
        /* the row's best extensions while it is in cache */
        st->rncand[r] = row_top(z, st->lse[r], rows[r].logprob, r, V, st->W,
                                st->rcand + (size_t)r * st->W);
    }
}

/* ----------------------------------------------------------- beam search */

/* The best `want` (row, token) extensions among a sentence's live rows
 * [r0, r1), by summed log-probability, best first: the merge of the rows'
 * own lists, offered in row order, which gives what one scan of all rows'
 * tokens in order would. */
static int top_candidates(const dec_state *st, int r0, int r1, int want, cand *out) {
    int n = 0;
    for (int r = r0; r < r1; r++) {
        const cand *c = st->rcand + (size_t)r * st->W;
        for (int i = 0; i < st->rncand[r]; i++) cand_insert(out, &n, want, c[i].score, r, c[i].tok);
    }
    return n;
}

typedef struct {
    decode_hyp *done; /* (beam) finished hypotheses */
    int ndone;
    int max_len;      /* tokens including eos */
} sent_state;

/* A hypothesis ends with eos after its t tokens, with summed log-probability logprob. */
static void finish(sent_state *ss, const beam_row *row, int t, float logprob, float lenpen) {
    decode_hyp *h = &ss->done[ss->ndone++];
    h->len = t;
    h->ids = mmt_malloc((size_t)(t > 0 ? t : 1) * sizeof(int));
    memcpy(h->ids, row->tokens, (size_t)t * sizeof(int));
    h->logprob = logprob;
    h->score = logprob / powf((float)(t + 1), lenpen);
}

static int hyp_cmp(const void *a, const void *b) {
    const decode_hyp *x = a, *y = b;
    return x->score < y->score ? 1 : (x->score > y->score ? -1 : 0);
}

void decode_batch(mmt_model *m, const int *const *src, const int *src_len, const float *img,
                  int n, const decode_opts *o, decode_hyp *hyps) {
    const model_config *c = &m->cfg;
    const int k = o->beam > 0 ? o->beam : 1, D = c->D, eos = c->eos_id;
    MMT_ASSERT(o->nbest >= 1 && o->nbest <= k && n > 0);

    /* source batch with eos appended, right-padded */
    int S = 0;
    for (int i = 0; i < n; i++) S = src_len[i] + 1 > S ? src_len[i] + 1 : S;
    MMT_ASSERT(S <= c->max_positions);
    int *sbuf = mmt_malloc((size_t)n * S * sizeof(int));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < S; j++)
            sbuf[i * S + j] = j < src_len[i] ? src[i][j] : (j == src_len[i] ? eos : c->pad_id);

    dec_state st = {0};
    st.m = m;
    st.B = n;
    st.S = S;
    st.D = D;
    st.F = c->F;
    st.V = c->V;
    st.L = c->dec_layers;
    st.R = n * k;
    sent_state *ss = mmt_calloc(n, sizeof *ss);
    for (int i = 0; i < n; i++) {
        int ml = (int)(o->max_len_a * (src_len[i] + 1)) + o->max_len_b;
        ss[i].max_len = ml < 1 ? 1 : (ml > c->max_positions ? c->max_positions : ml);
        st.max_t = ss[i].max_len > st.max_t ? ss[i].max_len : st.max_t;
        ss[i].done = mmt_calloc(k, sizeof *ss[i].done);
    }

    /* encoder once; cross-attention keys and values once per layer */
    const float *enc = model_encode(m, sbuf, img, n, S);
    st.src_pad = mmt_malloc((size_t)n * S);
    for (int i = 0; i < n * S; i++) st.src_pad[i] = sbuf[i] == c->pad_id;
    st.ckv = mmt_malloc((size_t)st.L * n * S * 2 * D * sizeof(float));
    for (int l = 0; l < st.L; l++)
        linear_forward(st.ckv + (size_t)l * n * S * 2 * D, 2 * D, enc, D,
                       m->params + m->dec[l].kv_w, m->params + m->dec[l].kv_b, n * S, D, 2 * D);

    size_t cache = (size_t)st.L * st.R * st.max_t * D;
    st.kc = mmt_malloc(cache * sizeof(float));
    st.vc = mmt_malloc(cache * sizeof(float));
    size_t R = st.R;
    st.x = mmt_malloc(R * D * sizeof(float));
    st.h = mmt_malloc(R * D * sizeof(float));
    st.qkv = mmt_malloc(R * 3 * D * sizeof(float));
    st.ctx = mmt_malloc(R * D * sizeof(float));
    st.a = mmt_malloc(R * D * sizeof(float));
    st.hid = mmt_malloc(R * c->F * sizeof(float));
    st.logits = mmt_malloc(R * c->V * sizeof(float));
    st.mean = mmt_malloc(R * sizeof(float));
    st.rstd = mmt_malloc(R * sizeof(float));
    st.lse = mmt_malloc(R * sizeof(float));
    st.W = 2 * k;
    st.rcand = mmt_malloc((size_t)R * st.W * sizeof *st.rcand);
    st.rncand = mmt_malloc(R * sizeof(int));

    /* live rows, grouped by sentence; one per sentence at the start */
    beam_row *rows = mmt_calloc(R, sizeof *rows), *next = mmt_calloc(R, sizeof *next);
    /* tokens and histories of live rows, double-buffered between steps */
    int *tokbuf = mmt_malloc(2 * R * st.max_t * sizeof(int));
    int *histbuf = mmt_malloc(2 * R * st.max_t * sizeof(int));
    int *tok = mmt_malloc(R * sizeof(int));
    int nrows = 0;
    for (int i = 0; i < n; i++, nrows++)
        rows[nrows] = (beam_row){i, i * k, 0.0f, tokbuf + (size_t)(i * k) * st.max_t,
                                 histbuf + (size_t)(i * k) * st.max_t};
    /* per sentence: the first live row, and its candidates */
    cand *cands_all = mmt_malloc((size_t)n * 2 * k * sizeof *cands_all);
    int *ncand = mmt_malloc((size_t)n * sizeof *ncand);
    int *group_start = mmt_malloc((size_t)(n + 1) * sizeof *group_start);

    for (int t = 0; nrows > 0; t++) {
        for (int r = 0; r < nrows; r++) tok[r] = t == 0 ? c->bos_id : rows[r].tokens[t - 1];
        step(&st, rows, tok, nrows, t);

        /* choose each sentence's next rows */
        int nnext = 0;
        int *nexttok = tokbuf + (size_t)((t + 1) % 2) * R * st.max_t;
        int *nexthist = histbuf + (size_t)((t + 1) % 2) * R * st.max_t;
        /* each sentence's best 2k extensions, from its rows' own lists */
        int ngroups = 0;
        for (int r = 0; r < nrows; r++)
            if (r == 0 || rows[r].sent != rows[r - 1].sent) group_start[ngroups++] = r;
        group_start[ngroups] = nrows;
        for (int g = 0; g < ngroups; g++) {
            int r0 = group_start[g];
            if (t + 1 >= ss[rows[r0].sent].max_len) continue; /* eos is forced instead */
            ncand[g] = top_candidates(&st, r0, group_start[g + 1], 2 * k,
                                      cands_all + (size_t)2 * k * g);
        }

        for (int g = 0; g < ngroups; g++) {
            int r0 = group_start[g], r1 = group_start[g + 1], b = rows[r0].sent;
            sent_state *s = &ss[b];
            int last = t + 1 >= s->max_len; /* this token must be eos */
            if (last) {
                for (int r = r0; r < r1 && s->ndone < k; r++)
                    finish(s, &rows[r], t,
                           rows[r].logprob + (st.logits[(size_t)r * st.V + eos] - st.lse[r]),
                           o->lenpen);
            } else {
                const int nc = ncand[g];
                const cand *cands = cands_all + 2 * k * g;
                int kept = 0;
                for (int i = 0; i < nc && kept < k && s->ndone < k; i++) {
                    if (cands[i].tok == eos) {
                        if (i < k) finish(s, &rows[cands[i].row], t, cands[i].score, o->lenpen);
                        continue;
                    }
                    beam_row *nr = &next[nnext++];
                    const beam_row *pr = &rows[cands[i].row];
                    *nr = (beam_row){b, b * k + kept, cands[i].score,
                                     nexttok + (size_t)(b * k + kept) * st.max_t,
                                     nexthist + (size_t)(b * k + kept) * st.max_t};
                    memcpy(nr->tokens, pr->tokens, (size_t)t * sizeof(int));
                    nr->tokens[t] = cands[i].tok;
                    /* positions 0..t stay where the parent's history put them */
                    memcpy(nr->hist, pr->hist, (size_t)t * sizeof(int));
                    nr->hist[t] = pr->slot;
                    kept++;
                }
                if (s->ndone >= k) nnext -= kept; /* sentence finished: drop its rows */
            }
        }
        beam_row *tr = rows;
        rows = next;
        next = tr;
        nrows = nnext;
    }

    /* best first; nbest per sentence */
    for (int i = 0; i < n; i++) {
        qsort(ss[i].done, ss[i].ndone, sizeof *ss[i].done, hyp_cmp);
        for (int r = 0; r < o->nbest; r++) {
            if (r < ss[i].ndone) {
                hyps[i * o->nbest + r] = ss[i].done[r];
                ss[i].done[r].ids = NULL;
            } else {
                hyps[i * o->nbest + r] = (decode_hyp){mmt_calloc(1, sizeof(int)), 0, -INFINITY,
                                                      -INFINITY};
            }
        }
        for (int r = 0; r < ss[i].ndone; r++) free(ss[i].done[r].ids);
        free(ss[i].done);
    }
    free(ss);
    free(sbuf);
    free(st.src_pad);
    free(st.ckv);
    free(st.kc);
    free(st.vc);
    free(st.x);
    free(st.h);
    free(st.qkv);
    free(st.ctx);
    free(st.a);
    free(st.hid);
    free(st.logits);
    free(st.mean);
    free(st.rstd);
    free(st.lse);
    free(st.rcand);
    free(st.rncand);
    free(rows);
    free(next);
    free(tokbuf);
    free(histbuf);
    free(tok);
    free(cands_all);
    free(ncand);
    free(group_start);
}
