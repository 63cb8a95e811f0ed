/* vae-sample: decode z ~ N(0, I) with a trained VAE; writes uint8 (N,32,32,3) .npy.
   Pixels are (x+1)*127.5 clamped to [0,255] and rounded half to even, the inverse of
   vae-train's x/127.5-1. z is drawn in image order from rng_normal seeded by --seed, so the
   output does not depend on --batch-size; --shard I/N draws and drops the z of the images
   before its range (cheap: latent floats each), so it writes exactly its slice. */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_image.h"
#include "util/par.h"
#include "util/opt.h"
#include "util/rng.h"
#include "util/shard.h"
#include "util/util.h"
#include "models/vae.h"
#include "models/vae_cli.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: vae-sample --model VAE.safetensors [-n 100] [--seed 0] [-o OUT.npy]\n"
    "                  [--batch-size 256] [--shard I/N] [--threads 2] [-v]\n";

static const char help[] =
    "\n"
    "Decodes z ~ N(0, I) with a VAE that vae-train wrote and writes the images as uint8\n"
    "(N,32,32,3) .npy: (x+1)*127.5, clamped to [0,255], rounded half to even. z is drawn\n"
    "in image order from --seed, so the images do not depend on --batch-size.\n"
    "\n"
    "  -m, --model FILE        the VAE .safetensors (required)\n"
    "  -n, --num N             images (default 100)\n"
    "  -S, --seed S            seed of z (default 0)\n"
    "  -o, --output FILE       output .npy (default -: stdout)\n"
    "  -b, --batch-size N      images per decoder pass (default 256)\n"
    "  --shard I/N             decode only shard I (from 0) of N: the images whose index\n"
    "                          falls in the I-th of N contiguous ranges (sizes differ by\n"
    "                          at most one), the same bytes as that slice of the full\n"
    "                          run; npycat joins the shards in order\n"
    "  -t, --threads N         threads (default: $OMP_NUM_THREADS, else 2)\n"
    "  -v, --verbose           the OpenBLAS kernel and the threads on stderr\n"
    "  -h, --help              this text\n"
    "\n"
    "Under mpirun -np K, rank r decodes the r-th of K contiguous ranges of the images and\n"
    "rank 0 writes them all to -o FILE (not stdout): the bytes of a 1-process run.\n"
    "\n"
    "Example:\n"
    "  vae-sample --model runs/vae.safetensors -n 100 | imgrid - -o samples.png\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

int main(int argc, char **argv)
{
    enum { O_SHARD = 256 };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"num", 1, 0, 'n'}, {"seed", 1, 0, 'S'}, {"output", 1, 0, 'o'},
        {"batch-size", 1, 0, 'b'}, {"threads", 1, 0, 't'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'},
        {"shard", 1, 0, O_SHARD}, {0, 0, 0, 0}};
    struct vae_tool_opts o = VAE_TOOL_OPTS_INIT;
    long n = 100;
    struct vae m;
    struct rng r;
    struct outfile of;
    struct par_out pof = {0};
    char msg[TOOL_MSG];
    int c, shard = 0, n_shards = 1;
    long from, to;
    struct opt op;

    opt_init(&op, "m:n:S:o:b:t:vh", lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        int res = 0;
        switch (c) {
        case 'n': res = opt_long(&op, 1, 100000000, &n); break;
        case 'h': usage(0, NULL); break;
        case O_SHARD:
            res = shard_parse(optarg, &shard, &n_shards) ? opt_bad(&op, SHARD_WANT) : 0;
            break;
        default:
            if ((res = vae_tool_opt(&o, &op, c)) == 0)
                usage(2, NULL);
        }
        if (res == -1)
            usage(2, op.msg);
    }
    if (optind != argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind]);
        usage(2, msg);
    }
    if (o.model == NULL)
        usage(2, "--model VAE.safetensors is required");
    if (tool_init_blas(&argc, &argv,
                       &(struct tool){.mpi = 1, .verbose = o.verbose, .threads = o.threads},
                       msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (par_check_output(o.out) == -1)
        errx(1, PAR_STDOUT_MSG);
    if (util_binary_to_tty(o.out))
        errx(1, UTIL_TTY_MSG);
    if (par_rank() == 0 && util_check_output(o.out, msg, sizeof msg) == -1) /* its node */
        errx(1, "%s: %s", o.out, msg);
    if (vae_load(&m, o.model, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.model, msg);
    /* under mpirun, rank r of K decodes the r-th range of the shard (rank 0 gathers: n_out) */
    long n_out;
    if (shard_rank_range(n, shard, n_shards, &from, &to, &n_out, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (o.batch > to - from)
        o.batch = to - from;
    vae_batch_alloc(&m, (int)o.batch);
    float *z = xmalloc((size_t)o.batch * m.latent * sizeof(float));
    uint8_t *img = xmalloc((size_t)o.batch * VAE_D);
    rng_seed(&r, (uint64_t)o.seed);
    for (long i = 0; i < from; i += o.batch) /* the z of the images before the shard */
        rng_normal_fill(&r, z, (size_t)(from - i < o.batch ? from - i : o.batch) * m.latent);
    par_go_all_checked();
    if (par_rank() == 0 ? vae_images_create(&of, o.out, n_out, msg, sizeof msg)
                        : par_outfile_open(&of, &pof, o.out, msg, sizeof msg))
        errx(1, "%s: %s", o.out, msg);
    for (long i = from; i < to; i += o.batch) {
        int b = (int)(to - i < o.batch ? to - i : o.batch);
        rng_normal_fill(&r, z, (size_t)b * m.latent);
        nn_image_from_nchw(img, vae_decode(&m, z, b, (int)i), b, 3, 32, 32);
        if (fwrite(img, VAE_D, (size_t)b, of.f) != (size_t)b)
            err(1, "%s", o.out);
    }
    if (par_outfile_commit(&of, &pof, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    free(z);
    free(img);
    vae_free(&m);
    par_finalize();
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
