/* The VAE's layers in its internal layout (used by vae.c only).

   Every conv of the model is Conv2d or ConvTranspose2d(k=4, s=2, p=1) between a "big" (H,W)
   and a "small" (H/2,W/2) map, H = W. Inside a chunk of n images, feature maps are stored
   (C, n, H, W) (channel-major, "CNHW"): the im2col of a group of images is one column block
   of the GEMM, the GEMM's output rows are the next layer's input, and no transposes are
   needed between layers. Groups of images keep the column matrix (at most VAE_COLMAX floats,
   the scratch `col` every function takes) in L2. Weights are PyTorch's, no bias here. */
#ifndef VAE_CONV_H
#define VAE_CONV_H
#include <math.h>
#include <stddef.h>

#define VAE_COLMAX (32 * 1024)

/* Conv2d(C, OC, 4, 2, 1): in CNHW (C, n, H, W), w (OC, C, 4, 4) -> out (OC, n, H/2, W/2) */
void vae_conv_forward(float *out, float *col, const float *in, const float *w, int C, int OC,
                      int n, int H, int W);
/* dw (OC, C, 4, 4) += ...; din (C, n, H, W) = ... (overwritten; NULL: skipped) */
void vae_conv_backward(float *din, float *dw, float *col, const float *dout, const float *in,
                       const float *w, int C, int OC, int n, int H, int W);
/* ConvTranspose2d(C, OC, 4, 2, 1): in (C, n, h, w), w (C, OC, 4, 4) -> out (OC, n, 2h, 2w) */
void vae_convt_forward(float *out, float *col, const float *in, const float *w, int C, int OC,
                       int n, int h, int wd);
/* dw (C, OC, 4, 4) += ...; din (C, n, h, w) = ... (overwritten) */
void vae_convt_backward(float *din, float *dw, float *col, const float *dout, const float *in,
                        const float *w, int C, int OC, int n, int h, int wd);

/* x (C, m): rows += b[c], then ReLU when relu */
void vae_bias_act(float *x, const float *b, int C, size_t m, int relu);
/* db (C) += row sums of d (C, m) */
void vae_bias_grad(float *db, const float *d, int C, size_t m);
/* (n, C, P) -> (C, n, P) and back */
void vae_to_cnhw(float *dst, const float *src, int n, int C, int P);
void vae_from_cnhw(float *dst, const float *src, int n, int C, int P);
/* ReLU backward in place: d *= (y > 0), y the ReLU's output */
void vae_relu_mask(float *d, const float *y, size_t n);

/* tanh as Eigen's ptanh_float: a [13/6] rational function on [-7.9, 7.9] (clamped beyond),
   within 4e-7 of tanh; unlike libm's tanhf it vectorises. */
static inline float vae_tanh(float x)
{
    const float c = 7.90531110763549805f;
    float xc = x > c ? c : (x < -c ? -c : x), x2 = xc * xc, p, q;
    p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return fabsf(x) < 0.0004f ? x : xc * p / q;
}
#endif
