/*
 * spm.h - a C API over SentencePiece: load a subword model from a file or
 * from bytes (a checkpoint carries its tokenizer), turn text into ids and
 * back, read the special ids, and train a new model.
 *
 * Every model mmt trains has pad = 0, unk = 1, bos = 2, eos = 3. Models
 * trained elsewhere may differ; read the ids through the accessors.
 *
 * Functions that can fail on bad input return MMT_OK or MMT_ERR (or NULL)
 * and fill an mmt_status with a message naming the input. The C++ side
 * turns every exception and SentencePiece error into such a status:
 * nothing throws across this API.
 */
#ifndef MMT_SPM_H
#define MMT_SPM_H

#include <stddef.h>

/* tokenizers/spm.cc includes common.h itself, inside extern "C". */
#ifndef MMT_COMMON_H
#include "common.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A loaded SentencePiece model; opaque. Encoding and decoding only read
 * it, so one model may serve several threads at once. */
typedef struct spm_model spm_model;

/* ------------------------------------------------------------- lifetime */

/* Reads the model file at path. Returns a model the caller owns (release
 * with spm_free), or NULL with st naming path and the reason. */
spm_model *spm_load(const char *path, mmt_status *st);

/* Reads a serialized model proto, len bytes at buf (what spm_serialize
 * writes, or the bytes of a .model file); buf is copied, not kept.
 * Returns a model the caller owns, or NULL with st filled. */
spm_model *spm_load_from_bytes(const void *buf, size_t len, mmt_status *st);

/* Writes to *buf a malloc'd copy of the model proto (*len bytes, not
 * NUL-terminated), which spm_load_from_bytes reads back; the caller frees
 * it. Returns MMT_OK, or MMT_ERR with *buf = NULL and st filled. */
int spm_serialize(const spm_model *m, char **buf, size_t *len, mmt_status *st);

/* Releases m and everything it holds; NULL is a no-op. */
void spm_free(spm_model *m);

/* ------------------------------------------------------ encode / decode */

/* Splits the NUL-terminated UTF-8 text into pieces and writes their ids
 * to *ids, a malloc'd array of *n ints the caller frees (never NULL on
 * success, even when *n is 0). No bos or eos is added; characters the
 * model has never seen become the unk id. Returns MMT_OK, or MMT_ERR with
 * *ids = NULL, *n = 0 and st filled. */
int spm_encode(const spm_model *m, const char *text, int **ids, int *n, mmt_status *st);

/* Joins the n ids back into text and writes to *text a malloc'd
 * NUL-terminated string the caller frees. Control ids (pad, bos, eos)
 * decode to nothing, unk to " \u2047 ". An id outside the vocabulary is
 * an error. Returns MMT_OK, or MMT_ERR with *text = NULL and st filled. */
int spm_decode(const spm_model *m, const int *ids, int n, char **text, mmt_status *st);

/* ------------------------------------------------------------ vocabulary */

/* The number of pieces, V: every id lies in [0, V). */
int spm_vocab_size(const spm_model *m);

/* The id of the NUL-terminated piece (e.g. "\u2581the"); the unk id when
 * the model lacks it. */
int spm_piece_to_id(const spm_model *m, const char *piece);

/* The special ids; -1 when the model has no such piece. */
int spm_pad_id(const spm_model *m);
int spm_bos_id(const spm_model *m);
int spm_eos_id(const spm_model *m);
int spm_unk_id(const spm_model *m);

/* -------------------------------------------------------------- training */

typedef struct {
    const char *const *inputs; /* (n_inputs) text files, one sentence a line */
    int n_inputs;
    const char *model_prefix;  /* writes model_prefix.model and .vocab */
    int vocab_size;            /* V, including the 4 special pieces */
    const char *model_type;    /* "bpe" or "unigram" */
    float character_coverage;  /* share of characters kept; <= 0: 0.9995 */
    int input_sentence_size;   /* sample this many lines; <= 0: all */
    int seed;                  /* 0: leave SentencePiece's seed as it is */
    int num_threads;           /* <= 0: SentencePiece's default */
    int verbose;               /* 0: only SentencePiece errors reach stderr */
} spm_train_options;

/* Trains a model on opt->inputs with pad = 0, unk = 1, bos = 2, eos = 3
 * and writes opt->model_prefix.model and .vocab. vocab_size is a soft
 * limit, so a corpus too small for it still trains. Input paths must not
 * contain ',', '"', '=' or whitespace (SentencePiece would split them);
 * such a path is refused with a message rather than quoted.
 *
 * Side effects, process-wide and lasting: a non-zero seed seeds
 * SentencePiece's random generator (sampling and shuffling of lines), and
 * verbose sets SentencePiece's log level for later calls too.
 * Returns MMT_OK, or MMT_ERR with st naming the input and the reason. */
int spm_train(const spm_train_options *opt, mmt_status *st);

#ifdef __cplusplus
}
#endif

#endif
