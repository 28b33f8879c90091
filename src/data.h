/*
 * data.h - the trainer's data pipeline: read parallel text (plain or
 * gzip), encode it with a SentencePiece model into one flat corpus of ids,
 * cache the encoded corpus on disk, train a joint tokenizer, and cut the
 * corpus into token-bounded batches in a seeded order.
 *
 * Contents:
 *   text files     data_read_lines, data_is_gzip
 *   encoding       pair_corpus, data_encode, data_stats_str
 *   token cache    data_cache_key, data_cache_save, data_cache_load, data_prepare
 *   tokenizer      data_train_tokenizer
 *   batching       batch_plan_build, batch_plan_shuffle, batch_plan_rows, batch_fill
 *   small helpers  data_atomic_*, data_write_npy_f32, data_fnv1a64, data_splitmix64
 *
 * Lengths: a pair's source has len_s ids and its target len_t ids, without
 * bos or eos. In a batch the source gets eos appended and the target gets
 * bos in front (tgt_in) or eos behind (tgt_out), so the pair needs
 * S = len_s + 1 and T = len_t + 1 positions.
 */
#ifndef MMT_DATA_H
#define MMT_DATA_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "model.h"
#include "spm.h"

/* ------------------------------------------------------------ text files */

/* The lines of one text file, trimmed of surrounding whitespace and of
 * the newline (LF or CRLF); a UTF-8 byte order mark at the start is
 * dropped. A final line without a newline still counts. */
typedef struct {
    long n;      /* number of lines */
    char **line; /* (n) NUL-terminated lines, pointing into buf */
    char *buf;   /* owns the text */
} data_lines;

/* Reads path, plain or gzip (zlib tells them apart by their first bytes),
 * into t, which the caller releases with data_lines_free. Invalid UTF-8 or
 * a NUL byte is an error naming path:line (1-based) and the byte column.
 * Returns MMT_OK, or MMT_ERR with st filled and t empty. */
int data_read_lines(data_lines *t, const char *path, mmt_status *st);
void data_lines_free(data_lines *t);

/* 1 when path starts with the gzip magic bytes 1f 8b, 0 when it does not,
 * MMT_ERR with st filled when it cannot be opened. */
int data_is_gzip(const char *path, mmt_status *st);

/* -------------------------------------------------------------- encoding */

/* A parallel corpus as ids. Pair i's source is
 * src_ids[src_off[i] .. src_off[i+1]) and its target likewise; line[i] is
 * its 0-based line in the input files (image features are stored by line,
 * so this is how a pair finds its features after filtering). */
typedef struct {
    long n;           /* pairs */
    int32_t *src_ids; /* (src_off[n]) source ids, no bos/eos */
    int32_t *tgt_ids; /* (tgt_off[n]) target ids, no bos/eos */
    int64_t *src_off; /* (n + 1) */
    int64_t *tgt_off; /* (n + 1) */
    int64_t *line;    /* (n) 0-based line index in the input files */
} pair_corpus;

/* What reading a corpus kept and what it dropped, and why. */
typedef struct {
    long lines;      /* line pairs read */
    long kept;       /* pairs in the corpus */
    long empty;      /* dropped: a side empty after trimming, or no tokens */
    long too_long;   /* dropped: a side longer than max_len tokens */
    long src_tokens; /* ids in the kept sources, no eos */
    long tgt_tokens; /* ids in the kept targets, no bos/eos */
} data_stats;

/* Reads the parallel files src_path and tgt_path (one sentence a line,
 * plain or gzip), encodes every line with spm (using OpenMP threads), and
 * fills c with the pairs where both sides are non-empty and at most
 * max_len ids long (max_len <= 0: no limit); dropped pairs are counted in
 * *stats (may be NULL). Different line counts are an error naming both
 * files and both counts. The caller releases c with pair_corpus_free.
 * Returns MMT_OK, or MMT_ERR with st filled and c empty. */
int data_encode(pair_corpus *c, const spm_model *spm, const char *src_path, const char *tgt_path,
                int max_len, data_stats *stats, mmt_status *st);
void pair_corpus_free(pair_corpus *c);

/* Writes a one-line summary of s into buf, e.g. "29000 lines, 28990 kept,
 * 3 empty, 7 longer than 100 tokens"; returns buf. */
const char *data_stats_str(const data_stats *s, int max_len, char *buf, size_t cap);

/* ----------------------------------------------------------- token cache */

/* The cache load answers DATA_CACHE_HIT (== MMT_OK), DATA_CACHE_STALE, or
 * MMT_ERR. */
enum { DATA_CACHE_HIT = 0, DATA_CACHE_STALE = 1 };

/* Returns a malloc'd string (caller frees) that names what an encoded
 * corpus depends on: both input paths (made absolute) with their sizes and
 * modification times, an FNV-1a 64 hash of spm's serialized model,
 * max_len, and the version of the reading rules. NULL with st filled when
 * an input cannot be stat'ed or the model not serialized. */
char *data_cache_key(const char *src_path, const char *tgt_path, const spm_model *spm, int max_len,
                     mmt_status *st);

/* Writes c and *stats with key to path: a temporary file beside it,
 * flushed, fsync'ed and renamed over path, so a reader sees either the old
 * file or the whole new one. Returns MMT_OK or MMT_ERR with st filled. */
int data_cache_save(const pair_corpus *c, const data_stats *stats, const char *path,
                    const char *key, mmt_status *st);

/* Reads path into c and *stats (may be NULL) when it holds a whole cache
 * made with exactly this key. Returns DATA_CACHE_HIT; DATA_CACHE_STALE
 * when the file is missing, has another key or version, or is truncated
 * or corrupt (c stays empty, st->msg says which, st->code stays MMT_OK:
 * re-encode and save); MMT_ERR with st filled when the file exists but
 * cannot be read. */
int data_cache_load(pair_corpus *c, data_stats *stats, const char *path, const char *key,
                    mmt_status *st);

/* The trainer's one call: load c from cache_path when its key matches,
 * else encode the files and save the cache (cache_path NULL: no cache).
 * *from_cache (may be NULL) says which happened. Returns MMT_OK or MMT_ERR. */
int data_prepare(pair_corpus *c, const spm_model *spm, const char *src_path, const char *tgt_path,
                 int max_len, const char *cache_path, data_stats *stats, int *from_cache,
                 mmt_status *st);

/* ------------------------------------------------------------- tokenizer */

/* Trains one joint SentencePiece model over the nfiles text files (source
 * and target training sides) and writes model_prefix.model and .vocab;
 * gzip inputs are first decompressed into a temporary folder (removed
 * afterwards), as SentencePiece reads plain text only. type is "bpe" or
 * "unigram"; coverage <= 0 and input_sentence_size <= 0 take
 * SentencePiece's defaults (see spm.h). SentencePiece's generator is seeded
 * with a fixed value, so the same inputs give the same model. Returns
 * MMT_OK or MMT_ERR with st filled. */
int data_train_tokenizer(const char *const *files, int nfiles, const char *model_prefix,
                         int vocab_size, const char *type, float coverage, int input_sentence_size,
                         mmt_status *st);

/* -------------------------------------------------------------- batching */

/* Batches over a corpus. Pairs are sorted by (S, T, pair index) and cut
 * into runs of consecutive pairs, each as long as B * max(S_max, T_max)
 * <= max_tokens allows; a pair that alone exceeds max_tokens forms a batch
 * of its own. The batches are then visited in order[], which is the
 * length order until batch_plan_shuffle permutes it; rows within a batch
 * keep their length order. */
typedef struct {
    long n; /* pairs planned (all of the corpus) */
    long n_batches;
    long *rows;  /* (n) pair indices in length order */
    long *start; /* (n_batches + 1) batch b holds rows[start[b] .. start[b+1]) */
    long *order; /* (n_batches) the batch visited k-th in this epoch */
    int max_tokens;
    int max_B, max_S, max_T; /* the largest B, S, T of any batch: size buffers by these */
} batch_plan;

/* Builds p over c. max_tokens must be positive. The plan refers to c by
 * pair index only; release it with batch_plan_free. Returns MMT_OK or
 * MMT_ERR with st filled. */
int batch_plan_build(batch_plan *p, const pair_corpus *c, int max_tokens, mmt_status *st);
void batch_plan_free(batch_plan *p);

/* Sets p->order to a permutation of the batches drawn from (seed, epoch)
 * alone: the same pair gives the same order, whatever came before and on
 * any number of threads. */
void batch_plan_shuffle(batch_plan *p, uint64_t seed, int epoch);

/* Resets p->order to the length order (what validation and decoding use). */
void batch_plan_sorted(batch_plan *p);

/* The pair indices of the k-th batch of the epoch (k < n_batches), one per
 * row of the filled batch; *B gets their number. Points into p. */
const long *batch_plan_rows(const batch_plan *p, long k, int *B);

/* Padded id buffers for one batch at a time, grown as needed. */
typedef struct {
    int pad_id, bos_id, eos_id;
    int *src;                /* (B, S) */
    int *tgt_in;             /* (B, T) */
    int *tgt_out;            /* (B, T) */
    size_t cap_src, cap_tgt; /* ints allocated in src and in each tgt buffer */
} batch_buf;

void batch_buf_init(batch_buf *buf, int pad_id, int bos_id, int eos_id);
void batch_buf_free(batch_buf *buf);

/* Fills out with the k-th batch of the epoch (in p->order): row r is the
 * pair batch_plan_rows(p, k)[r], src = ids, eos, pad...; tgt_in = bos, ids,
 * pad...; tgt_out = ids, eos, pad... out's arrays point into buf and stay
 * valid until the next fill. Returns the number of non-pad target tokens
 * (sum over rows of len_t + 1), the loss normaliser. */
int batch_fill(batch_buf *buf, const pair_corpus *c, const batch_plan *p, long k, mmt_batch *out);

/* --------------------------------------------------------- small helpers */

/* Atomic replacement of a file: write through a->f, then commit flushes,
 * fsyncs and renames the temporary file over path, or abort removes it. */
typedef struct {
    FILE *f;
    char *path; /* owned copies */
    char *tmp;
} data_atomic_file;

int data_atomic_open(data_atomic_file *a, const char *path, mmt_status *st);
int data_atomic_commit(data_atomic_file *a, mmt_status *st);
void data_atomic_abort(data_atomic_file *a);

/* Writes a (rows, cols) float32 C-order array as an NPY 1.0 file
 * (little-endian '<f4'), atomically. Returns MMT_OK or MMT_ERR. */
int data_write_npy_f32(const char *path, const float *x, long rows, long cols, mmt_status *st);

/* FNV-1a 64 over n bytes, continuing from h (start with DATA_FNV_OFFSET). */
#define DATA_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t data_fnv1a64(const void *p, size_t n, uint64_t h);

/* The next number of the splitmix64 generator with state *s. */
uint64_t data_splitmix64(uint64_t *s);

#endif
