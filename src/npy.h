/*
 * npy.h - read NumPy .npy image-feature files, memory-mapped.
 *
 * A file is:
 *   6 bytes    magic "\x93NUMPY"
 *   2 bytes    format version, major then minor: 1.0, 2.0 or 3.0
 *   2 or 4     header length N, unsigned little-endian (2 bytes in 1.0,
 *              4 bytes in 2.0 and 3.0)
 *   N bytes    a Python dict literal, e.g.
 *              {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 2048), }
 *              padded with spaces and a '\n' (writers pad so the data starts
 *              at a multiple of 64; the reader does not require it)
 *   the rest   the array, C order, little-endian
 *
 * Only '<f4' and '<f2', C order, 2 to 4 dimensions are read. The file is
 * mapped, not loaded: rows are converted to float32 as they are asked for.
 *
 * Shapes, read as P image regions of width D per example (N examples):
 *   (N, D)        global features, P = 1
 *   (N, P, D)     regions
 *   (N, C, H, W)  a grid, taken as P = H*W regions of D = C; a row is
 *                 transposed from (C, H*W) to (H*W, C) by
 *                 npy_row_regions_f32
 *
 * Errors name the file. mmt runs on little-endian hosts only.
 */
#ifndef MMT_NPY_H
#define MMT_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define NPY_MAX_DIMS 4

typedef enum { NPY_F32, NPY_F16 } npy_dtype;

typedef struct {
    char *path;                   /* as given to npy_open, for messages */
    int ndim;                     /* 2..4 */
    int64_t shape[NPY_MAX_DIMS];  /* (ndim) */
    npy_dtype dtype;
    size_t elem_size;             /* 4 or 2 */
    size_t rows;                  /* shape[0] */
    size_t row_elems;             /* product of shape[1..ndim) */
    void *map;                    /* the whole file, mapped read-only */
    size_t map_len;
    const unsigned char *data;    /* (rows, row_elems) in map, maybe unaligned */
} npy_file;

/* Map and validate path into f. On error returns MMT_ERR with st naming the
 * file and leaves f empty, so npy_close(f) is safe either way. */
int npy_open(npy_file *f, const char *path, mmt_status *st);
void npy_close(npy_file *f);

/* Copy row i as float32 in file order: out is (row_elems). */
void npy_row_f32(const npy_file *f, size_t i, float *out);

/* Regions per row and their width, as in the table above. */
void npy_regions(const npy_file *f, size_t *P, size_t *D);
/* Copy row i as (P, D) float32 regions; transposes (N, C, H, W) grids. */
void npy_row_regions_f32(const npy_file *f, size_t i, float *out);

/* MMT_ERR with "FILE: N rows, but WHAT has M lines" unless f has expected
 * rows (what names the parallel text, e.g. "train.en"). */
int npy_check_rows(const npy_file *f, size_t expected, const char *what, mmt_status *st);

/* One IEEE half to float, exact: subnormals, infinities, NaN, -0. */
float npy_f16_to_f32(uint16_t h);

#endif
