/* safetensors.c - the safetensors reader and writer (format in safetensors.h). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER (100u << 20)

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_F64] = {"F64", 8},
    [ST_I32] = {"I32", 4}, [ST_I64] = {"I64", 8}, [ST_U8] = {"U8", 1},
    [ST_BF16] = {"BF16", 2},
};
enum { NUM_DTYPES = sizeof dtypes / sizeof dtypes[0] };

const char *st_dtype_name(st_dtype t) {
    MMT_ASSERT((unsigned)t < NUM_DTYPES);
    return dtypes[t].name;
}

size_t st_dtype_size(st_dtype t) {
    MMT_ASSERT((unsigned)t < NUM_DTYPES);
    return dtypes[t].size;
}

static int dtype_parse(const char *s) {
    for (int t = 0; t < NUM_DTYPES; t++)
        if (strcmp(s, dtypes[t].name) == 0) return t;
    return -1;
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(mmt_malloc(n), s, n);
}

int64_t st_numel(const st_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Bytes a shape of elements of esize needs, or SIZE_MAX when it overflows. */
static size_t shape_bytes(const int64_t *shape, int ndim, size_t esize) {
    size_t n = esize;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0) return 0;
        if (n > SIZE_MAX / (uint64_t)shape[d]) return SIZE_MAX;
        n *= (size_t)shape[d];
    }
    return n;
}

/* ================================================================== read */

/* A JSON number that is a non-negative integer exactly representable. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0 && v == floor(v))) return 0;
    *out = (uint64_t)v;
    return 1;
}

static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "",
                               (long long)shape[d]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
}

static int parse_metadata(st_file *f, const cJSON *meta, mmt_status *st) {
    if (!cJSON_IsObject(meta))
        return mmt_fail(st, "%s: \"__metadata__\" is not an object", f->path);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = mmt_calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_values = mmt_calloc((size_t)n, sizeof *f->meta_values);
    const cJSON *e;
    cJSON_ArrayForEach(e, meta) {
        if (!cJSON_IsString(e))
            return mmt_fail(st, "%s: __metadata__ \"%s\": expected a string value", f->path,
                            e->string);
        f->meta_keys[f->nmeta] = str_dup(e->string);
        f->meta_values[f->nmeta] = str_dup(e->valuestring);
        f->nmeta++;
    }
    return MMT_OK;
}

/* Fill t from the header entry j: dtype, shape, offsets; check each. */
static int parse_tensor(st_file *f, st_tensor *t, const cJSON *j, mmt_status *st) {
    const char *p = f->path, *name = t->name;
    if (!cJSON_IsObject(j))
        return mmt_fail(st, "%s: tensor \"%s\": expected an object", p, name);

    // dtype, one of the names in dtypes[]
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dt))
        return mmt_fail(st, "%s: tensor \"%s\": missing string \"dtype\"", p, name);
    int type = dtype_parse(dt->valuestring);
    if (type < 0)
        return mmt_fail(st, "%s: tensor \"%s\": unknown dtype \"%s\" (expected F32, F16, "
                        "F64, I32, I64, U8 or BF16)", p, name, dt->valuestring);
    t->dtype = (st_dtype)type;

    // shape, up to ST_MAX_DIMS non-negative integers
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    if (!cJSON_IsArray(sh))
        return mmt_fail(st, "%s: tensor \"%s\": missing array \"shape\"", p, name);
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > ST_MAX_DIMS)
        return mmt_fail(st, "%s: tensor \"%s\": %d dimensions, at most %d supported", p,
                        name, t->ndim, ST_MAX_DIMS);
    int d = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, sh) {
        uint64_t v;
        if (!json_uint(e, &v) || v > INT64_MAX)
            return mmt_fail(st, "%s: tensor \"%s\": shape[%d] is not a non-negative "
                            "integer", p, name, d);
        t->shape[d++] = (int64_t)v;
    }

    // data_offsets [begin, end] inside the data section
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_uint(cJSON_GetArrayItem(off, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(off, 1), &end))
        return mmt_fail(st, "%s: tensor \"%s\": \"data_offsets\" must be two non-negative "
                        "integers", p, name);
    if (begin > end || end > f->data_len)
        return mmt_fail(st, "%s: tensor \"%s\": data_offsets [%llu, %llu] outside the %zu "
                        "bytes of data (file truncated?)", p, name, (unsigned long long)begin,
                        (unsigned long long)end, f->data_len);
    t->offset = (size_t)begin;
    t->nbytes = (size_t)(end - begin);

    // shape and offsets must agree
    size_t need = shape_bytes(t->shape, t->ndim, dtypes[type].size);
    if (need != t->nbytes) {
        char shape[160];
        format_shape(shape, sizeof shape, t->shape, t->ndim);
        return mmt_fail(st, "%s: tensor \"%s\": shape %s of %s needs %zu bytes but "
                        "data_offsets [%llu, %llu] hold %zu", p, name, shape,
                        dtypes[type].name, need, (unsigned long long)begin,
                        (unsigned long long)end, t->nbytes);
    }
    return MMT_OK;
}

static int by_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* No two tensors share a name, and their ranges tile the data exactly. */
static int check_layout(const st_file *f, mmt_status *st) {
    if (f->n == 0) {
        if (f->data_len == 0) return MMT_OK;
        return mmt_fail(st, "%s: no tensors but %zu bytes of data", f->path, f->data_len);
    }
    const st_tensor **order = mmt_malloc((size_t)f->n * sizeof *order);
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    int rc = MMT_OK;

    // duplicate names (cJSON keeps both copies of a repeated key)
    qsort(order, (size_t)f->n, sizeof *order, by_name);
    for (int i = 1; i < f->n && rc == MMT_OK; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            rc = mmt_fail(st, "%s: tensor \"%s\" appears twice in the header", f->path,
                          order[i]->name);

    // ranges, in order of offset, each starting where the last ended
    qsort(order, (size_t)f->n, sizeof *order, by_offset);
    size_t expect = 0;
    for (int i = 0; i < f->n && rc == MMT_OK; i++) {
        if (order[i]->offset != expect)
            rc = mmt_fail(st, "%s: tensor \"%s\" starts at data byte %zu, expected %zu "
                          "(tensors must tile the data without gaps or overlaps)",
                          f->path, order[i]->name, order[i]->offset, expect);
        expect = order[i]->offset + order[i]->nbytes;
    }
    if (rc == MMT_OK && expect != f->data_len)
        rc = mmt_fail(st, "%s: %zu bytes of data follow the last tensor", f->path,
                      f->data_len - expect);
    free(order);
    return rc;
}

/* Parse the JSON header (hdr, hlen bytes) into f's tensors and metadata. */
static int parse_header(st_file *f, const char *hdr, size_t hlen, mmt_status *st) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root)
        return mmt_fail(st, "%s: header is not valid JSON (error near header byte %ld of "
                        "%zu)", f->path, end ? (long)(end - hdr) : -1L, hlen);
    int rc = MMT_OK;
    for (const char *c = end; c < hdr + hlen && rc == MMT_OK; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r')
            rc = mmt_fail(st, "%s: header has trailing bytes after its JSON object "
                          "(header byte %ld)", f->path, (long)(c - hdr));
    if (rc == MMT_OK && !cJSON_IsObject(root))
        rc = mmt_fail(st, "%s: header is not a JSON object", f->path);
    if (rc != MMT_OK) {
        cJSON_Delete(root);
        return rc;
    }

    int n = cJSON_GetArraySize(root);
    f->tensors = mmt_calloc((size_t)n, sizeof *f->tensors);
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            rc = parse_metadata(f, e, st);
        } else {
            st_tensor *t = &f->tensors[f->n++];
            t->name = str_dup(e->string);
            rc = parse_tensor(f, t, e, st);
        }
        if (rc != MMT_OK) break;
    }
    cJSON_Delete(root);
    return rc == MMT_OK ? check_layout(f, st) : rc;
}

/* Read the length, the header and the data of an open file; f->path set. */
static int read_parts(st_file *f, FILE *fp, mmt_status *st) {
    const char *p = f->path;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) return mmt_fail(st, "%s: %s", p, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;

    // 8-byte little-endian header length, no larger than the rest of the file
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, fp) != 8)
        return mmt_fail(st, "%s: %llu bytes, too short to hold the 8-byte header length", p,
                        (unsigned long long)size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > size - 8)
        return mmt_fail(st, "%s: header length %llu runs past the end of the file (%llu "
                        "bytes; truncated, or not a safetensors file)", p,
                        (unsigned long long)hlen, (unsigned long long)size);
    if (hlen > ST_MAX_HEADER)
        return mmt_fail(st, "%s: header length %llu is above the %u-byte limit", p,
                        (unsigned long long)hlen, ST_MAX_HEADER);

    // header, then the data section into an aligned buffer
    char *hdr = mmt_malloc((size_t)hlen + 1);
    f->data_len = (size_t)(size - 8 - hlen);
    f->data = mmt_aligned(f->data_len);
    int rc = MMT_OK;
    if (fread(hdr, 1, (size_t)hlen, fp) != hlen ||
        fread(f->data, 1, f->data_len, fp) != f->data_len)
        rc = mmt_fail(st, "%s: read error: %s", p, ferror(fp) ? strerror(errno) : "short read");
    hdr[hlen] = '\0';
    if (rc == MMT_OK) rc = parse_header(f, hdr, (size_t)hlen, st);
    free(hdr);
    return rc;
}

int st_read(st_file *f, const char *path, mmt_status *st) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
    f->path = str_dup(path);
    int rc = read_parts(f, fp, st);
    fclose(fp);
    if (rc != MMT_OK) st_close(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const void *st_data(const st_file *f, const st_tensor *t) {
    MMT_ASSERT(t->offset + t->nbytes <= f->data_len);
    return f->data + t->offset;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

void st_close(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->data);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* ================================================================= write */

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* referenced, not owned */
    size_t nbytes;
    size_t offset;    /* into the data section, set by layout_data */
} st_entry;

struct st_writer {
    int n, cap;
    st_entry *entries; /* (n), in the order added */
    int nmeta, meta_cap;
    char **meta_keys, **meta_values;
};

st_writer *st_writer_new(void) { return mmt_calloc(1, sizeof(st_writer)); }

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const void *data, size_t nbytes) {
    MMT_ASSERT((unsigned)dtype < NUM_DTYPES);
    MMT_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    MMT_ASSERT(strcmp(name, "__metadata__") != 0);
    for (int d = 0; d < ndim; d++) MMT_ASSERT(shape[d] >= 0);
    MMT_ASSERT(shape_bytes(shape, ndim, dtypes[dtype].size) == nbytes);
    MMT_ASSERT(data != NULL || nbytes == 0);
    for (int i = 0; i < w->n; i++) MMT_ASSERT(strcmp(w->entries[i].name, name) != 0);

    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->entries = mmt_realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    st_entry *e = &w->entries[w->n++];
    e->name = str_dup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = nbytes;
}

void st_writer_meta(st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = str_dup(value);
            return;
        }
    if (w->nmeta == w->meta_cap) {
        w->meta_cap = w->meta_cap ? 2 * w->meta_cap : 8;
        w->meta_keys = mmt_realloc(w->meta_keys, (size_t)w->meta_cap * sizeof(char *));
        w->meta_values = mmt_realloc(w->meta_values, (size_t)w->meta_cap * sizeof(char *));
    }
    w->meta_keys[w->nmeta] = str_dup(key);
    w->meta_values[w->nmeta] = str_dup(value);
    w->nmeta++;
}

/* Place the data of wider dtypes first (8-byte, then 4, 2, 1), as the
 * safetensors library does: each tensor then starts at a multiple of its
 * element size, so st_data pointers are aligned for their type. The
 * header keeps the order the tensors were added in. */
static void layout_data(st_writer *w) {
    size_t offset = 0;
    for (size_t width = 8; width >= 1; width /= 2)
        for (int i = 0; i < w->n; i++) {
            st_entry *e = &w->entries[i];
            if (dtypes[e->dtype].size != width) continue;
            e->offset = offset;
            offset += e->nbytes;
        }
}

/* The JSON header, padded with spaces to a multiple of 8 bytes so the data
 * that follows the 8-byte length starts 8-byte aligned. Caller frees. */
static char *build_header(const st_writer *w, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    if (w->nmeta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < w->nmeta; i++)
            cJSON_AddStringToObject(meta, w->meta_keys[i], w->meta_values[i]);
    }
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", dtypes[e->dtype].name);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)e->offset));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(e->offset + e->nbytes)));
    }
    char *json = cJSON_PrintUnformatted(root);
    MMT_ASSERT(json != NULL);
    cJSON_Delete(root);

    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    char *hdr = mmt_malloc(padded + 1);
    memcpy(hdr, json, n);
    memset(hdr + n, ' ', padded - n);
    hdr[padded] = '\0';
    cJSON_free(json);
    *len = padded;
    return hdr;
}

/* Write the whole file to fp; 0 on success, else errno of the failure. */
static int write_all(st_writer *w, FILE *fp) {
    size_t hlen;
    layout_data(w);
    char *hdr = build_header(w, &hlen);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    free(hdr);
    for (size_t width = 8; width >= 1 && ok; width /= 2)
        for (int i = 0; i < w->n && ok; i++) {
            const st_entry *e = &w->entries[i];
            if (dtypes[e->dtype].size == width && e->nbytes)
                ok = fwrite(e->data, 1, e->nbytes, fp) == e->nbytes;
        }
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    return ok ? 0 : (errno ? errno : EIO);
}

/* Make a rename inside the directory of path durable; best effort. */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0) n = 1; /* "/file" lives in "/" */
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int st_writer_save(st_writer *w, const char *path, mmt_status *st) {
    size_t cap = strlen(path) + 32;
    char *tmp = mmt_malloc(cap);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());

    // write and sync the temporary file
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        int err = errno;
        free(tmp);
        return mmt_fail(st, "%s: cannot create temporary file: %s", path, strerror(err));
    }
    errno = 0;
    int err = write_all(w, fp);
    if (fclose(fp) != 0 && !err) err = errno ? errno : EIO;

    // then swap it in over path
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return mmt_fail(st, "%s: write failed: %s", path, strerror(err));
    }
    free(tmp);
    sync_parent_dir(path);
    return MMT_OK;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}
