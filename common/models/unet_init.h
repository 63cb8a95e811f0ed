/* Initial weights for training the diffusers UNet2DModel (unet.h) from scratch. */
#ifndef UNET_INIT_H
#define UNET_INIT_H

struct rng;
struct unet;

/* PyTorch's default initialisation, tensor by tensor in parameter order: Conv2d and Linear
   weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in = in * kh * kw); GroupNorm
   weight 1, bias 0. (Same distribution as torch, not the same numbers.) */
void unet_init_torch_default(struct unet *u, struct rng *r);
#endif
