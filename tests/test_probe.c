/*
 * test_probe.c - the colour-deprivation probe: masking, the images (slot
 * colours read back from the PNG), the PNG writer, float16 rounding, the
 * float16 NPY writer against image_patches of the loaded PNG, scoring, a
 * whole probe_make on a tiny corpus (byte-identical when repeated), its
 * line-count error, and the stand-in features. Files go to a mkdtemp
 * folder that is removed at the end.
 */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "npy.h"
#include "probe.h"
#include "test.h"

static char dir[64]; /* the mkdtemp folder */

static const char *path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = mmt_fopen(path, "wb");
    mmt_fwrite(text, 1, strlen(text), fp, path);
    mmt_fclose(fp, path);
}

static int file_is(const char *path, const char *want) {
    mmt_status st = {0};
    size_t n = 0;
    char *x = mmt_read_file(path, &n, &st);
    int same = x && n == strlen(want) && memcmp(x, want, n) == 0;
    free(x);
    return same;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* ---------------------------------------------------------------- masking */

static void check_mask(const char *line, const char *want, int n, const int *colours,
                       int unmasked) {
    probe_masks m;
    char *got = probe_mask_line(line, &m);
    int same = m.n == n && m.unmasked == unmasked;
    for (int k = 0; same && k < n; k++) same = m.colour[k] == colours[k];
    CHECK(!strcmp(got, want) && same, "probe mask \"%s\" -> \"%s\" (%d masks, %d unmasked)",
          line, got, m.n, m.unmasked);
    free(got);
}

static void masking(void) {
    check_mask("a man in a red shirt and blue jeans .", "a man in a [c1] shirt and [c2] jeans .",
               2, (int[]){0, 1}, 0);
    check_mask("red blue green yellow black white", "[c1] [c2] [c3] [c4] black white", 4,
               (int[]){0, 1, 2, 3}, 2);
    check_mask("a grey dog and a gray cat", "a [c1] dog and a [c2] cat", 2, (int[]){7, 7}, 0);
    check_mask("the redhead sings the blues in a red-haired band , reds",
               "the redhead sings the blues in a red-haired band , reds", 0, NULL, 0);
    check_mask("Orange\tcar  white", "[c1]\tcar  [c2]", 2, (int[]){10, 5}, 0);
    check_mask("", "", 0, NULL, 0);
    check_mask("pink purple brown", "[c1] [c2] [c3]", 3, (int[]){8, 9, 6}, 0);
    CHECK(probe_colour_en("grey", 4) == 7 && probe_colour_en("GRAY", 4) == 7 &&
              probe_colour_en("greyhound", 9) == -1 && probe_colour_en("re", 2) == -1,
          "probe English colour lookup: grey/GRAY -> gray, greyhound and re -> none");
    CHECK(probe_colour_de("weiss", 5) == 5 && probe_colour_de("orangefarbenes", 14) == 10 &&
              probe_colour_de("rosa", 4) == 8 && probe_colour_de("rotwein", 7) == -1,
          "probe German colour lookup: weiss, orangefarbenes, rosa, not rotwein");
    CHECK(probe_colour_de("hellblauen", 10) == 1 && probe_colour_de("dunkeloranger", 13) == 10 &&
              probe_colour_de("knallrosa", 9) == 8 && probe_colour_de("purpurnen", 9) == 9 &&
              probe_colour_de("marineblau", 10) == 1,
          "probe German colour lookup: shade prefixes (hellblauen, dunkeloranger, knallrosa, "
          "marineblau) and purpurnen");
    CHECK(probe_colour_de("hell", 4) == -1 && probe_colour_de("hellwein", 8) == -1 &&
              probe_colour_de("dunkelrotwein", 13) == -1 && probe_colour_de("schwarzweiß", 12) == -1 &&
              probe_colour_de("hellhell", 8) == -1,
          "probe German colour lookup: a prefix alone, a prefix before a non-colour and a "
          "two-colour compound are not colours");
}

/* ----------------------------------------------------------------- images */

/* Pixels of slot k of rgb equal to c: in the whole slot, and in its 4x4
 * centre, which every square offset covers. */
static void slot_count(const unsigned char *rgb, int k, const unsigned char *c, int *all,
                       int *centre) {
    *all = *centre = 0;
    for (int y = 0; y < PROBE_SLOT; y++)
        for (int x = 0; x < PROBE_SLOT; x++) {
            const unsigned char *p =
                rgb + (((k / 2) * PROBE_SLOT + y) * PROBE_IMAGE + (k % 2) * PROBE_SLOT + x) * 3;
            int eq = p[0] == c[0] && p[1] == c[1] && p[2] == c[2];
            *all += eq;
            *centre += eq && x >= 2 && x < 6 && y >= 2 && y < 6;
        }
}

/* Background pixels: grey within 235 +- 6. */
static int count_background(const unsigned char *rgb, int k) {
    int n = 0;
    for (int y = 0; y < PROBE_SLOT; y++)
        for (int x = 0; x < PROBE_SLOT; x++) {
            const unsigned char *p =
                rgb + (((k / 2) * PROBE_SLOT + y) * PROBE_IMAGE + (k % 2) * PROBE_SLOT + x) * 3;
            n += p[0] == p[1] && p[1] == p[2] && p[0] >= 229 && p[0] <= 241;
        }
    return n;
}

static void images(void) {
    enum { N = PROBE_IMAGE * PROBE_IMAGE * 3 };
    probe_masks m = {.n = 3, .colour = {0, 1, 9}};
    unsigned char a[N], b[N], c[N], d[N];
    probe_render(a, &m, 1, 17);
    probe_render(b, &m, 1, 17);
    probe_render(c, &m, 1, 18);
    probe_render(d, &m, 2, 17);
    CHECK(!memcmp(a, b, N), "probe render: same seed and line, same pixels");
    CHECK(memcmp(a, c, N) && memcmp(a, d, N), "probe render: another line or seed differs");

    // write it, load it back as the model would, and look at every slot
    char path[128];
    mmt_status st = {0};
    int rc = image_save_png(path_in(path, sizeof path, "render.png"), a, PROBE_IMAGE,
                            PROBE_IMAGE, &st);
    CHECK(rc == MMT_OK, "probe render: PNG written: %s", rc ? st.msg : "ok");
    float img[N];
    rc = image_load_png(path, PROBE_IMAGE, img, &st);
    CHECK(rc == MMT_OK, "probe render: PNG loads: %s", rc ? st.msg : "ok");
    if (rc) return;
    unsigned char back[N];
    for (int i = 0; i < N; i++) back[i] = (unsigned char)lrintf(img[i] * 255.0f);
    for (int k = 0; k < PROBE_MAX_MASKS; k++) {
        int all, centre, bg = count_background(back, k);
        if (k < m.n) {
            slot_count(back, k, probe_colours[m.colour[k]].rgb, &all, &centre);
            // 36 square pixels; the at most 2 distractors may take or add some
            CHECK(centre >= 14 && all >= 34 && all <= 38 && all + bg >= 62,
                  "probe slot %d is %s: %d of 64 pixels (%d of the 16 centre), %d background",
                  k, probe_colours[m.colour[k]].name, all, centre, bg);
        } else {
            CHECK(bg >= 62, "probe slot %d is empty: %d of 64 background pixels", k, bg);
        }
    }

    // a line without colours: only background and distractors
    probe_masks none = {0};
    probe_render(a, &none, 1, 3);
    int bg = 0;
    for (int k = 0; k < 4; k++) bg += count_background(a, k);
    CHECK(bg >= 254, "probe render without colours: %d of 256 background pixels", bg);
}

static void png_round_trip(void) {
    enum { S = 7 };
    unsigned char rgb[S * S * 3];
    for (int i = 0; i < S * S * 3; i++) rgb[i] = (unsigned char)((i * 73 + 5) & 255);
    char path[128];
    mmt_status st = {0};
    int rc = image_save_png(path_in(path, sizeof path, "trip.png"), rgb, S, S, &st);
    float img[S * S * 3], want[S * S * 3];
    if (rc == MMT_OK) rc = image_load_png(path, S, img, &st);
    CHECK(rc == MMT_OK, "png save then load: %s", rc ? st.msg : "ok");
    if (rc) return;
    for (int i = 0; i < S * S * 3; i++) want[i] = (float)rgb[i] / 255.0f;
    check_close("png round trip equals v / 255", img, want, S * S * 3, 0, 0);

    // errors name the path
    rc = image_save_png("/nonexistent-mmt-dir/x.png", rgb, S, S, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "/nonexistent-mmt-dir/x.png: cannot create"),
          "png save into a missing folder: %s", st.msg);
    rc = image_save_png(path, rgb, 0, S, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path), "png save of a 0-wide image: %s", st.msg);
}

/* ---------------------------------------------------------------- float16 */

static float f32_bits(uint32_t b) {
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

static void float16(void) {
    // every half but NaN survives half -> float -> half; NaN stays NaN
    long bad = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = probe_f32_to_f16(npy_f16_to_f32((uint16_t)h));
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan)
            bad_nan += (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back ^ h) & 0x8000;
        else
            bad += back != h;
    }
    CHECK(bad == 0 && bad_nan == 0, "f16: all 65536 halves round trip (%ld wrong, %ld NaN lost)",
          bad, bad_nan);

    // rounding to nearest, ties to even
    struct {
        float x;
        uint16_t want;
        const char *what;
    } cases[] = {
        {1.0f + 0x1p-11f, 0x3c00, "1 + 2^-11 (tie) -> 1 (even)"},
        {1.0f + 3 * 0x1p-11f, 0x3c02, "1 + 3*2^-11 (tie) -> 1 + 2^-9 (even)"},
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01, "just above a tie rounds up"},
        {-(1.0f + 0x1p-11f), 0xbc00, "negative tie -> even"},
        {2047.5f, 0x6800, "2047.5 -> 2048 (spacing 1 from 1024, tie to even)"},
        {0x1p-25f, 0x0000, "2^-25 (tie with 0) -> 0"},
        {3 * 0x1p-25f, 0x0002, "3*2^-25 (subnormal tie) -> 2*2^-24"},
        {0x1p-25f * 1.001f, 0x0001, "just above 2^-25 -> smallest subnormal"},
        {0x1p-14f - 0x1p-26f, 0x0400, "just below 2^-14 rounds up to the smallest normal"},
        {65504.0f, 0x7bff, "65504 is the largest half"},
        {65519.0f, 0x7bff, "65519 -> 65504"},
        {65520.0f, 0x7c00, "65520 (tie) -> infinity"},
        {1e10f, 0x7c00, "1e10 -> infinity"},
        {-1e10f, 0xfc00, "-1e10 -> -infinity"},
        {INFINITY, 0x7c00, "infinity"},
        {-0.0f, 0x8000, "-0 keeps its sign"},
        {1e-30f, 0x0000, "1e-30 -> 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = probe_f32_to_f16(cases[i].x);
        CHECK(got == cases[i].want, "f16: %s (got 0x%04x, want 0x%04x)", cases[i].what, got,
              cases[i].want);
    }

    // random finite floats below 2^15 (above 65520 is infinity, checked
    // above): no other half is nearer
    uint64_t s = 99;
    long worse = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t r = data_splitmix64(&s);
        // exponents 2^-26 .. 2^14, either sign
        uint32_t b = (uint32_t)(r & 0x807fffffu) | (uint32_t)(101 + (r >> 32) % 41) << 23;
        float x = f32_bits(b);
        uint16_t h = probe_f32_to_f16(x);
        double e = fabs((double)npy_f16_to_f32(h) - x);
        uint16_t up = (uint16_t)(h + 1), down = (uint16_t)(h - 1);
        if ((up & 0x7c00) != 0x7c00 && fabs((double)npy_f16_to_f32(up) - x) < e) worse++;
        if ((h & 0x7fff) && fabs((double)npy_f16_to_f32(down) - x) < e) worse++;
    }
    CHECK(worse == 0, "f16: 200000 random floats round to a nearest half (%ld not)", worse);
}

static void npy_writer(void) {
    char path[128];
    mmt_status st = {0};
    uint16_t x[2 * 3 * 2];
    for (int i = 0; i < 12; i++) x[i] = probe_f32_to_f16((float)i * 0.25f - 1.0f);
    long shape[3] = {2, 3, 2};
    int rc = probe_write_npy_f16(path_in(path, sizeof path, "w.npy"), x, 3, shape, &st);
    CHECK(rc == MMT_OK, "npy f16 writer: %s", rc ? st.msg : "ok");
    npy_file f;
    rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && f.dtype == NPY_F16 && f.ndim == 3 && f.rows == 2 && f.shape[1] == 3 &&
              f.shape[2] == 2 && (f.data - (const unsigned char *)f.map) % 64 == 0,
          "npy f16 (2, 3, 2) reads back with its shape, data at a multiple of 64: %s",
          rc ? st.msg : "ok");
    if (rc == MMT_OK) {
        float got[6], want[6];
        for (size_t r = 0; r < 2; r++) {
            npy_row_regions_f32(&f, r, got);
            for (int i = 0; i < 6; i++) want[i] = (float)(int)(r * 6 + i) * 0.25f - 1.0f;
            check_close("npy f16 row values", got, want, 6, 0, 0);
        }
    }
    npy_close(&f);

    // one dimension, and a writer that stops short
    long one = 5;
    rc = probe_write_npy_f16(path_in(path, sizeof path, "one.npy"), x, 1, &one, &st);
    size_t len = 0;
    char *text = rc == MMT_OK ? mmt_read_file(path, &len, &st) : NULL;
    CHECK(text && len == 128 + 10 && strstr(text + 10, "'shape': (5,), }") &&
              text[127] == '\n' && !memcmp(text + 128, x, 10),
          "npy f16 of one dimension: shape (5,), 10 bytes of data after 128");
    free(text);
    probe_npy_writer w;
    rc = probe_npy_open(&w, path_in(path, sizeof path, "short.npy"), 3, shape, &st);
    if (rc == MMT_OK) {
        probe_npy_write(&w, x, 5);
        rc = probe_npy_commit(&w, &st);
    }
    struct stat sb;
    CHECK(rc == MMT_ERR && strstr(st.msg, "5 of 12 elements") && stat(path, &sb) != 0,
          "npy f16 writer that stops short: no file, and %s", st.msg);
}

/* ---------------------------------------------------------------- scoring */

static void scoring(void) {
    const char *colours[] = {"red blue", "red red", "white", "", "pink purple", "gray",
                             "green", "red"};
    const char *hyps[] = {
        "ein mann in einem roten hemd und blauer jeans .",
        "eine rote jacke",                 // one "rote" serves one red only
        "ein \xe2\x80\x9eWeiss\xe2\x80\x9c haus",  // quotes stripped, capital
        "ein schwarzer hund",              // no colour expected
        "eine rosa blume , lila",          // lila counts, once
        "GRAUE katze.",                    // upper case, trailing period
        "auf der GR\xc3\x9cNEN wiese",     // capital umlaut
        "ein rot-weißes auto",             // each colour of a hyphenated compound counts
    };
    probe_counts c = {0};
    mmt_status st = {0};
    int rc = probe_score(colours, 8, "c.txt", hyps, 8, "h.txt", &c, &st);
    CHECK(rc == MMT_OK, "probe score: %s", rc ? st.msg : "ok");
    CHECK(c.lines == 8 && c.words == 10 && c.correct == 9,
          "probe score: 9 of 10 colour words in 8 lines (got %ld of %ld in %ld)", c.correct,
          c.words, c.lines);
    CHECK(c.words_by[0] == 4 && c.correct_by[0] == 3 && c.correct_by[9] == 1 &&
              c.correct_by[2] == 1 && c.correct_by[5] == 1,
          "probe score per colour: red 3 of 4 (got %ld of %ld), purple, green, white found",
          c.correct_by[0], c.words_by[0]);

    const char *bad[] = {"red", "magenta"};
    rc = probe_score(bad, 2, "c.txt", hyps, 2, "h.txt", &c, &st);
    CHECK(rc == MMT_ERR && !strcmp(st.msg, "c.txt:2: unknown colour \"magenta\""),
          "probe score unknown colour: %s", st.msg);
    rc = probe_score(colours, 3, "c.txt", hyps, 2, "h.txt", &c, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "h.txt:3: missing line") && strstr(st.msg, "c.txt"),
          "probe score different line counts: %s", st.msg);
}

/* ------------------------------------------------------------- generation */

/* A tiny Multi30k under dir/NAME/tok (plain text under the .gz names). */
static void write_corpus(const char *name, const char *de_test) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/tok", dir, name);
    mkdir(path, 0777);
    static const char *const files[][2] = {
        {"train.lc.norm.tok.en.gz", "a red car .\nno colour here\ngrey blue red white pink x\n"},
        {"train.lc.norm.tok.de.gz", "ein rotes auto .\nkeine farbe\ngrau blau rot weiß rosa\n"},
        {"val.lc.norm.tok.en.gz", "a green tree\nblues\n"},
        {"val.lc.norm.tok.de.gz", "ein grüner baum\nblues\n"},
        {"test_2016_flickr.lc.norm.tok.en.gz", "orange cat\nblack and white\nnothing\n"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s/tok/%s", dir, name, files[i][0]);
        write_text(path, files[i][1]);
    }
    snprintf(path, sizeof path, "%s/%s/tok/test_2016_flickr.lc.norm.tok.de.gz", dir, name);
    write_text(path, de_test);
}

static void make_probe(void) {
    write_corpus("m30k", "orange katze\nschwarz und weiß\nnichts\n");
    char from[128], out[128], out2[128], path[256], path2[256];
    path_in(from, sizeof from, "m30k");
    path_in(out, sizeof out, "probe");
    path_in(out2, sizeof out2, "probe2");
    probe_summary sum;
    mmt_status st = {0};
    double t0 = mmt_now();
    int rc = probe_make(from, out, 1, &sum, &st);
    CHECK(rc == MMT_OK, "probe make on a tiny corpus: %s", rc ? st.msg : "ok");
    if (rc) return;
    const probe_split_stats *tr = &sum.split[0], *va = &sum.split[1], *te = &sum.split[2];
    CHECK(tr->lines == 3 && tr->masked == 5 && tr->lines_masked == 2 && tr->lines_over == 1 &&
              tr->unmasked == 1 && tr->masked_by[0] == 2 && tr->masked_by[7] == 1,
          "probe make train: %ld lines, %ld masked in %ld lines, %ld over 4 (%ld unmasked)",
          tr->lines, tr->masked, tr->lines_masked, tr->lines_over, tr->unmasked);
    CHECK(va->lines == 2 && va->masked == 1 && te->lines == 3 && te->masked == 3 &&
              !strcmp(te->name, "test"),
          "probe make valid %ld/%ld and test %ld/%ld lines/masked", va->lines, va->masked,
          te->lines, te->masked);

    // the text files
    snprintf(path, sizeof path, "%s/train.en", out);
    CHECK(file_is(path, "a [c1] car .\nno colour here\n[c1] [c2] [c3] [c4] pink x\n"),
          "probe make: train.en masked");
    snprintf(path, sizeof path, "%s/train.colours", out);
    CHECK(file_is(path, "red\n\ngray blue red white\n"), "probe make: train.colours");
    snprintf(path, sizeof path, "%s/train.de", out);
    CHECK(file_is(path, "ein rotes auto .\nkeine farbe\ngrau blau rot weiß rosa\n"),
          "probe make: train.de copied");
    snprintf(path, sizeof path, "%s/valid.en", out);
    CHECK(file_is(path, "a [c1] tree\nblues\n"), "probe make: valid.en");
    snprintf(path, sizeof path, "%s/test.images.txt", out);
    CHECK(file_is(path, "images/test/00000.png\nimages/test/00001.png\nimages/test/00002.png\n"),
          "probe make: test.images.txt");
    char **paths = NULL;
    long n = 0;
    rc = image_check_list(path, &paths, &n, &st);
    CHECK(rc == MMT_OK && n == 3, "probe make: test.images.txt passes image_check_list: %s",
          rc ? st.msg : "ok");

    // features: image_patches of the loaded PNG, as halves
    npy_file f;
    snprintf(path, sizeof path, "%s/test.npy", out);
    rc = npy_open(&f, path, &st);
    size_t P = 0, D = 0;
    if (rc == MMT_OK) npy_regions(&f, &P, &D);
    CHECK(rc == MMT_OK && f.dtype == NPY_F16 && f.rows == 3 && P == 4 && D == 192,
          "probe make: test.npy float16 (3, 4, 192): %s (P %zu, D %zu)", rc ? st.msg : "ok", P,
          D);
    float img[16 * 16 * 3], patches[4 * 192], want[4 * 192], got[4 * 192];
    for (size_t i = 0; rc == MMT_OK && i < 3; i++) {
        image_load_png(paths[i], 16, img, &st);
        image_patches(img, 16, 8, patches, &st);
        for (int j = 0; j < 4 * 192; j++) want[j] = npy_f16_to_f32(probe_f32_to_f16(patches[j]));
        npy_row_regions_f32(&f, i, got);
        check_close("probe make: test.npy row = f16(image_patches(PNG))", got, want, 4 * 192, 0,
                    0);
        check_close("probe make: test.npy row within f16 rounding of the PNG", got, patches,
                    4 * 192, 0, 1.0 / 2048);
    }
    npy_close(&f);
    image_free_list(paths, n);

    // the shuffled test: a cycle, and its features follow the list
    snprintf(path, sizeof path, "%s/test.shuffled.images.txt", out);
    data_lines sl;
    rc = data_read_lines(&sl, path, &st);
    int cyc = rc == MMT_OK && sl.n == 3, seen[3] = {0};
    for (long i = 0; cyc && i < 3; i++) {
        int k = -1;
        cyc = sscanf(sl.line[i], "images/test/%d.png", &k) == 1 && k >= 0 && k < 3 && k != i &&
              !seen[k]++;
    }
    CHECK(cyc, "probe make: test.shuffled.images.txt moves every image to another line");
    npy_file g;
    snprintf(path2, sizeof path2, "%s/test.shuffled.npy", out);
    snprintf(path, sizeof path, "%s/test.npy", out);
    if (cyc && npy_open(&g, path2, &st) == MMT_OK && npy_open(&f, path, &st) == MMT_OK) {
        int k;
        sscanf(sl.line[0], "images/test/%d.png", &k);
        npy_row_regions_f32(&g, 0, got);
        npy_row_regions_f32(&f, (size_t)k, want);
        check_close("probe make: test.shuffled.npy row 0 is its image's row", got, want,
                    4 * 192, 0, 0);
        npy_close(&f);
        npy_close(&g);
    }
    data_lines_free(&sl);

    // the same command again gives the same bytes
    rc = probe_make(from, out2, 1, NULL, &st);
    static const char *const names[] = {
        "train.en",  "train.de",    "train.colours",  "train.images.txt",
        "train.npy", "valid.npy",   "test.npy",       "test.shuffled.npy",
        "test.shuffled.images.txt", "images/train/00002.png", "images/test/00001.png"};
    int same = rc == MMT_OK;
    for (size_t i = 0; same && i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", out, names[i]);
        snprintf(path2, sizeof path2, "%s/%s", out2, names[i]);
        same = test_same_file(path, path2);
    }
    CHECK(same, "probe make twice: byte-identical files");
    CHECK(mmt_now() - t0 < 2.0, "probe make on a tiny corpus is fast (%.2f s)", mmt_now() - t0);

    // a German side one line short: the error names that file and line
    write_corpus("short", "orange katze\nschwarz und weiß\n");
    path_in(from, sizeof from, "short");
    path_in(out, sizeof out, "probe-short");
    rc = probe_make(from, out, 1, NULL, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "test_2016_flickr.lc.norm.tok.de.gz:3: missing line") &&
              strstr(st.msg, "has 3"),
          "probe make with a short German file: %s", st.msg);
    path_in(from, sizeof from, "absent");
    rc = probe_make(from, out, 1, NULL, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "absent/tok/train.lc.norm.tok.en.gz"),
          "probe make without a corpus: %s", st.msg);
}

/* -------------------------------------------------------------- stand-ins */

static void standins(void) {
    char path[128];
    mmt_status st = {0};
    int rc = probe_standin(path_in(path, sizeof path, "grid.npy"), 3, PROBE_STANDIN_RES4FRELU,
                           &st);
    npy_file f;
    if (rc == MMT_OK) rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && f.dtype == NPY_F16 && f.ndim == 4 && f.rows == 3 &&
              f.shape[1] == 1024 && f.shape[2] == 14 && f.shape[3] == 14,
          "standin res4frelu: float16 (3, 1024, 14, 14): %s", rc ? st.msg : "ok");
    if (rc) return;
    size_t E = f.row_elems;
    float *row = mmt_malloc(sizeof(float) * E), *row0 = mmt_malloc(sizeof(float) * E);
    long bad = 0, equal = 0;
    double sum = 0;
    npy_row_f32(&f, 0, row0);
    for (size_t r = 0; r < 3; r++) {
        npy_row_f32(&f, r, row);
        for (size_t e = 0; e < E; e++) {
            bad += !(row[e] >= 0 && row[e] < 1) ||
                   row[e] != npy_f16_to_f32(probe_standin_value(r, e));
            equal += r > 0 && row[e] == row0[e];
            sum += row[e];
        }
    }
    CHECK(bad == 0, "standin values are probe_standin_value, in [0, 1) (%ld not)", bad);
    double mean = sum / (3.0 * E);
    CHECK(fabs(mean - 0.5) < 0.01 && equal < (long)E / 100,
          "standin values spread: mean %.4f, %ld equal to row 0's", mean, equal);
    npy_close(&f);
    free(row);
    free(row0);

    rc = probe_standin(path_in(path, sizeof path, "pool.npy"), 2, PROBE_STANDIN_AVGPOOL, &st);
    if (rc == MMT_OK) rc = npy_open(&f, path, &st);
    CHECK(rc == MMT_OK && f.ndim == 2 && f.rows == 2 && f.shape[1] == 2048,
          "standin avgpool: (2, 2048): %s", rc ? st.msg : "ok");
    npy_close(&f);
    rc = probe_standin("/nonexistent-mmt-dir/s.npy", 2, PROBE_STANDIN_AVGPOOL, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, "/nonexistent-mmt-dir/s.npy"),
          "standin into a missing folder: %s", st.msg);
}

void suite_probe(void) {
    snprintf(dir, sizeof dir, "/tmp/mmt-probe-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "probe: mkdtemp %s", dir);
        return;
    }
    masking();
    images();
    png_round_trip();
    float16();
    npy_writer();
    scoring();
    make_probe();
    standins();
    CHECK(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0, "probe: temp dir %s removed",
          dir);
}
