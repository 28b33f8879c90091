/*
 * npy.c - the .npy reader: header parsing, mapping, row conversion.
 */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ conversion */

float npy_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign; /* +-0 */
    } else {
        /* subnormal man * 2^-24: shift until the implicit bit appears */
        uint32_t e = 127 - 15 + 1;
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((man & 0x3ff) << 13);
    }
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* Element j of row i as float32; the data may be unaligned. */
static inline float elem_f32(const npy_file *f, const unsigned char *row, size_t j) {
    if (f->dtype == NPY_F32) {
        float x;
        memcpy(&x, row + 4 * j, 4);
        return x;
    }
    uint16_t h;
    memcpy(&h, row + 2 * j, 2);
    return npy_f16_to_f32(h);
}

static const unsigned char *row_ptr(const npy_file *f, size_t i) {
    MMT_ASSERT(f->data && i < f->rows);
    return f->data + i * f->row_elems * f->elem_size;
}

void npy_row_f32(const npy_file *f, size_t i, float *out) {
    const unsigned char *row = row_ptr(f, i);
    if (f->dtype == NPY_F32) {
        memcpy(out, row, f->row_elems * 4);
        return;
    }
    for (size_t j = 0; j < f->row_elems; j++) out[j] = elem_f32(f, row, j);
}

void npy_regions(const npy_file *f, size_t *P, size_t *D) {
    MMT_ASSERT(f->ndim >= 2 && f->ndim <= 4);
    if (f->ndim == 2) {
        *P = 1, *D = (size_t)f->shape[1];
    } else if (f->ndim == 3) {
        *P = (size_t)f->shape[1], *D = (size_t)f->shape[2];
    } else {
        *P = (size_t)(f->shape[2] * f->shape[3]), *D = (size_t)f->shape[1];
    }
}

void npy_row_regions_f32(const npy_file *f, size_t i, float *out) {
    if (f->ndim < 4) {
        npy_row_f32(f, i, out);
        return;
    }
    // row is (C, H*W) in the file; out is (H*W, C)
    const unsigned char *row = row_ptr(f, i);
    size_t P, C;
    npy_regions(f, &P, &C);
    for (size_t c = 0; c < C; c++)
        for (size_t p = 0; p < P; p++) out[p * C + c] = elem_f32(f, row, c * P + p);
}

int npy_check_rows(const npy_file *f, size_t expected, const char *what, mmt_status *st) {
    if (f->rows == expected) return MMT_OK;
    return mmt_fail(st, "%s: %zu rows, but %s has %zu lines", f->path, f->rows, what,
                    expected);
}

/* ---------------------------------------------------------------- header */

/* A cursor over the header dict text. */
typedef struct {
    const char *s, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

/* Consume ch after optional spaces; 0 if it is not there. */
static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...", no escapes) into buf; 0 on failure. */
static int parse_str(cursor *c, char *buf, size_t cap) {
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return 0;
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return 0;
    c->s++;
    buf[n] = '\0';
    return 1;
}

/* True or False; -1 on failure. */
static int parse_bool(cursor *c) {
    skip_ws(c);
    size_t left = (size_t)(c->end - c->s);
    if (left >= 4 && !memcmp(c->s, "True", 4)) return c->s += 4, 1;
    if (left >= 5 && !memcmp(c->s, "False", 5)) return c->s += 5, 0;
    return -1;
}

/* A tuple of non-negative integers: (), (5,), (2, 3) or (2, 3,). Stores at
 * most max dims but counts all in *ndim; 0 on failure. */
static int parse_shape(cursor *c, int64_t *shape, int max, int *ndim) {
    if (!eat(c, '(')) return 0;
    *ndim = 0;
    for (;;) {
        if (eat(c, ')')) return 1;
        skip_ws(c);
        if (c->s >= c->end || *c->s < '0' || *c->s > '9') return 0;
        int64_t v = 0;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            if (v > (INT64_MAX - 9) / 10) return 0;
            v = v * 10 + (*c->s++ - '0');
        }
        if (c->s < c->end && (*c->s == 'L' || *c->s == 'l')) c->s++; /* Python 2 longs */
        if (*ndim < max) shape[*ndim] = v;
        (*ndim)++;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return 1;
        return 0;
    }
}

/* Parse the dict text into f's dtype and shape. */
static int parse_header(npy_file *f, const char *text, size_t len, mmt_status *st) {
    cursor c = {text, text + len};
    char descr[64] = "", key[64];
    int fortran = -1, have_descr = 0, have_shape = 0, ndim = 0;

    if (!eat(&c, '{'))
        return mmt_fail(st, "%s: header not parsable: expected '{' to open the dict", f->path);
    for (;;) {
        if (eat(&c, '}')) break;
        if (!parse_str(&c, key, sizeof key) || !eat(&c, ':'))
            return mmt_fail(st, "%s: header not parsable: expected 'key': at offset %td",
                            f->path, c.s - text);
        if (!strcmp(key, "descr")) {
            if (!parse_str(&c, descr, sizeof descr))
                return mmt_fail(st,
                                "%s: header not parsable: 'descr' is not a simple dtype string"
                                " (structured arrays are not supported)",
                                f->path);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if ((fortran = parse_bool(&c)) < 0)
                return mmt_fail(st, "%s: header not parsable: 'fortran_order' is not True/False",
                                f->path);
        } else if (!strcmp(key, "shape")) {
            if (!parse_shape(&c, f->shape, NPY_MAX_DIMS, &ndim))
                return mmt_fail(st, "%s: header not parsable: 'shape' is not a tuple of integers",
                                f->path);
            have_shape = 1;
        } else {
            return mmt_fail(st, "%s: header not parsable: unexpected key '%s'", f->path, key);
        }
        if (eat(&c, ',')) continue;
        if (eat(&c, '}')) break;
        return mmt_fail(st, "%s: header not parsable: expected ',' or '}' at offset %td",
                        f->path, c.s - text);
    }
    if (!have_descr || fortran < 0 || !have_shape)
        return mmt_fail(st, "%s: header not parsable: missing '%s'", f->path,
                        !have_descr ? "descr" : fortran < 0 ? "fortran_order" : "shape");

    // dtype: little-endian float32 or float16 only
    if (!strcmp(descr, "<f4")) {
        f->dtype = NPY_F32, f->elem_size = 4;
    } else if (!strcmp(descr, "<f2")) {
        f->dtype = NPY_F16, f->elem_size = 2;
    } else if (descr[0] == '>' || descr[0] == '!') {
        return mmt_fail(st, "%s: dtype '%s' is big-endian; expected '<f4' or '<f2'", f->path,
                        descr);
    } else if (descr[0] == '|' && descr[1] == 'f') {
        return mmt_fail(st, "%s: dtype '%s' has no byte order ('|' is not valid for floats);"
                        " expected '<f4' or '<f2'", f->path, descr);
    } else {
        return mmt_fail(st, "%s: dtype '%s' not supported; expected '<f4' or '<f2'", f->path,
                        descr);
    }
    if (fortran)
        return mmt_fail(st, "%s: 'fortran_order': True not supported; save the array in C order",
                        f->path);
    if (ndim < 2 || ndim > NPY_MAX_DIMS)
        return mmt_fail(st, "%s: shape has %d dimensions; expected 2 to 4"
                        " ((N, D), (N, P, D) or (N, C, H, W))", f->path, ndim);
    f->ndim = ndim;
    return MMT_OK;
}

/* ------------------------------------------------------------------ open */

/* Check the preamble, parse the header and check the data size. */
static int validate(npy_file *f, mmt_status *st) {
    const unsigned char *b = f->map;
    size_t len = f->map_len;

    // preamble: magic, version, header length
    if (len < 8 || memcmp(b, "\x93NUMPY", 6) != 0)
        return mmt_fail(st, "%s: not an .npy file (no \\x93NUMPY magic at the start)", f->path);
    int major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        return mmt_fail(st, "%s: unsupported .npy format version %d.%d; expected 1.0, 2.0 or 3.0",
                        f->path, major, minor);
    size_t pre = major == 1 ? 10 : 12, hlen;
    if (len < pre)
        return mmt_fail(st, "%s: truncated: %zu bytes, shorter than the .npy preamble (%zu)",
                        f->path, len, pre);
    hlen = major == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                      : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
                            (size_t)b[11] << 24;
    if (hlen > len - pre)
        return mmt_fail(st, "%s: truncated: header of %zu bytes, but only %zu follow the preamble",
                        f->path, hlen, len - pre);
    if (parse_header(f, (const char *)b + pre, hlen, st)) return MMT_ERR;

    // sizes: rows * row_elems * elem_size must fit in what follows the header
    size_t row_elems = 1, need;
    for (int d = 1; d < f->ndim; d++) {
        if (f->shape[d] == 0)
            return mmt_fail(st, "%s: shape has an empty dimension %d", f->path, d);
        if (__builtin_mul_overflow(row_elems, (size_t)f->shape[d], &row_elems))
            return mmt_fail(st, "%s: shape too large", f->path);
    }
    if (__builtin_mul_overflow(row_elems, f->elem_size, &need) ||
        __builtin_mul_overflow(need, (size_t)f->shape[0], &need))
        return mmt_fail(st, "%s: shape too large", f->path);
    size_t found = len - pre - hlen;
    if (found < need)
        return mmt_fail(st, "%s: truncated: shape needs %zu bytes of data, found %zu", f->path,
                        need, found);
    f->rows = (size_t)f->shape[0];
    f->row_elems = row_elems;
    f->data = b + pre + hlen;
    return MMT_OK;
}

int npy_open(npy_file *f, const char *path, mmt_status *st) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return mmt_fail(st, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size == 0) {
        close(fd);
        return mmt_fail(st, "%s: not an .npy file (%s)", path,
                        S_ISREG(sb.st_mode) ? "empty" : "not a regular file");
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return mmt_fail(st, "%s: cannot mmap: %s", path, strerror(e));

    size_t n = strlen(path) + 1;
    f->path = mmt_malloc(n);
    memcpy(f->path, path, n);
    f->map = map;
    f->map_len = (size_t)sb.st_size;
    if (validate(f, st)) {
        npy_close(f);
        return MMT_ERR;
    }
    return MMT_OK;
}

void npy_close(npy_file *f) {
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}
