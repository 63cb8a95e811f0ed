/* The training step of train_unconditional.py on the diffusers UNet2DModel (unet.h, with its
   backward in unet_grad.h): epsilon MSE at uniformly drawn timesteps, global-norm clipping,
   AdamW, a diffusers learning-rate schedule, EMAModel. */
#ifndef DDPM_TRAIN_H
#define DDPM_TRAIN_H
#include <stdint.h>

#include "models/unet_grad.h"

struct npy;
struct sched;

enum ddpm_lr_sched { DDPM_LR_CONSTANT, DDPM_LR_LINEAR, DDPM_LR_COSINE };

struct ddpm_hparams {
    double lr, beta1, beta2, eps, weight_decay, max_grad_norm; /* max_grad_norm <= 0: no clip */
    enum ddpm_lr_sched lr_sched;
    long warmup, total;            /* lr schedule warmup and total steps */
    int use_ema;
    double ema_inv_gamma, ema_power, ema_max_decay;
};
/* The defaults of train_unconditional.py (lr 1e-4, betas 0.95/0.999, wd 1e-6, eps 1e-8,
   clip 1, cosine, warmup 500, EMA off with inv_gamma 1, power 3/4, max decay 0.9999). */
void ddpm_hparams_default(struct ddpm_hparams *h);
/* learning rate of optimizer step `step` (0-based: the number of steps done before) */
double ddpm_lr_at(const struct ddpm_hparams *h, long step);

struct ddpm_train {
    struct unet *u;
    struct unet_grad g;
    int max_batch;
    float *grads, *m, *v;          /* (n_params) gradient, Adam moments */
    float *ema;                    /* (n_params) EMA shadow, NULL without EMA */
    long step;                     /* optimizer steps done */
    float *xt, *deps;              /* (B,in,S,S) noisy input, (B,out,S,S) loss gradient */
    float *tf;                     /* (B) timesteps as float */
    int next_bucket;               /* the next bucket of grads to sum over the processes */
};
/* Optimizer state for u (moments zero, EMA shadow = u's parameters when use_ema). */
void ddpm_train_init(struct ddpm_train *tr, struct unet *u, int max_batch, int use_ema);
void ddpm_train_free(struct ddpm_train *tr);

/* One optimisation step on x0 (B,in,S,S) in [-1,1], noise (B,in,S,S), timesteps t (B):
   x_t = add_noise(x0, noise, t); loss = mean((unet(x_t, t) - noise)^2); backward; clip;
   AdamW at ddpm_lr_at(step); EMA. Returns the loss; *grad_norm (before clipping) and *lr
   when not NULL. (ddpm_train_loss_grad, then ddpm_train_apply.) */
float ddpm_train_step(struct ddpm_train *tr, const struct ddpm_hparams *h, const struct sched *s,
                      const float *x0, const float *noise, const int *t, int B,
                      float *grad_norm, float *lr);
/* Only the loss and its gradients (tr->grads zeroed first); for tests and evaluation. */
float ddpm_train_loss_grad(struct ddpm_train *tr, const struct sched *s, const float *x0,
                           const float *noise, const int *t, int B);

/* A step whose batch is spread over micro-batches (--gradient-accumulation-steps) or
   processes (mpirun): zero tr->grads, then for each part of b of the step's G images
   tr->grads += w * (the gradient of that part's MSE mean), w = b / G, so that the sum over the
   parts (and over the processes: par_allreduce_sum) is the gradient of the step's mean loss;
   then ddpm_train_apply. ddpm_train_accumulate returns the part's loss (its MSE mean; the
   step's loss is the sum of w * loss). B >= 1 images, at most tr->max_batch. */
float ddpm_train_accumulate(struct ddpm_train *tr, const struct sched *s, const float *x0,
                            const float *noise, const int *t, int B, float w);
/* clip tr->grads, AdamW at ddpm_lr_at(step), step++, EMA; *grad_norm (before clipping) and
   *lr when not NULL */
void ddpm_train_apply(struct ddpm_train *tr, const struct ddpm_hparams *h, float *grad_norm,
                      float *lr);

/* Under mpirun (K > 1), the sum over the processes of tr->grads, overlapped with the
   backward. ddpm_train_reduce_arm before this process's last ddpm_train_accumulate of a step
   makes its backward start the sum of each bucket of tr->grads once it is done with it, the
   last bucket first (the sums run while the backward goes on; unet_grad's final hook).
   Buckets: an eighth of the model, at most DDPM_TRAIN_BUCKET floats (4 MB), the last one
   shorter; they and their order depend on the model alone. ddpm_train_reduce_finish starts
   the buckets left (all of them when the process had no images in the step and did not arm)
   and returns once tr->grads is the sum over the processes. Every process calls finish in
   each step, arm only when it has a part. The sums are par_iallreduce_sum's (for K = 2 the
   bits of one par_allreduce_sum of the whole). Without MPI both do nothing. */
#define DDPM_TRAIN_BUCKET ((size_t)1 << 20)
void ddpm_train_reduce_arm(struct ddpm_train *tr);
void ddpm_train_reduce_finish(struct ddpm_train *tr);

/* The inputs of samples j0 .. j0+n-1 of optimizer step `step`, sample j being the uint8
   image perm[i0 + j] of data (N,S,S,C): x0 (n,C,S,S) as trainer_gather_images, noise
   (n,C,S,S) N(0,1) and t (n) uniform in [0, T). Each sample draws from its own rng,
   trainer_sample_rng(seed, step, j): its flip (when flip), then its noise, then its timestep;
   so the numbers of a sample are the same whichever process or micro-batch draws it. */
void ddpm_train_draw(float *x0, float *noise, int *t, const struct npy *data,
                     const int64_t *perm, long i0, long j0, int n, long seed, long step,
                     int flip, int T);
#endif
