/* The backward pass of the diffusers UNet2DModel (unet.h): the full backward over the
   activations unet_forward keeps.

   Gradients: a block of u->n_params floats, each parameter's gradient at the same offset as
   the parameter in u->params (so the st_entry table of u names both). unet_backward
   ACCUMULATES into it, like every nn backward; the caller zeroes it once per step.
   The activation gradients live in one scratch allocation (struct unet_grad) made once for
   batches of up to max_batch images: nothing is allocated per step. */
#ifndef UNET_GRAD_H
#define UNET_GRAD_H
#include <stddef.h>

#include "models/unet.h"

struct unet_grad {
    int max_batch;
    float *buf;                    /* the one allocation */
    size_t n_buf;
    float *d[2];                   /* (M) the flowing gradient, ping-pong */
    float *tmp[5];                 /* (M) per-layer temporaries */
    float *att;                    /* attention backward scratch (B,heads,T,T) */
    float *dtp;                    /* (B,Cmax) time_emb_proj output gradient */
    float *demb_act, *demb, *dte1_act, *dte1; /* (B,TE) */
    float *wu, *wscr;              /* the Winograd transform (36,C,OC) of a flipped 3x3 kernel,
                                      Winograd scratch */
    size_t n_wt, n_wscr;           /* 9*C*OC of the largest 3x3 conv, floats of wscr */
    int n_skips;
    float *dskip[UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 1]; /* gradient of each skip */
    size_t skip_n[UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 1]; /* its floats per image */
    /* When not NULL (unet_grad_init leaves it NULL), unet_backward calls final(final_ctx,
       from) between layers: the gradients at offsets from .. n_params-1 are final, no layer
       still to run adds to them. from never grows during a backward and is 0 at its end
       (ddpm_train.h: the gradient's sum over processes overlaps the backward). */
    void (*final)(void *ctx, size_t from);
    void *final_ctx;
};

/* Scratch for batches of up to B images of u's config (also sizes u's activations). */
void unet_grad_init(struct unet_grad *g, struct unet *u, int B);
void unet_grad_free(struct unet_grad *g);
/* After unet_forward(u, .., B): deps (B,out,S,S) the gradient of the loss with respect to
   the output; grads (u->n_params) += the parameter gradients. */
void unet_backward(struct unet *u, struct unet_grad *g, float *grads, const float *deps, int B);
#endif
