/*
 * image.h - load PNG images for a ViT-style patch embedding; write 8-bit RGB ones.
 *
 * Decoding (libpng):
 *   - bit depths 1, 2, 4, 8 and 16; grey, grey+alpha, RGB, RGBA and palette
 *     images; interlaced (Adam7) or not;
 *   - palette images become RGB through the palette, grey becomes R = G = B;
 *   - alpha is DROPPED, not composited: an RGBA pixel (r, g, b, a) loads as
 *     (r, g, b) whatever a is (as PIL's Image.convert("RGB") does); a tRNS
 *     chunk (transparency of palette or grey/RGB images) is ignored too;
 *   - 16-bit samples keep their full precision: v / 65535; 8-bit ones are
 *     v / 255 (lower depths are first scaled to 8 bits by libpng); so every
 *     value lies in [0, 1];
 *   - no gamma or colour-profile correction: the stored samples are used.
 *
 * Layout: an image is (size, size, 3) float32, row-major HWC: the value of
 * channel c (0 = R, 1 = G, 2 = B) at row y, column x is
 * img[(y * size + x) * 3 + c].
 *
 * Resize (when the image is not already size x size; width and height are
 * scaled independently, the aspect ratio is not kept): bilinear with
 * align_corners = false and no antialiasing, exactly as torch's
 * F.interpolate(x, (size, size), mode="bilinear", align_corners=False,
 * antialias=False). For each output column X (rows alike, with H):
 *     sx  = max(0, (X + 0.5) * W / size - 0.5)
 *     x0  = floor(sx), x1 = min(x0 + 1, W - 1), lx = sx - x0
 *     out = (1-ly) * ((1-lx) * in[y0][x0] + lx * in[y0][x1])
 *         +    ly  * ((1-lx) * in[y1][x0] + lx * in[y1][x1])
 * When size equals the image's width and height this is the identity, bit
 * for bit. Downscaling reads only the 2x2 neighbourhood of each sample
 * (no antialias), so it differs from PIL's BILINEAR, which widens its
 * filter when shrinking.
 *
 * Errors name the file: "PATH: cannot open: ...", "PATH: not a PNG file",
 * "PATH: corrupt or truncated PNG: <libpng's message>".
 *
 * Encoding: image_save_png writes 8-bit RGB (what the probe images need).
 */
#ifndef MMT_IMAGE_H
#define MMT_IMAGE_H

#include "common.h"

/* Read the PNG at path, convert to RGB in [0, 1] and resize (bilinear, as
 * above) to size x size; out is (size, size, 3) HWC float32, written only
 * on success. */
int image_load_png(const char *path, int size, float *out, mmt_status *st);

/* Write rgb, (h, w, 3) 8-bit samples row-major HWC, to path as an 8-bit
 * RGB, non-interlaced PNG with no ancillary chunks (no time stamp), so the
 * same pixels always give the same bytes. image_load_png reads it back as
 * v / 255. The file is written in place; on error it is removed and st says
 * "PATH: cannot create: ..." or "PATH: cannot write PNG: <libpng's message>". */
int image_save_png(const char *path, const unsigned char *rgb, int w, int h, mmt_status *st);

/* Cut img, (size, size, 3) HWC, into P = (size / patch)^2 non-overlapping
 * patch x patch squares in raster order (left to right, then top to
 * bottom); patch p = gy * (size / patch) + gx is flattened row-major as
 * (py, px, c):
 *     out[p * patch*patch*3 + (py * patch + px) * 3 + c]
 *         = img[((gy * patch + py) * size + gx * patch + px) * 3 + c]
 * out is (P, patch * patch * 3). MMT_ERR with a message when size or patch
 * is not positive or size is not a multiple of patch (a configuration
 * error); out is then untouched. */
int image_patches(const float *img, int size, int patch, float *out, mmt_status *st);

/* Read list_path, one image path a line ('\r' before '\n' is dropped; a
 * relative path is taken relative to the folder of list_path), and check
 * that every image opens, has a PNG signature and a readable header
 * (png_read_info). On success *paths holds the n resolved paths (free with
 * image_free_list). On error *paths = NULL, *n = 0 and st says
 * "LIST:LINE: PATH: what is wrong" for the first bad line (an empty line is
 * an error, as is a list without paths). */
int image_check_list(const char *list_path, char ***paths, long *n, mmt_status *st);
void image_free_list(char **paths, long n);

#endif
