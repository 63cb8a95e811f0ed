/* Metrics against numpy/scipy/torch goldens (tests/fixtures/gen_metrics.py) and closed forms:
   statistics vs np.cov, Frechet distance vs pytorch-fid's scipy.linalg.sqrtm route and the
   exact low-rank form for N < d, FID(X,X) = 0, diagonal and scaled covariances, .npz stats
   files as numpy writes them, Inception Score and KID vs torch-fidelity's code, the MT19937
   permutation vs numpy, and bad inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/inception.h"
#include "eval/metrics.h"
#include "eval/metrics_input.h"
#include "nn/nn.h"
#include "io/npy.h"
#include "util/rng.h"
#include "test.h"
#include "test_kernels.h"
#include "util/util.h"

#define FIX "tests/fixtures/metrics/"
#define BAD "tests/fixtures/bad/"

static struct npy load(const char *name)
{
    char path[256], msg[256];
    struct npy t;
    snprintf(path, sizeof path, FIX "%s", name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s (run tests/fixtures/gen_metrics.py)\n", path, msg);
        exit(1);
    }
    return t;
}

static int close_d(double got, double want, double atol, double rtol)
{
    return fabs(got - want) <= atol + rtol * fabs(want);
}

static void stats_of(const float *x, int64_t n, int d, double *mu, double *sigma)
{
    struct metrics_stats s;
    char msg[256];
    metrics_stats_init(&s, d);
    /* uneven pieces: the result must not depend on them */
    for (int64_t i = 0; i < n; i += 7)
        metrics_stats_add(&s, x + i * d, n - i < 7 ? n - i : 7);
    if (metrics_stats_get(&s, mu, sigma, msg, sizeof msg) == -1)
        printf("# %s\n", msg);
    metrics_stats_free(&s);
}

static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
    return m;
}

/* test_metrics' closed-form features, as gen_metrics.synth_features */
static float *synth_features(int n, int d, uint32_t t)
{
    float *x = xmalloc((size_t)n * d * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            double v = inception_synth_u((uint64_t)i * d + j, t) + 0.5 * inception_synth_u(j, t + 1);
            x[(size_t)i * d + j] = (float)(v * v);
        }
    return x;
}

static void test_stats_and_fid64(void)
{
    struct npy a = load("feat64_a.npy"), b = load("feat64_b.npy");
    struct npy mu = load("feat64_a_mu.npy"), sg = load("feat64_a_sigma.npy");
    struct npy want = load("fid_want.npy");
    const double *w = want.data;
    int d = 64;
    double mu1[64], s1[64 * 64], mu2[64], s2[64 * 64], fid;
    char msg[256];
    stats_of(a.data, a.shape[0], d, mu1, s1);
    stats_of(b.data, b.shape[0], d, mu2, s2);
    float muf[64], wantf[64];
    for (int i = 0; i < d; i++) {
        muf[i] = (float)mu1[i];
        wantf[i] = (float)((double *)mu.data)[i];
    }
    test_close("mean vs numpy (as float)", muf, wantf, d, 0, 0);
    CHECK(max_abs_diff(mu1, mu.data, d) < 1e-12, "mean vs numpy");
    CHECK(max_abs_diff(s1, sg.data, (size_t)d * d) < 1e-12, "covariance vs np.cov (ddof 1)");
    int rc = metrics_frechet(&fid, mu1, s1, mu2, s2, d, msg, sizeof msg);
    CHECK(rc == 0 && close_d(fid, w[0], 1e-9, 1e-9), "FID d=64 vs scipy sqrtm route: %.12g "
          "want %.12g", fid, w[0]);
    CHECK(rc == 0 && close_d(fid, w[1], 1e-9, 1e-9), "FID d=64 vs low-rank form");
    /* one full-rank side, one of rank 19: either order */
    stats_of(b.data, 20, d, mu2, s2);
    rc = metrics_frechet(&fid, mu1, s1, mu2, s2, d, msg, sizeof msg);
    CHECK(rc == 0 && close_d(fid, w[5], 1e-9, 1e-9), "FID full rank vs rank 19: %.12g want "
          "%.12g", fid, w[5]);
    rc = metrics_frechet(&fid, mu2, s2, mu1, s1, d, msg, sizeof msg);
    CHECK(rc == 0 && close_d(fid, w[5], 1e-9, 1e-9), "FID rank 19 vs full rank: %.12g", fid);
    npy_free(&a);
    npy_free(&b);
    npy_free(&mu);
    npy_free(&sg);
    npy_free(&want);
}

static void test_fid_singular(void)
{
    struct npy want = load("fid_want.npy"), head = load("y1_head.npy");
    const double *w = want.data;
    int d = 2048;
    size_t dd = (size_t)d * d;
    float *y1 = synth_features(100, d, 11), *y2 = synth_features(120, d, 13);
    double *m1 = xmalloc(d * sizeof(double)), *m2 = xmalloc(d * sizeof(double));
    double *s1 = xmalloc(dd * sizeof(double)), *s2 = xmalloc(dd * sizeof(double)), fid;
    char msg[256];
    int ok = 1;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 8; j++)
            ok &= y1[i * d + j] == ((float *)head.data)[i * 8 + j];
    CHECK(ok, "closed-form features match numpy");
    stats_of(y1, 100, d, m1, s1);
    stats_of(y2, 120, d, m2, s2);
    double t0 = util_now();
    int rc = metrics_frechet(&fid, m1, s1, m2, s2, d, msg, sizeof msg);
    printf("# FID d=2048 in %.2f s\n", util_now() - t0);
    CHECK(rc == 0 && close_d(fid, w[2], 1e-6, 1e-9), "FID N<d vs exact low-rank form: %.12g "
          "want %.12g", fid, w[2]);
    CHECK(rc == 0 && close_d(fid, w[4], 1e-6, 1e-6), "FID N<d vs scipy sqrtm route: %.12g "
          "want %.12g", fid, w[4]);
    rc = metrics_frechet(&fid, m1, s1, m1, s1, d, msg, sizeof msg);
    CHECK(rc == 0 && fabs(fid) < 1e-6, "FID(X,X) = 0 with N=100 < d: %.3g", fid);
    /* S2 = c^2 S1: tr sqrt(S1 S2) = c tr S1, FID = |dmu|^2 + (1-c)^2 tr S1 */
    double c = 1.7, tr = 0, dm = 0;
    for (size_t i = 0; i < dd; i++)
        s2[i] = c * c * s1[i];
    for (int i = 0; i < d; i++) {
        tr += s1[(size_t)i * d + i];
        dm += (m1[i] - m2[i]) * (m1[i] - m2[i]);
    }
    rc = metrics_frechet(&fid, m1, s1, m2, s2, d, msg, sizeof msg);
    double cf = dm + (1 - c) * (1 - c) * tr;
    CHECK(rc == 0 && close_d(fid, cf, 1e-6, 1e-9), "FID with S2 = c^2 S1: %.12g want %.12g",
          fid, cf);
    free(y1);
    free(y2);
    free(m1);
    free(m2);
    free(s1);
    free(s2);
    npy_free(&want);
    npy_free(&head);
}

static void test_fid_diagonal(void)
{
    int d = 50;
    double mu1[50], mu2[50], s1[2500] = { 0 }, s2[2500] = { 0 }, want = 0, fid;
    char msg[256];
    for (int i = 0; i < d; i++) {
        double a = 0.1 + i * 0.37, b = i % 3 == 0 ? 0 : 2.0 / (i + 1);
        mu1[i] = sin(i);
        mu2[i] = cos(i);
        s1[i * d + i] = a;
        s2[i * d + i] = b;
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
    }
    int rc = metrics_frechet(&fid, mu1, s1, mu2, s2, d, msg, sizeof msg);
    CHECK(rc == 0 && close_d(fid, want, 1e-10, 1e-10), "FID of diagonal covariances (some 0): "
          "%.12g want %.12g", fid, want);
    s1[0] = NAN;
    CHECK(metrics_frechet(&fid, mu1, s1, mu2, s2, d, msg, sizeof msg) == -1,
          "non-finite statistics rejected: %s", msg);
}

static void test_stats_files(void)
{
    struct npy sg = load("feat64_a_sigma.npy"), mu = load("feat64_a_mu.npy");
    static const char *const files[] = { FIX "stats64_compressed.npz", FIX "stats64_stored.npz",
                                         FIX "stats64_f32.npz" };
    char msg[256];
    for (int k = 0; k < 3; k++) {
        double *m, *s;
        int d;
        int rc = metrics_stats_load(files[k], &m, &s, &d, msg, sizeof msg);
        double tol = k == 2 ? 1e-6 : 0;
        CHECK(rc == 0 && d == 64 && max_abs_diff(m, mu.data, 64) <= tol &&
              max_abs_diff(s, sg.data, 64 * 64) <= tol, "%s loads: %s", files[k],
              rc ? msg : "ok");
        if (rc == 0) {
            free(m);
            free(s);
        }
    }
    /* round trip through our writer */
    char path[] = "/tmp/test_metrics_statsXXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    double *m, *s;
    int d;
    int rc = metrics_stats_save(path, mu.data, sg.data, 64, msg, sizeof msg);
    rc = rc ? rc : metrics_stats_load(path, &m, &s, &d, msg, sizeof msg);
    CHECK(rc == 0 && d == 64 && memcmp(m, mu.data, 64 * 8) == 0 &&
          memcmp(s, sg.data, 64 * 64 * 8) == 0, "statistics .npz round trip");
    if (rc == 0) {
        free(m);
        free(s);
    }
    unlink(path);
    static const char *const bad[] = { BAD "metrics_stats_mismatch.npz",
                                       BAD "metrics_stats_trunc.npz",
                                       FIX "feat64_a.npy" };
    for (int k = 0; k < 3; k++) {
        msg[0] = '\0';
        rc = metrics_stats_load(bad[k], &m, &s, &d, msg, sizeof msg);
        CHECK(rc == -1 && msg[0] != '\0', "%s rejected: %s", bad[k], msg);
    }
    npy_free(&sg);
    npy_free(&mu);
}

static void test_inception_score(void)
{
    struct npy lg = load("is_logits.npy"), want = load("is_want.npy");
    const double *w = want.data;
    static const int splits[3] = { 10, 10, 3 }, shuffle[3] = { 1, 0, 1 };
    char msg[256];
    double m, s;
    for (int k = 0; k < 3; k++) {
        int rc = metrics_inception_score(&m, &s, lg.data, lg.shape[0], 1008, splits[k],
                                         shuffle[k], 2020, msg, sizeof msg);
        CHECK(rc == 0 && close_d(m, w[2 * k], 1e-12, 1e-10) &&
              close_d(s, w[2 * k + 1], 1e-12, 1e-9), "IS splits %d shuffle %d vs torch-fidelity: "
              "%.10g +- %.10g want %.10g +- %.10g", splits[k], shuffle[k], m, s, w[2 * k],
              w[2 * k + 1]);
    }
    /* closed forms: uniform logits -> 1; one-hot rows, 6 distinct classes per split -> 6 */
    int N = 60, C = 1008;
    float *x = xcalloc((size_t)N * C, sizeof(float));
    int rc = metrics_inception_score(&m, &s, x, N, C, 10, 1, 2020, msg, sizeof msg);
    CHECK(rc == 0 && fabs(m - 1) < 1e-12 && fabs(s) < 1e-12, "IS of uniform predictions = 1");
    for (int i = 0; i < N; i++)
        x[(size_t)i * C + (i % 6) * 17] = 100.0f;
    rc = metrics_inception_score(&m, &s, x, N, C, 10, 0, 2020, msg, sizeof msg);
    CHECK(rc == 0 && fabs(m - 6) < 1e-9 && fabs(s) < 1e-9, "IS of one-hot predictions = "
          "distinct classes per split: %.12g", m);
    CHECK(metrics_inception_score(&m, &s, x, 9, C, 10, 1, 2020, msg, sizeof msg) == -1,
          "IS with N < splits rejected: %s", msg);
    free(x);
    npy_free(&lg);
    npy_free(&want);
}

static void test_kid(void)
{
    struct npy a = load("kid_a.npy"), b = load("kid_b.npy"), want = load("kid_want.npy");
    const double *w = want.data;
    char msg[256];
    double m, s;
    int rc = metrics_kid(&m, &s, a.data, a.shape[0], b.data, b.shape[0], 64, 10, 20, 2020, msg,
                         sizeof msg);
    CHECK(rc == 0 && close_d(m, w[0], 1e-6, 1e-5) && close_d(s, w[1], 1e-6, 1e-4),
          "KID 10 subsets of 20 vs torch-fidelity: %.8g +- %.8g want %.8g +- %.8g", m, s, w[0],
          w[1]);
    rc = metrics_kid(&m, &s, a.data, a.shape[0], b.data, b.shape[0], 64, 7, 60, 2020, msg,
                     sizeof msg);
    CHECK(rc == 0 && close_d(m, w[2], 1e-6, 1e-5) && close_d(s, w[3], 1e-6, 1e-4),
          "KID subset = all of the smaller set: %.8g want %.8g", m, w[2]);
    rc = metrics_kid(&m, &s, a.data, a.shape[0], a.data, a.shape[0], 64, 5, 30, 2020, msg,
                     sizeof msg);
    CHECK(rc == 0 && close_d(m, w[4], 1e-6, 1e-5) && close_d(s, w[5], 1e-6, 1e-4),
          "KID of a set with itself: %.8g want %.8g", m, w[4]);
    CHECK(metrics_kid(&m, &s, a.data, a.shape[0], b.data, b.shape[0], 64, 10, 61, 2020, msg,
                      sizeof msg) == -1 && strstr(msg, "subset") != NULL,
          "KID subset larger than a set rejected: %s", msg);
    /* hand-computed: m=2, d=1, x = {0, 1}, y = {1, 2}: k = (xy+1)^3 */
    float x2[2] = { 0, 1 }, y2[2] = { 1, 2 };
    double kxx = 2 * 1.0, kyy = 2 * 27.0, kxy = 1 + 1 + 8 + 27;
    double cf = (kxx + kyy) / 2 - 2 * kxy / 4;
    rc = metrics_kid(&m, &s, x2, 2, y2, 2, 1, 3, 2, 2020, msg, sizeof msg);
    CHECK(rc == 0 && close_d(m, cf, 1e-12, 1e-12) && s < 1e-12, "KID on 2x2 by hand: %.12g "
          "want %.12g", m, cf);
    npy_free(&a);
    npy_free(&b);
    npy_free(&want);
}

static void test_permutation(void)
{
    struct npy p = load("perm2020.npy");
    int64_t a[1010];
    struct mt19937 mt;
    mt_seed(&mt, 2020);
    mt_permutation(&mt, a, 10);
    mt_permutation(&mt, a + 10, 1000);
    CHECK(memcmp(a, p.data, sizeof a) == 0, "MT19937 permutations = numpy RandomState(2020)");
    npy_free(&p);
}

static void test_stats_errors(void)
{
    struct metrics_stats s;
    double mu[4], sg[16];
    float x[4] = { 1, 2, 3, 4 };
    char msg[256];
    metrics_stats_init(&s, 4);
    metrics_stats_add(&s, x, 1);
    CHECK(metrics_stats_get(&s, mu, sg, msg, sizeof msg) == -1, "N=1 rejected: %s", msg);
    metrics_stats_free(&s);
}

static void test_inputs(void)
{
    struct metrics_input in;
    char msg[256];
    static const char *const bad[] = { BAD "metrics_int32_feats.npy", BAD "metrics_rgba.npy",
                                       BAD "metrics_stats_trunc.npz", BAD "metrics_nonexistent",
                                       BAD "metrics_stats_mismatch.npz" };
    for (int k = 0; k < 5; k++) {
        msg[0] = '\0';
        int rc = metrics_input_open(&in, bad[k], msg, sizeof msg);
        CHECK(rc == -1 && msg[0] != '\0', "input %s rejected: %s", bad[k], msg);
        if (rc == 0)
            metrics_input_free(&in);
    }
    int rc = metrics_input_open(&in, FIX "stats64_compressed.npz", msg, sizeof msg);
    CHECK(rc == 0 && in.kind == METRICS_STATS && in.d == 64, "statistics input recognised");
    if (rc == 0)
        metrics_input_free(&in);
    rc = metrics_input_open(&in, FIX "feat64_a.npy", msg, sizeof msg);
    CHECK(rc == 0 && in.kind == METRICS_FEATURES && in.d == 64 && in.n == 200,
          "feature input recognised");
    if (rc == 0) {
        rc = metrics_input_features(&in, NULL, 50, INCEPTION_RESIZE_PYTORCH_FID, 2048, 0,
                                    NULL, NULL, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, "64") != NULL, "feature width vs --dims: %s", msg);
        rc = metrics_input_features(&in, NULL, 50, INCEPTION_RESIZE_PYTORCH_FID, 64, 1, NULL,
                                    NULL, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, "sFID") != NULL, "no sFID features in a cache: %s", msg);
        metrics_input_free(&in);
    }
    rc = metrics_input_open(&in, "tests/fixtures/inception/img32.npy", msg, sizeof msg);
    CHECK(rc == 0 && in.kind == METRICS_IMAGES && in.n == 3, "image input recognised");
    if (rc == 0)
        metrics_input_free(&in);
}

/* KID and FID of fixed 512-d features are the same bits on 1 and 2 threads (the Gram GEMMs
   are split into panels and the kernel sums added in an order set by the shape alone) */
static void test_threads(void)
{
    enum { N = 300, D = 512 };
    struct rng r;
    char msg[256];
    float *f = xmalloc((size_t)2 * N * D * sizeof(float));
    double kid[2][2], fid[2];
    rng_seed(&r, 11);
    for (size_t i = 0; i < (size_t)2 * N * D; i++)
        f[i] = rng_uniform(&r) * (i < (size_t)N * D ? 1.0f : 1.2f);
    for (int t = 0; t < 2; t++) {
        struct metrics_stats s[2];
        double *mu[2], *sg[2];
        nn_set_threads(t + 1);
        CHECK(metrics_kid(&kid[t][0], &kid[t][1], f, N, f + (size_t)N * D, N, D, 3, 250, 2020,
                          msg, sizeof msg) == 0, "KID on %d thread(s)", t + 1);
        for (int k = 0; k < 2; k++) {
            mu[k] = xmalloc(D * sizeof(double));
            sg[k] = xmalloc((size_t)D * D * sizeof(double));
            metrics_stats_init(&s[k], D);
            metrics_stats_add(&s[k], f + (size_t)k * N * D, N);
            metrics_stats_get(&s[k], mu[k], sg[k], msg, sizeof msg);
            metrics_stats_free(&s[k]);
        }
        CHECK(metrics_frechet(&fid[t], mu[0], sg[0], mu[1], sg[1], D, msg, sizeof msg) == 0,
              "FID on %d thread(s)", t + 1);
        for (int k = 0; k < 2; k++)
            free(mu[k]), free(sg[k]);
    }
    nn_set_threads(2);
    CHECK(memcmp(kid[0], kid[1], sizeof kid[0]) == 0, "KID: 1 thread == 2 threads, bitwise");
    CHECK(fid[0] == fid[1], "FID: 1 thread == 2 threads, bitwise (%.17g, %.17g)", fid[0], fid[1]);
    free(f);
}

int main(int argc, char **argv)
{
    nn_set_threads(2);
    if (argc > 1 && strcmp(argv[1], "--determinism") == 0) {
        test_kernel_banner();
        test_threads();
        return test_done();
    }
    test_threads();
    test_under_each_kernel(argv, "--determinism");
    test_stats_and_fid64();
    test_fid_singular();
    test_fid_diagonal();
    test_stats_files();
    test_inception_score();
    test_kid();
    test_permutation();
    test_stats_errors();
    test_inputs();
    return test_done();
}
