/*
 * common.h - what every mmt file uses: always-on assertions, checked
 * wrappers for allocation and file I/O that report the caller's file and
 * line, a status type with a message for library errors, and a levelled
 * logger on stderr.
 *
 * Two kinds of failure (see docs/ARCHITECTURE.md):
 *   - a bug: MMT_ASSERT prints file:line and the expression, then aborts;
 *     it stays on in release builds and is never used on user data;
 *   - bad input: library functions return MMT_ERR and fill an mmt_status
 *     with a message naming the input, the place and what was wrong; only
 *     the mains print it and exit non-zero.
 */
#ifndef MMT_COMMON_H
#define MMT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MMT_VERSION "0.1.0"

/* ---------------------------------------------------------------- asserts */

void mmt_assert_fail(const char *expr, const char *file, int line);
#define MMT_ASSERT(e) ((e) ? (void)0 : mmt_assert_fail(#e, __FILE__, __LINE__))

/* ----------------------------------------------------------------- status */

enum { MMT_OK = 0, MMT_ERR = -1 };

typedef struct {
    int code;        /* MMT_OK or MMT_ERR */
    char msg[1024];  /* what went wrong, naming the input */
} mmt_status;

/* Set st (if not NULL) to MMT_ERR with a printf-style message; returns MMT_ERR. */
int mmt_fail(mmt_status *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------- checked wrappers */

/* Each aborts with the caller's file:line and the reason on failure. */
void *mmt_malloc_at(size_t n, const char *file, int line);
void *mmt_calloc_at(size_t count, size_t size, const char *file, int line);
void *mmt_realloc_at(void *p, size_t n, const char *file, int line);
/* 64-byte aligned, for SIMD loops; release with free(). */
void *mmt_aligned_at(size_t n, const char *file, int line);
FILE *mmt_fopen_at(const char *path, const char *mode, const char *file, int line);
void mmt_fread_at(void *dst, size_t size, size_t count, FILE *f, const char *path,
                  const char *file, int line);
void mmt_fwrite_at(const void *src, size_t size, size_t count, FILE *f,
                   const char *path, const char *file, int line);
void mmt_fclose_at(FILE *f, const char *path, const char *file, int line);

#define mmt_malloc(n) mmt_malloc_at((n), __FILE__, __LINE__)
#define mmt_calloc(c, s) mmt_calloc_at((c), (s), __FILE__, __LINE__)
#define mmt_realloc(p, n) mmt_realloc_at((p), (n), __FILE__, __LINE__)
#define mmt_aligned(n) mmt_aligned_at((n), __FILE__, __LINE__)
#define mmt_fopen(p, m) mmt_fopen_at((p), (m), __FILE__, __LINE__)
#define mmt_fread(d, s, c, f, p) mmt_fread_at((d), (s), (c), (f), (p), __FILE__, __LINE__)
#define mmt_fwrite(d, s, c, f, p) mmt_fwrite_at((d), (s), (c), (f), (p), __FILE__, __LINE__)
#define mmt_fclose(f, p) mmt_fclose_at((f), (p), __FILE__, __LINE__)

/* Read a whole file into a NUL-terminated buffer (caller frees); NULL and
 * st filled when it cannot be read. */
char *mmt_read_file(const char *path, size_t *len, mmt_status *st);
/* The same for an open stream (standard input); name is used in messages. */
char *mmt_read_stream(FILE *f, const char *name, size_t *len, mmt_status *st);

/* ------------------------------------------------------------------- log */

enum { MMT_LOG_DEBUG, MMT_LOG_INFO, MMT_LOG_WARN, MMT_LOG_ERROR };
extern int mmt_log_level; /* messages below this level are dropped */
void mmt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) mmt_log(MMT_LOG_INFO, __VA_ARGS__)
#define log_warn(...) mmt_log(MMT_LOG_WARN, __VA_ARGS__)
#define log_error(...) mmt_log(MMT_LOG_ERROR, __VA_ARGS__)
#define log_debug(...) mmt_log(MMT_LOG_DEBUG, __VA_ARGS__)

/* Seconds on a monotonic clock. */
double mmt_now(void);

/* Set flush-to-zero and denormals-are-zero for the calling thread (and,
 * through OpenMP, for every worker): trained weights make denormals that
 * otherwise cost about a tenth of the speed. */
void mmt_set_ftz(void);

/* Warn (once) when OpenBLAS runs generic kernels on a CPU that has AVX2 or
 * AVX-512: its CPU detection fails on some virtual machines, and
 * OPENBLAS_CORETYPE then selects the right kernels. */
void mmt_blas_check(void);

/* Programs call this first thing in main: when OPENBLAS_CORETYPE is unset
 * and OpenBLAS fell back to generic kernels on a CPU with AVX-512 or AVX2,
 * set OPENBLAS_CORETYPE (SkylakeX or Haswell) and re-execute the program,
 * since OpenBLAS reads it only when it loads. An OPENBLAS_CORETYPE already
 * set is left as it is; MMT_BLAS_AUTO=0 turns this off. */
void mmt_blas_reexec(char **argv);

/* Threads for OpenMP and OpenBLAS together; n <= 0 keeps the default. */
void mmt_set_threads(int n);
int mmt_get_threads(void);

#endif
