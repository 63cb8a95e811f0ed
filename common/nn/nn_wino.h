/* Winograd convolutions, three variants. F(2x2,3x3) (nn_wino.c), internal to the nn core
   (nn_conv.c dispatches to it): for 3x3 stride-1 convs, 16 GEMMs of (OC,C) x (C,tiles)
   replace one (OC,9C) x (9C,4 tiles) GEMM, 2.25x fewer multiplies; accuracy a few float ulps
   of the sum, like im2col. F(2,7) (nn_wino7.c) for the 1x7 / 7x1 convs. F(4x4,3x3)
   (nn_wino4.h: nn_wino4.c, nn_wino4_grad.c), forward and backward over explicit sizes, which
   the UNet calls directly (nn_wino4.c says why both 3x3 variants exist). */
#ifndef NN_WINO_H
#define NN_WINO_H
#include <stddef.h>

#include "nn/nn_wino4.h"

struct nn_conv;

int nn_wino_ok(const struct nn_conv *g);
/* floats of scratch for nn_wino_forward on g (threads: g->nt) */
size_t nn_wino_scratch(const struct nn_conv *g);
/* out (N,OC,OH,OW) = (or += when acc) conv(in, w) + b. flip: w is the weight of the conv this
   one is the data gradient of, (C,OC,3,3) in g's terms, used rotated by 180 degrees. */
void nn_wino_forward(float *out, int acc, float *scratch, const float *in, const float *w,
                     const float *b, const struct nn_conv *g, int flip);
/* dw (OC,C,3,3) += the weight gradient of g for dout (N,OC,OH,OW), in (N,C,H,W) */
void nn_wino_dw(float *dw, float *scratch, const float *dout, const float *in,
                const struct nn_conv *g);
/* nn_wino7.c, threaded over g->nt threads, for nn_wino7_ok(g): nn_wino7_forward is
   out (N,OC,H,W) = conv(in) + b on weights u from nn_wino7_weights, with
   nn_wino7_scratch_threads(g) floats of scratch; nn_wino7_conv the same from w (OC,C,KH,KW),
   with 8*OC*C more (the transformed weights) */
size_t nn_wino7_scratch_threads(const struct nn_conv *g);
void nn_wino7_conv(float *out, float *scratch, const float *in, const float *w, const float *b,
                   const struct nn_conv *g);
void nn_wino7_forward(float *out, float *scratch, const float *in, const float *u,
                      const float *b, const struct nn_conv *g);
/* (in nn_conv.c) raise *nb, the blocks per image of n items, until N * nb divides evenly by
   nt; *blk becomes the block size */
void nn_conv_balance(int *nb, int *blk, int N, int n, int nt);
#endif
