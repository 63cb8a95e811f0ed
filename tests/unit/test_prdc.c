/* Precision/recall and density/coverage against goldens from transcriptions of torch-fidelity's
   prc and clovaai's prdc (tests/fixtures/gen_prdc.py), closed forms (identical sets give 1,
   disjoint far sets 0), invariance to threads and to the order of tiles, a GEMM round-off
   trap that float32 alone would decide wrongly, and bad inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "io/npy.h"
#include "eval/prdc.h"
#include "test.h"

#define FIX "tests/fixtures/prdc/"

static struct npy load(const char *name)
{
    char path[256], msg[256];
    struct npy t;
    snprintf(path, sizeof path, FIX "%s", name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s (run tests/fixtures/gen_prdc.py)\n", path, msg);
        exit(1);
    }
    return t;
}

static void golden(const char *name)
{
    char b[64];
    struct npy re, ge, want, radii;
    snprintf(b, sizeof b, "%s_real.npy", name);
    re = load(b);
    snprintf(b, sizeof b, "%s_gen.npy", name);
    ge = load(b);
    snprintf(b, sizeof b, "%s_want.npy", name);
    want = load(b);
    snprintf(b, sizeof b, "%s_radii.npy", name);
    radii = load(b);
    int d = (int)re.shape[1];
    struct prdc_result r;
    char msg[256];
    int rc = prdc_compute(&r, re.data, re.shape[0], ge.data, ge.shape[0], d, 3, 5, msg,
                          sizeof msg);
    CHECK(rc == 0, "%s: prdc_compute %s", name, rc == 0 ? "" : msg);
    const double *w = want.data;
    double got[5] = {r.precision, r.recall, r.f_score, r.density, r.coverage};
    const char *names[5] = {"precision", "recall", "f_score", "density", "coverage"};
    for (int i = 0; i < 5; i++) {
        CHECK(fabs(got[i] - w[i]) <= 1e-12, "%s: %s", name, names[i]);
        if (fabs(got[i] - w[i]) > 1e-12)
            printf("# got %.17g want %.17g\n", got[i], w[i]);
    }
    double *rad = malloc(sizeof(double) * re.shape[0]);
    rc = prdc_radii(rad, re.data, re.shape[0], d, 3, msg, sizeof msg);
    int ok = rc == 0;
    const double *wr = radii.data;
    for (int64_t i = 0; ok && i < re.shape[0]; i++)
        ok = fabs(rad[i] - wr[i]) <= 1e-12 * (1 + wr[i]);
    CHECK(ok, "%s: k=3 radii vs torch.cdist(...).kthvalue(4) within 1e-12", name);
    float *rf = malloc(sizeof(float) * re.shape[0]), *wf = malloc(sizeof(float) * re.shape[0]);
    for (int64_t i = 0; i < re.shape[0]; i++) {
        rf[i] = (float)rad[i];
        wf[i] = (float)wr[i];
    }
    test_close("radii (float32 view, worst index on failure)", rf, wf, (size_t)re.shape[0], 0,
               1e-6);
    free(rf);
    free(wf);
    free(rad);
    npy_free(&re);
    npy_free(&ge);
    npy_free(&want);
    npy_free(&radii);
}

static void fill(float *x, int64_t n, int d, unsigned s, float off)
{
    for (int64_t i = 0; i < n * d; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 16777216.0 - 0.5) + off;
    }
}

/* identical sets: precision = recall = density = coverage = 1 (density needs symmetric exact
   distances); disjoint far sets: all 0; 1300 x 1100 rows cross tile edges */
static void closed_forms(void)
{
    int64_t n = 1300, m = 1100;
    int d = 24;
    float *a = malloc(sizeof(float) * n * d), *b = malloc(sizeof(float) * m * d);
    struct prdc_result r;
    char msg[256];
    fill(a, n, d, 7, 0);
    int rc = prdc_compute(&r, a, n, a, n, d, 3, 5, msg, sizeof msg);
    CHECK(rc == 0 && r.precision == 1 &&
              r.recall == 1 && r.f_score == 1 && r.density == 1 && r.coverage == 1,
          "identical sets: P = R = F = density = coverage = 1 (%g %g %g %g %g)", r.precision,
          r.recall, r.f_score, r.density, r.coverage);
    fill(b, m, d, 9, 1000);
    CHECK(prdc_compute(&r, a, n, b, m, d, 3, 5, msg, sizeof msg) == 0 && r.precision == 0 &&
              r.recall == 0 && r.f_score == 0 && r.density == 0 && r.coverage == 0,
          "disjoint far sets: all 0");
    /* threads: 1 and 2 give the same result */
    fill(b, m, d, 9, 0.05f);
    struct prdc_result r1, r2;
    nn_set_threads(1);
    prdc_compute(&r1, a, n, b, m, d, 3, 5, msg, sizeof msg);
    nn_set_threads(2);
    prdc_compute(&r2, a, n, b, m, d, 3, 5, msg, sizeof msg);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0, "1 and 2 threads agree (P %g, density %g)",
          r1.precision, r1.density);
    /* the order of the rows (so the tiles each pair falls in) changes nothing */
    float *ra = malloc(sizeof(float) * n * d), *rb = malloc(sizeof(float) * m * d);
    for (int64_t i = 0; i < n; i++)
        memcpy(ra + i * d, a + (n - 1 - i) * d, sizeof(float) * d);
    for (int64_t i = 0; i < m; i++)
        memcpy(rb + i * d, b + ((i * 7) % m) * d, sizeof(float) * d);  /* 7 coprime to 1100 */
    prdc_compute(&r2, ra, n, rb, m, d, 3, 5, msg, sizeof msg);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0, "rows reversed and permuted: the same result");
    free(ra);
    free(rb);
    free(a);
    free(b);
}

/* Points 0.25 apart on a line at |x| ~ 2e3: there the float32 GEMM's |x|^2 + |y|^2 - 2x.y errs
   by ~1, more than the squared distances (0.06 to 3), so only the exact float64 distances
   decide. The radii must come out exact, and membership "on the radius" (<=) counts. */
static void roundoff_trap(void)
{
    enum { N = 8, D = 4 };
    float real[N * D], gen[N * D];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) {
            real[i * D + k] = 1000.0f + (k == 0 ? (float)i * 0.25f : 0);
            gen[i * D + k] = 1000.0f + (k == 0 ? (float)i * 0.25f : 0) + (k == 1 ? 40.0f : 0);
        }
    struct prdc_result r;
    char msg[256];
    double rad[N];
    int rc = prdc_radii(rad, real, N, D, 3, msg, sizeof msg);
    CHECK(rc == 0 && rad[0] == 0.75 &&
              rad[4] == 0.5, "k=3 radii exact on a line at |x| ~ 1e3 (%.17g %.17g)", rad[0],
          rad[4]);
    /* gen = real shifted by 40 off the line: outside every ball */
    CHECK(prdc_compute(&r, real, N, gen, N, D, 3, 5, msg, sizeof msg) == 0 && r.precision == 0,
          "far shifted copy: precision 0");
    /* gen point 0 exactly at real 0's radius (0.75 along the line from real 0 is real 3) */
    memcpy(gen, real, sizeof gen);
    rc = prdc_compute(&r, real, N, gen, N, D, 3, 5, msg, sizeof msg);
    CHECK(rc == 0 &&
              r.precision == 1 && r.density == 1 && r.coverage == 1,
          "same line at |x| ~ 1e3: precision, density, coverage 1 (%g %g %g)", r.precision,
          r.density, r.coverage);
}

static void bad_inputs(void)
{
    float x[4 * 2] = {0, 0, 1, 0, 0, 1, 1, 1}, y[5 * 2] = {0, 0, 1, 0, 0, 1, 1, 1, 2, 2};
    struct prdc_result r;
    char msg[256] = "";
    CHECK(prdc_compute(&r, x, 4, y, 5, 2, 3, 5, msg, sizeof msg) == -1 &&
              strstr(msg, "real features: 4 samples: k=5 needs at least 6") != NULL,
          "N < k+1 for density: %s", msg);
    CHECK(prdc_compute(&r, y, 5, x, 3, 2, 3, 0, msg, sizeof msg) == -1 &&
              strstr(msg, "generated features: 3 samples: k=3 needs at least 4") != NULL,
          "N < k+1 for recall: %s", msg);
    y[7] = NAN;
    CHECK(prdc_compute(&r, y, 5, x, 4, 2, 3, 0, msg, sizeof msg) == -1 &&
              strcmp(msg, "real features: row 3 has a NaN or infinite value") == 0,
          "NaN: %s", msg);
}

int main(void)
{
    nn_set_threads(2);
    golden("small");
    golden("wide");
    golden("same");
    closed_forms();
    roundoff_trap();
    bad_inputs();
    return test_done();
}
