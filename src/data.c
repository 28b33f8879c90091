/* data.c - parallel text to ids, the token cache, tokenizer training and
 * token-bounded batches. See data.h for the contracts. */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Bump when the reading, trimming, filtering or file layout changes: old
 * caches then read as stale and are rebuilt. */
#define DATA_CACHE_VERSION 1u
static const char cache_magic[8] = {'m', 'm', 't', 'c', 'a', 'c', 'h', 'e'};

/* ================================================================ helpers */

uint64_t data_fnv1a64(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t data_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(mmt_malloc(n), s, n);
}

int data_atomic_open(data_atomic_file *a, const char *path, mmt_status *st) {
    size_t n = strlen(path) + 32;
    a->path = str_dup(path);
    a->tmp = mmt_malloc(n);
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        mmt_fail(st, "%s: cannot create: %s", a->tmp, strerror(errno));
        free(a->path);
        free(a->tmp);
        a->path = a->tmp = NULL;
        return MMT_ERR;
    }
    return MMT_OK;
}

void data_atomic_abort(data_atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->path);
    free(a->tmp);
    *a = (data_atomic_file){0};
}

/* Best effort: make the rename itself durable. Some file systems refuse
 * fsync on a folder; the data is already safe then, so errors are ignored. */
static void fsync_parent(const char *path) {
    char *copy = str_dup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

int data_atomic_commit(data_atomic_file *a, mmt_status *st) {
    // every write error so far shows up in ferror, fflush or fsync
    int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int err = errno;
    int closed = fclose(a->f) == 0;
    a->f = NULL;
    if (bad || !closed) {
        mmt_fail(st, "%s: write failed: %s", a->tmp, strerror(bad ? err : errno));
        data_atomic_abort(a);
        return MMT_ERR;
    }
    if (rename(a->tmp, a->path) != 0) {
        mmt_fail(st, "%s: cannot rename to %s: %s", a->tmp, a->path, strerror(errno));
        data_atomic_abort(a);
        return MMT_ERR;
    }
    fsync_parent(a->path);
    free(a->path);
    free(a->tmp);
    *a = (data_atomic_file){0};
    return MMT_OK;
}

int data_write_npy_f32(const char *path, const float *x, long rows, long cols, mmt_status *st) {
    const uint32_t probe = 1;
    MMT_ASSERT(*(const unsigned char *)&probe == 1); // '<f4' below means little-endian
    MMT_ASSERT(rows >= 0 && cols >= 0);

    // NPY 1.0: magic, version 1.0, uint16 LE header length, then a Python
    // dict literal padded with spaces and ending in '\n' so that the data
    // starts at a multiple of 64 bytes
    char dict[128];
    int len =
        snprintf(dict, sizeof dict,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }", rows, cols);
    int hlen = (len + 1 + 10 + 63) / 64 * 64 - 10;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};

    data_atomic_file a;
    if (data_atomic_open(&a, path, st) != MMT_OK) return MMT_ERR;
    fwrite(pre, 1, sizeof pre, a.f);
    fwrite(dict, 1, (size_t)len, a.f);
    for (int i = len; i < hlen - 1; i++)
        fputc(' ', a.f);
    fputc('\n', a.f);
    fwrite(x, sizeof *x, (size_t)rows * (size_t)cols, a.f);
    return data_atomic_commit(&a, st);
}

/* ============================================================= text files */

int data_is_gzip(const char *path, mmt_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) return mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2] = {0, 0};
    size_t got = fread(m, 1, 2, f);
    fclose(f);
    return got == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* The whole decompressed content of path (plain files pass through zlib
 * unchanged) in a malloc'd buffer with one spare byte; NULL on error. */
static char *read_all(const char *path, size_t *len, mmt_status *st) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        mmt_fail(st, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    size_t cap = 1 << 20, n = 0;
    char *buf = mmt_malloc(cap);
    for (;;) {
        if (cap - n < (1 << 16)) buf = mmt_realloc(buf, cap *= 2);
        size_t want = cap - n - 1;
        int got = gzread(f, buf + n, want > (1u << 30) ? (1u << 30) : (unsigned)want);
        if (got <= 0) break;
        n += (size_t)got;
    }

    // a read error, or a gzip stream that ends early, shows up here
    int zerr = Z_OK;
    const char *why = gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        // zlib's message starts with the path already
        size_t n_path = strlen(path);
        if (strncmp(why, path, n_path) == 0 && strncmp(why + n_path, ": ", 2) == 0)
            why += n_path + 2;
        mmt_fail(st, "%s: read error: %s", path, zerr == Z_ERRNO ? strerror(errno) : why);
        gzclose(f);
        free(buf);
        return NULL;
    }
    if (gzclose(f) != Z_OK) {
        mmt_fail(st, "%s: read error: truncated or corrupt gzip data", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Offset of the first byte in s[0..n) that does not start a valid UTF-8
 * character (overlong forms, surrogates and code points above U+10FFFF
 * included) or that is NUL; -1 when all is valid. */
static long utf8_bad_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return (long)i;
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf)
            more = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            more = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3, cp = c & 0x07, min = 0x10000;
        else
            return (long)i;
        if (n - i <= (size_t)more) return (long)i;
        for (int j = 1; j <= more; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return (long)i;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return (long)i;
        i += (size_t)more + 1;
    }
    return -1;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int data_read_lines(data_lines *t, const char *path, mmt_status *st) {
    *t = (data_lines){0};
    size_t len;
    char *buf = read_all(path, &len, st);
    if (!buf) return MMT_ERR;

    // count lines: every '\n' ends one, and text after the last one is one more
    long n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    if (len > 0 && buf[len - 1] != '\n') n++;
    char **line = mmt_malloc((size_t)(n ? n : 1) * sizeof *line);

    // split in place: validate, cut at the newline, trim both ends
    size_t a = 0;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) a = 3;
    for (long k = 0; k < n; k++) {
        char *nl = memchr(buf + a, '\n', len - a);
        size_t b = nl ? (size_t)(nl - buf) : len;
        long bad = utf8_bad_at((const unsigned char *)buf + a, b - a);
        if (bad >= 0) {
            mmt_fail(st, "%s:%ld: %s at byte %ld of the line", path, k + 1,
                     buf[a + (size_t)bad] ? "invalid UTF-8" : "NUL byte", bad + 1);
            free(line);
            free(buf);
            return MMT_ERR;
        }
        buf[b] = '\0';
        size_t e = b;
        while (e > a && is_space(buf[e - 1]))
            buf[--e] = '\0';
        while (a < e && is_space(buf[a]))
            a++;
        line[k] = buf + a;
        a = b + 1;
    }
    t->n = n;
    t->line = line;
    t->buf = buf;
    return MMT_OK;
}

void data_lines_free(data_lines *t) {
    free(t->line);
    free(t->buf);
    *t = (data_lines){0};
}

/* =============================================================== encoding */

void pair_corpus_free(pair_corpus *c) {
    free(c->src_ids);
    free(c->tgt_ids);
    free(c->src_off);
    free(c->tgt_off);
    free(c->line);
    *c = (pair_corpus){0};
}

static void corpus_alloc(pair_corpus *c, long n, int64_t n_src, int64_t n_tgt) {
    c->n = n;
    c->src_ids = mmt_malloc((size_t)n_src * sizeof *c->src_ids);
    c->tgt_ids = mmt_malloc((size_t)n_tgt * sizeof *c->tgt_ids);
    c->src_off = mmt_malloc((size_t)(n + 1) * sizeof *c->src_off);
    c->tgt_off = mmt_malloc((size_t)(n + 1) * sizeof *c->tgt_off);
    c->line = mmt_malloc((size_t)(n ? n : 1) * sizeof *c->line);
}

/* Encodes every non-empty line of t into ids[i] (malloc'd) and len[i], on
 * all threads. On failure fills st for the first failing line. */
static int encode_lines(int **ids, int *len, const data_lines *t, const spm_model *spm,
                        const char *path, mmt_status *st) {
    long err_line = -1;
#pragma omp parallel for schedule(dynamic, 64)
    for (long i = 0; i < t->n; i++) {
        if (!t->line[i][0]) continue;
        mmt_status est = {0};
        if (spm_encode(spm, t->line[i], &ids[i], &len[i], &est) == MMT_OK) continue;
#pragma omp critical(data_encode_error)
        if (err_line < 0 || i < err_line) {
            err_line = i;
            mmt_fail(st, "%s:%ld: cannot encode: %s", path, i + 1, est.msg);
        }
    }
    return err_line < 0 ? MMT_OK : MMT_ERR;
}

int data_encode(pair_corpus *c, const spm_model *spm, const char *src_path, const char *tgt_path,
                int max_len, data_stats *stats, mmt_status *st) {
    *c = (pair_corpus){0};
    data_lines src, tgt;
    if (data_read_lines(&src, src_path, st) != MMT_OK) return MMT_ERR;
    if (data_read_lines(&tgt, tgt_path, st) != MMT_OK) {
        data_lines_free(&src);
        return MMT_ERR;
    }
    if (src.n != tgt.n) {
        mmt_fail(st,
                 "%s has %ld lines but %s has %ld: parallel files must have one "
                 "sentence a line on both sides",
                 src_path, src.n, tgt_path, tgt.n);
        data_lines_free(&src);
        data_lines_free(&tgt);
        return MMT_ERR;
    }

    // encode both sides, each line on its own, in parallel
    long n = src.n;
    int **src_ids = mmt_calloc((size_t)(n ? n : 1), sizeof *src_ids);
    int **tgt_ids = mmt_calloc((size_t)(n ? n : 1), sizeof *tgt_ids);
    int *src_len = mmt_calloc((size_t)(n ? n : 1), sizeof *src_len);
    int *tgt_len = mmt_calloc((size_t)(n ? n : 1), sizeof *tgt_len);
    int rc = encode_lines(src_ids, src_len, &src, spm, src_path, st);
    if (rc == MMT_OK) rc = encode_lines(tgt_ids, tgt_len, &tgt, spm, tgt_path, st);

    // keep pairs with both sides non-empty and within max_len, counting the rest
    data_stats s = {.lines = n};
    char *keep = mmt_calloc((size_t)(n ? n : 1), 1);
    int64_t n_src = 0, n_tgt = 0;
    for (long i = 0; rc == MMT_OK && i < n; i++) {
        if (src_len[i] == 0 || tgt_len[i] == 0) {
            s.empty++;
        } else if (max_len > 0 && (src_len[i] > max_len || tgt_len[i] > max_len)) {
            s.too_long++;
        } else {
            keep[i] = 1;
            s.kept++;
            n_src += src_len[i];
            n_tgt += tgt_len[i];
        }
    }

    // concatenate the kept pairs
    if (rc == MMT_OK) {
        corpus_alloc(c, s.kept, n_src, n_tgt);
        long j = 0;
        c->src_off[0] = c->tgt_off[0] = 0;
        for (long i = 0; i < n; i++) {
            if (!keep[i]) continue;
            int64_t so = c->src_off[j], to = c->tgt_off[j];
            for (int t = 0; t < src_len[i]; t++)
                c->src_ids[so + t] = src_ids[i][t];
            for (int t = 0; t < tgt_len[i]; t++)
                c->tgt_ids[to + t] = tgt_ids[i][t];
            c->src_off[j + 1] = so + src_len[i];
            c->tgt_off[j + 1] = to + tgt_len[i];
            c->line[j++] = i;
        }
        s.src_tokens = (long)n_src;
        s.tgt_tokens = (long)n_tgt;
        if (stats) *stats = s;
    }

    for (long i = 0; i < n; i++) {
        free(src_ids[i]);
        free(tgt_ids[i]);
    }
    free(src_ids);
    free(tgt_ids);
    free(src_len);
    free(tgt_len);
    free(keep);
    data_lines_free(&src);
    data_lines_free(&tgt);
    return rc;
}

const char *data_stats_str(const data_stats *s, int max_len, char *buf, size_t cap) {
    snprintf(buf, cap,
             "%ld lines, %ld kept (%ld + %ld tokens), %ld dropped as empty, "
             "%ld as longer than %d tokens",
             s->lines, s->kept, s->src_tokens, s->tgt_tokens, s->empty, s->too_long, max_len);
    return buf;
}

/* ============================================================ token cache */

/* The cache file, in host byte order:
 *   "mmtcache", u32 version, u32 key length, the key's bytes,
 *   i64 n, number of source ids, number of target ids, the six data_stats,
 *   i64 src_off[n + 1], tgt_off[n + 1], line[n], i32 src_ids[], tgt_ids[],
 *   u64 FNV-1a 64 of everything after the key. */

/* Appends "tag=PATH size=N mtime=SEC.NSEC\n" for path to key. */
static int key_input(char *key, size_t cap, const char *tag, const char *path, mmt_status *st) {
    struct stat sb;
    if (stat(path, &sb) != 0) return mmt_fail(st, "%s: cannot stat: %s", path, strerror(errno));
    char *abs = realpath(path, NULL);
    size_t used = strlen(key);
    snprintf(key + used, cap - used, "%s=%s size=%lld mtime=%lld.%09ld\n", tag, abs ? abs : path,
             (long long)sb.st_size, (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
    free(abs);
    return MMT_OK;
}

char *data_cache_key(const char *src_path, const char *tgt_path, const spm_model *spm, int max_len,
                     mmt_status *st) {
    char *bytes = NULL;
    size_t nbytes = 0;
    if (spm_serialize(spm, &bytes, &nbytes, st) != MMT_OK) return NULL;
    uint64_t h = data_fnv1a64(bytes, nbytes, DATA_FNV_OFFSET);
    free(bytes);

    size_t cap = 2 * PATH_MAX + strlen(src_path) + strlen(tgt_path) + 256;
    char *key = mmt_malloc(cap);
    snprintf(key, cap, "mmt token cache v%u\n", DATA_CACHE_VERSION);
    if (key_input(key, cap, "src", src_path, st) != MMT_OK ||
        key_input(key, cap, "tgt", tgt_path, st) != MMT_OK) {
        free(key);
        return NULL;
    }
    size_t used = strlen(key);
    snprintf(key + used, cap - used, "spm=fnv1a64:%016llx\nmax_len=%d\n", (unsigned long long)h,
             max_len);
    return key;
}

/* Writes n bytes and folds them into the running checksum. */
static void put(FILE *f, const void *p, size_t n, uint64_t *h) {
    fwrite(p, 1, n, f);
    *h = data_fnv1a64(p, n, *h);
}

int data_cache_save(const pair_corpus *c, const data_stats *stats, const char *path,
                    const char *key, mmt_status *st) {
    data_atomic_file a;
    if (data_atomic_open(&a, path, st) != MMT_OK) return MMT_ERR;

    // header: magic, version, key (not in the checksum: read before it)
    uint32_t version = DATA_CACHE_VERSION, key_len = (uint32_t)strlen(key);
    fwrite(cache_magic, 1, sizeof cache_magic, a.f);
    fwrite(&version, sizeof version, 1, a.f);
    fwrite(&key_len, sizeof key_len, 1, a.f);
    fwrite(key, 1, key_len, a.f);

    // body: sizes, stats, offsets, lines, ids; then its checksum
    uint64_t h = DATA_FNV_OFFSET;
    data_stats s = stats ? *stats : (data_stats){0};
    int64_t head[9] = {c->n,    c->src_off[c->n], c->tgt_off[c->n], s.lines,     s.kept,
                       s.empty, s.too_long,       s.src_tokens,     s.tgt_tokens};
    size_t n1 = (size_t)c->n + 1;
    put(a.f, head, sizeof head, &h);
    put(a.f, c->src_off, n1 * sizeof *c->src_off, &h);
    put(a.f, c->tgt_off, n1 * sizeof *c->tgt_off, &h);
    put(a.f, c->line, (size_t)c->n * sizeof *c->line, &h);
    put(a.f, c->src_ids, (size_t)head[1] * sizeof *c->src_ids, &h);
    put(a.f, c->tgt_ids, (size_t)head[2] * sizeof *c->tgt_ids, &h);
    fwrite(&h, sizeof h, 1, a.f);
    return data_atomic_commit(&a, st);
}

/* A stale answer: the reason goes to st->msg, st->code stays MMT_OK. */
static int stale(mmt_status *st, const char *path, const char *why) {
    if (st) {
        snprintf(st->msg, sizeof st->msg, "%s: token cache stale: %s", path, why);
        st->code = MMT_OK;
    }
    return DATA_CACHE_STALE;
}

/* Reads n bytes into p and folds them into *h; 0 when the file ends early. */
static int get(FILE *f, void *p, size_t n, uint64_t *h) {
    if (fread(p, 1, n, f) != n) return 0;
    if (h) *h = data_fnv1a64(p, n, *h);
    return 1;
}

/* Offsets must run from 0 to total without going back. */
static int offsets_ok(const int64_t *off, long n, int64_t total) {
    if (off[0] != 0 || off[n] != total) return 0;
    for (long i = 0; i < n; i++)
        if (off[i + 1] < off[i]) return 0;
    return 1;
}

/* Reads the body after the key into c, checking sizes and the checksum. */
static int cache_read_body(pair_corpus *c, data_stats *stats, FILE *f, long body_bytes,
                           const char *path, mmt_status *st) {
    uint64_t h = DATA_FNV_OFFSET, want;
    int64_t head[9];
    if (!get(f, head, sizeof head, &h)) return stale(st, path, "truncated");
    int64_t n = head[0], n_src = head[1], n_tgt = head[2];
    int64_t expect = (int64_t)sizeof head + (3 * n + 2) * 8 + (n_src + n_tgt) * 4 + 8;
    if (n < 0 || n_src < 0 || n_tgt < 0 || n > (int64_t)1 << 40 || n_src > (int64_t)1 << 40 ||
        n_tgt > (int64_t)1 << 40 || expect != body_bytes)
        return stale(st, path, "sizes do not match the file (truncated or corrupt)");

    corpus_alloc(c, (long)n, n_src, n_tgt);
    size_t n1 = (size_t)n + 1;
    int whole = get(f, c->src_off, n1 * 8, &h) && get(f, c->tgt_off, n1 * 8, &h) &&
                get(f, c->line, (size_t)n * 8, &h) && get(f, c->src_ids, (size_t)n_src * 4, &h) &&
                get(f, c->tgt_ids, (size_t)n_tgt * 4, &h) && get(f, &want, 8, NULL);
    const char *why =
        !whole      ? "truncated"
        : h != want ? "checksum mismatch (corrupt)"
        : !offsets_ok(c->src_off, (long)n, n_src) || !offsets_ok(c->tgt_off, (long)n, n_tgt)
            ? "offsets out of order (corrupt)"
            : NULL;
    if (why) {
        pair_corpus_free(c);
        return stale(st, path, why);
    }
    if (stats) *stats = (data_stats){head[3], head[4], head[5], head[6], head[7], head[8]};
    return DATA_CACHE_HIT;
}

/* Names the first line where the key now differs from the stored one. */
static void first_diff(char *out, size_t cap, const char *now, const char *was) {
    size_t i = 0;
    while (now[i] && now[i] == was[i])
        i++;
    while (i > 0 && now[i - 1] != '\n')
        i--;
    int a = (int)strcspn(now + i, "\n"), b = (int)strcspn(was + i, "\n");
    snprintf(out, cap, "inputs changed: now \"%.*s\", cached \"%.*s\"", a > 300 ? 300 : a, now + i,
             b > 300 ? 300 : b, was + i);
}

int data_cache_load(pair_corpus *c, data_stats *stats, const char *path, const char *key,
                    mmt_status *st) {
    *c = (pair_corpus){0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return stale(st, path, "missing");
        return mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return mmt_fail(st, "%s: cannot stat: %s", path, strerror(errno));
    }

    // header: magic, version, then the key it was made with
    char magic[8];
    uint32_t version, key_len;
    int rc;
    if (!get(f, magic, 8, NULL) || !get(f, &version, 4, NULL) || !get(f, &key_len, 4, NULL)) {
        rc = stale(st, path, "truncated header");
    } else if (memcmp(magic, cache_magic, 8) != 0) {
        rc = stale(st, path, "not a token cache (wrong magic)");
    } else if (version != DATA_CACHE_VERSION) {
        char why[64];
        snprintf(why, sizeof why, "version %u, this build reads %u", version, DATA_CACHE_VERSION);
        rc = stale(st, path, why);
    } else if ((off_t)key_len > sb.st_size - 16) {
        rc = stale(st, path, "truncated key");
    } else {
        char *stored = mmt_malloc((size_t)key_len + 1);
        rc = get(f, stored, key_len, NULL) ? DATA_CACHE_HIT : DATA_CACHE_STALE;
        stored[key_len] = '\0';
        if (rc == DATA_CACHE_HIT && strcmp(stored, key) != 0) {
            char why[768];
            first_diff(why, sizeof why, key, stored);
            rc = stale(st, path, why);
        } else if (rc == DATA_CACHE_HIT) {
            long body = (long)(sb.st_size - 16 - (off_t)key_len);
            rc = cache_read_body(c, stats, f, body, path, st);
        } else {
            rc = stale(st, path, "truncated key");
        }
        free(stored);
    }
    if (ferror(f)) {
        pair_corpus_free(c);
        rc = mmt_fail(st, "%s: read error: %s", path, strerror(errno));
    }
    fclose(f);
    return rc;
}

int data_prepare(pair_corpus *c, const spm_model *spm, const char *src_path, const char *tgt_path,
                 int max_len, const char *cache_path, data_stats *stats, int *from_cache,
                 mmt_status *st) {
    if (from_cache) *from_cache = 0;
    char *key = NULL;
    if (cache_path) {
        key = data_cache_key(src_path, tgt_path, spm, max_len, st);
        if (!key) return MMT_ERR;
        int rc = data_cache_load(c, stats, cache_path, key, st);
        if (rc != DATA_CACHE_STALE) {
            if (rc == DATA_CACHE_HIT && from_cache) *from_cache = 1;
            free(key);
            return rc == DATA_CACHE_HIT ? MMT_OK : MMT_ERR;
        }
    }
    data_stats s;
    int rc = data_encode(c, spm, src_path, tgt_path, max_len, &s, st);
    if (rc == MMT_OK && stats) *stats = s;
    if (rc == MMT_OK && key) rc = data_cache_save(c, &s, cache_path, key, st);
    if (rc != MMT_OK) pair_corpus_free(c);
    free(key);
    return rc;
}

/* ============================================================== tokenizer */

/* Decompresses the gzip file in to the plain file out. */
static int gunzip_to(const char *in, const char *out, mmt_status *st) {
    size_t len;
    char *text = read_all(in, &len, st);
    if (!text) return MMT_ERR;
    FILE *f = fopen(out, "wb");
    if (!f) {
        free(text);
        return mmt_fail(st, "%s: cannot create: %s", out, strerror(errno));
    }
    int ok = fwrite(text, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    free(text);
    return ok ? MMT_OK : mmt_fail(st, "%s: write failed: %s", out, strerror(errno));
}

int data_train_tokenizer(const char *const *files, int nfiles, const char *model_prefix,
                         int vocab_size, const char *type, float coverage, int input_sentence_size,
                         mmt_status *st) {
    if (nfiles <= 0) return mmt_fail(st, "tokenizer training: no input files");
    char dir[] = "/tmp/mmt-spm-XXXXXX";
    char **plain = mmt_calloc((size_t)nfiles, sizeof *plain);
    const char **inputs = mmt_calloc((size_t)nfiles, sizeof *inputs);
    int made_dir = 0, rc = MMT_OK;

    // SentencePiece reads plain text: decompress the gzip inputs first
    for (int i = 0; rc == MMT_OK && i < nfiles; i++) {
        inputs[i] = files[i];
        int gz = data_is_gzip(files[i], st);
        if (gz == MMT_ERR) rc = MMT_ERR;
        if (gz != 1) continue;
        if (!made_dir && !mkdtemp(dir)) {
            rc = mmt_fail(st, "%s: cannot create a temporary folder: %s", dir, strerror(errno));
            break;
        }
        made_dir = 1;
        size_t cap = sizeof dir + 32;
        plain[i] = mmt_malloc(cap);
        snprintf(plain[i], cap, "%s/input%d.txt", dir, i);
        inputs[i] = plain[i];
        rc = gunzip_to(files[i], plain[i], st);
    }

    // one joint model over all inputs, seeded so it is reproducible
    if (rc == MMT_OK) {
        spm_train_options o = {0};
        o.inputs = inputs;
        o.n_inputs = nfiles;
        o.model_prefix = model_prefix;
        o.vocab_size = vocab_size;
        o.model_type = type;
        o.character_coverage = coverage;
        o.input_sentence_size = input_sentence_size;
        o.seed = 1;
        o.num_threads = mmt_get_threads();
        rc = spm_train(&o, st);
    }

    for (int i = 0; i < nfiles; i++) {
        if (plain[i]) unlink(plain[i]);
        free(plain[i]);
    }
    if (made_dir) rmdir(dir);
    free(plain);
    free(inputs);
    return rc;
}

/* =============================================================== batching */

typedef struct {
    int s, t; /* S and T of the pair */
    long i;   /* pair index */
} len_key;

static int cmp_len_key(const void *pa, const void *pb) {
    const len_key *a = pa, *b = pb;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static int imax(int a, int b) {
    return a > b ? a : b;
}

int batch_plan_build(batch_plan *p, const pair_corpus *c, int max_tokens, mmt_status *st) {
    *p = (batch_plan){0};
    if (max_tokens <= 0)
        return mmt_fail(st, "batching: max_tokens must be positive, got %d", max_tokens);

    // sort pair indices by (S, T, index): S = len_s + 1 (eos), T = len_t + 1 (bos/eos)
    long n = c->n;
    len_key *keys = mmt_malloc((size_t)(n ? n : 1) * sizeof *keys);
    for (long i = 0; i < n; i++) {
        keys[i].s = (int)(c->src_off[i + 1] - c->src_off[i]) + 1;
        keys[i].t = (int)(c->tgt_off[i + 1] - c->tgt_off[i]) + 1;
        keys[i].i = i;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_len_key);

    // cut runs while B * max(S_max, T_max) fits; a lone pair always fits
    p->n = n;
    p->max_tokens = max_tokens;
    p->rows = mmt_malloc((size_t)(n ? n : 1) * sizeof *p->rows);
    p->start = mmt_malloc((size_t)(n + 1) * sizeof *p->start);
    long nb = 0;
    int B = 0, S = 0, T = 0;
    for (long r = 0; r < n; r++) {
        int s2 = imax(S, keys[r].s), t2 = imax(T, keys[r].t);
        if (B > 0 && (long)(B + 1) * imax(s2, t2) > max_tokens) {
            p->max_B = imax(p->max_B, B);
            B = 0, s2 = keys[r].s, t2 = keys[r].t;
        }
        if (B == 0) p->start[nb++] = r;
        B++, S = s2, T = t2;
        p->max_S = imax(p->max_S, S);
        p->max_T = imax(p->max_T, T);
        p->rows[r] = keys[r].i;
    }
    p->max_B = imax(p->max_B, B);
    p->start[nb] = n;
    p->n_batches = nb;
    p->order = mmt_malloc((size_t)(nb ? nb : 1) * sizeof *p->order);
    batch_plan_sorted(p);
    free(keys);
    return MMT_OK;
}

void batch_plan_free(batch_plan *p) {
    free(p->rows);
    free(p->start);
    free(p->order);
    *p = (batch_plan){0};
}

void batch_plan_sorted(batch_plan *p) {
    for (long k = 0; k < p->n_batches; k++)
        p->order[k] = k;
}

void batch_plan_shuffle(batch_plan *p, uint64_t seed, int epoch) {
    // a generator of its own per (seed, epoch); Fisher-Yates from the sorted order
    uint64_t s = seed ^ (0xd1b54a32d192ed03ull * ((uint64_t)epoch + 1));
    batch_plan_sorted(p);
    for (long k = p->n_batches - 1; k > 0; k--) {
        long j = (long)(data_splitmix64(&s) % (uint64_t)(k + 1)); // bias < 2^-40
        long t = p->order[k];
        p->order[k] = p->order[j];
        p->order[j] = t;
    }
}

const long *batch_plan_rows(const batch_plan *p, long k, int *B) {
    MMT_ASSERT(k >= 0 && k < p->n_batches);
    long b = p->order[k];
    *B = (int)(p->start[b + 1] - p->start[b]);
    return p->rows + p->start[b];
}

void batch_buf_init(batch_buf *buf, int pad_id, int bos_id, int eos_id) {
    *buf = (batch_buf){.pad_id = pad_id, .bos_id = bos_id, .eos_id = eos_id};
}

void batch_buf_free(batch_buf *buf) {
    free(buf->src);
    free(buf->tgt_in);
    free(buf->tgt_out);
    *buf = (batch_buf){0};
}

int batch_fill(batch_buf *buf, const pair_corpus *c, const batch_plan *p, long k, mmt_batch *out) {
    int B;
    const long *rows = batch_plan_rows(p, k, &B);
    int S = 0, T = 0;
    for (int r = 0; r < B; r++) {
        S = imax(S, (int)(c->src_off[rows[r] + 1] - c->src_off[rows[r]]) + 1);
        T = imax(T, (int)(c->tgt_off[rows[r] + 1] - c->tgt_off[rows[r]]) + 1);
    }

    // grow the buffers to (B, S) and (B, T)
    size_t ns = (size_t)B * S, nt = (size_t)B * T;
    if (ns > buf->cap_src) {
        buf->src = mmt_realloc(buf->src, ns * sizeof *buf->src);
        buf->cap_src = ns;
    }
    if (nt > buf->cap_tgt) {
        buf->tgt_in = mmt_realloc(buf->tgt_in, nt * sizeof *buf->tgt_in);
        buf->tgt_out = mmt_realloc(buf->tgt_out, nt * sizeof *buf->tgt_out);
        buf->cap_tgt = nt;
    }

    // src = ids eos pad..; tgt_in = bos ids pad..; tgt_out = ids eos pad..
    int ntokens = 0;
    for (int r = 0; r < B; r++) {
        const int32_t *sid = c->src_ids + c->src_off[rows[r]];
        const int32_t *tid = c->tgt_ids + c->tgt_off[rows[r]];
        int ls = (int)(c->src_off[rows[r] + 1] - c->src_off[rows[r]]);
        int lt = (int)(c->tgt_off[rows[r] + 1] - c->tgt_off[rows[r]]);
        int *src = buf->src + (size_t)r * S;
        int *tin = buf->tgt_in + (size_t)r * T, *tout = buf->tgt_out + (size_t)r * T;
        for (int i = 0; i < S; i++)
            src[i] = i < ls ? sid[i] : i == ls ? buf->eos_id : buf->pad_id;
        tin[0] = buf->bos_id;
        for (int i = 1; i < T; i++)
            tin[i] = i <= lt ? tid[i - 1] : buf->pad_id;
        for (int i = 0; i < T; i++)
            tout[i] = i < lt ? tid[i] : i == lt ? buf->eos_id : buf->pad_id;
        ntokens += lt + 1;
    }
    *out = (mmt_batch){
        .B = B, .S = S, .T = T, .src = buf->src, .tgt_in = buf->tgt_in, .tgt_out = buf->tgt_out};
    return ntokens;
}
