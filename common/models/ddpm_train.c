/* The training step of diffusers' examples/unconditional_image_generation/
   train_unconditional.py (spec ddpm.md section 5) on the C UNet. */
#include "models/ddpm_train.h"

#include <stdlib.h>
#include <string.h>

#include "models/trainer.h"
#include "nn/nn.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "nn/sched.h"
#include "util/par.h"
#include "util/util.h"

void ddpm_hparams_default(struct ddpm_hparams *h)
{
    memset(h, 0, sizeof *h);
    h->lr = 1e-4;
    h->beta1 = 0.95;
    h->beta2 = 0.999;
    h->eps = 1e-8;
    h->weight_decay = 1e-6;
    h->max_grad_norm = 1.0;
    h->lr_sched = DDPM_LR_COSINE;
    h->warmup = 500;
    h->total = 1;
    h->use_ema = 0;
    h->ema_inv_gamma = 1.0;
    h->ema_power = 0.75;
    h->ema_max_decay = 0.9999;
}

/* LambdaLR: base_lr * lambda(step), in double as Python */
double ddpm_lr_at(const struct ddpm_hparams *h, long step)
{
    double mult;
    switch (h->lr_sched) {
    case DDPM_LR_CONSTANT: mult = lr_constant_warmup(step, h->warmup); break;
    case DDPM_LR_LINEAR: mult = lr_linear_warmup(step, h->warmup, h->total); break;
    default: mult = lr_cosine_warmup(step, h->warmup, h->total); break;
    }
    return h->lr * mult;
}

void ddpm_train_init(struct ddpm_train *tr, struct unet *u, int max_batch, int use_ema)
{
    const struct unet_config *c = &u->cfg;
    size_t n = u->n_params, S2 = (size_t)c->sample_size * c->sample_size;
    memset(tr, 0, sizeof *tr);
    tr->u = u;
    tr->max_batch = max_batch;
    /* the training layout (an inference one keeps too little for a backward), sized once,
       and the tiles its forward keeps for the weight gradients */
    if (u->acts.max_batch < max_batch || u->acts.infer)
        unet_alloc_acts(u, max_batch);
    unet_alloc_tiles(u, max_batch);
    unet_grad_init(&tr->g, u, max_batch);
    tr->grads = xcalloc_big(n, sizeof(float));
    tr->m = xcalloc_big(n, sizeof(float));
    tr->v = xcalloc_big(n, sizeof(float));
    if (use_ema) {
        tr->ema = xmalloc_big(n * sizeof(float));
        memcpy(tr->ema, u->params, n * sizeof(float));
    }
    tr->xt = xmalloc((size_t)max_batch * c->in_channels * S2 * sizeof(float));
    tr->deps = xmalloc((size_t)max_batch * c->out_channels * S2 * sizeof(float));
    tr->tf = xmalloc((size_t)max_batch * sizeof(float));
}

void ddpm_train_free(struct ddpm_train *tr)
{
    unet_grad_free(&tr->g);
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->ema);
    free(tr->xt);
    free(tr->deps);
    free(tr->tf);
    memset(tr, 0, sizeof *tr);
}

float ddpm_train_accumulate(struct ddpm_train *tr, const struct sched *s, const float *x0,
                            const float *noise, const int *t, int B, float w)
{
    struct unet *u = tr->u;
    const struct unet_config *c = &u->cfg;
    size_t per = (size_t)c->in_channels * c->sample_size * c->sample_size;
    size_t nout = (size_t)B * c->out_channels * c->sample_size * c->sample_size;
    float loss;

    for (int b = 0; b < B; b++) {
        sched_add_noise(s, tr->xt + b * per, x0 + b * per, noise + b * per, t[b], per);
        tr->tf[b] = (float)t[b];
    }
    unet_forward(u, NULL, tr->xt, tr->tf, B);
    /* F.mse_loss(model_output, noise): out_channels == in_channels for epsilon prediction */
    loss = nn_mse_loss_forward(u->acts.out, noise, nout);
    memset(tr->deps, 0, nout * sizeof(float));
    nn_mse_loss_backward(tr->deps, u->acts.out, noise, nout, w);
    unet_backward(u, &tr->g, tr->grads, tr->deps, B);
    return loss;
}

float ddpm_train_loss_grad(struct ddpm_train *tr, const struct sched *s, const float *x0,
                           const float *noise, const int *t, int B)
{
    memset(tr->grads, 0, tr->u->n_params * sizeof(float));
    return ddpm_train_accumulate(tr, s, x0, noise, t, B, 1.0f);
}

void ddpm_train_apply(struct ddpm_train *tr, const struct ddpm_hparams *h, float *grad_norm,
                      float *lr)
{
    struct unet *u = tr->u;
    double lrd = ddpm_lr_at(h, tr->step);
    struct adam o = {(float)lrd, (float)h->beta1, (float)h->beta2, (float)h->eps,
                     (float)h->weight_decay, 1};
    float gn;

    if (h->max_grad_norm > 0)
        gn = grad_clip_norm(tr->grads, u->n_params, (float)h->max_grad_norm);
    else
        gn = grad_clip_norm(tr->grads, u->n_params, 1e30f);
    adam_step(&o, u->params, tr->grads, tr->m, tr->v, u->n_params, tr->step + 1);
    unet_weights_changed(u);
    tr->step++;
    if (tr->ema != NULL) {
        double d = ema_decay_f64(tr->step, 0, h->ema_inv_gamma, h->ema_power, 0.0,
                                 h->ema_max_decay);
        ema_update_f64(tr->ema, u->params, u->n_params, d);
    }
    if (grad_norm != NULL)
        *grad_norm = gn;
    if (lr != NULL)
        *lr = (float)lrd;
}

float ddpm_train_step(struct ddpm_train *tr, const struct ddpm_hparams *h, const struct sched *s,
                      const float *x0, const float *noise, const int *t, int B,
                      float *grad_norm, float *lr)
{
    float loss = ddpm_train_loss_grad(tr, s, x0, noise, t, B);
    ddpm_train_apply(tr, h, grad_norm, lr);
    return loss;
}

/* floats a bucket: an eighth of the model, at most DDPM_TRAIN_BUCKET (a small model's sum
   still overlaps its backward), a multiple of 16 */
static size_t bucket_size(const struct ddpm_train *tr)
{
    size_t b = (tr->u->n_params / 8 + 15) & ~(size_t)15;
    return b < 16 ? 16 : b > DDPM_TRAIN_BUCKET ? DDPM_TRAIN_BUCKET : b;
}

static int n_buckets(const struct ddpm_train *tr)
{
    return (int)((tr->u->n_params + bucket_size(tr) - 1) / bucket_size(tr));
}

/* unet_grad's final hook: start the buckets lying wholly at or above from (par.c's thread
   moves them on while the backward runs) */
static void reduce_from(void *ctx, size_t from)
{
    struct ddpm_train *tr = ctx;
    size_t n = tr->u->n_params, bs = bucket_size(tr);
    for (; tr->next_bucket >= 0 && (size_t)tr->next_bucket * bs >= from; tr->next_bucket--) {
        size_t lo = (size_t)tr->next_bucket * bs, hi = lo + bs < n ? lo + bs : n;
        par_iallreduce_sum(tr->grads + lo, hi - lo);
    }
}

void ddpm_train_reduce_arm(struct ddpm_train *tr)
{
    if (par_size() == 1)
        return;
    tr->next_bucket = n_buckets(tr) - 1;
    tr->g.final = reduce_from;
    tr->g.final_ctx = tr;
}

void ddpm_train_reduce_finish(struct ddpm_train *tr)
{
    if (par_size() == 1)
        return;
    if (tr->g.final == NULL) /* not armed: this process had no part of the step */
        tr->next_bucket = n_buckets(tr) - 1;
    reduce_from(tr, 0);
    par_wait_all();
    tr->g.final = NULL;
    tr->g.final_ctx = NULL;
}

void ddpm_train_draw(float *x0, float *noise, int *t, const struct npy *data,
                     const int64_t *perm, long i0, long j0, int n, long seed, long step,
                     int flip, int T)
{
    size_t per = (size_t)data->shape[1] * data->shape[2] * data->shape[3];
    for (int b = 0; b < n; b++) {
        struct rng r;
        long j = j0 + b;
        trainer_sample_rng(&r, seed, step, j);
        trainer_gather_images(x0 + b * per, data, perm, i0 + j, 1, flip ? &r : NULL);
        rng_normal_fill(&r, noise + b * per, per);
        t[b] = (int)rng_below(&r, (uint64_t)T);
    }
}
