/* 3x3 stride-1 pad-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray 2016): each 4x4 output
   tile costs 36 multiplies per channel pair instead of 144. The 36 products become 36 GEMMs
   (OC x C) x (C x tiles), by nn_sgemm_chain (nn_chain.c): each output is one fmaf chain over
   the input channels in order, so a tile's result depends neither on the thread count nor on
   how many images share the call, and the GEMMs run on the batch's tiles alone, unpadded.
   Transforms (points 0, +-1, +-2, inf):
     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
            0 4 0 -5 0 1]
     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
   float32 error is about 1e-6 relative to the output scale for these channel counts.
   Why both this and F(2x2,3x3) (nn_wino.c, what nn_conv.c dispatches to): on the UNet's
   shapes (128-256 channels, batch 16, pad 1) this one is faster, so the UNet calls it; under
   nn_conv.c, with any padding and the Inception network's shapes, F(4x4) measured no faster
   and its rounding error is about 20x larger. See nn_wino4.h. */
#include "nn/nn_wino4.h"

#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "util/util.h"

#define TS 4 /* output tile */
#define AS 6 /* input tile */

/* the 1-D transforms over n tiles, in place, six distinct slot vectors */
static void bt6v(float *restrict p0, float *restrict p1, float *restrict p2,
                 float *restrict p3, float *restrict p4, float *restrict p5, int n)
{
    for (int t = 0; t < n; t++) {
        float d0 = p0[t], d1 = p1[t], d2 = p2[t], d3 = p3[t], d4 = p4[t], d5 = p5[t];
        p0[t] = 4 * d0 - 5 * d2 + d4;
        p1[t] = -4 * d1 - 4 * d2 + d3 + d4;
        p2[t] = 4 * d1 - 4 * d2 - d3 + d4;
        p3[t] = -2 * d1 - d2 + 2 * d3 + d4;
        p4[t] = 2 * d1 - d2 - 2 * d3 + d4;
        p5[t] = 4 * d1 - 5 * d3 + d5;
    }
}

static void at6v(float *restrict p0, float *restrict p1, float *restrict p2,
                 float *restrict p3, const float *restrict p4, const float *restrict p5, int n)
{
    for (int t = 0; t < n; t++) {
        float m0 = p0[t], m1 = p1[t], m2 = p2[t], m3 = p3[t], m4 = p4[t], m5 = p5[t];
        float s1 = m1 + m2, d1 = m1 - m2, s3 = m3 + m4, d3 = m3 - m4;
        p0[t] = m0 + s1 + s3;
        p1[t] = d1 + 2 * d3;
        p2[t] = s1 + 4 * s3;
        p3[t] = d1 + 8 * d3 + m5;
    }
}

/* B^T applied to the 6 vectors at slots base + k*a (k = 0..5) for each of the 6 bases
   base = l*b (l = 0..5), over n tiles, in place; slot s lives at v + s*ps */
static void wino_bt_pass(float *v, size_t ps, int n, int a, int b)
{
    for (int l = 0; l < AS; l++) {
        float *p = v + (size_t)(l * b) * ps;
        size_t s = (size_t)a * ps;
        bt6v(p, p + s, p + 2 * s, p + 3 * s, p + 4 * s, p + 5 * s, n);
    }
}

/* A^T: 6 slots base + k*a -> 4 slots base + k*a (k = 0..3), bases l*b (l = 0..5 when the
   other direction is still 6 wide, else 0..3) */
static void wino_at_pass(float *v, size_t ps, int n, int a, int b)
{
    int nl = a == 1 ? AS : TS; /* the first pass (along r) runs for all 6 q */
    for (int l = 0; l < nl; l++) {
        float *p = v + (size_t)(l * b) * ps;
        size_t s = (size_t)a * ps;
        at6v(p, p + s, p + 2 * s, p + 3 * s, p + 4 * s, p + 5 * s, n);
    }
}

/* The GEMMs' columns are the batch's tiles, T = N * tiles per image: nn_sgemm_chain gives a
   column the same bits whatever the width of the call and the column's place in it, so no
   padding (with OpenBLAS's kernels, whose sums depend on both, every GEMM was padded to fixed
   chunks of 256 columns, mostly zeros at batch 1). A chunk is still what a caller cuts its
   batch by for a smaller scratch (nn_wino4_chunk_images): about 256 tiles, whole images. */
static int wino_imgs_per_chunk(int tpi)
{
    if (tpi < 16)
        return 16;
    return tpi >= 256 ? 1 : (256 + tpi - 1) / tpi;
}

static size_t wino_cols(int N, int tpi)
{
    return (size_t)N * tpi;
}

/* columns of the GEMM calls: any cut gives the same bits; this one feeds both threads */
#define WINO_GEMM_COLS 256

static int wino_tpi(int H, int W)
{
    return ((H + TS - 1) / TS) * ((W + TS - 1) / TS);
}

int nn_wino4_chunk_images(int H, int W)
{
    return wino_imgs_per_chunk(wino_tpi(H, W));
}

size_t nn_wino4_scratch(int N, int C, int H, int W, int OC)
{
    int tpi = wino_tpi(H, W), ipc = wino_imgs_per_chunk(tpi);
    size_t T = wino_cols(N > ipc ? N : ipc, tpi); /* (1, ...) holds a chunk */
    return 36 * ((size_t)C * T + (size_t)OC * T);
}

/* x/6, x/12, x/24 rounded as the float divisions are, without the divider: x times the double
   nearest 1/d, rounded to float. When x/d is a dyadic rational (3 divides x's significand) it
   has at most 24 bits, the double product lies within 2^-54 relative of it and rounds to it
   exactly; otherwise x/d's binary expansion repeats 01 and stays at least 2^-27 relative
   from a float halfway point, far beyond the product's error, so both round the same way.
   Checked on all 2^32 floats (NaNs aside) for d = 6, 12, 24. The divisions were the
   transform's cost: a 16-lane vdivps issues about once per 10 cycles. x/4 is x * 0.25f, an
   exact scaling rounded once either way. */
static inline float div6(float x)
{
    return (float)((double)x * (1.0 / 6));
}
static inline float div12(float x)
{
    return (float)((double)x * (1.0 / 12));
}
static inline float div24(float x)
{
    return (float)((double)x * (1.0 / 24));
}

/* U (36,OC,C) = G g G^T per (oc, c), in chunks of WW input channels so that each of the 36
   outputs is a contiguous vector store and the arithmetic vectorises (the same operations in
   the same order as a per-kernel G g G^T, so the same bits). Training rebuilds it every
   step, and inference on the convs left out of the cache at every use, so it is worth the
   care. */
#define WW 32
/* one kernel row oc, input channels c0 .. c0+n-1 (n <= WW): g its 3x3 kernels, u0 where
   U[0][oc][c0] lives, st the distance between two products' matrices */
static void wino_w_chunk(float *u0, size_t st, const float *g, int n)
{
    float f[9][WW], t[6][3][WW];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 9; k++)
            f[k][i] = g[i * 9 + k];
    for (int x = 0; x < 3; x++)
        for (int i = 0; i < n; i++) { /* t (6,3) = G g, columns */
            float g0 = f[x][i], g1 = f[3 + x][i], g2 = f[6 + x][i];
            t[0][x][i] = g0 * 0.25f;
            t[1][x][i] = div6(-(g0 + g1 + g2));
            t[2][x][i] = div6(-(g0 - g1 + g2));
            t[3][x][i] = div24(g0) + div12(g1) + div6(g2);
            t[4][x][i] = div24(g0) - div12(g1) + div6(g2);
            t[5][x][i] = g2;
        }
    for (int y = 0; y < 6; y++) { /* u (6,6) = t G^T, rows */
        float *u = u0 + (size_t)(y * 6) * st;
        for (int i = 0; i < n; i++) {
            float g0 = t[y][0][i], g1 = t[y][1][i], g2 = t[y][2][i];
            u[i] = g0 * 0.25f;
            u[st + i] = div6(-(g0 + g1 + g2));
            u[2 * st + i] = div6(-(g0 - g1 + g2));
            u[3 * st + i] = div24(g0) + div12(g1) + div6(g2);
            u[4 * st + i] = div24(g0) - div12(g1) + div6(g2);
            u[5 * st + i] = g2;
        }
    }
}

void nn_wino4_weights(float *U, const float *w, int C, int OC)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int oc = 0; oc < OC; oc++)
        for (int c0 = 0; c0 < C; c0 += WW)
            wino_w_chunk(U + (size_t)oc * C + c0, (size_t)OC * C, w + ((size_t)oc * C + c0) * 9,
                         C - c0 < WW ? C - c0 : WW);
}

size_t nn_wino4_tiles(int N, int C, int H, int W)
{
    return 36 * (size_t)C * wino_cols(N, wino_tpi(H, W));
}

void nn_wino4_input_tiles(float *V, size_t T, size_t c0, const float *in, int N, int C, int H,
                          int W)
{
    int th = (H + TS - 1) / TS, tw = (W + TS - 1) / TS, tpi = th * tw;
    size_t Tr = (size_t)N * tpi;

    /* input tiles, in place in V: first the 6x6 patches de-interleaved per (image, channel)
       (slot i*6+j holds d[i][j] of every tile, contiguous over the tiles of all images),
       then per channel B^T along i and along j as vector operations over all tiles */
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *x = in + ((size_t)n * C + c) * H * W;
            float *vb = V + (size_t)c * T + c0 + (size_t)n * tpi;
            size_t ps = (size_t)C * T;
            float prow[tw * TS + 2 + 16]; /* a zero-padded input row */
            for (int ty = 0; ty < th; ty++)
                for (int i = 0; i < AS; i++) {
                    int yy = ty * TS - 1 + i;
                    float *d = vb + (size_t)i * AS * ps + ty * tw;
                    if (yy < 0 || yy >= H) {
                        for (int j = 0; j < AS; j++)
                            memset(d + j * ps, 0, tw * sizeof(float));
                        continue;
                    }
                    prow[0] = 0;
                    memcpy(prow + 1, x + (size_t)yy * W, W * sizeof(float));
                    for (int k = W + 1; k < tw * TS + 2; k++)
                        prow[k] = 0;
                    for (int j = 0; j < AS; j++) {
                        float *restrict dj = d + j * ps;
                        for (int tx = 0; tx < tw; tx++)
                            dj[tx] = prow[tx * TS + j];
                    }
                }
        }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float *v = V + (size_t)c * T;
        wino_bt_pass(v + c0, (size_t)C * T, (int)Tr, AS, 1); /* i*6+j -> q*6+j */
        wino_bt_pass(v + c0, (size_t)C * T, (int)Tr, 1, AS); /* q*6+j -> q*6+r */
        for (int p = 0; p < 36; p++) { /* the empty slots */
            memset(v + (size_t)p * C * T, 0, c0 * sizeof(float));
            memset(v + (size_t)p * C * T + c0 + Tr, 0, (T - c0 - Tr) * sizeof(float));
        }
    }
}

/* M (36,OC,T) = the products with the weights transformed here, WINO_OB kernel rows at a
   time just before those rows' 36 GEMMs: a conv whose transform is not cached (inference on
   the largest maps) then writes its U (4x the weights) to memory and reads it back no more; a
   block's 36 (WINO_OB, C) matrices (at most 0.9 MB at C = 512) stay in the L2 of the thread
   that made them. The same transform and the same chains, so the same bits. ub: 36*OC*C
   floats (nn_wino4_weights' room), cut into one block's room per thread when the threads'
   blocks fit, else per block. */
#define WINO_OB 12 /* a multiple of the chain kernel's row blocks (6 and 12) */
static void wino_products_w(float *M, const float *V, const float *w, float *ub, int T, int C,
                            int OC)
{
    int nb = (OC + WINO_OB - 1) / WINO_OB;
#pragma omp parallel
    {
        int per_thread = omp_get_num_threads() * WINO_OB <= OC;
#pragma omp for schedule(dynamic, 1)
        for (int ib = 0; ib < nb; ib++) {
            int oc0 = ib * WINO_OB, ob = OC - oc0 < WINO_OB ? OC - oc0 : WINO_OB;
            float *Ub = ub + 36 * (size_t)C *
                                 (per_thread ? (size_t)omp_get_thread_num() * WINO_OB : (size_t)oc0);
            for (int r = 0; r < ob; r++)
                for (int c0 = 0; c0 < C; c0 += WW)
                    wino_w_chunk(Ub + (size_t)r * C + c0, (size_t)ob * C,
                                 w + ((size_t)(oc0 + r) * C + c0) * 9,
                                 C - c0 < WW ? C - c0 : WW);
            for (int p = 0; p < 36; p++)
                nn_sgemm_chain(ob, T, C, Ub + (size_t)p * ob * C, C, V + (size_t)p * C * T, T,
                               M + ((size_t)p * OC + oc0) * T, T);
        }
    }
}

/* V (36,C,T) the input tiles, M (36,OC,T) the products */
static void wino_conv3(float *out, float *V, float *M, const float *in, const float *U,
                       const float *w, float *ub, const float *b, int N, int C, int H, int W,
                       int OC, struct nn_wino4_times *times)
{
    int th = (H + TS - 1) / TS, tw = (W + TS - 1) / TS, tpi = th * tw;
    size_t Tr = (size_t)N * tpi, T = Tr, c0 = 0;
    int nch = (int)((T + WINO_GEMM_COLS - 1) / WINO_GEMM_COLS);
    double t0 = times ? util_now() : 0.0, t1;

    nn_wino4_input_tiles(V, T, c0, in, N, C, H, W);
    if (times) {
        t1 = util_now();
        times->in_sec += t1 - t0;
        t0 = t1;
    }

    if (U != NULL) {
        /* the 36 products, one fixed-order GEMM per (product, block of columns) */
#pragma omp parallel for collapse(2) schedule(static)
        for (int p = 0; p < 36; p++)
            for (int j = 0; j < nch; j++) {
                size_t j0 = (size_t)j * WINO_GEMM_COLS;
                int nc = T - j0 < WINO_GEMM_COLS ? (int)(T - j0) : WINO_GEMM_COLS;
                nn_sgemm_chain(OC, nc, C, U + (size_t)p * OC * C, C,
                               V + (size_t)p * C * T + j0, (int)T,
                               M + (size_t)p * OC * T + j0, (int)T);
            }
    } else {
        wino_products_w(M, V, w, ub, (int)T, C, OC);
    }
    if (times) {
        t1 = util_now();
        times->gemm_sec += t1 - t0;
        times->gemm_flop += 72.0 * OC * C * (double)T;
        t0 = t1;
    }
    /* output tiles: A^T along r, then along q, in place in M (per out channel over all
       tiles), then interleaved into the 4x4 tiles with the bias (per image and channel) */
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        float *m = M + (size_t)oc * T + c0;
        wino_at_pass(m, (size_t)OC * T, (int)Tr, 1, AS); /* q*6+r -> q*6+j */
        wino_at_pass(m, (size_t)OC * T, (int)Tr, AS, 1); /* q*6+j -> i*6+j */
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int oc = 0; oc < OC; oc++) {
            float *y = out + ((size_t)n * OC + oc) * H * W, bias = b ? b[oc] : 0.0f;
            float *mb = M + (size_t)oc * T + c0 + (size_t)n * tpi;
            size_t ps = (size_t)OC * T;
            for (int ty = 0; ty < th; ty++)
                for (int i = 0; i < TS && ty * TS + i < H; i++) {
                    const float *m = mb + (size_t)i * AS * ps + ty * tw;
                    float *row = y + (size_t)(ty * TS + i) * W;
                    for (int tx = 0; tx < tw; tx++)
                        for (int j = 0; j < TS && tx * TS + j < W; j++)
                            row[tx * TS + j] = m[j * ps + tx] + bias;
                }
        }
    if (times)
        times->out_sec += util_now() - t0;
}

void nn_wino4_forward(float *out, float *scratch, const float *in, const float *U,
                      const float *b, int N, int C, int H, int W, int OC,
                      struct nn_wino4_times *times)
{
    wino_conv3(out, scratch, scratch + 36 * (size_t)C * wino_cols(N, wino_tpi(H, W)), in,
               U, NULL, NULL, b, N, C, H, W, OC, times);
}

void nn_wino4_forward_w(float *out, float *scratch, float *ubuf, const float *in,
                        const float *w, const float *b, int N, int C, int H, int W, int OC,
                        struct nn_wino4_times *times)
{
    const float *U = NULL;
    if (wino_cols(N, wino_tpi(H, W)) < 16) { /* the row-lane kernel wants 64 rows a call */
        double t0 = times ? util_now() : 0.0;
        nn_wino4_weights(ubuf, w, C, OC);
        if (times)
            times->gemm_sec += util_now() - t0;
        U = ubuf;
    }
    wino_conv3(out, scratch, scratch + 36 * (size_t)C * wino_cols(N, wino_tpi(H, W)), in,
               U, w, ubuf, b, N, C, H, W, OC, times);
}

void nn_wino4_forward_keep(float *out, float *scratch, float *v, const float *in,
                           const float *U, const float *b, int N, int C, int H, int W, int OC,
                           struct nn_wino4_times *times)
{
    wino_conv3(out, v, scratch, in, U, NULL, NULL, b, N, C, H, W, OC, times);
}
