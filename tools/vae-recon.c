/* vae-recon: reconstruct images with a trained VAE; writes uint8 (N,32,32,3) .npy.
   By default z is the encoder's mean; --sample draws z = mu + exp(logvar/2) eps with eps
   from --seed. --pairs writes 2N images, each original followed by its reconstruction, so
   `vae-recon --pairs ... | imgrid -` with an even number of columns shows them side by side,
   like the study's figure. Pixels as vae-sample: (x+1)*127.5, clamped, rounded half to even. */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_image.h"
#include "io/npy.h"
#include "util/opt.h"
#include "util/rng.h"
#include "util/util.h"
#include "models/vae.h"
#include "models/vae_cli.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: vae-recon --model VAE.safetensors --data X.npy [-o OUT.npy] [--sample]\n"
    "                 [--seed 0] [--pairs] [--batch-size 256] [--threads 2] [-v]\n";

static const char help[] =
    "\n"
    "Reconstructs uint8 (N,32,32,3) images with a VAE that vae-train wrote: decodes the\n"
    "encoder's mean, or z = mu + exp(logvar/2) eps with --sample. Writes uint8\n"
    "(N,32,32,3) .npy: (x+1)*127.5, clamped to [0,255], rounded half to even.\n"
    "\n"
    "  -m, --model FILE        the VAE .safetensors (required)\n"
    "  -d, --data FILE         the images to reconstruct (required)\n"
    "  -o, --output FILE       output .npy (default -: stdout)\n"
    "  --sample                draw z instead of taking the mean (eps from --seed)\n"
    "  -S, --seed S            seed of eps (default 0)\n"
    "  --pairs                 write 2N images, each original followed by its\n"
    "                          reconstruction (imgrid with an even number of columns\n"
    "                          shows them side by side)\n"
    "  -b, --batch-size N      images per pass (default 256)\n"
    "  -t, --threads N         threads (default: $OMP_NUM_THREADS, else 2)\n"
    "  -v, --verbose           the OpenBLAS kernel and the threads on stderr\n"
    "  -h, --help              this text\n"
    "\n"
    "Example:\n"
    "  vae-recon --model runs/vae.safetensors --data val.npy --pairs | imgrid -c 8 - -o r.png\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"output", 1, 0, 'o'}, {"sample", 0, 0, 's'},
        {"seed", 1, 0, 'S'}, {"pairs", 0, 0, 'p'}, {"batch-size", 1, 0, 'b'},
        {"threads", 1, 0, 't'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct vae_tool_opts o = VAE_TOOL_OPTS_INIT;
    const char *data = NULL;
    long n;
    int sample = 0, pairs = 0, c;
    struct vae m;
    struct rng r;
    struct npy t;
    struct outfile of;
    char msg[TOOL_MSG];

    struct opt op;

    opt_init(&op, "m:d:o:S:b:t:vh", lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        int res = 0;
        switch (c) {
        case 'd': data = optarg; break;
        case 's': sample = 1; break;
        case 'p': pairs = 1; break;
        case 'h': usage(0, NULL); break;
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
    if (data == NULL)
        usage(2, "--data X.npy is required");
    tool_init_blas(&argc, &argv, &(struct tool){.verbose = o.verbose, .threads = o.threads}, msg,
                   sizeof msg);
    if (util_binary_to_tty(o.out))
        errx(1, UTIL_TTY_MSG);
    if (util_check_output(o.out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    if (vae_load(&m, o.model, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.model, msg);
    if (vae_load_images(data, &t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", data, msg);
    n = (long)t.shape[0];
    if (o.batch > n)
        o.batch = n;
    vae_batch_alloc(&m, (int)o.batch);
    float *x = xmalloc((size_t)o.batch * VAE_D * sizeof(float));
    float *eps = xmalloc((size_t)o.batch * m.latent * sizeof(float));
    uint8_t *img = xmalloc((size_t)o.batch * VAE_D);
    const uint8_t *src = t.data;
    rng_seed(&r, (uint64_t)o.seed);
    if (vae_images_create(&of, o.out, pairs ? 2 * n : n, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    for (long i = 0; i < n; i += o.batch) {
        int b = (int)(n - i < o.batch ? n - i : o.batch), ok = 1;
        nn_image_to_nchw(x, src + (size_t)i * VAE_D, b, 3, 32, 32);
        if (sample)
            rng_normal_fill(&r, eps, (size_t)b * m.latent);
        vae_forward(&m, x, sample ? eps : NULL, b, (int)i, NULL, NULL);
        nn_image_from_nchw(img, vae_xhat(&m), b, 3, 32, 32);
        for (int k = 0; k < b && ok; k++) {
            if (pairs)
                ok = fwrite(src + (size_t)(i + k) * VAE_D, VAE_D, 1, of.f) == 1;
            ok = ok && fwrite(img + (size_t)k * VAE_D, VAE_D, 1, of.f) == 1;
        }
        if (!ok)
            err(1, "%s", o.out);
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", o.out, msg);
    free(x), free(eps), free(img);
    npy_free(&t);
    vae_free(&m);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
