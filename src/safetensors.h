/*
 * safetensors.h - read and write the safetensors format.
 *
 * A file is:
 *   8 bytes    header length N, unsigned little-endian
 *   N bytes    JSON object: "name": {"dtype": "F32", "shape": [2, 3],
 *              "data_offsets": [begin, end]} per tensor, and an optional
 *              "__metadata__": {"key": "value", ...} of strings
 *   the rest   raw little-endian tensor data; offsets are relative to it
 *
 * The reader loads the whole file and validates every tensor before it
 * returns: a known dtype, a shape whose product times the dtype size equals
 * the data_offsets range, and ranges that tile the data without gaps or
 * overlaps. Errors name the file and the tensor.
 *
 * The writer collects tensors by reference and lists them in the header in
 * the order they were added; in the data, wider dtypes come first so every
 * tensor starts at a multiple of its element size. It writes a temporary
 * file and renames it over the target, so a crash leaves either the old
 * file or the new one, never a torn one.
 *
 * Data is little-endian on disk and read as-is: mmt runs on little-endian
 * hosts only.
 */
#ifndef MMT_SAFETENSORS_H
#define MMT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_F64, ST_I32, ST_I64, ST_U8, ST_BF16 } st_dtype;

/* "F32", "I64", ... */
const char *st_dtype_name(st_dtype t);
/* Bytes per element. */
size_t st_dtype_size(st_dtype t);

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t offset, nbytes; /* byte range into the data section */
} st_tensor;

typedef struct {
    char *path;          /* as given to st_read, for messages */
    unsigned char *data; /* (data_len) the data section, 64-byte aligned */
    size_t data_len;
    int n;               /* tensors, in the order of the header */
    st_tensor *tensors;  /* (n) */
    int nmeta;           /* "__metadata__" entries */
    char **meta_keys;    /* (nmeta) */
    char **meta_values;  /* (nmeta) */
} st_file;

/* ------------------------------------------------------------------ read */

/* Load and validate path into f. On error returns MMT_ERR with st naming
 * the file (and the tensor, where one is at fault) and leaves f empty, so
 * st_close(f) is safe either way. */
int st_read(st_file *f, const char *path, mmt_status *st);
/* The tensor called name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
/* The first byte of t's data. The data section is 64-byte aligned, so the
 * pointer is aligned for t's dtype when its offset is a multiple of the
 * element size, as st_writer and the safetensors library lay files out;
 * files from other writers may need memcpy. */
const void *st_data(const st_file *f, const st_tensor *t);
/* The metadata value for key, or NULL if absent. */
const char *st_meta(const st_file *f, const char *key);
/* Number of elements of t. */
int64_t st_numel(const st_tensor *t);
void st_close(st_file *f);

/* ----------------------------------------------------------------- write */

typedef struct st_writer st_writer;

st_writer *st_writer_new(void);
/* Add a tensor. data is referenced, not copied: it must stay valid until
 * st_writer_save. nbytes must equal the shape's product times the dtype
 * size, and name must be new; both are checked as program bugs. */
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const void *data, size_t nbytes);
/* Add or replace a "__metadata__" entry (both strings are copied). */
void st_writer_meta(st_writer *w, const char *key, const char *value);
/* Write everything to path: to path.tmp.PID first, flushed and fsynced,
 * then renamed over path. On error returns MMT_ERR with st naming path;
 * the temporary file is removed and path is left as it was. */
int st_writer_save(st_writer *w, const char *path, mmt_status *st);
void st_writer_free(st_writer *w);

#endif
