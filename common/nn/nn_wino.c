/* Winograd F(2x2,3x3) (Lavin and Gray 2015) for 3x3 stride-1 convolutions, any padding.

   Per 2x2 output tile and channel, the 4x4 input patch d becomes V = B^T d B, each 3x3 kernel
   U = G g G^T, and the tile is A^T [sum_c U .* V] A. The sum over channels at each of the 16
   positions xi is a GEMM: M_xi (OC,T) = U_xi (OC,C) V_xi (C,T) over T tiles.
     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
     G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
     A^T = [1 1 1 0; 0 1 -1 -1]
   Work is split like the im2col path: blocks of tiles of one image, or groups of whole
   images for small maps, one task per OpenMP thread at a time with single-threaded GEMMs. */
#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_wino.h"

#define WINO_MINT 192  /* fewer tiles per image than this: batch images into one GEMM */
#define WINO_MAXT 128  /* tiles per task at most (keeps V and M near the caches) */

struct wplan {
    int gi, blk, nb, cols, nt;
    int TH, TW, PW, PR; /* tile rows and columns; padded row length; padded rows per task */
    size_t u, pad, v, m, slice;
};

/* Measured on one thread against im2col (CPU time, GFLOP/s of the direct conv): 128 channels
   at 32x32 166 vs 84, 256 at 16x16 163 vs 94, 256 at 8x8 122 vs 87, 256 at 4x4 108 vs 79, the
   Inception stem with 32 channels at 147x147 145 vs 74, 128 -> 3 channels 24 vs 10; but
   3 -> 128 channels 40 vs 60: below 16 input channels the transforms cost more than the
   multiplies saved. F(4x4,3x3) was tried too: no faster here (its transforms dominate) and
   20x the rounding error. */
int nn_wino_ok(const struct nn_conv *g)
{
    return g->C >= 16 && g->OH * g->OW >= 16 && g->KH == 3 && g->KW == 3 && g->SH == 1 &&
           g->SW == 1 && g->PT <= 2 && g->PL <= 2 && g->PB <= 2 && g->PR <= 2;
}

/* maxt: tiles per task at most. The tasks, and so every GEMM's shape, depend on the shape
   and N alone, never on the thread count (nn.c says why); they are cut for NN_PLAN_THREADS. */
static void wino_plan_t(struct wplan *p, const struct nn_conv *g, int maxt)
{
    int nt = NN_PLAN_THREADS;
    p->nt = g->nt > 0 ? g->nt : 1;
    p->TH = (g->OH + 1) / 2;
    p->TW = (g->OW + 1) / 2;
    p->PW = 2 * p->TW + 2;
    int T = p->TH * p->TW;
    if (T >= WINO_MINT || g->N < 2 * nt) {
        int blk = T < maxt ? T : maxt;
        if (g->N < nt) {
            int per = (nt + g->N - 1) / g->N, b2 = (T + per - 1) / per;
            blk = b2 < blk ? b2 : blk;
        }
        p->gi = 1;
        p->blk = blk > 0 ? blk : 1;
        p->nb = (T + p->blk - 1) / p->blk;
        nn_conv_balance(&p->nb, &p->blk, g->N, T, nt);
        p->cols = p->blk;
    } else {
        int gi = (WINO_MINT + T - 1) / T, most = (g->N + nt - 1) / nt;
        p->gi = gi < most ? gi : most;
        p->blk = T;
        p->nb = 1;
        p->cols = p->gi * T;
    }
    /* a task spans at most blk/TW + 2 tile rows */
    int trows = p->gi > 1 ? p->TH : p->blk / p->TW + 2;
    if (trows > p->TH)
        trows = p->TH;
    p->PR = 2 * trows + 2;
    p->u = (size_t)16 * g->OC * g->C;
    p->pad = (size_t)p->PR * p->PW + (size_t)8 * (p->TW + 1) + (size_t)4 * p->cols;
    p->v = (size_t)16 * g->C * p->cols;
    p->m = (size_t)16 * g->OC * p->cols;
    p->slice = p->pad + p->v + p->m;
}

static void wino_plan(struct wplan *p, const struct nn_conv *g)
{
    wino_plan_t(p, g, WINO_MAXT);
}

/* Tiles per task on weights transformed beforehand: as many as keep a task's V and M (16
   values per tile and channel, in and out) within 1 MB, the L2 of recent cores, between 32
   and 256. Measured on the Inception stem: 32 -> 32 channels at 147x147 1.2x faster with 256
   tiles than with WINO_MAXT, 80 -> 192 channels at 73x73 1.15x with 64. */
static int wino_pre_maxt(const struct nn_conv *g)
{
    int t = (1 << 18) / (16 * (g->C + g->OC));
    return t < 32 ? 32 : t > 256 ? 256 : t;
}

size_t nn_wino_scratch(const struct nn_conv *g)
{
    struct wplan p;
    wino_plan(&p, g);
    return (p.u + p.slice) * p.nt; /* per thread: transformed weights (gradient), slice */
}

/* U (16,OC,C) for output channel o, vectorised across input channels (the transform is
   per call, as weights change during training; on small maps it is a fifth of the time) */
static void wino_weights(float *U, const float *w, int o, int OC, int C, int flip)
{
    size_t xs = (size_t)OC * C, cs = flip ? (size_t)OC * 9 : 9;
    const float *src = flip ? w + (size_t)o * 9 : w + (size_t)o * C * 9;
    float *u = U + (size_t)o * C;
#pragma omp simd
    for (int c = 0; c < C; c++) {
        const float *q = src + c * cs;
        float k[9], t[4][3];
        for (int i = 0; i < 9; i++)
            k[i] = flip ? q[8 - i] : q[i];
        for (int j = 0; j < 3; j++) { /* G g */
            t[0][j] = k[j];
            t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
            t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
            t[3][j] = k[6 + j];
        }
        for (int i = 0; i < 4; i++) { /* (G g) G^T */
            u[(4 * i + 0) * xs + c] = t[i][0];
            u[(4 * i + 1) * xs + c] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[(4 * i + 2) * xs + c] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[(4 * i + 3) * xs + c] = t[i][2];
        }
    }
}

/* V (16,C,ldv) columns co.. for tiles [t0,t1) of image x (C,H,W). P: padded input rows, then
   8 rows of TW+1 floats for B^T d split into even and odd columns, so that every loop below
   is unit-stride and vectorises. */
static void wino_in(float *V, int ldv, int co, float *P, const float *x, const struct nn_conv *g,
                    const struct wplan *p, int t0, int t1)
{
    int H = g->H, W = g->W, PW = p->PW, TW = p->TW;
    int ty0 = t0 / TW, ty1 = (t1 - 1) / TW, rows = 2 * (ty1 - ty0) + 4;
    int ncopy = W < PW - g->PL ? W : PW - g->PL;
    size_t xs = (size_t)g->C * ldv;
    float *EO = P + (size_t)p->PR * PW;
    for (int c = 0; c < g->C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int r = 0; r < rows; r++) {
            int iy = 2 * ty0 + r - g->PT;
            float *pr = P + (size_t)r * PW;
            if (iy < 0 || iy >= H) {
                memset(pr, 0, sizeof(float) * PW);
                continue;
            }
            memset(pr, 0, sizeof(float) * g->PL);
            memcpy(pr + g->PL, xc + (size_t)iy * W, sizeof(float) * ncopy);
            for (int i = g->PL + ncopy; i < PW; i++)
                pr[i] = 0;
        }
        float *v = V + (size_t)c * ldv + co - t0;
        for (int ty = ty0; ty <= ty1; ty++) {
            int a = ty == ty0 ? t0 - ty * TW : 0, b = ty == ty1 ? t1 - ty * TW : TW;
            const float *r0 = P + (size_t)2 * (ty - ty0) * PW, *r1 = r0 + PW, *r2 = r1 + PW,
                        *r3 = r2 + PW;
            for (int i = 0; i < 4; i++) { /* B^T d, rows i, even and odd columns */
                float *E = EO + (size_t)(2 * i) * (TW + 1), *O = E + TW + 1;
                const float *pa = i == 0 ? r0 : i == 3 ? r1 : i == 1 ? r1 : r2;
                const float *pb = i == 0 ? r2 : i == 3 ? r3 : i == 1 ? r2 : r1;
                float sg = i == 1 ? 1.0f : -1.0f;
#pragma omp simd
                for (int k = a; k <= b; k++) {
                    E[k] = pa[2 * k] + sg * pb[2 * k];
                    O[k] = pa[2 * k + 1] + sg * pb[2 * k + 1];
                }
            }
            float *vt = v + (size_t)ty * TW;
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                const float *E = EO + (size_t)(2 * i) * (TW + 1), *O = E + TW + 1;
                float *d0 = vt + (4 * i) * xs, *d1 = d0 + xs, *d2 = d1 + xs, *d3 = d2 + xs;
#pragma omp simd
                for (int tx = a; tx < b; tx++) {
                    d0[tx] = E[tx] - E[tx + 1];
                    d1[tx] = O[tx] + E[tx + 1];
                    d2[tx] = E[tx + 1] - O[tx];
                    d3[tx] = O[tx] - O[tx + 1];
                }
            }
        }
    }
}

/* y (OC,OH,OW) = (or +=) A^T M A + b for tiles [t0,t1), M (16,OC,ldm) columns co..;
   Y: 4 rows of ldm floats scratch. The transform runs over all tiles in one unit-stride loop,
   then each tile row is interleaved into the output. */
static void wino_out(float *y, int acc, const float *M, int ldm, int co, const float *b,
                     const struct nn_conv *g, const struct wplan *p, int t0, int t1, float *Y)
{
    int OH = g->OH, OW = g->OW, TW = p->TW, nt = t1 - t0;
    int ty0 = t0 / TW, ty1 = (t1 - 1) / TW;
    size_t xs = (size_t)g->OC * ldm;
    float *Y00 = Y - t0, *Y01 = Y00 + nt, *Y10 = Y01 + nt, *Y11 = Y10 + nt;
    for (int o = 0; o < g->OC; o++) {
        float *yo = y + (size_t)o * OH * OW, bo = b != NULL ? b[o] : 0.0f;
        const float *m = M + (size_t)o * ldm + co - t0;
#pragma omp simd
        for (int t = t0; t < t1; t++) {
            float s0[4], s1[4];
            for (int k = 0; k < 4; k++) { /* A^T m */
                float m0 = m[(0 + k) * xs + t], m1 = m[(4 + k) * xs + t];
                float m2 = m[(8 + k) * xs + t], m3 = m[(12 + k) * xs + t];
                s0[k] = m0 + m1 + m2;
                s1[k] = m1 - m2 - m3;
            }
            Y00[t] = s0[0] + s0[1] + s0[2] + bo; /* (A^T m) A */
            Y01[t] = s0[1] - s0[2] - s0[3] + bo;
            Y10[t] = s1[0] + s1[1] + s1[2] + bo;
            Y11[t] = s1[1] - s1[2] - s1[3] + bo;
        }
        for (int ty = ty0; ty <= ty1; ty++) {
            int a = ty == ty0 ? t0 - ty * TW : 0, e = ty == ty1 ? t1 - ty * TW : TW;
            for (int i = 0; i < 2 && 2 * ty + i < OH; i++) {
                float *r = yo + (size_t)(2 * ty + i) * OW;
                const float *ye = (i ? Y10 : Y00) + ty * TW, *yd = (i ? Y11 : Y01) + ty * TW;
                int full = e < OW / 2 ? e : OW / 2; /* tiles with both columns inside */
                if (acc)
                    for (int tx = a; tx < full; tx++) {
                        r[2 * tx] += ye[tx];
                        r[2 * tx + 1] += yd[tx];
                    }
                else
                    for (int tx = a; tx < full; tx++) {
                        r[2 * tx] = ye[tx];
                        r[2 * tx + 1] = yd[tx];
                    }
                for (int tx = full > a ? full : a; tx < e; tx++) {
                    r[2 * tx] = acc ? r[2 * tx] + ye[tx] : ye[tx];
                    if (2 * tx + 1 < OW)
                        r[2 * tx + 1] = acc ? r[2 * tx + 1] + yd[tx] : yd[tx];
                }
            }
        }
    }
}

static void wino_gemms(float *M, const float *U, const float *V, int ld, int OC, int C, int cols)
{
    for (int xi = 0; xi < 16; xi++)
        nn_sgemm_serial(0, 0, OC, cols, C, 1.0f, U + (size_t)xi * OC * C, C,
                        V + (size_t)xi * C * ld, ld, 0.0f, M + (size_t)xi * OC * ld, ld);
}

/* nn_wino_forward, or on weights U (16,OC,C) transformed beforehand when pre is non-NULL */
static void wino_forward(float *out, int acc, float *scratch, const float *in, const float *w,
                         const float *pre, const float *b, const struct nn_conv *g, int flip)
{
    struct wplan p;
    int nt = nn_get_threads();
    wino_plan_t(&p, g, pre != NULL ? wino_pre_maxt(g) : WINO_MAXT);
    if (nt > p.nt)
        nt = p.nt;
    int T = p.TH * p.TW, ntask = p.gi > 1 ? (g->N + p.gi - 1) / p.gi : g->N * p.nb;
    size_t CHW = (size_t)g->C * g->H * g->W, OCHW = (size_t)g->OC * g->OH * g->OW;
    const float *U = pre != NULL ? pre : scratch;
#pragma omp parallel num_threads(nt)
    {
        /* no room for U when it comes transformed */
        float *P = scratch + (pre != NULL ? 0 : p.u * p.nt) + p.slice * omp_get_thread_num();
        float *V = P + p.pad, *M = V + p.v;
        float *Y = V - (size_t)4 * p.cols;
        if (pre == NULL) {
#pragma omp for schedule(static)
            for (int o = 0; o < g->OC; o++)
                wino_weights(scratch, w, o, g->OC, g->C, flip);
        }
#pragma omp for schedule(static)
        for (int k = 0; k < ntask; k++) {
            if (p.gi > 1) {
                int n0 = k * p.gi, n1 = n0 + p.gi < g->N ? n0 + p.gi : g->N, ld = (n1 - n0) * T;
                for (int n = n0; n < n1; n++)
                    wino_in(V, ld, (n - n0) * T, P, in + n * CHW, g, &p, 0, T);
                wino_gemms(M, U, V, ld, g->OC, g->C, ld);
                for (int n = n0; n < n1; n++)
                    wino_out(out + n * OCHW, acc, M, ld, (n - n0) * T, b, g, &p, 0, T, Y);
            } else {
                int n = k / p.nb, t0 = k % p.nb * p.blk, t1 = t0 + p.blk < T ? t0 + p.blk : T;
                wino_in(V, t1 - t0, 0, P, in + n * CHW, g, &p, t0, t1);
                wino_gemms(M, U, V, t1 - t0, g->OC, g->C, t1 - t0);
                wino_out(out + n * OCHW, acc, M, t1 - t0, 0, b, g, &p, t0, t1, Y);
            }
        }
    }
}

void nn_wino_forward(float *out, int acc, float *scratch, const float *in, const float *w,
                     const float *b, const struct nn_conv *g, int flip)
{
    wino_forward(out, acc, scratch, in, w, NULL, b, g, flip);
}

size_t nn_conv_wino_size(const struct nn_conv *g)
{
    if (nn_wino7_ok(g))
        return (size_t)8 * g->OC * g->C;
    return nn_wino_ok(g) ? (size_t)16 * g->OC * g->C : 0;
}

size_t nn_conv_wino_scratch(const struct nn_conv *g)
{
    struct wplan p;
    if (nn_wino7_ok(g))
        return nn_wino7_scratch_threads(g);
    wino_plan_t(&p, g, wino_pre_maxt(g));
    return p.slice * p.nt;
}

void nn_conv_wino_weights(float *u, const float *w, const struct nn_conv *g)
{
    if (nn_wino7_ok(g)) {
        nn_wino7_weights(u, w, g);
        return;
    }
    for (int o = 0; o < g->OC; o++)
        wino_weights(u, w, o, g->OC, g->C, 0);
}

void nn_conv2d_forward_wino(float *out, float *scratch, const float *in, const float *u,
                            const float *b, const struct nn_conv *g)
{
    if (nn_wino7_ok(g))
        nn_wino7_forward(out, scratch, in, u, b, g);
    else
        wino_forward(out, 0, scratch, in, NULL, u, b, g, 0);
}

/* dY (16,OC,ldm) columns co.. = A dy A^T for the 2x2 output tiles [t0,t1) of dy (OC,OH,OW),
   zero outside the map; A = [1 0; 1 1; 1 -1; 0 -1] */
static void wino_dy(float *D, int ldm, int co, const float *dy, const struct nn_conv *g,
                    const struct wplan *p, int t0, int t1)
{
    int OH = g->OH, OW = g->OW, TW = p->TW;
    size_t xs = (size_t)g->OC * ldm;
    for (int o = 0; o < g->OC; o++) {
        const float *yo = dy + (size_t)o * OH * OW;
        float *d = D + (size_t)o * ldm + co - t0;
        for (int t = t0; t < t1; t++) {
            int oy = 2 * (t / TW), ox = 2 * (t % TW);
            int in1 = oy + 1 < OH, ix1 = ox + 1 < OW;
            const float *r0 = yo + (size_t)oy * OW + ox, *r1 = r0 + OW;
            float a = r0[0], b = ix1 ? r0[1] : 0.0f;
            float c = in1 ? r1[0] : 0.0f, e = in1 && ix1 ? r1[1] : 0.0f;
            float r[4][2] = {{a, b}, {a + c, b + e}, {a - c, b - e}, {-c, -e}};
            for (int i = 0; i < 4; i++) {
                d[(4 * i + 0) * xs + t] = r[i][0];
                d[(4 * i + 1) * xs + t] = r[i][0] + r[i][1];
                d[(4 * i + 2) * xs + t] = r[i][0] - r[i][1];
                d[(4 * i + 3) * xs + t] = -r[i][1];
            }
        }
    }
}

/* dW += G^T Z G for Z (16,OC,C) */
static void wino_dw_out(float *dw, const float *Z, int o, int OC, int C)
{
    size_t xs = (size_t)OC * C;
    for (int c = 0; c < C; c++) {
        const float *z = Z + (size_t)o * C + c;
        float t[3][4], *k = dw + ((size_t)o * C + c) * 9;
        for (int j = 0; j < 4; j++) {
            float z0 = z[(0 + j) * xs], z1 = z[(4 + j) * xs], z2 = z[(8 + j) * xs];
            float z3 = z[(12 + j) * xs];
            t[0][j] = z0 + 0.5f * (z1 + z2);
            t[1][j] = 0.5f * (z1 - z2);
            t[2][j] = 0.5f * (z1 + z2) + z3;
        }
        for (int i = 0; i < 3; i++) {
            k[3 * i + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
            k[3 * i + 1] += 0.5f * (t[i][1] - t[i][2]);
            k[3 * i + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
        }
    }
}

/* The weight gradient the same way: y = A^T [(G g G^T) .* V] A gives
   dL/dg = G^T [sum over tiles (A dy A^T) .* V] G, the tile sum at each of the 16 positions a
   GEMM Z_xi (OC,C) += dY_xi (OC,T) V_xi^T (T,C), per thread, reduced at the end. */
void nn_wino_dw(float *dw, float *scratch, const float *dout, const float *in,
                const struct nn_conv *g)
{
    struct wplan p;
    int nt = nn_get_threads();
    wino_plan(&p, g);
    if (nt > p.nt)
        nt = p.nt;
    int T = p.TH * p.TW, ntask = p.gi > 1 ? (g->N + p.gi - 1) / p.gi : g->N * p.nb;
    int OC = g->OC, C = g->C;
    size_t CHW = (size_t)C * g->H * g->W, OCHW = (size_t)OC * g->OH * g->OW;
#pragma omp parallel num_threads(nt)
    {
        /* the team may be smaller than asked (nested inside another parallel region) */
        int th = omp_get_thread_num(), nth = omp_get_num_threads();
        float *Z = scratch + p.u * th;
        float *P = scratch + p.u * p.nt + p.slice * th, *V = P + p.pad, *D = V + p.v;
        memset(Z, 0, sizeof(float) * p.u);
#pragma omp for schedule(static)
        for (int k = 0; k < ntask; k++) {
            int n0, n1, t0, t1, ld;
            if (p.gi > 1) {
                n0 = k * p.gi, n1 = n0 + p.gi < g->N ? n0 + p.gi : g->N, t0 = 0, t1 = T;
                ld = (n1 - n0) * T;
            } else {
                n0 = k / p.nb, n1 = n0 + 1, t0 = k % p.nb * p.blk;
                t1 = t0 + p.blk < T ? t0 + p.blk : T, ld = t1 - t0;
            }
            for (int n = n0; n < n1; n++) {
                wino_in(V, ld, (n - n0) * (t1 - t0), P, in + n * CHW, g, &p, t0, t1);
                wino_dy(D, ld, (n - n0) * (t1 - t0), dout + n * OCHW, g, &p, t0, t1);
            }
            for (int xi = 0; xi < 16; xi++)
                nn_sgemm_serial(0, 1, OC, C, ld, 1.0f, D + (size_t)xi * OC * ld, ld,
                                V + (size_t)xi * C * ld, ld, 1.0f, Z + (size_t)xi * OC * C, C);
        }
        /* implicit barrier: every Z is complete */
#pragma omp for schedule(static)
        for (size_t i = 0; i < p.u; i++)
            for (int s = 1; s < nth; s++)
                scratch[i] += scratch[p.u * s + i];
#pragma omp for schedule(static)
        for (int o = 0; o < OC; o++)
            wino_dw_out(dw, scratch, o, OC, C);
    }
}
