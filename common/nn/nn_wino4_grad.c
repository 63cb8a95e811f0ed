/* The backward of Winograd F(4x4, 3x3) (nn_wino4.h), like the forward (nn_wino4.c): the data
   gradient as a forward conv on flipped, transposed weights, the weight gradient as 36 GEMMs
   over the tiles of the batch (see below), the bias gradient as float sums. */
#include "nn/nn_wino4.h"

#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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
    return 36 * (nn_wino4_slot((size_t)C * T) + (size_t)OC * T + (size_t)OC * C);
}

#if defined(__AVX512F__)
/* o = A y on 16 tiles a lane: wg_a2's float operations in its order (the build does not
   contract a*b+c into an fma, intrinsics or not) */
static inline void wg_a2v(__m512 *o, __m512 y0, __m512 y1, __m512 y2, __m512 y3)
{
    __m512 y1_2 = _mm512_mul_ps(_mm512_set1_ps(2), y1);
    __m512 y2_4 = _mm512_mul_ps(_mm512_set1_ps(4), y2);
    __m512 y3_8 = _mm512_mul_ps(_mm512_set1_ps(8), y3);
    o[0] = y0;
    o[1] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(y0, y1), y2), y3);
    o[2] = _mm512_sub_ps(_mm512_add_ps(_mm512_sub_ps(y0, y1), y2), y3);
    o[3] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(y0, y1_2), y2_4), y3_8);
    o[4] = _mm512_sub_ps(_mm512_add_ps(_mm512_sub_ps(y0, y1_2), y2_4), y3_8);
    o[5] = y3;
}

/* Where the next floats of one channel's tile rows are: the maps' tile rows (b, ty) in order,
   W floats each, so that float 4t + j is column j of tile t and a vector holds 4 tiles */
struct wg_cur {
    int b, ty, x;
};

/* v[i] lanes [0, n) = the next n floats of row i of the tile rows, lanes from n on 0; y: the
   channel's map in image 0, bs: the image stride. A vector crosses tile rows (and images)
   when W is not a multiple of 16: one expanding load per piece. */
static inline void wg_load(__m512 *v, struct wg_cur *c, int n, const float *y, size_t bs, int W,
                           int th)
{
    for (int i = 0; i < 4; i++)
        v[i] = _mm512_setzero_ps();
    for (int s = 0; s < n;) {
        int len = W - c->x < n - s ? W - c->x : n - s;
        const float *q = y + (size_t)c->b * bs + (size_t)(4 * c->ty) * W + c->x;
        if (len == 16)
            for (int i = 0; i < 4; i++)
                v[i] = _mm512_loadu_ps(q + (size_t)i * W);
        else
            for (int i = 0; i < 4; i++)
                v[i] = _mm512_mask_expandloadu_ps(v[i], (__mmask16)(((1u << len) - 1) << s),
                                                  q + (size_t)i * W);
        s += len;
        if ((c->x += len) == W) {
            c->x = 0;
            if (++c->ty == th)
                c->ty = 0, c->b++;
        }
    }
}

/* M's 36 rows for channel o, tiles [t0, t0 + n), n <= 16, from dout (H, W multiples of 4):
   a tile a lane, so each output is one store into M's row (tiles contiguous in T).
   Full aligned lines are streamed: the 36 rows lie a multiple of 4 KiB apart, all in one L1
   set, and ordinary stores (each a read for ownership) made the transform 2.5x slower.
   Staging 8 groups in L1 and copying out runs of 128 tiles instead made nn_wino4_dw 5% slower
   at 32x32 (the GEMMs gained nothing from finding M in cache). */
static void wg_dout16(float *M, size_t st, const float *y, size_t bs, int W, int th, size_t t0,
                      int n)
{
    /* lane u of vector k: float 16k + u, i.e. tile 4k + u/4, column u%4 */
    const __m512i i01 =
        _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_add_epi32(i01, _mm512_set1_epi32(2));
    int tpr = W / 4; /* tiles per tile row */
    struct wg_cur c = {(int)(t0 / ((size_t)th * tpr)), (int)(t0 / tpr % th), (int)(t0 % tpr) * 4};
    __m512 v[4][4], d[4][4], e[6][4], f[6];
    for (int k = 0; k < 4; k++) {
        int m = 4 * n - 16 * k;
        __m512 r[4];
        wg_load(r, &c, m < 0 ? 0 : m < 16 ? m : 16, y, bs, W, th);
        for (int i = 0; i < 4; i++)
            v[i][k] = r[i];
    }
    /* d[i][j]: row i, column j of the 16 tiles: two rounds of permutes, lanes to tiles */
    for (int i = 0; i < 4; i++) {
        __m512 a = _mm512_permutex2var_ps(v[i][0], i01, v[i][1]); /* j 0, 1 of tiles 0-7 */
        __m512 b = _mm512_permutex2var_ps(v[i][0], i23, v[i][1]); /* j 2, 3 */
        __m512 a2 = _mm512_permutex2var_ps(v[i][2], i01, v[i][3]); /* tiles 8-15 */
        __m512 b2 = _mm512_permutex2var_ps(v[i][2], i23, v[i][3]);
        d[i][0] = _mm512_shuffle_f32x4(a, a2, 0x44);
        d[i][1] = _mm512_shuffle_f32x4(a, a2, 0xee);
        d[i][2] = _mm512_shuffle_f32x4(b, b2, 0x44);
        d[i][3] = _mm512_shuffle_f32x4(b, b2, 0xee);
    }
    for (int j = 0; j < 4; j++) { /* columns: e (6,4) */
        __m512 o[6];
        wg_a2v(o, d[0][j], d[1][j], d[2][j], d[3][j]);
        for (int k = 0; k < 6; k++)
            e[k][j] = o[k];
    }
    __mmask16 ms = (__mmask16)((1u << n) - 1);
    int stream = n == 16 && ((uintptr_t)(M + t0) | st * sizeof(float)) % 64 == 0;
    for (int k = 0; k < 6; k++) { /* rows: point 6k + l */
        wg_a2v(f, e[k][0], e[k][1], e[k][2], e[k][3]);
        for (int l = 0; l < 6; l++)
            if (stream)
                _mm512_stream_ps(M + (size_t)(6 * k + l) * st + t0, f[l]);
            else
                _mm512_mask_storeu_ps(M + (size_t)(6 * k + l) * st + t0, ms, f[l]);
    }
}
#endif

/* M (36, OC, T) = A dY A^T of every 4x4 tile of dout (B, OC, H, W), zero beyond the map */
static void wg_dout_tiles(float *M, const float *dout, int B, int OC, int H, int W)
{
    int th = (H + 3) / 4, tw = (W + 3) / 4, tpi = th * tw;
    size_t T = (size_t)B * tpi, HW = (size_t)H * W;
#if defined(__AVX512F__)
    /* lanes over 16 consecutive tiles of one channel, across tile rows and images, so that the
       small maps (4 tiles of an 8x8 map, 1 of a 4x4) fill the vectors too; the fence orders
       the streamed stores before the barrier, ahead of the GEMMs' reads on other threads */
    if (H % 4 == 0 && W % 4 == 0) {
        int ng = (int)((T + 15) / 16);
#pragma omp parallel
        {
#pragma omp for collapse(2) schedule(static) nowait
            for (int o = 0; o < OC; o++)
                for (int g = 0; g < ng; g++) {
                    size_t t0 = (size_t)16 * g;
                    wg_dout16(M + (size_t)o * T, (size_t)OC * T, dout + (size_t)o * HW,
                              (size_t)OC * HW, W, th, t0, T - t0 < 16 ? (int)(T - t0) : 16);
                }
            _mm_sfence();
        }
        return;
    }
#endif
    /* plain C: other builds, and maps with a partial tile */
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
}

/* 3x3 stride-1 pad-1 conv C -> OC on (B,C,H,W): dw (OC,C,3,3) += ; scratch of
   nn_wino4_dw_scratch. kept: the input's tiles (36,C,T) as the forward made them
   (nn_wino4_forward_keep, slots nn_wino4_slot(C * T) floats apart), or NULL to make them here with the forward's transform. */
void nn_wino4_dw(float *dw, float *scratch, const float *kept, const float *dout,
                 const float *in, int B, int C, int H, int W, int OC)
{
    size_t T = (size_t)B * ((H + 3) / 4) * ((W + 3) / 4), psv = nn_wino4_slot((size_t)C * T);
    float *V = scratch, *M = V + 36 * psv, *S = M + 36 * (size_t)OC * T;
    const float *Vr = kept != NULL ? kept : V;

    if (kept == NULL)
        nn_wino4_input_tiles(V, T, 0, in, B, C, H, W);
    wg_dout_tiles(M, dout, B, OC, H, W);
    /* S_p = M_p V_p^T per point on the chain kernel (V_p's panels transposed as they are
       copied): every S element is one fmaf chain over the tiles in order, so the result
       depends neither on the thread count nor on OpenBLAS's kernels (under its Haswell
       kernels, on AVX-512 machines, these GEMMs ran at half the chain kernel's speed) */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < 36; p++)
        nn_sgemm_chain_bt(OC, C, (int)T, M + (size_t)p * OC * T, (int)T, Vr + (size_t)p * psv,
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
