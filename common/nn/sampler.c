/* Timesteps, sigmas and dispatch for every sampler (diffusers 0.26..0.40 set_timesteps of
   scheduling_dpmsolver_multistep.py, scheduling_unipc_multistep.py, scheduling_pndm.py,
   scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py). numpy computes the
   timesteps in float64 and rounds half to even (rint); sigmas are float32 values, interpolated
   in float64 (np.interp) and stored as float32. */
#include "nn/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

const char *const sampler_names[SAMPLER_N_KINDS] = {
    "ddpm", "ddim", "dpm-solver++", "sde-dpm-solver++", "unipc", "pndm", "euler", "euler-a"};

/* np.arange(T, 0, -T/n) (numpy fills start + i*delta, delta = (start + step) - start) */
static int arange_trailing(double *v, int T, int n)
{
    double step = -(double)T / n, d = ((double)T + step) - T;
    int len = (int)ceil((0.0 - T) / step);
    if (len < 1)
        len = 1;
    if (v)
        for (int i = 0; i < len; i++)
            v[i] = T + i * d;
    return len;
}

/* np.linspace(0, stop, num): i * (stop / (num - 1)), the last point exactly stop */
static double np_linspace(int i, int num, double stop)
{
    if (num == 1)
        return 0;
    return i == num - 1 ? stop : i * (stop / (num - 1));
}

/* np.interp(t, arange(T), sig): the float32 table read in float64 */
static float interp(const float *sig, int T, double t)
{
    if (t <= 0)
        return sig[0];
    if (t >= T - 1)
        return sig[T - 1];
    int j = (int)floor(t);
    if (t == j)
        return sig[j];
    double slope = ((double)sig[j + 1] - sig[j]) / 1.0;
    return (float)(slope * (t - j) + sig[j]);
}

/* dpm-solver++ and unipc: n+1 points, the last (t = 0) dropped */
static int multistep_timesteps(int *ts, const struct sched_config *c, int sp, int n)
{
    int T = c->num_train_timesteps;
    if (sp == SCHED_LINSPACE) {
        for (int j = 0; j < n; j++)
            ts[j] = (int)rint(np_linspace(n - j, n + 1, T - 1));
        return n;
    }
    if (sp == SCHED_LEADING) {
        int r = T / (n + 1);
        for (int j = 0; j < n; j++)
            ts[j] = (n - j) * r + c->steps_offset;
        return n;
    }
    int len = arange_trailing(NULL, T, n);
    double *v = xmalloc((size_t)len * sizeof(double));
    arange_trailing(v, T, n);
    for (int j = 0; j < len; j++)
        ts[j] = (int)rint(v[j]) - 1;
    free(v);
    return len;
}

/* PNDM's _timesteps (ascending) */
static int pndm_base(int *b, const struct sched_config *c, int sp, int n)
{
    int T = c->num_train_timesteps;
    if (sp == SCHED_LINSPACE) {
        for (int i = 0; i < n; i++)
            b[i] = (int)rint(np_linspace(i, n, T - 1));
        return n;
    }
    if (sp == SCHED_LEADING) {
        for (int i = 0; i < n; i++)
            b[i] = i * (T / n) + c->steps_offset;
        return n;
    }
    int len = arange_trailing(NULL, T, n);
    double *v = xmalloc((size_t)len * sizeof(double));
    arange_trailing(v, T, n);
    for (int i = 0; i < len; i++)
        b[i] = (int)rint(v[len - 1 - i]) - 1;
    free(v);
    return len;
}

/* PNDM's call list from _timesteps b (ascending, len values): PLMS (the second timestep
   twice), or PRK's 12 calls over the last 4 then PLMS over the rest */
static void pndm_calls(struct sampler *s, const int *b, int len, int T, int n)
{
    int k = 0;
    s->n_calls = s->prk ? 12 + len - 3 : len + (len > 1);
    s->ts = xmalloc((size_t)s->n_calls * sizeof(int));
    if (s->prk) {
        /* _timesteps[-4:] each twice, + [0, T//n//2] tiled; [:-1] each twice; [1:-1] */
        int a[8], p[14], half = T / n / 2;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++)
                a[2 * i + j] = b[len - 4 + i] + j * half;
        for (int i = 0; i < 7; i++)
            p[2 * i] = p[2 * i + 1] = a[i];
        for (int i = 12; i >= 1; i--)
            s->ts[k++] = p[i];
        for (int i = len - 4; i >= 0; i--)
            s->ts[k++] = b[i];
        return;
    }
    /* concat(_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:]) reversed */
    s->ts[k++] = b[len - 1];
    if (len > 1)
        s->ts[k++] = b[len - 2];
    for (int i = len - 2; i >= 0; i--)
        s->ts[k++] = b[i];
}

/* Euler's float32 timesteps, kept unrounded for linspace */
static void euler_timesteps(struct sampler *s, const struct sched_config *c, int sp, int n, int len)
{
    int T = c->num_train_timesteps;
    if (sp == SCHED_LINSPACE) {
        for (int i = 0; i < n; i++)
            s->t[i] = (float)np_linspace(n - 1 - i, n, T - 1);
    } else if (sp == SCHED_LEADING) {
        for (int i = 0; i < n; i++)
            s->t[i] = (float)rint((double)(n - 1 - i) * (T / n)) + (float)c->steps_offset;
    } else {
        double *v = xmalloc((size_t)len * sizeof(double));
        arange_trailing(v, T, n);
        for (int i = 0; i < len; i++)
            s->t[i] = (float)rint(v[i]) - 1.0f;
        free(v);
    }
    for (int i = 0; i < len; i++)
        s->ts[i] = (int)floorf(s->t[i]);
}

/* the timesteps the model sees; -1 with msg when one is out of range or (but PNDM's designed
   repeat) two are equal: diffusers' dpm-solver++ and unipc return NaN at 1000 steps */
static int set_timesteps(struct sampler *s, const struct sched_config *c, int sp, int n,
                         char *msg, size_t msglen)
{
    int T = c->num_train_timesteps, len = sp == SCHED_TRAILING ? arange_trailing(NULL, T, n) : n;
    if (s->kind == SAMPLER_PNDM) {
        int *b = xmalloc((size_t)len * sizeof(int));
        pndm_base(b, c, sp, n);
        if (s->prk && len < 4) {
            snprintf(msg, msglen, "pndm's PRK warm-up needs 4 or more steps");
            free(b);
            return -1;
        }
        s->prk = s->prk ? 12 : 0;
        pndm_calls(s, b, len, T, n);
        free(b);
    } else {
        s->n_calls = len;
        s->ts = xmalloc((size_t)len * sizeof(int));
        if (s->kind == SAMPLER_DPM || s->kind == SAMPLER_SDE_DPM || s->kind == SAMPLER_UNIPC)
            multistep_timesteps(s->ts, c, sp, n);
    }
    s->t = xmalloc((size_t)s->n_calls * sizeof(float));
    if (s->kind == SAMPLER_EULER || s->kind == SAMPLER_EULER_A)
        euler_timesteps(s, c, sp, n, len);
    else
        for (int i = 0; i < s->n_calls; i++)
            s->t[i] = (float)s->ts[i];
    for (int i = 0; i < s->n_calls; i++) {
        if (s->t[i] < 0 || s->t[i] > T - 1) {
            snprintf(msg, msglen, "timestep %g out of range (steps_offset too large?)",
                     (double)s->t[i]);
            return -1;
        }
        if (s->kind != SAMPLER_PNDM && i > 0 && s->t[i] == s->t[i - 1]) {
            snprintf(msg, msglen,
                     "steps: %d gives timestep %g twice, which diffusers turns into NaN; "
                     "use fewer steps",
                     n, (double)s->t[i]);
            return -1;
        }
    }
    return 0;
}

static void set_sigmas(struct sampler *s)
{
    int T = s->base.T;
    float *sig = xmalloc((size_t)T * sizeof(float)), max = 0;
    for (int k = 0; k < T; k++) {
        float ac = s->base.alphas_cumprod[k];
        sig[k] = sqrtf((1.0f - ac) / ac);
    }
    s->sigmas = xmalloc((size_t)(s->n_calls + 1) * sizeof(float));
    for (int i = 0; i < s->n_calls; i++) {
        s->sigmas[i] = interp(sig, T, (double)s->t[i]);
        if (s->sigmas[i] > max)
            max = s->sigmas[i];
    }
    s->sigmas[s->n_calls] = 0; /* final_sigmas_type "zero" */
    s->init_noise_sigma = 1.0f;
    if (s->kind == SAMPLER_EULER || s->kind == SAMPLER_EULER_A)
        s->init_noise_sigma = s->base.cfg.timestep_spacing == SCHED_LEADING
                                  ? sqrtf(max * max + 1.0f) : max;
    free(sig);
}

int sampler_init(struct sampler *s, const struct sched_config *c, enum sampler_kind kind,
                 const struct sampler_opts *o, size_t n_max, char *msg, size_t msglen)
{
    struct sched_config cc = *c;
    int n = o->n_steps, nbuf = 0;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->n_req = n;
    s->order = o->order ? o->order : 2;
    s->n_max = n_max;
    s->init_noise_sigma = 1.0f;
    if (o->order && kind != SAMPLER_DPM && kind != SAMPLER_SDE_DPM && kind != SAMPLER_UNIPC) {
        snprintf(msg, msglen, "--solver-order applies to dpm-solver++, sde-dpm-solver++ and unipc");
        return -1;
    }
    if (s->order < 1 || s->order > 3 || (kind == SAMPLER_SDE_DPM && s->order > 2)) {
        snprintf(msg, msglen, "solver order %d unsupported for %s (want 1..%d)", s->order,
                 sampler_names[kind], kind == SAMPLER_SDE_DPM ? 2 : 3);
        return -1;
    }
    if (o->prk && kind != SAMPLER_PNDM) {
        snprintf(msg, msglen, "--prk applies to pndm only");
        return -1;
    }
    if (o->use_clipped_eps && kind != SAMPLER_DDIM) {
        snprintf(msg, msglen, "--use-clipped-model-output applies to ddim only");
        return -1;
    }
    if (o->spacing >= 0)
        cc.timestep_spacing = (enum sched_spacing)o->spacing;
    else if (kind != SAMPLER_DDPM && kind != SAMPLER_DDIM)
        cc.timestep_spacing = kind == SAMPLER_PNDM ? SCHED_LEADING : SCHED_LINSPACE;
    if (kind == SAMPLER_DDPM || kind == SAMPLER_DDIM) {
        if (sched_init(&s->base, &cc, kind == SAMPLER_DDIM ? SCHED_DDIM : SCHED_DDPM, n, o->eta,
                       msg, msglen) == -1)
            return -1;
        s->base.use_clipped_eps = o->use_clipped_eps;
        s->n_calls = s->base.n_steps;
        s->t = xmalloc((size_t)s->n_calls * sizeof(float));
        s->ts = xmalloc((size_t)s->n_calls * sizeof(int));
        for (int i = 0; i < s->n_calls; i++) {
            s->ts[i] = s->base.timesteps[i];
            s->t[i] = (float)s->ts[i];
        }
        return 0;
    }
    /* the tables only: the one-step schedule itself is unused */
    if (sched_init(&s->base, &cc, SCHED_DDIM, 1, 0, msg, msglen) == -1)
        return -1;
    if (n < 1 || n > s->base.T) {
        snprintf(msg, msglen, "steps: %d out of range 1..%d", n, s->base.T);
        sampler_free(s);
        return -1;
    }
    s->prk = o->prk;
    if (set_timesteps(s, &cc, cc.timestep_spacing, n, msg, msglen) == -1) {
        sampler_free(s);
        return -1;
    }
    /* PNDMScheduler's set_alpha_to_one defaults to false (sched_config: -1 when absent) */
    s->final_alpha_cumprod = c->set_alpha_to_one == 1 ? 1.0f : s->base.alphas_cumprod[0];
    if (kind != SAMPLER_PNDM)
        set_sigmas(s);
    if (kind == SAMPLER_DPM || kind == SAMPLER_SDE_DPM)
        nbuf = s->order;
    else if (kind == SAMPLER_UNIPC)
        nbuf = s->order + 2;
    else if (kind == SAMPLER_PNDM)
        nbuf = 6;
    s->buf = nbuf ? xmalloc((size_t)nbuf * n_max * sizeof(float)) : NULL;
    for (int k = 0; k < nbuf; k++) {
        float *p = s->buf + (size_t)k * n_max;
        if (kind == SAMPLER_PNDM)
            *(k < 4 ? &s->ets[k] : k == 4 ? &s->last : &s->acc) = p;
        else if (kind == SAMPLER_UNIPC && k == nbuf - 1)
            s->last = p;
        else
            s->m[k] = p;
    }
    sampler_reset(s);
    return 0;
}

void sampler_free(struct sampler *s)
{
    sched_free(&s->base);
    free(s->t);
    free(s->ts);
    free(s->sigmas);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

void sampler_reset(struct sampler *s)
{
    s->lower_order_nums = 0;
    s->this_order = 0;
    s->n_ets = 0;
    s->counter = 0;
}

int sampler_step_needs_noise(const struct sampler *s, int i)
{
    switch (s->kind) {
    case SAMPLER_DDPM:
    case SAMPLER_DDIM:
        return sched_step_needs_noise(&s->base, i);
    case SAMPLER_SDE_DPM:
    case SAMPLER_EULER_A:
        return 1; /* every step, the last one's multiplied by 0 */
    default:
        return 0;
    }
}

void sampler_scale_input(const struct sampler *s, int i, float *xin, const float *x, size_t n)
{
    if (s->kind != SAMPLER_EULER && s->kind != SAMPLER_EULER_A) {
        if (xin != x)
            memcpy(xin, x, n * sizeof(float));
        return;
    }
    float sg = s->sigmas[i], d = sqrtf(sg * sg + 1.0f);
    for (size_t k = 0; k < n; k++)
        xin[k] = x[k] / d;
}

void sampler_step(struct sampler *s, int i, float *x, const float *eps, const float *noise,
                  size_t n)
{
    switch (s->kind) {
    case SAMPLER_DDPM:
    case SAMPLER_DDIM:
        sched_step(&s->base, i, x, eps, noise, n);
        break;
    case SAMPLER_DPM:
    case SAMPLER_SDE_DPM:
        sampler_dpm_step(s, i, x, eps, noise, n);
        break;
    case SAMPLER_UNIPC:
        sampler_unipc_step(s, i, x, eps, n);
        break;
    case SAMPLER_PNDM:
        sampler_pndm_step(s, i, x, eps, n);
        break;
    case SAMPLER_EULER:
    case SAMPLER_EULER_A:
        sampler_euler_step(s, i, x, eps, noise, n);
        break;
    }
}

void sampler_alpha_sigma(float sigma, float *alpha_t, float *sigma_t, float *lambda)
{
    float a = 1.0f / sqrtf(sigma * sigma + 1.0f), sg = sigma * a;
    *alpha_t = a;
    *sigma_t = sg;
    if (lambda)
        *lambda = logf(a) - logf(sg);
}
