/* common.c - assertions, checked wrappers, status messages and logging. */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

void mmt_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "%s:%d: internal error: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

int mmt_fail(mmt_status *st, const char *fmt, ...) {
    if (st) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
        st->code = MMT_ERR;
    }
    return MMT_ERR;
}

/* ------------------------------------------------------- checked wrappers */

static void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void die_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "error (%s:%d): ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *mmt_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *mmt_calloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *mmt_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

void *mmt_aligned_at(size_t n, const char *file, int line) {
    void *p = NULL;
    n = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        die_at(file, line, "out of memory allocating %zu aligned bytes", n);
    return p;
}

FILE *mmt_fopen_at(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) die_at(file, line, "cannot open %s (mode %s): %s", path, mode, strerror(errno));
    return f;
}

void mmt_fread_at(void *dst, size_t size, size_t count, FILE *f, const char *path,
                  const char *file, int line) {
    size_t got = fread(dst, size, count, f);
    if (got != count)
        die_at(file, line, "%s: short read (%zu of %zu items of %zu bytes)%s", path, got,
               count, size, ferror(f) ? ": read error" : ": file truncated");
}

void mmt_fwrite_at(const void *src, size_t size, size_t count, FILE *f, const char *path,
                   const char *file, int line) {
    if (fwrite(src, size, count, f) != count)
        die_at(file, line, "%s: write failed: %s", path, strerror(errno));
}

void mmt_fclose_at(FILE *f, const char *path, const char *file, int line) {
    if (fclose(f) != 0) die_at(file, line, "%s: close failed: %s", path, strerror(errno));
}

char *mmt_read_stream(FILE *f, const char *name, size_t *len, mmt_status *st) {
    size_t cap = 1 << 16, n = 0;
    char *buf = mmt_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = mmt_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        mmt_fail(st, "%s: read error", name);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *mmt_read_file(const char *path, size_t *len, mmt_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mmt_fail(st, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = mmt_read_stream(f, path, len, st);
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------- log */

int mmt_log_level = MMT_LOG_INFO;

void mmt_log(int level, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < mmt_log_level) return;
    va_list ap;
    va_start(ap, fmt);
    if (level != MMT_LOG_INFO) fprintf(stderr, "%s: ", names[level]);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double mmt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void mmt_set_ftz(void) {
#if defined(__SSE__)
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ | DAZ */
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

void openblas_set_num_threads(int n);
char *openblas_get_corename(void);

/* The kernels OpenBLAS should use on this CPU when it fell back to generic
 * ones; NULL when it did not or there is nothing better. */
static const char *blas_better_core(void) {
    const char *core = openblas_get_corename();
    static const char *const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington",
                                          "Nehalem", "Atom", "Katmai", "Coppermine"};
    int is_generic = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof generic[0]; i++)
        is_generic |= !strcmp(core, generic[i]);
#if defined(__x86_64__)
    if (is_generic && __builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (is_generic && __builtin_cpu_supports("avx2")) return "Haswell";
#endif
    return NULL;
}

void mmt_blas_reexec(char **argv) {
    const char *autoset = getenv("MMT_BLAS_AUTO");
    if (getenv("OPENBLAS_CORETYPE") || (autoset && !strcmp(autoset, "0"))) return;
    const char *want = blas_better_core();
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we are */
}

void mmt_blas_check(void) {
    static int done;
    if (done++) return;
    const char *want = blas_better_core();
    if (want)
        log_warn("OpenBLAS detected this CPU as %s and runs generic kernels: set "
                 "OPENBLAS_CORETYPE=%s for several times the speed",
                 openblas_get_corename(), want);
}

void mmt_set_threads(int n) {
    mmt_blas_check();
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int mmt_get_threads(void) { return omp_get_max_threads(); }
