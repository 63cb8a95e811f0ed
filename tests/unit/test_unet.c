/* UNet2DModel against the torch re-implementation in tests/fixtures/gen_unet.py: a tiny random
   model (four folders: safetensors/.bin x modern/legacy attention names) and the full
   ddpm-cifar10-32 shape with closed-form weights; DDIM and DDPM trajectories from fixed noise;
   config and weight errors; save and reload. Run from the repo root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "test_kernels.h"
#include "io/json.h"
#include "nn/nn.h"
#include "io/npy.h"
#include "util/rng.h"
#include "nn/sched.h"
#include "io/st.h"
#include "models/unet.h"
#include "util/util.h"

#define FIX "tests/fixtures/unet/"

static struct npy load(const char *path)
{
    struct npy t;
    char msg[256];
    if (npy_load(path, NULL, &t, msg, sizeof msg) == -1) {
        printf("# %s: %s\n", path, msg);
        exit(1);
    }
    return t;
}

static void check_eps(struct unet *u, const char *name, const float *x, const float *t, int B,
                      const char *want_path, double atol)
{
    struct npy want = load(want_path);
    unet_forward(u, NULL, x, t, B);
    test_close(name, u->acts.out, want.data, (size_t)npy_count(&want), atol, 1e-4);
    npy_free(&want);
}

static int parse_config(struct unet_config *c, const char *text, char *msg, size_t msglen)
{
    struct json *j = json_parse(text, strlen(text), msg, msglen);
    int rc;
    if (j == NULL)
        return -1;
    rc = unet_config_parse(c, j, msg, msglen);
    json_free(j);
    return rc;
}

static void test_tiny(void)
{
    static const char *dirs[] = {"tiny_st_modern", "tiny_st_legacy", "tiny_bin_modern",
                                 "tiny_bin_legacy"};
    struct npy x = load(FIX "tiny_x.npy"), t3 = load(FIX "tiny_t3.npy");
    float t1 = 1;
    for (int d = 0; d < 4; d++) {
        struct unet u;
        char path[256], msg[256], name[128];
        snprintf(path, sizeof path, FIX "%s", dirs[d]);
        int rc = unet_load_dir(&u, path, msg, sizeof msg);
        CHECK(rc == 0, "load %s", dirs[d]);
        if (rc) {
            printf("# %s\n", msg);
            continue;
        }
        CHECK(u.n_params == 45259, "%s: %zu parameters", dirs[d], u.n_params);
        unet_alloc_acts(&u, 3);
        snprintf(name, sizeof name, "%s: eps, batch 3, t 0/500/999", dirs[d]);
        check_eps(&u, name, x.data, t3.data, 3, FIX "tiny_eps3.npy", 1e-4);
        snprintf(name, sizeof name, "%s: eps, batch 1, t 1", dirs[d]);
        check_eps(&u, name, x.data, &t1, 1, FIX "tiny_eps1.npy", 1e-4);
        unet_free(&u);
    }
    npy_free(&x);
    npy_free(&t3);
}

static void trajectory(struct unet *u, const struct sched_config *sc, enum sched_kind kind,
                       int steps, const char *want_path, const char *noise_path)
{
    struct npy xT = load(FIX "tiny_xT.npy"), want = load(want_path), z = {0};
    struct sched s;
    char msg[256];
    size_t n = (size_t)npy_count(&xT);
    float *x = xT.data, *eps = xmalloc(n * sizeof(float)), tv[2];
    if (noise_path)
        z = load(noise_path);
    if (sched_init(&s, sc, kind, steps, 0, msg, sizeof msg) == -1) {
        CHECK(0, "sched_init: %s", msg);
        return;
    }
    for (int i = 0; i < s.n_steps; i++) {
        tv[0] = tv[1] = (float)s.timesteps[i];
        unet_forward(u, eps, x, tv, 2);
        sched_step(&s, i, x, eps, noise_path ? (float *)z.data + i * n : NULL, n);
    }
    test_close(want_path, x, want.data, n, 1e-3, 1e-3);
    sched_free(&s);
    free(eps);
    npy_free(&xT);
    npy_free(&want);
    npy_free(&z);
}

static void test_trajectories(void)
{
    struct unet u;
    struct sched_config sc;
    char msg[256];
    if (unet_load_dir(&u, FIX "tiny_st_legacy", msg, sizeof msg) == -1 ||
        sched_config_load(&sc, FIX "tiny_st_legacy/scheduler_config.json", msg, sizeof msg) == -1) {
        CHECK(0, "trajectory model: %s", msg);
        return;
    }
    unet_alloc_acts(&u, 2);
    trajectory(&u, &sc, SCHED_DDIM, 10, FIX "tiny_ddim10.npy", NULL);
    trajectory(&u, &sc, SCHED_DDPM, 20, FIX "tiny_ddpm20.npy", FIX "tiny_ddpm20_noise.npy");
    unet_free(&u);
}

static void test_full(void)
{
    struct unet_config c;
    struct unet u;
    struct npy x = load(FIX "full_x.npy"), te = load(FIX "full_temb.npy");
    float t3[3] = {0, 500, 999}, t1 = 1, t4[4] = {0, 1, 500, 999};
    char msg[256];
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        CHECK(0, "cifar10 init: %s", msg);
        return;
    }
    CHECK(u.n_params == 35746307, "cifar10: %zu parameters (want 35746307)", u.n_params);
    CHECK(u.pt.n == 328, "cifar10: %d tensors (want 328)", u.pt.n);
    {
        float emb[4 * 128];
        nn_timestep_embedding(emb, t4, 4, 128, 0, 1, 10000, 1);
        test_close("cifar10 timestep embedding [sin, cos], shift 1", emb, te.data, 4 * 128,
                   1e-6, 1e-5);
    }
    unet_init_closed_form(&u);
    unet_alloc_acts(&u, 3);
    check_eps(&u, "cifar10 closed form: eps, batch 3, t 0/500/999", x.data, t3, 3,
              FIX "full_eps3.npy", 1e-4);
    check_eps(&u, "cifar10 closed form: eps, batch 1, t 1", (float *)x.data + 3 * 32 * 32, &t1,
              1, FIX "full_eps1.npy", 1e-4);
    unet_free(&u);
    npy_free(&x);
    npy_free(&te);
}

static void test_config_errors(void)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"sample_size\": 16, \"block_out_channels\": [8, 16], \"down_block_types\": "
         "[\"DownBlock2D\", \"CrossAttnDownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", "
         "\"UpBlock2D\"], \"norm_num_groups\": 4}",
         "down_block_types[1]: unsupported block type 'CrossAttnDownBlock2D'"},
        {"{\"sample_size\": 16, \"block_out_channels\": [8, 16], \"down_block_types\": "
         "[\"DownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\"], "
         "\"norm_num_groups\": 4}",
         "up_block_types: 1 block types for 2 block_out_channels"},
        {"{\"sample_size\": 16, \"act_fn\": \"gelu\"}", "act_fn: unsupported value 'gelu'"},
        {"{\"sample_size\": 16, \"time_embedding_type\": \"fourier\"}",
         "time_embedding_type: unsupported value 'fourier'"},
        {"{\"sample_size\": 16, \"resnet_time_scale_shift\": \"scale_shift\"}",
         "resnet_time_scale_shift: unsupported value"},
        {"{\"block_out_channels\": [8, 16]}", "sample_size: missing"},
        {"{\"sample_size\": 16, \"layers_per_block\": 2.5}", "layers_per_block: want an integer"},
        {"{\"sample_size\": 16, \"class_embed_type\": \"timestep\"}", "class_embed_type: unsupported"},
        {"[1, 2]", "config: want a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct unet_config c;
        char msg[256] = "";
        int rc = parse_config(&c, cases[i].json, msg, sizeof msg);
        CHECK(rc == -1 && strncmp(msg, cases[i].want, strlen(cases[i].want)) == 0,
              "config error: %s", cases[i].want);
        if (!(rc == -1 && strncmp(msg, cases[i].want, strlen(cases[i].want)) == 0))
            printf("# got: %s\n", msg);
    }
    {
        struct unet_config c;
        struct unet u;
        char msg[256] = "";
        int rc = parse_config(&c, "{\"sample_size\": 16, \"block_out_channels\": [8, 12], "
                                  "\"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"], "
                                  "\"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"], "
                                  "\"norm_num_groups\": 8}", msg, sizeof msg);
        if (rc == 0)
            rc = unet_init(&u, &c, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, "norm_num_groups"), "groups must divide channels: %s", msg);
    }
}

static void test_weight_errors(void)
{
    struct unet_config c;
    struct unet u;
    struct st_file f;
    char msg[256] = "";
    int rc;
    /* the tiny checkpoint against the tiny config with wider second level */
    if (unet_config_load(&c, FIX "tiny_st_modern/config.json", msg, sizeof msg) == -1 ||
        st_open(&f, FIX "tiny_st_modern/diffusion_pytorch_model.safetensors", msg, sizeof msg) == -1) {
        CHECK(0, "weights: %s", msg);
        return;
    }
    c.block_out_channels[1] = 24;
    c.attention_head_dim = 8;
    rc = unet_init(&u, &c, msg, sizeof msg);
    CHECK(rc == 0, "wider config inits");
    if (rc == 0) {
        rc = unet_load_state(&u, &f, msg, sizeof msg);
        CHECK(rc == -1 && strstr(msg, "down_blocks.1."), "mis-shaped weights: %s", msg);
        unet_free(&u);
    }
    /* one level fewer: tensors in the file no entry names */
    c.n_levels = 1;
    c.block_out_channels[0] = 8;
    c.up_attn[0] = 0;
    rc = unet_init(&u, &c, msg, sizeof msg);
    if (rc == 0) {
        rc = unet_load_state(&u, &f, msg, sizeof msg);
        CHECK(rc == -1, "unexpected tensors: %s", msg);
        unet_free(&u);
    }
    st_close(&f);
    rc = unet_load_dir(&u, "tests/fixtures/bad/unet_badblock", msg, sizeof msg);
    CHECK(rc == -1 && strstr(msg, "down_block_types[0]"), "bad model dir: %s", msg);
    rc = unet_load_dir(&u, "tests/fixtures/bad/unet_noweights", msg, sizeof msg);
    CHECK(rc == -1 && strstr(msg, "diffusion_pytorch_model"), "no weights: %s", msg);
}

static void test_save_reload(void)
{
    struct unet u, v;
    char msg[256], dir[] = "/tmp/test_unet_XXXXXX", path[300];
    if (mkdtemp(dir) == NULL || unet_load_dir(&u, FIX "tiny_st_modern", msg, sizeof msg) == -1) {
        CHECK(0, "save: setup");
        return;
    }
    snprintf(path, sizeof path, "%s/m", dir);
    CHECK(unet_save_dir(&u, path, msg, sizeof msg) == 0, "save_dir");
    CHECK(unet_load_dir(&v, path, msg, sizeof msg) == 0, "reload saved dir");
    CHECK(v.n_params == u.n_params && memcmp(&u.cfg, &v.cfg, sizeof u.cfg) == 0 &&
              memcmp(u.params, v.params, u.n_params * sizeof(float)) == 0,
          "saved model equals the loaded one");
    unet_free(&v);
    unet_free(&u);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        printf("# could not remove %s\n", dir);
}

/* eps of x (N,3,32,32), t (N) in batches of B, into e */
static void run_batches(struct unet *u, float *e, const float *x, const float *t, int N, int B,
                        int threads)
{
    size_t n = 3 * 32 * 32;
    nn_set_threads(threads);
    for (int i = 0; i < N; i += B)
        unet_forward(u, e + i * n, x + i * n, t + i, N - i < B ? N - i : B);
    nn_set_threads(2);
}

/* 1 when unet_forward of a batch of B aborts (its assert), run in a child process */
static int forward_aborts(struct unet *u, int B)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY); /* the assert's message is expected */
        float *xb = xcalloc((size_t)B * 3 * 32 * 32, sizeof(float)), *tb = xcalloc(B, 4);
        if (fd >= 0)
            dup2(fd, 2);
        alarm(120); /* a forward that runs (OpenMP after fork may hang) fails, not hangs */
        unet_forward(u, NULL, xb, tb, B);
        _exit(0);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return 0;
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

/* unet_alloc_infer's layout gives the training layout's bits (want: its eps of images
   first..first+N-1), whatever the weight cache holds (nothing, some convs, all), the batch
   and the threads; its forward never reallocates, and refuses a batch above its size. */
static void test_infer_layout(struct unet *u, const float *want, const float *x,
                              const float *t, int N)
{
    static const char *what[3] = {"no", "a 24 MiB", "the whole"};
    size_t n = 3 * 32 * 32, bare = 0;
    float *e = xmalloc(N * n * sizeof(float));
    for (int k = 0; k < 3; k++) {
        /* k = 1: 24 MiB more than what the layout without a cache takes */
        unet_alloc_infer(u, N, k == 0 ? 0 : k == 1 ? bare + ((size_t)24 << 20) : SIZE_MAX);
        if (k == 0)
            bare = (u->n_params + u->acts.n + u->acts.n_scratch + u->wino.n_tmp) * sizeof(float);
        float *acts = u->acts.buf, *scr = u->acts.scratch, *wino = u->wino.buf;
        float *tmp = u->wino.tmp;
        size_t n_acts = u->acts.n, n_scr = u->acts.n_scratch;
        CHECK(k == 0 ? wino == NULL && tmp != NULL : k == 1 ? wino && tmp : wino && !tmp,
              "inference layout, %s weight cache: cached and per-use transforms as asked",
              what[k]);
        run_batches(u, e, x, t, N, N, 2);
        CHECK(memcmp(e, want, N * n * sizeof(float)) == 0,
              "inference layout, %s weight cache, one batch == training layout, bitwise",
              what[k]);
        run_batches(u, e, x, t, N, k == 1 ? 1 : 3, k == 2 ? 2 : 1);
        CHECK(memcmp(e, want, N * n * sizeof(float)) == 0,
              "inference layout, %s weight cache, smaller batches == training layout, bitwise",
              what[k]);
        CHECK(u->acts.buf == acts && u->acts.scratch == scr && u->wino.buf == wino &&
                  u->wino.tmp == tmp &&
                  u->acts.n == n_acts && u->acts.n_scratch == n_scr && u->acts.max_batch == N,
              "inference layout, %s weight cache: forwards reallocate nothing", what[k]);
    }
    CHECK(forward_aborts(u, N + 1), "inference layout: a batch above its size aborts");
    size_t infer_acts = u->acts.n;
    unet_alloc_acts(u, N);
    CHECK(!u->acts.infer && u->acts.n > 2 * infer_acts,
          "unet_alloc_acts after unet_alloc_infer: the training layout (%zu floats) again, over "
          "twice the inference one (%zu)", u->acts.n, infer_acts);
    run_batches(u, e, x, t, N, N, 2);
    CHECK(memcmp(e, want, N * n * sizeof(float)) == 0,
          "training layout again after the inference one, bitwise");
    free(e);
}

/* An image's result is bit-identical whatever its batch and whatever the thread count: the
   full ddpm-cifar10-32 shape (closed-form weights), 4 images as one batch, in batches of 2 on
   one thread, and one at a time. */
static void test_determinism(void)
{
    struct unet_config c;
    struct unet u;
    struct rng r;
    char msg[256];
    enum { N = 4 };
    size_t n = 3 * 32 * 32;
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        CHECK(0, "cifar10 init: %s", msg);
        return;
    }
    unet_init_closed_form(&u);
    unet_alloc_acts(&u, N);
    CHECK(forward_aborts(&u, N + 1), "training layout: a batch above its size aborts");
    float *x = xmalloc(N * n * sizeof(float)), t[N] = { 999, 500, 1, 250 };
    float *a = xmalloc(N * n * sizeof(float)), *b = xmalloc(N * n * sizeof(float));
    rng_seed(&r, 3);
    rng_normal_fill(&r, x, N * n);
    run_batches(&u, a, x, t, N, N, 2);
    run_batches(&u, b, x, t, N, 2, 1);
    CHECK(memcmp(a, b, N * n * sizeof(float)) == 0,
          "cifar10: batches of 2 on 1 thread == one batch on 2, bitwise");
    run_batches(&u, b, x, t, N, 1, 2);
    CHECK(memcmp(a, b, N * n * sizeof(float)) == 0,
          "cifar10: one image at a time == one batch, bitwise");
    test_infer_layout(&u, a, x, t, N);
    free(x), free(a), free(b);
    unet_free(&u);
}

int main(int argc, char **argv)
{
    nn_set_threads(2);
    if (argc > 1 && strcmp(argv[1], "--determinism") == 0) {
        test_kernel_banner();
        test_determinism();
        return test_done();
    }
    test_determinism();
    test_under_each_kernel(argv, "--determinism");
    test_tiny();
    test_trajectories();
    test_full();
    test_config_errors();
    test_weight_errors();
    test_save_reload();
    return test_done();
}
