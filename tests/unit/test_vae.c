/* The VAE against PyTorch (tests/fixtures/gen_vae.py: same initial weights, batch and eps):
   forward, loss, the gradient of every parameter, three Adam steps; finite differences of the
   whole model; PyTorch's initialisation bounds; checkpoint round trip; image conversion. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "nn/nn_image.h"
#include "io/npy.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "io/st.h"
#include "test.h"
#include "test_kernels.h"
#include "util/util.h"
#include "models/vae.h"

#define FIX "tests/fixtures/vae/"

static struct npy load(const char *name)
{
    struct npy t;
    char msg[128], path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s\n", path, msg);
        exit(1);
    }
    return t;
}

/* compares every tensor of m's layout in buf against the file's tensors */
static void check_tensors(const char *what, const struct vae *m, const float *buf,
                          const char *file, double atol_frac, double rtol)
{
    struct st_file f;
    char msg[128];
    if (st_open(&f, file, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s\n", file, msg);
        exit(1);
    }
    for (int i = 0; i < VAE_NT; i++) {
        const struct st_tensor *t = st_find(&f, m->pt.e[i].name);
        size_t n = (size_t)(m->g[i + 1 < VAE_NT ? i + 1 : i] - m->g[i]);
        char name[96];
        if (i + 1 == VAE_NT)
            n = m->n_params - (size_t)(m->g[i] - m->grads);
        CHECK(t != NULL, "%s: %s present", what, m->pt.e[i].name);
        if (t == NULL)
            continue;
        float *want = xmalloc(n * sizeof(float)), mx = 0;
        st_to_f32(t, want);
        for (size_t j = 0; j < n; j++)
            mx = fabsf(want[j]) > mx ? fabsf(want[j]) : mx;
        snprintf(name, sizeof name, "%s %s", what, m->pt.e[i].name);
        test_close(name, buf + (m->g[i] - m->grads), want, n, atol_frac * mx + 1e-7, rtol);
        free(want);
    }
    st_close(&f);
}

static void test_training(int threads)
{
    struct vae m;
    char msg[128];
    struct npy x8 = load("x.npy"), eps = load("eps.npy"), losses = load("losses.npy");
    struct npy xh = load("fwd_xhat.npy"), mu = load("fwd_mu.npy"), lv = load("fwd_logvar.npy");
    int N = (int)x8.shape[0], L;
    float *x, *am, *av, recon, kl, loss;
    const float *want = losses.data;
    struct adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};

    nn_set_threads(threads);
    printf("# %d thread(s)\n", threads);
    if (vae_load(&m, FIX "init.safetensors", msg, sizeof msg) == -1) {
        printf("Bail out! init.safetensors: %s\n", msg);
        exit(1);
    }
    L = m.latent;
    CHECK(L == 16 && m.beta == 0.7f, "metadata: latent %d beta %g", L, m.beta);
    vae_batch_alloc(&m, N);
    x = xmalloc((size_t)N * VAE_D * sizeof(float));
    nn_image_to_nchw(x, x8.data, N, 3, 32, 32);
    am = xcalloc(m.n_params, sizeof(float));
    av = xcalloc(m.n_params, sizeof(float));
    for (int s = 0; s < 3; s++) {
        vae_zero_grad(&m);
        loss = vae_forward(&m, x, (float *)eps.data + (size_t)s * N * L, N, 0, &recon, &kl);
        float got[3] = {loss, recon, kl};
        char name[64];
        snprintf(name, sizeof name, "step %d loss, recon, kl", s + 1);
        test_close(name, got, want + 3 * s, 3, 1e-6, 1e-5);
        if (s == 0) {
            test_close("step 1 mu", m.act.mu, mu.data, (size_t)N * L, 1e-5, 1e-4);
            test_close("step 1 logvar", m.act.logvar, lv.data, (size_t)N * L, 1e-5, 1e-4);
            test_close("step 1 xhat", m.act.xhat, xh.data, (size_t)N * VAE_D, 1e-5, 1e-4);
        }
        vae_backward(&m, N);
        if (s == 0)
            check_tensors("grad", &m, m.grads, FIX "grads1.safetensors", 1e-4, 1e-4);
        adam_step(&o, m.params, m.grads, am, av, m.n_params, s + 1);
    }
    check_tensors("after 3 steps", &m, m.params, FIX "after3.safetensors", 1e-4, 1e-4);
    free(x);
    free(am);
    free(av);
    vae_free(&m);
    npy_free(&x8), npy_free(&eps), npy_free(&losses);
    npy_free(&xh), npy_free(&mu), npy_free(&lv);
}

/* decode (and reconstruct through the encoder) images 0..N-1 in batches of B from image i0,
   into out at rows 0..N-1 */
static void run_batches(struct vae *m, float *out, const float *z, const float *x, int N,
                        int B, int threads)
{
    int L = m->latent;
    nn_set_threads(threads);
    for (int i = 0; i < N; i += B) {
        int b = N - i < B ? N - i : B;
        const float *y = z != NULL ? vae_decode(m, z + (size_t)i * L, b, i)
                                   : (vae_forward(m, x + (size_t)i * VAE_D, NULL, b, i, NULL,
                                                  NULL),
                                      vae_xhat(m));
        memcpy(out + (size_t)i * VAE_D, y, (size_t)b * VAE_D * sizeof(float));
    }
    nn_set_threads(2);
}

/* An image's decoding and reconstruction are the same bits whatever its batch, wherever the
   batch starts and whatever the thread count: 37 images (three chunks) at once, in batches of
   5 and of 1, on 1 and 2 threads. */
static void test_batch_independence(void)
{
    struct vae m;
    struct rng r;
    char msg[128];
    enum { N = 37 };
    if (vae_load(&m, FIX "init.safetensors", msg, sizeof msg) == -1) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    size_t L = (size_t)m.latent;
    float *z = xmalloc(N * L * sizeof(float)), *x = xmalloc((size_t)N * VAE_D * sizeof(float));
    float *a = xmalloc((size_t)N * VAE_D * sizeof(float)), *b = xmalloc((size_t)N * VAE_D * sizeof(float));
    rng_seed(&r, 5);
    rng_normal_fill(&r, z, N * L);
    for (size_t i = 0; i < (size_t)N * VAE_D; i++)
        x[i] = 2.0f * rng_uniform(&r) - 1.0f;
    vae_batch_alloc(&m, N);
    for (int k = 0; k < 2; k++) {
        const char *what = k == 0 ? "decode" : "reconstruction";
        const float *zz = k == 0 ? z : NULL;
        run_batches(&m, a, zz, x, N, N, 2);
        run_batches(&m, b, zz, x, N, 5, 2);
        CHECK(memcmp(a, b, (size_t)N * VAE_D * sizeof(float)) == 0, "%s: batches of 5 == one batch, bitwise", what);
        run_batches(&m, b, zz, x, N, 1, 1);
        CHECK(memcmp(a, b, (size_t)N * VAE_D * sizeof(float)) == 0, "%s: one at a time on 1 thread == one batch, bitwise", what);
    }
    vae_free(&m);
    free(z), free(x), free(a), free(b);
}

static void test_decode(void)
{
    struct vae m;
    char msg[128];
    struct npy eps = load("eps.npy"), want = load("decode_xhat.npy");
    int N = (int)eps.shape[1];

    nn_set_threads(2);
    if (vae_load(&m, FIX "init.safetensors", msg, sizeof msg) == -1) {
        printf("Bail out! %s\n", msg);
        exit(1);
    }
    vae_batch_alloc(&m, 8);
    const float *xh = vae_decode(&m, eps.data, N, 0);
    test_close("decode of eps[0]", xh, want.data, (size_t)N * VAE_D, 1e-5, 1e-4);
    vae_free(&m);
    npy_free(&eps), npy_free(&want);
}

/* the loss of the last forward in double, so that differences of nearby losses are exact
   enough for finite differences */
static double loss_double(const struct vae *m, const float *x, int N)
{
    double r = 0, k = 0;
    for (size_t i = 0; i < (size_t)N * VAE_D; i++)
        r += ((double)m->act.xhat[i] - x[i]) * ((double)m->act.xhat[i] - x[i]);
    for (size_t i = 0; i < (size_t)N * m->latent; i++)
        k += 1.0 + m->act.logvar[i] - (double)m->act.mu[i] * m->act.mu[i] - exp((double)m->act.logvar[i]);
    return r / N + m->beta * (-0.5 * k / N);
}

/* (loss(p + h d) - loss(p - h d)) / 2h against g.d: per tensor along a direction d
   (all its entries move, so float rounding of the forward is small against the signal; d
   = sign(g) u with u ~ U(0,1), so that g.d is large and h can be small enough to cross few
   ReLU kinks), and
   single entries at each tensor's largest gradient (ReLU kinks make those looser). */
static double fd_dir(struct vae *m, const float *x, const float *eps, int N, const float *d,
                     size_t off, size_t n, float h)
{
    float *p = m->params + off, *p0 = xmalloc(n * sizeof(float));
    double lp, lm;
    memcpy(p0, p, n * sizeof(float));
    for (size_t j = 0; j < n; j++)
        p[j] = p0[j] + h * d[j];
    vae_forward(m, x, eps, N, 0, NULL, NULL);
    lp = loss_double(m, x, N);
    for (size_t j = 0; j < n; j++)
        p[j] = p0[j] - h * d[j];
    vae_forward(m, x, eps, N, 0, NULL, NULL);
    lm = loss_double(m, x, N);
    memcpy(p, p0, n * sizeof(float));
    free(p0);
    return (lp - lm) / (2.0 * h);
}

static void test_finite_differences(void)
{
    struct vae m;
    struct rng r;
    int N = 2, L = 8, bad = 0;
    float *x = xmalloc((size_t)N * VAE_D * sizeof(float)), *eps, *grads, *d, one = 1.0f;
    double worst_dir = 0, worst_one = 0;

    nn_set_threads(2);
    vae_init(&m, L, 0.5f);
    rng_seed(&r, 7);
    vae_init_params(&m, &r);
    vae_batch_alloc(&m, N);
    for (size_t i = 0; i < (size_t)N * VAE_D; i++)
        x[i] = 0.3f * rng_normal(&r);
    eps = xmalloc((size_t)N * L * sizeof(float));
    rng_normal_fill(&r, eps, (size_t)N * L);
    vae_zero_grad(&m);
    vae_forward(&m, x, eps, N, 0, NULL, NULL);
    vae_backward(&m, N);
    grads = xmalloc(m.n_params * sizeof(float));
    memcpy(grads, m.grads, m.n_params * sizeof(float));
    d = xmalloc(m.n_params * sizeof(float));
    for (int i = 0; i < VAE_NT; i++) {
        size_t off = (size_t)(m.g[i] - m.grads);
        size_t n = (i + 1 < VAE_NT ? (size_t)(m.g[i + 1] - m.grads) : m.n_params) - off;
        size_t best = 0;
        double gd = 0, fd, err;
        for (size_t j = 0; j < n; j++) {
            d[j] = (grads[off + j] < 0 ? -1.0f : 1.0f) * rng_uniform(&r);
            gd += (double)grads[off + j] * d[j];
            if (fabsf(grads[off + j]) > fabsf(grads[off + best]))
                best = j;
        }
        /* the float32 forward leaves ~3e-7 of noise in the loss: ~0.02 in fd at h = 1e-5 */
        fd = fd_dir(&m, x, eps, N, d, off, n, 1e-5f);
        err = fabs(fd - gd) / (fabs(gd) + 1.5);
        worst_dir = err > worst_dir ? err : worst_dir;
        if (err > 2e-2) {
            bad++;
            printf("# fd %s along d: analytic %.6g numeric %.6g\n", m.pt.e[i].name, gd, fd);
        }
        fd = fd_dir(&m, x, eps, N, &one, off + best, 1, 1e-3f);
        err = fabs(fd - grads[off + best]) / fabs(grads[off + best]);
        worst_one = err > worst_one ? err : worst_one;
        if (err > 0.1) {
            bad++;
            printf("# fd %s[%zu]: analytic %.6g numeric %.6g\n", m.pt.e[i].name, best,
                   grads[off + best], fd);
        }
    }
    CHECK(bad == 0, "finite differences of every tensor (worst relative error %.2g along a "
          "direction, %.2g at the largest entry)", worst_dir, worst_one);
    free(x);
    free(eps);
    free(grads);
    free(d);
    vae_free(&m);
}

/* a batch of 40 (chunks of 16, 16, 8): the same loss and gradient bits on 1 and 2 threads */
static void test_threads(void)
{
    struct vae m;
    struct rng r;
    int N = 40, L = 8;
    float *x = xmalloc((size_t)N * VAE_D * sizeof(float)), *eps, *g1, loss[2];

    vae_init(&m, L, 1.0f);
    rng_seed(&r, 9);
    vae_init_params(&m, &r);
    for (size_t i = 0; i < (size_t)N * VAE_D; i++)
        x[i] = 2 * rng_uniform(&r) - 1;
    eps = xmalloc((size_t)N * L * sizeof(float));
    rng_normal_fill(&r, eps, (size_t)N * L);
    g1 = xmalloc(m.n_params * sizeof(float));
    for (int t = 1; t <= 2; t++) {
        nn_set_threads(t);
        vae_batch_alloc(&m, N);
        vae_zero_grad(&m);
        loss[t - 1] = vae_forward(&m, x, eps, N, 0, NULL, NULL);
        vae_backward(&m, N);
        if (t == 1)
            memcpy(g1, m.grads, m.n_params * sizeof(float));
    }
    CHECK(loss[0] == loss[1] && memcmp(g1, m.grads, m.n_params * sizeof(float)) == 0,
          "batch of 40: loss and gradients bit-identical on 1 and 2 threads");
    free(x), free(eps), free(g1);
    vae_free(&m);
}

static void test_init(void)
{
    struct vae m;
    struct rng r;
    /* PyTorch fan_in: Conv2d in*k*k, Linear in, ConvTranspose2d weight.size(1)*k*k */
    static const int fan[VAE_NT / 2] = {48, 512, 512, 512, 512, 16, 512, 512, 48};
    vae_init(&m, 16, 1.0f);
    rng_seed(&r, 1);
    vae_init_params(&m, &r);
    for (int i = 0; i < VAE_NT; i++) {
        size_t off = (size_t)(m.g[i] - m.grads);
        size_t n = (i + 1 < VAE_NT ? (size_t)(m.g[i + 1] - m.grads) : m.n_params) - off;
        float b = 1.0f / sqrtf((float)fan[i / 2]), mx = 0;
        double mean = 0;
        for (size_t j = 0; j < n; j++) {
            mx = fabsf(m.params[off + j]) > mx ? fabsf(m.params[off + j]) : mx;
            mean += m.params[off + j];
        }
        mean /= n;
        CHECK(fabsf(vae_init_bound(&m, i) - b) < 1e-7f && mx <= b &&
                  mx > (n >= 48 ? 0.9f : 0.3f) * b && fabs(mean) < 4 * b / sqrt(3.0 * n),
              "init %s: bound 1/sqrt(%d), max %.4g, mean %.3g", m.pt.e[i].name, fan[i / 2], mx,
              mean);
    }
    vae_free(&m);
}

static void test_checkpoint(void)
{
    struct vae a, b;
    struct rng r;
    char msg[128], path[] = "/tmp/test_vae_XXXXXX";
    const char *k[] = {"step"}, *v[] = {"12"};
    int fd = mkstemp(path);
    close(fd);
    vae_init(&a, 24, 2.5f);
    rng_seed(&r, 3);
    vae_init_params(&a, &r);
    CHECK(vae_save(&a, path, k, v, 1, msg, sizeof msg) == 0, "save: %s", msg);
    CHECK(vae_load(&b, path, msg, sizeof msg) == 0, "load: %s", msg);
    CHECK(b.latent == 24 && b.beta == 2.5f && b.n_params == a.n_params &&
              memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0,
          "checkpoint round trip is bit exact");
    struct st_file f;
    CHECK(st_open(&f, path, msg, sizeof msg) == 0 && st_meta(&f, "step") != NULL &&
              strcmp(st_meta(&f, "step"), "12") == 0 && strcmp(st_meta(&f, "model"), "vae") == 0,
          "metadata written");
    st_close(&f);
    vae_free(&b);
    /* a file with a tensor missing is refused, naming the tensor */
    struct st_entry e[VAE_NT - 1];
    memcpy(e, a.pt.e, sizeof e); /* all but dec.6.bias */
    st_save_entries(path, e, VAE_NT - 1, NULL, NULL, 0, msg, sizeof msg);
    CHECK(vae_load(&b, path, msg, sizeof msg) == -1 && strstr(msg, "dec.6.bias") != NULL,
          "missing tensor refused: %s", msg);
    unlink(path);
    vae_free(&a);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--determinism") == 0) {
        test_kernel_banner();
        test_batch_independence();
        return test_done();
    }
    test_batch_independence();
    test_under_each_kernel(argv, "--determinism");
    test_training(1);
    test_training(2);
    test_decode();
    test_finite_differences();
    test_threads();
    test_init();
    test_checkpoint();
    return test_done();
}
