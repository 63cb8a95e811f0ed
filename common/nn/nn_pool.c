/* Pooling and resampling over (N,C,H,W), one OpenMP task per (n,c) plane. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "nn/nn.h"

int nn_pool_out(int H, int K, int S, int P)
{
    if (H + 2 * P < K) /* C division truncates toward zero: (-1)/2 + 1 would be 1 */
        return 0;
    return (H + 2 * P - K) / S + 1;
}

/* Both pools reduce the window's rows first into one row buffer (unit stride, vectorised),
   then each output reduces its columns of that buffer: K + K operations per output instead
   of K * K with bounds checks. The 3x3 pools of the Inception network have their own paths. */
#define POOL_MAXW 4096

/* max_pool2d(3, S, P), P 0 or 1, on one plane: per output row the max of its (up to) 3 input
   rows into t (W floats between two -inf), then of 3 columns at stride S, branch-free. Exact,
   like any order of max. */
static void max3_plane(float *y, const float *x, int H, int W, int S, int P)
{
    int OH = nn_pool_out(H, 3, S, P), OW = nn_pool_out(W, 3, S, P);
    float tmp[POOL_MAXW + 2], *t = tmp + 1, *h = t - P;
    tmp[0] = tmp[W + 1] = -INFINITY;
    for (int i = 0; i < OH; i++, y += OW) {
        int r0 = i * S - P, r1 = r0 + 3;
        r0 = r0 < 0 ? 0 : r0;
        r1 = r1 > H ? H : r1;
        const float *a = x + (size_t)r0 * W, *b = a + W, *e = b + W;
        if (r1 - r0 == 3)
            for (int k = 0; k < W; k++) {
                float m = a[k] > b[k] ? a[k] : b[k];
                t[k] = e[k] > m ? e[k] : m;
            }
        else if (r1 - r0 == 2)
            for (int k = 0; k < W; k++)
                t[k] = a[k] > b[k] ? a[k] : b[k];
        else
            memcpy(t, a, sizeof(float) * W);
        for (int j = 0; j < OW; j++) {
            const float *q = h + j * S;
            float m = q[0] > q[1] ? q[0] : q[1];
            y[j] = q[2] > m ? q[2] : m;
        }
    }
}

static void max_plane(float *y, const float *x, int H, int W, int K, int S, int P)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    float v[POOL_MAXW];
    if (K == 3 && P <= 1) {
        max3_plane(y, x, H, W, S, P);
        return;
    }
    for (int oy = 0; oy < OH; oy++) {
        int y0 = oy * S - P, y1 = y0 + K < H ? y0 + K : H;
        y0 = y0 < 0 ? 0 : y0;
        for (int ix = 0; ix < W; ix++)
            v[ix] = x[(size_t)y0 * W + ix];
        for (int iy = y0 + 1; iy < y1; iy++) {
            const float *r = x + (size_t)iy * W;
            for (int ix = 0; ix < W; ix++)
                v[ix] = r[ix] > v[ix] ? r[ix] : v[ix];
        }
        for (int ox = 0; ox < OW; ox++) {
            int x0 = ox * S - P, x1 = x0 + K < W ? x0 + K : W;
            x0 = x0 < 0 ? 0 : x0;
            float m = -FLT_MAX;
            for (int ix = x0; ix < x1; ix++)
                m = v[ix] > m ? v[ix] : m;
            y[oy * OW + ox] = m;
        }
    }
}

void nn_max_pool2d_planes(float *out, const float *in, int n, int H, int W, int K, int S, int P)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    if (W > POOL_MAXW)
        return; /* programmer error: no map this wide in the project */
    for (int i = 0; i < n; i++)
        max_plane(out + (size_t)i * OH * OW, in + (size_t)i * H * W, H, W, K, S, P);
}

void nn_max_pool2d_forward(float *out, const float *in, int N, int C, int H, int W, int K,
                           int S, int P)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    if (W > POOL_MAXW)
        return; /* programmer error: no map this wide in the project */
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++)
        max_plane(out + (size_t)nc * OH * OW, in + (size_t)nc * H * W, H, W, K, S, P);
}

/* the sums of 3 along row x (W) into t, the missing neighbour at an edge added as 0 */
static void avg3_row(float *t, const float *x, int W)
{
    if (W == 1) {
        t[0] = x[0] + 0.0f + 0.0f;
        return;
    }
    t[0] = x[0] + 0.0f + x[1];
    for (int j = 1; j < W - 1; j++)
        t[j] = x[j] + x[j - 1] + x[j + 1];
    t[W - 1] = x[W - 1] + x[W - 2] + 0.0f;
}

/* avg_pool2d(3, 1, 1) on one plane, separably: the row sums of 3 (rows i-1, i, i+1 in a ring
   of 3 row buffers), then the sums of 3 of them, divided by the window's count: 9, or with
   count_include_pad false the real pixels. Sums in the order (centre + left) + right,
   (centre + up) + down, a missing neighbour as + 0: the Inception network's features depend
   on these exact roundings. */
static void avg3_plane(float *y, const float *x, int H, int W, int cip)
{
    static const float zero[POOL_MAXW];
    float ring[3][POOL_MAXW];
    avg3_row(ring[0], x, W);
    for (int i = 0; i < H; i++, y += W) {
        const float *t = ring[i % 3], *u = i > 0 ? ring[(i + 2) % 3] : zero;
        const float *d = i < H - 1 ? ring[(i + 1) % 3] : zero;
        if (i + 1 < H)
            avg3_row(ring[(i + 1) % 3], x + (size_t)(i + 1) * W, W);
        int ch = 1 + (i > 0) + (i < H - 1);
        float dj = (float)(cip ? 9 : ch * 3), de = (float)(cip ? 9 : W > 1 ? ch * 2 : ch);
        for (int j = 1; j < W - 1; j++)
            y[j] = (t[j] + u[j] + d[j]) / dj;
        y[0] = (t[0] + u[0] + d[0]) / de;
        y[W - 1] = (t[W - 1] + u[W - 1] + d[W - 1]) / de;
    }
}

/* torch's divisor: the window clipped to the padded input when count_include_pad, else to
   the input */
static void avg_plane(float *y, const float *x, int H, int W, int K, int S, int P, int cip)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    float v[POOL_MAXW];
    if (K == 3 && S == 1 && P == 1) {
        avg3_plane(y, x, H, W, cip);
        return;
    }
    for (int oy = 0; oy < OH; oy++) {
        int y0 = oy * S - P, y1 = y0 + K < H + P ? y0 + K : H + P;
        int ph = y1 - y0;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > H ? H : y1;
        for (int ix = 0; ix < W; ix++)
            v[ix] = x[(size_t)y0 * W + ix];
        for (int iy = y0 + 1; iy < y1; iy++) {
            const float *r = x + (size_t)iy * W;
            for (int ix = 0; ix < W; ix++)
                v[ix] += r[ix];
        }
        for (int ox = 0; ox < OW; ox++) {
            int x0 = ox * S - P, x1 = x0 + K < W + P ? x0 + K : W + P;
            int pw = x1 - x0;
            x0 = x0 < 0 ? 0 : x0;
            x1 = x1 > W ? W : x1;
            float sum = 0;
            for (int ix = x0; ix < x1; ix++)
                sum += v[ix];
            int div = cip ? ph * pw : (y1 - y0) * (x1 - x0);
            y[oy * OW + ox] = sum / (float)div;
        }
    }
}

void nn_avg_pool2d_planes(float *out, const float *in, int n, int H, int W, int K, int S, int P,
                          int count_include_pad)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    if (W > POOL_MAXW)
        return; /* programmer error: no map this wide in the project */
    for (int i = 0; i < n; i++)
        avg_plane(out + (size_t)i * OH * OW, in + (size_t)i * H * W, H, W, K, S, P,
                  count_include_pad);
}

void nn_avg_pool2d_forward(float *out, const float *in, int N, int C, int H, int W, int K,
                           int S, int P, int count_include_pad)
{
    int OH = nn_pool_out(H, K, S, P), OW = nn_pool_out(W, K, S, P);
    if (W > POOL_MAXW)
        return; /* programmer error: no map this wide in the project */
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++)
        avg_plane(out + (size_t)nc * OH * OW, in + (size_t)nc * H * W, H, W, K, S, P,
                  count_include_pad);
}

void nn_global_avg_pool_forward(float *out, const float *in, int N, int C, int HW)
{
#pragma omp parallel for schedule(static) if (N * C > 256)
    for (int nc = 0; nc < N * C; nc++) {
        const float *x = in + (size_t)nc * HW;
        float s = 0;
        for (int i = 0; i < HW; i++)
            s += x[i];
        out[nc] = s / (float)HW;
    }
}

void nn_global_avg_pool_backward(float *din, const float *dout, int N, int C, int HW)
{
#pragma omp parallel for schedule(static) if (N * C > 256)
    for (int nc = 0; nc < N * C; nc++) {
        float g = dout[nc] / (float)HW, *d = din + (size_t)nc * HW;
        for (int i = 0; i < HW; i++)
            d[i] += g;
    }
}

void nn_upsample2x_forward(float *out, const float *in, int N, int C, int H, int W)
{
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        const float *x = in + (size_t)nc * H * W;
        float *y = out + (size_t)nc * 4 * H * W;
        for (int iy = 0; iy < H; iy++) {
            float *r = y + (size_t)2 * iy * 2 * W;
            for (int ix = 0; ix < W; ix++)
                r[2 * ix] = r[2 * ix + 1] = x[iy * W + ix];
            memcpy(r + 2 * W, r, sizeof(float) * 2 * W);
        }
    }
}

void nn_upsample2x_backward(float *din, const float *dout, int N, int C, int H, int W)
{
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        float *dx = din + (size_t)nc * H * W;
        const float *dy = dout + (size_t)nc * 4 * H * W;
        for (int iy = 0; iy < H; iy++) {
            const float *r0 = dy + (size_t)2 * iy * 2 * W, *r1 = r0 + 2 * W;
            for (int ix = 0; ix < W; ix++)
                dx[iy * W + ix] += r0[2 * ix] + r0[2 * ix + 1] + r1[2 * ix] + r1[2 * ix + 1];
        }
    }
}

/* upsample_bilinear2d, align_corners=False, no scale_factor. torch rounds the scale in/out to
   float, then computes the source coordinate in its CPU accumulate type, double:
   src = (dst + 0.5) * scale - 0.5 clamped at 0; the weights are rounded to float last
   (all-float arithmetic is off by 2e-5 at 500 -> 299). */
static void bilinear_coef(int in, int out, int *i0, int *i1, float *l0, float *l1)
{
    double scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        double src = ((double)d + 0.5) * scale - 0.5;
        if (src < 0)
            src = 0;
        int i = (int)src;
        i0[d] = i;
        i1[d] = i + (i < in - 1);
        l1[d] = (float)(src - i);
        l0[d] = 1.0f - l1[d];
        if (in == out)
            i1[d] = i, l1[d] = 0, l0[d] = 1;
    }
}

#define BILINEAR_MAX 4096

void nn_bilinear_resize_forward(float *out, const float *in, int N, int C, int H, int W,
                                int OH, int OW)
{
    int y0[BILINEAR_MAX], y1[BILINEAR_MAX], x0[BILINEAR_MAX], x1[BILINEAR_MAX];
    float wy0[BILINEAR_MAX], wy1[BILINEAR_MAX], wx0[BILINEAR_MAX], wx1[BILINEAR_MAX];
    if (OH > BILINEAR_MAX || OW > BILINEAR_MAX)
        return; /* programmer error: no output this large in the project */
    bilinear_coef(H, OH, y0, y1, wy0, wy1);
    bilinear_coef(W, OW, x0, x1, wx0, wx1);
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        const float *x = in + (size_t)nc * H * W;
        float *y = out + (size_t)nc * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = x + (size_t)y0[oy] * W, *r1 = x + (size_t)y1[oy] * W;
            float h0 = wy0[oy], h1 = wy1[oy];
            for (int ox = 0; ox < OW; ox++)
                y[oy * OW + ox] = h0 * (wx0[ox] * r0[x0[ox]] + wx1[ox] * r0[x1[ox]]) +
                                  h1 * (wx0[ox] * r1[x0[ox]] + wx1[ox] * r1[x1[ox]]);
        }
    }
}

#define BICUBIC_MAX 1024 /* the position-embedding grids are at most a few dozen wide */

/* PyTorch's compute_indices_weights_cubic for one axis: first tap index (before clamping) and
   the 4 weights of each output */
static void bicubic_coef(int in, int out, float scale, int *i0, float *w)
{
    const float A = -0.75f;
    for (int o = 0; o < out; o++) {
        float real = scale * ((float)o + 0.5f) - 0.5f;
        int idx = (int)floorf(real);
        if (idx > in - 1)
            idx = in - 1;
        float t = real - (float)idx;
        t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
        float x1 = t + 1.0f, x2 = 1.0f - t, x3 = x2 + 1.0f;
        w[4 * o + 0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
        w[4 * o + 1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
        w[4 * o + 2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
        w[4 * o + 3] = ((A * x3 - 5.0f * A) * x3 + 8.0f * A) * x3 - 4.0f * A;
        i0[o] = idx - 1;
    }
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void nn_bicubic_resize_forward(float *out, const float *in, int N, int C, int H, int W, int OH,
                               int OW, float sh, float sw)
{
    int y0[BICUBIC_MAX], x0[BICUBIC_MAX];
    float wy[4 * BICUBIC_MAX], wx[4 * BICUBIC_MAX];
    if (OH > BICUBIC_MAX || OW > BICUBIC_MAX)
        return; /* programmer error: no output this large in the project */
    bicubic_coef(H, OH, sh, y0, wy);
    bicubic_coef(W, OW, sw, x0, wx);
    for (int nc = 0; nc < N * C; nc++) {
        const float *x = in + (size_t)nc * H * W;
        float *y = out + (size_t)nc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float t = 0.0f;
                for (int i = 0; i < 4; i++) {
                    const float *r = x + (size_t)clampi(y0[oy] + i, 0, H - 1) * W;
                    float s = 0.0f;
                    for (int j = 0; j < 4; j++)
                        s += r[clampi(x0[ox] + j, 0, W - 1)] * wx[4 * ox + j];
                    t += s * wy[4 * oy + i];
                }
                y[oy * OW + ox] = t;
            }
    }
}
