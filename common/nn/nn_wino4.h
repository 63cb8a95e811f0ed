/* Winograd F(4x4, 3x3) for Conv2d(C, OC, 3, stride 1, padding 1) on NCHW batches: the
   forward (nn_wino4.c) and the backward (nn_wino4_grad.c), over explicit buffers and sizes.
   The UNet's 3x3 convs run on it (models/unet.c, unet_grad_conv.c), which keeps the weights'
   transforms it wants cached; nn_conv.c's dispatch uses F(2x2) instead (see nn_wino4.c for
   why both exist). A tile's result depends neither on the batch size, nor on where the batch
   starts in the run, nor on the thread count: the GEMMs are nn_sgemm_chain's. */
#ifndef NN_WINO4_H
#define NN_WINO4_H
#include <stddef.h>

/* Where a forward's time goes, for a caller that profiles (the kernel only reads the clock
   when given one): seconds of the input transform, the 36 GEMMs and the output transform,
   and the GEMMs' flops, accumulated (+=). */
struct nn_wino4_times {
    double in_sec, gemm_sec, out_sec, gemm_flop;
};

/* Floats from one slot to the next of a buffer of 36 slots of n floats each (V (36,C,T),
   M (36,OC,T), the kept tiles): n and a little more, so that the slots are not a multiple of
   4 KiB apart (see nn_wino4.c) */
size_t nn_wino4_slot(size_t n);
/* Floats of scratch for nn_wino4_forward on N images (C -> OC on H x W), or on one chunk of
   nn_wino4_chunk_images when N is fewer. */
size_t nn_wino4_scratch(int N, int C, int H, int W, int OC);
/* Images in a chunk (about 256 tiles) on an H x W map, for a caller that cuts its batch to
   bound the scratch (nn_wino4_scratch(1, ...) holds one chunk); any cut gives the same bits. */
int nn_wino4_chunk_images(int H, int W);
/* U (36,OC,C) = G g G^T of every 3x3 kernel g of w (OC,C,3,3): the transformed weights */
void nn_wino4_weights(float *U, const float *w, int C, int OC);
/* the same U with each product's matrix transposed, (36,C,OC), for nn_wino4_forward_t: the
   same values, slower to make, faster to use on few tiles (batch 1 on small maps) */
void nn_wino4_weights_t(float *U, const float *w, int C, int OC);
/* whether an H x W map's kept U is better transposed (its GEMMs' columns are few) */
int nn_wino4_transposed(int H, int W);
/* out (N,OC,H,W) = conv(in (N,C,H,W)) + b (OC, or NULL) with U from nn_wino4_weights;
   scratch of nn_wino4_scratch floats. An image's bits depend neither on the batch around it
   nor on its place there (the GEMMs are unpadded, nn_sgemm_chain). times: NULL, or
   accumulates the phases' times. */
void nn_wino4_forward(float *out, float *scratch, const float *in, const float *U,
                      const float *b, int N, int C, int H, int W, int OC,
                      struct nn_wino4_times *times);
/* the same with U from nn_wino4_weights_t: the same bits */
void nn_wino4_forward_t(float *out, float *scratch, const float *in, const float *Ut,
                        const float *b, int N, int C, int H, int W, int OC,
                        struct nn_wino4_times *times);
/* Where working from the raw weights (nn_wino4_forward_fused with U NULL) is faster than
   transforming them apart first */
int nn_wino4_fuses(int N, int H, int W);
/* The same with the elementwise ops around the conv done in its transforms (the UNet's
   inference), each the same expression on the same values as the op apart, so the same bits
   without the trip to memory in between. Any field NULL: no such op.
   scale, shift (N,C): the conv runs on silu(in * scale + shift) per (image, channel),
   nn_group_norm_silu_forward's expression (nn_silu_sym) with nn_group_norm_silu_affine's
   scale, shift; only where nn_wino4_pre_fits(H, W) (maps of at most 64 tiles).
   add (N,OC), res (N,OC,H,W): out = ((conv + b) + add per (image, channel)) + res.
   U: the transformed weights, or NULL to work from the raw weights w (OC,C,3,3): a block of
   kernel rows transformed just before its GEMMs, in ubuf (36*C*OC floats, nn_wino4_weights'
   room, of which it may use only a block per thread), for a conv whose U is not kept, so U
   never goes to memory and back; the same bits as nn_wino4_weights then this with U. Where
   that is not faster (nn_wino4_fuses 0) it transforms all of w into ubuf first. */
struct nn_wino4_fuse {
    const float *scale, *shift, *add, *res;
};
int nn_wino4_pre_fits(int H, int W);
void nn_wino4_forward_fused(float *out, float *scratch, float *ubuf, const float *in,
                            const struct nn_wino4_fuse *f, const float *U, const float *w,
                            const float *b, int N, int C, int H, int W, int OC,
                            struct nn_wino4_times *times);
/* the same on U from nn_wino4_weights_t (no w: U given), the same bits */
void nn_wino4_forward_fused_t(float *out, float *scratch, const float *in,
                              const struct nn_wino4_fuse *f, const float *Ut, const float *b,
                              int N, int C, int H, int W, int OC, struct nn_wino4_times *times);
/* The same with the transformed input tiles V (36,C,T), slots nn_wino4_slot(C * T) floats
   apart, written to v (nn_wino4_tiles(N,C,H,W) floats) instead of the scratch, which then
   needs only its M part: nn_wino4_dw reads them back. */
size_t nn_wino4_tiles(int N, int C, int H, int W);
void nn_wino4_forward_keep(float *out, float *scratch, float *v, const float *in,
                           const float *U, const float *b, int N, int C, int H, int W, int OC,
                           struct nn_wino4_times *times);
/* V (36,C,T) = B^T d B of every 6x6 input patch of in (N,C,H,W), slot q*6+r (at
   V + (q*6+r) * nn_wino4_slot(C * T); the floats between slots are not written), column
   c0 + n * tiles per image + tile (row-major over the tile grid); the other columns of T are
   zeroed. The forward's T is N * tiles per image, c0 0, the layout the weight gradient reads. */
void nn_wino4_input_tiles(float *V, size_t T, size_t c0, const float *in, int N, int C, int H,
                          int W);

/* The backward of the same conv, in (B,C,H,W), w (OC,C,3,3), dout (B,OC,H,W).
   nn_wino4_dx: din (B,C,H,W) = (overwritten, not accumulated) the data gradient, a forward
   on the flipped, channel-swapped kernel, transformed into U (36*C*OC floats) at each call
   (the weights change every step); scratch of nn_wino4_dx_scratch floats. */
size_t nn_wino4_dx_scratch(int B, int C, int H, int W, int OC);
void nn_wino4_dx(float *din, float *U, float *scratch, const float *dout, const float *w, int B,
                 int C, int H, int W, int OC);
/* nn_wino4_dw: dw (OC,C,3,3) += the weight gradient, as 36 GEMMs over the tiles of the batch;
   kept: the input's tiles (36,C,T) as nn_wino4_forward_keep made them (slots
   nn_wino4_slot(C * T) floats apart), or NULL to make them
   here; scratch of nn_wino4_dw_scratch floats. */
size_t nn_wino4_dw_scratch(int B, int C, int H, int W, int OC);
void nn_wino4_dw(float *dw, float *scratch, const float *kept, const float *dout,
                 const float *in, int B, int C, int H, int W, int OC);
#endif
