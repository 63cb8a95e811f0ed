/* Conv2d and ConvTranspose2d(k=4, s=2, p=1) by im2col + SGEMM on feature maps stored
   channel-major, (C, n, H, W) ("CNHW"), with the bias, activation and transposes of that
   layout (the VAE's layers: models/vae.c).

   Each conv runs between a "big" (H,W) and a "small" (H/2,W/2) map, H = W. With the n images
   of a call stored (C, n, H, W), the im2col of a group of images is one column block of the
   GEMM, the GEMM's output rows are the next layer's input, and no transposes are needed
   between layers. Groups of images keep the column matrix (at most NN_CNHW_COLMAX floats, the
   scratch `col` every conv takes) in L2. Weights are PyTorch's, no bias in the convs. Serial:
   the caller runs calls on separate images in parallel. */
#ifndef NN_CONV_CNHW_H
#define NN_CONV_CNHW_H
#include <stddef.h>

#define NN_CNHW_COLMAX (32 * 1024)

/* Conv2d(C, OC, 4, 2, 1): in CNHW (C, n, H, W), w (OC, C, 4, 4) -> out (OC, n, H/2, W/2) */
void nn_conv4s2_cnhw_forward(float *out, float *col, const float *in, const float *w, int C,
                             int OC, int n, int H, int W);
/* dw (OC, C, 4, 4) += ...; din (C, n, H, W) = ... (overwritten; NULL: skipped) */
void nn_conv4s2_cnhw_backward(float *din, float *dw, float *col, const float *dout,
                              const float *in, const float *w, int C, int OC, int n, int H,
                              int W);
/* ConvTranspose2d(C, OC, 4, 2, 1): in (C, n, h, w), w (C, OC, 4, 4) -> out (OC, n, 2h, 2w) */
void nn_convt4s2_cnhw_forward(float *out, float *col, const float *in, const float *w, int C,
                              int OC, int n, int h, int wd);
/* dw (C, OC, 4, 4) += ...; din (C, n, h, w) = ... (overwritten) */
void nn_convt4s2_cnhw_backward(float *din, float *dw, float *col, const float *dout,
                               const float *in, const float *w, int C, int OC, int n, int h,
                               int wd);

/* x (C, m): rows += b[c], then ReLU when relu */
void nn_cnhw_bias_act(float *x, const float *b, int C, size_t m, int relu);
/* db (C) += row sums of d (C, m) */
void nn_cnhw_bias_grad(float *db, const float *d, int C, size_t m);
/* (n, C, P) -> (C, n, P) and back */
void nn_cnhw_from_nchw(float *dst, const float *src, int n, int C, int P);
void nn_cnhw_to_nchw(float *dst, const float *src, int n, int C, int P);
#endif
