/* translate.c - batched translation of text lines, in input order. */
#include "translate.h"

#include <stdlib.h>
#include <string.h>

static const int *sort_len; /* lengths for qsort's comparison */

static int by_length(const void *a, const void *b) {
    long i = *(const long *)a, j = *(const long *)b;
    if (sort_len[i] != sort_len[j]) return sort_len[j] - sort_len[i]; /* longest first */
    return i < j ? -1 : i > j;
}

int translate_lines(mmt_model *m, const spm_model *spm, const char *const *lines, long n,
                    const imageset *images, const translate_opts *o, char **out, float *scores,
                    translate_stats *ts, mmt_status *st) {
    const int nb = o->dec.nbest, max_src = model_cfg(m)->max_positions - 1;
    double t0 = mmt_now();
    int **ids = mmt_calloc(n ? n : 1, sizeof *ids);
    int *len = mmt_calloc(n ? n : 1, sizeof *len);
    long *order = mmt_malloc((n ? n : 1) * sizeof *order);
    int rc = MMT_OK;
    translate_stats s = {n, 0, 0, 0.0};

    /* tokenize; over-long sources are cut to what positions allow */
    for (long i = 0; i < n && rc == MMT_OK; i++) {
        rc = spm_encode(spm, lines[i], &ids[i], &len[i], st);
        if (rc == MMT_OK && len[i] > max_src) len[i] = max_src;
        s.src_tokens += len[i];
        order[i] = i;
    }

    /* decode in batches of similar length, longest first */
    sort_len = len;
    if (rc == MMT_OK) qsort(order, n, sizeof *order, by_length);
    decode_hyp *hyps = mmt_malloc((size_t)(o->batch_size > 0 ? o->batch_size : 1) * nb *
                                  sizeof *hyps);
    const int **bsrc = mmt_malloc((size_t)(o->batch_size > 0 ? o->batch_size : 1) * sizeof *bsrc);
    int *blen = mmt_malloc((size_t)(o->batch_size > 0 ? o->batch_size : 1) * sizeof *blen);
    const int use_img = images && model_cfg(m)->fusion != FUSION_NONE;
    float *bimg = use_img ? mmt_malloc((size_t)(o->batch_size > 0 ? o->batch_size : 1) *
                                       images->P * images->Dv * sizeof *bimg)
                          : NULL;
    for (long i = 0; i < n && rc == MMT_OK;) {
        /* empty lines are not decoded */
        if (len[order[i]] == 0) {
            for (int r = 0; r < nb; r++) {
                out[order[i] * nb + r] = strdup("");
                if (scores) scores[order[i] * nb + r] = 0.0f;
            }
            i++;
            continue;
        }
        int B = 0;
        long toks = 0;
        while (i + B < n && B < o->batch_size && len[order[i + B]] > 0 &&
               (o->batch_tokens <= 0 || B == 0 ||
                toks + len[order[i + B]] + 1 <= o->batch_tokens)) {
            toks += len[order[i + B]] + 1;
            bsrc[B] = ids[order[i + B]];
            blen[B] = len[order[i + B]];
            B++;
        }
        if (use_img) imageset_fill(images, order + i, B, bimg);
        decode_batch(m, bsrc, blen, bimg, B, &o->dec, hyps);
        for (int b = 0; b < B && rc == MMT_OK; b++)
            for (int r = 0; r < nb; r++) {
                decode_hyp *h = &hyps[b * nb + r];
                long at = order[i + b] * nb + r;
                rc = spm_decode(spm, h->ids, h->len, &out[at], st);
                if (scores) scores[at] = h->score;
                if (r == 0) s.tgt_tokens += h->len + 1;
            }
        for (int b = 0; b < B * nb; b++) decode_hyp_free(&hyps[b]);
        i += B;
    }
    free(hyps);
    free(bsrc);
    free(blen);
    free(bimg);
    for (long i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(len);
    free(order);
    s.seconds = mmt_now() - t0;
    if (ts) *ts = s;
    return rc;
}
