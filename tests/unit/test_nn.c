/* nn core: the OpenBLAS kernel decision, SGEMM against a double triple loop, linear, conv2d
   and conv_transpose2d against PyTorch goldens (tests/fixtures/gen_nn.py), naive-loop
   references on shapes that exercise every work split, and finite-difference gradients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "test.h"
#include "nn_test.h"

#define ATOL 1e-5
#define RTOL 1e-4

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)((double)(fd_rand() >> 11) / 9007199254740992.0 * 2 - 1);
}

static void test_blas_decide(void)
{
    const char *want;
    CHECK(nn_blas_decide("Prescott", 1, 1, NULL, 0, &want) == NN_BLAS_REEXEC &&
              strcmp(want, "SkylakeX") == 0, "Prescott on AVX-512 re-execs as SkylakeX");
    CHECK(nn_blas_decide("Prescott", 0, 1, NULL, 0, &want) == NN_BLAS_REEXEC &&
              strcmp(want, "Haswell") == 0, "Prescott on AVX2 re-execs as Haswell");
    CHECK(nn_blas_decide("Sandybridge", 0, 1, NULL, 0, &want) == NN_BLAS_REEXEC &&
              strcmp(want, "Haswell") == 0, "Sandybridge on AVX2 re-execs as Haswell");
    CHECK(nn_blas_decide("Haswell", 1, 1, NULL, 0, &want) == NN_BLAS_REEXEC &&
              strcmp(want, "SkylakeX") == 0, "Haswell on AVX-512 re-execs as SkylakeX");
    CHECK(nn_blas_decide("Cooperlake", 1, 1, NULL, 0, &want) == NN_BLAS_OK && want == NULL,
          "Cooperlake on AVX-512 is kept");
    CHECK(nn_blas_decide("SkylakeX", 1, 1, NULL, 0, &want) == NN_BLAS_OK, "SkylakeX is kept");
    CHECK(nn_blas_decide("Zen", 0, 1, NULL, 0, &want) == NN_BLAS_OK, "Zen on AVX2 is kept");
    CHECK(nn_blas_decide("Prescott", 0, 0, NULL, 0, &want) == NN_BLAS_OK,
          "Prescott without AVX2 is kept");
    CHECK(nn_blas_decide("Prescott", 1, 1, "Prescott", 0, &want) == NN_BLAS_USER &&
              strcmp(want, "SkylakeX") == 0, "a user's OPENBLAS_CORETYPE is never overridden");
    CHECK(nn_blas_decide("Prescott", 1, 1, "", 0, &want) == NN_BLAS_REEXEC,
          "an empty OPENBLAS_CORETYPE counts as unset");
    CHECK(nn_blas_decide("Prescott", 1, 1, NULL, 1, &want) == NN_BLAS_LOOP,
          "no second re-exec");
    CHECK(nn_blas_decide("prescott", 1, 1, NULL, 0, &want) == NN_BLAS_REEXEC,
          "core names compare case-insensitively");
    int a512, a2;
    nn_cpu_features(&a512, &a2);
    CHECK(!a512 || a2, "AVX-512 implies AVX2 (cpuid read)");
    CHECK(strlen(nn_blas_corename()) > 0, "corename %s", nn_blas_corename());
}

static void test_sgemm(void)
{
    static const int shapes[][5] = {
        {1, 1, 1, 0, 0},     {7, 5, 3, 0, 0},     {13, 17, 19, 1, 0},  {33, 65, 31, 0, 1},
        {64, 3, 129, 1, 1},  {100, 257, 63, 0, 0}, {257, 100, 200, 1, 0}, {31, 513, 77, 0, 1},
        {300, 40, 301, 1, 1}, {5, 1000, 9, 0, 0},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = shapes[s][3],
            tb = shapes[s][4];
        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        float *A = malloc(sizeof(float) * (size_t)lda * (ta ? K : M));
        float *B = malloc(sizeof(float) * (size_t)ldb * (tb ? N : K));
        float *C = malloc(sizeof(float) * (size_t)ldc * M);
        float *R = malloc(sizeof(float) * (size_t)ldc * M);
        fill(A, (size_t)lda * (ta ? K : M), 1);
        fill(B, (size_t)ldb * (tb ? N : K), 1);
        fill(C, (size_t)ldc * M, 1);
        float alpha = 0.75f, beta = s % 2 ? 0.5f : 0.0f;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < ldc; j++) {
                if (j >= N) {
                    R[i * ldc + j] = C[i * ldc + j];
                    continue;
                }
                double acc = 0;
                for (int k = 0; k < K; k++)
                    acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                           (tb ? B[j * ldb + k] : B[k * ldb + j]);
                R[i * ldc + j] = (float)(alpha * acc + (beta != 0 ? beta * C[i * ldc + j] : 0));
            }
        nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        char name[64];
        snprintf(name, sizeof name, "sgemm %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
        test_close(name, C, R, (size_t)ldc * M, 1e-5, 1e-4);
        free(A), free(B), free(C), free(R);
    }
}

/* ---- linear ---- */
struct lin_ctx {
    float *out, *in, *w, *b;
    int N, IN, OUT;
};
static void lin_fwd(void *p)
{
    struct lin_ctx *c = p;
    nn_linear_forward(c->out, c->in, c->w, c->b, c->N, c->IN, c->OUT);
}

static void test_linear(const char *cs)
{
    float *d = fx(cs, "dims", NULL);
    int N = d[0], IN = d[1], OUT = d[2], bias = d[3];
    size_t nout = (size_t)N * OUT;
    struct lin_ctx c = {fx_zeros(nout), fx(cs, "x", NULL), fx(cs, "w", NULL),
                        bias ? fx(cs, "b", NULL) : NULL, N, IN, OUT};
    float *g = fx(cs, "g", NULL), *dx = fx_zeros((size_t)N * IN), *dw = fx_zeros((size_t)OUT * IN);
    float *db = fx_zeros(OUT);
    char name[80];
    lin_fwd(&c);
    snprintf(name, sizeof name, "%s forward", cs);
    test_close(name, c.out, fx(cs, "out", NULL), nout, ATOL, RTOL);
    nn_linear_backward(dx, dw, bias ? db : NULL, g, c.in, c.w, N, IN, OUT);
    snprintf(name, sizeof name, "%s dx", cs);
    test_close(name, dx, fx(cs, "dx", NULL), (size_t)N * IN, ATOL, RTOL);
    snprintf(name, sizeof name, "%s dw", cs);
    test_close(name, dw, fx(cs, "dw", NULL), (size_t)OUT * IN, ATOL, RTOL);
    if (bias) {
        snprintf(name, sizeof name, "%s db", cs);
        test_close(name, db, fx(cs, "db", NULL), OUT, ATOL, RTOL);
    }
    /* accumulates */
    nn_linear_backward(dx, NULL, NULL, g, c.in, c.w, N, IN, OUT);
    float *dx2 = fx(cs, "dx", NULL);
    for (int i = 0; i < N * IN; i++)
        dx2[i] *= 2;
    snprintf(name, sizeof name, "%s backward accumulates", cs);
    test_close(name, dx, dx2, (size_t)N * IN, ATOL, RTOL);
    snprintf(name, sizeof name, "%s dx", cs);
    fdcheck(name, lin_fwd, &c, c.in, fx(cs, "dx", NULL), (size_t)N * IN, c.out, g, nout, NULL);
    snprintf(name, sizeof name, "%s dw", cs);
    fdcheck(name, lin_fwd, &c, c.w, dw, (size_t)OUT * IN, c.out, g, nout, NULL);
    fx_free_all();
}

/* ---- conv2d and conv_transpose2d ---- */
/* big sums (the dw of a 64-channel conv reaches 60) round at their own scale */
static void conv_close(const char *name, const float *got, const float *want, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(want[i]) > m ? fabs(want[i]) : m;
    test_close(name, got, want, n, ATOL > 1e-6 * m ? ATOL : 1e-6 * m, RTOL);
}

struct conv_ctx {
    float *out, *scratch, *in, *w, *b;
    struct nn_conv g;
    int transpose;
};
static void conv_fwd(void *p)
{
    struct conv_ctx *c = p;
    if (c->transpose)
        nn_conv_transpose2d_forward(c->out, c->scratch, c->in, c->w, c->b, &c->g);
    else
        nn_conv2d_forward(c->out, c->scratch, c->in, c->w, c->b, &c->g);
}

static void conv_case(const char *cs, int transpose)
{
    float *d = fx(cs, "dims", NULL);
    struct conv_ctx c = {0};
    int bias;
    size_t nin, nw, nout;
    char name[96];
    if (transpose) {
        nn_convt_init(&c.g, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
        bias = d[8];
        c.scratch = fx_zeros(nn_convt_scratch(&c.g));
    } else {
        nn_conv_init_ex(&c.g, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9],
                        d[10], d[11], d[12]);
        bias = d[13];
        c.scratch = fx_zeros(nn_conv_scratch(&c.g));
    }
    c.transpose = transpose;
    c.in = fx(cs, "x", &nin);
    c.w = fx(cs, "w", &nw);
    c.b = bias ? fx(cs, "b", NULL) : NULL;
    float *want = fx(cs, "out", &nout), *g = fx(cs, "g", NULL);
    CHECK(nout == (size_t)c.g.N * c.g.OC * c.g.OH * c.g.OW, "%s output shape %dx%d", cs, c.g.OH,
          c.g.OW);
    c.out = fx_zeros(nout);
    conv_fwd(&c);
    snprintf(name, sizeof name, "%s forward", cs);
    conv_close(name, c.out, want, nout);
    float *dx = fx_zeros(nin), *dw = fx_zeros(nw), *db = fx_zeros(c.g.OC);
    if (transpose)
        nn_conv_transpose2d_backward(dx, dw, bias ? db : NULL, c.scratch, g, c.in, c.w, &c.g);
    else
        nn_conv2d_backward(dx, dw, bias ? db : NULL, c.scratch, g, c.in, c.w, &c.g);
    snprintf(name, sizeof name, "%s dx", cs);
    conv_close(name, dx, fx(cs, "dx", NULL), nin);
    snprintf(name, sizeof name, "%s dw", cs);
    conv_close(name, dw, fx(cs, "dw", NULL), nw);
    if (bias) {
        snprintf(name, sizeof name, "%s db", cs);
        test_close(name, db, fx(cs, "db", NULL), c.g.OC, ATOL, RTOL);
    }
    /* accumulation: a second backward doubles every gradient */
    if (transpose)
        nn_conv_transpose2d_backward(dx, dw, bias ? db : NULL, c.scratch, g, c.in, c.w, &c.g);
    else
        nn_conv2d_backward(dx, dw, bias ? db : NULL, c.scratch, g, c.in, c.w, &c.g);
    float *w2 = fx(cs, "dw", NULL);
    for (size_t i = 0; i < nw; i++)
        w2[i] *= 2;
    snprintf(name, sizeof name, "%s backward accumulates", cs);
    conv_close(name, dw, w2, nw);
    float *gx = fx(cs, "dx", NULL), *gw = fx(cs, "dw", NULL);
    snprintf(name, sizeof name, "%s dx", cs);
    fdcheck(name, conv_fwd, &c, c.in, gx, nin, c.out, g, nout, NULL);
    snprintf(name, sizeof name, "%s dw", cs);
    fdcheck(name, conv_fwd, &c, c.w, gw, nw, c.out, g, nout, NULL);
    if (bias) {
        snprintf(name, sizeof name, "%s db", cs);
        fdcheck(name, conv_fwd, &c, c.b, fx(cs, "db", NULL), c.g.OC, c.out, g, nout, NULL);
    }
    fx_free_all();
}

/* shapes that take the other work splits: several pixel blocks per image, one image on two
   threads, image groups with a remainder, 1x1 direct and grouped */
static void test_conv_splits(void)
{
    static const int cases[][13] = {
        /* N C H W OC KH KW SH SW PT PL PB PR */
        {1, 64, 40, 40, 8, 3, 3, 1, 1, 1, 1, 1, 1},
        {3, 130, 30, 30, 5, 3, 3, 1, 1, 1, 1, 1, 1},
        {7, 9, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1},
        {9, 16, 8, 8, 12, 3, 3, 2, 2, 0, 0, 1, 1},
        {5, 40, 6, 6, 10, 1, 1, 1, 1, 0, 0, 0, 0},
        {2, 20, 33, 31, 10, 1, 1, 1, 1, 0, 0, 0, 0},
        {2, 500, 17, 17, 3, 1, 7, 1, 1, 0, 3, 0, 3},
        /* Winograd: partial tiles, groups, blocks, pads 0/1/asymmetric */
        {2, 64, 9, 11, 64, 3, 3, 1, 1, 1, 1, 1, 1},
        {9, 64, 12, 12, 70, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 64, 33, 30, 64, 3, 3, 1, 1, 0, 0, 1, 1},
        {2, 96, 7, 7, 64, 3, 3, 1, 1, 0, 0, 0, 0},
        {3, 64, 40, 40, 64, 3, 3, 1, 1, 1, 1, 1, 1},
        {4, 64, 12, 13, 128, 3, 3, 1, 1, 2, 1, 0, 2},
        {3, 16, 8, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1},
        {16, 32, 4, 4, 40, 3, 3, 1, 1, 1, 1, 1, 1},
        {5, 20, 5, 3, 24, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 32, 17, 15, 32, 3, 3, 1, 1, 0, 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *d = cases[k];
        struct nn_conv g;
        nn_conv_init_ex(&g, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10],
                        d[11], d[12]);
        size_t nin = (size_t)g.N * g.C * g.H * g.W, nw = (size_t)g.OC * g.C * g.KH * g.KW;
        size_t nout = (size_t)g.N * g.OC * g.OH * g.OW;
        float *in = fx_zeros(nin), *w = fx_zeros(nw), *b = fx_zeros(g.OC), *dy = fx_zeros(nout);
        float *out = fx_zeros(nout), *ref = fx_zeros(nout), *dx = fx_zeros(nin);
        float *rdx = fx_zeros(nin), *dw = fx_zeros(nw), *rdw = fx_zeros(nw);
        float *scratch = fx_zeros(nn_conv_scratch(&g));
        fill(in, nin, 1), fill(w, nw, 0.2f), fill(b, g.OC, 1), fill(dy, nout, 1);
        ref_conv(&g, in, w, b, dy, ref, rdx, rdw);
        nn_conv2d_forward(out, scratch, in, w, b, &g);
        char name[128];
        snprintf(name, sizeof name, "conv N%d C%d %dx%d OC%d k%dx%d s%d forward vs loops", g.N,
                 g.C, g.H, g.W, g.OC, g.KH, g.KW, g.SH);
        test_close(name, out, ref, nout, 1e-4, 1e-4);
        nn_conv2d_backward(dx, dw, NULL, scratch, dy, in, w, &g);
        snprintf(name, sizeof name, "conv N%d C%d %dx%d OC%d k%dx%d s%d dx vs loops", g.N, g.C,
                 g.H, g.W, g.OC, g.KH, g.KW, g.SH);
        test_close(name, dx, rdx, nin, 1e-4, 1e-4);
        snprintf(name, sizeof name, "conv N%d C%d %dx%d OC%d k%dx%d s%d dw vs loops", g.N, g.C,
                 g.H, g.W, g.OC, g.KH, g.KW, g.SH);
        test_close(name, dw, rdw, nw, 1e-3, 1e-4);
        fx_free_all();
    }
}

/* shapes big enough that nn_linear_backward runs both GEMMs in one parallel region (and
   row panels for the wide-but-short one), against double loops; accumulates into dx, dw */
static void test_linear_parallel(void)
{
    static const int shapes[][3] = {{64, 512, 128}, {16, 2048, 1008}, {300, 70, 90}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], IN = shapes[s][1], OUT = shapes[s][2];
        float *x = malloc(sizeof(float) * N * IN), *w = malloc(sizeof(float) * OUT * IN);
        float *g = malloc(sizeof(float) * N * OUT), *dx = malloc(sizeof(float) * N * IN);
        float *dw = malloc(sizeof(float) * OUT * IN), *rx = malloc(sizeof(float) * N * IN);
        float *rw = malloc(sizeof(float) * OUT * IN);
        fill(x, (size_t)N * IN, 1), fill(w, (size_t)OUT * IN, 1), fill(g, (size_t)N * OUT, 1);
        fill(dx, (size_t)N * IN, 1), fill(dw, (size_t)OUT * IN, 1);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IN; i++) {
                double acc = dx[n * IN + i];
                for (int o = 0; o < OUT; o++)
                    acc += (double)g[n * OUT + o] * w[(size_t)o * IN + i];
                rx[n * IN + i] = (float)acc;
            }
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) {
                double acc = dw[(size_t)o * IN + i];
                for (int n = 0; n < N; n++)
                    acc += (double)g[n * OUT + o] * x[n * IN + i];
                rw[(size_t)o * IN + i] = (float)acc;
            }
        nn_linear_backward(dx, dw, NULL, g, x, w, N, IN, OUT);
        char name[80];
        snprintf(name, sizeof name, "linear %dx%d->%d backward dx (threads) vs loops", N, IN, OUT);
        test_close(name, dx, rx, (size_t)N * IN, 1e-4, 1e-4);
        snprintf(name, sizeof name, "linear %dx%d->%d backward dw (threads) vs loops", N, IN, OUT);
        test_close(name, dw, rw, (size_t)OUT * IN, 1e-4, 1e-4);
        free(x), free(w), free(g), free(dx), free(dw), free(rx), free(rw);
    }
}

int main(void)
{
    static const char *conv[] = {"conv_k3p1", "conv_k3s2", "conv_asym", "conv_k1",
                                 "conv_k4s2", "conv_1x7",  "conv_7x1",  "conv_n1",
                                 "conv_group", "conv_k1group", "conv_big", "conv_wino"};
    static const char *convt[] = {"convt_k4s2", "convt_n1", "convt_group", "convt_k3s1",
                                  "convt_wino"};
    nn_set_threads(2);
    test_blas_decide();
    test_sgemm();
    test_linear("linear");
    test_linear("linear_nob");
    test_linear("linear_big");
    test_linear_parallel();
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++)
        conv_case(conv[i], 0);
    for (size_t i = 0; i < sizeof convt / sizeof convt[0]; i++)
        conv_case(convt[i], 1);
    test_conv_splits();
    nn_conv_winograd(0);
    conv_case("conv_wino", 0);
    conv_case("convt_wino", 1);
    test_conv_splits();
    nn_conv_winograd(1);
    nn_set_threads(1);
    conv_case("conv_wino", 0);
    conv_case("conv_group", 0);
    conv_case("convt_group", 1);
    test_conv_splits();
    return test_done();
}
