/* ddpm-sample: images from a diffusers UNet2DModel folder with the DDPM or DDIM sampler, as
   DDPMPipeline / DDIMPipeline make them, or one of the faster diffusers schedulers (sampler.h); writes uint8 (N,S,S,C) .npy, streamed batch by batch.
   Pixels: clamp(x/2 + 0.5, 0, 1) * 255 rounded half to even (numpy .round()), as
   numpy_to_pil (nn_image.h). Image i draws x_T and then every DDPM step's noise from its own
   stream, rng_seed(seed + i * 0x9E3779B97F4A7C15) (then each noisy step's noise), so the
   images do not depend on -n, --batch-size or --threads, and --shard I/N writes exactly its
   slice of the full run. --closed-form ignores the weights and uses the closed-form ones of
   unet.h (for benchmarks and tests). */
#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_image.h"
#include "io/npy.h"
#include "util/opt.h"
#include "util/par.h"
#include "util/rng.h"
#include "util/shard.h"
#include "nn/sampler.h"
#include "nn/sched.h"
#include "models/unet.h"
#include "models/unet_sampling.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: ddpm-sample --model DIR [-n N] [--scheduler S] [--steps N] [--eta E]\n"
    "                   [--solver-order 1|2|3] [--timestep-spacing leading|linspace|trailing]\n"
    "                   [--prk] [--use-clipped-model-output]\n"
    "                   [-S SEED] [-b N] [-o OUT.npy] [--init-noise X_T.npy]\n"
    "                   [--save-trajectory T.npy [--trajectory-every K]] [--closed-form]\n"
    "                   [--shard I/N] [-t N] [-v]\n"
    "       ddpm-sample --model DIR --check | --save-dir OUTDIR\n";

static const char help[] =
    "\n"
    "Samples images from a diffusers UNet2DModel folder (config.json, the weights as\n"
    "diffusion_pytorch_model.safetensors or .bin, scheduler_config.json) as DDPMPipeline\n"
    "and DDIMPipeline do, and writes them as uint8 (N,S,S,C) .npy (S: the model's\n"
    "sample_size), batch by batch. Image i's noise depends only on --seed and i, so the\n"
    "images do not depend on -n, --batch-size or --threads.\n"
    "\n"
    "  -m, --model DIR          the model folder (required)\n"
    "  -n, --num N              images to make (default 100; with --init-noise its N)\n"
    "  --scheduler S            ddpm (default), ddim, or, as diffusers 0.26 to 0.40 with\n"
    "                           their class defaults: dpm-solver++ (DPMSolverMultistep,\n"
    "                           order 2), sde-dpm-solver++ (its SDE form, draws noise),\n"
    "                           unipc (UniPCMultistep, bh2, order 2), pndm (PLMS),\n"
    "                           euler (EulerDiscrete), euler-a (EulerAncestralDiscrete,\n"
    "                           draws noise); only ddpm and ddim clip x0 (clip_sample)\n"
    "  --steps N                denoising steps (default 1000 for ddpm, 50 for ddim, 20\n"
    "                           for the others); a count whose timesteps repeat (1000\n"
    "                           for dpm-solver++ and unipc) is refused\n"
    "  --eta E                  DDIM's eta (default 0; ddim only)\n"
    "  --use-clipped-model-output  ddim: the step's noise term recomputed from the\n"
    "                           clipped x0 (DDIMPipeline's use_clipped_model_output; off\n"
    "                           by default, as there): under-trained models give pictures\n"
    "                           instead of speckle\n"
    "  --solver-order K         dpm-solver++, unipc: 1, 2 (default) or 3;\n"
    "                           sde-dpm-solver++: 1 or 2\n"
    "  --timestep-spacing SP    leading, linspace or trailing (default: the scheduler's:\n"
    "                           linspace for dpm-solver++, sde-dpm-solver++, unipc,\n"
    "                           euler, euler-a; leading for pndm; scheduler_config.json's\n"
    "                           for ddpm and ddim)\n"
    "  --prk                    pndm: the Runge-Kutta warm-up (skip_prk_steps false,\n"
    "                           steps + 9 model calls) instead of PLMS's (steps + 1)\n"
    "  -S, --seed S             seed (default 0)\n"
    "  -b, --batch-size N       images per forward pass (default 16)\n"
    "  -o, --output FILE        output .npy (default -: stdout)\n"
    "  --init-noise FILE        start from this float32 (N,C,S,S) x_T instead of noise\n"
    "                           drawn from --seed (times init_noise_sigma for euler)\n"
    "  --save-trajectory FILE   also write float32 (N*K,C,S,S): per image x_T, x after\n"
    "                           every --trajectory-every model calls, and the final x_0\n"
    "  --trajectory-every K     (default 1: every step)\n"
    "  --check                  load the model, run one forward pass, print\n"
    "                           'P parameters in T tensors' and exit; samples nothing\n"
    "  --save-dir OUTDIR        write the loaded model as a diffusers folder\n"
    "                           (safetensors, current attention names) and exit:\n"
    "                           converts a .bin or legacy folder; samples nothing\n"
    "  --closed-form            ignore the weights file and use closed-form weights of\n"
    "                           config.json's shape (benchmarks, tests): the images are\n"
    "                           meaningless\n"
    "  --shard I/N              make only shard I (from 0) of N: the images whose index\n"
    "                           falls in the I-th of N contiguous ranges of 0..N-1 (sizes\n"
    "                           differ by at most one), the same bytes as that slice of\n"
    "                           the full run; npycat joins the shards in order\n"
    "  -t, --threads N          threads (default: $OMP_NUM_THREADS, else 2)\n"
    "  -v, --verbose            settings and progress on stderr\n"
    "  -h, --help               this text\n"
    "\n"
    "Under mpirun -np K, rank r makes the r-th of K contiguous ranges of the images and\n"
    "rank 0 writes them all to -o FILE (not stdout): the bytes of a 1-process run.\n"
    "\n"
    "Example:\n"
    "  ddpm-sample --model weights/ddpm-cifar10-32 -n 100 --scheduler ddim --steps 50 \\\n"
    "      -o samples.npy\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

/* the temporary outputs go at exit (nn/tool.h) */
static void write_or_die(struct outfile *o, const char *path, const void *p, size_t n)
{
    if (fwrite(p, 1, n, o->f) != n)
        err(1, "%s", path);
}

/* The UNet's memory for sampling: parameters, activations and scratch, and as many cached
   Winograd weight transforms as fit (unet_alloc_infer). On google/ddpm-cifar10-32 at batch
   16 that caches the convs on 4x4 maps, where a transform at every use would cost most next
   to the GEMMs, and keeps the peak near 500 MB, below PyTorch's 603; transforming the rest
   at every step costs about 5% of a forward's CPU (README, "Start-up and huge pages"). */
#define UNET_MEM_BYTES ((size_t)500 * 1000000)
/* At batch 1 (interactive sampling) the activations are small and a forward is mostly its
   3x3 convs' GEMMs, next to which a transform at every use costs most: 640 MB caches every
   conv of google/ddpm-cifar10-32 (457 MB of transforms), about 1.2x the images per CPU-second
   of 500 MB's cache, and the peak stays below the PyTorch script's 657 MB at batch 1 (README,
   "Start-up and huge pages"). */
#define UNET_MEM_BYTES_B1 ((size_t)640 * 1000000)

static int check_model(struct unet *u, const char *dir)
{
    int S = u->cfg.sample_size, C = u->cfg.in_channels;
    size_t n = (size_t)C * S * S;
    float *x = xmalloc(n * sizeof(float)), t = 500;
    unet_alloc_infer(u, 1, UNET_MEM_BYTES);
    for (size_t i = 0; i < n; i++)
        x[i] = sinf(0.01f * (float)i);
    unet_forward(u, NULL, x, &t, 1);
    for (size_t i = 0; i < (size_t)u->cfg.out_channels * S * S; i++)
        if (!isfinite(u->acts.out[i]))
            errx(1, "%s: forward pass gives non-finite values", dir);
    free(x);
    printf("%zu parameters in %d tensors\n", u->n_params, u->pt.n);
    return 0;
}

/* what the sampling loop keeps and shows after each step (unet_sampling_fn) */
struct step_ctx {
    float *keep;        /* --save-trajectory: (B, n_keep, C,S,S) of the batch, or NULL */
    int n_keep, kept;
    size_t chw;
    int every, n_calls, verbose;
    struct progress *pr;
    long done;          /* model calls of every batch so far (-v) */
};

/* kept states: x_T (i = -1), then x after every k-th step, and the final x_0 */
static void on_step(void *p, int i, const float *x, int B)
{
    struct step_ctx *c = p;
    if (c->keep && (i < 0 || (i + 1) % c->every == 0 || i + 1 == c->n_calls)) {
        for (int b = 0; b < B; b++)
            memcpy(c->keep + ((size_t)b * c->n_keep + c->kept) * c->chw, x + b * c->chw,
                   c->chw * sizeof(float));
        c->kept++;
    }
    if (c->verbose && i >= 0)
        progress_update(c->pr, ++c->done, NULL);
}

int main(int argc, char **argv)
{
    enum { O_SCHED = 256, O_STEPS, O_ETA, O_INIT, O_TRAJ, O_TEVERY, O_CHECK, O_SAVEDIR, O_CLOSED,
           O_ORDER, O_SPACING, O_PRK, O_SHARD, O_CLIPEPS };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"num", 1, 0, 'n'}, {"scheduler", 1, 0, O_SCHED},
        {"steps", 1, 0, O_STEPS}, {"eta", 1, 0, O_ETA}, {"seed", 1, 0, 'S'},
        {"batch-size", 1, 0, 'b'}, {"output", 1, 0, 'o'}, {"init-noise", 1, 0, O_INIT},
        {"save-trajectory", 1, 0, O_TRAJ}, {"trajectory-every", 1, 0, O_TEVERY},
        {"check", 0, 0, O_CHECK}, {"save-dir", 1, 0, O_SAVEDIR}, {"closed-form", 0, 0, O_CLOSED},
        {"shard", 1, 0, O_SHARD},
        {"threads", 1, 0, 't'}, {"solver-order", 1, 0, O_ORDER},
        {"timestep-spacing", 1, 0, O_SPACING}, {"prk", 0, 0, O_PRK},
        {"use-clipped-model-output", 0, 0, O_CLIPEPS},
        {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *out = "-", *init = NULL, *traj = NULL, *save_dir = NULL;
    long n = -1, steps = -1, seed = 0, batch = 16, threads = util_threads_default(), every = 1, order = 0;
    double eta = 0;
    static const char *const spacing_names[] = {"leading", "linspace", "trailing"};
    int verbose = 0, check = 0, kind = SAMPLER_DDPM, closed = 0, spacing = -1, prk = 0, c;
    int clip_eps = 0;
    int shard = 0, n_shards = 1;
    struct opt op;
    struct unet u;
    struct sched_config sc;
    struct sampler s;
    struct sampler_opts so;
    struct npy noise = {0};
    struct outfile of = {0}, tf = {0};
    struct par_out pof, ptf;
    struct progress pr;
    char msg[TOOL_MSG], path[4096];

    /* before the options: under mpirun, ranks > 0 wait for rank 0's checks (usage errors once) */
    static const char shortopts[] = "m:n:S:b:o:t:vh";
    if (tool_init_blas(&argc, &argv,
                       &(struct tool){.mpi = 1, .verbose = opt_seen(argc, argv, shortopts, lo, 'v')},
                       msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    opt_init(&op, shortopts, lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'n': bad = opt_long(&op, 1, 100000000, &n); break;
        case 'S': bad = opt_long(&op, 0, LONG_MAX, &seed); break;
        case 'b': bad = opt_long(&op, 1, 4096, &batch); break;
        case 't': bad = opt_long(&op, 1, 1024, &threads); break;
        case O_STEPS: bad = opt_long(&op, 1, 100000, &steps); break;
        case O_TEVERY: bad = opt_long(&op, 1, 100000, &every); break;
        case O_ETA: bad = opt_double(&op, 0, 100, &eta); break;
        case O_SCHED: bad = opt_choice(&op, sampler_names, SAMPLER_N_KINDS, &kind); break;
        case O_ORDER: bad = opt_long(&op, 1, 3, &order); break;
        case O_SPACING: bad = opt_choice(&op, spacing_names, 3, &spacing); break;
        case O_PRK: prk = 1; break;
        case O_CLIPEPS: clip_eps = 1; break;
        case O_INIT: init = optarg; break;
        case O_TRAJ: traj = optarg; break;
        case O_CHECK: check = 1; break;
        case O_SAVEDIR: save_dir = optarg; break;
        case O_CLOSED: closed = 1; break;
        case O_SHARD:
            bad = shard_parse(optarg, &shard, &n_shards) ? opt_bad(&op, SHARD_WANT) : 0;
            break;
        case 'v': verbose = 1; break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
        if (bad)
            usage(2, op.msg);
    }
    if (optind != argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%.200s'", argv[optind]);
        usage(2, msg);
    }
    if (model == NULL)
        usage(2, "--model DIR is required");
    if (eta > 0 && kind != SAMPLER_DDIM)
        usage(2, "--eta applies to --scheduler ddim only");
    if (order && kind != SAMPLER_DPM && kind != SAMPLER_SDE_DPM && kind != SAMPLER_UNIPC)
        usage(2, "--solver-order applies to dpm-solver++, sde-dpm-solver++ and unipc only");
    if (order == 3 && kind == SAMPLER_SDE_DPM)
        usage(2, "--solver-order: sde-dpm-solver++ has orders 1 and 2 only");
    if (prk && kind != SAMPLER_PNDM)
        usage(2, "--prk applies to --scheduler pndm only");
    if (clip_eps && kind != SAMPLER_DDIM)
        usage(2, "--use-clipped-model-output applies to --scheduler ddim only");
    if (steps < 0)
        steps = kind == SAMPLER_DDPM ? 1000 : kind == SAMPLER_DDIM ? 50 : 20;
    nn_set_threads((int)threads);
    if (!check && !save_dir && par_check_output(out) == -1)
        errx(1, PAR_STDOUT_MSG);
    if (!check && !save_dir && util_binary_to_tty(out)) /* those two write no samples */
        errx(1, UTIL_TTY_MSG);
    if (par_rank() == 0 && util_check_output(out, msg, sizeof msg) == -1) /* its node */
        errx(1, "%s: %s", out, msg);
    if (traj && par_rank() == 0 && util_check_output(traj, msg, sizeof msg) == -1)
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
    if ((check || save_dir) && par_size() > 1)
        errx(1, "--check and --save-dir run in one process, not under mpirun");
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
    /* this process makes images [from, to) of the n */
    long from, to;
    /* under mpirun, rank r of K makes the r-th range of the shard (rank 0 gathers: n_out) */
    long n_out;
    if (shard_rank_range(n, shard, n_shards, &from, &to, &n_out, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    verbose = verbose && par_rank() == 0;
    if (batch > to - from)
        batch = to - from;
    so = (struct sampler_opts){(int)steps, (float)eta, (int)order, spacing, prk, clip_eps};
    if (sampler_init(&s, &sc, (enum sampler_kind)kind, &so, (size_t)batch * chw, msg,
                     sizeof msg) == -1)
        errx(1, "%s: %s", model, msg);

    /* kept states: x_T, then x after every k-th step, and the final x_0 */
    int n_keep = 1 + s.n_calls / (int)every + (s.n_calls % every != 0);
    int64_t shape[4] = {n_out, S, S, C}, tshape[4] = {(int64_t)n_out * n_keep, C, S, S};
    float *x = xmalloc((size_t)batch * chw * sizeof(float));
    float *keep = traj ? xmalloc((size_t)batch * n_keep * chw * sizeof(float)) : NULL;
    unsigned char *img = xmalloc((size_t)batch * chw);
    struct unet_sampling w;
    struct step_ctx sx = {keep, n_keep, 0, chw, (int)every, s.n_calls, verbose, &pr, 0};
    unet_sampling_init(&w, &u, (int)batch);

    /* a run of one forward (-n 1 --steps 1, a smoke test, a first look) uses each transformed
       weight once: caching it would only add its memory */
    long forwards = ((to - from + batch - 1) / batch) * s.n_calls;
    unet_alloc_infer(&u, (int)batch,
                     forwards <= 1 ? 0 : batch == 1 ? UNET_MEM_BYTES_B1 : UNET_MEM_BYTES);
    par_go_all_checked();
    if (par_outfile_open(&of, &pof, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (par_rank() == 0 && npy_write_header(of.f, NPY_U8, 4, shape, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (traj) {
        if (par_outfile_open(&tf, &ptf, traj, msg, sizeof msg) == -1)
            errx(1, "%s: %s", traj, msg);
        if (par_rank() == 0 &&
            npy_write_header(tf.f, NPY_F32, 4, tshape, msg, sizeof msg) == -1)
            errx(1, "%s: %s", traj, msg);
    }
    if (verbose)
        fprintf(stderr, "ddpm-sample: %zu parameters, %s %d steps, %ld images, batch %ld, "
                "%d threads; UNet memory %.0f MB (weights %.0f, activations and scratch %.0f, "
                "transformed weights cached %.0f, transformed per use %.0f); ready for the "
                "first step %.2f s after start\n",
                u.n_params, sampler_names[kind], s.n_calls, to - from, batch, nn_get_threads(),
                4e-6 * (double)(u.n_params + u.acts.n + u.acts.n_scratch + u.wino.n + u.wino.n_tmp),
                4e-6 * (double)u.n_params, 4e-6 * (double)(u.acts.n + u.acts.n_scratch),
                4e-6 * (double)u.wino.n, 4e-6 * (double)u.wino.n_tmp, util_process_age());
    progress_init(&pr, "ddpm-sample", "steps", ((to - from + batch - 1) / batch) * s.n_calls);
    for (long i0 = from; i0 < to; i0 += batch) {
        int B = (int)(to - i0 < batch ? to - i0 : batch);
        sx.kept = 0;
        unet_sampling_batch(&w, &u, &s, x, init ? (float *)noise.data + i0 * chw : NULL,
                            (uint64_t)seed, i0, B, on_step, &sx);
        nn_image_from_nchw(img, x, B, C, S, S);
        write_or_die(&of, out, img, (size_t)B * chw);
        if (keep)
            write_or_die(&tf, traj, keep, (size_t)B * n_keep * chw * sizeof(float));
    }
    if (verbose)
        progress_done(&pr);
    if (traj && par_outfile_commit(&tf, &ptf, msg, sizeof msg) == -1)
        errx(1, "%s: %s", traj, msg);
    if (par_outfile_commit(&of, &pof, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    free(x);
    free(keep);
    free(img);
    unet_sampling_free(&w);
    npy_free(&noise);
    sampler_free(&s);
    unet_free(&u);
    par_finalize();
    return 0;
}
