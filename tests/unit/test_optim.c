/* optim: Adam/AdamW against torch.optim over 6 steps, schedules against LambdaLR,
   clip_grad_norm_, diffusers EMAModel; init_uniform moments. Goldens: gen_ckpt.py ->
   tests/fixtures/ckpt/optim.safetensors. */
#include "nn/optim.h"
#include "util/rng.h"
#include "io/st.h"
#include "test.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define N 37
#define STEPS 6

static struct st_file fx;

/* float32 copy of a fixture tensor; n checked */
static float *get(const char *name, size_t n)
{
    const struct st_tensor *t = st_find(&fx, name);
    float *x = xcalloc(n, 4);
    if (t == NULL || (size_t)st_numel(t) != n)
        CHECK(0, "fixture %s with %zu values", name, n);
    else
        st_to_f32(t, x);
    return x;
}

static const double *get_f64(const char *name, size_t n)
{
    const struct st_tensor *t = st_find(&fx, name);
    static const double zero[64];
    if (t == NULL || t->dtype != ST_F64 || (size_t)st_numel(t) != n) {
        CHECK(0, "fixture %s with %zu doubles", name, n);
        return zero;
    }
    return t->data;
}

static void test_adam(const char *name, float lr, float b1, float b2, float eps, float wd,
                      int decoupled, double rtol)
{
    struct adam o = {lr, b1, b2, eps, wd, decoupled};
    float *p = get("p0", N), *g = get("grads", STEPS * N), m[N] = {0}, v[N] = {0};
    char key[64], what[96];
    snprintf(key, sizeof key, "%s.p", name);
    float *want = get(key, STEPS * N);
    for (int s = 0; s < STEPS; s++) {
        adam_step(&o, p, g + s * N, m, v, N, s + 1);
        snprintf(what, sizeof what, "%s params after step %d", name, s + 1);
        if (s == 0 || s == STEPS - 1)
            test_close(what, p, want + s * N, N, rtol > 0 ? 1e-7 : 0, rtol);
    }
    snprintf(key, sizeof key, "%s.m", name);
    float *wm = get(key, N);
    snprintf(key, sizeof key, "%s.v", name);
    float *wv = get(key, N);
    snprintf(what, sizeof what, "%s exp_avg", name);
    test_close(what, m, wm, N, 0, rtol);
    snprintf(what, sizeof what, "%s exp_avg_sq", name);
    test_close(what, v, wv, N, 0, rtol);
    free(p), free(g), free(want), free(wm), free(wv);
}

/* the OpenMP path (n >= 65536) gives the same bytes as the serial one */
static void test_adam_parallel(void)
{
    size_t n = 200003;
    float *p = malloc(n * 4), *q = malloc(n * 4), *g = malloc(n * 4);
    float *m = calloc(n, 4), *v = calloc(n, 4), m1[7] = {0}, v1[7] = {0};
    struct rng r;
    struct adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
    rng_seed(&r, 5);
    rng_normal_fill(&r, p, n);
    rng_normal_fill(&r, g, n);
    memcpy(q, p, n * 4);
    for (int s = 1; s <= 3; s++)
        adam_step(&o, p, g, m, v, n, s);
    int ok = 1;
    for (size_t i = 0; i < n; i += 7) {
        size_t k = n - i < 7 ? n - i : 7;
        memset(m1, 0, sizeof m1);
        memset(v1, 0, sizeof v1);
        for (int s = 1; s <= 3; s++)
            adam_step(&o, q + i, g + i, m1, v1, k, s);
        ok &= memcmp(q + i, p + i, k * 4) == 0;
    }
    CHECK(ok, "adam_step over 200003 params (threads) equals chunks of 7 (serial)");
    free(p), free(q), free(g), free(m), free(v);
}

static void test_sched(void)
{
    const double *c = get_f64("sched.cosine", 40), *l = get_f64("sched.linear", 40),
                 *k = get_f64("sched.constant", 40), *c0 = get_f64("sched.cosine0", 40);
    float got[4][40], want[4][40];
    for (int s = 0; s < 40; s++) {
        got[0][s] = 1e-3f * lr_cosine_warmup(s, 5, 30);
        got[1][s] = 1e-3f * lr_linear_warmup(s, 5, 30);
        got[2][s] = 1e-3f * lr_constant_warmup(s, 5);
        got[3][s] = 1e-3f * lr_cosine_warmup(s, 0, 10);
        want[0][s] = (float)c[s];
        want[1][s] = (float)l[s];
        want[2][s] = (float)k[s];
        want[3][s] = (float)c0[s];
    }
    test_close("cosine warmup 5/30 vs LambdaLR", got[0], want[0], 40, 1e-12, 1e-6);
    test_close("linear warmup 5/30 vs LambdaLR", got[1], want[1], 40, 1e-12, 1e-6);
    test_close("constant warmup 5 vs LambdaLR", got[2], want[2], 40, 1e-12, 1e-6);
    test_close("cosine warmup 0/10 vs LambdaLR", got[3], want[3], 40, 1e-12, 1e-6);
    CHECK(lr_cosine_warmup(0, 5, 30) == 0 && lr_cosine_warmup(5, 5, 30) == 1 &&
              lr_cosine_warmup(30, 5, 30) < 1e-7,
          "cosine: 0 at start, 1 after warmup, 0 at the end");
}

static void test_clip(void)
{
    const char *names[] = {"big", "small", "mid"};
    const float maxn[] = {1.0f, 1.0f, 2.5f};
    for (int c = 0; c < 3; c++) {
        char key[64], what[64];
        snprintf(key, sizeof key, "clip.%s.in", names[c]);
        float *g = get(key, N);
        snprintf(key, sizeof key, "clip.%s.out", names[c]);
        float *want = get(key, N);
        snprintf(key, sizeof key, "clip.%s.norm", names[c]);
        float *wn = get(key, 1);
        float norm = grad_clip_norm(g, N, maxn[c]);
        snprintf(what, sizeof what, "clip %s: total norm", names[c]);
        test_close(what, &norm, wn, 1, 0, 1e-6);
        snprintf(what, sizeof what, "clip %s: clipped gradient", names[c]);
        test_close(what, g, want, N, 0, 1e-6);
        free(g), free(want), free(wn);
    }
    float z[3] = {0};
    CHECK(grad_clip_norm(z, 3, 1.0f) == 0 && z[0] == 0, "zero gradient stays zero");
}

static void test_ema(const char *name, long k0, long after, double inv_gamma, double power,
                     double min_decay, double max_decay)
{
    char key[64], what[96];
    const double *wd;
    snprintf(key, sizeof key, "%s.decay", name);
    wd = get_f64(key, STEPS);
    snprintf(key, sizeof key, "%s.init", name);
    float *shadow = get(key, N);
    snprintf(key, sizeof key, "%s.shadow", name);
    float *want = get(key, STEPS * N);
    int ok = 1;
    for (int s = 0; s < STEPS; s++) {
        long k = k0 + s + 1;
        double d = ema_decay_f64(k, after, inv_gamma, power, min_decay, max_decay);
        float df = ema_decay(k, after, (float)inv_gamma, (float)power, (float)min_decay,
                             (float)max_decay);
        ok &= fabs(d - wd[s]) <= 1e-15 && fabs(df - wd[s]) <= 1e-7;
        snprintf(key, sizeof key, "%s.param%d", name, s);
        float *p = get(key, N);
        ema_update_f64(shadow, p, N, d);
        free(p);
        snprintf(what, sizeof what, "%s shadow after update %ld", name, k);
        test_close(what, shadow, want + s * N, N, 0, 0);
    }
    CHECK(ok, "%s decays equal EMAModel.get_decay", name);
    free(shadow), free(want);
}

static void test_init(void)
{
    struct rng r;
    size_t n = 100000;
    float *w = malloc(n * 4);
    double s = 0, s2 = 0;
    int in = 1;
    rng_seed(&r, 9);
    init_uniform(w, n, 0.25f, &r);
    for (size_t i = 0; i < n; i++) {
        in &= w[i] >= -0.25f && w[i] < 0.25f;
        s += w[i];
        s2 += (double)w[i] * w[i];
    }
    /* U(-b,b): mean 0 (se 4.6e-4), var b^2/3 = 0.0208333 (se 6e-5) */
    CHECK(in && fabs(s / n) < 0.0025 && fabs(s2 / n - 0.0625 / 3) < 4e-4,
          "init_uniform in [-b,b), mean %.5f var %.6f", s / n, s2 / n);
    free(w);
}

int main(void)
{
    char msg[128];
    if (st_open(&fx, "tests/fixtures/ckpt/optim.safetensors", msg, sizeof msg) == -1) {
        CHECK(0, "optim.safetensors: %s", msg);
        return test_done();
    }
    /* betas and lr exact in binary and short in decimal: bit-for-bit with torch */
    test_adam("adam_exact", 0.015625f, 0.875f, 0.96875f, 1e-8f, 0, 0, 0);
    test_adam("adam_l2", 0.015625f, 0.875f, 0.96875f, 1e-8f, 0.0625f, 0, 0);
    test_adam("adamw_exact", 0.015625f, 0.875f, 0.96875f, 1e-8f, 0.125f, 1, 0);
    /* real settings: f2d recovers 0.999 from 0.999f, so these are bit-for-bit as well */
    test_adam("adamw_real", 1e-4f, 0.95f, 0.999f, 1e-8f, 1e-6f, 1, 0);
    test_adam("adam_real", 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0, 0);
    test_adam_parallel();
    test_sched();
    test_clip();
    test_ema("ema_a", 0, 0, 1.0, 0.75, 0.0, 0.9999);
    test_ema("ema_b", 0, 2, 2.0, 2.0 / 3, 0.5, 0.999);
    test_ema("ema_c", 400000, 0, 1.0, 0.75, 0.0, 0.9999);
    test_init();
    st_close(&fx);
    return test_done();
}
