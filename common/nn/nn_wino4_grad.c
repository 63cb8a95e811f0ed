/* The backward of Winograd F(4x4, 3x3) (nn_wino4.h), like the forward (nn_wino4.c): the data
   gradient as a forward conv on flipped, transposed weights, the weight gradient as 36 GEMMs
   over the tiles of the batch (see below), the bias gradient as float sums. */
#include "nn/nn_wino4.h"

#include <string.h>

#include "nn/nn.h"

/* ---- Winograd weight gradient ----
   The forward is F(4x4, 3x3) on points 0, +-1, +-2, inf: y = A^T [(G g G^T) . (B^T d B)] A.
   By the transposition principle the kernel gradient of one 4x4 output tile is
   dW = G^T [(A dY A^T) . (B^T X B)] G with the same 6x6 input patch X, so summed over tiles
   it is 36 GEMMs (OC x T) (T x C) over all T tiles of the batch, a quarter of im2col's
   multiplies. B^T, G as in nn_wino4.c; A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
   0 1 -1 8 -8 1]. */

#define WG_VEC 64 /* vector length of the weight-gradient transforms */

/* o[k*s] = (A y)[k], y[i*si] i < 4 -> 6 values */
static inline void wg_a2(float *o, const float *y, int si, int s)
{
    float y0 = y[0], y1 = y[si], y2 = y[2 * si], y3 = y[3 * si];
    o[0] = y0;
    o[s] = y0 + y1 + y2 + y3;
    o[2 * s] = y0 - y1 + y2 - y3;
    o[3 * s] = y0 + 2 * y1 + 4 * y2 + 8 * y3;
    o[4 * s] = y0 - 2 * y1 + 4 * y2 - 8 * y3;
    o[5 * s] = y3;
}

/* wf (C,OC,3,3) = w (OC,C,3,3) flipped in both axes with the channels swapped: the kernel of
   the data gradient (a conv OC -> C), which nn_wino4_weights then transforms like any other */
static void flip_weights(float *wf, const float *w, int C, int OC)
{
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int o = 0; o < OC; o++) {
            const float *g = w + ((size_t)o * C + c) * 9;
            float *f = wf + ((size_t)c * OC + o) * 9;
            for (int k = 0; k < 9; k++)
                f[k] = g[8 - k];
        }
}

#define WG_ROW 132 /* widest row of the vectorised tile transforms */

size_t nn_wino4_dw_scratch(int B, int C, int H, int W, int OC)
{
    size_t T = (size_t)B * ((H + 3) / 4) * ((W + 3) / 4);
    return 36 * ((size_t)C * T + (size_t)OC * T + (size_t)OC * C);
}

/* 3x3 stride-1 pad-1 conv C -> OC on (B,C,H,W): dw (OC,C,3,3) += ; scratch of
   nn_wino4_dw_scratch. kept: the input's tiles (36,C,T) as the forward made them
   (nn_wino4_forward_keep), or NULL to make them here with the forward's transform. */
void nn_wino4_dw(float *dw, float *scratch, const float *kept, const float *dout,
                 const float *in, int B, int C, int H, int W, int OC)
{
    int th = (H + 3) / 4, tw = (W + 3) / 4, tpi = th * tw;
    size_t T = (size_t)B * tpi, HW = (size_t)H * W;
    float *V = scratch, *M = V + 36 * (size_t)C * T, *S = M + 36 * (size_t)OC * T;
    const float *Vr = kept != NULL ? kept : V;

    if (kept == NULL)
        nn_wino4_input_tiles(V, T, 0, in, B, C, H, W);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            const float *y = dout + ((size_t)b * OC + o) * HW;
            if (H % 4 == 0 && W % 4 == 0 && W <= WG_ROW) {
                /* A down the 4 rows of a tile row at every x, then A across each tile */
                for (int ty = 0; ty < th; ty++) {
                    float e[6][WG_ROW];
                    const float *q = y + (size_t)(4 * ty) * W;
                    size_t t0 = (size_t)b * tpi + (size_t)ty * tw;
                    for (int xx = 0; xx < W; xx++)
                        wg_a2(&e[0][xx], q + xx, W, WG_ROW);
                    for (int k = 0; k < 6; k++) {
                        float *m = M + ((size_t)(k * 6) * OC + o) * T + t0;
                        size_t st = (size_t)OC * T;
                        for (int tx = 0; tx < tw; tx++) {
                            float o6[6];
                            wg_a2(o6, &e[k][4 * tx], 1, 1);
                            for (int l = 0; l < 6; l++)
                                m[l * st + tx] = o6[l];
                        }
                    }
                }
                continue;
            }
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx++) {
                    float d[16], e[24], f[36];
                    size_t t = (size_t)b * tpi + ty * tw + tx;
                    const float *q = y + (size_t)(4 * ty) * W + 4 * tx;
                    if (4 * ty + 4 <= H && 4 * tx + 4 <= W) {
                        for (int j = 0; j < 4; j++)
                            wg_a2(e + j, q + j, W, 4);       /* columns: e (6,4) */
                    } else {
                        for (int i = 0; i < 4; i++) {
                            int iy = 4 * ty + i;
                            for (int j = 0; j < 4; j++) {
                                int ix = 4 * tx + j;
                                d[i * 4 + j] = iy < H && ix < W ? y[(size_t)iy * W + ix] : 0.0f;
                            }
                        }
                        for (int j = 0; j < 4; j++)
                            wg_a2(e + j, d + j, 4, 4);
                    }
                    for (int i = 0; i < 6; i++)
                        wg_a2(f + i * 6, e + i * 4, 1, 1); /* rows: f (6,6) */
                    for (int p = 0; p < 36; p++)
                        M[((size_t)p * OC + o) * T + t] = f[p];
                }
        }
    /* S_p = M_p V_p^T per point on the chain kernel (V_p's panels transposed as they are
       copied): every S element is one fmaf chain over the tiles in order, so the result
       depends neither on the thread count nor on OpenBLAS's kernels (under its Haswell
       kernels, on AVX-512 machines, these GEMMs ran at half the chain kernel's speed) */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < 36; p++)
        nn_sgemm_chain_bt(OC, C, (int)T, M + (size_t)p * OC * T, (int)T, Vr + (size_t)p * C * T,
                          (int)T, S + (size_t)p * OC * C, C);
    /* dW = G^T S G per (o, c), vector operations over c */
#pragma omp parallel for collapse(2) schedule(static)
    for (int o = 0; o < OC; o++)
        for (int c0 = 0; c0 < C; c0 += WG_VEC) {
            const float r6 = 1.0f / 6, r12 = 1.0f / 12, r24 = 1.0f / 24;
            int n = C - c0 < WG_VEC ? C - c0 : WG_VEC;
            float e[3][6][WG_VEC];
            for (int x = 0; x < 6; x++) {       /* e = G^T S (columns) */
                const float *v = S + ((size_t)x * OC + o) * C + c0;
                size_t st = (size_t)6 * OC * C;
                for (int i = 0; i < n; i++) {
                    float v0 = v[i], v1 = v[st + i], v2 = v[2 * st + i], v3 = v[3 * st + i];
                    float v4 = v[4 * st + i], v5 = v[5 * st + i];
                    e[0][x][i] = v0 * 0.25f - (v1 + v2) * r6 + (v3 + v4) * r24;
                    e[1][x][i] = (v2 - v1) * r6 + (v3 - v4) * r12;
                    e[2][x][i] = (v3 + v4 - v1 - v2) * r6 + v5;
                }
            }
            for (int y = 0; y < 3; y++)         /* r = e G (rows) */
                for (int i = 0; i < n; i++) {
                    float v0 = e[y][0][i], v1 = e[y][1][i], v2 = e[y][2][i], v3 = e[y][3][i];
                    float v4 = e[y][4][i], v5 = e[y][5][i];
                    float *g = dw + ((size_t)o * C + c0 + i) * 9 + y * 3;
                    g[0] += v0 * 0.25f - (v1 + v2) * r6 + (v3 + v4) * r24;
                    g[1] += (v2 - v1) * r6 + (v3 - v4) * r12;
                    g[2] += (v3 + v4 - v1 - v2) * r6 + v5;
                }
        }
}

/* The data gradient is the convolution of dout with the flipped kernel, channels swapped:
   the forward's Winograd on weights transformed here at each call (they change every step).
   The flipped weights go to the scratch first, which the forward then reuses. */
size_t nn_wino4_dx_scratch(int B, int C, int H, int W, int OC)
{
    size_t f = nn_wino4_scratch(B, OC, H, W, C), wf = (size_t)9 * C * OC;
    return f > wf ? f : wf;
}

void nn_wino4_dx(float *din, float *U, float *scratch, const float *dout, const float *w, int B,
                 int C, int H, int W, int OC)
{
    flip_weights(scratch, w, C, OC);
    nn_wino4_weights(U, scratch, OC, C);
    nn_wino4_forward(din, scratch, dout, U, NULL, B, OC, H, W, C, NULL);
}
