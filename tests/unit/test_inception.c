/* FID Inception v3 against PyTorch goldens (tests/fixtures/gen_inception.py) with the
   closed-form synthetic weights: preprocessing of both conventions, per-stage activations,
   pool3, logits, the --dims features and sFID's spatial features (tests/fixtures/gen_sfid.py),
   which change no bit of the others; independence of batch and thread count; the .pth
   path on the HWIO-strided legacy file the script leaves in /tmp; bad weight files. */
#include <stdlib.h>
#include <string.h>

#include "models/inception.h"
#include "nn/nn.h"
#include "io/npy.h"
#include "test.h"
#include "test_kernels.h"
#include "util/util.h"

#define FIX "tests/fixtures/inception/"
#define SYNTH_PTH "/tmp/inception_synth_hwio.pth"
#define X299 (3 * INCEPTION_SIZE * INCEPTION_SIZE)

static struct npy load(const char *name)
{
    char path[256], msg[256];
    struct npy t;
    snprintf(path, sizeof path, FIX "%s", name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s (run tests/fixtures/gen_inception.py)\n", path, msg);
        exit(1);
    }
    return t;
}

static uint64_t sample_idx(uint64_t j, uint64_t n)
{
    return (j * 2654435761u) % n;
}

static void test_synth_formula(void)
{
    struct npy t = load("synth_u.npy");
    const double *v = t.data;
    int ok = 1;
    for (int r = 0; r < t.shape[0]; r++) {
        double got = inception_synth_u((uint64_t)v[3 * r], (uint32_t)v[3 * r + 1]);
        if (got != v[3 * r + 2]) {
            printf("# synth_u(%g, %g) = %.17g, want %.17g\n", v[3 * r], v[3 * r + 1], got,
                   v[3 * r + 2]);
            ok = 0;
        }
    }
    CHECK(ok, "synthetic weight formula matches numpy bit for bit");
    npy_free(&t);
}

static const char *mode_tag(enum inception_resize m)
{
    return m == INCEPTION_RESIZE_PYTORCH_FID ? "pytorchfid" : "torchfidelity";
}

/* preprocessing samples, pool3 and logits of one image set in one mode */
static void test_set(const struct inception *net, const char *set, enum inception_resize mode)
{
    char name[128];
    snprintf(name, sizeof name, "%s.npy", set);
    struct npy img = load(name);
    int N = (int)img.shape[0], H = (int)img.shape[1], W = (int)img.shape[2];
    snprintf(name, sizeof name, "%s_%s_input.npy", set, mode_tag(mode));
    struct npy in = load(name);
    snprintf(name, sizeof name, "%s_%s_pool3.npy", set, mode_tag(mode));
    struct npy p3 = load(name);
    snprintf(name, sizeof name, "%s_%s_logits.npy", set, mode_tag(mode));
    struct npy lg = load(name);

    float *x = xmalloc((size_t)X299 * sizeof(float)), got[4096];
    int K = (int)in.shape[1];
    for (int i = 0; i < N; i++) {
        inception_preprocess(x, (uint8_t *)img.data + (size_t)i * H * W * 3, H, W, mode);
        for (int j = 0; j < K; j++)
            got[j] = x[sample_idx(j, X299)];
        snprintf(name, sizeof name, "%s[%d] %s preprocessing", set, i, mode_tag(mode));
        test_close(name, got, (float *)in.data + (size_t)i * K, K, 1e-6, 1e-6);
    }
    float *pool3 = xmalloc((size_t)N * INCEPTION_DIMS * sizeof(float));
    float *logits = xmalloc((size_t)N * INCEPTION_CLASSES * sizeof(float));
    struct inception_ws ws;
    inception_ws_init(&ws, net, N, H, W);
    inception_forward_u8(net, &ws, pool3, logits, NULL, NULL, NULL, img.data, N, 0, H, W, mode);
    inception_ws_free(&ws);
    snprintf(name, sizeof name, "%s %s pool3", set, mode_tag(mode));
    test_close(name, pool3, p3.data, (size_t)N * INCEPTION_DIMS, 1e-4, 1e-4);
    snprintf(name, sizeof name, "%s %s logits", set, mode_tag(mode));
    test_close(name, logits, lg.data, (size_t)N * INCEPTION_CLASSES, 1e-4, 1e-4);
    free(x);
    free(pool3);
    free(logits);
    npy_free(&img);
    npy_free(&in);
    npy_free(&p3);
    npy_free(&lg);
}

static void test_stages(const struct inception *net)
{
    struct npy img = load("img32.npy"), st = load("stages.npy");
    float *x = xmalloc((size_t)X299 * sizeof(float));
    size_t cap = (size_t)64 * 147 * 147;
    float *out = xmalloc(cap * sizeof(float)), got[128];
    int K = (int)st.shape[1];
    struct inception_ws ws;
    inception_ws_init(&ws, net, 1, 0, 0);
    inception_preprocess(x, img.data, 32, 32, INCEPTION_RESIZE_PYTORCH_FID);
    for (int s = 0; s < st.shape[0]; s++) {
        size_t n = inception_stage(net, &ws, out, cap, x, s);
        char name[64];
        for (int j = 0; j < K && n > 0; j++)
            got[j] = out[sample_idx(j, n)];
        snprintf(name, sizeof name, "stage %d activations", s);
        if (n == 0 || n > cap)
            CHECK(0, "%s: stage size %zu", name, n);
        else
            test_close(name, got, (float *)st.data + (size_t)s * K, K, 1e-4, 1e-4);
    }
    CHECK(inception_stage(net, &ws, out, cap, x, (int)st.shape[0]) == 0,
          "stage out of range is 0");
    inception_ws_free(&ws);
    free(x);
    free(out);
    npy_free(&img);
    npy_free(&st);
}

static void test_dims(const struct inception *net)
{
    struct npy img = load("img32.npy");
    int N = (int)img.shape[0];
    static const int dims[3] = { 64, 192, 768 };
    float *f[3];
    for (int k = 0; k < 3; k++)
        f[k] = xmalloc((size_t)N * dims[k] * sizeof(float));
    struct inception_ws ws;
    inception_ws_init(&ws, net, N, 32, 32);
    inception_forward_u8(net, &ws, NULL, NULL, f[0], f[1], f[2], img.data, N, 0, 32, 32,
                         INCEPTION_RESIZE_PYTORCH_FID);
    inception_ws_free(&ws);
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "img32_pytorchfid_dims%d.npy", dims[k]);
        struct npy want = load(name);
        snprintf(name, sizeof name, "--dims %d features", dims[k]);
        test_close(name, f[k], want.data, (size_t)N * dims[k], 1e-4, 1e-4);
        npy_free(&want);
        free(f[k]);
    }
    npy_free(&img);
}

/* sFID's spatial features of img32 and img40x24 in both conventions against the PyTorch
   slice of mixed_6/conv, and pool3 the same bits with and without them */
static void test_spatial(const struct inception *net)
{
    static const char *const sets[] = { "img32", "img40x24" };
    static const enum inception_resize modes[] = { INCEPTION_RESIZE_TORCH_FIDELITY,
                                                   INCEPTION_RESIZE_PYTORCH_FID };
    for (int s = 0; s < 2; s++)
        for (int m = 0; m < 2; m++) {
            char name[96];
            snprintf(name, sizeof name, "%s.npy", sets[s]);
            struct npy img = load(name);
            snprintf(name, sizeof name, "%s_%s_spatial.npy", sets[s], mode_tag(modes[m]));
            struct npy want = load(name);
            int N = (int)img.shape[0], H = (int)img.shape[1], W = (int)img.shape[2];
            float *sp = xmalloc((size_t)N * INCEPTION_SPATIAL_DIMS * sizeof(float));
            float *a = xmalloc((size_t)N * INCEPTION_DIMS * sizeof(float));
            float *b = xmalloc((size_t)N * INCEPTION_DIMS * sizeof(float));
            struct inception_outputs o = { a, NULL, NULL, NULL, NULL, sp };
            struct inception_ws ws;
            inception_ws_init(&ws, net, N, H, W);
            inception_run_u8(net, &ws, &o, img.data, N, 0, H, W, modes[m]);
            inception_forward_u8(net, &ws, b, NULL, NULL, NULL, NULL, img.data, N, 0, H, W,
                                 modes[m]);
            inception_ws_free(&ws);
            CHECK(want.shape[1] == INCEPTION_SPATIAL_DIMS, "%s: 2023 columns", name);
            snprintf(name, sizeof name, "%s %s spatial (sFID) features", sets[s],
                     mode_tag(modes[m]));
            test_close(name, sp, want.data, (size_t)N * INCEPTION_SPATIAL_DIMS, 1e-4, 1e-4);
            CHECK(memcmp(a, b, (size_t)N * INCEPTION_DIMS * sizeof(float)) == 0,
                  "%s: pool3 the same bits with the spatial output", name);
            free(sp);
            free(a);
            free(b);
            npy_free(&img);
            npy_free(&want);
        }
}

#define NOUT 4 /* run_rows' outputs */

/* pool3, logits, d768 and spatial of images i0..i0+n-1 of img (32x32) into f at rows i0.. */
static void run_rows(struct inception *net, struct inception_ws *ws, float *f[NOUT],
                     const uint8_t *img, int i0, int n, int threads)
{
    int T = nn_get_threads();
    struct inception_outputs o = { f[0] + (size_t)i0 * INCEPTION_DIMS,
                                   f[1] + (size_t)i0 * INCEPTION_CLASSES, NULL, NULL,
                                   f[2] + (size_t)i0 * 768,
                                   f[3] + (size_t)i0 * INCEPTION_SPATIAL_DIMS };
    nn_set_threads(threads);
    inception_run_u8(net, ws, &o, img + (size_t)i0 * 32 * 32 * 3, n, i0, 32, 32,
                     INCEPTION_RESIZE_PYTORCH_FID);
    nn_set_threads(T);
}

static int same_rows(float *a[NOUT], float *b[NOUT], int i0, int n)
{
    static const size_t w[NOUT] = { INCEPTION_DIMS, INCEPTION_CLASSES, 768,
                                    INCEPTION_SPATIAL_DIMS };
    for (int k = 0; k < NOUT; k++)
        if (memcmp(a[k] + i0 * w[k], b[k] + i0 * w[k], n * w[k] * sizeof(float)) != 0)
            return 0;
    return 1;
}

/* Same features whatever the batch, its order and the thread count, bit for bit: 11 images
   (the 3 of img32 and 8 with shifted pixel values, two groups) all at once on 2 threads, on one
   thread, in batches of 3 (batches starting inside a group), one image per call in reverse
   order, and images 2..6 as one batch. */
static void test_batch_independence(struct inception *net)
{
    struct npy src = load("img32.npy");
    enum { N = 11 };
    size_t per = 32 * 32 * 3;
    uint8_t *img = xmalloc(N * per);
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < per; j++)
            img[i * per + j] = (uint8_t)(((uint8_t *)src.data)[i % 3 * per + j] + 37 * (i / 3));
    float *f[5][NOUT];
    for (int r = 0; r < 5; r++) {
        f[r][0] = xcalloc((size_t)N * INCEPTION_DIMS, sizeof(float));
        f[r][1] = xcalloc((size_t)N * INCEPTION_CLASSES, sizeof(float));
        f[r][2] = xcalloc((size_t)N * 768, sizeof(float));
        f[r][3] = xcalloc((size_t)N * INCEPTION_SPATIAL_DIMS, sizeof(float));
    }
    struct inception_ws ws; /* for every batch below, made for 2 threads */
    int T = nn_get_threads();
    nn_set_threads(2);
    inception_ws_init(&ws, net, N, 32, 32);
    nn_set_threads(T);
    run_rows(net, &ws, f[0], img, 0, N, 2);
    run_rows(net, &ws, f[1], img, 0, N, 1);
    for (int i = 0; i < N; i += 3)
        run_rows(net, &ws, f[2], img, i, N - i < 3 ? N - i : 3, 2);
    for (int i = N - 1; i >= 0; i--)
        run_rows(net, &ws, f[3], img, i, 1, 2);
    run_rows(net, &ws, f[4], img, 2, 5, 2);
    inception_ws_free(&ws);
    CHECK(same_rows(f[0], f[1], 0, N), "features identical on 1 thread");
    CHECK(same_rows(f[0], f[2], 0, N), "features identical in batches of 3");
    CHECK(same_rows(f[0], f[3], 0, N), "features identical one image at a time");
    CHECK(same_rows(f[0], f[4], 2, 5), "features identical in another batch");
    for (int r = 0; r < 5; r++)
        for (int k = 0; k < NOUT; k++)
            free(f[r][k]);
    free(img);
    npy_free(&src);
}

static void test_unfused(struct inception *net)
{
    struct npy img = load("img32.npy");
    float *a = xmalloc(INCEPTION_DIMS * sizeof(float)), *b = xmalloc(INCEPTION_DIMS * sizeof(float));
    struct inception_ws ws;
    inception_ws_init(&ws, net, 1, 32, 32);
    inception_forward_u8(net, &ws, a, NULL, NULL, NULL, NULL, img.data, 1, 0, 32, 32,
                         INCEPTION_RESIZE_PYTORCH_FID);
    net->fuse = 0;
    inception_forward_u8(net, &ws, b, NULL, NULL, NULL, NULL, img.data, 1, 0, 32, 32,
                         INCEPTION_RESIZE_PYTORCH_FID);
    net->fuse = 1;
    inception_ws_free(&ws);
    test_close("fused 1x1 GEMMs equal separate convs", a, b, INCEPTION_DIMS, 1e-5, 1e-5);
    free(a);
    free(b);
    npy_free(&img);
}

/* the real file's layout: legacy .pth, conv weights HWIO-strided, fc transposed */
static void test_pth(const struct inception *synth)
{
    char msg[256];
    struct inception net;
    if (!util_exists(SYNTH_PTH)) {
        printf("ok %d - # skip %s absent (run tests/fixtures/gen_inception.py)\n", ++test_n,
               SYNTH_PTH);
        return;
    }
    if (inception_load(&net, SYNTH_PTH, msg, sizeof msg) == -1) {
        CHECK(0, "load %s: %s", SYNTH_PTH, msg);
        return;
    }
    size_t nw = (size_t)(net.fc_b - net.params) + INCEPTION_CLASSES;
    CHECK(memcmp(net.params, synth->params, nw * sizeof(float)) == 0,
          "strided legacy .pth loads the synthetic weights exactly");
    inception_free(&net);
}

static void test_bad_weights(void)
{
    char msg[256], path[512];
    struct inception net;
    static const char *const bad[] = { "tests/fixtures/bad/metrics_inception_missing.pth",
                                       "tests/fixtures/bad/metrics_inception_shape.safetensors",
                                       "tests/fixtures/bad/metrics_inception_trunc.pth",
                                       "tests/fixtures/bad/metrics_no_such_file.pth" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        int rc = inception_load(&net, bad[i], msg, sizeof msg);
        CHECK(rc == -1 && msg[0] != '\0', "%s rejected: %s", bad[i], msg);
        if (rc == 0)
            inception_free(&net);
    }
    setenv("FID_WEIGHTS", "/nonexistent/w.pth", 1);
    int rc = inception_default_weights(path, sizeof path, "bin/fid", msg, sizeof msg);
    CHECK(rc == -1 && strstr(msg, "make weights") != NULL, "missing $FID_WEIGHTS: %s", msg);
    setenv("FID_WEIGHTS", "synthetic", 1);
    rc = inception_default_weights(path, sizeof path, "bin/fid", msg, sizeof msg);
    CHECK(rc == 0 && strcmp(path, "synthetic") == 0, "FID_WEIGHTS=synthetic");
    unsetenv("FID_WEIGHTS");
}

int main(int argc, char **argv)
{
    struct inception net;
    nn_set_threads(2);
    if (argc > 1 && strcmp(argv[1], "--determinism") == 0) {
        test_kernel_banner();
        inception_synthetic(&net);
        test_batch_independence(&net);
        inception_free(&net);
        return test_done();
    }
    test_synth_formula();
    inception_synthetic(&net);
    static const char *const sets[] = { "img32", "img40x24", "img311x300" };
    for (int s = 0; s < 3; s++) {
        test_set(&net, sets[s], INCEPTION_RESIZE_PYTORCH_FID);
        test_set(&net, sets[s], INCEPTION_RESIZE_TORCH_FIDELITY);
    }
    test_stages(&net);
    test_dims(&net);
    test_spatial(&net);
    test_batch_independence(&net);
    test_under_each_kernel(argv, "--determinism");
    test_unfused(&net);
    test_pth(&net);
    test_bad_weights();
    inception_free(&net);
    return test_done();
}
