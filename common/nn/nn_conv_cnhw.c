/* Conv2d / ConvTranspose2d (k=4, s=2, p=1) by im2col + SGEMM in the CNHW layout, and that
   layout's bias, activation and transposes. See nn_conv_cnhw.h. */
#include <assert.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_conv_cnhw.h"

/* images per group for a column matrix of `per` floats per image */
static int group_of(size_t per)
{
    size_t g = NN_CNHW_COLMAX / per;
    return g < 1 ? 1 : (int)g;
}

/* One input row (2*OW values) to its four column rows kw = 0..3 at x = 2ox-1+kw, zero
   outside: kw 0 takes the odd values shifted right, 1 the even, 2 the odd, 3 the even shifted
   left. Inlined for each OW so that the loops have constant trip counts. */
static inline __attribute__((always_inline)) void
row_to_cols(float *d0, float *d1, float *d2, float *d3, const float *row, int OW)
{
    d0[0] = 0;
    for (int x = 0; x < OW; x++) {
        float e = row[2 * x], o = row[2 * x + 1];
        d1[x] = e;
        d2[x] = o;
        if (x + 1 < OW)
            d0[x + 1] = o;
        if (x > 0)
            d3[x - 1] = e;
    }
    d3[OW - 1] = 0;
}

/* the adjoint: row += the four column rows scattered back */
static inline __attribute__((always_inline)) void
cols_to_row(float *row, const float *s0, const float *s1, const float *s2, const float *s3,
            int OW)
{
    for (int x = 0; x < OW; x++) {
        float e = s1[x] + (x > 0 ? s3[x - 1] : 0.0f);
        float o = s2[x] + (x + 1 < OW ? s0[x + 1] : 0.0f);
        row[2 * x] += e;
        row[2 * x + 1] += o;
    }
}

static inline __attribute__((always_inline)) void
im2col_ow(float *col, const float *big, int C, int n, int i0, int g, int H, int OW)
{
    int OH = H / 2, W = 2 * OW, ld = g * OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < 4; kh++) {
            float *d0 = col + (size_t)(c * 16 + kh * 4) * ld, *d1 = d0 + ld, *d2 = d1 + ld,
                  *d3 = d2 + ld;
            for (int i = 0; i < g; i++) {
                const float *img = big + ((size_t)c * n + i0 + i) * H * W;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = 2 * oy - 1 + kh, j = (i * OH + oy) * OW;
                    if (iy < 0 || iy >= H) {
                        for (int x = 0; x < OW; x++)
                            d0[j + x] = d1[j + x] = d2[j + x] = d3[j + x] = 0;
                        continue;
                    }
                    row_to_cols(d0 + j, d1 + j, d2 + j, d3 + j, img + (size_t)iy * W, OW);
                }
            }
        }
}

static inline __attribute__((always_inline)) void
col2im_ow(float *big, const float *col, int C, int n, int i0, int g, int H, int OW)
{
    int OH = H / 2, W = 2 * OW, ld = g * OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < 4; kh++) {
            const float *s0 = col + (size_t)(c * 16 + kh * 4) * ld, *s1 = s0 + ld,
                        *s2 = s1 + ld, *s3 = s2 + ld;
            for (int i = 0; i < g; i++) {
                float *img = big + ((size_t)c * n + i0 + i) * H * W;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = 2 * oy - 1 + kh, j = (i * OH + oy) * OW;
                    if (iy >= 0 && iy < H)
                        cols_to_row(img + (size_t)iy * W, s0 + j, s1 + j, s2 + j, s3 + j, OW);
                }
            }
        }
}

/* col (C*16, ld) rows c*16 + kh*4 + kw, columns (i, oy, ox) of g images from big (C, n, H,
   W) at image i0: col = big[c][i][2oy-1+kh][2ox-1+kw], zero outside. H = W. */
static void im2col_k4s2(float *col, const float *big, int C, int n, int i0, int g, int H, int W)
{
    assert(H == W);
    switch (W) {
    case 8: im2col_ow(col, big, C, n, i0, g, H, 4); break;
    case 16: im2col_ow(col, big, C, n, i0, g, H, 8); break;
    case 32: im2col_ow(col, big, C, n, i0, g, H, 16); break;
    default: im2col_ow(col, big, C, n, i0, g, H, W / 2);
    }
}

/* the adjoint: big (C, n, H, W) at image i0 += col scattered back */
static void col2im_k4s2(float *big, const float *col, int C, int n, int i0, int g, int H, int W)
{
    assert(H == W);
    switch (W) {
    case 8: col2im_ow(big, col, C, n, i0, g, H, 4); break;
    case 16: col2im_ow(big, col, C, n, i0, g, H, 8); break;
    case 32: col2im_ow(big, col, C, n, i0, g, H, 16); break;
    default: col2im_ow(big, col, C, n, i0, g, H, W / 2);
    }
}

/* Conv2d(C, OC, 4, 2, 1) without bias: out (OC, n, H/2, W/2) = w (OC, C*16) * im2col(in) */
void nn_conv4s2_cnhw_forward(float *out, float *col, const float *in, const float *w, int C,
                             int OC, int n, int H, int W)
{
    int ohw = H * W / 4, g = group_of((size_t)C * 16 * ohw);
    for (int i0 = 0; i0 < n; i0 += g) {
        int gi = n - i0 < g ? n - i0 : g;
        im2col_k4s2(col, in, C, n, i0, gi, H, W);
        nn_sgemm_serial(0, 0, OC, gi * ohw, C * 16, 1.0f, w, C * 16, col, gi * ohw, 0.0f,
                        out + (size_t)i0 * ohw, n * ohw);
    }
}

/* its backward: dw (OC, C*16) += dout im2col(in)^T; din (C, n, H, W) = col2im(w^T dout) */
void nn_conv4s2_cnhw_backward(float *din, float *dw, float *col, const float *dout,
                              const float *in, const float *w, int C, int OC, int n, int H,
                              int W)
{
    int ohw = H * W / 4, g = group_of((size_t)C * 16 * ohw);
    if (din != NULL)
        memset(din, 0, (size_t)C * n * H * W * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += g) {
        int gi = n - i0 < g ? n - i0 : g;
        const float *dy = dout + (size_t)i0 * ohw;
        im2col_k4s2(col, in, C, n, i0, gi, H, W);
        nn_sgemm_serial(0, 1, OC, C * 16, gi * ohw, 1.0f, dy, n * ohw, col, gi * ohw, 1.0f, dw,
                        C * 16);
        if (din != NULL) {
            nn_sgemm_serial(1, 0, C * 16, gi * ohw, OC, 1.0f, w, C * 16, dy, n * ohw, 0.0f,
                            col, gi * ohw);
            col2im_k4s2(din, col, C, n, i0, gi, H, W);
        }
    }
}

/* ConvTranspose2d(C, OC, 4, 2, 1) without bias, w (C, OC*16): in (C, n, h, w) -> out (OC, n,
   2h, 2w) = col2im(w^T in), the data gradient of the conv from out's space to in's */
void nn_convt4s2_cnhw_forward(float *out, float *col, const float *in, const float *w, int C,
                              int OC, int n, int h, int wd)
{
    int hw = h * wd, g = group_of((size_t)OC * 16 * hw);
    memset(out, 0, (size_t)OC * n * hw * 4 * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += g) {
        int gi = n - i0 < g ? n - i0 : g;
        nn_sgemm_serial(1, 0, OC * 16, gi * hw, C, 1.0f, w, OC * 16, in + (size_t)i0 * hw,
                        n * hw, 0.0f, col, gi * hw);
        col2im_k4s2(out, col, OC, n, i0, gi, 2 * h, 2 * wd);
    }
}

/* its backward: dw (C, OC*16) += in im2col(dout)^T; din (C, n, h, w) = w im2col(dout) */
void nn_convt4s2_cnhw_backward(float *din, float *dw, float *col, const float *dout,
                               const float *in, const float *w, int C, int OC, int n, int h,
                               int wd)
{
    int hw = h * wd, g = group_of((size_t)OC * 16 * hw);
    for (int i0 = 0; i0 < n; i0 += g) {
        int gi = n - i0 < g ? n - i0 : g;
        im2col_k4s2(col, dout, OC, n, i0, gi, 2 * h, 2 * wd);
        nn_sgemm_serial(0, 1, C, OC * 16, gi * hw, 1.0f, in + (size_t)i0 * hw, n * hw, col,
                        gi * hw, 1.0f, dw, OC * 16);
        nn_sgemm_serial(0, 0, C, gi * hw, OC * 16, 1.0f, w, OC * 16, col, gi * hw, 0.0f,
                        din + (size_t)i0 * hw, n * hw);
    }
}

/* x (C, m) rows += bias, then ReLU if relu */
void nn_cnhw_bias_act(float *x, const float *b, int C, size_t m, int relu)
{
    for (int c = 0; c < C; c++) {
        float *r = x + (size_t)c * m, bc = b[c];
        if (relu)
            for (size_t i = 0; i < m; i++)
                r[i] = r[i] + bc > 0 ? r[i] + bc : 0;
        else
            for (size_t i = 0; i < m; i++)
                r[i] += bc;
    }
}

/* db (C) += row sums of d (C, m); 16 partial sums so that the loop vectorises */
void nn_cnhw_bias_grad(float *db, const float *d, int C, size_t m)
{
    for (int c = 0; c < C; c++) {
        const float *r = d + (size_t)c * m;
        float s[16] = {0}, t = 0;
        size_t i = 0;
        for (; i + 16 <= m; i += 16)
            for (int k = 0; k < 16; k++)
                s[k] += r[i + k];
        for (; i < m; i++)
            t += r[i];
        for (int k = 0; k < 16; k++)
            t += s[k];
        db[c] += t;
    }
}

/* (n, C, P) <-> (C, n, P) */
void nn_cnhw_from_nchw(float *dst, const float *src, int n, int C, int P)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)c * n + i) * P, src + ((size_t)i * C + c) * P,
                   P * sizeof(float));
}

void nn_cnhw_to_nchw(float *dst, const float *src, int n, int C, int P)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++)
            memcpy(dst + ((size_t)i * C + c) * P, src + ((size_t)c * n + i) * P,
                   P * sizeof(float));
}
