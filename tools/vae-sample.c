/* vae-sample: decode z ~ N(0, I) with a trained VAE; writes uint8 (N,32,32,3) .npy.
   Pixels are (x+1)*127.5 clamped to [0,255] and rounded half to even, the inverse of
   vae-train's x/127.5-1. z is drawn in image order from rng_normal seeded by --seed, so the
   output does not depend on --batch-size. */
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
    fprintf(f, "usage: vae-sample --model vae.safetensors [-n 100] [--seed 0] [-o out.npy] "
               "[--batch-size 256] [--threads 2]\n");
    if (status == 0)
        fprintf(f, "Decodes z ~ N(0, I) (drawn in image order from --seed) to uint8\n"
                   "(N,32,32,3) .npy on stdout or -o: (x+1)*127.5, clamped to [0,255],\n"
                   "rounded half to even.\n");
    exit(status);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"num", 1, 0, 'n'}, {"seed", 1, 0, 'S'}, {"output", 1, 0, 'o'},
        {"batch-size", 1, 0, 'b'}, {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *out = "-";
    long n = 100, seed = 0, batch = 256, threads = 2;
    struct vae m;
    struct rng r;
    struct outfile of;
    char msg[160];
    int c;

    omp_passive(argv);
    nn_blas_setup(argv, 0);
    while ((c = getopt_long(argc, argv, "m:n:S:o:b:t:h", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'n': bad = util_parse_long(optarg, 1, 100000000, &n); break;
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
    if (optind != argc || model == NULL)
        usage(stderr, 2);
    nn_set_threads((int)threads);
    util_cleanup_signals();
    if (vae_load(&m, model, msg, sizeof msg) == -1)
        errx(1, "%s: %s", model, msg);
    if (batch > n)
        batch = n;
    vae_batch_alloc(&m, (int)batch);
    float *z = xmalloc((size_t)batch * m.latent * sizeof(float));
    uint8_t *img = xmalloc((size_t)batch * VAE_D);
    int64_t shape[4] = {n, 32, 32, 3};
    rng_seed(&r, (uint64_t)seed);
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    if (npy_write_header(of.f, NPY_U8, 4, shape, msg, sizeof msg) == -1) {
        outfile_abort(&of);
        errx(1, "%s: %s", out, msg);
    }
    for (long i = 0; i < n; i += batch) {
        int b = (int)(n - i < batch ? n - i : batch);
        rng_normal_fill(&r, z, (size_t)b * m.latent);
        vae_output_to_images(img, vae_decode(&m, z, b), b);
        if (fwrite(img, VAE_D, (size_t)b, of.f) != (size_t)b) {
            outfile_abort(&of);
            err(1, "%s", out);
        }
    }
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    free(z);
    free(img);
    vae_free(&m);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
