/* test_safetensors.c - round trip through the writer and reader, and the
 * reader's error on each kind of broken file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "test.h"

static char dir[64];

/* path of a scratch file called name, in a static buffer per slot */
static const char *scratch(const char *name) {
    static char buf[4][128];
    static int slot;
    char *p = buf[slot++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Write a file by hand: the given header length, the header, the data. */
static void write_raw(const char *path, uint64_t hlen, const char *hdr, const void *data,
                      size_t ndata) {
    FILE *f = mmt_fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    mmt_fwrite(len8, 1, 8, f, path);
    mmt_fwrite(hdr, 1, strlen(hdr), f, path);
    if (ndata) mmt_fwrite(data, 1, ndata, f, path);
    mmt_fclose(f, path);
}

/* ------------------------------------------------------------ round trip */

static void round_trip(void) {
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -1e-20f, 1e30f};
    double b[4] = {3.141592653589793, -1.0, 1e-300, 2.5};
    int32_t c[6] = {0, 1, -2, 2147483647, -2147483647 - 1, 42};
    int64_t d = -1234567890123ll;
    uint8_t e[5] = {0, 1, 127, 128, 255};
    uint16_t h[2] = {0x3c00, 0xc000}; /* F16 1.0, -2.0 */
    const int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[2] = {3, 2}, se[1] = {5}, sh[1] = {2},
                  sz[2] = {0, 4};

    // write: tensors of every width, a scalar, an empty tensor, metadata
    st_writer *w = st_writer_new();
    st_writer_add(w, "a.weight", ST_F32, 2, sa, a, sizeof a);
    st_writer_add(w, "b", ST_F64, 1, sb, b, sizeof b);
    st_writer_add(w, "c", ST_I32, 2, sc, c, sizeof c);
    st_writer_add(w, "scalar", ST_I64, 0, NULL, &d, sizeof d);
    st_writer_add(w, "bytes", ST_U8, 1, se, e, sizeof e);
    st_writer_add(w, "half", ST_F16, 1, sh, h, sizeof h);
    st_writer_add(w, "empty", ST_F32, 2, sz, NULL, 0);
    st_writer_add(w, "brain", ST_BF16, 1, sh, h, sizeof h);
    st_writer_meta(w, "format_version", "0");
    st_writer_meta(w, "config", "{\"D\": 16, \"note\": \"quotes \\\" and\\nnewlines\"}");
    st_writer_meta(w, "format_version", "1"); /* replaces */
    const char *path = scratch("rt.safetensors");
    mmt_status st = {0};
    CHECK(st_writer_save(w, path, &st) == MMT_OK, "safetensors: save %s %s", path, st.msg);
    st_writer_free(w);

    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "safetensors: no temporary file left behind");

    // read back
    st_file f;
    int rc = st_read(&f, path, &st);
    CHECK(rc == MMT_OK, "safetensors: read back %s", rc ? st.msg : "");
    if (rc) return;
    CHECK(f.n == 8, "safetensors: 8 tensors (got %d)", f.n);
    int aligned = 1;
    for (int i = 0; i < f.n; i++)
        aligned &= (uintptr_t)st_data(&f, &f.tensors[i]) % st_dtype_size(f.tensors[i].dtype) == 0;
    CHECK(aligned, "safetensors: every tensor's data aligned for its dtype");
    CHECK(strcmp(f.tensors[0].name, "a.weight") == 0 && strcmp(f.tensors[7].name, "brain") == 0,
          "safetensors: tensors kept in the order added");

    const st_tensor *t = st_find(&f, "a.weight");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
              memcmp(st_data(&f, t), a, sizeof a) == 0,
          "safetensors: F32 (2, 3) round trip");
    t = st_find(&f, "b");
    CHECK(t && t->dtype == ST_F64 && t->ndim == 1 && t->shape[0] == 4 &&
              memcmp(st_data(&f, t), b, sizeof b) == 0,
          "safetensors: F64 (4) round trip");
    t = st_find(&f, "c");
    CHECK(t && t->dtype == ST_I32 && st_numel(t) == 6 && memcmp(st_data(&f, t), c, sizeof c) == 0,
          "safetensors: I32 (3, 2) round trip");
    t = st_find(&f, "scalar");
    CHECK(t && t->dtype == ST_I64 && t->ndim == 0 && st_numel(t) == 1 &&
              *(const int64_t *)st_data(&f, t) == d,
          "safetensors: I64 scalar round trip");
    t = st_find(&f, "bytes");
    CHECK(t && t->dtype == ST_U8 && memcmp(st_data(&f, t), e, sizeof e) == 0,
          "safetensors: U8 round trip");
    t = st_find(&f, "half");
    CHECK(t && t->dtype == ST_F16 && memcmp(st_data(&f, t), h, sizeof h) == 0,
          "safetensors: F16 round trip");
    t = st_find(&f, "brain");
    CHECK(t && t->dtype == ST_BF16 && memcmp(st_data(&f, t), h, sizeof h) == 0,
          "safetensors: BF16 round trip");
    t = st_find(&f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0,
          "safetensors: empty (0, 4) tensor round trip");
    CHECK(st_find(&f, "missing") == NULL, "safetensors: st_find of a missing name is NULL");

    const char *cfg = st_meta(&f, "config");
    CHECK(st_meta(&f, "format_version") && strcmp(st_meta(&f, "format_version"), "1") == 0,
          "safetensors: metadata replaced by a second st_writer_meta");
    CHECK(cfg && strcmp(cfg, "{\"D\": 16, \"note\": \"quotes \\\" and\\nnewlines\"}") == 0,
          "safetensors: metadata with quotes and newlines round trip");
    CHECK(st_meta(&f, "absent") == NULL, "safetensors: absent metadata key is NULL");
    CHECK(f.nmeta == 2, "safetensors: 2 metadata entries (got %d)", f.nmeta);
    st_close(&f);

    // saving again replaces the file whole
    w = st_writer_new();
    st_writer_add(w, "b", ST_F64, 1, sb, b, sizeof b);
    CHECK(st_writer_save(w, path, &st) == MMT_OK, "safetensors: save over an existing file");
    st_writer_free(w);
    rc = st_read(&f, path, &st);
    CHECK(rc == MMT_OK && f.n == 1 && f.nmeta == 0 && st_find(&f, "b"),
          "safetensors: overwritten file holds only the new tensor");
    st_close(&f);
}

static void save_error(void) {
    st_writer *w = st_writer_new();
    double x = 1.0;
    const int64_t s1[1] = {1};
    st_writer_add(w, "x", ST_F64, 1, s1, &x, sizeof x);
    const char *path = scratch("no-such-dir/out.safetensors");
    mmt_status st = {0};
    int rc = st_writer_save(w, path, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path), "safetensors: save into a missing folder "
          "fails naming the file: %s", st.msg);
    st_writer_free(w);
}

/* ---------------------------------------------------------------- errors */

/* st_read of path must fail with a message naming path and containing what. */
static void expect_error(const char *label, const char *path, const char *what) {
    st_file f;
    mmt_status st = {0};
    int rc = st_read(&f, path, &st);
    CHECK(rc == MMT_ERR && strstr(st.msg, path) && strstr(st.msg, what),
          "safetensors: %s is rejected naming the file: %s", label, st.msg);
    CHECK(f.n == 0 && f.data == NULL, "safetensors: %s leaves the st_file empty", label);
    st_close(&f);
}

static void read_errors(void) {
    float data[6] = {0};
    const char *p;

    // a good file cut short: the last tensor's range runs past the data
    const char *good = scratch("rt.safetensors");
    size_t len;
    mmt_status st = {0};
    char *bytes = mmt_read_file(good, &len, &st);
    MMT_ASSERT(bytes != NULL && len > 16);
    p = scratch("truncated.safetensors");
    FILE *f = mmt_fopen(p, "wb");
    mmt_fwrite(bytes, 1, len - 4, f, p);
    mmt_fclose(f, p);
    free(bytes);
    expect_error("a truncated file", p, "truncated");

    p = scratch("tiny.safetensors");
    f = mmt_fopen(p, "wb");
    mmt_fwrite("abc", 1, 3, f, p);
    mmt_fclose(f, p);
    expect_error("a 3-byte file", p, "too short");

    p = scratch("hlen.safetensors");
    write_raw(p, 1000, "{}", NULL, 0);
    expect_error("a header length beyond the file", p, "runs past the end");

    p = scratch("json.safetensors");
    const char *bad = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3],";
    write_raw(p, strlen(bad), bad, data, sizeof data);
    expect_error("a header that is not JSON", p, "not valid JSON");

    p = scratch("array.safetensors");
    write_raw(p, 2, "[]", NULL, 0);
    expect_error("a header that is not an object", p, "not a JSON object");

    p = scratch("shape.safetensors");
    const char *mism = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], "
                       "\"data_offsets\": [0, 20]}}";
    write_raw(p, strlen(mism), mism, data, 20);
    expect_error("offsets that disagree with the shape", p, "\"w\": shape [2, 3] of F32");

    p = scratch("dtype.safetensors");
    const char *dt = "{\"w\": {\"dtype\": \"F8\", \"shape\": [6], \"data_offsets\": [0, 6]}}";
    write_raw(p, strlen(dt), dt, data, 6);
    expect_error("an unknown dtype", p, "\"w\": unknown dtype \"F8\"");

    p = scratch("outside.safetensors");
    const char *out = "{\"w\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [4, 12]}}";
    write_raw(p, strlen(out), out, data, 8);
    expect_error("offsets beyond the data", p, "outside the 8 bytes");

    p = scratch("overlap.safetensors");
    const char *ov = "{\"u\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
                     " \"v\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [2, 6]}}";
    write_raw(p, strlen(ov), ov, data, 6);
    expect_error("overlapping tensors", p, "\"v\" starts at data byte 2, expected 4");

    p = scratch("dup.safetensors");
    const char *dup = "{\"u\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]},"
                      " \"u\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}}";
    write_raw(p, strlen(dup), dup, data, 4);
    expect_error("a repeated tensor name", p, "\"u\" appears twice");

    p = scratch("meta.safetensors");
    const char *meta = "{\"__metadata__\": {\"k\": 3}}";
    write_raw(p, strlen(meta), meta, NULL, 0);
    expect_error("a metadata value that is not a string", p, "\"k\": expected a string");

    expect_error("a missing file", scratch("absent.safetensors"), "cannot open");
}

void suite_safetensors(void) {
    snprintf(dir, sizeof dir, "/tmp/mmt-test-st-XXXXXX");
    MMT_ASSERT(mkdtemp(dir) != NULL);
    round_trip();
    save_error();
    read_errors();

    // remove the scratch folder
    const char *names[] = {"rt", "truncated", "tiny", "hlen", "json", "array", "shape",
                           "dtype", "outside", "overlap", "dup", "meta"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", names[i]);
        unlink(scratch(name));
    }
    rmdir(dir);
}
