/*
 * image.c - PNG loading and writing, bilinear resize and patch cutting
 * (see image.h).
 *
 * libpng reports errors by longjmp to the setjmp in png_decode (or
 * png_encode). Everything that function changes after its setjmp and reads
 * again after the jump (the pixel buffer and the row pointers) is volatile;
 * libpng's message is copied into a png_ctx owned by the caller, so it is
 * not a local of the function that called setjmp.
 */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char msg[256]; /* libpng's error message */
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    log_debug("libpng warning: %s", msg);
}

/* Decoded pixels: RGB or RGBA, 1 or 2 bytes a sample (16-bit big-endian). */
typedef struct {
    unsigned char *pix;
    int w, h, bytes; /* bytes per sample: 1 or 2 */
    int chans;       /* 3, or 4 with alpha last (dropped) */
} png_rgb;

/* Decode fp (after its 8 signature bytes) into *img, or with header_only
 * just read the header. MMT_ERR with ctx->msg set on a libpng error. */
static int png_decode(FILE *fp, int header_only, png_rgb *img, png_ctx *ctx) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error,
                                             on_png_warning);
    if (!png) {
        snprintf(ctx->msg, sizeof ctx->msg, "cannot create the libpng reader");
        return MMT_ERR;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(ctx->msg, sizeof ctx->msg, "cannot create the libpng info");
        return MMT_ERR;
    }
    unsigned char *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pix);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return MMT_ERR;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    if (header_only) {
        png_destroy_read_struct(&png, &info, NULL);
        return MMT_OK;
    }

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info);
    int type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        png_set_gray_to_rgb(png);
    }
    /* Alpha (a real channel, or tRNS that png_set_palette_to_rgb expands)
     * stays a 4th channel here and is dropped when converting to float. */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    int chans = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((chans != 3 && chans != 4) || rowbytes != (size_t)w * chans * bytes)
        png_error(png, "unexpected layout after conversion to RGB");
    if (w == 0 || h == 0 || (size_t)h > SIZE_MAX / rowbytes)
        png_error(png, "image too large");
    pix = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pix || !rows) png_error(png, "out of memory for the pixels");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pix + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    img->pix = pix;
    img->w = (int)w;
    img->h = (int)h;
    img->bytes = bytes;
    img->chans = chans;
    return MMT_OK;
}

/* Open path and check its signature; NULL with st filled otherwise. */
static FILE *open_png(const char *path, mmt_status *st) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, fp);
    if (got == 0) {
        fclose(fp);
        mmt_fail(st, "%s: empty file, not a PNG", path);
        return NULL;
    }
    if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(fp);
        mmt_fail(st, "%s: not a PNG file (bad signature)", path);
        return NULL;
    }
    return fp;
}

/* One axis of the resize: source index pair and weight of the second. */
typedef struct {
    int i0, i1;
    float l;
} lerp_tap;

static void make_taps(lerp_tap *t, int in, int out) {
    double scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        double s = (o + 0.5) * scale - 0.5;
        if (s < 0) s = 0;
        int i0 = (int)s;
        if (i0 > in - 1) i0 = in - 1;
        t[o].i0 = i0;
        t[o].i1 = i0 + 1 < in ? i0 + 1 : in - 1;
        t[o].l = (float)(s - i0);
    }
}

/* Bilinear resize of (h, w, 3) src to (size, size, 3) dst, see image.h. */
static void resize_bilinear(const float *src, int w, int h, int size, float *dst) {
    lerp_tap *tx = mmt_malloc(sizeof(lerp_tap) * (size_t)size);
    lerp_tap *ty = mmt_malloc(sizeof(lerp_tap) * (size_t)size);
    make_taps(tx, w, size);
    make_taps(ty, h, size);
    for (int y = 0; y < size; y++) {
        const float *r0 = src + (size_t)ty[y].i0 * w * 3;
        const float *r1 = src + (size_t)ty[y].i1 * w * 3;
        float ly = ty[y].l;
        for (int x = 0; x < size; x++) {
            int a = tx[x].i0 * 3, b = tx[x].i1 * 3;
            float lx = tx[x].l;
            float *d = dst + ((size_t)y * size + x) * 3;
            for (int c = 0; c < 3; c++) {
                float top = (1 - lx) * r0[a + c] + lx * r0[b + c];
                float bot = (1 - lx) * r1[a + c] + lx * r1[b + c];
                d[c] = (1 - ly) * top + ly * bot;
            }
        }
    }
    free(tx);
    free(ty);
}

int image_load_png(const char *path, int size, float *out, mmt_status *st) {
    if (size <= 0) return mmt_fail(st, "%s: image size must be positive, got %d", path, size);
    FILE *fp = open_png(path, st);
    if (!fp) return MMT_ERR;
    png_ctx ctx = {{0}};
    png_rgb img = {0};
    int rc = png_decode(fp, 0, &img, &ctx);
    fclose(fp);
    if (rc != MMT_OK) return mmt_fail(st, "%s: corrupt or truncated PNG: %s", path, ctx.msg);

    size_t n = (size_t)img.w * img.h * 3;
    int native = img.w == size && img.h == size;
    float *f = native ? out : malloc(n * sizeof(float));
    if (!f) {
        free(img.pix);
        return mmt_fail(st, "%s: out of memory for a %dx%d image", path, img.w, img.h);
    }
    size_t npx = (size_t)img.w * img.h;
    int k = img.chans;
    if (img.bytes == 1) {
        for (size_t i = 0; i < npx; i++)
            for (int c = 0; c < 3; c++) f[i * 3 + c] = (float)img.pix[i * k + c] / 255.0f;
    } else {
        for (size_t i = 0; i < npx; i++)
            for (int c = 0; c < 3; c++) {
                const unsigned char *s = img.pix + 2 * (i * k + c);
                f[i * 3 + c] = (float)((s[0] << 8) | s[1]) / 65535.0f;
            }
    }
    free(img.pix);
    if (!native) {
        resize_bilinear(f, img.w, img.h, size, out);
        free(f);
    }
    return MMT_OK;
}

/* Encode rgb (h, w, 3) into the open fp; MMT_ERR with ctx->msg set on a
 * libpng error. The row pointers are allocated before setjmp, so nothing
 * changed after it is read after the jump. */
static int png_encode(FILE *fp, const unsigned char *rgb, int w, int h, png_ctx *ctx) {
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!rows) {
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory for the row pointers");
        return MMT_ERR;
    }
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)rgb + (size_t)y * w * 3;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        free(rows);
        snprintf(ctx->msg, sizeof ctx->msg, "cannot create the libpng writer");
        return MMT_ERR;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return MMT_ERR;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return MMT_OK;
}

int image_save_png(const char *path, const unsigned char *rgb, int w, int h, mmt_status *st) {
    if (w <= 0 || h <= 0)
        return mmt_fail(st, "%s: cannot write a %dx%d PNG: sizes must be positive", path, w, h);
    FILE *fp = fopen(path, "wb");
    if (!fp) return mmt_fail(st, "%s: cannot create: %s", path, strerror(errno));
    png_ctx ctx = {{0}};
    int rc = png_encode(fp, rgb, w, h, &ctx);
    // a write error libpng did not see shows up in ferror, fflush or fclose
    int flushed = rc == MMT_OK && !ferror(fp) && fflush(fp) == 0;
    int closed = fclose(fp) == 0;
    if (rc == MMT_OK && (!flushed || !closed)) {
        snprintf(ctx.msg, sizeof ctx.msg, "%s", strerror(errno));
        rc = MMT_ERR;
    }
    if (rc != MMT_OK) {
        remove(path);
        return mmt_fail(st, "%s: cannot write PNG: %s", path, ctx.msg);
    }
    return MMT_OK;
}

int image_patches(const float *img, int size, int patch, float *out, mmt_status *st) {
    if (size <= 0 || patch <= 0)
        return mmt_fail(st, "image patches: image size %d and patch size %d must be positive",
                        size, patch);
    if (size % patch != 0)
        return mmt_fail(st, "image patches: image size %d is not a multiple of patch size %d",
                        size, patch);
    int g = size / patch;
    size_t pl = (size_t)patch * patch * 3, rl = (size_t)patch * 3;
    for (int gy = 0; gy < g; gy++)
        for (int gx = 0; gx < g; gx++) {
            float *o = out + ((size_t)gy * g + gx) * pl;
            for (int py = 0; py < patch; py++) {
                const float *s = img + (((size_t)gy * patch + py) * size + (size_t)gx * patch) * 3;
                memcpy(o + py * rl, s, rl * sizeof(float));
            }
        }
    return MMT_OK;
}

void image_free_list(char **paths, long n) {
    if (!paths) return;
    for (long i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* Check the header of one image; st names path. */
static int check_header(const char *path, mmt_status *st) {
    FILE *fp = open_png(path, st);
    if (!fp) return MMT_ERR;
    png_ctx ctx = {{0}};
    int rc = png_decode(fp, 1, NULL, &ctx);
    fclose(fp);
    if (rc != MMT_OK) return mmt_fail(st, "%s: corrupt or truncated PNG: %s", path, ctx.msg);
    return MMT_OK;
}

int image_check_list(const char *list_path, char ***paths, long *n, mmt_status *st) {
    *paths = NULL;
    *n = 0;
    size_t len;
    char *text = mmt_read_file(list_path, &len, st);
    if (!text) return MMT_ERR;
    const char *slash = strrchr(list_path, '/');
    size_t dlen = slash ? (size_t)(slash - list_path) + 1 : 0; /* with the '/' */

    char **out = NULL;
    long count = 0, cap = 0, line = 0;
    mmt_status sub = {0};
    char *p = text, *end = text + len;
    while (p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        size_t l = (size_t)(e - p);
        if (l == 0 || memchr(p, '\0', l)) {
            mmt_fail(st, "%s:%ld: %s", list_path, line,
                     l == 0 ? "empty line, expected an image path" : "NUL byte in the path");
            goto fail;
        }
        size_t pre = p[0] == '/' ? 0 : dlen;
        char *full = mmt_malloc(pre + l + 1);
        memcpy(full, list_path, pre);
        memcpy(full + pre, p, l);
        full[pre + l] = '\0';
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            out = mmt_realloc(out, sizeof(char *) * (size_t)cap);
        }
        out[count++] = full;
        if (check_header(full, &sub) != MMT_OK) {
            mmt_fail(st, "%s:%ld: %s", list_path, line, sub.msg);
            goto fail;
        }
        p = nl ? nl + 1 : end;
    }
    if (count == 0) {
        mmt_fail(st, "%s: no image paths in the list", list_path);
        goto fail;
    }
    free(text);
    *paths = out;
    *n = count;
    return MMT_OK;
fail:
    free(text);
    image_free_list(out, count);
    return MMT_ERR;
}
