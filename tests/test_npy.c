/*
 * test_npy.c - the .npy reader against files written here by hand: float32
 * and float16 rows, (N, D), (N, P, D) and (N, C, H, W) shapes, format
 * versions 1.0 to 3.0, loose header syntax, and every error it reports.
 */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imageset.h"
#include "npy.h"
#include "test.h"

static char dir[64]; /* the mkdtemp folder */

static void path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void write_raw(const char *path, const void *bytes, size_t n) {
    FILE *fp = mmt_fopen(path, "wb");
    if (n) mmt_fwrite(bytes, 1, n, fp, path);
    mmt_fclose(fp, path);
}

/* Write an .npy file as NumPy does: magic, version major.0, header length,
 * dict padded with spaces and a '\n' so the data starts at a multiple of 64,
 * then nbytes of data. */
static void write_npy(const char *path, int major, const char *dict, const void *data,
                      size_t nbytes) {
    size_t pre = major == 1 ? 10 : 12, dlen = strlen(dict);
    size_t hlen = (pre + dlen + 1 + 63) / 64 * 64 - pre;
    unsigned char *b = mmt_calloc(pre + hlen + nbytes + 1, 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major, b[7] = 0;
    for (size_t k = 0; k < pre - 8; k++) b[8 + k] = (unsigned char)(hlen >> (8 * k));
    memcpy(b + pre, dict, dlen);
    memset(b + pre + dlen, ' ', hlen - dlen - 1);
    b[pre + hlen - 1] = '\n';
    if (nbytes) memcpy(b + pre + hlen, data, nbytes);
    write_raw(path, b, pre + hlen + nbytes);
    free(b);
}

/* ------------------------------------------------------------- float32 */

static void f32_round_trip(void) {
    char path[128];
    path_in(path, sizeof path, "f32.npy");
    float x[3 * 4];
    for (int i = 0; i < 12; i++) x[i] = (float)(i / 4 * 10 + i % 4) + 0.25f;
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", x,
              sizeof x);

    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK, "npy f32 (3, 4) opens: %s", rc ? st.msg : "ok");
    if (rc) return;
    CHECK(f.ndim == 2 && f.rows == 3 && f.row_elems == 4 && f.dtype == NPY_F32,
          "npy f32 ndim %d rows %zu row_elems %zu dtype %d", f.ndim, f.rows, f.row_elems,
          (int)f.dtype);
    CHECK((f.data - (const unsigned char *)f.map) % 64 == 0,
          "npy test writer puts the data at a multiple of 64 (offset %td)",
          f.data - (const unsigned char *)f.map);
    size_t P, D;
    npy_regions(&f, &P, &D);
    CHECK(P == 1 && D == 4, "npy (N, D) is P = 1 region of D = 4 (got %zu, %zu)", P, D);
    float out[4];
    for (size_t i = 0; i < 3; i++) {
        npy_row_f32(&f, i, out);
        check_close("npy f32 row round trip", out, x + 4 * i, 4, 0, 0);
    }
    npy_row_regions_f32(&f, 2, out);
    check_close("npy f32 regions of (N, D) equal the row", out, x + 8, 4, 0, 0);
    npy_close(&f);
    CHECK(f.map == NULL && f.path == NULL, "npy_close empties the file");
}

/* ------------------------------------------------------------- float16 */

/* Same float, bit for bit, or both NaN. */
static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static void f16_values(void) {
    static const struct {
        uint16_t h;
        float want;
        const char *what;
    } cases[] = {
        {0x0000, 0.0f, "+0"},
        {0x8000, -0.0f, "-0"},
        {0x3c00, 1.0f, "1"},
        {0xc000, -2.0f, "-2"},
        {0x3555, 0.333251953125f, "0.33325"},
        {0x7bff, 65504.0f, "largest finite 65504"},
        {0x0400, 0x1p-14f, "smallest normal 2^-14"},
        {0x0001, 0x1p-24f, "smallest subnormal 2^-24"},
        {0x8001, -0x1p-24f, "negative subnormal -2^-24"},
        {0x0200, 0x1p-15f, "subnormal 2^-15"},
        {0x03ff, 1023 * 0x1p-24f, "largest subnormal 1023 * 2^-24"},
        {0x7c00, INFINITY, "+inf"},
        {0xfc00, -INFINITY, "-inf"},
        {0x7e00, NAN, "nan"},
        {0xfd01, NAN, "negative nan with payload"},
    };
    enum { NC = sizeof cases / sizeof cases[0] };

    // direct conversion
    for (int k = 0; k < NC; k++) {
        float got = npy_f16_to_f32(cases[k].h);
        CHECK(same_float(got, cases[k].want), "npy f16 0x%04x -> %s (got %g)", cases[k].h,
              cases[k].what, (double)got);
    }
    CHECK(signbit(npy_f16_to_f32(0x8000)) && !signbit(npy_f16_to_f32(0x0000)),
          "npy f16 keeps the sign of zero");

#ifdef __FLT16_MANT_DIG__
    // every half against the compiler's own conversion
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t h16 = (uint16_t)h;
        _Float16 v;
        memcpy(&v, &h16, 2);
        if (!same_float(npy_f16_to_f32(h16), (float)v)) bad++;
    }
    CHECK(bad == 0, "npy f16 all 65536 halves match _Float16 (%d differ)", bad);
#endif

    // the same values through a (1, NC) '<f2' file
    char path[128], dict[128];
    path_in(path, sizeof path, "f16.npy");
    uint16_t h[NC];
    for (int k = 0; k < NC; k++) h[k] = cases[k].h;
    snprintf(dict, sizeof dict, "{'descr': '<f2', 'fortran_order': False, 'shape': (1, %d), }",
             NC);
    write_npy(path, 1, dict, h, sizeof h);
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && f.dtype == NPY_F16 && f.row_elems == NC, "npy f16 file opens: %s",
          rc ? st.msg : "ok");
    if (rc) return;
    float out[NC];
    npy_row_f32(&f, 0, out);
    int ok = 1;
    for (int k = 0; k < NC; k++) ok &= same_float(out[k], cases[k].want);
    CHECK(ok, "npy f16 row converts subnormal, inf, nan and -0 exactly");
    npy_close(&f);
}

/* --------------------------------------------------------------- shapes */

static void regions_3d(void) {
    char path[128];
    path_in(path, sizeof path, "npd.npy");
    // (2, 3, 2) float16: value n*10 + p*2 + d, exact in half precision
    uint16_t h[12];
    float want[12];
    for (int i = 0; i < 12; i++) {
        want[i] = (float)(i / 6 * 10 + i % 6);
        // small integers in half: exponent and mantissa by hand
        int v = i / 6 * 10 + i % 6, e = 0;
        if (v == 0) {
            h[i] = 0;
            continue;
        }
        while ((v >> e) > 1) e++;
        h[i] = (uint16_t)(((e + 15) << 10) | ((v << 10 >> e) & 0x3ff));
    }
    write_npy(path, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3, 2), }", h,
              sizeof h);
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK, "npy (N, P, D) opens: %s", rc ? st.msg : "ok");
    if (rc) return;
    size_t P, D;
    npy_regions(&f, &P, &D);
    CHECK(f.ndim == 3 && f.rows == 2 && P == 3 && D == 2,
          "npy (2, 3, 2) is 2 rows of P = 3, D = 2 (got %zu rows, %zu, %zu)", f.rows, P, D);
    float out[6];
    npy_row_regions_f32(&f, 1, out);
    check_close("npy (N, P, D) row 1 as (P, D)", out, want + 6, 6, 0, 0);
    npy_close(&f);
}

static void grid_4d(void) {
    char path[128];
    path_in(path, sizeof path, "nchw.npy");
    // (2, 3, 2, 2) float32: x[n][c][p] = n*100 + c*10 + p, p = h*W + w
    enum { N = 2, C = 3, HW = 4 };
    float x[N * C * HW];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < HW; p++) x[(n * C + c) * HW + p] = (float)(n * 100 + c * 10 + p);
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 2, 2), }", x,
              sizeof x);
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK, "npy (N, C, H, W) opens: %s", rc ? st.msg : "ok");
    if (rc) return;
    size_t P, D;
    npy_regions(&f, &P, &D);
    CHECK(f.ndim == 4 && P == 4 && D == 3 && f.row_elems == 12,
          "npy (2, 3, 2, 2) is P = H*W = 4 regions of D = C = 3 (got %zu, %zu)", P, D);
    float out[HW * C], want[HW * C];
    for (int p = 0; p < HW; p++)
        for (int c = 0; c < C; c++) want[p * C + c] = (float)(100 + c * 10 + p);
    npy_row_regions_f32(&f, 1, out);
    check_close("npy (N, C, H, W) row 1 transposed to (H*W, C)", out, want, HW * C, 0, 0);
    npy_row_f32(&f, 1, out);
    check_close("npy (N, C, H, W) plain row 1 stays (C, H*W)", out, x + C * HW, HW * C, 0, 0);
    npy_close(&f);
}

/* ------------------------------------------------- versions and syntax */

/* Open path, expect (2, 3) float32 holding 0..5; name says what was varied. */
static void expect_2x3(const char *path, const char *name) {
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    int ok = rc == MMT_OK && f.ndim == 2 && f.rows == 2 && f.row_elems == 3;
    if (ok) {
        float out[3], want[3] = {3, 4, 5};
        npy_row_f32(&f, 1, out);
        ok = memcmp(out, want, sizeof out) == 0;
    }
    CHECK(ok, "npy reads %s: %s", name, rc ? st.msg : "ok");
    npy_close(&f);
}

static void versions_and_syntax(void) {
    static const float x[6] = {0, 1, 2, 3, 4, 5};
    char path[128];

    path_in(path, sizeof path, "v2.npy");
    write_npy(path, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", x,
              sizeof x);
    expect_2x3(path, "format 2.0 (4-byte header length)");

    path_in(path, sizeof path, "v3.npy");
    write_npy(path, 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", x,
              sizeof x);
    expect_2x3(path, "format 3.0");

    path_in(path, sizeof path, "order.npy");
    write_npy(path, 1, "{ \"shape\":(2,3),'fortran_order' :False ,  'descr':'<f4'}", x,
              sizeof x);
    expect_2x3(path, "keys in another order, odd spaces, double quotes, no trailing comma");

    path_in(path, sizeof path, "long.npy");
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L,), }", x,
              sizeof x);
    expect_2x3(path, "Python 2 long dims and a comma ending the shape");

    // no padding: the data starts right after the dict, at an odd offset
    path_in(path, sizeof path, "nopad.npy");
    const char *dict = "{'descr':'<f4','fortran_order':False,'shape':(2,3)}";
    size_t dlen = strlen(dict);
    unsigned char b[256];
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)dlen, b[9] = 0;
    memcpy(b + 10, dict, dlen);
    memcpy(b + 10 + dlen, x, sizeof x);
    write_raw(path, b, 10 + dlen + sizeof x);
    expect_2x3(path, "an unpadded header (unaligned data)");

    // more data than the shape needs is ignored, as NumPy does
    float y[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    path_in(path, sizeof path, "extra.npy");
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", y,
              sizeof y);
    expect_2x3(path, "a file with bytes after the data");

    // zero rows
    path_in(path, sizeof path, "empty.npy");
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0);
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && f.rows == 0 && f.row_elems == 3, "npy reads shape (0, 3): %s",
          rc ? st.msg : "ok");
    npy_close(&f);
}

/* --------------------------------------------------------------- errors */

/* npy_open of path must fail with a message holding path and want. */
static void expect_error(const char *path, const char *want, const char *name) {
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path) && strstr(st.msg, want) && f.map == NULL,
          "npy rejects %s, naming the file: %s", name, rc ? st.msg : "opened");
    npy_close(&f);
}

/* Write a (2, 3) file with this dict and expect an error holding want. */
static void bad_dict(const char *name, int major, const char *dict, const char *want,
                     size_t nbytes) {
    static const float x[6] = {0};
    char path[128];
    path_in(path, sizeof path, "bad.npy");
    write_npy(path, major, dict, x, nbytes);
    expect_error(path, want, name);
}

static void errors(void) {
    char path[128];
    const size_t full = 6 * sizeof(float);

    path_in(path, sizeof path, "missing.npy");
    expect_error(path, "cannot open", "a missing file");

    path_in(path, sizeof path, "magic.npy");
    write_raw(path, "PK\x03\x04 not numpy at all", 21);
    expect_error(path, "not an .npy file", "bad magic");

    path_in(path, sizeof path, "zero.npy");
    write_raw(path, "", 0);
    expect_error(path, "not an .npy file", "an empty file");

    path_in(path, sizeof path, "v4.npy");
    write_raw(path, "\x93NUMPY\x04\x00\x10\x00{}              ", 26);
    expect_error(path, "version 4.0", "format version 4.0");

    path_in(path, sizeof path, "v11.npy");
    write_raw(path, "\x93NUMPY\x01\x01\x10\x00{}              ", 26);
    expect_error(path, "version 1.1", "format version 1.1");

    path_in(path, sizeof path, "hlen.npy");
    write_raw(path, "\x93NUMPY\x01\x00\xff\x00{'descr'", 17);
    expect_error(path, "truncated", "a header length past the end");

    bad_dict("an unclosed shape", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }",
             "not parsable", full);
    bad_dict("a header that is not a dict", 1, "[1, 2, 3]", "not parsable", full);
    bad_dict("a missing key", 1, "{'descr': '<f4', 'shape': (2, 3), }", "fortran_order", full);
    bad_dict("an unknown key", 1,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
             "unexpected key 'x'", full);
    bad_dict("a structured dtype", 1,
             "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }",
             "not parsable", full);
    bad_dict("a negative dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }",
             "not parsable", full);
    bad_dict("big-endian '>f4'", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
             "'>f4' is big-endian", full);
    bad_dict("'|f4'", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3), }",
             "'|f4'", full);
    bad_dict("float64 '<f8'", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
             "'<f8' not supported", full);
    bad_dict("int32 '<i4'", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
             "'<i4' not supported", full);
    bad_dict("Fortran order", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
             "fortran_order", full);
    bad_dict("1 dimension", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
             "1 dimensions", full);
    bad_dict("a scalar", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
             "0 dimensions", full);
    bad_dict("5 dimensions", 1,
             "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 3, 1), }",
             "5 dimensions", full);
    bad_dict("truncated data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
             "needs 24 bytes of data, found 20", full - 4);
    bad_dict("truncated data in 2.0", 2,
             "{'descr': '<f2', 'fortran_order': False, 'shape': (4, 3), }",
             "needs 24 bytes of data, found 0", 0);

    // row count against the parallel text
    path_in(path, sizeof path, "rows.npy");
    static const float x[6] = {0};
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", x, full);
    npy_file f;
    mmt_status st = {0};
    int rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && npy_check_rows(&f, 2, "train.en", &st) == MMT_OK,
          "npy_check_rows accepts a matching count");
    char want[256];
    snprintf(want, sizeof want, "%s: 2 rows, but train.en has 5 lines", path);
    rc = rc == MMT_OK ? npy_check_rows(&f, 5, "train.en", &st) : MMT_OK;
    CHECK(rc == MMT_ERR && !strcmp(st.msg, want), "npy_check_rows mismatch: %s", st.msg);
    npy_close(&f);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* imageset_stats over a (100, 2, 3) float32 file: every line, then the 64
 * lines spread evenly that a small budget allows, against sums here. */
static void image_stats(void) {
    enum { N = 100, P = 2, D = 3 };
    static float x[N * P * D];
    for (int i = 0; i < N * P * D; i++) {
        int d = i % D;
        x[i] = (float)(d * 10) + (float)((i * 37) % 11) * (d == 2 ? 0.0f : 0.5f + d);
    }
    char path[128];
    path_in(path, sizeof path, "stats.npy");
    write_npy(path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2, 3), }", x,
              sizeof x);
    imageset s;
    mmt_status st = {0};
    int rc = imageset_open(&s, path, NULL, 0, 0, &st);
    CHECK(rc == MMT_OK, "image statistics: the set opens: %s", rc ? st.msg : "ok");
    if (rc) return;
    for (int pass = 0; pass < 2; pass++) {
        long budget = pass == 0 ? 1L << 20 : 6, want_n = pass == 0 ? N : 64;
        float mean[D], scale[D];
        long n = imageset_stats(&s, budget, mean, scale);
        double m[D] = {0}, v[D] = {0}, avg = 0.0;
        for (long k = 0; k < want_n; k++) {
            long line = (long)((double)k * N / want_n);
            for (int p = 0; p < P; p++)
                for (int d = 0; d < D; d++) m[d] += x[(line * P + p) * D + d] / (double)(want_n * P);
        }
        for (long k = 0; k < want_n; k++) {
            long line = (long)((double)k * N / want_n);
            for (int p = 0; p < P; p++)
                for (int d = 0; d < D; d++) {
                    double e = x[(line * P + p) * D + d] - m[d];
                    v[d] += e * e / (double)(want_n * P);
                }
        }
        for (int d = 0; d < D; d++) avg += v[d] / D;
        float wm[D], ws[D];
        for (int d = 0; d < D; d++) {
            wm[d] = (float)m[d];
            ws[d] = (float)(1.0 / sqrt(v[d] + 0.01 * avg + 1e-12));
        }
        CHECK(n == want_n, "image statistics, budget %ld values: %ld lines read (want %ld)", budget,
              n, want_n);
        check_close(pass ? "image statistics of 64 lines: means" : "image statistics: means", mean,
                    wm, D, 1e-5, 1e-5);
        check_close(pass ? "image statistics of 64 lines: scales" : "image statistics: scales",
                    scale, ws, D, 1e-5, 1e-5);
        CHECK(v[2] < 1e-12 && scale[2] > 0.0f && scale[2] < 100.0f,
              "image statistics: a constant value gets a bounded scale (%g)", scale[2]);
    }
    imageset_close(&s);
}

void suite_npy(void) {
    snprintf(dir, sizeof dir, "/tmp/mmt-npy-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "npy: mkdtemp %s", dir);
        return;
    }
    f32_round_trip();
    f16_values();
    regions_3d();
    grid_4d();
    versions_and_syntax();
    errors();
    image_stats();
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
