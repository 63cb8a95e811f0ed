/* Training utilities: Adam/AdamW exactly as torch.optim, learning-rate schedules, global-norm
   gradient clipping, EMA of weights as diffusers' EMAModel, PyTorch-default initialisation. */
#ifndef OPTIM_H
#define OPTIM_H
#include <stddef.h>

struct rng;

struct adam {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 1: AdamW (p -= lr*wd*p first); 0: Adam (grad += wd*p) */
};
/* One step over n parameters; step is the 1-based step count after this update (bias
   correction uses it). m, v: first and second moments, zero before the first step.
   torch: denom = sqrt(v)/sqrt(1-b2^t) + eps; p -= lr/(1-b1^t) * m/denom. */
void adam_step(const struct adam *o, float *p, const float *g, float *m, float *v, size_t n,
               long step);

/* diffusers get_cosine_schedule_with_warmup (num_cycles 0.5): multiplier at step s. */
float lr_cosine_warmup(long s, long warmup, long total);
/* get_constant_schedule_with_warmup / get_linear_schedule_with_warmup multipliers */
float lr_constant_warmup(long s, long warmup);
float lr_linear_warmup(long s, long warmup, long total);

/* torch.nn.utils.clip_grad_norm_ over one flat gradient buffer: returns the total L2 norm
   before clipping; scales by max_norm/(norm+1e-6) when norm > max_norm. */
float grad_clip_norm(float *g, size_t n, float max_norm);

/* diffusers EMAModel with use_ema_warmup: decay for optimisation step k (1-based count of
   EMA updates): s = max(0, k - update_after - 1); 0 if s <= 0 else
   min(max_decay, 1 - (1 + s/inv_gamma)^-power), then max(min_decay, .) */
float ema_decay(long k, long update_after, float inv_gamma, float power, float min_decay,
                float max_decay);
/* shadow -= (1 - decay) * (shadow - param) */
void ema_update(float *shadow, const float *param, size_t n, float decay);

/* PyTorch default init for Conv*d and Linear: weight ~ U(-b, b) with b = 1/sqrt(fan_in)
   (kaiming_uniform_, a=sqrt(5)); bias ~ U(-b, b), b = 1/sqrt(fan_in). */
void init_uniform(float *w, size_t n, float bound, struct rng *r);

/* Additions. EMA in double: near max_decay 0.9999 a float decay keeps only ~4 digits of
   1 - decay (0.9999f gives 1.00017e-4); torch multiplies by (float)(1 - 0.9999) = 1e-4.
   Prefer these (pass 0.9999, not 0.9999f). */
double ema_decay_f64(long k, long update_after, double inv_gamma, double power,
                     double min_decay, double max_decay);
void ema_update_f64(float *shadow, const float *param, size_t n, double decay);
#endif
