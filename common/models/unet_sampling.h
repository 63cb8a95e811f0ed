/* The sampling loop of a struct unet under any sampler of nn/sampler.h, as ddpm-sample runs
   it and as ddpm-train's evaluation runs it on the model it trains (eval/ddpm_eval.h): one
   function, so that both make the same images from the same weights.

   Image i of a run draws x_T and then every noisy step's noise from its own stream,
   rng_seed(seed + i * 0x9E3779B97F4A7C15), and the UNet's result for an image does not
   depend on the batch around it: its bits depend neither on the batch it is in nor on the
   thread count, so a run
   cut into shards or batches makes the bytes of one whole run. Works in either UNet layout
   (unet_alloc_acts or unet_alloc_infer: the same bits), allocated by the caller for batches
   of at least w->max_batch (unet_forward asserts it). */
#ifndef UNET_SAMPLING_H
#define UNET_SAMPLING_H
#include <stddef.h>
#include <stdint.h>

#include "models/unet.h"
#include "nn/sampler.h"
#include "util/rng.h"

/* the loop's buffers for batches of up to max_batch images */
struct unet_sampling {
    int max_batch;
    size_t chw;                  /* floats an image: in_channels * sample_size^2 */
    float *eps, *z, *xin;        /* (max_batch,C,S,S) model output, step noise, model input */
    float *tv;                   /* (max_batch) the timestep of each image */
    struct rng *r;               /* (max_batch) each image's stream */
};

void unet_sampling_init(struct unet_sampling *w, const struct unet *u, int max_batch);
void unet_sampling_free(struct unet_sampling *w);

/* called with the batch's x (B,C,S,S): with i = -1 once x_T is drawn, then after sampler
   call i (0 .. s->n_calls - 1) */
typedef void (*unet_sampling_fn)(void *ctx, int i, const float *x, int B);

/* Images [i0, i0 + B) of a run, B <= w->max_batch: x (B,C,S,S) becomes x_T (init's B images
   (B,C,S,S), or N(0,1) from each image's stream when init is NULL) times the sampler's
   init_noise_sigma, then goes through s's loop (sampler_reset first) and holds x_0 on
   return. on_step may be NULL. s must have been made for n_max >= B * w->chw. */
void unet_sampling_batch(struct unet_sampling *w, struct unet *u, struct sampler *s, float *x,
                         const float *init, uint64_t seed, long i0, int B,
                         unet_sampling_fn on_step, void *ctx);
#endif
