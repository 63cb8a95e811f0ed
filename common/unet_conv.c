/* 3x3 stride-1 pad-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray 2016): each 4x4 output
   tile costs 36 multiplies per channel pair instead of 144. The 36 products become 36 GEMMs
   (OC x C) x (C x tiles), run one per thread with the serial SGEMM so that the result of a
   tile depends neither on the thread count nor on how many images share the call.
   Transforms (points 0, +-1, +-2, inf):
     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
            0 4 0 -5 0 1]
     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
   float32 error is about 1e-6 relative to the output scale for these channel counts. */
#include "unet.h"

#include <string.h>

#include "nn.h"

#define TS 4 /* output tile */
#define AS 6 /* input tile */

static inline void bt6(float *o, const float *d, int s)
{
    float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    o[0] = 4 * d0 - 5 * d2 + d4;
    o[s] = -4 * d1 - 4 * d2 + d3 + d4;
    o[2 * s] = 4 * d1 - 4 * d2 - d3 + d4;
    o[3 * s] = -2 * d1 - d2 + 2 * d3 + d4;
    o[4 * s] = 2 * d1 - d2 - 2 * d3 + d4;
    o[5 * s] = 4 * d1 - 5 * d3 + d5;
}

static inline void at6(float *o, const float *m, int si, int so)
{
    float m0 = m[0], m1 = m[si], m2 = m[2 * si], m3 = m[3 * si], m4 = m[4 * si], m5 = m[5 * si];
    float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
    o[0] = m0 + a + c;
    o[so] = b + 2 * d;
    o[2 * so] = a + 4 * c;
    o[3 * so] = b + 8 * d + m5;
}

static inline void g3(float *o, const float *g, int si, int so)
{
    float g0 = g[0], g1 = g[si], g2 = g[2 * si];
    o[0] = g0 / 4;
    o[so] = -(g0 + g1 + g2) / 6;
    o[2 * so] = -(g0 - g1 + g2) / 6;
    o[3 * so] = g0 / 24 + g1 / 12 + g2 / 6;
    o[4 * so] = g0 / 24 - g1 / 12 + g2 / 6;
    o[5 * so] = g2;
}

size_t unet_wino_scratch(int N, int C, int H, int W, int OC)
{
    size_t T = (size_t)N * ((H + TS - 1) / TS) * ((W + TS - 1) / TS);
    return 36 * ((size_t)C * T + (size_t)OC * T);
}

void unet_wino_weights(float *U, const float *w, int C, int OC)
{
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)oc * C + c) * 9;
            float t[6 * 3], u[36];
            for (int j = 0; j < 3; j++)
                g3(t + j, g + j, 3, 3);      /* columns: t (6,3) = G g */
            for (int i = 0; i < 6; i++)
                g3(u + i * 6, t + i * 3, 1, 1); /* rows: u (6,6) = t G^T */
            for (int p = 0; p < 36; p++)
                U[((size_t)p * OC + oc) * C + c] = u[p];
        }
}

void unet_wino_conv3(float *out, float *scratch, const float *in, const float *U,
                     const float *b, int N, int C, int H, int W, int OC)
{
    int th = (H + TS - 1) / TS, tw = (W + TS - 1) / TS, tpi = th * tw;
    size_t T = (size_t)N * tpi;
    float *V = scratch;                          /* (36, C, T) */
    float *M = V + 36 * (size_t)C * T;           /* (36, OC, T) */

    /* input tiles: V[p][c][t] = (B^T d B)[p], d the 6x6 patch at (4ty-1, 4tx-1) */
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *x = in + ((size_t)n * C + c) * H * W;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[36], e[36];
                    int y0 = ty * TS - 1, x0 = tx * TS - 1;
                    size_t t = (size_t)n * tpi + ty * tw + tx;
                    if (y0 >= 0 && x0 >= 0 && y0 + AS <= H && x0 + AS <= W) {
                        for (int i = 0; i < AS; i++)
                            memcpy(d + i * AS, x + (size_t)(y0 + i) * W + x0, AS * sizeof(float));
                    } else {
                        for (int i = 0; i < AS; i++)
                            for (int j = 0; j < AS; j++) {
                                int yy = y0 + i, xx = x0 + j;
                                d[i * AS + j] = yy >= 0 && yy < H && xx >= 0 && xx < W
                                                    ? x[(size_t)yy * W + xx] : 0.0f;
                            }
                    }
                    for (int j = 0; j < AS; j++)
                        bt6(e + j, d + j, AS);       /* columns */
                    for (int i = 0; i < AS; i++)
                        bt6(d + i * AS, e + i * AS, 1); /* rows */
                    for (int p = 0; p < 36; p++)
                        V[((size_t)p * C + c) * T + t] = d[p];
                }
        }

    /* the 36 products, one serial GEMM each */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < 36; p++)
        nn_sgemm_serial(0, 0, OC, (int)T, C, 1.0f, U + (size_t)p * OC * C, C,
                        V + (size_t)p * C * T, (int)T, 0.0f, M + (size_t)p * OC * T, (int)T);

    /* output tiles: Y = A^T m A + bias */
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int oc = 0; oc < OC; oc++) {
            float *y = out + ((size_t)n * OC + oc) * H * W, bias = b ? b[oc] : 0.0f;
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float m[36], e[24], r[16];
                    size_t t = (size_t)n * tpi + ty * tw + tx;
                    for (int p = 0; p < 36; p++)
                        m[p] = M[((size_t)p * OC + oc) * T + t];
                    for (int j = 0; j < AS; j++)
                        at6(e + j, m + j, AS, AS);     /* columns: e (4,6) */
                    for (int i = 0; i < TS; i++)
                        at6(r + i * TS, e + i * AS, 1, 1); /* rows: r (4,4) */
                    for (int i = 0; i < TS && ty * TS + i < H; i++)
                        for (int j = 0; j < TS && tx * TS + j < W; j++)
                            y[(size_t)(ty * TS + i) * W + tx * TS + j] = r[i * TS + j] + bias;
                }
        }
}
