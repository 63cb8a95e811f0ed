/* DDPM/DDIM schedulers against the diffusers formulas re-implemented in
   tests/fixtures/gen_unet.py: betas, alphas_cumprod, timesteps for every spacing, and single
   steps (fixed_large/fixed_small, clipping, DDIM eta 0 and > 0, DDIM with
   use_clipped_model_output) for four scheduler configs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "io/npy.h"
#include "nn/sched.h"
#include "util/util.h"

#define FIX "tests/fixtures/unet/"
#define NPZ FIX "sched.npz"

static int get(const char *name, struct npy *t)
{
    char msg[256];
    if (npz_read(NPZ, name, t, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", name, msg);
        return -1;
    }
    return 0;
}

static void test_config(const char *name)
{
    static const int ns[] = {1, 7, 10, 50, 61, 1000};
    static const struct {
        const char *kind;
        int n;
        const char *eta;
    } steps[] = {{"ddpm", 1000, "0"}, {"ddpm", 50, "0"}, {"ddim", 50, "0"}, {"ddim", 50, "0.7"},
                 {"ddim", 10, "1.0"}};
    struct sched_config c;
    struct sched s;
    struct npy a, x, e, z;
    char path[256], key[128], msg[256];

    snprintf(path, sizeof path, FIX "sched_%s.json", name);
    if (sched_config_load(&c, path, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", path, msg);
        return;
    }
    if (sched_init(&s, &c, SCHED_DDPM, 10, 0, msg, sizeof msg) == -1) {
        CHECK(0, "%s: %s", name, msg);
        return;
    }
    snprintf(key, sizeof key, "%s_betas", name);
    if (get(key, &a) == 0) {
        /* torch.linspace's vector path may differ from its scalar form by an ulp */
        test_close(key, s.betas, a.data, (size_t)s.T, 0, 1e-6);
        npy_free(&a);
    }
    snprintf(key, sizeof key, "%s_ac", name);
    if (get(key, &a) == 0) {
        test_close(key, s.alphas_cumprod, a.data, (size_t)s.T, 0, 3e-6);
        npy_free(&a);
    }
    sched_free(&s);

    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int k = 0; k < 2; k++) {
            int ok = 1, max = 0, min = 0, rc;
            snprintf(key, sizeof key, "%s_%s_ts%d", name, k ? "ddim" : "ddpm", ns[i]);
            if (get(key, &a) == -1)
                continue;
            for (int64_t j = 0; j < a.shape[0]; j++)
                if (((int32_t *)a.data)[j] > max)
                    max = ((int32_t *)a.data)[j];
                else if (((int32_t *)a.data)[j] < min)
                    min = ((int32_t *)a.data)[j];
            rc = sched_init(&s, &c, k ? SCHED_DDIM : SCHED_DDPM, ns[i], 0, msg, sizeof msg);
            /* diffusers would index past the table (steps_offset) or at -1 (trailing with
               T/n inexact, e.g. n = 61) */
            if (max >= c.num_train_timesteps || min < 0) {
                CHECK(rc == -1, "%s: refused (%s)", key, msg);
                npy_free(&a);
                continue;
            }
            ok = rc == 0 && s.n_steps == a.shape[0];
            for (int j = 0; ok && j < s.n_steps; j++)
                ok = s.timesteps[j] == ((int32_t *)a.data)[j];
            CHECK(ok, "%s timesteps (%lld)", key, (long long)a.shape[0]);
            if (rc == 0)
                sched_free(&s);
            npy_free(&a);
        }

    snprintf(key, sizeof key, "%s_x", name);
    if (get(key, &x) == -1)
        return;
    snprintf(key, sizeof key, "%s_e", name);
    get(key, &e);
    snprintf(key, sizeof key, "%s_z", name);
    get(key, &z);
    size_t n = (size_t)npy_count(&x);
    float *y = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        float eta = (float)atof(steps[i].eta);
        int rc = sched_init(&s, &c, strcmp(steps[i].kind, "ddim") == 0 ? SCHED_DDIM : SCHED_DDPM,
                            steps[i].n, eta, msg, sizeof msg);
        if (rc == -1)
            continue; /* steps_offset past T: checked above */
        int idx[3] = {0, 3, s.n_steps - 1};
        for (int j = 0; j < 3; j++) {
            snprintf(key, sizeof key, "%s_%s%d_eta%s_i%d", name, steps[i].kind, steps[i].n,
                     steps[i].eta, idx[j]);
            if (get(key, &a) == -1)
                continue;
            memcpy(y, x.data, n * sizeof(float));
            sched_step(&s, idx[j], y, e.data, z.data, n);
            test_close(key, y, a.data, n, 2e-6, 2e-5);
            npy_free(&a);
        }
        sched_free(&s);
    }
    /* DDIMPipeline(use_clipped_model_output=True): the noise recomputed from the clipped x0 */
    for (int i = 0; i < 2; i++) {
        int n_steps = i ? 10 : 50;
        const char *eta = i ? "1.0" : "0";
        if (sched_init(&s, &c, SCHED_DDIM, n_steps, (float)atof(eta), msg, sizeof msg) == -1)
            continue;
        s.use_clipped_eps = 1;
        int idx[3] = {0, 3, s.n_steps - 1};
        for (int j = 0; j < 3; j++) {
            snprintf(key, sizeof key, "%s_ddim%d_eta%s_clipped_i%d", name, n_steps, eta, idx[j]);
            if (get(key, &a) == -1)
                continue;
            memcpy(y, x.data, n * sizeof(float));
            sched_step(&s, idx[j], y, e.data, z.data, n);
            test_close(key, y, a.data, n, 2e-6, 2e-5);
            npy_free(&a);
        }
        sched_free(&s);
    }
    free(y);
    npy_free(&x);
    npy_free(&e);
    npy_free(&z);
}

static void test_errors(void)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"prediction_type\": \"v_prediction\"}", "prediction_type: unsupported"},
        {"{\"variance_type\": \"learned_range\"}", "variance_type: unsupported"},
        {"{\"thresholding\": true}", "thresholding: unsupported"},
        {"{\"trained_betas\": [0.1, 0.2]}", "trained_betas: unsupported"},
        {"{\"timestep_spacing\": \"karras\"}", "timestep_spacing: unsupported"},
        {"{\"_class_name\": \"PNDMScheduler\"}", "_class_name: unsupported"},
        {"{\"num_train_timesteps\": 0}", "num_train_timesteps:"},
    };
    struct sched_config c;
    struct sched s;
    char msg[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json *j = json_parse(cases[i].json, strlen(cases[i].json), msg, sizeof msg);
        int rc = j ? sched_config_parse(&c, j, msg, sizeof msg) : -1;
        CHECK(rc == -1 && strncmp(msg, cases[i].want, strlen(cases[i].want)) == 0,
              "scheduler config error: %s", cases[i].want);
        json_free(j);
    }
    sched_config_default(&c);
    CHECK(sched_init(&s, &c, SCHED_DDIM, 1001, 0, msg, sizeof msg) == -1, "steps > T refused");
    CHECK(sched_init(&s, &c, SCHED_DDIM, 0, 0, msg, sizeof msg) == -1, "0 steps refused");
}

int main(void)
{
    test_config("large");
    test_config("small_trailing");
    test_config("linspace_off");
    test_config("cos_off1");
    test_errors();
    return test_done();
}
