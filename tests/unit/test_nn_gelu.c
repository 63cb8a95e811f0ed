/* The exact GELU's erf (nn_erff, nn_math.h) against double erf, and nn_gelu_forward (AVX-512
   lanes on native builds, plain C on PORTABLE ones) against that scalar function bit for bit,
   against the double formula 0.5 x (1 + erf(x / sqrt 2)) and against the same formula over
   glibc's erff (what it replaced and what PyTorch's goldens match), over a wide range of
   inputs: tiny and subnormal x, the branch point, the tails where erf rounds to +-1, huge x,
   +-inf and NaN; lengths that are not a multiple of 16 (masked tails) and threaded ones. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_math.h"
#include "test.h"
#include "util/util.h"

/* |got - want| in units in the last place of want as a float */
static double ulps(double want, float got)
{
    float w = fabsf((float)want);
    double u = (double)nextafterf(w, INFINITY) - w;
    return fabs((double)got - want) / (u > 0 ? u : 1e-45);
}

static void test_erf(void)
{
    double worst = 0;
    float at = 0;
    for (uint32_t b = 0; b < 0x7f800000u; b += 61) {
        float x;
        memcpy(&x, &b, sizeof x);
        for (int s = 0; s < 2; s++, x = -x) {
            double e = ulps(erf((double)x), nn_erff(x));
            if (e > worst) {
                worst = e;
                at = x;
            }
        }
    }
    CHECK(worst <= 1.1, "nn_erff within 1.1 ulp of erf over every 61st float (worst %.3f at %g)",
          worst, at);
    CHECK(nn_erff(INFINITY) == 1.0f && nn_erff(-INFINITY) == -1.0f && isnan(nn_erff(NAN)) &&
          nn_erff(0.0f) == 0.0f && signbit(nn_erff(-0.0f)) &&
          ulps(1e-30 * 1.1283791670955126, nn_erff(1e-30f)) <= 0.5 &&
          ulps(-1e-40 * 1.1283791670955126, nn_erff(-1e-40f)) <= 1,
          "nn_erff(+-inf) = +-1, NaN -> NaN, keeps the sign of 0, erf(tiny) = 2/sqrt(pi) x");
}

static float gelu_ref(float x)
{
    return 0.5f * x * (1.0f + nn_erff(x * (float)M_SQRT1_2));
}

static void test_gelu(size_t n)
{
    float *x = xmalloc(n * sizeof(float)), *y = xmalloc(n * sizeof(float));
    float *s = xmalloc(n * sizeof(float)), *g = xmalloc(n * sizeof(float));
    static const float special[] = { INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-30f, -1e-30f,
                                     1e-40f, -1e-40f, 1e30f, -1e30f, 3.4e38f, -3.4e38f,
                                     1.3120f, -1.3120f, 1.3121f, -1.3121f, 5.5f, -5.5f };
    int ns = (int)(sizeof special / sizeof *special);
    for (size_t i = 0; i < n; i++)
        x[i] = i < (size_t)ns ? special[i]
                              : (float)(ldexp((double)(i % 1999) / 1999.0 - 0.5, (int)(i % 13) - 6) * 20);
    nn_gelu_forward(y, x, n);
    int same = 1, close = 1, glibc = 1;
    for (size_t i = 0; i < n; i++) {
        s[i] = gelu_ref(x[i]);
        g[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        same &= memcmp(&y[i], &s[i], sizeof(float)) == 0;
        double xd = x[i], r = 0.5 * xd * (1.0 + erf(xd * M_SQRT1_2));
        /* 1 + erf rounds to a float near 1 (or 2): an error of a few ulp of 1 scaled by x/2 */
        double lim = 3e-7 * (fabs(r) + 0.5 * fabs(xd));
        if (isfinite(xd) && !(fabs((double)y[i] - r) <= lim) && close) {
            close = 0;
            printf("# x %.9g: gelu %.9g, double formula %.9g\n", xd, y[i], r);
        }
        if (!(isfinite(g[i]) ? fabs((double)y[i] - g[i]) <= lim
                             : isnan(g[i]) ? isnan(y[i]) : y[i] == g[i]))
            glibc = 0;
    }
    CHECK(same, "nn_gelu_forward n=%zu: the same bits as the scalar nn_erff formula", n);
    CHECK(close, "nn_gelu_forward n=%zu within 3e-7 (|y| + |x|/2) of the double formula", n);
    CHECK(glibc, "nn_gelu_forward n=%zu as close to the glibc erff formula", n);
    CHECK(y[0] == INFINITY && isnan(y[1]) && isnan(y[2]) && y[3] == 0 && y[9] == 1e30f &&
          y[10] == 0 && y[11] == 3.4e38f, "gelu(inf) = inf, gelu(-inf) = NaN as 0.5x(1 + erf) "
          "gives, NaN -> NaN, gelu(1e30) = 1e30, gelu(-1e30) = 0");
    free(x);
    free(y);
    free(s);
    free(g);
}

int main(void)
{
    (void)test_close; /* test.h helper unused here */
    test_erf();
    for (int threads = 2; threads >= 1; threads--) {
        nn_set_threads(threads);
        test_gelu(37);
        test_gelu(300017);
    }
    return test_done();
}
