/* nn layers other than GEMM and convolution: norms, activations, pools, resampling, plumbing,
   softmax, attention, the timestep embedding, dropout, losses, and two compositions (conv ->
   group_norm -> silu; the UNet attention block), against PyTorch goldens and finite
   differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "util/rng.h"
#include "test.h"
#include "nn_test.h"

#define ATOL 1e-5
#define RTOL 1e-4

static char nm[128];
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)

/* ---- group_norm ---- */
struct gn_ctx {
    float *out, *mean, *rstd, *in, *gamma, *beta;
    int N, C, HW, G;
    float eps;
};
static void gn_fwd(void *p)
{
    struct gn_ctx *c = p;
    nn_group_norm_forward(c->out, c->mean, c->rstd, c->in, c->gamma, c->beta, c->N, c->C, c->HW,
                          c->G, c->eps);
}

static void test_gn(const char *cs)
{
    float *d = fx(cs, "dims", NULL);
    struct gn_ctx c = {0};
    size_t n;
    c.N = d[0], c.C = d[1], c.HW = d[2], c.G = d[3], c.eps = d[4];
    c.in = fx(cs, "x", &n);
    c.gamma = fx(cs, "gamma", NULL), c.beta = fx(cs, "beta", NULL);
    c.out = fx_zeros(n), c.mean = fx_zeros(c.N * c.G), c.rstd = fx_zeros(c.N * c.G);
    float *g = fx(cs, "g", NULL), *dx = fx_zeros(n), *dg = fx_zeros(c.C), *db = fx_zeros(c.C);
    gn_fwd(&c);
    test_close(NAME("%s forward (eps %g)", cs, c.eps), c.out, fx(cs, "out", NULL), n, ATOL, RTOL);
    nn_group_norm_backward(dx, dg, db, g, c.in, c.mean, c.rstd, c.gamma, c.N, c.C, c.HW, c.G);
    test_close(NAME("%s dx", cs), dx, fx(cs, "dx", NULL), n, ATOL, RTOL);
    test_close(NAME("%s dgamma", cs), dg, fx(cs, "dgamma", NULL), c.C, ATOL, RTOL);
    test_close(NAME("%s dbeta", cs), db, fx(cs, "dbeta", NULL), c.C, ATOL, RTOL);
    fdcheck(NAME("%s dx", cs), gn_fwd, &c, c.in, dx, n, c.out, g, n, NULL);
    fdcheck(NAME("%s dgamma", cs), gn_fwd, &c, c.gamma, dg, c.C, c.out, g, n, NULL);
    fdcheck(NAME("%s dbeta", cs), gn_fwd, &c, c.beta, db, c.C, c.out, g, n, NULL);
    fx_free_all();
}

static void test_bn(void)
{
    float *d = fx("bn", "dims", NULL);
    size_t n;
    float *x = fx("bn", "x", &n), *out = fx_zeros(n);
    nn_batch_norm_forward(out, x, fx("bn", "mean", NULL), fx("bn", "var", NULL),
                          fx("bn", "gamma", NULL), fx("bn", "beta", NULL), d[0], d[1], d[2], d[3]);
    test_close("batch_norm inference forward", out, fx("bn", "out", NULL), n, ATOL, RTOL);
    fx_free_all();
}

/* ---- activations ---- */
struct act_ctx {
    int k;
    float *out, *in;
    size_t n;
};
static void act_run(int k, float *out, const float *in, size_t n)
{
    switch (k) {
    case 0: nn_relu_forward(out, in, n); break;
    case 1: nn_silu_forward(out, in, n); break;
    case 2: nn_tanh_forward(out, in, n); break;
    case 3: nn_sigmoid_forward(out, in, n); break;
    default: nn_gelu_forward(out, in, n); break;
    }
}
static void act_fwd(void *p)
{
    struct act_ctx *c = p;
    act_run(c->k, c->out, c->in, c->n);
}
static int near_zero(const float *p, size_t i)
{
    return fabsf(p[i]) < 0.02f;
}

static void test_acts(void)
{
    static const char *names[] = {"relu", "silu", "tanh", "sigmoid", "gelu"};
    for (int k = 0; k < 5; k++) {
        char cs[32];
        snprintf(cs, sizeof cs, "act_%s", names[k]);
        struct act_ctx c = {k, NULL, NULL, 0};
        c.in = fx(cs, "x", &c.n);
        c.out = fx_zeros(c.n);
        float *g = fx(cs, "g", NULL), *dx = fx_zeros(c.n), *want = fx(cs, "out", NULL);
        act_fwd(&c);
        test_close(NAME("%s forward", names[k]), c.out, want, c.n, ATOL, RTOL);
        switch (k) {
        case 0: nn_relu_backward(dx, g, c.in, c.n); break;
        case 1: nn_silu_backward(dx, g, c.in, c.n); break;
        case 2: nn_tanh_backward(dx, g, c.out, c.n); break;
        case 3: nn_sigmoid_backward(dx, g, c.out, c.n); break;
        default: nn_gelu_backward(dx, g, c.in, c.n); break;
        }
        test_close(NAME("%s backward", names[k]), dx, fx(cs, "dx", NULL), c.n, ATOL, RTOL);
        fdcheck(NAME("%s", names[k]), act_fwd, &c, c.in, dx, c.n, c.out, g, c.n,
                k == 0 ? near_zero : NULL);
        /* in place */
        float *x2 = fx_zeros(c.n);
        memcpy(x2, c.in, sizeof(float) * c.n);
        act_run(k, x2, x2, c.n);
        test_close(NAME("%s forward in place", names[k]), x2, want, c.n, ATOL, RTOL);
        fx_free_all();
    }
    /* a large buffer takes the threaded path */
    size_t n = 300000;
    float *x = fx_zeros(n), *y = fx_zeros(n), *r = fx_zeros(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((int)(i % 2001) - 1000) / 100.0f;
    nn_silu_forward(y, x, n);
    for (size_t i = 0; i < n; i++)
        r[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])));
    test_close("silu threaded vs double formula", y, r, n, 1e-6, 1e-5);
    fx_free_all();
}

/* ---- pools and resampling ---- */
static void test_pools(void)
{
    static const int maxc[][3] = {{3, 2, 1}, {3, 2, 0}, {2, 2, 0}};
    static const int avgc[][3] = {{3, 1, 1}, {3, 2, 1}, {2, 2, 0}, {5, 3, 2}};
    int N = 2, C = 3, H = 9, W = 8;
    float *x = fx("pool", "x", NULL), *out = fx_zeros(N * C * H * W);
    char key[32];
    for (int i = 0; i < 3; i++) {
        int K = maxc[i][0], S = maxc[i][1], P = maxc[i][2];
        size_t n = (size_t)N * C * nn_pool_out(H, K, S, P) * nn_pool_out(W, K, S, P);
        size_t nw;
        snprintf(key, sizeof key, "max_%d%d%d", K, S, P);
        float *want = fx("pool", key, &nw);
        CHECK(n == nw, "max_pool2d k%d s%d p%d output size", K, S, P);
        nn_max_pool2d_forward(out, x, N, C, H, W, K, S, P);
        test_close(NAME("max_pool2d k%d s%d p%d", K, S, P), out, want, n, 0, 0);
    }
    for (int i = 0; i < 4; i++)
        for (int cip = 0; cip < 2; cip++) {
            int K = avgc[i][0], S = avgc[i][1], P = avgc[i][2];
            size_t n = (size_t)N * C * nn_pool_out(H, K, S, P) * nn_pool_out(W, K, S, P);
            size_t nw;
            snprintf(key, sizeof key, "avg_%d%d%d_%d", K, S, P, cip);
            float *want = fx("pool", key, &nw);
            CHECK(n == nw, "avg_pool2d k%d s%d p%d output size", K, S, P);
            nn_avg_pool2d_forward(out, x, N, C, H, W, K, S, P, cip);
            test_close(NAME("avg_pool2d k%d s%d p%d count_include_pad=%d", K, S, P, cip), out,
                       want, n, ATOL, RTOL);
        }
    fx_free_all();

    size_t n;
    x = fx("gap", "x", &n);
    float *y = fx_zeros(10), *g = fx("gap", "g", NULL), *dx = fx_zeros(n);
    nn_global_avg_pool_forward(y, x, 2, 5, 21);
    test_close("adaptive_avg_pool2d(1) forward", y, fx("gap", "out", NULL), 10, ATOL, RTOL);
    nn_global_avg_pool_backward(dx, g, 2, 5, 21);
    test_close("adaptive_avg_pool2d(1) backward", dx, fx("gap", "dx", NULL), n, ATOL, RTOL);
    fx_free_all();

    x = fx("up2", "x", &n);
    y = fx_zeros(4 * n), g = fx("up2", "g", NULL), dx = fx_zeros(n);
    nn_upsample2x_forward(y, x, 2, 3, 4, 5);
    test_close("upsample nearest x2 forward", y, fx("up2", "out", NULL), 4 * n, 0, 0);
    nn_upsample2x_backward(dx, g, 2, 3, 4, 5);
    test_close("upsample nearest x2 backward", dx, fx("up2", "dx", NULL), n, ATOL, RTOL);
    fx_free_all();

    x = fx("bil32", "x", NULL);
    y = fx_zeros(299 * 299);
    nn_bilinear_resize_forward(y, x, 1, 1, 32, 32, 299, 299);
    test_close("bilinear 32->299", y, fx("bil32", "out", NULL), 299 * 299, 1e-6, 1e-5);
    float *big = fx_zeros(500 * 500);
    for (int i = 0; i < 500 * 500; i++)
        big[i] = (float)((int64_t)i * 37 % 251) / 251.0f;
    nn_bilinear_resize_forward(y, big, 1, 1, 500, 500, 299, 299);
    test_close("bilinear 500->299", y, fx("bil500", "out", NULL), 299 * 299, 1e-6, 1e-5);
    x = fx("bilmix", "x", NULL);
    nn_bilinear_resize_forward(y, x, 2, 2, 7, 9, 5, 13);
    test_close("bilinear 7x9->5x13", y, fx("bilmix", "out", NULL), 4 * 5 * 13, 1e-6, 1e-5);
    nn_bilinear_resize_forward(y, x, 2, 2, 7, 9, 7, 9);
    test_close("bilinear same size is the identity", y, x, 4 * 7 * 9, 0, 0);
    fx_free_all();
}

/* ---- plumbing, softmax ---- */
struct sm_ctx {
    float *out, *in;
};
static void sm_fwd(void *p)
{
    struct sm_ctx *c = p;
    nn_softmax_forward(c->out, c->in, 6, 11);
}

static void test_plumbing(void)
{
    int N = 2, CA = 3, CB = 2, HW = 5;
    float a[30], b[20], out[50], da[30] = {0}, db[20] = {0};
    for (int i = 0; i < 30; i++)
        a[i] = i;
    for (int i = 0; i < 20; i++)
        b[i] = 100 + i;
    nn_concat_forward(out, a, b, N, CA, CB, HW);
    CHECK(out[0] == 0 && out[14] == 14 && out[15] == 100 && out[24] == 109 && out[25] == 15 &&
              out[40] == 110 && out[49] == 119, "concat puts a's channels first per image");
    nn_concat_backward(da, db, out, N, CA, CB, HW);
    int ok = 1;
    for (int i = 0; i < 30; i++)
        ok &= da[i] == a[i];
    for (int i = 0; i < 20; i++)
        ok &= db[i] == b[i];
    CHECK(ok, "concat backward splits the gradient");
    nn_add_forward(a, a, a, 30);
    CHECK(a[29] == 58 && a[1] == 2, "add in place");

    int R = 37, C = 70;
    float *x = fx_zeros(2 * R * C), *y = fx_zeros(2 * R * C);
    for (int i = 0; i < 2 * R * C; i++)
        x[i] = i;
    nn_transpose_forward(y, x, 2, R, C);
    ok = 1;
    for (int n = 0; n < 2; n++)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                ok &= y[(n * C + c) * R + r] == x[(n * R + r) * C + c];
    CHECK(ok, "transpose (2,37,70) -> (2,70,37)");
    fx_free_all();

    struct sm_ctx c = {fx_zeros(66), fx("softmax", "x", NULL)};
    float *g = fx("softmax", "g", NULL), *dx = fx_zeros(66);
    sm_fwd(&c);
    test_close("softmax forward", c.out, fx("softmax", "out", NULL), 66, ATOL, RTOL);
    nn_softmax_backward(dx, g, c.out, 6, 11);
    test_close("softmax backward", dx, fx("softmax", "dx", NULL), 66, ATOL, RTOL);
    fdcheck("softmax", sm_fwd, &c, c.in, dx, 66, c.out, g, 66, NULL);
    fx_free_all();
}

/* ---- attention ---- */
struct att_ctx {
    float *out, *att, *q, *k, *v;
    int N, T, C, heads;
};
static void att_fwd(void *p)
{
    struct att_ctx *c = p;
    nn_attention_forward(c->out, c->att, c->q, c->k, c->v, c->N, c->T, c->C, c->heads);
}

static void test_attention(const char *cs)
{
    float *d = fx(cs, "dims", NULL);
    struct att_ctx c = {0};
    size_t n;
    c.N = d[0], c.T = d[1], c.C = d[2], c.heads = d[3];
    size_t na = (size_t)c.N * c.heads * c.T * c.T;
    c.q = fx(cs, "q", &n), c.k = fx(cs, "k", NULL), c.v = fx(cs, "v", NULL);
    c.out = fx_zeros(n), c.att = fx_zeros(na);
    float *g = fx(cs, "g", NULL), *dq = fx_zeros(n), *dk = fx_zeros(n), *dv = fx_zeros(n);
    att_fwd(&c);
    test_close(NAME("%s forward", cs), c.out, fx(cs, "out", NULL), n, ATOL, RTOL);
    test_close(NAME("%s softmax weights", cs), c.att, fx(cs, "att", NULL), na, ATOL, RTOL);
    nn_attention_backward(dq, dk, dv, fx_zeros(na), g, c.q, c.k, c.v, c.att, c.N, c.T, c.C,
                          c.heads);
    test_close(NAME("%s dq", cs), dq, fx(cs, "dq", NULL), n, ATOL, RTOL);
    test_close(NAME("%s dk", cs), dk, fx(cs, "dk", NULL), n, ATOL, RTOL);
    test_close(NAME("%s dv", cs), dv, fx(cs, "dv", NULL), n, ATOL, RTOL);
    fdcheck(NAME("%s dq", cs), att_fwd, &c, c.q, dq, n, c.out, g, n, NULL);
    fdcheck(NAME("%s dk", cs), att_fwd, &c, c.k, dk, n, c.out, g, n, NULL);
    fdcheck(NAME("%s dv", cs), att_fwd, &c, c.v, dv, n, c.out, g, n, NULL);
    fx_free_all();
}

/* ---- timestep embedding ---- */
static void test_temb(void)
{
    float *t = fx("temb", "t", NULL), out[4 * 128];
    for (int flip = 0; flip < 2; flip++)
        for (int shift = 0; shift < 2; shift++) {
            char key[32];
            snprintf(key, sizeof key, "f%ds%d", flip, shift);
            nn_timestep_embedding(out, t, 4, 128, flip, shift, 10000, 1);
            test_close(NAME("timestep embedding flip=%d shift=%d at t=0,1,500,999", flip, shift),
                       out, fx("temb", key, NULL), 4 * 128, 1e-6, 1e-5);
        }
    nn_timestep_embedding(out, t, 4, 7, 0, 1, 10000, 2);
    test_close("timestep embedding odd dim, scale 2", out, fx("temb", "odd", NULL), 28, 1e-6,
               1e-5);
    /* t = 0 gives [sin 0 x64, cos 0 x64]; with shift 1, f_63 = 1e-4 so sin(a_63) at t=1 */
    nn_timestep_embedding(out, t, 2, 128, 0, 1, 10000, 1);
    int ok = 1;
    for (int i = 0; i < 64; i++)
        ok &= out[i] == 0 && out[64 + i] == 1;
    CHECK(ok, "embedding at t=0 is [0 x64, 1 x64]");
    CHECK(fabs(out[128 + 63] - 1e-4) < 1e-9 && fabs(out[128 + 0] - sin(1.0)) < 1e-7,
          "f_63 = 1e-4 (sin(t f_63) = %.9g at t=1), f_0 = 1", out[128 + 63]);
    fx_free_all();
}

/* ---- dropout ---- */
static void test_dropout(void)
{
    size_t n = 100000;
    float *x = fx_zeros(n), *y = fx_zeros(n), *m = fx_zeros(n), *y2 = fx_zeros(n);
    float *m2 = fx_zeros(n), *dx = fx_zeros(n);
    struct rng r;
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f + (float)(i % 7);
    rng_seed(&r, 42);
    nn_dropout_forward(y, m, x, n, 0.25f, &r);
    size_t zeros = 0;
    int vals = 1, prod = 1;
    for (size_t i = 0; i < n; i++) {
        zeros += m[i] == 0;
        vals &= m[i] == 0 || fabsf(m[i] - 1.0f / 0.75f) < 1e-6f;
        prod &= y[i] == x[i] * m[i];
    }
    CHECK(fabs((double)zeros / n - 0.25) < 0.01, "dropout p=0.25 drops %.4f", (double)zeros / n);
    CHECK(vals && prod, "dropout mask is 0 or 1/(1-p) and out = in * mask");
    rng_seed(&r, 42);
    nn_dropout_forward(y2, m2, x, n, 0.25f, &r);
    CHECK(memcmp(m, m2, sizeof(float) * n) == 0, "same seed, same mask");
    rng_seed(&r, 43);
    nn_dropout_forward(y2, m2, x, n, 0.25f, &r);
    CHECK(memcmp(m, m2, sizeof(float) * n) != 0, "another seed, another mask");
    nn_dropout_backward(dx, x, m, n);
    prod = 1;
    for (size_t i = 0; i < n; i++)
        prod &= dx[i] == x[i] * m[i];
    CHECK(prod, "dropout backward is dout * mask");
    fx_free_all();
}

/* ---- losses ---- */
static void test_losses(void)
{
    size_t n;
    float *a = fx("mse", "a", &n), *b = fx("mse", "b", NULL), *da = fx_zeros(n);
    float l = nn_mse_loss_forward(a, b, n);
    test_close("mse_loss forward", &l, fx("mse", "out", NULL), 1, ATOL, RTOL);
    nn_mse_loss_backward(da, a, b, n, 1.0f);
    test_close("mse_loss backward", da, fx("mse", "da", NULL), n, ATOL, RTOL);
    fx_free_all();
    for (int k = 0; k < 2; k++) {
        const char *cs = k ? "vae_b0.5" : "vae_b1.0";
        float beta = k ? 0.5f : 1.0f, got[3];
        int N = 3, D = 12, L = 4;
        float *xh = fx(cs, "xhat", NULL), *x = fx(cs, "x", NULL), *mu = fx(cs, "mu", NULL);
        float *lv = fx(cs, "logvar", NULL);
        float *dxh = fx_zeros(N * D), *dmu = fx_zeros(N * L), *dlv = fx_zeros(N * L);
        got[0] = nn_vae_loss_forward(&got[1], &got[2], xh, x, mu, lv, N, D, L, beta);
        test_close(NAME("%s loss, recon, kl", cs), got, fx(cs, "loss", NULL), 3, ATOL, RTOL);
        nn_vae_loss_backward(dxh, dmu, dlv, xh, x, mu, lv, N, D, L, beta);
        test_close(NAME("%s dxhat", cs), dxh, fx(cs, "dxhat", NULL), N * D, ATOL, RTOL);
        test_close(NAME("%s dmu", cs), dmu, fx(cs, "dmu", NULL), N * L, ATOL, RTOL);
        test_close(NAME("%s dlogvar", cs), dlv, fx(cs, "dlogvar", NULL), N * L, ATOL, RTOL);
        fx_free_all();
    }
}

/* ---- conv -> group_norm -> silu ---- */
struct cgs {
    struct nn_conv g;
    float *x, *w, *b, *gamma, *beta, *scratch, *h, *hn, *mean, *rstd, *out;
};
static void cgs_fwd(void *p)
{
    struct cgs *c = p;
    nn_conv2d_forward(c->h, c->scratch, c->x, c->w, c->b, &c->g);
    nn_group_norm_forward(c->hn, c->mean, c->rstd, c->h, c->gamma, c->beta, 2, 64, 36, 32, 1e-6f);
    nn_silu_forward(c->out, c->hn, 2 * 64 * 36);
}

static void test_cgs(void)
{
    struct cgs c;
    size_t n = 2 * 64 * 36;
    nn_conv_init(&c.g, 2, 3, 6, 6, 64, 3, 1, 1);
    c.x = fx("cgs", "x", NULL), c.w = fx("cgs", "w", NULL), c.b = fx("cgs", "b", NULL);
    c.gamma = fx("cgs", "gamma", NULL), c.beta = fx("cgs", "beta", NULL);
    c.scratch = fx_zeros(nn_conv_scratch(&c.g));
    c.h = fx_zeros(n), c.hn = fx_zeros(n), c.out = fx_zeros(n);
    c.mean = fx_zeros(64), c.rstd = fx_zeros(64);
    float *g = fx("cgs", "g", NULL), *dhn = fx_zeros(n), *dh = fx_zeros(n);
    float *dx = fx_zeros(2 * 3 * 36), *dw = fx_zeros(64 * 27), *db = fx_zeros(64);
    float *dg = fx_zeros(64), *dbt = fx_zeros(64);
    cgs_fwd(&c);
    test_close("conv->group_norm->silu forward", c.out, fx("cgs", "out", NULL), n, ATOL, RTOL);
    nn_silu_backward(dhn, g, c.hn, n);
    nn_group_norm_backward(dh, dg, dbt, dhn, c.h, c.mean, c.rstd, c.gamma, 2, 64, 36, 32);
    nn_conv2d_backward(dx, dw, db, c.scratch, dh, c.x, c.w, &c.g);
    test_close("conv->group_norm->silu dx", dx, fx("cgs", "dx", NULL), 2 * 3 * 36, ATOL, RTOL);
    test_close("conv->group_norm->silu dw", dw, fx("cgs", "dw", NULL), 64 * 27, ATOL, RTOL);
    test_close("conv->group_norm->silu db", db, fx("cgs", "db", NULL), 64, ATOL, RTOL);
    test_close("conv->group_norm->silu dgamma", dg, fx("cgs", "dgamma", NULL), 64, ATOL, RTOL);
    test_close("conv->group_norm->silu dbeta", dbt, fx("cgs", "dbeta", NULL), 64, ATOL, RTOL);
    fdcheck("conv->group_norm->silu dx", cgs_fwd, &c, c.x, dx, 2 * 3 * 36, c.out, g, n, NULL);
    fdcheck("conv->group_norm->silu dw", cgs_fwd, &c, c.w, dw, 64 * 27, c.out, g, n, NULL);
    fx_free_all();
}

/* ---- the UNet attention block: GN, tokens, q/k/v, attention, to_out, residual ---- */
#define AB_N 2
#define AB_C 64
#define AB_T 16
struct ab {
    float *x, *gamma, *beta, *w[4], *b[4];
    float *hn, *mean, *rstd, *tok, *q, *k, *v, *att, *o, *proj, *projt, *out;
};
static void ab_fwd(void *p)
{
    struct ab *c = p;
    size_t n = AB_N * AB_C * AB_T;
    nn_group_norm_forward(c->hn, c->mean, c->rstd, c->x, c->gamma, c->beta, AB_N, AB_C, AB_T, 32,
                          1e-6f);
    nn_transpose_forward(c->tok, c->hn, AB_N, AB_C, AB_T);
    nn_linear_forward(c->q, c->tok, c->w[0], c->b[0], AB_N * AB_T, AB_C, AB_C);
    nn_linear_forward(c->k, c->tok, c->w[1], c->b[1], AB_N * AB_T, AB_C, AB_C);
    nn_linear_forward(c->v, c->tok, c->w[2], c->b[2], AB_N * AB_T, AB_C, AB_C);
    nn_attention_forward(c->o, c->att, c->q, c->k, c->v, AB_N, AB_T, AB_C, 1);
    nn_linear_forward(c->proj, c->o, c->w[3], c->b[3], AB_N * AB_T, AB_C, AB_C);
    nn_transpose_forward(c->projt, c->proj, AB_N, AB_T, AB_C);
    nn_add_forward(c->out, c->projt, c->x, n);
}

static void test_attblock(void)
{
    static const char *nmz[] = {"q", "k", "v", "o"};
    struct ab c;
    size_t n = AB_N * AB_C * AB_T, na = AB_N * AB_T * AB_T, nw = AB_C * AB_C;
    char key[8];
    c.x = fx("attblk", "x", NULL), c.gamma = fx("attblk", "gamma", NULL);
    c.beta = fx("attblk", "beta", NULL);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "w%s", nmz[i]);
        c.w[i] = fx("attblk", key, NULL);
        snprintf(key, sizeof key, "b%s", nmz[i]);
        c.b[i] = fx("attblk", key, NULL);
    }
    c.hn = fx_zeros(n), c.mean = fx_zeros(64), c.rstd = fx_zeros(64), c.tok = fx_zeros(n);
    c.q = fx_zeros(n), c.k = fx_zeros(n), c.v = fx_zeros(n), c.att = fx_zeros(na);
    c.o = fx_zeros(n), c.proj = fx_zeros(n), c.projt = fx_zeros(n), c.out = fx_zeros(n);
    ab_fwd(&c);
    test_close("attention block forward", c.out, fx("attblk", "out", NULL), n, ATOL, RTOL);

    float *g = fx("attblk", "g", NULL), *dx = fx_zeros(n), *dproj = fx_zeros(n);
    float *dO = fx_zeros(n), *dq = fx_zeros(n), *dk = fx_zeros(n), *dv = fx_zeros(n);
    float *dtok = fx_zeros(n), *dhn = fx_zeros(n), *dg = fx_zeros(64), *dbt = fx_zeros(64);
    float *dw[4], *db[4];
    for (int i = 0; i < 4; i++)
        dw[i] = fx_zeros(nw), db[i] = fx_zeros(AB_C);
    memcpy(dx, g, sizeof(float) * n); /* residual */
    nn_transpose_forward(dproj, g, AB_N, AB_C, AB_T);
    nn_linear_backward(dO, dw[3], db[3], dproj, c.o, c.w[3], AB_N * AB_T, AB_C, AB_C);
    nn_attention_backward(dq, dk, dv, fx_zeros(na), dO, c.q, c.k, c.v, c.att, AB_N, AB_T, AB_C, 1);
    nn_linear_backward(dtok, dw[0], db[0], dq, c.tok, c.w[0], AB_N * AB_T, AB_C, AB_C);
    nn_linear_backward(dtok, dw[1], db[1], dk, c.tok, c.w[1], AB_N * AB_T, AB_C, AB_C);
    nn_linear_backward(dtok, dw[2], db[2], dv, c.tok, c.w[2], AB_N * AB_T, AB_C, AB_C);
    nn_transpose_forward(dhn, dtok, AB_N, AB_T, AB_C);
    nn_group_norm_backward(dx, dg, dbt, dhn, c.x, c.mean, c.rstd, c.gamma, AB_N, AB_C, AB_T, 32);
    test_close("attention block dx", dx, fx("attblk", "dx", NULL), n, ATOL, RTOL);
    test_close("attention block dgamma", dg, fx("attblk", "dgamma", NULL), 64, ATOL, RTOL);
    test_close("attention block dbeta", dbt, fx("attblk", "dbeta", NULL), 64, ATOL, RTOL);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "dw%s", nmz[i]);
        test_close(NAME("attention block %s", key), dw[i], fx("attblk", key, NULL), nw, ATOL,
                   RTOL);
        snprintf(key, sizeof key, "db%s", nmz[i]);
        test_close(NAME("attention block %s", key), db[i], fx("attblk", key, NULL), AB_C, ATOL,
                   RTOL);
    }
    fdcheck("attention block dx", ab_fwd, &c, c.x, dx, n, c.out, g, n, NULL);
    fdcheck("attention block dwv", ab_fwd, &c, c.w[2], dw[2], nw, c.out, g, n, NULL);
    fx_free_all();
}

/* torch's output size, floor((H + 2P - K) / S) + 1, and none when the window does not fit */
static void test_pool_out(void)
{
    CHECK(nn_pool_out(299, 3, 2, 0) == 149 && nn_pool_out(35, 3, 1, 1) == 35 &&
              nn_pool_out(8, 3, 2, 0) == 3 && nn_pool_out(3, 3, 2, 0) == 1 &&
              nn_pool_out(1, 3, 1, 1) == 1,
          "pool output sizes as torch");
    CHECK(nn_pool_out(2, 3, 2, 0) == 0 && nn_pool_out(1, 3, 1, 0) == 0 &&
              nn_pool_out(0, 3, 2, 1) == 0,
          "pool output size 0 when the window is larger than the padded input");
}

int main(void)
{
    test_pool_out();
    for (int threads = 2; threads >= 1; threads--) {
        nn_set_threads(threads);
        printf("# threads %d\n", threads);
        test_gn("gn_eps6");
        test_gn("gn_eps5");
        test_gn("gn_c128");
        test_bn();
        test_acts();
        test_pools();
        test_plumbing();
        test_attention("attn_h1");
        test_attention("attn_h4");
        test_attention("attn_n1");
        test_temb();
        test_dropout();
        test_losses();
        test_cgs();
        test_attblock();
    }
    return test_done();
}
