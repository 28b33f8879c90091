/*
 * decode.h - greedy and beam search with incremental decoding.
 *
 * The encoder runs once per batch of sentences; the cross-attention keys
 * and values of every decoder layer are computed once per sentence; the
 * self-attention keys and values of earlier target positions are cached,
 * so each step costs one row per live hypothesis.
 *
 * Beam search follows fairseq: each step keeps the 2k best extensions of a
 * sentence's k hypotheses; an end-of-sentence among the best k finishes a
 * hypothesis with score logprob / length^lenpen (length counts the eos); a
 * sentence is done when k hypotheses have finished. Greedy is beam 1.
 */
#ifndef MMT_DECODE_H
#define MMT_DECODE_H

#include "model.h"

typedef struct {
    int beam;        /* hypotheses kept per sentence; 1 = greedy */
    float lenpen;    /* length penalty exponent (fairseq's --lenpen) */
    float max_len_a; /* longest output: a * (source length + 1) + b tokens */
    int max_len_b;
    int nbest;       /* hypotheses returned per sentence, 1..beam */
} decode_opts;

decode_opts decode_opts_default(void); /* beam 5, lenpen 1, a 1.2, b 10, nbest 1 */

typedef struct {
    int *ids;      /* output ids, eos not included (malloc'd) */
    int len;
    float score;   /* logprob / (len + 1)^lenpen */
    float logprob; /* summed log-probability, eos included */
} decode_hyp;

/* Translate n sentences given as ids (no eos; it is appended here) with,
 * for a model with a fusion, their image regions img (n, P, Dv) (else
 * NULL). Fills hyps[i * nbest + r] with the r-th best hypothesis of
 * sentence i. */
void decode_batch(mmt_model *m, const int *const *src, const int *src_len, const float *img,
                  int n, const decode_opts *o, decode_hyp *hyps);
void decode_hyp_free(decode_hyp *h);

#endif
