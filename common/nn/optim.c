#include "nn/optim.h"
#include "util/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* below this many parameters the thread start-up costs more than the loop */
#define OPTIM_PAR_MIN 65536

/* The double a user most likely wrote for a float hyper-parameter (0.999f -> 0.999): torch
   forms 1 - beta, beta^t and lr/bc in double from the Python literal, and (double)0.999f
   would make 1 - beta2 off by 5e-5 relative. */
static double f2d(float x)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        double d = strtod(buf, NULL);
        if ((float)d == x)
            return d;
    }
    return x;
}

/* torch.optim.Adam/AdamW, single-tensor path of torch 1.13, op by op in float32 with the fused
   multiply-adds its CPU kernels compile to (add with alpha and addcmul are fma; addcdiv and
   the divisions are not):
   AdamW: p *= 1 - lr*wd; Adam: g = fma(wd, p, g);
   m = fma(1-b1, g, m*b1); v = fma((1-b2)*g, g, v*b2);
   denom = sqrt(v)/sqrt(bc2) + eps; p = p + (-lr/bc1)*m/denom.
   Scalars are formed in double, as Python does, then rounded to float. */
void adam_step(const struct adam *o, float *p, const float *g, float *m, float *v, size_t n,
               long step)
{
    const double lr = f2d(o->lr), beta1 = f2d(o->beta1), beta2 = f2d(o->beta2);
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps, wd = o->weight_decay;
    const float a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float neg_step = (float)(-(lr / bc1));
    const float decay = (float)(1.0 - lr * f2d(o->weight_decay));
    const int decoupled = o->decoupled;
    const long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPTIM_PAR_MIN)
    for (long long i = 0; i < nn; i++) {
        float pi = p[i], gi = g[i];
        if (wd != 0.0f) {
            if (decoupled)
                pi = pi * decay;
            else
                gi = fmaf(wd, pi, gi);
        }
        float mi = fmaf(a1, gi, m[i] * b1);
        float vi = fmaf(a2 * gi, gi, v[i] * b2);
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + neg_step * mi / denom;
    }
}

/* diffusers optimization.py lambdas, in double as Python computes them */
float lr_constant_warmup(long s, long warmup)
{
    if (s < warmup)
        return (float)((double)s / (double)(warmup > 1 ? warmup : 1));
    return 1.0f;
}

float lr_linear_warmup(long s, long warmup, long total)
{
    if (s < warmup)
        return (float)((double)s / (double)(warmup > 1 ? warmup : 1));
    double r = (double)(total - s) / (double)(total - warmup > 1 ? total - warmup : 1);
    return (float)(r > 0 ? r : 0);
}

float lr_cosine_warmup(long s, long warmup, long total)
{
    if (s < warmup)
        return (float)((double)s / (double)(warmup > 1 ? warmup : 1));
    double progress = (double)(s - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
    double r = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
    return (float)(r > 0 ? r : 0);
}

/* torch.nn.utils.clip_grad_norm_: clip_coef = max_norm/(total+1e-6) in float, clamped at 1.
   The norm is accumulated in double. A non-finite norm is returned and nothing is scaled;
   the caller decides (torch would fill the gradients with NaN). */
float grad_clip_norm(float *g, size_t n, float max_norm)
{
    double s = 0;
    const long long nn = (long long)n;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n >= OPTIM_PAR_MIN)
    for (long long i = 0; i < nn; i++)
        s += (double)g[i] * g[i];
    float total = (float)sqrt(s);
    float coef = max_norm / (total + 1e-6f);
    if (coef < 1.0f) {
#pragma omp parallel for simd schedule(static) if (n >= OPTIM_PAR_MIN)
        for (long long i = 0; i < nn; i++)
            g[i] *= coef;
    }
    return total;
}

double ema_decay_f64(long k, long update_after, double inv_gamma, double power,
                     double min_decay, double max_decay)
{
    long s = k - update_after - 1;
    if (s <= 0)
        return 0.0;
    double d = 1.0 - pow(1.0 + (double)s / inv_gamma, -power);
    if (d > max_decay)
        d = max_decay;
    if (d < min_decay)
        d = min_decay;
    return d;
}

float ema_decay(long k, long update_after, float inv_gamma, float power, float min_decay,
                float max_decay)
{
    return (float)ema_decay_f64(k, update_after, f2d(inv_gamma), f2d(power), f2d(min_decay),
                                f2d(max_decay));
}

void ema_update(float *shadow, const float *param, size_t n, float decay)
{
    ema_update_f64(shadow, param, n, f2d(decay));
}

/* diffusers: s_param.sub_(one_minus_decay * (s_param - param)), each op in float */
void ema_update_f64(float *shadow, const float *param, size_t n, double decay)
{
    const float omd = (float)(1.0 - decay);
    const long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPTIM_PAR_MIN)
    for (long long i = 0; i < nn; i++)
        shadow[i] = shadow[i] - omd * (shadow[i] - param[i]);
}

/* torch.nn.init.uniform_(-b, b): from + (to - from) * u */
void init_uniform(float *w, size_t n, float bound, struct rng *r)
{
    for (size_t i = 0; i < n; i++)
        w[i] = -bound + 2.0f * bound * rng_uniform(r);
}
