/* Inside the UNet's backward (unet_grad.h): the 3x3 stride-1 convolutions' backward by the
   core's Winograd F(4x4, 3x3) (nn/nn_wino4.h), composed in unet_grad_conv.c. */
#ifndef UNET_GRAD_CONV_H
#define UNET_GRAD_CONV_H

struct unet;
struct unet_grad;

/* Conv2d(C, OC, 3, 1, 1) on in (B,C,H,W) with weight w; din (may be NULL) = (overwritten),
   dw += , db += , using gr's flipped-weight and Winograd scratch (sized with
   nn_wino4_dx_scratch and nn_wino4_dw_scratch, and nn_conv_scratch for the im2col weight
   gradient used when din is NULL and C < 16) and the forward's kept tiles. */
void unet_conv3_backward(struct unet *u, struct unet_grad *gr, float *din, float *dw, float *db,
                         const float *dout, const float *in, const float *w, int B, int C,
                         int H, int W, int OC);
#endif
