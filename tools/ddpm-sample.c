/* ddpm-sample: images from a diffusers UNet2DModel folder with the DDPM or DDIM sampler, as
   DDPMPipeline / DDIMPipeline make them; writes uint8 (N,S,S,C) .npy, streamed batch by batch.
   Pixels: clamp(x/2 + 0.5, 0, 1) * 255 rounded half to even (numpy .round()), as
   numpy_to_pil. Image i draws x_T and then every DDPM step's noise from its own stream,
   rng_seed(seed + i * 0x9E3779B97F4A7C15), so the images do not depend on -n, --batch-size or
   --threads. --closed-form ignores the weights and uses the closed-form ones of unet.h (for
   benchmarks and tests). */
#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "npy.h"
#include "rng.h"
#include "sched.h"
#include "unet.h"
#include "util.h"

static void usage(FILE *f, int status)
{
    fprintf(f, "usage: ddpm-sample --model DIR [-n 100] [--scheduler ddpm|ddim] [--steps N] "
               "[--eta 0] [--seed 0] [--batch-size 16] [-o out.npy] [--init-noise x_T.npy] "
               "[--save-trajectory traj.npy] [--trajectory-every 1] [--check] "
               "[--save-dir DIR] [--closed-form] [--threads 2] [-v]\n");
    exit(status);
}

/* uint8 (B,S,S,C) from x (B,C,S,S) */
static void to_images(unsigned char *img, const float *x, int B, int C, int HW)
{
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++) {
                float v = x[((size_t)b * C + c) * HW + i] / 2 + 0.5f;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                img[((size_t)b * HW + i) * C + c] = (unsigned char)rintf(v * 255.0f);
            }
}

static void write_or_die(struct outfile *o, const char *path, const void *p, size_t n,
                         struct outfile *other)
{
    if (fwrite(p, 1, n, o->f) != n) {
        outfile_abort(o);
        if (other && other->f)
            outfile_abort(other);
        err(1, "%s", path);
    }
}

static int check_model(struct unet *u, const char *dir)
{
    int S = u->cfg.sample_size, C = u->cfg.in_channels;
    size_t n = (size_t)C * S * S;
    float *x = xmalloc(n * sizeof(float)), t = 500;
    for (size_t i = 0; i < n; i++)
        x[i] = sinf(0.01f * (float)i);
    unet_forward(u, NULL, x, &t, 1, 0);
    for (size_t i = 0; i < (size_t)u->cfg.out_channels * S * S; i++)
        if (!isfinite(u->out[i]))
            errx(1, "%s: forward pass gives non-finite values", dir);
    free(x);
    printf("%zu parameters in %d tensors\n", u->n_params, u->n_entries);
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_SCHED = 256, O_STEPS, O_ETA, O_INIT, O_TRAJ, O_TEVERY, O_CHECK, O_SAVEDIR, O_CLOSED };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"num", 1, 0, 'n'}, {"scheduler", 1, 0, O_SCHED},
        {"steps", 1, 0, O_STEPS}, {"eta", 1, 0, O_ETA}, {"seed", 1, 0, 'S'},
        {"batch-size", 1, 0, 'b'}, {"output", 1, 0, 'o'}, {"init-noise", 1, 0, O_INIT},
        {"save-trajectory", 1, 0, O_TRAJ}, {"trajectory-every", 1, 0, O_TEVERY},
        {"check", 0, 0, O_CHECK}, {"save-dir", 1, 0, O_SAVEDIR}, {"closed-form", 0, 0, O_CLOSED},
        {"threads", 1, 0, 't'},
        {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *out = "-", *init = NULL, *traj = NULL, *save_dir = NULL;
    long n = -1, steps = -1, seed = 0, batch = 16, threads = 2, every = 1;
    double eta = 0;
    int verbose = 0, check = 0, ddim = 0, closed = 0, c;
    struct unet u;
    struct sched_config sc;
    struct sched s;
    struct npy noise = {0};
    struct outfile of = {0}, tf = {0};
    struct progress pr;
    char msg[320], path[4096];

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
    nn_blas_setup(argv, verbose);
    while ((c = getopt_long(argc, argv, "m:n:S:b:o:t:vh", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'n': bad = util_parse_long(optarg, 1, 100000000, &n); break;
        case 'S': bad = util_parse_long(optarg, 0, LONG_MAX, &seed); break;
        case 'b': bad = util_parse_long(optarg, 1, 4096, &batch); break;
        case 't': bad = util_parse_long(optarg, 1, 1024, &threads); break;
        case O_STEPS: bad = util_parse_long(optarg, 1, 100000, &steps); break;
        case O_TEVERY: bad = util_parse_long(optarg, 1, 100000, &every); break;
        case O_ETA: bad = util_parse_float(optarg, 0, 100, &eta); break;
        case O_SCHED:
            if (strcmp(optarg, "ddpm") == 0)
                ddim = 0;
            else if (strcmp(optarg, "ddim") == 0)
                ddim = 1;
            else
                bad = 1;
            break;
        case O_INIT: init = optarg; break;
        case O_TRAJ: traj = optarg; break;
        case O_CHECK: check = 1; break;
        case O_SAVEDIR: save_dir = optarg; break;
        case O_CLOSED: closed = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout, 0); break;
        default: usage(stderr, 2);
        }
        if (bad) {
            warnx("bad value: %s", optarg);
            usage(stderr, 2);
        }
    }
    if (optind != argc || model == NULL)
        usage(stderr, 2);
    if (eta > 0 && !ddim) {
        warnx("--eta applies to --scheduler ddim only");
        usage(stderr, 2);
    }
    if (steps < 0)
        steps = ddim ? 50 : 1000;
    nn_set_threads((int)threads);
    util_cleanup_signals();
    if (!check && !save_dir && util_binary_to_tty(out)) /* those two write no samples */
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (traj && util_check_output(traj, msg, sizeof msg) == -1)
        errx(1, "%s: %s", traj, msg);
    if (save_dir && util_check_output_dir(save_dir, msg, sizeof msg) == -1)
        errx(1, "%s: %s", save_dir, msg);

    if (closed) {
        /* benchmarks and tests: the config's shape with the closed-form weights of unet.h */
        struct unet_config uc;
        snprintf(path, sizeof path, "%s/config.json", model);
        if (unet_config_load(&uc, path, msg, sizeof msg) == -1 ||
            unet_init(&u, &uc, msg, sizeof msg) == -1)
            errx(1, "%s: %s", path, msg);
        unet_init_closed_form(&u);
    } else if (unet_load_dir(&u, model, msg, sizeof msg) == -1) {
        errx(1, "%s: %s", model, msg);
    }
    snprintf(path, sizeof path, "%s/scheduler_config.json", model);
    if (sched_config_load(&sc, path, msg, sizeof msg) == -1)
        errx(1, "%s: %s", path, msg);
    if (check) {
        check_model(&u, model);
        unet_free(&u);
        if (fclose(stdout) == EOF)
            err(1, "stdout");
        return 0;
    }
    if (save_dir) {
        if (unet_save_dir(&u, save_dir, msg, sizeof msg) == -1)
            errx(1, "%s: %s", save_dir, msg);
        snprintf(path, sizeof path, "%s/scheduler_config.json", save_dir);
        if (sched_config_save(&sc, path, msg, sizeof msg) == -1)
            errx(1, "%s: %s", path, msg);
        unet_free(&u);
        return 0;
    }
    if (u.cfg.in_channels != u.cfg.out_channels)
        errx(1, "%s: in_channels %d != out_channels %d: not an epsilon model", model,
             u.cfg.in_channels, u.cfg.out_channels);
    if (sched_init(&s, &sc, ddim ? SCHED_DDIM : SCHED_DDPM, (int)steps, (float)eta, msg,
                   sizeof msg) == -1)
        errx(1, "%s: %s", model, msg);

    int S = u.cfg.sample_size, C = u.cfg.in_channels, HW = S * S;
    size_t chw = (size_t)C * HW;
    if (init) {
        if (npy_load(init, NULL, &noise, msg, sizeof msg) == -1)
            errx(1, "%s: %s", init, msg);
        if (noise.dtype != NPY_F32 || noise.ndim != 4 || noise.shape[1] != C ||
            noise.shape[2] != S || noise.shape[3] != S)
            errx(1, "%s: want float32 (N,%d,%d,%d), got %s with %d dims", init, C, S, S,
                 npy_dtype_name(noise.dtype), noise.ndim);
        if (n > 0 && n != noise.shape[0])
            errx(1, "%s: has %lld images, -n asks for %ld", init, (long long)noise.shape[0], n);
        n = (long)noise.shape[0];
    }
    if (n < 0)
        n = 100;
    if (batch > n)
        batch = n;

    /* kept states: x_T, then x after every k-th step, and the final x_0 */
    int n_keep = 1 + s.n_steps / (int)every + (s.n_steps % every != 0);
    int64_t shape[4] = {n, S, S, C}, tshape[4] = {(int64_t)n * n_keep, C, S, S};
    float *x = xmalloc((size_t)batch * chw * sizeof(float));
    float *eps = xmalloc((size_t)batch * chw * sizeof(float));
    float *z = xmalloc((size_t)batch * chw * sizeof(float));
    float *tv = xmalloc((size_t)batch * sizeof(float));
    float *keep = traj ? xmalloc((size_t)batch * n_keep * chw * sizeof(float)) : NULL;
    unsigned char *img = xmalloc((size_t)batch * chw);
    struct rng *r = xmalloc((size_t)batch * sizeof *r);

    unet_alloc_acts(&u, (int)batch);
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (npy_write_header(of.f, NPY_U8, 4, shape, msg, sizeof msg) == -1) {
        outfile_abort(&of);
        errx(1, "%s: %s", out, msg);
    }
    if (traj) {
        if (outfile_open(&tf, traj, msg, sizeof msg) == -1) {
            outfile_abort(&of);
            errx(1, "%s: %s", traj, msg);
        }
        if (npy_write_header(tf.f, NPY_F32, 4, tshape, msg, sizeof msg) == -1) {
            outfile_abort(&of);
            outfile_abort(&tf);
            errx(1, "%s: %s", traj, msg);
        }
    }
    if (verbose)
        fprintf(stderr, "ddpm-sample: %zu parameters, %s %d steps, %ld images, batch %ld\n",
                u.n_params, ddim ? "DDIM" : "DDPM", s.n_steps, n, batch);
    progress_init(&pr, "ddpm-sample", "steps", ((n + batch - 1) / batch) * s.n_steps);
    long done = 0;
    for (long i0 = 0; i0 < n; i0 += batch) {
        int B = (int)(n - i0 < batch ? n - i0 : batch), kept = 0;
        for (int b = 0; b < B; b++) {
            rng_seed(&r[b], (uint64_t)seed + (uint64_t)(i0 + b) * 0x9E3779B97F4A7C15ULL);
            if (init)
                memcpy(x + b * chw, (float *)noise.data + (i0 + b) * chw, chw * sizeof(float));
            else
                rng_normal_fill(&r[b], x + b * chw, chw);
        }
        if (keep)
            for (int b = 0; b < B; b++)
                memcpy(keep + ((size_t)b * n_keep + kept) * chw, x + b * chw, chw * sizeof(float));
        kept++;
        for (int i = 0; i < s.n_steps; i++) {
            for (int b = 0; b < B; b++)
                tv[b] = (float)s.timesteps[i];
            unet_forward(&u, eps, x, tv, B, (int)i0);
            if (sched_step_needs_noise(&s, i))
                for (int b = 0; b < B; b++)
                    rng_normal_fill(&r[b], z + b * chw, chw);
            sched_step(&s, i, x, eps, z, (size_t)B * chw);
            if (keep && ((i + 1) % every == 0 || i + 1 == s.n_steps)) {
                for (int b = 0; b < B; b++)
                    memcpy(keep + ((size_t)b * n_keep + kept) * chw, x + b * chw,
                           chw * sizeof(float));
                kept++;
            }
            if (verbose)
                progress_update(&pr, ++done, NULL);
        }
        to_images(img, x, B, C, HW);
        write_or_die(&of, out, img, (size_t)B * chw, &tf);
        if (keep)
            write_or_die(&tf, traj, keep, (size_t)B * n_keep * chw * sizeof(float), &of);
    }
    if (verbose)
        progress_done(&pr);
    if (traj && outfile_commit(&tf, msg, sizeof msg) == -1) {
        outfile_abort(&of);
        errx(1, "%s: %s", traj, msg);
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    free(x);
    free(eps);
    free(z);
    free(tv);
    free(keep);
    free(img);
    free(r);
    npy_free(&noise);
    sched_free(&s);
    unet_free(&u);
    return 0;
}
