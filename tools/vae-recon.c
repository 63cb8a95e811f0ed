/* vae-recon: reconstruct images with a trained VAE; writes uint8 (N,32,32,3) .npy.
   By default z is the encoder's mean; --sample draws z = mu + exp(logvar/2) eps with eps
   from --seed. --pairs writes 2N images, each original followed by its reconstruction, so
   `vae-recon --pairs ... | imgrid -` with an even number of columns shows them side by side,
   like the study's figure. Pixels as vae-sample: (x+1)*127.5, clamped, rounded half to even. */
#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn.h"
#include "npy.h"
#include "rng.h"
#include "util.h"
#include "vae.h"

/* libgomp reads OMP_WAIT_POLICY once, at start-up: re-execute once with "passive" so that
   idle threads sleep at barriers instead of spinning. On a busy machine (other jobs, or the
   other end of a pipe) spinning threads burn the time slices their partner needs: measured
   300 img/s training on 2 threads at load 17 spinning, 700-830 passive; when the machine is
   quiet the cost is a futex wake per parallel region. A value the user set wins. */
static void omp_passive(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") != NULL)
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv); /* on failure, run on as we are */
}

static void usage(FILE *f, int status)
{
    fprintf(f, "usage: vae-recon --model vae.safetensors --data x.npy [-o out.npy] [--sample] "
               "[--seed 0] [--pairs] [--batch-size 256] [--threads 2]\n");
    if (status == 0)
        fprintf(f, "Reconstructs uint8 (N,32,32,3) images: decodes the encoder's mean, or\n"
                   "z = mu + exp(logvar/2) eps with --sample (eps from --seed). --pairs\n"
                   "writes 2N images, each original followed by its reconstruction (an\n"
                   "imgrid with an even number of columns shows them side by side).\n"
                   "Pixels: (x+1)*127.5, clamped to [0,255], rounded half to even.\n");
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"data", 1, 0, 'd'}, {"output", 1, 0, 'o'}, {"sample", 0, 0, 's'},
        {"seed", 1, 0, 'S'}, {"pairs", 0, 0, 'p'}, {"batch-size", 1, 0, 'b'},
        {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *out = "-";
    long seed = 0, batch = 256, threads = 2, n;
    int sample = 0, pairs = 0, c;
    struct vae m;
    struct rng r;
    struct npy t;
    struct outfile of;
    char msg[160];

    omp_passive(argv);
    nn_blas_setup(argv, 0);
    while ((c = getopt_long(argc, argv, "m:d:o:S:b:t:h", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 's': sample = 1; break;
        case 'p': pairs = 1; break;
        case 'S': bad = util_parse_long(optarg, 0, LONG_MAX, &seed); break;
        case 'b': bad = util_parse_long(optarg, 1, 65536, &batch); break;
        case 't': bad = util_parse_long(optarg, 1, 1024, &threads); break;
        case 'h': usage(stdout, 0); break;
        default: usage(stderr, 2);
        }
        if (bad) {
            warnx("bad value: %s", optarg);
            usage(stderr, 2);
        }
    }
    if (optind != argc || model == NULL || data == NULL)
        usage(stderr, 2);
    nn_set_threads((int)threads);
    util_cleanup_signals();
    if (vae_load(&m, model, msg, sizeof msg) == -1)
        errx(1, "%s: %s", model, msg);
    if (npy_load_images(data, &t, msg, sizeof msg) == -1)
        errx(1, "%s: %s", data, msg);
    if (t.shape[1] != 32 || t.shape[2] != 32)
        errx(1, "%s: want 32x32 images, got %ldx%ld", data, (long)t.shape[2], (long)t.shape[1]);
    n = (long)t.shape[0];
    if (batch > n)
        batch = n;
    vae_batch_alloc(&m, (int)batch);
    float *x = xmalloc((size_t)batch * VAE_D * sizeof(float));
    float *eps = xmalloc((size_t)batch * m.latent * sizeof(float));
    uint8_t *img = xmalloc((size_t)batch * VAE_D);
    const uint8_t *src = t.data;
    int64_t shape[4] = {pairs ? 2 * n : n, 32, 32, 3};
    rng_seed(&r, (uint64_t)seed);
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (npy_write_header(of.f, NPY_U8, 4, shape, msg, sizeof msg) == -1) {
        outfile_abort(&of);
        errx(1, "%s: %s", out, msg);
    }
    for (long i = 0; i < n; i += batch) {
        int b = (int)(n - i < batch ? n - i : batch), ok = 1;
        vae_images_to_input(x, src + (size_t)i * VAE_D, b);
        if (sample)
            rng_normal_fill(&r, eps, (size_t)b * m.latent);
        vae_forward(&m, x, sample ? eps : NULL, b, NULL, NULL);
        vae_output_to_images(img, m.xhat, b);
        for (int k = 0; k < b && ok; k++) {
            if (pairs)
                ok = fwrite(src + (size_t)(i + k) * VAE_D, VAE_D, 1, of.f) == 1;
            ok = ok && fwrite(img + (size_t)k * VAE_D, VAE_D, 1, of.f) == 1;
        }
        if (!ok) {
            outfile_abort(&of);
            err(1, "%s", out);
        }
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    free(x), free(eps), free(img);
    npy_free(&t);
    vae_free(&m);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
