/* The image convention of every model here: uint8 pixels (N,H,W,C) as the data sets and the
   samplers' outputs store them, against float32 (N,C,H,W) in [-1, 1] as the networks take and
   give them. In: torchvision's ToTensor then Normalize(0.5, 0.5), u/127.5 - 1 (the same
   float32 for every byte). Out: diffusers' (x/2 + 0.5).clamp(0, 1) * 255 then numpy's
   .round(), written (x + 1) * 127.5 clamped to [0, 255] and rounded half to even (the same
   byte for every finite float32); NaN becomes 0. Here, not in models/, because vae, trainer
   and the samplers of tools/ share it, and not in io/, which knows files, not tensors. */
#ifndef NN_IMAGE_H
#define NN_IMAGE_H
#include <stdint.h>

/* one pixel: u/127.5 - 1 */
float nn_image_from_u8(uint8_t u);
/* one value: (x + 1) * 127.5 clamped to [0, 255], rounded half to even; NaN -> 0 */
uint8_t nn_image_to_u8(float x);
/* img uint8 (N,H,W,C) -> x (N,C,H,W) */
void nn_image_to_nchw(float *x, const uint8_t *img, int N, int C, int H, int W);
/* x (N,C,H,W) -> img uint8 (N,H,W,C) */
void nn_image_from_nchw(uint8_t *img, const float *x, int N, int C, int H, int W);
#endif
