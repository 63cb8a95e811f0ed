/* The backward of the UNet's 3x3 stride-1 convolutions: which kernel for which gradient, on
   which of unet_grad's buffers. The kernels are the core's Winograd F(4x4, 3x3)
   (nn/nn_wino4.h), like the forward, except for conv_in's weight gradient, where the core's
   im2col is faster. Used by unet_grad.c. */
#include "models/unet_grad_conv.h"

#include <assert.h>

#include "models/unet.h"
#include "models/unet_chain.h"
#include "models/unet_grad.h"
#include "nn/nn.h"
#include "nn/nn_wino.h"

/* 3x3 stride-1 pad-1 conv: din (may be NULL) = (overwritten, not accumulated), dw += ,
   db += . The data gradient on gr's flipped-weight transform and scratch, the weight
   gradient from the tiles the forward kept (unet_kept_tiles) when it kept them. */
void unet_conv3_backward(struct unet *u, struct unet_grad *gr, float *din, float *dw, float *db,
                         const float *dout, const float *in, const float *w, int B, int C,
                         int H, int W, int OC)
{
    if (din != NULL) {
        assert((size_t)9 * C * OC <= gr->n_wt &&
               nn_wino4_dx_scratch(B, C, H, W, OC) <= gr->n_wscr);
        nn_wino4_dx(din, gr->wu, gr->wscr, dout, w, B, C, H, W, OC);
    }
    if (din == NULL && C < 16) {
        /* conv_in (C = 3): Winograd's 36 GEMMs with 3 columns and the transform of all of
           dout cost 7.4 ms at batch 16; im2col's one GEMM per image 2.2 ms */
        unet_chain_conv3_backward(NULL, dw, unet_chain_backward_scratch(u, B), dout, in, w, B, C,
                                  H, W, OC, 1, 1, 1, 1, 1, u->acts.n_thr);
    } else {
        assert(nn_wino4_dw_scratch(B, C, H, W, OC) <= gr->n_wscr);
        nn_wino4_dw(dw, gr->wscr, unet_kept_tiles(u, w, B), dout, in, B, C, H, W, OC);
    }
    nn_conv_db_float(db, dout, B, OC, H, W);
}
