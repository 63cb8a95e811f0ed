/* DINOv2 ViT against PyTorch goldens (tests/fixtures/gen_dinov2.py, a transcription of
   facebookresearch/dinov2's model and dgm-eval's transform): PIL's BICUBIC resize, the
   position-embedding interpolation, features of a small config read from an official-layout
   .pth, features of the full ViT-L/14 shape with the closed-form synthetic weights (built in
   memory on both sides), independence of batch and thread count (under every OpenBLAS
   kernel), and bad weight files. */
#include <stdlib.h>
#include <string.h>

#include "io/img.h"
#include "io/npy.h"
#include "models/dinov2.h"
#include "nn/nn.h"
#include "test.h"
#include "test_kernels.h"
#include "util/util.h"

#define FIX "tests/fixtures/dinov2/"
#define SMALL FIX "small.pth"
#define VITL_PTH "/tmp/dinov2_vitl14_synth.pth"

static struct npy load(const char *name)
{
    char path[256], msg[256];
    struct npy t;
    snprintf(path, sizeof path, FIX "%s", name);
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s (run tests/fixtures/gen_dinov2.py)\n", path, msg);
        exit(1);
    }
    return t;
}

static void load_small(struct dinov2 *net, int heads)
{
    char msg[256];
    if (dinov2_load(net, SMALL, heads, msg, sizeof msg) == -1) {
        printf("Bail out! %s: %s\n", SMALL, msg);
        exit(1);
    }
}

/* PIL Image.resize((224, 224), BICUBIC), bit for bit */
static void test_resize(const char *src, int i, const char *want_name)
{
    struct npy img = load(src), want = load(want_name);
    int H = (int)img.shape[1], W = (int)img.shape[2];
    uint8_t *got = xmalloc(224 * 224 * 3);
    img_resize_bicubic(got, 224, 224, (uint8_t *)img.data + (size_t)i * H * W * 3, W, H);
    size_t bad = 0;
    for (size_t j = 0; j < 224 * 224 * 3; j++)
        bad += got[j] != ((uint8_t *)want.data)[j];
    CHECK(bad == 0, "%s[%d]: PIL BICUBIC resize to 224 (%zu values differ)", src, i, bad);
    free(got);
    npy_free(&img);
    npy_free(&want);
}

static void test_config(const struct dinov2 *net)
{
    const struct dinov2_config *c = &net->cfg;
    CHECK(c->patch == 14 && c->dim == 64 && c->depth == 2 && c->heads == 2 && c->mlp == 256 &&
          c->grid == 7, "small.pth: shape read from the file (patch %d dim %d depth %d heads %d "
          "mlp %d grid %d)", c->patch, c->dim, c->depth, c->heads, c->mlp, c->grid);
}

static void test_pos(const struct dinov2 *net)
{
    struct npy want = load("small_pos.npy");
    struct dinov2_ws ws;
    dinov2_ws_init(&ws, net, 224, 224);
    test_close("pos_embed 7x7 -> 16x16 (bicubic, scale_factor 16.1/7)", ws.pos, want.data,
               (size_t)257 * 64, 1e-5, 1e-5);
    dinov2_ws_free(&ws);
    npy_free(&want);
}

static void test_features(const struct dinov2 *net, const char *set, const char *golden)
{
    struct npy img = load(set), want = load(golden);
    int N = (int)img.shape[0], H = (int)img.shape[1], W = (int)img.shape[2], D = net->cfg.dim;
    float *f = xmalloc((size_t)N * D * sizeof(float));
    struct dinov2_ws ws;
    dinov2_ws_init(&ws, net, DINOV2_SIZE, DINOV2_SIZE);
    dinov2_forward_u8(net, &ws, f, img.data, N, H, W);
    char name[128];
    snprintf(name, sizeof name, "%s: features of %s", golden, set);
    test_close(name, f, want.data, (size_t)N * D, 1e-4, 1e-4);
    dinov2_ws_free(&ws);
    free(f);
    npy_free(&img);
    npy_free(&want);
}

/* the official layout at full size: the synthetic ViT-L/14 weights that gen_dinov2.py saved
   with torch.save load through the .pth reader to the same bits */
static void test_vitl_pth(const struct dinov2 *synth)
{
    char msg[256];
    struct dinov2 net;
    if (!util_exists(VITL_PTH)) {
        printf("ok %d - # skip %s absent (run tests/fixtures/gen_dinov2.py)\n", ++test_n,
               VITL_PTH);
        return;
    }
    if (dinov2_load(&net, VITL_PTH, 0, msg, sizeof msg) == -1) {
        CHECK(0, "load %s: %s", VITL_PTH, msg);
        return;
    }
    CHECK(memcmp(&net.cfg, &dinov2_vitl14, sizeof net.cfg) == 0,
          "%s: ViT-L/14 read from the file (heads 1024 / 64)", VITL_PTH);
    size_t n = (size_t)(net.norm_b - net.params) + (size_t)net.cfg.dim;
    CHECK(memcmp(net.params, synth->params, n * sizeof(float)) == 0,
          "%s loads the synthetic weights exactly (343 tensors)", VITL_PTH);
    dinov2_free(&net);
}

/* ViT-L/14 with the closed-form weights: 343 tensors, and the features of one image */
static void test_vitl(void)
{
    struct dinov2 net;
    dinov2_synthetic(&net, &dinov2_vitl14);
    CHECK(dinov2_n_tensors(&net.cfg) == 343, "ViT-L/14 has 343 tensors");
    char name[64];
    int64_t s[4];
    CHECK(dinov2_tensor(&net.cfg, 1, name, sizeof name, s) == 3 && strcmp(name, "pos_embed") == 0 &&
          s[1] == 1370 && s[2] == 1024, "pos_embed is (1, 1370, 1024)");
    struct npy img = load("img32.npy");
    struct dinov2_ws ws;
    float f[1024];
    struct npy want = load("vitl_img32_0.npy");
    dinov2_ws_init(&ws, &net, DINOV2_SIZE, DINOV2_SIZE);
    dinov2_forward_u8(&net, &ws, f, img.data, 1, 32, 32);
    test_close("ViT-L/14 synthetic: features of img32[0]", f, want.data, 1024, 1e-4, 1e-4);
    dinov2_ws_free(&ws);
    npy_free(&want);
    npy_free(&img);
    test_vitl_pth(&net);
    dinov2_free(&net);
}

/* the same bits whatever the batch and the thread count: 5 images at once on 2 threads, on
   1 thread, one at a time in reverse order, and 2..4 as a batch of 3 */
static void test_batch_independence(void)
{
    struct dinov2 net;
    load_small(&net, 2);
    struct npy src = load("img32.npy");
    enum { N = 5, D = 64 };
    size_t per = 32 * 32 * 3;
    uint8_t *img = xmalloc(N * per);
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < per; j++)
            img[i * per + j] = (uint8_t)(((uint8_t *)src.data)[i % 3 * per + j] + 53 * (i / 3));
    float f[4][N * D];
    struct dinov2_ws ws;
    int T = nn_get_threads();
    dinov2_ws_init(&ws, &net, DINOV2_SIZE, DINOV2_SIZE);
    nn_set_threads(2);
    dinov2_forward_u8(&net, &ws, f[0], img, N, 32, 32);
    nn_set_threads(1);
    dinov2_forward_u8(&net, &ws, f[1], img, N, 32, 32);
    nn_set_threads(3);
    for (int i = N - 1; i >= 0; i--)
        dinov2_forward_u8(&net, &ws, f[2] + i * D, img + i * per, 1, 32, 32);
    nn_set_threads(2);
    dinov2_forward_u8(&net, &ws, f[3] + 2 * D, img + 2 * per, 3, 32, 32);
    nn_set_threads(T);
    CHECK(memcmp(f[0], f[1], sizeof f[0]) == 0, "features identical on 1 thread");
    CHECK(memcmp(f[0], f[2], sizeof f[0]) == 0, "features identical one image at a time, 3 threads");
    CHECK(memcmp(f[0] + 2 * D, f[3] + 2 * D, 3 * D * sizeof(float)) == 0,
          "features identical in another batch");
    dinov2_ws_free(&ws);
    free(img);
    npy_free(&src);
    dinov2_free(&net);
}

static void test_bad_weights(void)
{
    char msg[256], path[512];
    struct dinov2 net;
    static const char *const bad[] = { "tests/fixtures/bad/dinov2_trunc.pth",
                                       "tests/fixtures/bad/dinov2_missing.pth",
                                       "tests/fixtures/bad/dinov2_register.pth",
                                       "tests/fixtures/bad/metrics_inception_missing.pth",
                                       "tests/fixtures/bad/no_such_file.pth" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        int rc = dinov2_load(&net, bad[i], 0, msg, sizeof msg);
        CHECK(rc == -1 && msg[0] != '\0' && strchr(msg, '\n') == NULL, "%s rejected: %s",
              bad[i], msg);
        if (rc == 0)
            dinov2_free(&net);
    }
    setenv("DINOV2_WEIGHTS", "/nonexistent/w.pth", 1);
    int rc = dinov2_default_weights(path, sizeof path, "bin/score", msg, sizeof msg);
    CHECK(rc == -1 && strstr(msg, "make weights") != NULL, "missing $DINOV2_WEIGHTS: %s", msg);
    setenv("DINOV2_WEIGHTS", SMALL, 1);
    rc = dinov2_default_weights(path, sizeof path, "bin/score", msg, sizeof msg);
    CHECK(rc == 0 && strcmp(path, SMALL) == 0, "DINOV2_WEIGHTS names the file");
    unsetenv("DINOV2_WEIGHTS");
}

int main(int argc, char **argv)
{
    struct dinov2 net;
    nn_set_threads(2);
    if (argc > 1 && strcmp(argv[1], "--determinism") == 0) {
        test_kernel_banner();
        test_batch_independence();
        return test_done();
    }
    test_resize("img32.npy", 0, "pil_img32_0.npy");
    test_resize("img120x90.npy", 0, "pil_img120x90.npy");
    load_small(&net, 2);
    test_config(&net);
    test_pos(&net);
    test_features(&net, "img32.npy", "small_img32.npy");
    test_features(&net, "img120x90.npy", "small_img120x90.npy");
    dinov2_free(&net);
    test_batch_independence();
    test_under_each_kernel(argv, "--determinism");
    test_vitl();
    test_bad_weights();
    return test_done();
}
