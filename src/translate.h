/*
 * translate.h - text in, text out: tokenize source lines with the
 * checkpoint's SentencePiece model, decode them in length-sorted batches,
 * restore the input order, detokenize. Used by mmt-translate and by the
 * trainer's validation, so both produce the same text.
 */
#ifndef MMT_TRANSLATE_H
#define MMT_TRANSLATE_H

#include "decode.h"
#include "imageset.h"
#include "spm.h"

typedef struct {
    decode_opts dec;
    int batch_size;   /* sentences per decoding batch */
    int batch_tokens; /* source tokens per batch (0: no limit) */
} translate_opts;

typedef struct {
    long sentences, src_tokens, tgt_tokens; /* tgt_tokens: output ids, eos included */
    double seconds;
} translate_stats;

/* Translate n lines; with a fusion, images holds the image of each line
 * (line i is its line i; the caller checks the count), else NULL.
 * out[i * nbest + r] receives the r-th hypothesis of line i as malloc'd
 * text; scores (may be NULL) its score. An empty line gives an empty
 * translation. Returns MMT_OK or MMT_ERR (tokenizer error). */
int translate_lines(mmt_model *m, const spm_model *spm, const char *const *lines, long n,
                    const imageset *images, const translate_opts *o, char **out, float *scores,
                    translate_stats *ts, mmt_status *st);

#endif
