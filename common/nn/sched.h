/* The diffusers DDPMScheduler and DDIMScheduler (epsilon prediction), from a
   scheduler_config.json. float32 arithmetic as the torch code does it: betas from
   torch.linspace (float32), alphas_cumprod = cumprod(1 - betas) (float32 values, the product
   accumulated in double as torch's CPU cumprod does), per-step scalars in float32.

   Timesteps (set_timesteps(n)) follow timestep_spacing: "leading" (arange(n) * (T//n),
   reversed, + steps_offset), "linspace" (round(linspace(0, T-1, n)) reversed), "trailing"
   (round(arange(T, 0, -T/n)) - 1). DDPM steps to the next timestep in the list (-1 after the
   last); DDIM to t - T//n always (as diffusers). */
#ifndef SCHED_H
#define SCHED_H
#include <stddef.h>
#include "io/json.h"

enum sched_kind { SCHED_DDPM, SCHED_DDIM };
enum sched_beta { SCHED_LINEAR, SCHED_SCALED_LINEAR, SCHED_SQUAREDCOS };
enum sched_variance { SCHED_FIXED_SMALL, SCHED_FIXED_LARGE };
enum sched_spacing { SCHED_LEADING, SCHED_LINSPACE, SCHED_TRAILING };

struct sched_config {
    int num_train_timesteps;
    double beta_start, beta_end;
    enum sched_beta beta_schedule;
    int clip_sample;
    float clip_sample_range;
    enum sched_variance variance_type;  /* DDPM only */
    enum sched_spacing timestep_spacing;
    int steps_offset;
    int set_alpha_to_one;               /* 1, 0, or -1 when absent: DDIM true, PNDM false */
};

/* DDPMScheduler() class defaults (fixed_small, linear 1e-4..0.02, clip, leading). */
void sched_config_default(struct sched_config *c);
/* Fields absent take the class defaults; unsupported values (prediction_type other than
   epsilon, thresholding, trained_betas, other variance types) are errors naming the field. */
int sched_config_parse(struct sched_config *c, const struct json *j, char *msg, size_t msglen);
int sched_config_load(struct sched_config *c, const char *path, char *msg, size_t msglen);
/* Writes a DDPMScheduler scheduler_config.json (atomically). */
int sched_config_save(const struct sched_config *c, const char *path, char *msg, size_t msglen);

struct sched {
    struct sched_config cfg;
    enum sched_kind kind;
    int T;                  /* num_train_timesteps */
    float *betas, *alphas, *alphas_cumprod; /* (T) */
    float final_alpha_cumprod;              /* DDIM: 1 if set_alpha_to_one else ā_0 */
    int n_req;                              /* the n of set_timesteps(n) */
    int n_steps;                            /* len(timesteps): n except for some trailing n */
    int *timesteps;                         /* (n_steps) descending */
    float eta;                              /* DDIM */
    /* DDIM: use_clipped_model_output (DDIMPipeline's argument, default off): the direction
       term uses the noise recomputed from the clipped x0, not the model's. Set after
       sched_init. */
    int use_clipped_eps;
};

/* Schedule for sampling with n_steps steps (1..T). -1 with msg when n_steps is out of range. */
int sched_init(struct sched *s, const struct sched_config *c, enum sched_kind kind, int n_steps,
               float eta, char *msg, size_t msglen);
void sched_free(struct sched *s);
/* 1 when step i draws noise (DDPM: t > 0; DDIM: eta > 0) */
int sched_step_needs_noise(const struct sched *s, int i);
/* Step i (t = timesteps[i]) on n values: x (the sample x_t, replaced by x_{t'}), eps the model
   output, noise (n) N(0,1) when sched_step_needs_noise, else ignored (may be NULL). */
void sched_step(const struct sched *s, int i, float *x, const float *eps, const float *noise,
                size_t n);
/* add_noise: out = sqrt(ā_t) x0 + sqrt(1 - ā_t) noise, n values */
void sched_add_noise(const struct sched *s, float *out, const float *x0, const float *noise,
                     int t, size_t n);
#endif
