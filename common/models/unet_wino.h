/* Internal to the UNet module: its 3x3 convs' Winograd caches (struct unet_wino_cache and
   struct unet_tiles, unet.h), allocated and freed here for unet_layout.c (unet_alloc_acts,
   unet_free) and unet_infer.c (unet_alloc_infer), never by the forward. */
#ifndef UNET_WINO_H
#define UNET_WINO_H
#include <stddef.h>

#include "models/unet.h"

/* The training layout: nothing cached, one buffer for the largest conv's transform. */
void unet_wino_alloc_at_use(struct unet *u);
/* The inference layout (its activations laid out): the transforms of the convs on the
   smallest maps cached while parameters, activations, scratch and cache stay within
   mem_bytes, the others made at use into one buffer; also (re)allocates acts.scratch (one
   GEMM chunk of any conv, conv3s2's im2col, and unet_chain's needs at batch B). */
void unet_wino_alloc_infer(struct unet *u, int B, size_t mem_bytes);
void unet_wino_free(struct unet *u);
void unet_tiles_free(struct unet *u);
#endif
