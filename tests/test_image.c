/*
 * test_image.c - the PNG loader against images written here with libpng's
 * writer: 8- and 16-bit RGB and RGBA, grey, grey+alpha, RGBA, a 4-bit palette with
 * tRNS and an Adam7-interlaced image, loaded at native size (exact values);
 * bilinear resize on tiny images worked out by hand; the patch layout; and
 * the errors: missing, truncated and non-PNG files, and image_check_list.
 */
#include <ftw.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "test.h"

static char dir[64]; /* the mkdtemp folder */

static void path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Write a PNG; data is the rows back to back, as PNG stores them (16-bit
 * samples big-endian, low depths packed). Palette/trns only for palette
 * images. Returns 0 on success. */
static int write_png(const char *path, int w, int h, int type, int depth, int interlace,
                     const unsigned char *data, const png_color *palette, int npal,
                     const unsigned char *trns, int ntrns) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep rows[64];
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(fp) == 0 ? 0 : -1;
}

static unsigned char v8(int i) { return (unsigned char)((i * 37 + 11) & 255); }
static unsigned v16(int i) { return (unsigned)((i * 4099 + 123) & 0xffff); }

/* Load path at size n and compare exactly with want (n, n, 3). */
static void expect_exact(const char *what, const char *path, int n, const float *want) {
    float *got = mmt_malloc(sizeof(float) * (size_t)n * n * 3);
    mmt_status st = {0};
    int rc = image_load_png(path, n, got, &st);
    CHECK(rc == MMT_OK, "image %s: loads at native size %dx%d: %s", what, n, n,
          rc ? st.msg : "ok");
    if (rc == MMT_OK) {
        int bad = -1;
        for (int i = 0; i < n * n * 3 && bad < 0; i++)
            if (got[i] != want[i]) bad = i;
        CHECK(bad < 0, "image %s: all %d values exact%s", what, n * n * 3,
              bad < 0 ? "" : " (first mismatch below)");
        if (bad >= 0)
            printf("     at %d: got %.9g want %.9g\n", bad, got[bad], want[bad]);
    }
    free(got);
}

/* ---------------------------------------------------- native-size loads */

static void load_rgb8(void) {
    enum { N = 3 };
    unsigned char d[N * N * 3];
    float want[N * N * 3];
    for (int i = 0; i < N * N * 3; i++) d[i] = v8(i), want[i] = (float)d[i] / 255.0f;
    char path[128];
    path_in(path, sizeof path, "rgb8.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_RGB, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write rgb8.png");
    expect_exact("8-bit RGB", path, N, want);
}

static void load_rgb16(void) {
    enum { N = 3 };
    unsigned char d[N * N * 3 * 2];
    float want[N * N * 3];
    for (int i = 0; i < N * N * 3; i++) {
        unsigned v = v16(i);
        d[2 * i] = (unsigned char)(v >> 8), d[2 * i + 1] = (unsigned char)v;
        want[i] = (float)v / 65535.0f; /* full 16-bit precision is kept */
    }
    char path[128];
    path_in(path, sizeof path, "rgb16.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_RGB, 16, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write rgb16.png");
    expect_exact("16-bit RGB", path, N, want);
}

static void load_grey(void) {
    enum { N = 3 };
    unsigned char d[N * N];
    float want[N * N * 3];
    for (int i = 0; i < N * N; i++) {
        d[i] = v8(i);
        for (int c = 0; c < 3; c++) want[i * 3 + c] = (float)d[i] / 255.0f;
    }
    char path[128];
    path_in(path, sizeof path, "grey.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_GRAY, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write grey.png");
    expect_exact("8-bit grey", path, N, want);
}

static void load_grey_alpha(void) {
    enum { N = 3 };
    unsigned char d[N * N * 2];
    float want[N * N * 3];
    for (int i = 0; i < N * N; i++) {
        d[2 * i] = v8(i);
        d[2 * i + 1] = (unsigned char)(i * 31); /* alpha, 0 at i = 0: dropped */
        for (int c = 0; c < 3; c++) want[i * 3 + c] = (float)d[2 * i] / 255.0f;
    }
    char path[128];
    path_in(path, sizeof path, "grey_alpha.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write grey_alpha.png");
    expect_exact("grey+alpha (alpha dropped)", path, N, want);
}

static void load_rgba(void) {
    enum { N = 3 };
    unsigned char d[N * N * 4];
    float want[N * N * 3];
    for (int i = 0; i < N * N; i++) {
        for (int c = 0; c < 3; c++) {
            d[4 * i + c] = v8(i * 3 + c);
            want[3 * i + c] = (float)d[4 * i + c] / 255.0f;
        }
        d[4 * i + 3] = (unsigned char)(i * 29); /* alpha, dropped */
    }
    char path[128];
    path_in(path, sizeof path, "rgba.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write rgba.png");
    expect_exact("RGBA (alpha dropped)", path, N, want);
}

static void load_rgba16(void) {
    enum { N = 3 };
    unsigned char d[N * N * 4 * 2];
    float want[N * N * 3];
    for (int i = 0; i < N * N; i++)
        for (int c = 0; c < 4; c++) {
            unsigned v = v16(i * 4 + c);
            d[2 * (i * 4 + c)] = (unsigned char)(v >> 8);
            d[2 * (i * 4 + c) + 1] = (unsigned char)v;
            if (c < 3) want[i * 3 + c] = (float)v / 65535.0f; /* alpha dropped */
        }
    char path[128];
    path_in(path, sizeof path, "rgba16.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write rgba16.png");
    expect_exact("16-bit RGBA (alpha dropped)", path, N, want);
}

static void load_palette(void) {
    enum { N = 3 };
    png_color pal[5] = {{0, 0, 0}, {255, 0, 0}, {10, 200, 30}, {1, 2, 3}, {250, 128, 64}};
    unsigned char trns[2] = {0, 128}; /* transparency of entries 0 and 1: ignored */
    int idx[N * N] = {4, 0, 1, 2, 3, 4, 1, 1, 0};
    /* 4-bit indices, two a byte, high nibble first; 3 pixels = 2 bytes a row */
    unsigned char d[N * 2] = {0};
    float want[N * N * 3];
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int k = idx[y * N + x];
            d[y * 2 + x / 2] |= (unsigned char)(x % 2 ? k : k << 4);
            float *wp = want + (y * N + x) * 3;
            wp[0] = pal[k].red / 255.0f, wp[1] = pal[k].green / 255.0f;
            wp[2] = pal[k].blue / 255.0f;
        }
    char path[128];
    path_in(path, sizeof path, "palette.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_PALETTE, 4, 0, d, pal, 5, trns, 2) == 0,
          "image: write palette.png (4-bit, PLTE + tRNS)");
    expect_exact("4-bit palette", path, N, want);
}

static void load_interlaced(void) {
    enum { N = 9 }; /* big enough for all seven Adam7 passes */
    unsigned char d[N * N * 3];
    float want[N * N * 3];
    for (int i = 0; i < N * N * 3; i++) d[i] = v8(i * 7 + 3), want[i] = (float)d[i] / 255.0f;
    char path[128];
    path_in(path, sizeof path, "adam7.png");
    CHECK(write_png(path, N, N, PNG_COLOR_TYPE_RGB, 8, 1, d, NULL, 0, NULL, 0) == 0,
          "image: write adam7.png");
    expect_exact("Adam7 interlaced RGB", path, N, want);
}

/* --------------------------------------------------------------- resize */

static void resize_up(void) {
    /* 2x2 grey, in units of 1/255:   0 160
     *                               80 240
     * Upscaled to 4x4 with align_corners = false: output X samples source
     * sx = (X + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25
     * (x0 = 1, x1 clamped to 1), so the weights on (left, right) are
     * (1, 0), (3/4, 1/4), (1/4, 3/4), (0, 1); rows alike.
     *   top row:    0, 40, 120, 160      bottom row: 80, 120, 200, 240
     *   row 1 = 3/4 top + 1/4 bottom:    20,  60, 140, 180
     *   row 2 = 1/4 top + 3/4 bottom:    60, 100, 180, 220          */
    static const float hand[16] = {0,  40,  120, 160, 20, 60,  140, 180,
                                   60, 100, 180, 220, 80, 120, 200, 240};
    unsigned char d[4] = {0, 160, 80, 240};
    char path[128];
    path_in(path, sizeof path, "tiny2.png");
    CHECK(write_png(path, 2, 2, PNG_COLOR_TYPE_GRAY, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write tiny2.png");
    float got[4 * 4 * 3], want[4 * 4 * 3];
    for (int i = 0; i < 16; i++)
        for (int c = 0; c < 3; c++) want[i * 3 + c] = hand[i] / 255.0f;
    mmt_status st = {0};
    int rc = image_load_png(path, 4, got, &st);
    CHECK(rc == MMT_OK, "image resize 2x2 -> 4x4: loads: %s", rc ? st.msg : "ok");
    if (rc == MMT_OK) check_close("image resize 2x2 -> 4x4 bilinear by hand", got, want, 48,
                                  1e-6, 0);
}

static void resize_down(void) {
    /* 4x4 grey to 2x2: sx = (X + 0.5) * 2 - 0.5 = 0.5, 2.5, so each output
     * is the plain mean of its 2x2 block (no antialias):
     *    0  40 | 80 120        block means: (0+40+8+48)/4 = 24,
     *    8  48 | 88 128                     (80+120+88+128)/4 = 104,
     *   ---------------                     (16+56+24+64)/4 = 40,
     *   16  56 | 96 136                     (96+136+104+144)/4 = 120
     *   24  64 |104 144                                          */
    unsigned char d[16] = {0, 40, 80, 120, 8, 48, 88, 128, 16, 56, 96, 136, 24, 64, 104, 144};
    static const float hand[4] = {24, 104, 40, 120};
    char path[128];
    path_in(path, sizeof path, "tiny4.png");
    CHECK(write_png(path, 4, 4, PNG_COLOR_TYPE_GRAY, 8, 0, d, NULL, 0, NULL, 0) == 0,
          "image: write tiny4.png");
    float got[2 * 2 * 3], want[2 * 2 * 3];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++) want[i * 3 + c] = hand[i] / 255.0f;
    mmt_status st = {0};
    int rc = image_load_png(path, 2, got, &st);
    CHECK(rc == MMT_OK, "image resize 4x4 -> 2x2: loads: %s", rc ? st.msg : "ok");
    if (rc == MMT_OK) check_close("image resize 4x4 -> 2x2 bilinear by hand", got, want, 12,
                                  1e-6, 0);

    /* non-square 4 wide x 1 high to 2x2: each row is (20, 100) by the same
     * rule, and height 1 -> 2 repeats the row. Row: 0 40 80 120. */
    unsigned char r[4] = {0, 40, 80, 120};
    path_in(path, sizeof path, "row.png");
    CHECK(write_png(path, 4, 1, PNG_COLOR_TYPE_GRAY, 8, 0, r, NULL, 0, NULL, 0) == 0,
          "image: write row.png");
    static const float hand2[4] = {20, 100, 20, 100};
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++) want[i * 3 + c] = hand2[i] / 255.0f;
    rc = image_load_png(path, 2, got, &st);
    CHECK(rc == MMT_OK, "image resize 4x1 -> 2x2: loads: %s", rc ? st.msg : "ok");
    if (rc == MMT_OK) check_close("image resize 4x1 -> 2x2 (aspect not kept)", got, want, 12,
                                  1e-6, 0);
}

/* -------------------------------------------------------------- patches */

static void patches(void) {
    /* img[i] = i over (4, 4, 3); patch 2 gives 4 patches of 12 values */
    float img[48], out[48];
    for (int i = 0; i < 48; i++) img[i] = (float)i;
    static const float want[48] = {
        0,  1,  2,  3,  4,  5,  12, 13, 14, 15, 16, 17, /* rows 0-1, cols 0-1 */
        6,  7,  8,  9,  10, 11, 18, 19, 20, 21, 22, 23, /* rows 0-1, cols 2-3 */
        24, 25, 26, 27, 28, 29, 36, 37, 38, 39, 40, 41, /* rows 2-3, cols 0-1 */
        30, 31, 32, 33, 34, 35, 42, 43, 44, 45, 46, 47, /* rows 2-3, cols 2-3 */
    };
    mmt_status st = {0};
    int rc = image_patches(img, 4, 2, out, &st);
    CHECK(rc == MMT_OK, "image patches 4x4 / 2: ok: %s", rc ? st.msg : "ok");
    CHECK(rc == MMT_OK && memcmp(out, want, sizeof want) == 0,
          "image patches 4x4 / 2: raster order, each (py, px, c)");
    rc = image_patches(img, 4, 4, out, &st);
    CHECK(rc == MMT_OK && memcmp(out, img, sizeof img) == 0,
          "image patches 4x4 / 4: one patch is the image");
    rc = image_patches(img, 4, 3, out, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "not a multiple") && strstr(st.msg, "3"),
          "image patches 4 / 3: error: %s", st.msg);
    rc = image_patches(img, 4, 0, out, &st);
    CHECK(rc == MMT_ERR, "image patches patch 0: error: %s", st.msg);
}

/* --------------------------------------------------------------- errors */

static void errors(void) {
    char path[128];
    float out[9 * 9 * 3];
    mmt_status st = {0};

    path_in(path, sizeof path, "missing.png");
    int rc = image_load_png(path, 4, out, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path) && strstr(st.msg, "cannot open"),
          "image error missing file: %s", st.msg);

    /* the interlaced 9x9 image cut in half */
    char src[128];
    path_in(src, sizeof src, "adam7.png");
    size_t len = 0;
    char *bytes = mmt_read_file(src, &len, &st);
    CHECK(bytes && len > 60, "image: read adam7.png back (%zu bytes)", len);
    if (bytes) {
        path_in(path, sizeof path, "truncated.png");
        FILE *fp = mmt_fopen(path, "wb");
        mmt_fwrite(bytes, 1, len / 2, fp, path);
        mmt_fclose(fp, path);
        free(bytes);
        memset(&st, 0, sizeof st);
        rc = image_load_png(path, 9, out, &st);
        CHECK(rc == MMT_ERR && strstr(st.msg, path) && strstr(st.msg, "truncated"),
              "image error truncated PNG: %s", st.msg);
    }

    path_in(path, sizeof path, "text.png");
    FILE *fp = mmt_fopen(path, "wb");
    fputs("this is not an image\n", fp);
    mmt_fclose(fp, path);
    rc = image_load_png(path, 4, out, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path) && strstr(st.msg, "not a PNG"),
          "image error non-PNG file: %s", st.msg);

    path_in(path, sizeof path, "empty.png");
    fp = mmt_fopen(path, "wb");
    mmt_fclose(fp, path);
    rc = image_load_png(path, 4, out, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path), "image error empty file: %s", st.msg);

    path_in(path, sizeof path, "rgb8.png");
    rc = image_load_png(path, 0, out, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "positive"), "image error size 0: %s", st.msg);
}

/* ----------------------------------------------------------- check list */

static void write_text(const char *path, const char *text) {
    FILE *fp = mmt_fopen(path, "wb");
    fputs(text, fp);
    mmt_fclose(fp, path);
}

static void check_list(void) {
    char list[128], abs_png[128], text[512], want[256];
    path_in(abs_png, sizeof abs_png, "grey.png");
    char **paths = NULL;
    long n = -1;
    mmt_status st = {0};

    /* relative names resolve against the list's folder; absolute ones stay */
    path_in(list, sizeof list, "good.txt");
    snprintf(text, sizeof text, "rgb8.png\r\n%s\npalette.png", abs_png);
    write_text(list, text);
    int rc = image_check_list(list, &paths, &n, &st);
    CHECK(rc == MMT_OK && n == 3, "image list: 3 good images: %s", rc ? st.msg : "ok");
    if (rc == MMT_OK && n == 3) {
        char r0[128];
        path_in(r0, sizeof r0, "rgb8.png");
        CHECK(strcmp(paths[0], r0) == 0 && strcmp(paths[1], abs_png) == 0,
              "image list: paths resolved: %s, %s", paths[0], paths[1]);
    }
    image_free_list(paths, n);

    /* line 3 names a missing image */
    path_in(list, sizeof list, "missing.txt");
    write_text(list, "rgb8.png\ngrey.png\nnope.png\nrgba.png\n");
    rc = image_check_list(list, &paths, &n, &st);
    snprintf(want, sizeof want, "%s:3: %s/nope.png: cannot open", list, dir);
    CHECK(rc == MMT_ERR && paths == NULL && n == 0 && strstr(st.msg, want),
          "image list missing entry names list:line: %s", st.msg);

    /* line 2 is not a PNG */
    path_in(list, sizeof list, "corrupt.txt");
    write_text(list, "rgb8.png\ntext.png\n");
    rc = image_check_list(list, &paths, &n, &st);
    snprintf(want, sizeof want, "%s:2: %s/text.png: not a PNG", list, dir);
    CHECK(rc == MMT_ERR && strstr(st.msg, want), "image list non-PNG entry: %s", st.msg);

    /* an empty line */
    path_in(list, sizeof list, "blank.txt");
    write_text(list, "rgb8.png\n\ngrey.png\n");
    rc = image_check_list(list, &paths, &n, &st);
    snprintf(want, sizeof want, "%s:2: empty line", list);
    CHECK(rc == MMT_ERR && strstr(st.msg, want), "image list empty line: %s", st.msg);

    path_in(list, sizeof list, "no-such-list.txt");
    rc = image_check_list(list, &paths, &n, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, list), "image list missing list file: %s", st.msg);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void suite_image(void) {
    snprintf(dir, sizeof dir, "/tmp/mmt-image-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "image: mkdtemp %s", dir);
        return;
    }
    load_rgb8();
    load_rgb16();
    load_grey();
    load_grey_alpha();
    load_rgba();
    load_rgba16();
    load_palette();
    load_interlaced();
    resize_up();
    resize_down();
    patches();
    errors();
    check_list();
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
