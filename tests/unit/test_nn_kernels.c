/* nn core kernels that the Inception network shares: the 3x3 max and average pools (PyTorch
   goldens, loops, and the exact roundings the network's features depend on) on the serial
   plane entries and the threaded ops; im2col on both layouts against loops; the 1x7 / 7x1 convs by Winograd F(2,7) (threaded
   through nn_conv2d_forward, prepared through nn_conv2d_forward_wino, and the serial
   (C,N,H,W) entry with ReLU) against a double-precision loop and the im2col path. And the
   UNet's F(4x4) conv with its neighbours' elementwise ops in its transforms
   (nn_wino4_forward_fused) against those ops apart, bitwise, and its weight gradient
   (nn_wino4_dw) against a float64 loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_math.h"
#include "nn/nn_wino4.h"
#include "io/npy.h"
#include "test.h"
#include "nn_test.h"

static char nm[200];
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)

static uint64_t rng_state = 88172645463325252ull;

static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
        x[i] = scale * (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1);
    }
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* ---- 3x3 pools ---- */
/* max_pool2d by loops, padding -inf */
static void loop_max(float *y, const float *x, int n, int H, int W, int K, int S, int P)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    for (int p = 0; p < n; p++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                float m = -INFINITY;
                for (int a = i * S - P; a < i * S - P + K; a++)
                    for (int b = j * S - P; b < j * S - P + K; b++)
                        if (a >= 0 && a < H && b >= 0 && b < W && x[(p * H + a) * W + b] > m)
                            m = x[(p * H + a) * W + b];
                y[(p * OH + i) * OW + j] = m;
            }
}

/* avg_pool2d(3, 1, 1) as the Inception network has always computed it: row sums of 3, then
   column sums of 3, a missing neighbour added as 0, divided by the count */
static void loop_avg3(float *y, const float *x, int n, int H, int W, int cip)
{
    for (int p = 0; p < n; p++, x += H * W, y += H * W)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float r[3];
                for (int k = 0; k < 3; k++) {
                    int a = i - 1 + (k == 0 ? 1 : k == 1 ? 0 : 2);
                    const float *q = x + a * W + j;
                    r[k] = a < 0 || a >= H ? 0.0f
                                           : q[0] + (j > 0 ? q[-1] : 0.0f) + (j < W - 1 ? q[1] : 0.0f);
                }
                int ch = 1 + (i > 0) + (i < H - 1), cw = 1 + (j > 0) + (j < W - 1);
                y[i * W + j] = (r[0] + r[1] + r[2]) / (float)(cip ? 9 : ch * cw);
            }
}

static void test_pools(void)
{
    /* PyTorch goldens (tests/fixtures/gen_nn.py): x (2,3,9,8) */
    size_t n, nw;
    float *x = fx("pool", "x", &n), *y = fx_zeros(n);
    static const int maxc[][3] = {{3, 2, 1}, {3, 2, 0}};
    for (int k = 0; k < 2; k++) {
        int S = maxc[k][1], P = maxc[k][2];
        char key[32];
        snprintf(key, sizeof key, "max_3%d%d", S, P);
        float *want = fx("pool", key, &nw);
        nn_max_pool2d_planes(y, x, 6, 9, 8, 3, S, P);
        test_close(NAME("max_pool2d planes k3 s%d p%d vs PyTorch", S, P), y, want, nw, 0, 0);
    }
    for (int cip = 0; cip < 2; cip++) {
        char key[32];
        snprintf(key, sizeof key, "avg_311_%d", cip);
        float *want = fx("pool", key, &nw);
        nn_avg_pool2d_planes(y, x, 6, 9, 8, 3, 1, 1, cip);
        test_close(NAME("avg_pool2d planes k3 s1 p1 cip %d vs PyTorch", cip), y, want, nw, 1e-6,
                   1e-5);
    }
    fx_free_all();

    /* shapes: the network's, odd and even, one row or column; some -0 and ties */
    static const int shp[][3] = {{5, 35, 35}, {3, 17, 17}, {2, 8, 8}, {4, 147, 147},
                                 {3, 1, 7},   {3, 6, 1},   {2, 1, 1}, {3, 2, 5}};
    for (size_t k = 0; k < sizeof shp / sizeof shp[0]; k++) {
        int np = shp[k][0], H = shp[k][1], W = shp[k][2];
        size_t m = (size_t)np * H * W;
        float *in = fx_zeros(m), *got = fx_zeros(m), *ref = fx_zeros(m), *thr = fx_zeros(m);
        fill(in, m, 1);
        for (size_t i = 0; i < m; i += 7)
            in[i] = i % 2 ? -0.0f : in[i / 2];
        for (int S = 1; S <= 2; S++)
            for (int P = 0; P <= 1; P++) {
                if (H + 2 * P < 3 || W + 2 * P < 3) /* no window fits */
                    continue;
                size_t mo = (size_t)np * nn_pool_out(H, 3, S, P) * nn_pool_out(W, 3, S, P);
                loop_max(ref, in, np, H, W, 3, S, P);
                nn_max_pool2d_planes(got, in, np, H, W, 3, S, P);
                nn_max_pool2d_forward(thr, in, 1, np, H, W, 3, S, P);
                CHECK(same_bits(got, ref, mo) && same_bits(thr, ref, mo),
                      "max_pool2d k3 s%d p%d on %dx%dx%d: the loops' bits, planes and threaded",
                      S, P, np, H, W);
            }
        for (int cip = 0; cip < 2; cip++) {
            loop_avg3(ref, in, np, H, W, cip);
            nn_avg_pool2d_planes(got, in, np, H, W, 3, 1, 1, cip);
            nn_avg_pool2d_forward(thr, in, 1, np, H, W, 3, 1, 1, cip);
            CHECK(same_bits(got, ref, m) && same_bits(thr, ref, m),
                  "avg_pool2d k3 s1 p1 cip %d on %dx%dx%d: rows then columns, bit for bit", cip,
                  np, H, W);
        }
        fx_free_all();
    }
}

/* (A,B,n) -> (B,A,n) */
static void swap01(float *dst, const float *src, int A, int B, size_t n)
{
    for (int a = 0; a < A; a++)
        for (int i = 0; i < B; i++)
            memcpy(dst + ((size_t)i * A + a) * n, src + ((size_t)a * B + i) * n,
                   n * sizeof(float));
}

/* ---- im2col ---- */
/* col (C*KH*KW, n): output positions j0..j0+n-1 of (N,OH,OW), x (N,C,H,W), by loops */
static void loop_im2col(float *col, const float *x, const struct nn_conv *g, int j0, int n)
{
    int OHW = g->OH * g->OW;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++)
                for (int j = 0; j < n; j++) {
                    int q = j0 + j, i = q / OHW, oy = q % OHW / g->OW, ox = q % g->OW;
                    int iy = oy * g->SH - g->PT + kh, ix = ox * g->SW - g->PL + kw;
                    int in = iy >= 0 && iy < g->H && ix >= 0 && ix < g->W;
                    col[((c * g->KH + kh) * g->KW + kw) * n + j] =
                        in ? x[(((size_t)i * g->C + c) * g->H + iy) * g->W + ix] : 0.0f;
                }
}

static void test_im2col(void)
{
    static const int cases[][12] = {
        /* N C H W KH KW SH SW PT PL PB PR */
        {3, 2, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1},  /* same: shifted planes */
        {2, 3, 9, 8, 1, 7, 1, 1, 0, 3, 0, 3},
        {2, 2, 8, 5, 7, 1, 1, 1, 3, 0, 3, 0},
        {3, 2, 6, 6, 5, 5, 1, 1, 2, 2, 2, 2},
        {2, 2, 6, 7, 3, 3, 1, 1, 2, 0, 0, 2},  /* same size, asymmetric */
        {3, 2, 9, 9, 3, 3, 2, 2, 0, 0, 0, 0},  /* strided, valid */
        {2, 3, 8, 7, 3, 3, 2, 2, 0, 0, 1, 1},
        {2, 2, 5, 6, 4, 4, 2, 2, 1, 1, 1, 1},
        {2, 2, 7, 7, 3, 3, 1, 1, 0, 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *d = cases[k];
        struct nn_conv g;
        nn_conv_init_ex(&g, d[0], d[1], d[2], d[3], 1, d[4], d[5], d[6], d[7], d[8], d[9],
                        d[10], d[11]);
        size_t HW = (size_t)g.H * g.W, nin = g.N * g.C * HW;
        int cols = g.N * g.OH * g.OW, rows = g.C * g.KH * g.KW, ok = 1;
        float *x = fx_zeros(nin), *xc = fx_zeros(nin), *ref = fx_zeros((size_t)rows * cols);
        float *got = fx_zeros((size_t)rows * cols), *gc = fx_zeros((size_t)rows * cols);
        fill(x, nin, 1);
        swap01(xc, x, g.N, g.C, HW);
        /* whole, and in blocks that start and end inside rows and images */
        int blks[3] = {cols, 13, 5};
        for (int b = 0; b < 3; b++)
            for (int j0 = 0, blk = blks[b]; j0 < cols; j0 += blk) {
                int n = cols - j0 < blk ? cols - j0 : blk;
                loop_im2col(ref, x, &g, j0, n);
                nn_im2col(got, n, x, HW, g.C * HW, &g, j0, n);
                nn_im2col(gc, n, xc, g.N * HW, HW, &g, j0, n);
                ok &= same_bits(got, ref, (size_t)rows * n) && same_bits(gc, ref, (size_t)rows * n);
            }
        CHECK(ok, "im2col N%d C%d %dx%d k%dx%d s%d pad %d,%d,%d,%d: (N,C,H,W) and (C,N,H,W), "
                  "in blocks", g.N, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.PT, g.PL, g.PB, g.PR);
        fx_free_all();
    }
}

static void wino7_case(const int *d)
{
    struct nn_conv g;
    char name[160];
    nn_set_threads(2);
    nn_conv_init_ex(&g, d[0], d[1], d[2], d[3], d[4], d[5], d[6], 1, 1, d[7], d[8], d[7], d[8]);
    CHECK(nn_wino7_ok(&g), "N%d C%d %dx%d OC%d k%dx%d is a Winograd F(2,7) geometry", g.N, g.C,
          g.H, g.W, g.OC, g.KH, g.KW);
    size_t HW = (size_t)g.H * g.W, nin = g.N * g.C * HW, nout = g.N * g.OC * HW;
    size_t nw = (size_t)g.OC * g.C * 7;
    float *in = fx_zeros(nin), *w = fx_zeros(nw), *b = fx_zeros(g.OC), *ref = fx_zeros(nout);
    float *out = fx_zeros(nout), *col = fx_zeros(nout), *pre = fx_zeros(nout);
    float *out1 = fx_zeros(nout), *scratch = fx_zeros(nn_conv_scratch(&g));
    fill(in, nin, 1), fill(w, nw, 0.3f), fill(b, g.OC, 1);
    ref_conv(&g, in, w, b, NULL, ref, NULL, NULL);
    snprintf(name, sizeof name, "F(2,7) N%d C%d %dx%d OC%d k%dx%d", g.N, g.C, g.H, g.W, g.OC,
             g.KH, g.KW);

    nn_conv2d_forward(out, scratch, in, w, b, &g);
    test_close(NAME("%s forward vs double loops", name), out, ref, nout, 1e-4, 1e-4);
    nn_conv_winograd(0);
    nn_conv2d_forward(col, scratch, in, w, b, &g);
    nn_conv_winograd(1);
    test_close(NAME("%s forward vs im2col", name), out, col, nout, 1e-4, 1e-4);
    CHECK(!same_bits(out, col, nout), "%s: nn_conv_winograd(0) turns it off", name);

    float *u = fx_zeros(nn_conv_wino_size(&g)), *ws = fx_zeros(nn_conv_wino_scratch(&g));
    CHECK(nn_conv_wino_size(&g) == (size_t)8 * g.OC * g.C, "%s: 8*OC*C prepared weights", name);
    nn_conv_wino_weights(u, w, &g);
    nn_conv2d_forward_wino(pre, ws, in, u, b, &g);
    CHECK(same_bits(pre, out, nout), "%s: prepared weights give the same bits", name);
    nn_set_threads(1);
    struct nn_conv g1;
    nn_conv_init_ex(&g1, g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, 1, 1, d[7], d[8], d[7], d[8]);
    nn_conv2d_forward(out1, scratch, in, w, b, &g1);
    nn_set_threads(2);
    test_close(NAME("%s one thread", name), out1, out, nout, 1e-5, 1e-5);

    /* serial: (C,N,H,W) with ReLU is (N,C,H,W) ReLU'd and transposed, bit for bit (the same
       GEMMs); image by image without bias, the threaded result up to summation order */
    float *xc = fx_zeros(nin), *yc = fx_zeros(nout), *y1 = fx_zeros(nout), *want = fx_zeros(nout);
    float *ss = fx_zeros(nn_wino7_scratch(&g));
    swap01(xc, in, g.N, g.C, HW);
    nn_wino7_forward_serial(yc, ss, xc, u, b, &g, NN_WINO7_CNHW | NN_WINO7_RELU);
    nn_wino7_forward_serial(y1, ss, in, u, b, &g, 0);
    test_close(NAME("%s serial", name), y1, out, nout, 1e-5, 1e-5);
    for (size_t i = 0; i < nout; i++)
        y1[i] = y1[i] > 0.0f ? y1[i] : 0.0f;
    swap01(want, y1, g.N, g.OC, HW);
    CHECK(same_bits(yc, want, nout), "%s: serial (C,N,H,W) + ReLU", name);
    nn_conv_init_ex(&g1, 1, g.C, g.H, g.W, g.OC, g.KH, g.KW, 1, 1, d[7], d[8], d[7], d[8]);
    for (int n = 0; n < g.N; n++)
        nn_wino7_forward_serial(y1 + n * g.OC * HW, ss, in + n * g.C * HW, u, NULL, &g1, 0);
    for (size_t i = 0; i < nout; i++)
        y1[i] += b[i / HW % g.OC];
    test_close(NAME("%s serial image by image, no bias", name), y1, out, nout, 1e-5, 1e-5);
    fx_free_all();
}

static void test_wino7(void)
{
    static const int cases[][9] = {
        /* N C H W OC KH KW PT PL */
        {8, 64, 17, 17, 48, 1, 7, 0, 3},  /* Inception's 17x17 */
        {8, 48, 17, 17, 64, 7, 1, 3, 0},
        {1, 40, 9, 8, 20, 1, 7, 0, 3},    /* one image: output channels split */
        {1, 32, 6, 11, 33, 7, 1, 3, 0},
        {9, 24, 5, 13, 16, 1, 7, 0, 3},   /* image groups with a remainder */
        {3, 16, 2, 3, 5, 7, 1, 3, 0},     /* shorter than the kernel */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        wino7_case(cases[k]);
    struct nn_conv g;
    nn_conv_init_ex(&g, 2, 15, 17, 17, 16, 1, 7, 1, 1, 0, 3, 0, 3);
    CHECK(!nn_wino7_ok(&g), "not below 16 input channels");
    nn_conv_init_ex(&g, 2, 16, 17, 17, 16, 1, 7, 1, 1, 0, 2, 0, 4);
    CHECK(!nn_wino7_ok(&g), "not with asymmetric padding");
    nn_conv_init_ex(&g, 2, 16, 17, 17, 16, 7, 1, 2, 2, 3, 0, 3, 0);
    CHECK(!nn_wino7_ok(&g), "not with stride 2");
    CHECK(nn_conv_wino_size(&g) == 0, "no prepared weights for stride 2");
}


/* ---- F(4x4) Winograd with fused elementwise ops ---- */
/* nn_wino4_forward_fused == silu(in * scale + shift) (nn_group_norm_silu_forward's expression)
   then nn_wino4_forward then + add per (image, channel) then + res, bit for bit: on maps the
   input transform takes whole and on larger ones (no norm there: nn_wino4_pre_fits), with
   ragged edges, several images a chunk, 16 tiles (weights transformed inside the products),
   from cached and from raw weights */
static void test_wino4_fused(void)
{
    static const int shapes[][5] = {{3, 5, 7, 9, 4},  {2, 3, 1, 1, 2},   {1, 2, 33, 31, 3},
                                    {1, 2, 9, 290, 2}, {5, 3, 16, 16, 4}, {16, 4, 4, 4, 3},
                                    {17, 2, 8, 8, 33}, {2, 40, 32, 32, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int N = shapes[i][0], C = shapes[i][1], H = shapes[i][2], W = shapes[i][3];
        int OC = shapes[i][4], HW = H * W, pf = nn_wino4_pre_fits(H, W);
        size_t nin = (size_t)N * C * HW, nout = (size_t)N * OC * HW;
        float *in = fx_zeros(nin), *act = fx_zeros(nin), *want = fx_zeros(nout);
        float *got = fx_zeros(nout), *res = fx_zeros(nout), *w = fx_zeros((size_t)OC * C * 9);
        float *U = fx_zeros(36 * (size_t)OC * C), *ub = fx_zeros(36 * (size_t)OC * C);
        float *scr = fx_zeros(nn_wino4_scratch(N, C, H, W, OC)), *b = fx_zeros(OC);
        float *sc = fx_zeros((size_t)N * C), *sh = fx_zeros((size_t)N * C);
        float *add = fx_zeros((size_t)N * OC);
        fill(in, nin, 4.0f), fill(res, nout, 1.0f), fill(w, (size_t)OC * C * 9, 0.3f);
        fill(b, OC, 1.0f), fill(sc, (size_t)N * C, 2.0f), fill(sh, (size_t)N * C, 1.0f);
        fill(add, (size_t)N * OC, 1.0f);
        for (size_t k = 0; k < (size_t)N * C; k++)
            for (int p = 0; p < HW; p++)
                act[k * HW + p] = pf ? nn_silu_sym(in[k * HW + p] * sc[k] + sh[k]) : in[k * HW + p];
        nn_wino4_weights(U, w, C, OC);
        nn_wino4_forward(want, scr, act, U, b, N, C, H, W, OC, NULL);
        for (size_t k = 0; k < (size_t)N * OC; k++)
            for (int p = 0; p < HW; p++)
                want[k * HW + p] += add[k];
        for (size_t p = 0; p < nout; p++)
            want[p] += res[p];
        struct nn_wino4_fuse f = {pf ? sc : NULL, pf ? sh : NULL, add, res};
        for (int cached = 0; cached < 2; cached++) {
            memset(got, 0, nout * sizeof(float));
            nn_wino4_forward_fused(got, scr, ub, in, &f, cached ? U : NULL, w, b, N, C, H, W, OC,
                                   NULL);
            CHECK(same_bits(want, got, nout),
                  "wino4 fused N%d C%d %dx%d OC%d (%s weights, %s): the ops apart, bitwise", N, C,
                  H, W, OC, cached ? "cached" : "raw", pf ? "norm + SiLU in" : "no norm");
        }
    }
}

/* The F(4x4) weight gradient (nn_wino4_dw, training's 3x3 convs): dw += the sum over the
   batch of in (x) dout, against a float64 loop of the definition, with the input tiles made
   inside and kept from the forward (nn_wino4_forward_keep), on ragged maps and several
   images; and the same bits on one thread as on two */
static void test_wino4_dw(void)
{
    static const int shapes[][5] = {{3, 5, 7, 9, 4}, {2, 3, 1, 1, 2}, {1, 17, 33, 31, 3},
                                    {4, 40, 16, 16, 70}, {16, 8, 4, 4, 24}, {2, 20, 32, 32, 9}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int N = shapes[i][0], C = shapes[i][1], H = shapes[i][2], W = shapes[i][3];
        int OC = shapes[i][4], HW = H * W;
        size_t nin = (size_t)N * C * HW, nout = (size_t)N * OC * HW, nw = (size_t)OC * C * 9;
        float *in = fx_zeros(nin), *dout = fx_zeros(nout), *w = fx_zeros(nw);
        float *U = fx_zeros(36 * (size_t)OC * C), *y = fx_zeros(nout);
        float *v = fx_zeros(nn_wino4_tiles(N, C, H, W));
        float *scr = fx_zeros(nn_wino4_dw_scratch(N, C, H, W, OC) + nn_wino4_scratch(N, C, H, W, OC));
        float *dw = fx_zeros(nw), *dk = fx_zeros(nw), *d1 = fx_zeros(nw), *want = fx_zeros(nw);
        fill(in, nin, 1.0f), fill(dout, nout, 1.0f), fill(w, nw, 0.3f);
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        double acc = 0;
                        for (int n = 0; n < N; n++)
                            for (int yy = 0; yy < H; yy++)
                                for (int xx = 0; xx < W; xx++) {
                                    int iy = yy + ky - 1, ix = xx + kx - 1;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                        continue;
                                    acc += (double)in[((size_t)n * C + c) * HW + iy * W + ix] *
                                           dout[((size_t)n * OC + o) * HW + yy * W + xx];
                                }
                        want[(((size_t)o * C + c) * 3 + ky) * 3 + kx] = (float)(acc + 0.5);
                    }
        for (size_t k = 0; k < nw; k++)
            dw[k] = dk[k] = d1[k] = 0.5f; /* += */
        nn_wino4_dw(dw, scr, NULL, dout, in, N, C, H, W, OC);
        test_close(NAME("wino4 dw N%d C%d %dx%d OC%d vs float64 loop", N, C, H, W, OC), dw, want,
                   nw, 1e-4 * sqrt((double)N * HW), 1e-4);
        nn_wino4_weights(U, w, C, OC);
        nn_wino4_forward_keep(y, scr, v, in, U, NULL, N, C, H, W, OC, NULL);
        nn_wino4_dw(dk, scr, v, dout, in, N, C, H, W, OC);
        CHECK(same_bits(dw, dk, nw), "wino4 dw N%d C%d %dx%d OC%d: kept tiles, the same bits", N,
              C, H, W, OC);
        int nt = nn_get_threads();
        nn_set_threads(1);
        nn_wino4_dw(d1, scr, NULL, dout, in, N, C, H, W, OC);
        nn_set_threads(nt);
        CHECK(same_bits(dw, d1, nw), "wino4 dw N%d C%d %dx%d OC%d: one thread, the same bits", N,
              C, H, W, OC);
        free(in), free(dout), free(w), free(U), free(y), free(v), free(scr);
        free(dw), free(dk), free(d1), free(want);
    }
}

int main(void)
{
    test_pools();
    test_im2col();
    test_wino7();
    test_wino4_fused();
    test_wino4_dw();
    return test_done();
}
