/* main.c - the test runner: runs every suite, prints one line per check,
 * and ends with "N passed, N failed"; exits 1 when any check failed. */
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "suites.h"
#include "test.h"

int test_passed, test_failed;
char test_bin_dir[4096] = ".";

void test_check(int cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", cond ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (cond)
        test_passed++;
    else
        test_failed++;
}

static int close_report(const char *name, double worst, long at, double a, double b, long n,
                        int bad) {
    test_check(!bad, "%s: %ld elements, worst |diff| %.3g at %ld (%.8g vs %.8g)", name, n,
               worst, at, a, b);
    return !bad;
}

int check_close(const char *name, const float *a, const float *b, long n, double atol,
                double rtol) {
    double worst = 0.0;
    long at = 0;
    int bad = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) bad = 1;
        if (d > worst || d != d) worst = d, at = i;
    }
    return close_report(name, worst, at, n ? a[at] : 0, n ? b[at] : 0, n, bad);
}

int test_same_file(const char *a, const char *b) {
    mmt_status st = {0};
    size_t na = 0, nb = 0;
    char *x = mmt_read_file(a, &na, &st), *y = mmt_read_file(b, &nb, &st);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

int check_close_d(const char *name, const double *a, const double *b, long n, double atol,
                  double rtol) {
    double worst = 0.0;
    long at = 0;
    int bad = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= atol + rtol * fabs(b[i]))) bad = 1;
        if (d > worst || d != d) worst = d, at = i;
    }
    return close_report(name, worst, at, n ? a[at] : 0, n ? b[at] : 0, n, bad);
}

static const struct {
    const char *name;
    void (*run)(void);
} suites[] = {
#define SUITE(name) {#name, suite_##name},
#include "suites.def"
#undef SUITE
};

/* Fixtures are named relative to the repository root: when started from
 * elsewhere, move there (the runner lives in BUILD/ under the root). */
static void chdir_to_root(const char *argv0) {
    char path[PATH_MAX];
    if (!realpath(argv0, path)) return;
    snprintf(test_bin_dir, sizeof test_bin_dir, "%s", path);
    dirname(test_bin_dir);
    if (access(TEST_FIXTURE_DIR, F_OK) == 0) return;
    char *root = dirname(dirname(path));
    if (chdir(root) != 0) fprintf(stderr, "cannot change to %s\n", root);
}

int main(int argc, char **argv) {
    chdir_to_root(argv[0]);
    /* argv[1], if given, runs only suites whose name contains it */
    const char *only = argc > 1 ? argv[1] : NULL;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (only && !strstr(suites[i].name, only)) continue;
        printf("# %s\n", suites[i].name);
        suites[i].run();
    }
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
