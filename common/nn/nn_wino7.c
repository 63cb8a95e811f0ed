/* 1x7 and 7x1 stride-1 'same' convs (padding 3 along the kernel's axis) by 1-D Winograd
   F(2,7): per pair of outputs along the kernel's axis, the 8 input values d become
   V = B^T d, the 7 taps g become U = G g, and the pair is A^T (U .* V). The sum over input
   channels at each of the 8 points is a GEMM, M_xi (OC,T) = U_xi (OC,C) V_xi (C,T), so 8
   multiplies per two outputs replace 14 (with 17 outputs, 9 pairs: 1.65x fewer). Points 0,
   +-1, +-2, +-1/2 and infinity: in float32 the error is about 6x that of the direct sum
   (the Inception network stays within 1e-4 of PyTorch).

   Layout: the input is first laid out as lines along the kernel's axis, X (C,LL,S):
   position i of each of the S lines (G*W columns or G*H rows of the G images), zero padded
   (3 before, so that LL = 2P + 6 for the P pairs), so that every transform loop runs over
   the lines at unit stride. Columns of V and M are (pair t, line s).
   A column's sum does not depend on the number of lines, so neither does an output: the
   Inception network's features do not depend on its group size. */
#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_wino.h"

/* B^T, as w7_in computes it:
   { 1, 0, -21/4, 0, 21/4, 0, -1, 0 },  { 0, 1, 1, -17/4, -17/4, 1, 1, 0 },
   { 0, -1, 1, 17/4, -17/4, -1, 1, 0 }, { 0, 1/2, 1/4, -5/2, -5/4, 2, 1, 0 },
   { 0, -1/2, 1/4, 5/2, -5/4, -2, 1, 0 }, { 0, 2, 4, -5/2, -5, 1/2, 1, 0 },
   { 0, -2, 4, 5/2, -5, -1/2, 1, 0 },  { 0, -1, 0, 21/4, 0, -21/4, 0, 1 };
   A^T = { 1, 1, 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 2, -2, 1/2, -1/2, 1 } (in w7_out).
   G (8,7), in double */
static const double G7[8][7] = {
    { 1, 0, 0, 0, 0, 0, 0 },
    { -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9 },
    { -2. / 9, 2. / 9, -2. / 9, 2. / 9, -2. / 9, 2. / 9, -2. / 9 },
    { 1. / 90, 1. / 45, 2. / 45, 4. / 45, 8. / 45, 16. / 45, 32. / 45 },
    { 1. / 90, -1. / 45, 2. / 45, -4. / 45, 8. / 45, -16. / 45, 32. / 45 },
    { 32. / 45, 16. / 45, 8. / 45, 4. / 45, 2. / 45, 1. / 45, 1. / 90 },
    { 32. / 45, -16. / 45, 8. / 45, -4. / 45, 2. / 45, -1. / 45, 1. / 90 },
    { 0, 0, 0, 0, 0, 0, 1 },
};

#define W7_MAXT 320 /* columns (pairs x lines) per task at most in the threaded driver */

/* Measured (bench_nn inc17, 160 channels at 17x17): 1.3x faster than im2col. Below 16 input
   channels the transforms cost more than the multiplies saved, as for F(2x2,3x3). */
int nn_wino7_ok(const struct nn_conv *g)
{
    int h = g->KH == 1 && g->KW == 7 && g->PL == 3 && g->PR == 3 && g->PT == 0 && g->PB == 0;
    int v = g->KH == 7 && g->KW == 1 && g->PT == 3 && g->PB == 3 && g->PL == 0 && g->PR == 0;
    return (h || v) && g->SH == 1 && g->SW == 1 && g->C >= 16;
}

/* u (8,OC,C) rows o0..o1-1 from w (OC,C,7), in double; the taps of 64 input channels at a
   time transposed first, so that the sums vectorise across channels */
static void w7_weights(float *u, const float *w, int OC, int C, int o0, int o1)
{
    size_t xs = (size_t)OC * C;
    double kt[7][64];
    for (int o = o0; o < o1; o++)
        for (int c0 = 0; c0 < C; c0 += 64) {
            const float *k = w + ((size_t)o * C + c0) * 7;
            int nc = C - c0 < 64 ? C - c0 : 64;
            for (int c = 0; c < nc; c++)
                for (int j = 0; j < 7; j++)
                    kt[j][c] = k[c * 7 + j];
            float *uo = u + (size_t)o * C + c0;
            for (int xi = 0; xi < 8; xi++)
#pragma omp simd
                for (int c = 0; c < nc; c++) {
                    double s = 0;
                    for (int j = 0; j < 7; j++)
                        s += G7[xi][j] * kt[j][c];
                    uo[xi * xs + c] = (float)s;
                }
        }
}

void nn_wino7_weights(float *u, const float *w, const struct nn_conv *g)
{
    w7_weights(u, w, g->OC, g->C, 0, g->OC);
}

/* pairs P and padded line length LL for lines of L */
static int w7_pairs(int L, int *LL)
{
    *LL = L + (L & 1) + 6;
    return (L + 1) / 2;
}

/* floats of scratch for G images and OC output channels */
static size_t w7_scratch(const struct nn_conv *g, int G, int OC)
{
    int vertical = g->KH == 7, LL, P = w7_pairs(vertical ? g->H : g->W, &LL);
    size_t S = (size_t)G * (vertical ? g->W : g->H), T = (size_t)P * S;
    return (size_t)g->C * LL * S + 8 * T * ((size_t)g->C + OC) + (size_t)LL * S;
}

/* Where plane (channel c, image n) of a tensor of C channels and N images lies: (N,C,H,W)
   or, cnhw, (C,N,H,W) */
static size_t w7_plane(int c, int n, int C, int N, size_t HW, int cnhw)
{
    return (cnhw ? (size_t)c * N + n : (size_t)n * C + c) * HW;
}

/* X (C,LL,S) from the first G of the g->N images of in: lines along H (vertical, 7x1) or
   along W (1x7) */
static void w7_lines(float *X, const float *in, const struct nn_conv *g, int G, int LL,
                     int cnhw)
{
    int C = g->C, H = g->H, W = g->W, vertical = g->KH == 7;
    int L = vertical ? H : W, S = G * (vertical ? W : H);
    for (int c = 0; c < C; c++) {
        float *x = X + (size_t)c * LL * S;
        memset(x, 0, sizeof(float) * 3 * S);
        memset(x + (size_t)(3 + L) * S, 0, sizeof(float) * (LL - 3 - L) * S);
        for (int n = 0; n < G; n++) {
            const float *p = in + w7_plane(c, n, C, g->N, (size_t)H * W, cnhw);
            if (vertical)
                for (int i = 0; i < H; i++)
                    memcpy(x + (size_t)(3 + i) * S + n * W, p + i * W, sizeof(float) * W);
            else
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < W; i++)
                        x[(size_t)(3 + i) * S + n * H + h] = p[h * W + i];
        }
    }
}

/* V (8,C,P*S): B^T d for each pair t and line, B^T's rows sharing their partial sums */
static void w7_in(float *V, const float *X, int C, int S, int P, int LL)
{
    size_t T = (size_t)P * S, xs = (size_t)C * T;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < P; t++) {
            const float *d = X + ((size_t)c * LL + 2 * t) * S;
            float *v = V + (size_t)c * T + (size_t)t * S;
#pragma omp simd
            for (int s = 0; s < S; s++) {
                float d0 = d[s], d1 = d[S + s], d2 = d[2 * S + s], d3 = d[3 * S + s];
                float d4 = d[4 * S + s], d5 = d[5 * S + s], d6 = d[6 * S + s];
                float d7 = d[7 * S + s];
                v[s] = d0 - d6 + 5.25f * (d4 - d2);
                float a = d2 + d6 - 4.25f * d4, b = d1 + d5 - 4.25f * d3;
                v[xs + s] = a + b;
                v[2 * xs + s] = a - b;
                a = 0.25f * d2 - 1.25f * d4 + d6, b = 0.5f * d1 - 2.5f * d3 + 2.0f * d5;
                v[3 * xs + s] = a + b;
                v[4 * xs + s] = a - b;
                a = 4.0f * d2 - 5.0f * d4 + d6, b = 2.0f * d1 - 2.5f * d3 + 0.5f * d5;
                v[5 * xs + s] = a + b;
                v[6 * xs + s] = a - b;
                v[7 * xs + s] = d7 - d1 + 5.25f * (d3 - d5);
            }
        }
}

/* output channels o0..o0+OCt-1 of the first G images of out = A^T M + b (then ReLU when relu), M (8,OCt,P*S),
   through Y (2P,S) per output channel; b may be NULL */
static void w7_out(float *out, const float *M, float *Y, const float *b, const struct nn_conv *g,
                   int G, int o0, int OCt, int P, int flags)
{
    int H = g->H, W = g->W, vertical = g->KH == 7, S = G * (vertical ? W : H);
    int cnhw = flags & NN_WINO7_CNHW;
    size_t T = (size_t)P * S, xs = (size_t)OCt * T;
    for (int o = 0; o < OCt; o++) {
        const float *m = M + (size_t)o * T;
        float bo = b != NULL ? b[o0 + o] : 0.0f;
        for (int t = 0; t < P; t++) {
            const float *q = m + (size_t)t * S;
            float *y0 = Y + (size_t)(2 * t) * S, *y1 = y0 + S;
#pragma omp simd
            for (int s = 0; s < S; s++) {
                float m0 = q[s], m1 = q[xs + s], m2 = q[2 * xs + s], m3 = q[3 * xs + s];
                float m4 = q[4 * xs + s], m5 = q[5 * xs + s], m6 = q[6 * xs + s];
                float m7 = q[7 * xs + s];
                y0[s] = m0 + m1 + m2 + m3 + m4 + m5 + m6 + bo;
                y1[s] = (m1 - m2) + 2.0f * (m3 - m4) + 0.5f * (m5 - m6) + m7 + bo;
            }
        }
        if (flags & NN_WINO7_RELU)
            for (size_t i = 0; i < 2 * T; i++)
                Y[i] = Y[i] > 0.0f ? Y[i] : 0.0f;
        for (int n = 0; n < G; n++) {
            float *p = out + w7_plane(o0 + o, n, g->OC, g->N, (size_t)H * W, cnhw);
            if (vertical)
                for (int i = 0; i < H; i++)
                    memcpy(p + i * W, Y + (size_t)i * S + n * W, sizeof(float) * W);
            else
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < W; i++)
                        p[h * W + i] = Y[(size_t)i * S + n * H + h];
        }
    }
}

/* the first G of the g->N images of in, output channels o0..o1-1 of out; scratch:
   w7_scratch(g, G, o1 - o0) */
static void w7_run(float *out, float *scratch, const float *in, const float *u, const float *b,
                   const struct nn_conv *g, int G, int o0, int o1, int flags)
{
    int vertical = g->KH == 7, LL, P = w7_pairs(vertical ? g->H : g->W, &LL);
    int S = G * (vertical ? g->W : g->H), C = g->C, OC = g->OC, OCt = o1 - o0;
    size_t T = (size_t)P * S;
    float *X = scratch, *V = X + (size_t)C * LL * S, *M = V + 8 * T * C, *Y = M + 8 * T * OCt;
    w7_lines(X, in, g, G, LL, flags & NN_WINO7_CNHW);
    w7_in(V, X, C, S, P, LL);
    for (int xi = 0; xi < 8; xi++)
        nn_sgemm_serial(0, 0, OCt, (int)T, C, 1.0f, u + ((size_t)xi * OC + o0) * C, C,
                        V + (size_t)xi * C * T, (int)T, 0.0f, M + (size_t)xi * OCt * T, (int)T);
    w7_out(out, M, Y, b, g, G, o0, OCt, P, flags);
}

/* images per block: enough columns for an efficient GEMM, few enough that V and M stay near
   the caches (bench_nn inc17: 1.1x faster than all 8 images at once) */
static int w7_block(const struct nn_conv *g)
{
    int vertical = g->KH == 7, LL;
    int T1 = w7_pairs(vertical ? g->H : g->W, &LL) * (vertical ? g->W : g->H);
    int gi = W7_MAXT / (T1 > 0 ? T1 : 1);
    return gi < 1 ? 1 : gi;
}

size_t nn_wino7_scratch(const struct nn_conv *g)
{
    int gi = w7_block(g);
    return w7_scratch(g, gi < g->N ? gi : g->N, g->OC);
}

void nn_wino7_forward_serial(float *out, float *scratch, const float *in, const float *u,
                             const float *b, const struct nn_conv *g, int flags)
{
    int gi = w7_block(g), cnhw = flags & NN_WINO7_CNHW;
    size_t HW = (size_t)g->H * g->W;
    for (int n0 = 0; n0 < g->N; n0 += gi) {
        int G = g->N - n0 < gi ? g->N - n0 : gi;
        w7_run(out + n0 * HW * (cnhw ? 1 : g->OC), scratch, in + n0 * HW * (cnhw ? 1 : g->C), u,
               b, g, G, 0, g->OC, flags);
    }
}

/* The threaded split: tasks of gi whole images, or, with fewer images than threads, each
   image's output channels in ns parts (the input transform is repeated per part: a few
   percent of the GEMMs' work). */
struct w7_plan {
    int nt, gi, ns, ntask;
    size_t slice;
};

/* the tasks depend on the shape and N alone, never on the thread count (nn.c says why) */
static void w7_plan(struct w7_plan *p, const struct nn_conv *g)
{
    int nt = NN_PLAN_THREADS;
    p->nt = g->nt > 0 ? g->nt : 1;
    if (g->N >= nt) {
        int gi = w7_block(g), most = (g->N + nt - 1) / nt;
        p->gi = gi > most ? most : gi;
        p->ns = 1;
        p->ntask = (g->N + p->gi - 1) / p->gi;
    } else {
        p->gi = 1;
        p->ns = (nt + g->N - 1) / g->N;
        p->ns = p->ns < g->OC ? p->ns : g->OC;
        p->ntask = g->N * p->ns;
    }
    p->slice = w7_scratch(g, p->gi, (g->OC + p->ns - 1) / p->ns);
}

size_t nn_wino7_scratch_threads(const struct nn_conv *g)
{
    struct w7_plan p;
    w7_plan(&p, g);
    return p.slice * p.nt;
}

void nn_wino7_forward(float *out, float *scratch, const float *in, const float *u,
                      const float *b, const struct nn_conv *g)
{
    struct w7_plan p;
    w7_plan(&p, g);
    int nt = nn_get_threads();
    nt = nt < p.nt ? nt : p.nt;
    size_t CHW = (size_t)g->C * g->H * g->W, OCHW = (size_t)g->OC * g->H * g->W;
#pragma omp parallel num_threads(nt)
    {
        float *sl = scratch + p.slice * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int t = 0; t < p.ntask; t++) {
            struct nn_conv gt = *g;
            int n0 = t / p.ns * p.gi, k = t % p.ns;
            gt.N = g->N - n0 < p.gi ? g->N - n0 : p.gi;
            int o0 = (int)((long)g->OC * k / p.ns), o1 = (int)((long)g->OC * (k + 1) / p.ns);
            w7_run(out + n0 * OCHW, sl, in + n0 * CHW, u, b, &gt, gt.N, o0, o1, 0);
        }
    }
}

void nn_wino7_conv(float *out, float *scratch, const float *in, const float *w, const float *b,
                   const struct nn_conv *g)
{
    float *u = scratch;
    int nt = nn_get_threads();
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), k = omp_get_num_threads();
        w7_weights(u, w, g->OC, g->C, (int)((long)g->OC * t / k),
                   (int)((long)g->OC * (t + 1) / k));
    }
    nn_wino7_forward(out, scratch + (size_t)8 * g->OC * g->C, in, u, b, g);
}
