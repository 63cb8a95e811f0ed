/* ddpm_train_step against train_unconditional.py in PyTorch (gen_unet_grad.py): three steps of
   clip_grad_norm_(1) + AdamW(1e-3, 0.95, 0.999, wd 1e-6) + cosine warmup (1 of 4 steps) +
   EMAModel on the small config; the learning-rate schedules; the inputs of a step drawn per
   sample (the same whatever the split over processes and micro-batches); a step gathered
   from weighted parts equal to the step on the whole batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "io/npy.h"
#include "nn/optim.h"
#include "nn/sched.h"
#include "test.h"
#include "models/trainer.h"
#include "models/unet.h"
#include "models/ddpm_train.h"
#include "util/shard.h"
#include "util/util.h"

#define FIX "tests/fixtures/unet_grad/"

static int load(const char *member, struct npy *t)
{
    char msg[160];
    if (npy_load(FIX "small_steps.npz", member, t, msg, sizeof msg) == -1) {
        CHECK(0, "load %s: %s", member, msg);
        return -1;
    }
    return 0;
}

/* every tensor of u (at base) against the npz's prefix.NAME */
static void compare(const struct unet *u, const float *base, const char *prefix, double atol)
{
    double worst = 0;
    const char *wname = "";
    int bad = 0;
    for (int i = 0; i < u->pt.n; i++) {
        const struct st_entry *e = &u->pt.e[i];
        char member[200];
        struct npy want;
        size_t n, k;
        /* softmax ignores a shift of the keys: the key bias gradient is float noise (~1e-10)
           that Adam normalises into lr-sized steps of either sign in both implementations */
        if (strstr(e->name, ".to_k.bias") != NULL)
            continue;
        snprintf(member, sizeof member, "%s.%s", prefix, e->name);
        if (load(member, &want)) {
            bad++;
            continue;
        }
        n = 1;
        for (int d = 0; d < e->ndim; d++)
            n *= (size_t)e->shape[d];
        if ((size_t)npy_count(&want) != n) {
            bad++;
        } else {
            const float *g = base + (e->ptr - u->params), *w = want.data;
            for (k = 0; k < n; k++) {
                double x = fabs((double)g[k] - w[k]) / (atol + 1e-5 * fabs(w[k]));
                if (!(x <= worst)) {
                    worst = x;
                    wname = e->name;
                }
                if (!(x <= 1) && bad++ < 5)
                    printf("# %s %s[%zu]: got %.9g want %.9g\n", prefix, e->name, k, g[k], w[k]);
            }
        }
        npy_free(&want);
    }
    CHECK(bad == 0, "small: %s after 3 steps within %g (worst %.3g of the tolerance, %s)", prefix,
          atol, worst, wname);
}

static void test_steps(void)
{
    struct unet u;
    struct sched s;
    struct sched_config sc;
    struct ddpm_train tr;
    struct ddpm_hparams h;
    struct npy losses, norms;
    float got_l[3], got_n[3];
    char msg[160];

    if (unet_load_dir(&u, FIX "small", msg, sizeof msg) == -1) {
        CHECK(0, "small: %s", msg);
        return;
    }
    sched_config_default(&sc);
    if (sched_init(&s, &sc, SCHED_DDPM, sc.num_train_timesteps, 0, msg, sizeof msg) == -1) {
        CHECK(0, "sched: %s", msg);
        return;
    }
    ddpm_hparams_default(&h);
    h.lr = 1e-3;
    h.warmup = 1;
    h.total = 4;
    h.use_ema = 1;
    ddpm_train_init(&tr, &u, 3, 1);
    for (int k = 1; k <= 3; k++) {
        struct npy x0, noise, t;
        char a[32], b[32], c[32];
        snprintf(a, sizeof a, "x0_%d", k);
        snprintf(b, sizeof b, "noise_%d", k);
        snprintf(c, sizeof c, "t_%d", k);
        if (load(a, &x0) || load(b, &noise) || load(c, &t))
            return;
        got_l[k - 1] = ddpm_train_step(&tr, &h, &s, x0.data, noise.data, t.data, 3,
                                       &got_n[k - 1], NULL);
        npy_free(&x0), npy_free(&noise), npy_free(&t);
    }
    if (load("losses", &losses) || load("norms", &norms))
        return;
    test_close("small: losses of 3 steps", got_l, losses.data, 3, 0, 1e-5);
    test_close("small: gradient norms before clipping", got_n, norms.data, 3, 0, 1e-4);
    CHECK(tr.step == 3, "step count");
    compare(&u, u.params, "param", 2e-6);
    compare(&u, tr.ema, "ema", 2e-6);
    npy_free(&losses), npy_free(&norms);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
}

static void test_lr(void)
{
    struct ddpm_hparams h;
    double pi = acos(-1.0);
    ddpm_hparams_default(&h);
    h.warmup = 10;
    h.total = 110;
    CHECK(ddpm_lr_at(&h, 0) == 0, "cosine: lr 0 at step 0 of the warmup");
    CHECK(fabs(ddpm_lr_at(&h, 5) - 0.5e-4) < 1e-12, "cosine: half way through the warmup");
    CHECK(fabs(ddpm_lr_at(&h, 60) - 1e-4 * 0.5 * (1 + cos(pi * 0.5))) < 1e-11,
          "cosine: middle of the decay");
    CHECK(ddpm_lr_at(&h, 110) < 1e-12, "cosine: 0 at the end");
    h.lr_sched = DDPM_LR_LINEAR;
    CHECK(fabs(ddpm_lr_at(&h, 60) - 0.5e-4) < 1e-11, "linear: half way");
    h.lr_sched = DDPM_LR_CONSTANT;
    CHECK(fabs(ddpm_lr_at(&h, 100) - 1e-4) < 1e-12 && ddpm_lr_at(&h, 2) < 0.3e-4,
          "constant with warmup");
}

/* ddpm_train_draw of a step's G samples at once, and as K processes' shares of micro-batches
   of B: the same bytes (x0, noise, t) for K = 1..4 and B = G, 3, 2; another step or seed
   draws other numbers */
static void test_draw(void)
{
    enum { N = 11, S = 4, C = 3, G = 7, T = 1000 };
    size_t per = (size_t)C * S * S;
    int64_t shape[4] = {N, S, S, C}, perm[N];
    struct npy data;
    float x0[G * C * S * S], noise[G * C * S * S], x1[G * C * S * S], n1[G * C * S * S];
    int t[G], t1[G], same = 1;

    npy_alloc(&data, NPY_U8, 4, shape);
    for (int64_t i = 0; i < npy_count(&data); i++)
        ((uint8_t *)data.data)[i] = (uint8_t)(i * 37 % 251);
    trainer_epoch_perm(perm, N, 3, 0);
    /* step 1 of seed 3, its samples the images perm[2 .. 2 + G) */
    ddpm_train_draw(x0, noise, t, &data, perm, 2, 0, G, 3, 1, 1, T);
    for (int K = 1; K <= 4; K++)
        for (int B = G; B >= 2; B = B == G ? 3 : B - 1) {
            memset(x1, 0, sizeof x1), memset(n1, 0, sizeof n1), memset(t1, 0, sizeof t1);
            for (long m0 = 0; m0 < G; m0 += B) {
                long nm = G - m0 < B ? G - m0 : B;
                for (int r = 0; r < K; r++) {
                    long lo, hi;
                    shard_range(nm, r, K, &lo, &hi);
                    if (hi > lo)
                        ddpm_train_draw(x1 + (m0 + lo) * per, n1 + (m0 + lo) * per,
                                        t1 + m0 + lo, &data, perm, 2, m0 + lo, (int)(hi - lo),
                                        3, 1, 1, T);
                }
            }
            same &= memcmp(x0, x1, sizeof x0) == 0 && memcmp(noise, n1, sizeof noise) == 0 &&
                    memcmp(t, t1, sizeof t) == 0;
        }
    CHECK(same, "draw: a step's inputs are the same split over 1..4 processes and micro-batches");
    ddpm_train_draw(x1, n1, t1, &data, perm, 2, 0, G, 3, 2, 1, T);
    CHECK(memcmp(noise, n1, sizeof noise) != 0 && memcmp(t, t1, sizeof t) != 0,
          "draw: the next step draws other noise and timesteps");
    ddpm_train_draw(x1, n1, t1, &data, perm, 2, 0, G, 4, 1, 1, T);
    CHECK(memcmp(noise, n1, sizeof noise) != 0, "draw: another seed draws other noise");
    {
        int flips = 0, tmin = T, tmax = -1;
        for (int j = 0; j < 64; j++) {
            float x[C * S * S], z[C * S * S];
            int tt;
            int64_t one[1] = {0};
            ddpm_train_draw(x, z, &tt, &data, one, -j, j, 1, 3, 5, 1, T);
            flips += x[0] != ((float)((uint8_t *)data.data)[0] / 255.0f - 0.5f) / 0.5f;
            tmin = tt < tmin ? tt : tmin, tmax = tt > tmax ? tt : tmax;
        }
        CHECK(flips > 16 && flips < 48 && tmin >= 0 && tmax < T && tmax - tmin > 500,
              "draw: flips about half the images, timesteps spread over [0, T) (%d flips, t %d..%d)",
              flips, tmin, tmax);
    }
    npy_free(&data);
}

/* a step's gradient as ddpm_train_accumulate of parts weighted b/G (micro-batches or ranks)
   equals ddpm_train_loss_grad of the whole batch, to float rounding */
static void test_accumulate(void)
{
    struct unet u;
    struct sched s;
    struct sched_config sc;
    struct ddpm_train tr;
    struct npy x0, noise, t;
    char msg[160];
    float *whole, lw, lp = 0;

    if (unet_load_dir(&u, FIX "small", msg, sizeof msg) == -1) {
        CHECK(0, "small: %s", msg);
        return;
    }
    sched_config_default(&sc);
    if (sched_init(&s, &sc, SCHED_DDPM, sc.num_train_timesteps, 0, msg, sizeof msg) == -1 ||
        load("x0_1", &x0) || load("noise_1", &noise) || load("t_1", &t))
        return;
    ddpm_train_init(&tr, &u, 3, 0);
    lw = ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, t.data, 3);
    whole = xmalloc(u.n_params * sizeof(float));
    memcpy(whole, tr.grads, u.n_params * sizeof(float));
    memset(tr.grads, 0, u.n_params * sizeof(float));
    {
        size_t per = (size_t)u.cfg.in_channels * u.cfg.sample_size * u.cfg.sample_size;
        lp += 2.0f / 3 * ddpm_train_accumulate(&tr, &s, x0.data, noise.data, t.data, 2,
                                               2.0f / 3);
        lp += 1.0f / 3 * ddpm_train_accumulate(&tr, &s, (float *)x0.data + 2 * per,
                                               (float *)noise.data + 2 * per,
                                               (int *)t.data + 2, 1, 1.0f / 3);
    }
    test_close("accumulate: parts of 2 and 1 images weighted 2/3, 1/3 = the batch of 3",
               tr.grads, whole, u.n_params, 1e-7, 1e-4);
    CHECK(fabsf(lp - lw) <= 1e-6f * lw, "accumulate: the weighted losses add up (%g, %g)", lp,
          lw);
    free(whole);
    npy_free(&x0), npy_free(&noise), npy_free(&t);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
}

int main(void)
{
    nn_set_threads(2);
    test_lr();
    test_draw();
    test_steps();
    test_accumulate();
    return test_done();
}
