/*
 * checkpoint.h - checkpoints as safetensors files.
 *
 * A checkpoint holds every parameter tensor under its table name, the Adam
 * moments (optional), the SentencePiece model (as bytes) and, in the
 * header's metadata, the model configuration, the resolved recipe and the
 * training state (step, epoch, position in the epoch's batch order, best
 * validation score). Dropout masks are a function of the seed and the step,
 * so the step is the whole random state. One file is enough to translate or
 * to resume. Files are written to a temporary name, flushed and renamed.
 */
#ifndef MMT_CHECKPOINT_H
#define MMT_CHECKPOINT_H

#include "model.h"
#include "optim.h"

typedef struct {
    long step;            /* updates done */
    int epoch;            /* epoch in progress, from 1 */
    long batch_in_epoch;  /* batches of this epoch already consumed */
    double best_metric;   /* best validation score so far (-1: none) */
    int bad_validations;  /* validations since the best (early stopping) */
    double train_seconds; /* wall time spent training, over all resumes */
    double epoch_loss;    /* summed training loss of this epoch so far */
    double epoch_nll;     /* summed training NLL of this epoch so far */
    long epoch_tokens;    /* target tokens of this epoch so far */
} train_state;

typedef struct {
    mmt_model *model;     /* owned by the caller once loaded */
    adam_state adam;      /* moments; adam.m == NULL when absent */
    train_state ts;
    char *recipe_json;    /* NULL when absent */
    char *spm;            /* SentencePiece model bytes; NULL when absent */
    size_t spm_len;
} ckpt;

/* Save model (and adam if not NULL) with the state, recipe and tokenizer. */
int ckpt_save(const char *path, mmt_model *m, const adam_state *adam, const train_state *ts,
              const char *recipe_json, const void *spm, size_t spm_len, mmt_status *st);

/* Load a checkpoint into c: builds the model from the stored configuration.
 * with_adam = 0 skips the moments. */
int ckpt_load(const char *path, ckpt *c, int with_adam, mmt_status *st);
void ckpt_free(ckpt *c);

/* Average the parameters of n checkpoints of one model into out (the
 * first's configuration, tokenizer and recipe, no optimizer state). */
int ckpt_average(const char *const *paths, int n, const char *out, mmt_status *st);

#endif
