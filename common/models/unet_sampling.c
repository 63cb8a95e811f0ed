/* The sampling loop of a struct unet; see unet_sampling.h. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_sampling.h"
#include "util/util.h"

void unet_sampling_init(struct unet_sampling *w, const struct unet *u, int max_batch)
{
    size_t chw = (size_t)u->cfg.in_channels * u->cfg.sample_size * u->cfg.sample_size;
    assert(max_batch > 0 && u->cfg.in_channels == u->cfg.out_channels);
    w->max_batch = max_batch;
    w->chw = chw;
    w->eps = xmalloc((size_t)max_batch * chw * sizeof(float));
    w->z = xmalloc((size_t)max_batch * chw * sizeof(float));
    w->xin = xmalloc((size_t)max_batch * chw * sizeof(float));
    w->tv = xmalloc((size_t)max_batch * sizeof(float));
    w->r = xmalloc((size_t)max_batch * sizeof *w->r);
}

void unet_sampling_free(struct unet_sampling *w)
{
    free(w->eps);
    free(w->z);
    free(w->xin);
    free(w->tv);
    free(w->r);
    memset(w, 0, sizeof *w);
}

void unet_sampling_batch(struct unet_sampling *w, struct unet *u, struct sampler *s, float *x,
                         const float *init, uint64_t seed, long i0, int B,
                         unet_sampling_fn on_step, void *ctx)
{
    size_t chw = w->chw;
    assert(B > 0 && B <= w->max_batch && (size_t)B * chw <= s->n_max);
    for (int b = 0; b < B; b++) {
        rng_seed(&w->r[b], seed + (uint64_t)(i0 + b) * 0x9E3779B97F4A7C15ULL);
        if (init != NULL)
            memcpy(x + b * chw, init + b * chw, chw * sizeof(float));
        else
            rng_normal_fill(&w->r[b], x + b * chw, chw);
        for (size_t k = 0; k < chw; k++)
            x[b * chw + k] *= s->init_noise_sigma;
    }
    sampler_reset(s);
    if (on_step != NULL)
        on_step(ctx, -1, x, B);
    for (int i = 0; i < s->n_calls; i++) {
        for (int b = 0; b < B; b++)
            w->tv[b] = s->t[i];
        sampler_scale_input(s, i, w->xin, x, (size_t)B * chw);
        unet_forward(u, w->eps, w->xin, w->tv, B);
        if (sampler_step_needs_noise(s, i))
            for (int b = 0; b < B; b++)
                rng_normal_fill(&w->r[b], w->z + b * chw, chw);
        sampler_step(s, i, x, w->eps, w->z, (size_t)B * chw);
        if (on_step != NULL)
            on_step(ctx, i, x, B);
    }
}
