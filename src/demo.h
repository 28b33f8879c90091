/*
 * demo.h - a built-in toy language pair for trying the trainer without
 * downloading anything: small enough that a small Transformer learns it in
 * a couple of minutes, yet not a copy task.
 *
 * Source sentences follow one grammar over 44 English words:
 *     sentence = NP verb [NP] [adverb]        (3 to 12 words)
 *     NP       = determiner adjective{0..3} noun
 * The target language maps every source word to one invented word (a fixed
 * lexicon, one to one) and reorders: adjectives follow their noun, and the
 * verb goes last, after the object and the adverb:
 *     the big red dog sees a cat quickly
 *     ka hundo gaton roza mo miru rapide vidas
 *
 * Contents: demo_generate, demo_translate, demo_lexicon, demo_write_features.
 */
#ifndef MMT_DEMO_H
#define MMT_DEMO_H

#include <stdint.h>

#include "common.h"

/* Default split sizes. */
#define DEMO_N_TRAIN 4000
#define DEMO_N_VALID 200
#define DEMO_N_TEST 200

/* Width of the per-sentence features: one slot per noun. */
#define DEMO_FEAT_DIM 16

enum { DEMO_DET, DEMO_ADJ, DEMO_NOUN, DEMO_VERB, DEMO_ADV };

typedef struct {
    const char *src; /* source word */
    const char *tgt; /* its translation */
    int cls;         /* DEMO_DET ... DEMO_ADV */
} demo_word;

/* The lexicon: *n entries (n may be NULL), nouns numbered in order of
 * appearance from 0 to DEMO_FEAT_DIM - 1. Static storage. */
const demo_word *demo_lexicon(int *n);

/* Writes dir/{train,valid,test}.{src,tgt} (plain text, one sentence a
 * line) with n_train, n_valid and n_test sentences drawn from seed, then
 * dir/demo.stamp naming the seed and sizes. Creates dir (and its parents)
 * when missing. Each file is written to a temporary name and renamed. When
 * the stamp and all six files are already there for the same seed and
 * sizes, nothing is written. Returns MMT_OK or MMT_ERR with st filled. */
int demo_generate(const char *dir, uint64_t seed, int n_train, int n_valid, int n_test,
                  mmt_status *st);

/* The reference translation of one source sentence (words separated by
 * single spaces) into out (cap bytes). Returns MMT_OK, or MMT_ERR with st
 * naming the word where src leaves the grammar or the lexicon. */
int demo_translate(const char *src, char *out, size_t cap, mmt_status *st);

/* Hook for multimodal runs: reads the source file src_path (one demo
 * sentence a line) and writes npy_path, a float32 NPY array (N,
 * DEMO_FEAT_DIM) with row i the one-hot of line i's first noun, the
 * stand-in for an image of the sentence's subject. Returns MMT_OK or
 * MMT_ERR with st naming file:line. */
int demo_write_features(const char *src_path, const char *npy_path, mmt_status *st);

#endif
