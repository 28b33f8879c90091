/*
 * test.h - the test runner's checks. Each CHECK prints one line, "ok" or
 * "FAIL", with its name; the runner ends with "N passed, N failed" and
 * exits non-zero when anything failed.
 */
#ifndef MMT_TEST_H
#define MMT_TEST_H

#include <stdio.h>

extern int test_passed, test_failed;
/* The folder of the runner, where the programs (mmt-train, ...) are built. */
extern char test_bin_dir[4096];

/* Record one check: cond true passes. The name is printf-style. */
void test_check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define CHECK(cond, ...) test_check((cond) ? 1 : 0, __VA_ARGS__)

/* Compare n floats: pass when |a - b| <= atol + rtol * |b| for every element;
 * the line reports the worst element. Returns 1 on pass. */
int check_close(const char *name, const float *a, const float *b, long n, double atol,
                double rtol);
int check_close_d(const char *name, const double *a, const double *b, long n, double atol,
                  double rtol);

/* 1 when files a and b both read and hold the same bytes. */
int test_same_file(const char *a, const char *b);

/* Where the runner was started: fixtures are read relative to the
 * repository root (the runner chdirs there). */
#define TEST_FIXTURE_DIR "tests/reference"

#endif
