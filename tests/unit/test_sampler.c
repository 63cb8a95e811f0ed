/* The diffusers schedulers of sampler.h: (1) the timestep facts of issue 18 / spec
   samplers.md, hard-coded; (2) timesteps, sigmas and whole trajectories on the tiny UNet
   against the transcription of diffusers 0.26 in tests/fixtures/gen_samplers.py
   (samplers.npz), every step; (3) the closed form: for data x0 ~ N(0, s^2) the exact noise
   prediction is eps(x, t) = sqrt(1 - abar_t) x / (abar_t s^2 + 1 - abar_t), and every
   deterministic sampler's output spread must approach s as the steps grow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "io/npy.h"
#include "util/rng.h"
#include "nn/sampler.h"
#include "models/unet.h"
#include "util/util.h"

#define FIX "tests/fixtures/unet/"
#define NPZ FIX "samplers.npz"

static int mk(struct sampler *s, enum sampler_kind k, int n, int order, int spacing, int prk,
              size_t nmax)
{
    struct sched_config c;
    struct sampler_opts o = {n, 0, order, spacing, prk, 0};
    char msg[256];
    sched_config_default(&c);
    if (sampler_init(s, &c, k, &o, nmax, msg, sizeof msg) == -1) {
        CHECK(0, "%s %d steps: %s", sampler_names[k], n, msg);
        return -1;
    }
    return 0;
}

static int ts_is(const struct sampler *s, const int *want, int n)
{
    if (s->n_calls != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (s->ts[i] != want[i])
            return 0;
    return 1;
}

static void test_facts(void)
{
    struct sampler s;
    struct sched_config c;
    struct sampler_opts o = {1000, 0, 0, -1, 0, 0};
    char msg[256];
    static const int ms10[] = {999, 899, 799, 699, 599, 500, 400, 300, 200, 100};
    static const int ms6[] = {999, 832, 666, 500, 333, 166};
    static const int plms10[] = {900, 800, 800, 700, 600, 500, 400, 300, 200, 100, 0};
    static const int ddim10[] = {900, 800, 700, 600, 500, 400, 300, 200, 100, 0};
    for (int k = SAMPLER_DPM; k <= SAMPLER_UNIPC; k++) {
        if (mk(&s, k, 10, 0, -1, 0, 1) == 0) {
            CHECK(ts_is(&s, ms10, 10) && s.sigmas[10] == 0, "%s: 10 steps 999 899 ... 100, then sigma 0",
                  sampler_names[k]);
            sampler_free(&s);
        }
        if (mk(&s, k, 6, 0, -1, 0, 1) == 0) {
            CHECK(ts_is(&s, ms6, 6), "%s: 6 steps 999 832 666 500 333 166 (half to even)",
                  sampler_names[k]);
            sampler_free(&s);
        }
        sched_config_default(&c);
        CHECK(sampler_init(&s, &c, k, &o, 1, msg, sizeof msg) == -1 && strstr(msg, "500 twice"),
              "%s: 1000 steps refused (timestep 500 repeats)", sampler_names[k]);
    }
    if (mk(&s, SAMPLER_PNDM, 10, 0, -1, 0, 1) == 0) {
        CHECK(ts_is(&s, plms10, 11), "pndm: 900 800 800 700 ... 0, 11 calls");
        CHECK(s.final_alpha_cumprod == s.base.alphas_cumprod[0], "pndm: set_alpha_to_one false");
        sampler_free(&s);
    }
    if (mk(&s, SAMPLER_PNDM, 10, 0, -1, 1, 1) == 0) {
        CHECK(s.n_calls == 19, "pndm --prk: steps + 9 calls");
        sampler_free(&s);
    }
    if (mk(&s, SAMPLER_DDIM, 10, 0, -1, 0, 1) == 0) {
        CHECK(ts_is(&s, ddim10, 10), "ddim: 900 800 ... 0");
        sampler_free(&s);
    }
    for (int k = SAMPLER_EULER; k <= SAMPLER_EULER_A; k++) {
        if (mk(&s, k, 10, 0, -1, 0, 1) == 0) {
            int ok = s.n_calls == 10 && s.sigmas[10] == 0;
            for (int i = 0; i < 10; i++)
                ok = ok && s.t[i] == 999 - 111 * i;
            CHECK(ok, "%s: 10 steps 999 888 ... 111 0", sampler_names[k]);
            CHECK(fabsf(s.init_noise_sigma - 157.40726f) < 2e-4f, "%s: init_noise_sigma %.5f",
                  sampler_names[k], (double)s.init_noise_sigma);
            sampler_free(&s);
        }
        if (mk(&s, k, 20, 0, -1, 0, 1) == 0) {
            CHECK(fabsf(s.t[1] - 946.421f) < 1e-3f && s.t[1] != floorf(s.t[1]),
                  "%s: 20 steps, t[1] = %.4f unrounded", sampler_names[k], (double)s.t[1]);
            sampler_free(&s);
        }
    }
}

struct kase {
    const char *name;
    enum sampler_kind kind;
    int n, order, spacing, prk;
};

static const struct kase kases[] = {
    {"dpm1_10", SAMPLER_DPM, 10, 1, -1, 0}, {"dpm2_10", SAMPLER_DPM, 10, 2, -1, 0},
    {"dpm3_10", SAMPLER_DPM, 10, 3, -1, 0}, {"dpm1_20", SAMPLER_DPM, 20, 1, -1, 0},
    {"dpm2_20", SAMPLER_DPM, 20, 2, -1, 0}, {"dpm3_20", SAMPLER_DPM, 20, 3, -1, 0},
    {"sde1_10", SAMPLER_SDE_DPM, 10, 1, -1, 0}, {"sde2_10", SAMPLER_SDE_DPM, 10, 2, -1, 0},
    {"sde1_20", SAMPLER_SDE_DPM, 20, 1, -1, 0}, {"sde2_20", SAMPLER_SDE_DPM, 20, 2, -1, 0},
    {"unipc1_10", SAMPLER_UNIPC, 10, 1, -1, 0}, {"unipc2_10", SAMPLER_UNIPC, 10, 2, -1, 0},
    {"unipc3_10", SAMPLER_UNIPC, 10, 3, -1, 0}, {"unipc1_20", SAMPLER_UNIPC, 20, 1, -1, 0},
    {"unipc2_20", SAMPLER_UNIPC, 20, 2, -1, 0}, {"unipc3_20", SAMPLER_UNIPC, 20, 3, -1, 0},
    {"plms_10", SAMPLER_PNDM, 10, 0, -1, 0}, {"plms_20", SAMPLER_PNDM, 20, 0, -1, 0},
    {"prk_10", SAMPLER_PNDM, 10, 0, -1, 1}, {"prk_20", SAMPLER_PNDM, 20, 0, -1, 1},
    {"euler_10", SAMPLER_EULER, 10, 0, -1, 0}, {"euler_20", SAMPLER_EULER, 20, 0, -1, 0},
    {"eulera_10", SAMPLER_EULER_A, 10, 0, -1, 0}, {"eulera_20", SAMPLER_EULER_A, 20, 0, -1, 0},
    {"dpm2_leading_10", SAMPLER_DPM, 10, 2, SCHED_LEADING, 0},
    {"dpm2_trailing_10", SAMPLER_DPM, 10, 2, SCHED_TRAILING, 0},
    {"unipc2_leading_10", SAMPLER_UNIPC, 10, 2, SCHED_LEADING, 0},
    {"unipc2_trailing_10", SAMPLER_UNIPC, 10, 2, SCHED_TRAILING, 0},
    {"euler_leading_10", SAMPLER_EULER, 10, 0, SCHED_LEADING, 0},
    {"euler_trailing_10", SAMPLER_EULER, 10, 0, SCHED_TRAILING, 0},
    {"plms_linspace_10", SAMPLER_PNDM, 10, 0, SCHED_LINSPACE, 0},
    {"plms_trailing_10", SAMPLER_PNDM, 10, 0, SCHED_TRAILING, 0},
};

static int get(const char *name, const char *what, struct npy *t)
{
    char key[96], msg[256];
    snprintf(key, sizeof key, "%s_%s", name, what);
    if (npz_read(NPZ, key, t, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", key, msg);
        return -1;
    }
    return 0;
}

/* every state within 1e-4 of its scale (measured: 4e-6 at worst) */
#define TOL 1e-4

/* The worst error of one run over the golden trajectory want (n_calls+1 states of n values),
   relative to each state's own scale (its RMS, at least 1): Euler's x is sigma-sized (157 at
   t = 999), where the UNet's float32 differences from torch (~1e-6) times dt ~ 100 already
   make ~1e-4 absolute. forced: each step starts from the golden state before it (the step's
   own error); else the run goes on from x_T (errors carried along). */
static double run_worst(struct unet *u, struct sampler *s, const float *want, const float *nz,
                        size_t n, int forced, int *worst_i)
{
    float *x = xmalloc(n * sizeof(float)), *xin = xmalloc(n * sizeof(float));
    float *eps = xmalloc(n * sizeof(float));
    double worst = 0;
    memcpy(x, want, n * sizeof(float));
    sampler_reset(s);
    *worst_i = -1;
    for (int i = 0; i < s->n_calls; i++) {
        const float *w = want + (i + 1) * n;
        double rms = 0;
        if (forced)
            memcpy(x, want + i * n, n * sizeof(float));
        sampler_scale_input(s, i, xin, x, n);
        unet_forward(u, eps, xin, &s->t[i], 1);
        sampler_step(s, i, x, eps, nz ? nz + i * n : NULL, n);
        for (size_t j = 0; j < n; j++)
            rms += (double)w[j] * w[j];
        rms = sqrt(rms / n);
        for (size_t j = 0; j < n; j++) {
            double sc = fabs(w[j]) > rms ? fabs(w[j]) : rms;
            double d = fabs(x[j] - w[j]) / (sc > 1 ? sc : 1);
            if (!(d <= worst)) {
                worst = d;
                *worst_i = i;
            }
        }
    }
    free(x);
    free(xin);
    free(eps);
    return worst;
}

static void test_trajectory(struct unet *u, const struct kase *k)
{
    struct sampler s;
    struct npy ts, sig, tr, nz = {0};
    size_t n = 3 * 16 * 16;
    int at;
    double worst;
    if (get(k->name, "ts", &ts) == -1 || get(k->name, "sig", &sig) == -1 ||
        get(k->name, "traj", &tr) == -1)
        return;
    int noisy = k->kind == SAMPLER_SDE_DPM || k->kind == SAMPLER_EULER_A;
    if (noisy && get(k->name, "noise", &nz) == -1)
        return;
    if (mk(&s, k->kind, k->n, k->order, k->spacing, k->prk, n) == -1)
        return;
    int ok = s.n_calls == ts.shape[0] && tr.shape[0] == s.n_calls + 1;
    for (int i = 0; ok && i < s.n_calls; i++)
        ok = s.t[i] == ((float *)ts.data)[i];
    CHECK(ok, "%s: timesteps (%d)", k->name, s.n_calls);
    if (k->kind != SAMPLER_PNDM)
        test_close("sigmas", s.sigmas, sig.data, (size_t)s.n_calls + 1, 0, 1e-6);
    if (ok) {
        worst = run_worst(u, &s, tr.data, nz.data, n, 1, &at);
        CHECK(worst <= TOL, "%s: each step from the golden state within %g (worst %.2g at "
              "step %d)", k->name, TOL, worst, at);
        worst = run_worst(u, &s, tr.data, nz.data, n, 0, &at);
        CHECK(worst <= TOL, "%s: trajectory, every step within %g (worst %.2g at step %d)",
              k->name, TOL, worst, at);
    }
    sampler_free(&s);
    npy_free(&ts);
    npy_free(&sig);
    npy_free(&tr);
    npy_free(&nz);
}

/* The closed-form model: abar from the model's t through the sigma table (linear in sigma
   between integer t, as Euler interpolates); x the scaled input. */
static float closed_spread(const struct sampler *s, float sd, int N)
{
    float *x = xmalloc((size_t)N * sizeof(float)), *xin = xmalloc((size_t)N * sizeof(float));
    float *eps = xmalloc((size_t)N * sizeof(float)), *x0 = xmalloc((size_t)N * sizeof(float));
    struct sampler *m = (struct sampler *)s;
    struct rng r;
    rng_seed(&r, 18);
    rng_normal_fill(&r, x0, (size_t)N);
    for (int k = 0; k < N; k++)
        x[k] = x0[k] * s->init_noise_sigma;
    sampler_reset(m);
    for (int i = 0; i < s->n_calls; i++) {
        float t = s->t[i];
        int j = (int)floorf(t);
        const float *ac = s->base.alphas_cumprod;
        double sg0 = sqrt((1 - ac[j]) / ac[j]), sg = sg0;
        if (t > j && j + 1 < s->base.T)
            sg = sg0 + (t - j) * (sqrt((1 - ac[j + 1]) / ac[j + 1]) - sg0);
        double ab = 1 / (1 + sg * sg);
        sampler_scale_input(s, i, xin, x, (size_t)N);
        for (int k = 0; k < N; k++)
            eps[k] = (float)(sqrt(1 - ab) * xin[k] / (ab * sd * sd + 1 - ab));
        sampler_step(m, i, x, eps, NULL, (size_t)N);
    }
    double a = 0, b = 0;
    for (int k = 0; k < N; k++) {
        a += (double)x[k] * x[k];
        b += (double)x0[k] * x0[k];
    }
    free(x);
    free(xin);
    free(eps);
    free(x0);
    return (float)sqrt(a / b); /* the sampler is linear in x_T: spread per unit of x_T */
}

static void test_closed_form(void)
{
    static const struct {
        enum sampler_kind k;
        int order, prk;
    } ks[] = {{SAMPLER_DPM, 1, 0}, {SAMPLER_DPM, 2, 0}, {SAMPLER_DPM, 3, 0}, {SAMPLER_UNIPC, 2, 0},
              {SAMPLER_UNIPC, 3, 0}, {SAMPLER_PNDM, 0, 0}, {SAMPLER_PNDM, 0, 1},
              {SAMPLER_EULER, 0, 0}, {SAMPLER_DDIM, 0, 0}};
    static const int steps[] = {10, 20, 50, 200};
    const float sd = 0.5f;
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
        float err[4];
        char desc[160];
        int len = 0;
        for (int j = 0; j < 4; j++) {
            struct sampler s;
            if (mk(&s, ks[q].k, steps[j], ks[q].order, -1, ks[q].prk, 256) == -1)
                return;
            err[j] = fabsf(closed_spread(&s, sd, 256) - sd);
            len += snprintf(desc + len, sizeof desc - len, " %d:%.2g", steps[j], (double)err[j]);
            sampler_free(&s);
        }
        CHECK(err[1] < err[0] && err[2] < err[1] && err[3] < err[2] && err[3] < err[0] / 10,
              "closed form s=0.5: %s order %d%s spread error falls with steps (%s)",
              sampler_names[ks[q].k], ks[q].order, ks[q].prk ? " prk" : "", desc);
    }
}

int main(void)
{
    struct unet u;
    char msg[256];
    test_facts();
    if (unet_load_dir(&u, FIX "tiny_st_legacy", msg, sizeof msg) == -1) {
        CHECK(0, "tiny model: %s", msg);
        return test_done();
    }
    unet_alloc_acts(&u, 1);
    for (size_t i = 0; i < sizeof kases / sizeof kases[0]; i++)
        test_trajectory(&u, &kases[i]);
    unet_free(&u);
    test_closed_form();
    return test_done();
}
