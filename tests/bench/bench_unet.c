/* UNet2DModel forward on the google/ddpm-cifar10-32 shape (closed-form weights), batch 16 and
   batch 1: images per second, and with TORCH_UNET_IMGS / TORCH_UNET_IMGS1 (PyTorch's img/s at
   batch 16 / 1, which tests/bench/unet.sh measures just before, in the same run) the ratios. These run in
   ddpm-sample's inference layout (unet_alloc_infer(u, B, 500 MB), 640 MB at batch 1: the
   transformed weights of the convs on the smallest maps cached, the others made at every
   use; at batch 1 all are cached), the layout of every tool that runs the UNet forward many
   times on fixed weights.

   -v: then where a forward's time goes, per kind of operation (common/models/unet_prof.h), at
   batch 16 and 1, in the training layout (unet_alloc_acts: every activation kept, each conv's
   weights transformed when it runs, as the weights change every step) and in that inference
   layout: ms per forward, % of the timed forward, GFLOP/s where the
   op's flops are counted, and the forward without timers, run alternately, for the overhead.
   BENCH_PROF_REPS: timed forwards at batch 16 (default 4; batch 1 runs 4x as many). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn.h"
#include "models/unet.h"
#include "models/unet_prof.h"
#include "util/util.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* images per second of wall time (best of reps); *per_cpu: images per CPU-second, which
   stays meaningful on a loaded machine */
static double bench(struct unet *u, int B, int reps, double *per_cpu)
{
    size_t n = (size_t)B * 3 * 32 * 32;
    float *x = xmalloc(n * sizeof(float)), *t = xmalloc((size_t)B * sizeof(float));
    double t0, c0, best = 1e30, cbest = 1e30;
    for (size_t i = 0; i < n; i++)
        x[i] = sinf(0.37f * (float)i);
    for (int b = 0; b < B; b++)
        t[b] = (float)(b * 61 % 1000);
    unet_forward(u, NULL, x, t, B); /* warm-up */
    for (int r = 0; r < reps; r++) {
        t0 = util_now();
        c0 = cpu_now();
        unet_forward(u, NULL, x, t, B);
        t0 = util_now() - t0;
        c0 = cpu_now() - c0;
        if (t0 < best)
            best = t0;
        if (c0 < cbest)
            cbest = c0;
    }
    free(x);
    free(t);
    *per_cpu = B / cbest;
    return B / best;
}

static void fill_inputs(float *x, float *t, int B)
{
    size_t n = (size_t)B * 3 * 32 * 32;
    for (size_t i = 0; i < n; i++)
        x[i] = sinf(0.37f * (float)i);
    for (int b = 0; b < B; b++)
        t[b] = (float)(b * 61 % 1000);
}

/* reps forwards with the timers and reps without, alternated; the table per forward */
static void profile(struct unet *u, int B, int reps, const char *layout)
{
    size_t n = (size_t)B * 3 * 32 * 32;
    float *x = xmalloc(n * sizeof(float)), *t = xmalloc((size_t)B * sizeof(float));
    float *e0 = xmalloc(n * sizeof(float)), *e1 = xmalloc(n * sizeof(float));
    double on = 0, off = 0, sum = 0, wino = 0, t0;
    int same = 1;
    fill_inputs(x, t, B);
    unet_forward(u, NULL, x, t, B); /* warm-up: caches the transforms it may cache */
    unet_prof_reset();
    for (int r = 0; r < reps; r++) {
        t0 = util_now();
        unet_forward(u, e0, x, t, B);
        off += util_now() - t0;
        unet_prof_enabled = 1;
        t0 = util_now();
        unet_forward(u, e1, x, t, B);
        on += util_now() - t0;
        unet_prof_enabled = 0;
        same &= memcmp(e0, e1, n * sizeof(float)) == 0;
    }
    on /= reps;
    off /= reps;
    printf("\nwhere the forward's time goes: batch %d, %s, %d threads, mean of %d forwards\n",
           B, layout, nn_get_threads(), reps);
    printf("  %-42s %9s %6s %8s\n", "op", "ms/fwd", "%", "GFLOP/s");
    for (int k = 0; k < UNET_PROF_N; k++) {
        double sec = unet_prof_sec[k] / reps;
        sum += sec;
        if (k <= UNET_PROF_WINO_WEIGHTS)
            wino += sec;
        printf("  %-42s %9.2f %6.1f", unet_prof_name[k], 1e3 * sec, 100 * sec / on);
        if (unet_prof_flop[k] > 0 && sec > 0)
            printf(" %8.1f", unet_prof_flop[k] / reps / sec * 1e-9);
        printf("\n");
    }
    printf("  %-42s %9.2f %6.1f", "3x3 convs together (the 4 lines above *)", 1e3 * wino,
           100 * wino / on);
    if (wino > 0)
        printf(" %8.1f", unet_prof_conv3_flop / reps / wino * 1e-9);
    printf("\n  %-42s %9.2f %6.1f\n", "not timed (between the timers)", 1e3 * (on - sum),
           100 * (on - sum) / on);
    printf("  %-42s %9.2f %6.1f\n", "sum of the timed ops", 1e3 * sum, 100 * sum / on);
    printf("  %-42s %9.2f %6.1f\n", "forward with the timers (wall)", 1e3 * on, 100.0);
    printf("  %-42s %9.2f %6.1f  (timers' overhead %+.1f%%; outputs %s)\n",
           "forward without the timers (wall)", 1e3 * off, 100 * off / on,
           100 * (on - off) / off, same ? "the same bits" : "DIFFER");
    printf("  * GFLOP/s of the 3x3 stride-1 convs counted as direct convolutions "
           "(2 x 9 x C x OC per output pixel); the GEMM line's are the GEMMs' own\n");
    free(x);
    free(t);
    free(e0);
    free(e1);
    if (!same)
        exit(1);
}

int main(int argc, char **argv)
{
    struct unet_config c;
    struct unet u;
    char msg[256];
    const char *e = getenv("TORCH_UNET_IMGS"), *e1 = getenv("TORCH_UNET_IMGS1");
    double torch = e ? atof(e) : 0, torch1 = e1 ? atof(e1) : 0, ips, pc;
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    if (argc > 2 || (argc == 2 && !verbose)) {
        fprintf(stderr, "usage: bench_unet [-v]\n");
        return 2;
    }
    nn_blas_setup(argv, 0);
    nn_set_threads(getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 2);
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_unet: %s\n", msg);
        return 1;
    }
    unet_init_closed_form(&u);
    unet_alloc_infer(&u, 16, (size_t)500 * 1000000);
    ips = bench(&u, 16, 3, &pc);
    printf("unet forward cifar10 batch 16, 2 threads: %.2f img/s", ips);
    if (torch > 0)
        printf(" (%.2fx PyTorch's %.2f img/s measured just before)", ips / torch, torch);
    printf("; %.2f img per CPU-second\n", pc);
    unet_alloc_infer(&u, 1, (size_t)640 * 1000000);
    ips = bench(&u, 1, 5, &pc);
    printf("unet forward cifar10 batch 1, 2 threads: %.2f img/s", ips);
    if (torch1 > 0)
        printf(" (%.2fx PyTorch's %.2f img/s measured just before)", ips / torch1, torch1);
    printf("; %.2f img per CPU-second\n", pc);
    if (verbose) {
        const char *r = getenv("BENCH_PROF_REPS");
        int reps = r && atoi(r) > 0 ? atoi(r) : 4;
        const char *train = "training layout (unet_alloc_acts)";
        const char *infer = "inference layout (unet_alloc_infer(u, B, 500 MB), ddpm-sample's)";
        unet_alloc_acts(&u, 16);
        profile(&u, 16, reps, train);
        profile(&u, 1, 4 * reps, train);
        unet_alloc_infer(&u, 16, (size_t)500 * 1000000);
        profile(&u, 16, reps, infer);
        unet_alloc_infer(&u, 1, (size_t)640 * 1000000);
        profile(&u, 1, 4 * reps, "inference layout (unet_alloc_infer(u, 1, 640 MB), ddpm-sample's)");
    }
    unet_free(&u);
    return 0;
}
