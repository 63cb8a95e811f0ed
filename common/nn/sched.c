/* DDPMScheduler / DDIMScheduler (diffusers schedulers/scheduling_ddpm.py, scheduling_ddim.py) */
#include "nn/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void sched_config_default(struct sched_config *c)
{
    memset(c, 0, sizeof *c);
    c->num_train_timesteps = 1000;
    c->beta_start = 1e-4;
    c->beta_end = 0.02;
    c->beta_schedule = SCHED_LINEAR;
    c->clip_sample = 1;
    c->clip_sample_range = 1.0f;
    c->variance_type = SCHED_FIXED_SMALL;
    c->timestep_spacing = SCHED_LEADING;
    c->steps_offset = 0;
    c->set_alpha_to_one = -1; /* absent: each class its own default */
}

static int pick(const struct json *j, const char *key, const char *def, const char *const *names,
                int *out, char *msg, size_t msglen)
{
    const char *s;
    if (json_get_string(j, key, def, &s, msg, msglen) == -1)
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    snprintf(msg, msglen, "%s: unsupported value '%.40s'", key, s);
    return -1;
}

int sched_config_parse(struct sched_config *c, const struct json *j, char *msg, size_t msglen)
{
    static const char *betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2", NULL};
    static const char *vars[] = {"fixed_small", "fixed_large", NULL};
    static const char *spacings[] = {"leading", "linspace", "trailing", NULL};
    static const char *pred[] = {"epsilon", NULL};
    const struct json *v;
    const char *cls;
    double d;
    int k, th;

    sched_config_default(c);
    if (j == NULL || j->type != JSON_OBJECT) {
        snprintf(msg, msglen, "scheduler config: want a JSON object");
        return -1;
    }
    if (json_get_string(j, "_class_name", "DDPMScheduler", &cls, msg, msglen) == -1)
        return -1;
    if (strcmp(cls, "DDPMScheduler") != 0 && strcmp(cls, "DDIMScheduler") != 0) {
        snprintf(msg, msglen, "_class_name: unsupported scheduler '%.40s'", cls);
        return -1;
    }
    if (json_get_number(j, "num_train_timesteps", 1000, &d, msg, msglen) == -1)
        return -1;
    if (d != floor(d) || d < 1 || d > 100000) {
        snprintf(msg, msglen, "num_train_timesteps: want an integer in 1..100000");
        return -1;
    }
    c->num_train_timesteps = (int)d;
    if (json_get_number(j, "beta_start", 1e-4, &c->beta_start, msg, msglen) == -1 ||
        json_get_number(j, "beta_end", 0.02, &c->beta_end, msg, msglen) == -1)
        return -1;
    if (!(c->beta_start >= 0 && c->beta_start < 1 && c->beta_end >= 0 && c->beta_end < 1)) {
        snprintf(msg, msglen, "beta_start/beta_end: want values in [0, 1)");
        return -1;
    }
    if (pick(j, "beta_schedule", "linear", betas, &k, msg, msglen) == -1)
        return -1;
    c->beta_schedule = (enum sched_beta)k;
    v = json_get(j, "trained_betas");
    if (v && v->type != JSON_NULL) {
        snprintf(msg, msglen, "trained_betas: unsupported (want null)");
        return -1;
    }
    if (json_get_bool(j, "clip_sample", 1, &c->clip_sample, msg, msglen) == -1 ||
        json_get_number(j, "clip_sample_range", 1.0, &d, msg, msglen) == -1)
        return -1;
    c->clip_sample_range = (float)d;
    if (pick(j, "variance_type", "fixed_small", vars, &k, msg, msglen) == -1)
        return -1;
    c->variance_type = (enum sched_variance)k;
    if (pick(j, "timestep_spacing", "leading", spacings, &k, msg, msglen) == -1)
        return -1;
    c->timestep_spacing = (enum sched_spacing)k;
    if (pick(j, "prediction_type", "epsilon", pred, &k, msg, msglen) == -1)
        return -1;
    if (json_get_bool(j, "thresholding", 0, &th, msg, msglen) == -1)
        return -1;
    if (th) {
        snprintf(msg, msglen, "thresholding: unsupported (want false)");
        return -1;
    }
    if (json_get_number(j, "steps_offset", 0, &d, msg, msglen) == -1)
        return -1;
    if (d != floor(d) || d < 0 || d >= c->num_train_timesteps) {
        snprintf(msg, msglen, "steps_offset: want an integer in 0..%d", c->num_train_timesteps - 1);
        return -1;
    }
    c->steps_offset = (int)d;
    if (json_get_bool(j, "set_alpha_to_one", -1, &c->set_alpha_to_one, msg, msglen) == -1)
        return -1;
    return 0;
}

int sched_config_load(struct sched_config *c, const char *path, char *msg, size_t msglen)
{
    struct json *j = json_load(path, msg, msglen);
    int rc;
    if (j == NULL)
        return -1;
    rc = sched_config_parse(c, j, msg, msglen);
    json_free(j);
    return rc;
}

int sched_config_save(const struct sched_config *c, const char *path, char *msg, size_t msglen)
{
    static const char *betas[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
    static const char *vars[] = {"fixed_small", "fixed_large"};
    static const char *spacings[] = {"leading", "linspace", "trailing"};
    struct outfile o;
    if (outfile_open(&o, path, msg, msglen) == -1)
        return -1;
    fprintf(o.f, "{\n  \"_class_name\": \"DDPMScheduler\",\n  \"_diffusers_version\": \"0.21.4\",\n"
                 "  \"beta_end\": %.17g,\n  \"beta_schedule\": \"%s\",\n  \"beta_start\": %.17g,\n"
                 "  \"clip_sample\": %s,\n  \"clip_sample_range\": %.9g,\n"
                 "  \"dynamic_thresholding_ratio\": 0.995,\n  \"num_train_timesteps\": %d,\n"
                 "  \"prediction_type\": \"epsilon\",\n  \"sample_max_value\": 1.0,\n"
                 "  \"steps_offset\": %d,\n  \"thresholding\": false,\n"
                 "  \"timestep_spacing\": \"%s\",\n  \"trained_betas\": null,\n"
                 "  \"variance_type\": \"%s\"\n}\n",
            c->beta_end, betas[c->beta_schedule], c->beta_start, c->clip_sample ? "true" : "false",
            c->clip_sample_range, c->num_train_timesteps, c->steps_offset,
            spacings[c->timestep_spacing], vars[c->variance_type]);
    return outfile_commit(&o, msg, msglen);
}

/* torch.linspace(start, end, n, dtype=float32), scalar form of its CPU kernel (the
   vectorised path may differ by an ulp) */
static void linspace_f32(float *out, double start, double end, int n)
{
    float s = (float)start, e = (float)end, step = n > 1 ? (e - s) / (float)(n - 1) : 0;
    int half = n / 2;
    for (int i = 0; i < n; i++)
        out[i] = i < half ? s + step * (float)i : e - step * (float)(n - i - 1);
}

static double alpha_bar(double t)
{
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

/* np.arange(T, 0, -T/n) rounded half-even, as diffusers "trailing" (may give != n values) */
static int trailing(int *ts, int T, int n)
{
    double step = -(double)T / n, d2 = ((double)T + step) - T;
    int len = (int)ceil((0.0 - T) / step);
    if (len < 1)
        len = 1;
    if (ts)
        for (int i = 0; i < len; i++)
            ts[i] = (int)rint(T + i * d2) - 1;
    return len;
}

int sched_init(struct sched *s, const struct sched_config *c, enum sched_kind kind, int n_steps,
               float eta, char *msg, size_t msglen)
{
    int T = c->num_train_timesteps;
    double acc = 1.0;
    memset(s, 0, sizeof *s);
    if (n_steps < 1 || n_steps > T) {
        snprintf(msg, msglen, "steps: %d out of range 1..%d", n_steps, T);
        return -1;
    }
    s->cfg = *c;
    s->kind = kind;
    s->T = T;
    s->eta = eta;
    s->betas = xmalloc((size_t)T * sizeof(float));
    s->alphas = xmalloc((size_t)T * sizeof(float));
    s->alphas_cumprod = xmalloc((size_t)T * sizeof(float));
    if (c->beta_schedule == SCHED_LINEAR) {
        linspace_f32(s->betas, c->beta_start, c->beta_end, T);
    } else if (c->beta_schedule == SCHED_SCALED_LINEAR) {
        linspace_f32(s->betas, sqrt(c->beta_start), sqrt(c->beta_end), T);
        for (int i = 0; i < T; i++)
            s->betas[i] = s->betas[i] * s->betas[i];
    } else {
        for (int i = 0; i < T; i++) {
            double b = 1 - alpha_bar((i + 1) / (double)T) / alpha_bar(i / (double)T);
            s->betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
    }
    for (int i = 0; i < T; i++) {
        s->alphas[i] = 1.0f - s->betas[i];
        acc *= s->alphas[i]; /* torch's CPU cumprod accumulates in double */
        s->alphas_cumprod[i] = (float)acc;
    }
    s->final_alpha_cumprod = c->set_alpha_to_one != 0 ? 1.0f : s->alphas_cumprod[0];

    s->n_req = n_steps;
    s->n_steps = c->timestep_spacing == SCHED_TRAILING ? trailing(NULL, T, n_steps) : n_steps;
    s->timesteps = xmalloc((size_t)s->n_steps * sizeof(int));
    if (c->timestep_spacing == SCHED_LEADING) {
        int r = T / n_steps;
        for (int i = 0; i < n_steps; i++)
            s->timesteps[i] = (n_steps - 1 - i) * r + c->steps_offset;
    } else if (c->timestep_spacing == SCHED_LINSPACE) {
        double step = n_steps > 1 ? (double)(T - 1) / (n_steps - 1) : 0;
        for (int i = 0; i < n_steps; i++) {
            int k = n_steps - 1 - i;
            s->timesteps[i] = k == n_steps - 1 && n_steps > 1 ? T - 1 : (int)rint(k * step);
        }
    } else {
        trailing(s->timesteps, T, n_steps);
    }
    for (int i = 0; i < s->n_steps; i++)
        if (s->timesteps[i] < 0 || s->timesteps[i] >= T) {
            snprintf(msg, msglen, "timestep %d out of range (steps_offset too large?)",
                     s->timesteps[i]);
            sched_free(s);
            return -1;
        }
    return 0;
}

void sched_free(struct sched *s)
{
    free(s->betas);
    free(s->alphas);
    free(s->alphas_cumprod);
    free(s->timesteps);
    memset(s, 0, sizeof *s);
}

int sched_step_needs_noise(const struct sched *s, int i)
{
    if (s->kind == SCHED_DDPM)
        return s->timesteps[i] > 0;
    return s->eta > 0;
}

static float clampf(float x, float r)
{
    return x < -r ? -r : x > r ? r : x;
}

static void ddpm_step(const struct sched *s, int i, float *x, const float *eps,
                      const float *noise, size_t n)
{
    int t = s->timesteps[i], tp = i + 1 < s->n_steps ? s->timesteps[i + 1] : -1;
    float ab = s->alphas_cumprod[t], abp = tp >= 0 ? s->alphas_cumprod[tp] : 1.0f;
    float bt = 1.0f - ab, btp = 1.0f - abp;
    float cur_a = ab / abp, cur_b = 1.0f - cur_a;
    float sb = sqrtf(bt), sa = sqrtf(ab);
    float c0 = sqrtf(abp) * cur_b / bt, cx = sqrtf(cur_a) * btp / bt;
    float var, sd = 0;
    int clip = s->cfg.clip_sample;
    float r = s->cfg.clip_sample_range;
    if (t > 0) {
        var = btp / bt * cur_b;
        if (var < 1e-20f)
            var = 1e-20f;
        if (s->cfg.variance_type == SCHED_FIXED_LARGE)
            var = cur_b;
        sd = sqrtf(var);
    }
#pragma omp parallel for if (n > 65536)
    for (size_t k = 0; k < n; k++) {
        float x0 = (x[k] - sb * eps[k]) / sa;
        if (clip)
            x0 = clampf(x0, r);
        float y = c0 * x0 + cx * x[k];
        if (t > 0)
            y = y + sd * noise[k];
        x[k] = y;
    }
}

static void ddim_step(const struct sched *s, int i, float *x, const float *eps,
                      const float *noise, size_t n)
{
    int t = s->timesteps[i], tp = t - s->T / s->n_req;
    float ab = s->alphas_cumprod[t], abp = tp >= 0 ? s->alphas_cumprod[tp] : s->final_alpha_cumprod;
    float bt = 1.0f - ab, btp = 1.0f - abp;
    float var = btp / bt * (1.0f - ab / abp);
    float sd = s->eta * sqrtf(var);
    float sb = sqrtf(bt), sa = sqrtf(ab), sap = sqrtf(abp);
    float cdir = sqrtf(1.0f - abp - sd * sd);
    int clip = s->cfg.clip_sample, noisy = s->eta > 0, reeps = s->use_clipped_eps;
    float r = s->cfg.clip_sample_range;
#pragma omp parallel for if (n > 65536)
    for (size_t k = 0; k < n; k++) {
        float x0 = (x[k] - sb * eps[k]) / sa, e = eps[k];
        if (clip)
            x0 = clampf(x0, r);
        /* diffusers: pred_epsilon = (sample - alpha_prod_t ** 0.5 * pred_original_sample)
           / beta_prod_t ** 0.5. Without it a clipped x0 and the unclipped noise disagree, and
           an under-trained model's clipped pixels come out as speckle (issue 20). */
        if (reeps)
            e = (x[k] - sa * x0) / sb;
        float y = sap * x0 + cdir * e;
        if (noisy)
            y = y + sd * noise[k];
        x[k] = y;
    }
}

void sched_step(const struct sched *s, int i, float *x, const float *eps, const float *noise,
                size_t n)
{
    if (s->kind == SCHED_DDPM)
        ddpm_step(s, i, x, eps, noise, n);
    else
        ddim_step(s, i, x, eps, noise, n);
}

void sched_add_noise(const struct sched *s, float *out, const float *x0, const float *noise,
                     int t, size_t n)
{
    float a = sqrtf(s->alphas_cumprod[t]), b = sqrtf(1.0f - s->alphas_cumprod[t]);
    for (size_t k = 0; k < n; k++)
        out[k] = a * x0[k] + b * noise[k];
}
