/* Every sampler of ddpm-sample behind one loop: DDPM and DDIM (sched.h) and the diffusers
   schedulers people swap in for speed, each equal to its class with default arguments as in
   diffusers 0.26 (unchanged through 0.40), built from a DDPMScheduler config (betas, T,
   steps_offset; clip_sample applies to DDPM and DDIM only, as in diffusers):

   dpm-solver++      DPMSolverMultistepScheduler: dpmsolver++, solver_order 2 (1..3), midpoint,
                     lower_order_final, final_sigmas_type "zero", spacing linspace
   sde-dpm-solver++  the same with algorithm_type sde-dpmsolver++ (orders 1, 2): one noise per step
   unipc             UniPCMultistepScheduler: bh2, solver_order 2 (1..3), predict_x0,
                     lower_order_final, final "zero", linspace
   pndm              PNDMScheduler: PLMS (skip_prk_steps) or PRK warm-up, leading,
                     set_alpha_to_one false unless the config says otherwise
   euler, euler-a    EulerDiscreteScheduler / EulerAncestralDiscreteScheduler: linspace, sigma
                     interpolated linearly, float timesteps, model input scaled

   The loop, for a batch of n values x (init: N(0,1) noise times sampler_init_noise_sigma):
       sampler_reset(s);
       for i in 0..n_calls-1:
           t = s->t[i]; sampler_scale_input(s, i, xin, x, n); eps = model(xin, t);
           noise drawn when sampler_step_needs_noise(s, i); sampler_step(s, i, x, eps, noise, n)
   Multistep state (past model outputs, PNDM's saved sample) lives in the sampler, sized at
   init for at most n_max values. */
#ifndef SAMPLER_H
#define SAMPLER_H
#include <stddef.h>

#include "nn/sched.h"

enum sampler_kind {
    SAMPLER_DDPM, SAMPLER_DDIM, SAMPLER_DPM, SAMPLER_SDE_DPM, SAMPLER_UNIPC, SAMPLER_PNDM,
    SAMPLER_EULER, SAMPLER_EULER_A
};
#define SAMPLER_N_KINDS 8
/* "ddpm", "ddim", "dpm-solver++", "sde-dpm-solver++", "unipc", "pndm", "euler", "euler-a" */
extern const char *const sampler_names[SAMPLER_N_KINDS];

struct sampler_opts {
    int n_steps;        /* set_timesteps(n) */
    float eta;          /* DDIM */
    int order;          /* dpm-solver++, sde-dpm-solver++, unipc: solver_order; 0: 2 */
    int spacing;        /* enum sched_spacing, or -1: the scheduler's default */
    int prk;            /* pndm: PRK warm-up (skip_prk_steps false) */
    int use_clipped_eps; /* ddim: use_clipped_model_output */
};

struct sampler {
    enum sampler_kind kind;
    struct sched base;  /* betas and alphas_cumprod; DDPM/DDIM: the scheduler itself */
    int n_req;          /* the n of set_timesteps(n) */
    int n_calls;        /* model calls: len(timesteps) */
    float *t;           /* (n_calls) the model's timestep at each call */
    int *ts;            /* (n_calls) the same as integers (all but euler, euler-a) */
    float *sigmas;      /* (n_calls+1) dpm, unipc, euler: sigma at each step, 0 last */
    float init_noise_sigma;
    int order;          /* solver_order */
    int prk;            /* pndm: number of PRK calls (12 or 0) */
    float final_alpha_cumprod; /* pndm */
    /* multistep state for at most n_max values */
    size_t n_max;
    float *buf;
    float *m[4];        /* dpm/unipc: past x0 predictions, m[0] the latest (unipc: +1 spare) */
    float *ets[4];      /* pndm: past model outputs, ets[0] the latest */
    float *last;        /* unipc: the sample before the last predictor; pndm: cur_sample */
    float *acc;         /* pndm PRK: cur_model_output */
    int lower_order_nums, this_order, n_ets, counter;
};

/* -1 with msg for a bad combination (order, step count, a step count whose timesteps repeat) */
int sampler_init(struct sampler *s, const struct sched_config *c, enum sampler_kind kind,
                 const struct sampler_opts *o, size_t n_max, char *msg, size_t msglen);
void sampler_free(struct sampler *s);
/* forget the multistep state: call before each new batch */
void sampler_reset(struct sampler *s);
int sampler_step_needs_noise(const struct sampler *s, int i);
/* xin = x scaled as the scheduler's scale_model_input (euler: x / sqrt(sigma^2 + 1)) */
void sampler_scale_input(const struct sampler *s, int i, float *xin, const float *x, size_t n);
/* call i: x (n values, x_t) becomes the next sample; eps the model output at (xin, t[i]);
   noise (n) N(0,1) when sampler_step_needs_noise, else ignored (may be NULL) */
void sampler_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                  size_t n);

/* the per-kind halves, in sampler_dpm.c, sampler_pndm.c, sampler_euler.c */
void sampler_dpm_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                      size_t n);
void sampler_unipc_step(struct sampler *s, int i, float *x, const float *eps, size_t n);
void sampler_pndm_step(struct sampler *s, int i, float *x, const float *eps, size_t n);
void sampler_euler_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                        size_t n);
/* diffusers' _sigma_to_alpha_sigma_t and lambda = log(alpha) - log(sigma), float32 */
void sampler_alpha_sigma(float sigma, float *alpha_t, float *sigma_t, float *lambda);
#endif
