/* unet_backward against PyTorch (tests/fixtures/gen_unet_grad.py): every parameter gradient
   of the epsilon-MSE loss for two small configs, slices and norms for the full
   google/ddpm-cifar10-32 shape, and central differences on the tiny config. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "io/npy.h"
#include "util/rng.h"
#include "nn/sched.h"
#include "test.h"
#include "models/unet.h"
#include "models/ddpm_train.h"
#include "models/unet_grad.h"
#include "util/util.h"

#define FIX "tests/fixtures/unet_grad/"

static int load(const char *path, const char *member, struct npy *t)
{
    char msg[160];
    if (npy_load(path, member, t, msg, sizeof msg) == -1) {
        CHECK(0, "load %s:%s: %s", path, member, msg);
        return -1;
    }
    return 0;
}

static void default_sched(struct sched *s)
{
    struct sched_config c;
    char msg[128];
    sched_config_default(&c);
    if (sched_init(s, &c, SCHED_DDPM, c.num_train_timesteps, 0, msg, sizeof msg) == -1)
        CHECK(0, "sched_init: %s", msg);
}

/* worst |got - want| / (atol + rtol |want|) over a tensor, atol relative to its max; the key
   bias gradients are zero in exact arithmetic (softmax ignores a shift), hence the floor */
static double excess(const float *got, const float *want, size_t n, double rel, size_t *at)
{
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > mx)
            mx = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (rel * mx + 1e-3 * fabs(want[i]) + 1e-8);
        if (!(e <= worst)) {
            worst = e;
            *at = i;
        }
    }
    return worst;
}

/* At batch 16 the forward keeps each 3x3 conv's input tiles for the weight gradient; the
   gradients must equal those with the tiles transformed again in the backward (the path the
   PyTorch goldens above check at batches 2 and 3, where the tiles are padded and not kept). */
static void test_kept_tiles(const char *name)
{
    enum { B = 16 };
    char path[256], msg[160];
    struct unet u;
    struct sched s;
    struct ddpm_train tr;
    struct rng r;
    int t[B];
    double worst = 0;

    snprintf(path, sizeof path, FIX "%s", name);
    if (unet_load_dir(&u, path, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", path, msg);
        return;
    }
    size_t n = (size_t)B * u.cfg.in_channels * u.cfg.sample_size * u.cfg.sample_size;
    float *x0 = xmalloc(n * sizeof(float)), *noise = xmalloc(n * sizeof(float));
    float *kept = xmalloc(u.n_params * sizeof(float));
    rng_seed(&r, 7);
    rng_normal_fill(&r, x0, n);
    rng_normal_fill(&r, noise, n);
    for (int b = 0; b < B; b++)
        t[b] = (int)rng_below(&r, 1000);
    default_sched(&s);
    ddpm_train_init(&tr, &u, B, 0);
    float l1 = ddpm_train_loss_grad(&tr, &s, x0, noise, t, B);
    int used = unet_kept_tiles(&u, u.conv_in_w, B) != NULL;
    memcpy(kept, tr.grads, u.n_params * sizeof(float));
    struct unet_tiles kt = u.tiles; /* a forward without kept tiles: the backward recomputes */
    memset(&u.tiles, 0, sizeof u.tiles);
    float l2 = ddpm_train_loss_grad(&tr, &s, x0, noise, t, B);
    for (int i = 0; i < u.pt.n; i++) {
        size_t k = (size_t)(u.pt.e[i].ptr - u.params), m = 1, at = 0;
        for (int d = 0; d < u.pt.e[i].ndim; d++)
            m *= (size_t)u.pt.e[i].shape[d];
        double x = excess(kept + k, tr.grads + k, m, 1e-5, &at);
        if (x > worst)
            worst = x;
    }
    CHECK(used && l1 == l2 && worst <= 1, "%s: batch %d, gradients with the forward's kept "
          "Winograd tiles equal the recomputed ones within 1e-5 (worst %.3g of the tolerance)",
          name, B, worst);
    u.tiles = kt;
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    free(x0), free(noise), free(kept);
}

/* every gradient of a model folder's config vs the npz */
static void test_config(const char *name)
{
    char path[256], npz[256], msg[160];
    struct unet u;
    struct sched s;
    struct ddpm_train tr;
    struct npy x0, noise, tt, loss;
    double worst = 0;
    const char *wname = "";
    int ok = 1;

    snprintf(path, sizeof path, FIX "%s", name);
    snprintf(npz, sizeof npz, FIX "%s_grads.npz", name);
    if (unet_load_dir(&u, path, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", path, msg);
        return;
    }
    if (load(npz, "x0", &x0) || load(npz, "noise", &noise) || load(npz, "t", &tt) ||
        load(npz, "loss", &loss))
        return;
    default_sched(&s);
    ddpm_train_init(&tr, &u, (int)x0.shape[0], 0);
    float l = ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, (int)x0.shape[0]);
    test_close("loss", &l, loss.data, 1, 0, 1e-5);
    for (int i = 0; i < u.pt.n; i++) {
        const struct st_entry *e = &u.pt.e[i];
        char member[200];
        struct npy want;
        size_t n = 1, at = 0;
        snprintf(member, sizeof member, "grad.%s", e->name);
        if (load(npz, member, &want)) {
            ok = 0;
            continue;
        }
        for (int d = 0; d < e->ndim; d++)
            n *= (size_t)e->shape[d];
        if ((size_t)npy_count(&want) != n) {
            CHECK(0, "%s: %s: size", name, e->name);
            ok = 0;
        } else {
            const float *g = tr.grads + (e->ptr - u.params);
            double x = excess(g, want.data, n, 1e-4, &at);
            if (x > worst) {
                worst = x;
                wname = e->name;
                if (x > 1)
                    printf("# %s %s[%zu]: got %.8g want %.8g\n", name, e->name, at, g[at],
                           ((float *)want.data)[at]);
            }
        }
        npy_free(&want);
    }
    CHECK(ok && worst <= 1, "%s: %d parameter gradients within 1e-4 of each tensor's max "
          "(worst %.3g of the tolerance, %s)", name, u.pt.n, worst, wname);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    npy_free(&x0), npy_free(&noise), npy_free(&tt), npy_free(&loss);
}

static void test_full(void)
{
    const char *npz = FIX "full_grads.npz";
    struct unet_config c;
    struct unet u;
    struct sched s;
    struct ddpm_train tr;
    struct npy x0, noise, tt, loss, names, heads, norms;
    char msg[160], *p;
    int k = 0, bad_head = 0, bad_norm = 0, missing = 0;
    double worst_h = 0, worst_n = 0, max_n = 0;

    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        CHECK(0, "unet_init: %s", msg);
        return;
    }
    unet_init_closed_form(&u);
    if (load(npz, "x0", &x0) || load(npz, "noise", &noise) || load(npz, "t", &tt) ||
        load(npz, "loss", &loss) || load(npz, "names", &names) || load(npz, "heads", &heads) ||
        load(npz, "norms", &norms))
        return;
    default_sched(&s);
    ddpm_train_init(&tr, &u, 2, 0);
    float l = ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, 2);
    test_close("full shape: loss", &l, loss.data, 1, 0, 1e-5);
    for (int64_t i = 0; i < norms.shape[0]; i++)
        if (((float *)norms.data)[i] > max_n)
            max_n = ((float *)norms.data)[i];
    /* names: '\n'-separated, rows of heads/norms in that order */
    p = names.data;
    for (int64_t off = 0; off < names.shape[0]; k++) {
        char *nl = memchr(p + off, '\n', (size_t)(names.shape[0] - off));
        const struct st_entry *e = NULL;
        if (nl == NULL)
            break;
        *nl = '\0';
        for (int i = 0; i < u.pt.n; i++)
            if (strcmp(u.pt.e[i].name, p + off) == 0)
                e = &u.pt.e[i];
        if (e == NULL) {
            printf("# full: no tensor %s\n", p + off);
            missing++;
        } else {
            size_t n = 1, at = 0;
            double nrm = 0, want_n = ((float *)norms.data)[k], x;
            const float *g = tr.grads + (e->ptr - u.params);
            for (int d = 0; d < e->ndim; d++)
                n *= (size_t)e->shape[d];
            for (size_t i = 0; i < n; i++)
                nrm += (double)g[i] * g[i];
            nrm = sqrt(nrm);
            /* q/k gradients of the nearly uniform closed-form attention are ~1e-9 of the
               largest: float noise, hence the floor */
            x = fabs(nrm - want_n) / (1e-4 * want_n + 1e-6 * max_n);
            if (x > worst_n)
                worst_n = x;
            if (x > 1) {
                bad_norm++;
                printf("# full %s: norm %.8g want %.8g\n", e->name, nrm, want_n);
            }
            /* first 64 values: absolute tolerance from the gradient's rms */
            {
                const float *w = (const float *)heads.data + (size_t)k * 64;
                double rms = want_n / sqrt((double)n), wx = 0;
                for (size_t i = 0; i < (n < 64 ? n : 64); i++) {
                    double d = fabs((double)g[i] - w[i]) / (1e-3 * rms + 1e-3 * fabs(w[i]) + 1e-12);
                    if (d > wx)
                        wx = d, at = i;
                }
                if (wx > worst_h)
                    worst_h = wx;
                if (wx > 1) {
                    bad_head++;
                    printf("# full %s[%zu]: got %.8g want %.8g\n", e->name, at, g[at], w[at]);
                }
            }
        }
        off = nl + 1 - p;
    }
    CHECK(k == u.pt.n && missing == 0, "full shape: %d gradient tensors named (want %d)", k,
          u.pt.n);
    CHECK(bad_norm == 0, "full shape: gradient L2 norms within 1e-4 relative (worst %.3g of "
          "the tolerance)", worst_n);
    CHECK(bad_head == 0, "full shape: first 64 gradient values within 1e-3 of the rms "
          "(worst %.3g of the tolerance)", worst_h);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    npy_free(&x0), npy_free(&noise), npy_free(&tt), npy_free(&loss);
    npy_free(&names), npy_free(&heads), npy_free(&norms);
}

/* central differences of the loss at the largest-gradient element of a few tensors */
static void test_fd(void)
{
    static const char *names[] = {
        "conv_in.weight", "time_embedding.linear_1.weight", "time_embedding.linear_2.bias",
        "down_blocks.0.resnets.0.norm1.weight", "down_blocks.1.attentions.0.to_q.weight",
        "down_blocks.1.attentions.0.to_k.weight", "down_blocks.1.attentions.0.group_norm.bias",
        "down_blocks.0.downsamplers.0.conv.weight", "mid_block.attentions.0.to_v.weight",
        "up_blocks.0.resnets.1.conv_shortcut.weight", "up_blocks.0.upsamplers.0.conv.bias",
        "up_blocks.1.resnets.0.time_emb_proj.weight", "conv_norm_out.weight", "conv_out.bias"};
    const int nn = (int)(sizeof names / sizeof names[0]);
    struct unet u;
    struct sched s;
    struct ddpm_train tr;
    struct npy x0, noise, tt;
    char msg[160];
    const char *npz = FIX "tiny_grads.npz";
    int found = 0, bad = 0;
    double worst = 0;

    if (unet_load_dir(&u, FIX "tiny", msg, sizeof msg) == -1) {
        CHECK(0, "tiny: %s", msg);
        return;
    }
    if (load(npz, "x0", &x0) || load(npz, "noise", &noise) || load(npz, "t", &tt))
        return;
    default_sched(&s);
    ddpm_train_init(&tr, &u, 2, 0);
    ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, 2);
    for (int q = 0; q < nn; q++) {
        const struct st_entry *e = NULL;
        size_t n = 1, best = 0;
        for (int i = 0; i < u.pt.n; i++)
            if (strcmp(u.pt.e[i].name, names[q]) == 0)
                e = &u.pt.e[i];
        if (e == NULL) {
            printf("# fd: no tensor %s\n", names[q]);
            continue;
        }
        found++;
        for (int d = 0; d < e->ndim; d++)
            n *= (size_t)e->shape[d];
        const float *g = tr.grads + (e->ptr - u.params);
        for (size_t i = 0; i < n; i++)
            if (fabsf(g[i]) > fabsf(g[best]))
                best = i;
        float an = g[best], h = 1e-2f, p0 = e->ptr[best], lp, lm;
        e->ptr[best] = p0 + h;
        unet_weights_changed(&u);
        lp = ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, 2);
        e->ptr[best] = p0 - h;
        unet_weights_changed(&u);
        lm = ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, 2);
        e->ptr[best] = p0;
        unet_weights_changed(&u);
        double fd = ((double)lp - lm) / (2.0 * h), rel = fabs(fd - an) / (fabs(an) + 1e-6);
        if (rel > worst)
            worst = rel;
        if (rel > 1e-2) {
            bad++;
            printf("# fd %s[%zu]: analytic %.6g numeric %.6g\n", names[q], best, an, fd);
        }
        /* the gradient buffer was overwritten by the loss calls: recompute */
        ddpm_train_loss_grad(&tr, &s, x0.data, noise.data, tt.data, 2);
    }
    CHECK(found == nn && bad == 0, "tiny: central differences of %d parameters within 1e-2 "
          "(worst %.3g)", found, worst);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    npy_free(&x0), npy_free(&noise), npy_free(&tt);
}

int main(void)
{
    nn_set_threads(2);
    test_config("tiny");
    test_config("small");
    test_fd();
    test_kept_tiles("tiny");
    test_kept_tiles("small");
    test_full();
    return test_done();
}
