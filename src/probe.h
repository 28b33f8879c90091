/*
 * probe.h - the colour-deprivation probe (after Caglayan et al., 2019):
 * does a multimodal model read the image? Every English colour word of a
 * source sentence is replaced by a mask token, the German target is kept,
 * and a small PNG drawn for the sentence shows the masked colours; a model
 * can translate the colour only by reading the image.
 *
 * Contents:
 *   lexicon      probe_colours, probe_colour_en, probe_colour_de
 *   masking      probe_mask_line
 *   images       probe_render
 *   scoring      probe_score
 *   generation   probe_make (the whole probe data set from Multi30k)
 *   float16      probe_f32_to_f16, probe_npy_open/write/commit/abort,
 *                probe_write_npy_f16
 *   stand-ins    probe_standin, probe_standin_value
 *
 * Masking. The English line is split on spaces and tabs; a token equal to
 * an English colour name (ASCII case ignored; "grey" counts as gray) becomes
 * the k-th mask token "[c1]" .. "[c4]" in order of appearance. The 5th and
 * later colour words of a line are left as they are (and counted). Words
 * that only contain a colour ("redhead", "blues", "red-haired") are not
 * colour words.
 *
 * Image (PROBE_IMAGE x PROBE_IMAGE RGB, 8 bits): four 8x8 slots in raster
 * order (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). Slot k
 * holds a 6x6 square in the colour of mask [c(k+1)], placed at an offset
 * of 0..2 pixels in x and y inside the slot; the background is (235, 235,
 * 235) plus one noise value in -6..6 per pixel; an empty slot shows only
 * background. Then 1 or 2 distractor pixels in palette colours go at
 * random places. Offsets, noise and distractors are drawn from a generator
 * seeded by (seed, line index) alone.
 *
 * Output of probe_make, for SPLIT in train, valid, test, under OUT:
 *   SPLIT.en              masked source, one sentence a line
 *   SPLIT.de              the target, copied
 *   SPLIT.colours         the English names of the masked colours, in
 *                         order, space separated; empty when none
 *   images/SPLIT/%05d.png the image of line i (0-based)
 *   SPLIT.images.txt      the image paths, relative to OUT
 *   SPLIT.npy             float16 (N, 4, 192): the image as image_load_png
 *                         reads it (v / 255), cut by image_patches into 4
 *                         patches of 8x8, each (py, px, c) flattened
 *   test.shuffled.images.txt, test.shuffled.npy
 *                         the test images given to the sentences in a
 *                         seeded cyclic permutation (no sentence keeps its
 *                         own image): the incongruent-image test
 * The same inputs and seed give byte-identical files.
 */
#ifndef MMT_PROBE_H
#define MMT_PROBE_H

#include <stdint.h>

#include "common.h"
#include "data.h"

#define PROBE_N_COLOURS 11
#define PROBE_MAX_MASKS 4  /* masks per line: [c1] .. [c4] */
#define PROBE_IMAGE 16     /* image side in pixels */
#define PROBE_SLOT 8       /* slot side: 2 x 2 slots */
#define PROBE_SQUARE 6     /* side of a slot's colour square */
#define PROBE_FEAT_P 4     /* patches per image */
#define PROBE_FEAT_D 192   /* values per patch: 8 * 8 * 3 */

/* ---------------------------------------------------------------- lexicon */

/* One colour: its English name, its RGB value in the images and the German
 * forms that count as a correct translation (lowercase, NULL-terminated). */
typedef struct {
    const char *name;
    unsigned char rgb[3];
    const char *const *forms;
} probe_colour;

/* red, blue, green, yellow, black, white, brown, gray, pink, purple, orange */
extern const probe_colour probe_colours[PROBE_N_COLOURS];

/* The colour whose English name is word[0..len) (ASCII case ignored;
 * "grey" is gray), or -1. */
int probe_colour_en(const char *word, size_t len);

/* The colour of which the German token[0..len) is a form (exact bytes:
 * lowercase it first), alone or after a shade prefix ("hellblauen",
 * "dunkelgrüner"), or -1. */
int probe_colour_de(const char *token, size_t len);

/* ---------------------------------------------------------------- masking */

/* The masks of one line. */
typedef struct {
    int n;                       /* masks, 0..PROBE_MAX_MASKS */
    int colour[PROBE_MAX_MASKS]; /* (n) colour of [c1] .. [cn], index into probe_colours */
    int unmasked;                /* colour words after the 4th, left as they were */
} probe_masks;

/* Returns line with its colour words masked (malloc'd; the caller frees)
 * and fills *m. The spaces and tabs between tokens are kept as they were. */
char *probe_mask_line(const char *line, probe_masks *m);

/* ----------------------------------------------------------------- images */

/* Draws the image of line number line for masks m into rgb, (PROBE_IMAGE,
 * PROBE_IMAGE, 3) 8-bit row-major HWC (see the top of this file). The same
 * (m, seed, line) always gives the same pixels. */
void probe_render(unsigned char *rgb, const probe_masks *m, uint64_t seed, long line);

/* ---------------------------------------------------------------- scoring */

/* What probe_score counted. */
typedef struct {
    long lines;
    long words;                       /* masked colour words */
    long correct;                     /* of them, translated */
    long words_by[PROBE_N_COLOURS];   /* the same per colour */
    long correct_by[PROBE_N_COLOURS];
} probe_counts;

/* Scores hypotheses against the masked colours. colours[i] is line i of a
 * SPLIT.colours file, hyps[i] the translation of that line. Hypothesis
 * tokens are separated by whitespace and by hyphens (so each colour of a
 * compound such as "schwarz-weisser" counts), lowercased (ASCII and A/O/U
 * umlauts), with leading and trailing punctuation stripped (ASCII, and the
 * quotes and dashes German text uses). Per line, each expected colour in order is
 * correct when an unused token is one of its German forms; a token serves
 * one colour at most. Adds into *c (zero it first). The names are used in
 * messages: "COLOURS:LINE: unknown colour \"x\"", and for different line
 * counts "NAME:LINE: missing line: ..." at the shorter file's end. Returns
 * MMT_OK, or MMT_ERR with st filled. */
int probe_score(const char *const *colours, long n_colours, const char *colours_name,
                const char *const *hyps, long n_hyps, const char *hyps_name, probe_counts *c,
                mmt_status *st);

/* ------------------------------------------------------------- generation */

/* What probe_make did with one split. */
typedef struct {
    const char *name;                 /* train, valid, test */
    long lines;
    long masked;                      /* masked colour words */
    long masked_by[PROBE_N_COLOURS];
    long lines_masked;                /* lines with at least one mask */
    long lines_over;                  /* lines with more than PROBE_MAX_MASKS colour words */
    long unmasked;                    /* the colour words left unmasked in those */
} probe_split_stats;

#define PROBE_N_SPLITS 3

typedef struct {
    probe_split_stats split[PROBE_N_SPLITS]; /* train, valid, test */
} probe_summary;

/* Builds the probe under out (created if missing; see the top of this file)
 * from the Multi30k folder from: for train, valid and test it reads
 * from/tok/{train,val,test_2016_flickr}.lc.norm.tok.{en,de}.gz (gzip or
 * plain). Text and feature files are written atomically; images in place.
 * *sum (may be NULL) gets the counts. Returns MMT_OK, or MMT_ERR with st
 * naming the file (and line) that was wrong. */
int probe_make(const char *from, const char *out, uint64_t seed, probe_summary *sum,
               mmt_status *st);

/* ---------------------------------------------------------------- float16 */

/* x as an IEEE half, rounded to nearest, ties to even; beyond the largest
 * half (65504) it becomes infinity, small values become subnormals or
 * zero, NaN stays NaN and the sign is kept. */
uint16_t probe_f32_to_f16(float x);

/* A float16 NPY 1.0 file ('<f2', C order) written as a stream: the header
 * first, then the elements in C order in any number of pieces. */
typedef struct {
    data_atomic_file a;
    uint64_t want; /* elements the shape holds */
    uint64_t done; /* elements written */
} probe_npy_writer;

/* Opens a temporary file beside path with a 1 MiB buffer and writes the
 * header for shape (ndim values, 1..4). Returns MMT_OK or MMT_ERR. */
int probe_npy_open(probe_npy_writer *w, const char *path, int ndim, const long *shape,
                   mmt_status *st);

/* Appends n halves; more than the shape holds is a bug. */
void probe_npy_write(probe_npy_writer *w, const uint16_t *x, size_t n);

/* Renames the finished file over path. MMT_ERR, and the temporary file
 * removed, when fewer elements were written than the shape holds or a
 * write failed. */
int probe_npy_commit(probe_npy_writer *w, mmt_status *st);

/* Removes the temporary file. */
void probe_npy_abort(probe_npy_writer *w);

/* The whole array x of the given shape in one call, atomically. */
int probe_write_npy_f16(const char *path, const uint16_t *x, int ndim, const long *shape,
                        mmt_status *st);

/* -------------------------------------------------------------- stand-ins */

/* Stand-ins for the official Multi30k ResNet-50 features, which cannot be
 * downloaded here: same shape and dtype, values carrying no information. */
typedef enum {
    PROBE_STANDIN_AVGPOOL,   /* (N, 2048) */
    PROBE_STANDIN_RES4FRELU, /* (N, 1024, 14, 14) */
} probe_standin_kind;

/* Element elem of row row of a stand-in file, as a half: k / 2048 for k in
 * 0..2047 drawn from a hash of (row, elem), so in [0, 1) and exact in
 * float16. */
uint16_t probe_standin_value(uint64_t row, uint64_t elem);

/* Writes rows rows of stand-in features of the given kind to path, one row
 * at a time (the res4frelu file of Multi30k's training set is 11.6 GB),
 * atomically. Returns MMT_OK or MMT_ERR with st filled. */
int probe_standin(const char *path, long rows, probe_standin_kind kind, mmt_status *st);

#endif
