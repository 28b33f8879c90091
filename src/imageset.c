/*
 * imageset.c - per-line image regions from a .npy file or a PNG list (see
 * imageset.h).
 */
#include "imageset.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Reads index_path: one non-negative integer per line, each < n_images. */
static int read_index(imageset *s, const char *index_path, mmt_status *st) {
    size_t len;
    char *text = mmt_read_file(index_path, &len, st);
    if (!text) return MMT_ERR;
    long cap = 1024, n = 0, line = 0;
    long *idx = mmt_malloc(sizeof *idx * (size_t)cap);
    char *p = text, *end = text + len;
    int rc = MMT_OK;
    while (p < end && rc == MMT_OK) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        char *stop;
        errno = 0;
        long v = strtol(p, &stop, 10);
        if (e == p || stop != e || errno || v < 0)
            rc = mmt_fail(st, "%s:%ld: expected an image number (0-based), got \"%.*s\"",
                          index_path, line, (int)(e - p < 40 ? e - p : 40), p);
        else if (v >= s->n_images)
            rc = mmt_fail(st, "%s:%ld: image %ld, but %s has %ld images", index_path, line, v,
                          s->path, s->n_images);
        if (n == cap) idx = mmt_realloc(idx, sizeof *idx * (size_t)(cap *= 2));
        idx[n++] = v;
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (rc == MMT_OK && n == 0) rc = mmt_fail(st, "%s: no image numbers", index_path);
    if (rc != MMT_OK) {
        free(idx);
        return MMT_ERR;
    }
    s->index = idx;
    s->n_lines = n;
    return MMT_OK;
}

/* Loads every image of the list into s->patches, in parallel; the first
 * failing image (in list order) is the error reported. */
static int load_pngs(imageset *s, const char *list, int size, int patch, mmt_status *st) {
    if (size <= 0 || patch <= 0 || size % patch)
        return mmt_fail(st, "%s: image size %d must be a positive multiple of the patch size %d",
                        list, size, patch);
    char **paths;
    long n;
    if (image_check_list(list, &paths, &n, st) != MMT_OK) return MMT_ERR;
    const int g = size / patch;
    s->P = g * g;
    s->Dv = patch * patch * 3;
    s->n_images = n;
    s->patches = mmt_malloc((size_t)n * s->P * s->Dv * sizeof(float));
    long bad = -1;
    mmt_status first = {0};
#pragma omp parallel
    {
        float *img = mmt_malloc((size_t)size * size * 3 * sizeof *img);
        mmt_status sub = {0};
#pragma omp for schedule(dynamic, 64)
        for (long i = 0; i < n; i++) {
            int rc = image_load_png(paths[i], size, img, &sub);
            if (rc == MMT_OK)
                rc = image_patches(img, size, patch, s->patches + (size_t)i * s->P * s->Dv, &sub);
            if (rc != MMT_OK) {
#pragma omp critical
                if (bad < 0 || i < bad) {
                    bad = i;
                    first = sub;
                }
            }
        }
        free(img);
    }
    image_free_list(paths, n);
    if (bad >= 0) return mmt_fail(st, "%s:%ld: %s", list, bad + 1, first.msg);
    return MMT_OK;
}

int imageset_open(imageset *s, const char *path, const char *index_path, int size, int patch,
                  mmt_status *st) {
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    MMT_ASSERT(s->path != NULL);
    int rc;
    if (ends_with(path, ".npy")) {
        rc = npy_open(&s->npy, path, st);
        if (rc == MMT_OK) {
            size_t P, D;
            npy_regions(&s->npy, &P, &D);
            s->P = (int)P;
            s->Dv = (int)D;
            s->n_images = (long)s->npy.rows;
        }
    } else {
        rc = load_pngs(s, path, size, patch, st);
    }
    s->n_lines = s->n_images;
    if (rc == MMT_OK && index_path && *index_path) rc = read_index(s, index_path, st);
    if (rc != MMT_OK) imageset_close(s);
    return rc;
}

void imageset_close(imageset *s) {
    npy_close(&s->npy);
    free(s->patches);
    free(s->index);
    free(s->path);
    memset(s, 0, sizeof *s);
}

int imageset_check_lines(const imageset *s, long n_lines, const char *what, mmt_status *st) {
    if (s->n_lines == n_lines) return MMT_OK;
    return mmt_fail(st, "%s: images for %ld lines, but %s has %ld lines", s->path, s->n_lines,
                    what, n_lines);
}

void imageset_fill(const imageset *s, const long *lines, int n, float *out) {
    const size_t row = (size_t)s->P * s->Dv;
#pragma omp parallel for schedule(static) if (n * row >= (1u << 16))
    for (int i = 0; i < n; i++) {
        MMT_ASSERT(lines[i] >= 0 && lines[i] < s->n_lines);
        long k = s->index ? s->index[lines[i]] : lines[i];
        if (s->patches)
            memcpy(out + i * row, s->patches + (size_t)k * row, row * sizeof *out);
        else
            npy_row_regions_f32(&s->npy, (size_t)k, out + i * row);
    }
}

long imageset_stats(const imageset *s, long max_values, float *mean, float *scale) {
    enum { CHUNK = 64 };
    const long row = (long)s->P * s->Dv;
    long n = max_values / row;
    if (n < 64) n = 64;
    if (n > s->n_lines) n = s->n_lines;
    double *sum = mmt_calloc((size_t)s->Dv, sizeof *sum), *sq = mmt_calloc((size_t)s->Dv, sizeof *sq);
    float *buf = mmt_malloc((size_t)CHUNK * row * sizeof *buf);
    long lines[CHUNK];
    for (long i = 0; i < n; i += CHUNK) {
        int k = n - i < CHUNK ? (int)(n - i) : CHUNK;
        for (int j = 0; j < k; j++) lines[j] = (long)((double)(i + j) * s->n_lines / n);
        imageset_fill(s, lines, k, buf);
        for (long r = 0; r < (long)k * s->P; r++) {
            const float *x = buf + r * s->Dv;
            for (int j = 0; j < s->Dv; j++) {
                sum[j] += x[j];
                sq[j] += (double)x[j] * x[j];
            }
        }
    }
    const double count = (double)n * s->P;
    double avg_var = 0.0;
    for (int j = 0; j < s->Dv; j++) {
        sum[j] /= count;
        sq[j] = sq[j] / count - sum[j] * sum[j];
        if (sq[j] < 0.0) sq[j] = 0.0;
        avg_var += sq[j] / s->Dv;
    }
    for (int j = 0; j < s->Dv; j++) {
        mean[j] = (float)sum[j];
        scale[j] = (float)(1.0 / sqrt(sq[j] + 0.01 * avg_var + 1e-12));
    }
    free(sum);
    free(sq);
    free(buf);
    return n;
}
