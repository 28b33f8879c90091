/*
 * imageset.h - the image of every line of a corpus, as the model reads it:
 * P regions of width Dv per line.
 *
 * Two sources:
 *   - a NumPy feature file (path ending in .npy; see npy.h): global (N, D),
 *     regions (N, P, D) or a grid (N, C, H, W); memory-mapped, a row read
 *     when a batch needs it;
 *   - a list file of PNG images, one path a line (image.h): each image is
 *     loaded, resized to size x size and cut into patch x patch squares, so
 *     P = (size / patch)^2 and Dv = patch * patch * 3. The patches are
 *     loaded once, in parallel, and kept in memory as float32.
 * An optional index file maps lines to images (several lines may share one):
 * one 0-based image number per line. Without it, line i has image i.
 *
 * Every error names the file (and line, for index files and lists).
 */
#ifndef MMT_IMAGESET_H
#define MMT_IMAGESET_H

#include "common.h"
#include "npy.h"

typedef struct {
    int P, Dv;      /* regions per line and their width */
    long n_images;  /* rows of the feature file, or images in the list */
    long n_lines;   /* lines served: entries of the index, else n_images */
    long *index;    /* (n_lines) image of each line; NULL: the identity */
    npy_file npy;   /* the features (from a .npy file) */
    float *patches; /* (n_images, P, Dv) (from a PNG list), else NULL */
    char *path;     /* as given, for messages */
} imageset;

/* Opens path (.npy, or else a list of PNG paths) with size and patch for
 * PNG images (ignored for .npy), and the index file index_path ("" or
 * NULL: none). On error returns MMT_ERR with st naming the file; s is then
 * empty and imageset_close(s) is safe. */
int imageset_open(imageset *s, const char *path, const char *index_path, int size, int patch,
                  mmt_status *st);
void imageset_close(imageset *s);

/* MMT_ERR with "PATH: images for N lines, but WHAT has M lines" unless the
 * set serves exactly n_lines lines. */
int imageset_check_lines(const imageset *s, long n_lines, const char *what, mmt_status *st);

/* out (n, P, Dv) = the regions of lines[0 .. n); every line < n_lines. */
void imageset_fill(const imageset *s, const long *lines, int n, float *out);
/* The statistics of each of the Dv values of a region, over the regions of
 * lines spread evenly through the set (every line, or as many as hold
 * about max_values values, but at least 64): mean[j], and scale[j] =
 * 1 / sqrt(var[j] + 0.01 * (the mean of var over j)), so that a value that
 * hardly varies is not blown up. Returns the lines read. */
long imageset_stats(const imageset *s, long max_values, float *mean, float *scale);

#endif
