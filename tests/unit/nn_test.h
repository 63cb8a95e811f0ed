/* Helpers shared by the test_nn*.c binaries: fixture loading from tests/fixtures/nn, buffers
   freed together, a double-precision reference conv2d and the finite-difference gradient
   check. Include after test.h. */
#ifndef NN_TEST_H
#define NN_TEST_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "io/npy.h"

#define FX_MAX 1024
static float *fx_ptrs[FX_MAX];
static int fx_n;

/* tests/fixtures/nn/<c>.<name>.npy as float32 (n values); exits on a missing fixture */
static float *fx(const char *c, const char *name, size_t *n)
{
    char path[256], msg[128];
    struct npy t;
    snprintf(path, sizeof path, "tests/fixtures/nn/%s.%s.npy", c, name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1 || t.dtype != NPY_F32) {
        printf("not ok - fixture %s: %s (run from the repo root)\n", path, msg);
        exit(1);
    }
    if (n != NULL)
        *n = (size_t)npy_count(&t);
    if (fx_n < FX_MAX)
        fx_ptrs[fx_n++] = t.data;
    return t.data;
}

static void fx_free_all(void)
{
    while (fx_n > 0)
        free(fx_ptrs[--fx_n]);
}

/* p, freed by fx_free_all; exits when p is NULL (out of memory) */
static float *fx_keep(float *p)
{
    if (p == NULL) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
    if (fx_n < FX_MAX)
        fx_ptrs[fx_n++] = p;
    return p;
}

/* a zeroed buffer freed by fx_free_all */
static float *fx_zeros(size_t n)
{
    return fx_keep(calloc(n ? n : 1, sizeof(float)));
}

/* double-precision reference conv2d (zero padding): out, and when dy is not NULL the
   gradients for dout = dy, added to dx and dw */
static inline void ref_conv(const struct nn_conv *g, const float *in, const float *w, const float *b,
                     const float *dy, float *out, float *dx, float *dw)
{
    int OHW = g->OH * g->OW;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->OC; o++)
            for (int oy = 0; oy < g->OH; oy++)
                for (int ox = 0; ox < g->OW; ox++) {
                    double acc = b ? b[o] : 0;
                    size_t oi = ((size_t)n * g->OC + o) * OHW + oy * g->OW + ox;
                    for (int c = 0; c < g->C; c++)
                        for (int kh = 0; kh < g->KH; kh++)
                            for (int kw = 0; kw < g->KW; kw++) {
                                int iy = oy * g->SH - g->PT + kh, ix = ox * g->SW - g->PL + kw;
                                if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W)
                                    continue;
                                size_t ii = (((size_t)n * g->C + c) * g->H + iy) * g->W + ix;
                                size_t wi = (((size_t)o * g->C + c) * g->KH + kh) * g->KW + kw;
                                acc += (double)in[ii] * w[wi];
                                if (dy != NULL) {
                                    dx[ii] += dy[oi] * w[wi];
                                    dw[wi] += dy[oi] * in[ii];
                                }
                            }
                    out[oi] = (float)acc;
                }
}

static uint64_t fd_state = 88172645463325252ull;
static uint64_t fd_rand(void)
{
    fd_state ^= fd_state << 13;
    fd_state ^= fd_state >> 7;
    fd_state ^= fd_state << 17;
    return fd_state;
}

static double fd_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Central differences of loss = sum(out * g) with respect to p (np values) at 20 random
   indices, eps 1e-2 in float32; fwd(ctx) recomputes out. Relative error
   |num - ana| / max(|num|, |ana|, floor) must stay below 1e-2, floor = max(0.05, 0.02 rms(ana)):
   the float32 rounding of the outputs a value touches (576 of them for a 64-channel 3x3 conv)
   puts ~5e-4 of noise into every numeric derivative. skip: optional predicate for indices
   near a kink. */
typedef void (*fd_fwd)(void *ctx);
static inline int fdcheck(const char *name, fd_fwd fwd, void *ctx, float *p, const float *ana,
                          size_t np, const float *out, const float *g, size_t nout,
                          int (*skip)(const float *p, size_t i))
{
    const float eps = 1e-2f;
    double worst = 0, ms = 0;
    for (size_t i = 0; i < np; i++)
        ms += (double)ana[i] * ana[i];
    double floor = 0.02 * sqrt(ms / (double)np);
    floor = floor > 0.05 ? floor : 0.05;
    size_t wi = 0;
    double wn = 0;
    for (int k = 0; k < 20; k++) {
        size_t i = fd_rand() % np;
        if (skip != NULL && skip(p, i))
            continue;
        float save = p[i];
        p[i] = save + eps;
        fwd(ctx);
        double lp = fd_dot(out, g, nout);
        p[i] = save - eps;
        fwd(ctx);
        double lm = fd_dot(out, g, nout);
        p[i] = save;
        double num = (lp - lm) / (2.0 * (double)eps), a = ana[i];
        double den = fabs(num) > fabs(a) ? fabs(num) : fabs(a);
        double e = fabs(num - a) / (den > floor ? den : floor);
        if (e > worst)
            worst = e, wi = i, wn = num;
    }
    fwd(ctx);
    CHECK(worst < 1e-2, "%s finite differences (worst rel err %.2g)", name, worst);
    if (worst >= 1e-2)
        printf("# %s: at [%zu] numeric %.6g analytic %.6g\n", name, wi, wn, ana[wi]);
    return worst < 1e-2;
}
#endif
