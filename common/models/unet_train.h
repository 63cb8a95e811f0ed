/* Training the diffusers UNet2DModel (unet.h): the full backward pass over the activations
   unet_forward keeps, and the train_unconditional.py step (epsilon MSE at uniformly drawn
   timesteps, global-norm clipping, AdamW, a diffusers learning-rate schedule, EMAModel).

   Gradients: a block of u->n_params floats, each parameter's gradient at the same offset as
   the parameter in u->params (so the st_entry table of u names both). unet_backward
   ACCUMULATES into it, like every nn backward; the caller zeroes it once per step.
   The activation gradients live in one scratch allocation (struct unet_grad) made once for
   batches of up to max_batch images: nothing is allocated per step. */
#ifndef UNET_TRAIN_H
#define UNET_TRAIN_H
#include <stddef.h>
#include <stdint.h>

#include "models/unet.h"

struct sched;

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
};

/* Scratch for batches of up to B images of u's config (also sizes u's activations). */
void unet_grad_init(struct unet_grad *g, struct unet *u, int B);
void unet_grad_free(struct unet_grad *g);
/* After unet_forward(u, .., B): deps (B,out,S,S) the gradient of the loss with respect to
   the output; grads (u->n_params) += the parameter gradients. */
void unet_backward(struct unet *u, struct unet_grad *g, float *grads, const float *deps, int B);
/* Inside the backward (unet_grad_conv.c): Conv2d(C, OC, 3, 1, 1) on in (B,C,H,W) with weight
   w; din (may be NULL) = (overwritten), dw += , db += , using gr's flipped-weight and
   Winograd scratch (sized with unet_conv3_grad_scratch, and nn_conv_scratch for the im2col
   weight gradient used when din is NULL and C < 16) and the forward's kept tiles. */
size_t unet_conv3_grad_scratch(int B, int C, int H, int W, int OC);
void unet_conv3_backward(struct unet *u, struct unet_grad *gr, float *din, float *dw, float *db,
                         const float *dout, const float *in, const float *w, int B, int C,
                         int H, int W, int OC);

/* ---- the training step of train_unconditional.py ---- */
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

struct npy;
/* The inputs of samples j0 .. j0+n-1 of optimizer step `step`, sample j being the uint8
   image perm[i0 + j] of data (N,S,S,C): x0 (n,C,S,S) as trainer_gather_images, noise
   (n,C,S,S) N(0,1) and t (n) uniform in [0, T). Each sample draws from its own rng,
   trainer_sample_rng(seed, step, j): its flip (when flip), then its noise, then its timestep;
   so the numbers of a sample are the same whichever process or micro-batch draws it. */
void ddpm_train_draw(float *x0, float *noise, int *t, const struct npy *data,
                     const int64_t *perm, long i0, long j0, int n, long seed, long step,
                     int flip, int T);

struct rng;
struct sched_config;
struct st_file;
/* PyTorch's default initialisation, tensor by tensor in parameter order: Conv2d and Linear
   weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (fan_in = in * kh * kw); GroupNorm
   weight 1, bias 0. (Same distribution as torch, not the same numbers.) */
void unet_init_torch_default(struct unet *u, struct rng *r);

/* A training checkpoint folder, written as dir.tmp-PID then renamed (never half there): a
   diffusers model folder of the current weights (config.json, scheduler_config.json,
   diffusion_pytorch_model.safetensors) plus training_state.safetensors holding adam_m,
   adam_v and, with EMA, ema (flat, n_params each, the params' layout) and n_meta string
   metadata pairs. An existing dir is replaced. */
int ddpm_ckpt_save(const char *dir, const struct ddpm_train *tr, const struct sched_config *sc,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen);
/* Fills tr's moments and EMA from dir/training_state.safetensors (tr initialised on the
   model loaded from dir) and leaves the file open in f for its metadata (st_close it). */
int ddpm_ckpt_load_state(const char *dir, struct ddpm_train *tr, struct st_file *f, char *msg,
                         size_t msglen);
#endif
