/* A tiny TAP test harness: each CHECK or TEST result prints one 'ok N - name' or 'not ok N - name'
   line; main returns test_done(), non-zero when anything failed. Compare floats with
   test_close(): |a-b| <= atol + rtol*|b|, printing the worst index on failure. */
#ifndef TEST_H
#define TEST_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

static int test_n, test_failed;

static void test_result(int ok, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", ok ? "" : "not ", ++test_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!ok)
        test_failed++;
}

#define CHECK(cond, ...) test_result(!!(cond), __VA_ARGS__)

/* name: what is compared; got/want: n floats. Prints one diagnostic line on failure. */
static int test_close(const char *name, const float *got, const float *want, size_t n,
                      double atol, double rtol)
{
    size_t worst = 0;
    double worst_excess = -1;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs((double)want[i]);
        if (!(d <= lim)) {
            bad = 1;
            if (d - lim > worst_excess || isnan(d)) {
                worst_excess = d - lim;
                worst = i;
            }
        }
    }
    test_result(!bad, "%s (%zu values)", name, n);
    if (bad)
        printf("# %s: worst at [%zu]: got %.8g want %.8g\n", name, worst, got[worst], want[worst]);
    return !bad;
}

static int test_done(void)
{
    printf("1..%d\n", test_n);
    return test_failed != 0;
}
#endif
