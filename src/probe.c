/* probe.c - the colour-deprivation probe: lexicon, masking, images,
 * scoring, the data set, float16 NPY writing and stand-in features. See
 * probe.h for the contracts. */
#include "probe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image.h"

/* ================================================================ lexicon */

/* Every form of each adjective (stem, -e, -en, -er, -es, -em), for pink,
 * purple and orange also of their -farben compounds: Multi30k's German side
 * uses e.g. "pinkfarbenen", "orangefarbenem" and "violettem" dozens of
 * times each; purple also as "purpurn" and the colloquial "lilane". A
 * form after a shade prefix counts too ("hellblauen", "dunkelgrüner",
 * "knallrosa": English "light [c1]" is one German word). Compounds of two
 * colours ("schwarzweiß", "schwarz-weiß") and other compounds ("rotwein",
 * "weißhaarig") are not forms. */

static const char *const de_red[] = {"rot", "rote", "roten", "roter", "rotes", "rotem", NULL};
static const char *const de_blue[] = {"blau",   "blaue",  "blauen", "blauer",
                                      "blaues", "blauem", NULL};
static const char *const de_green[] = {"grün",   "grüne",  "grünen", "grüner",
                                       "grünes", "grünem", NULL};
static const char *const de_yellow[] = {"gelb",   "gelbe",  "gelben", "gelber",
                                        "gelbes", "gelbem", NULL};
static const char *const de_black[] = {"schwarz",   "schwarze",  "schwarzen", "schwarzer",
                                       "schwarzes", "schwarzem", NULL};
static const char *const de_white[] = {"weiß",   "weiße",   "weißen", "weißer",  "weißes",
                                       "weißem", "weiss",   "weisse", "weissen", "weisser",
                                       "weisses", "weissem", NULL};
static const char *const de_brown[] = {"braun",   "braune",  "braunen", "brauner",
                                       "braunes", "braunem", NULL};
static const char *const de_gray[] = {"grau", "graue", "grauen", "grauer", "graues", "grauem",
                                      NULL};
static const char *const de_pink[] = {
    "pink",         "pinke",        "pinken",        "pinker",        "pinkes",
    "pinkem",       "rosa",         "rosafarben",    "rosafarbene",   "rosafarbenen",
    "rosafarbener", "rosafarbenes", "rosafarbenem",  "pinkfarben",    "pinkfarbene",
    "pinkfarbenen", "pinkfarbener", "pinkfarbenes",  "pinkfarbenem",  NULL};
static const char *const de_purple[] = {
    "lila",         "lilafarben",   "lilafarbene",   "lilafarbenen",  "lilafarbener",
    "lilafarbenes", "lilafarbenem", "violett",       "violette",      "violetten",
    "violetter",    "violettes",    "violettem",     "purpurn",       "purpurne",
    "purpurnen",    "purpurner",    "purpurnes",     "purpurnem",     "lilane",
    "lilanen",      "lilaner",      "lilanes",       "lilanem",       NULL};
static const char *const de_orange[] = {
    "orange",          "oranger",        "oranges",         "orangen",
    "orangene",        "orangenen",      "orangener",       "orangenes",
    "orangenem",       "orangefarben",   "orangefarbene",   "orangefarbenen",
    "orangefarbener",  "orangefarbenes", "orangefarbenem",  NULL};

const probe_colour probe_colours[PROBE_N_COLOURS] = {
    {"red", {220, 30, 30}, de_red},         {"blue", {30, 60, 220}, de_blue},
    {"green", {30, 170, 50}, de_green},     {"yellow", {240, 220, 30}, de_yellow},
    {"black", {10, 10, 10}, de_black},      {"white", {250, 250, 250}, de_white},
    {"brown", {130, 80, 30}, de_brown},     {"gray", {128, 128, 128}, de_gray},
    {"pink", {250, 150, 200}, de_pink},     {"purple", {130, 40, 170}, de_purple},
    {"orange", {250, 140, 20}, de_orange},
};

enum { GRAY = 7 }; /* "grey" is another spelling of probe_colours[GRAY] */

int probe_colour_en(const char *word, size_t len) {
    for (int c = 0; c < PROBE_N_COLOURS; c++) {
        const char *name = probe_colours[c].name;
        if (strlen(name) == len && strncasecmp(word, name, len) == 0) return c;
    }
    if (len == 4 && strncasecmp(word, "grey", 4) == 0) return GRAY;
    return -1;
}

/* Prefixes of shade that German joins to a colour adjective. */
static const char *const shade_prefixes[] = {"hell",   "dunkel", "knall", "neon", "leucht",
                                             "tief",   "mittel", "zart",  "blass", "marine",
                                             NULL};

static int colour_form(const char *token, size_t len) {
    for (int c = 0; c < PROBE_N_COLOURS; c++)
        for (const char *const *f = probe_colours[c].forms; *f; f++)
            if (strlen(*f) == len && memcmp(token, *f, len) == 0) return c;
    return -1;
}

int probe_colour_de(const char *token, size_t len) {
    int c = colour_form(token, len);
    for (const char *const *p = shade_prefixes; c < 0 && *p; p++) {
        size_t k = strlen(*p);
        if (len > k && memcmp(token, *p, k) == 0) c = colour_form(token + k, len - k);
    }
    return c;
}

/* ================================================================ masking */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

char *probe_mask_line(const char *line, probe_masks *m) {
    *m = (probe_masks){0};
    size_t len = strlen(line);
    // a mask token is at most one byte longer than the shortest colour name
    char *out = mmt_malloc(len + PROBE_MAX_MASKS + 1);
    char *o = out;
    const char *p = line;
    while (*p) {
        if (is_blank(*p)) {
            *o++ = *p++;
            continue;
        }
        const char *e = p;
        while (*e && !is_blank(*e)) e++;
        int c = probe_colour_en(p, (size_t)(e - p));
        if (c >= 0 && m->n < PROBE_MAX_MASKS) {
            m->colour[m->n++] = c;
            o += sprintf(o, "[c%d]", m->n);
        } else {
            if (c >= 0) m->unmasked++;
            memcpy(o, p, (size_t)(e - p));
            o += e - p;
        }
        p = e;
    }
    *o = '\0';
    return out;
}

/* ================================================================= images */

/* A generator state for stream i of seed (salt tells streams apart). */
static uint64_t stream_state(uint64_t seed, uint64_t salt, uint64_t i) {
    uint64_t s = seed ^ salt;
    s = data_splitmix64(&s) ^ i;
    return data_splitmix64(&s);
}

/* A number in 0..k-1 (the modulo bias is below 2^-59 for these k). */
static int draw(uint64_t *s, int k) { return (int)(data_splitmix64(s) % (uint64_t)k); }

#define SALT_IMAGE 0x696d616765ull  /* "image" */
#define SALT_SHUFFLE 0x73687566ull  /* "shuf" */
#define SALT_STANDIN 0x7374616eull  /* "stan" */

static void put_pixel(unsigned char *rgb, int x, int y, const unsigned char *c) {
    unsigned char *px = rgb + ((size_t)y * PROBE_IMAGE + x) * 3;
    px[0] = c[0], px[1] = c[1], px[2] = c[2];
}

void probe_render(unsigned char *rgb, const probe_masks *m, uint64_t seed, long line) {
    MMT_ASSERT(m->n >= 0 && m->n <= PROBE_MAX_MASKS);
    uint64_t s = stream_state(seed, SALT_IMAGE, (uint64_t)line);

    // background (235, 235, 235) with one noise value in -6..6 per pixel
    for (int i = 0; i < PROBE_IMAGE * PROBE_IMAGE; i++) {
        unsigned char v = (unsigned char)(235 + draw(&s, 13) - 6);
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
    }

    // slot k: a 6x6 square of colour [c(k+1)], offset 0..2 inside the slot
    int spare = PROBE_SLOT - PROBE_SQUARE + 1;
    for (int k = 0; k < m->n; k++) {
        const unsigned char *c = probe_colours[m->colour[k]].rgb;
        int x0 = (k % 2) * PROBE_SLOT + draw(&s, spare);
        int y0 = (k / 2) * PROBE_SLOT + draw(&s, spare);
        for (int y = y0; y < y0 + PROBE_SQUARE; y++)
            for (int x = x0; x < x0 + PROBE_SQUARE; x++) put_pixel(rgb, x, y, c);
    }

    // 1 or 2 distractor pixels in palette colours anywhere
    int nd = 1 + draw(&s, 2);
    for (int d = 0; d < nd; d++) {
        int x = draw(&s, PROBE_IMAGE), y = draw(&s, PROBE_IMAGE);
        put_pixel(rgb, x, y, probe_colours[draw(&s, PROBE_N_COLOURS)].rgb);
    }
}

/* ================================================================ scoring */

/* Byte length of the punctuation character at p (ASCII, or a quote, dash
 * or ellipsis in UTF-8), or 0. */
static size_t punct_at(const unsigned char *p, const unsigned char *end) {
    static const char *const wide[] = {"\xe2\x80\x9e", "\xe2\x80\x9c", "\xe2\x80\x9d",
                                       "\xe2\x80\x9a", "\xe2\x80\x98", "\xe2\x80\x99",
                                       "\xc2\xab",     "\xc2\xbb",     "\xe2\x80\x93",
                                       "\xe2\x80\x94", "\xe2\x80\xa6", NULL};
    if (p >= end) return 0;
    if (*p < 0x80) return (*p >= '!' && *p <= '/') || (*p >= ':' && *p <= '@') ||
                          (*p >= '[' && *p <= '`') || (*p >= '{' && *p <= '~');
    for (const char *const *w = wide; *w; w++) {
        size_t n = strlen(*w);
        if ((size_t)(end - p) >= n && memcmp(p, *w, n) == 0) return n;
    }
    return 0;
}

/* The same for the punctuation character that ends just before end. */
static size_t punct_before(const unsigned char *start, const unsigned char *end) {
    for (size_t n = 1; n <= 3 && n <= (size_t)(end - start); n++)
        if (punct_at(end - n, end) == n) return n;
    return 0;
}

/* Lowercase tok[0..len) (ASCII and the umlauts Ä Ö Ü) into out (cap >=
 * len + 1) after stripping punctuation at both ends; returns its length. */
static size_t normalise_token(const char *tok, size_t len, char *out) {
    const unsigned char *a = (const unsigned char *)tok, *e = a + len;
    for (size_t n; a < e && (n = punct_at(a, e)) > 0;) a += n;
    for (size_t n; e > a && (n = punct_before(a, e)) > 0;) e -= n;
    size_t k = 0;
    for (const unsigned char *p = a; p < e; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        // U+00C4, U+00D6, U+00DC are C3 84, C3 96, C3 9C; lowercase adds 0x20
        if (k > 0 && (unsigned char)out[k - 1] == 0xc3 && (c == 0x84 || c == 0x96 || c == 0x9c))
            c += 0x20;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return k;
}

/* The colours of the hypothesis tokens: cols[j] for token j (-1: none);
 * returns the number of tokens, at most cap (the rest are dropped: a
 * hypothesis line of more than cap tokens is not a translation). Hyphens
 * separate tokens too, so each colour of a compound such as
 * "schwarz-weisser" counts. */
static int hyp_colours(const char *hyp, int *cols, int cap, char *scratch) {
    int n = 0;
    const char *p = hyp;
    while (*p && n < cap) {
        while (*p == ' ' || *p == '\t' || *p == '-') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\t' && *e != '-') e++;
        size_t k = normalise_token(p, (size_t)(e - p), scratch);
        cols[n++] = probe_colour_de(scratch, k);
        p = e;
    }
    return n;
}

/* Line count mismatch at the end of the shorter of two parallel files. */
static int count_mismatch(mmt_status *st, const char *a, long na, const char *b, long nb) {
    const char *shorter = na < nb ? a : b, *longer = na < nb ? b : a;
    long ns = na < nb ? na : nb, nl = na < nb ? nb : na;
    return mmt_fail(st, "%s:%ld: missing line: it has %ld lines, but %s has %ld", shorter,
                    ns + 1, ns, longer, nl);
}

int probe_score(const char *const *colours, long n_colours, const char *colours_name,
                const char *const *hyps, long n_hyps, const char *hyps_name, probe_counts *c,
                mmt_status *st) {
    if (n_colours != n_hyps)
        return count_mismatch(st, colours_name, n_colours, hyps_name, n_hyps);
    enum { MAX_TOKENS = 1024 };
    int cols[MAX_TOKENS];
    size_t scratch_cap = 256;
    char *scratch = mmt_malloc(scratch_cap);
    for (long i = 0; i < n_colours; i++) {
        size_t need = strlen(hyps[i]) + 1;
        if (need > scratch_cap) scratch = mmt_realloc(scratch, scratch_cap = need);
        int nt = hyp_colours(hyps[i], cols, MAX_TOKENS, scratch);

        // each expected colour takes the first unused token of its colour
        const char *p = colours[i];
        while (*p) {
            while (*p == ' ' || *p == '\t') p++;
            if (!*p) break;
            const char *e = p;
            while (*e && *e != ' ' && *e != '\t') e++;
            int want = probe_colour_en(p, (size_t)(e - p));
            if (want < 0) {
                mmt_fail(st, "%s:%ld: unknown colour \"%.*s\"", colours_name, i + 1,
                         (int)(e - p), p);
                free(scratch);
                return MMT_ERR;
            }
            c->words++, c->words_by[want]++;
            for (int j = 0; j < nt; j++)
                if (cols[j] == want) {
                    cols[j] = -1;
                    c->correct++, c->correct_by[want]++;
                    break;
                }
            p = e;
        }
        c->lines++;
    }
    free(scratch);
    return MMT_OK;
}

/* ================================================================ float16 */

uint16_t probe_f32_to_f16(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t a = b & 0x7fffffffu;

    // NaN stays NaN (quiet, top mantissa bits kept), infinity stays infinity
    if (a >= 0x7f800000u)
        return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | (a >> 13 & 0x3ff) : 0));
    // from 65520 (halfway between 65504 and 65536, tie to even) up: infinity
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);

    // below 2^-14: a subnormal half, units of 2^-24; below 2^-25 it is 0
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return sign;
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; // 14..24
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }

    // normal: rebias the exponent, round 13 dropped bits (a carry may
    // step into the next binade, which is right)
    uint32_t r = (a >> 13) - ((127u - 15u) << 10), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

int probe_npy_open(probe_npy_writer *w, const char *path, int ndim, const long *shape,
                   mmt_status *st) {
    const uint32_t one = 1;
    MMT_ASSERT(*(const unsigned char *)&one == 1); // '<f2' below means little-endian
    MMT_ASSERT(ndim >= 1 && ndim <= 4);
    *w = (probe_npy_writer){0};

    // the shape as a Python tuple: "(3,)" for one dimension, "(3, 4)" else
    char dims[128] = "(";
    size_t dl = 1;
    w->want = 1;
    for (int i = 0; i < ndim; i++) {
        MMT_ASSERT(shape[i] >= 0);
        dl += (size_t)snprintf(dims + dl, sizeof dims - dl, i ? ", %ld" : "%ld", shape[i]);
        w->want *= (uint64_t)shape[i];
    }
    snprintf(dims + dl, sizeof dims - dl, ndim == 1 ? ",)" : ")");

    // NPY 1.0: magic, version, uint16 LE header length, then the dict
    // padded with spaces and ending in '\n' so the data starts at 64 bytes
    char dict[192];
    int len = snprintf(dict, sizeof dict,
                       "{'descr': '<f2', 'fortran_order': False, 'shape': %s, }", dims);
    int hlen = (len + 1 + 10 + 63) / 64 * 64 - 10;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};

    if (data_atomic_open(&w->a, path, st) != MMT_OK) return MMT_ERR;
    setvbuf(w->a.f, NULL, _IOFBF, 1 << 20);
    fwrite(pre, 1, sizeof pre, w->a.f);
    fwrite(dict, 1, (size_t)len, w->a.f);
    for (int i = len; i < hlen - 1; i++) fputc(' ', w->a.f);
    fputc('\n', w->a.f);
    return MMT_OK;
}

void probe_npy_write(probe_npy_writer *w, const uint16_t *x, size_t n) {
    MMT_ASSERT(w->done + n <= w->want);
    fwrite(x, sizeof *x, n, w->a.f); // a short write shows up in the commit's ferror
    w->done += n;
}

int probe_npy_commit(probe_npy_writer *w, mmt_status *st) {
    if (w->done != w->want) {
        mmt_fail(st, "%s: %llu of %llu elements written", w->a.path,
                 (unsigned long long)w->done, (unsigned long long)w->want);
        probe_npy_abort(w);
        return MMT_ERR;
    }
    return data_atomic_commit(&w->a, st);
}

void probe_npy_abort(probe_npy_writer *w) { data_atomic_abort(&w->a); }

int probe_write_npy_f16(const char *path, const uint16_t *x, int ndim, const long *shape,
                        mmt_status *st) {
    probe_npy_writer w;
    if (probe_npy_open(&w, path, ndim, shape, st) != MMT_OK) return MMT_ERR;
    probe_npy_write(&w, x, (size_t)w.want);
    return probe_npy_commit(&w, st);
}

/* ============================================================= generation */

/* mkdir that accepts an existing folder. */
static int make_dir(const char *path, mmt_status *st) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return MMT_OK;
    return mmt_fail(st, "%s: cannot create folder: %s", path, strerror(errno));
}

/* A path "a/b" (or "a/b/c" when c is not NULL) in buf; a bug if too long. */
static const char *join(char *buf, size_t cap, const char *a, const char *b, const char *c) {
    int n = c ? snprintf(buf, cap, "%s/%s/%s", a, b, c) : snprintf(buf, cap, "%s/%s", a, b);
    MMT_ASSERT(n > 0 && (size_t)n < cap);
    return buf;
}

/* The files of one split that are written as text, in one place so that an
 * error aborts them all. */
enum { F_EN, F_DE, F_COLOURS, F_IMAGES, N_TEXT };
static const char *const text_suffix[N_TEXT] = {"en", "de", "colours", "images.txt"};

/* The image features of the PNG at path, as probe.h describes: loaded by
 * image_load_png, cut by image_patches, rounded to float16. */
static int png_features(const char *path, uint16_t *out, mmt_status *st) {
    float img[PROBE_IMAGE * PROBE_IMAGE * 3], patches[PROBE_FEAT_P * PROBE_FEAT_D];
    if (image_load_png(path, PROBE_IMAGE, img, st) != MMT_OK) return MMT_ERR;
    if (image_patches(img, PROBE_IMAGE, PROBE_SLOT, patches, st) != MMT_OK) return MMT_ERR;
    for (int i = 0; i < PROBE_FEAT_P * PROBE_FEAT_D; i++) out[i] = probe_f32_to_f16(patches[i]);
    return MMT_OK;
}

/* Sattolo's shuffle: a seeded permutation that is one cycle through all n,
 * so that perm[i] != i whenever n > 1. */
static void cyclic_perm(long *perm, long n, uint64_t seed) {
    uint64_t s = stream_state(seed, SALT_SHUFFLE, (uint64_t)n);
    for (long i = 0; i < n; i++) perm[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(data_splitmix64(&s) % (uint64_t)i); // j < i; bias < 2^-40
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* The incongruent test: image perm[i] for sentence i, list and features. */
static int write_shuffled(const char *out, const uint16_t *feat, long n, uint64_t seed,
                          mmt_status *st) {
    enum { ROW = PROBE_FEAT_P * PROBE_FEAT_D };
    char path[4096];
    long *perm = mmt_malloc(sizeof(long) * (size_t)(n ? n : 1));
    cyclic_perm(perm, n, seed);

    data_atomic_file list;
    if (data_atomic_open(&list, join(path, sizeof path, out, "test.shuffled.images.txt", NULL),
                         st) != MMT_OK) {
        free(perm);
        return MMT_ERR;
    }
    for (long i = 0; i < n; i++) fprintf(list.f, "images/test/%05ld.png\n", perm[i]);
    if (data_atomic_commit(&list, st) != MMT_OK) {
        free(perm);
        return MMT_ERR;
    }

    probe_npy_writer w;
    long shape[3] = {n, PROBE_FEAT_P, PROBE_FEAT_D};
    if (probe_npy_open(&w, join(path, sizeof path, out, "test.shuffled.npy", NULL), 3, shape,
                       st) != MMT_OK) {
        free(perm);
        return MMT_ERR;
    }
    for (long i = 0; i < n; i++) probe_npy_write(&w, feat + (size_t)perm[i] * ROW, ROW);
    free(perm);
    return probe_npy_commit(&w, st);
}

/* One line of the split: masked source, target, colours, image, features. */
static int make_line(data_atomic_file *f, const char *out, const char *split, long i,
                     const char *en, const char *de, uint64_t seed, uint16_t *feat,
                     probe_split_stats *s, mmt_status *st) {
    probe_masks m;
    char *masked = probe_mask_line(en, &m);
    fprintf(f[F_EN].f, "%s\n", masked);
    free(masked);
    fprintf(f[F_DE].f, "%s\n", de);
    for (int k = 0; k < m.n; k++)
        fprintf(f[F_COLOURS].f, "%s%s", k ? " " : "", probe_colours[m.colour[k]].name);
    fputc('\n', f[F_COLOURS].f);

    s->masked += m.n;
    for (int k = 0; k < m.n; k++) s->masked_by[m.colour[k]]++;
    s->lines_masked += m.n > 0;
    s->lines_over += m.unmasked > 0;
    s->unmasked += m.unmasked;

    // the image, then its features as image_load_png reads it back
    char rel[64], path[4096];
    snprintf(rel, sizeof rel, "images/%s/%05ld.png", split, i);
    fprintf(f[F_IMAGES].f, "%s\n", rel);
    unsigned char rgb[PROBE_IMAGE * PROBE_IMAGE * 3];
    probe_render(rgb, &m, seed, i);
    join(path, sizeof path, out, rel, NULL);
    if (image_save_png(path, rgb, PROBE_IMAGE, PROBE_IMAGE, st) != MMT_OK) return MMT_ERR;
    return png_features(path, feat, st);
}

/* One split: read the parallel text, write every file of probe.h. */
static int make_split(const char *from, const char *out, const char *split, const char *corpus,
                      uint64_t seed, probe_split_stats *s, mmt_status *st) {
    enum { ROW = PROBE_FEAT_P * PROBE_FEAT_D };
    char path[4096], name[256], en_path[4096], de_path[4096];
    snprintf(name, sizeof name, "%s.lc.norm.tok.en.gz", corpus);
    join(en_path, sizeof en_path, from, "tok", name);
    snprintf(name, sizeof name, "%s.lc.norm.tok.de.gz", corpus);
    join(de_path, sizeof de_path, from, "tok", name);

    // the parallel text, with equal line counts
    data_lines en, de;
    if (data_read_lines(&en, en_path, st) != MMT_OK) return MMT_ERR;
    if (data_read_lines(&de, de_path, st) != MMT_OK) {
        data_lines_free(&en);
        return MMT_ERR;
    }
    if (en.n != de.n) {
        count_mismatch(st, en_path, en.n, de_path, de.n);
        data_lines_free(&en);
        data_lines_free(&de);
        return MMT_ERR;
    }

    // the folders and the text files (a committed or aborted file is
    // zeroed, so aborting all of them at the end is always safe)
    data_atomic_file f[N_TEXT] = {{0}};
    int rc = MMT_ERR;
    uint16_t *feat = mmt_malloc(sizeof(uint16_t) * ROW * (size_t)(en.n ? en.n : 1));
    if (make_dir(join(path, sizeof path, out, "images", NULL), st) != MMT_OK ||
        make_dir(join(path, sizeof path, out, "images", split), st) != MMT_OK)
        goto done;
    for (int k = 0; k < N_TEXT; k++) {
        snprintf(name, sizeof name, "%s.%s", split, text_suffix[k]);
        if (data_atomic_open(&f[k], join(path, sizeof path, out, name, NULL), st) != MMT_OK)
            goto done;
    }

    // every line, then the text committed and the features written
    *s = (probe_split_stats){.name = s->name, .lines = en.n};
    for (long i = 0; i < en.n; i++)
        if (make_line(f, out, split, i, en.line[i], de.line[i], seed, feat + (size_t)i * ROW, s,
                      st) != MMT_OK)
            goto done;
    for (int k = 0; k < N_TEXT; k++)
        if (data_atomic_commit(&f[k], st) != MMT_OK) goto done;
    snprintf(name, sizeof name, "%s.npy", split);
    long shape[3] = {en.n, PROBE_FEAT_P, PROBE_FEAT_D};
    if (probe_write_npy_f16(join(path, sizeof path, out, name, NULL), feat, 3, shape, st) !=
        MMT_OK)
        goto done;
    if (strcmp(split, "test") == 0 && write_shuffled(out, feat, en.n, seed, st) != MMT_OK)
        goto done;
    rc = MMT_OK;

done:
    for (int k = 0; k < N_TEXT; k++) data_atomic_abort(&f[k]);
    free(feat);
    data_lines_free(&en);
    data_lines_free(&de);
    return rc;
}

int probe_make(const char *from, const char *out, uint64_t seed, probe_summary *sum,
               mmt_status *st) {
    static const char *const split[PROBE_N_SPLITS] = {"train", "valid", "test"};
    static const char *const corpus[PROBE_N_SPLITS] = {"train", "val", "test_2016_flickr"};
    probe_summary local;
    if (!sum) sum = &local;
    *sum = (probe_summary){0};
    if (make_dir(out, st) != MMT_OK) return MMT_ERR;
    for (int k = 0; k < PROBE_N_SPLITS; k++) {
        sum->split[k].name = split[k];
        if (make_split(from, out, split[k], corpus[k], seed, &sum->split[k], st) != MMT_OK)
            return MMT_ERR;
    }
    return MMT_OK;
}

/* ============================================================== stand-ins */

uint16_t probe_standin_value(uint64_t row, uint64_t elem) {
    // rows and elements below 2^32 give distinct states, hence distinct hashes
    uint64_t s = SALT_STANDIN ^ (row << 32) ^ elem;
    uint64_t h = data_splitmix64(&s);
    return probe_f32_to_f16((float)(h >> 53) / 2048.0f);
}

int probe_standin(const char *path, long rows, probe_standin_kind kind, mmt_status *st) {
    if (rows < 0) return mmt_fail(st, "%s: rows must not be negative, got %ld", path, rows);
    long shape[4] = {rows, 2048, 0, 0};
    int ndim = 2;
    if (kind == PROBE_STANDIN_RES4FRELU) shape[1] = 1024, shape[2] = 14, shape[3] = 14, ndim = 4;
    size_t row_elems = (size_t)shape[1] * (ndim == 4 ? (size_t)shape[2] * shape[3] : 1);

    probe_npy_writer w;
    if (probe_npy_open(&w, path, ndim, shape, st) != MMT_OK) return MMT_ERR;
    uint16_t *row = mmt_malloc(sizeof(uint16_t) * row_elems);
    int failed = 0;
    for (long r = 0; r < rows && !failed; r++) {
        for (size_t e = 0; e < row_elems; e++) row[e] = probe_standin_value((uint64_t)r, e);
        probe_npy_write(&w, row, row_elems);
        failed = ferror(w.a.f); // a full disk: stop now, not 11 GB later
    }
    free(row);
    if (failed) {
        mmt_fail(st, "%s: write failed: %s", w.a.tmp, strerror(errno));
        probe_npy_abort(&w);
        return MMT_ERR;
    }
    return probe_npy_commit(&w, st);
}
