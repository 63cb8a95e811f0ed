/* PNDMScheduler steps (diffusers 0.26 scheduling_pndm.py, epsilon prediction): the
   Runge-Kutta warm-up (step_prk, when skip_prk_steps is false) and the linear multistep
   (step_plms), both through _get_prev_sample (formula (9) of the PNDM paper). */
#include <string.h>
#include <math.h>

#include "nn/sampler.h"

static void prev_sample(const struct sampler *s, float *out, const float *x, int t, int tp,
                        const float *mo, size_t n)
{
    float ab = s->base.alphas_cumprod[t];
    float abp = tp >= 0 ? s->base.alphas_cumprod[tp] : s->final_alpha_cumprod;
    float bt = 1.0f - ab, btp = 1.0f - abp;
    float sc = sqrtf(abp / ab), den = ab * sqrtf(btp) + sqrtf(ab * bt * abp), d = abp - ab;
    for (size_t k = 0; k < n; k++)
        out[k] = sc * x[k] - d * mo[k] / den;
}

static void push_ets(struct sampler *s, const float *eps, size_t n)
{
    float *t = s->ets[3];
    for (int k = 3; k > 0; k--)
        s->ets[k] = s->ets[k - 1];
    s->ets[0] = t;
    memcpy(t, eps, n * sizeof(float));
    if (s->n_ets < 4)
        s->n_ets++;
}

static void step_prk(struct sampler *s, int i, float *x, const float *eps, size_t n)
{
    int c = s->counter, T = s->base.T, N = s->n_req;
    int tp = s->ts[i] - (c % 2 ? 0 : T / N / 2), t = s->ts[c / 4 * 4];
    float *acc = s->acc, w6 = (float)(1.0 / 6), w3 = (float)(1.0 / 3);
    const float *mo = eps;
    if (c % 4 == 0) {
        for (size_t k = 0; k < n; k++)
            acc[k] = w6 * eps[k];
        push_ets(s, eps, n);
        memcpy(s->last, x, n * sizeof(float));
    } else if (c % 4 == 1 || c % 4 == 2) {
        for (size_t k = 0; k < n; k++)
            acc[k] = acc[k] + w3 * eps[k];
    } else {
        for (size_t k = 0; k < n; k++)
            acc[k] = acc[k] + w6 * eps[k];
        mo = acc;
    }
    prev_sample(s, x, s->last, t, tp, mo, n);
}

static void step_plms(struct sampler *s, int i, float *x, const float *eps, size_t n)
{
    int c = s->counter, r = s->base.T / s->n_req, t = s->ts[i], tp = t - r;
    float *mo = s->acc, **e = s->ets;
    const float *src = x;
    if (c != 1)
        push_ets(s, eps, n);
    else {
        tp = t;
        t = t + r;
    }
    if (s->n_ets == 1 && c == 0) {
        memcpy(mo, eps, n * sizeof(float));
        memcpy(s->last, x, n * sizeof(float));
    } else if (s->n_ets == 1 && c == 1) {
        for (size_t k = 0; k < n; k++)
            mo[k] = (eps[k] + e[0][k]) / 2;
        src = s->last;
    } else if (s->n_ets == 2) {
        for (size_t k = 0; k < n; k++)
            mo[k] = (3 * e[0][k] - e[1][k]) / 2;
    } else if (s->n_ets == 3) {
        for (size_t k = 0; k < n; k++)
            mo[k] = (23 * e[0][k] - 16 * e[1][k] + 5 * e[2][k]) / 12;
    } else {
        float w = (float)(1.0 / 24);
        for (size_t k = 0; k < n; k++)
            mo[k] = w * (55 * e[0][k] - 59 * e[1][k] + 37 * e[2][k] - 9 * e[3][k]);
    }
    prev_sample(s, x, src, t, tp, mo, n);
}

void sampler_pndm_step(struct sampler *s, int i, float *x, const float *eps, size_t n)
{
    if (s->counter < s->prk)
        step_prk(s, i, x, eps, n);
    else
        step_plms(s, i, x, eps, n);
    s->counter++;
}
