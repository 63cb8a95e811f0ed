/* im2col for conv2d, on the calling thread: shared by the threaded nn_conv2d_forward /
   backward (nn_conv.c) and the Inception network, whose groups of images are laid out
   (C,G,H,W). An image's plane is found through two strides, so either layout is the same
   code. */
#include <string.h>

#include "nn/nn.h"

/* the general case: per kernel tap, per output row segment, zeros left of the input, a copy
   (a loop: short rows beat a call to memcpy), zeros right */
static void im2col_any(float *col, int ld, const float *in, size_t cs, size_t ns,
                       const struct nn_conv *g, int j0, int n)
{
    int H = g->H, W = g->W, OH = g->OH, OW = g->OW, S = g->SW;
    int img0 = j0 / (OH * OW), oh0 = j0 % (OH * OW) / OW, ow0 = j0 % OW;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                float *d = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ld;
                int dx = kw - g->PL; /* ix = ow * S + dx */
                int lo = dx >= 0 ? 0 : (-dx + S - 1) / S;
                int hi = W - 1 - dx < 0 ? 0 : (W - 1 - dx) / S + 1;
                hi = hi < OW ? hi : OW;
                int img = img0, oh = oh0, o0 = ow0;
                for (int j = 0; j < n;) {
                    int o1 = OW - o0 < n - j ? OW : o0 + n - j;
                    int iy = oh * g->SH + kh - g->PT;
                    float *dr = d + j - o0; /* dr[ow] for ow in [o0, o1) */
                    if (iy < 0 || iy >= H) {
                        memset(dr + o0, 0, sizeof(float) * (o1 - o0));
                    } else {
                        const float *x = in + c * cs + img * ns + (size_t)iy * W;
                        int a = lo > o0 ? lo : o0, e = hi < o1 ? hi : o1;
                        if (e < a)
                            e = a;
                        for (int ow = o0; ow < a && ow < o1; ow++)
                            dr[ow] = 0.0f;
                        if (S == 1)
                            for (int ow = a; ow < e; ow++)
                                dr[ow] = x[ow + dx];
                        else
                            for (int ow = a; ow < e; ow++)
                                dr[ow] = x[ow * S + dx];
                        for (int ow = e > o0 ? e : o0; ow < o1; ow++)
                            dr[ow] = 0.0f;
                    }
                    j += o1 - o0;
                    o0 = 0;
                    if (++oh == OH) {
                        oh = 0;
                        img++;
                    }
                }
            }
}

/* a stride-1 conv whose output has the input's size (the padded kxk, 1xk and kx1 convs): a
   row of col is its input plane shifted by (dy,dx) = (kh-PT, kw-PL), so one long copy per
   image, then zeros for the rows and the edge columns that fall outside */
static void im2col_same(float *col, int ld, const float *in, size_t cs, size_t ns,
                        const struct nn_conv *g, int j0, int n)
{
    int H = g->H, W = g->W, HW = H * W;
    for (int c = 0; c < g->C; c++)
        for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
                /* d[q] for the image's flat position q */
                float *d0 = col + ((size_t)(c * g->KH + kh) * g->KW + kw) * ld - j0;
                int dy = kh - g->PT, dx = kw - g->PL, sh = dy * W + dx;
                int v0 = (dy < 0 ? -dy : 0) * W, v1 = (dy > 0 ? H - dy : H) * W;
                int c0 = dx < 0 ? 0 : W - dx, c1 = dx < 0 ? -dx : W; /* zeroed columns */
                for (int img = j0 / HW; img * HW < j0 + n; img++) {
                    float *d = d0 + (size_t)img * HW;
                    const float *x = in + c * cs + img * ns;
                    int q0 = j0 - img * HW, q1 = j0 + n - img * HW;
                    q0 = q0 < 0 ? 0 : q0;
                    q1 = q1 > HW ? HW : q1;
                    int a = v0 > q0 ? v0 : q0, b = v1 < q1 ? v1 : q1;
                    if (b < a)
                        a = b = q1;
                    for (int q = q0; q < a; q++)
                        d[q] = 0.0f;
                    for (int q = b; q < q1; q++)
                        d[q] = 0.0f;
                    /* the reads outside the plane are edge columns, zeroed below */
                    int ca = a + sh < 0 ? -sh : a, cb = b + sh > HW ? HW - sh : b;
                    for (int q = ca; q < cb; q++)
                        d[q] = x[q + sh];
                    if (dx == 0 || a >= b)
                        continue;
                    for (int r = a / W; r * W < b; r++)
                        for (int k = c0; k < c1; k++) {
                            int q = r * W + k;
                            if (q >= a && q < b)
                                d[q] = 0.0f;
                        }
                }
            }
}

void nn_im2col(float *col, int ld, const float *in, size_t cs, size_t ns,
               const struct nn_conv *g, int j0, int n)
{
    if (g->SH == 1 && g->SW == 1 && g->OH == g->H && g->OW == g->W)
        im2col_same(col, ld, in, cs, ns, g, j0, n);
    else
        im2col_any(col, ld, in, cs, ns, g, j0, n);
}
