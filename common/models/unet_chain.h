/* The UNet's GEMMs besides the 3x3 convs (the time embedding's Linear layers, the resnets'
   1x1 shortcuts, the downsamplers' stride-2 convs, attention's projections, q k^T and att v) on nn_sgemm_chain: every output is
   one fmaf chain over k in order, so its bits depend on its own row and column alone. The
   work is then cut into tasks of rows and columns across the threads at any batch, even 1,
   and an image's result is the same whatever the batch and thread count. (With OpenBLAS each
   image had to be one serial call: its sums depend on the call's shape, so at batch 1 one
   thread did all of it.) Training's backward of the same layers (and the downsamplers' and
   conv_in's by im2col) runs here too, so no UNet GEMM, forward or backward, goes to OpenBLAS,
   whose kernel choice would show in the bits. Scratch: the caller's, at least
   unet_chain_scratch floats. */
#ifndef UNET_CHAIN_H
#define UNET_CHAIN_H
#include <stddef.h>

#include "models/unet.h"

/* floats of scratch the calls below need for batches of up to B on nthr threads */
size_t unet_chain_scratch(const struct unet *u, int B, int nthr);
/* the scratch training's backward calls below take: the forward's (u->acts.scratch), free
   during the backward, checked to hold unet_chain_scratch(u, B, u->acts.n_thr) floats */
float *unet_chain_backward_scratch(struct unet *u, int B);

/* out (B, OUT) = in (B, IN) w^T + b, torch.nn.Linear on one row per image */
void unet_chain_linear_vec(float *out, const float *in, const float *w, const float *b, int B,
                           int IN, int OUT, float *scratch);

/* conv_shortcut: out (B, OC, HW) = (out + w in) + b, w (OC, C) */
void unet_chain_conv1x1_add(float *out, const float *in, const float *w, const float *b, int B,
                            int C, int OC, int HW, float *scratch, int nthr);

/* Conv2d(C, OC, 3, stride 2), padding (pt, pl, pb, pr), by im2col: col holds nthr images'
   columns (nthr * C * 9 * OH * OW floats), taken nthr images at a time */
void unet_chain_conv3s2(float *out, float *col, const float *in, const float *w, const float *b,
                        int B, int C, int H, int W, int OC, int pt, int pl, int pb, int pr,
                        int nthr);

/* Attention from a->tok (B,T,C) and the norm output xn (B,C,T) to a->q, a->k, a->v, a->att
   (the softmax), a->ao and a->proj = to_out.0(ao), each in the layout unet.h gives */
void unet_chain_attention(struct unet_attn *a, const float *xn, int B, float *scratch);

/* Training's backward of the Linear layers and the 1x1 shortcuts, on the same kernel: each
   product a chain, added to the accumulators after. Scratch: nthr * unet_chain_scratch's
   task room (unet_chain_scratch(u, B, nthr) covers it).
   linear: din (N,IN) += dout (N,OUT) w (OUT,IN), dw (OUT,IN) += dout^T in, db (OUT) += the
   column sums of dout in n order; din, dw, db: NULL to skip. */
void unet_chain_linear_backward(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, int N, int IN, int OUT,
                                float *scratch, int nthr);
/* conv_shortcut's: din (B,C,HW) += w^T dout per image, dw (OC,C) += dout_b in_b^T over the
   images in order (the bias's gradient apart) */
void unet_chain_conv1x1_backward(float *din, float *dw, const float *dout, const float *in,
                                 const float *w, int B, int C, int OC, int HW, float *scratch,
                                 int nthr);

/* attention's core backward from dout (B,T,C), the gradient at the heads' output, and the
   forward's a->q, a->k, a->v, a->att: dq, dk, dv (B,T,C) written (not accumulated); ds:
   B * heads * T * T floats of scratch */
void unet_chain_attention_backward(float *dq, float *dk, float *dv, float *ds, const float *dout,
                                   const struct unet_attn *a, int B, int nthr);

/* a 3x3 conv's backward by im2col (stride st, padding pt, pl, pb, pr): dw (OC,C,3,3) +=
   dout_n col_n^T over the images in order; din (B,C,H,W): NULL, or += col2im(w^T dout_n).
   Scratch: C*9*OH*OW + nthr * the task room floats (unet_chain_scratch covers the
   downsamplers' and conv_in's). The bias's gradient apart. */
void unet_chain_conv3_backward(float *din, float *dw, float *scratch, const float *dout,
                               const float *in, const float *w, int B, int C, int H, int W,
                               int OC, int st, int pt, int pl, int pb, int pr, int nthr);

#endif
