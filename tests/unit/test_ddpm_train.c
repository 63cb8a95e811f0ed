/* ddpm_train_step against train_unconditional.py in PyTorch (gen_unet_grad.py): three steps of
   clip_grad_norm_(1) + AdamW(1e-3, 0.95, 0.999, wd 1e-6) + cosine warmup (1 of 4 steps) +
   EMAModel on the small config; and the learning-rate schedules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "io/npy.h"
#include "nn/optim.h"
#include "nn/sched.h"
#include "test.h"
#include "models/unet.h"
#include "models/unet_train.h"

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
    for (int i = 0; i < u->n_entries; i++) {
        const struct st_entry *e = &u->entries[i];
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

int main(void)
{
    nn_set_threads(2);
    test_lr();
    test_steps();
    return test_done();
}
