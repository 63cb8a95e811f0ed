/* UNet2DModel forward on the google/ddpm-cifar10-32 shape (closed-form weights), batch 16:
   images per second, and the ratio to PyTorch 1.13 on 2 threads (10.5 img/s measured here by
   tests/bench/torch_unet.py; override with TORCH_UNET_IMGS). Also batch 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/nn.h"
#include "models/unet.h"
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
    unet_forward(u, NULL, x, t, B, 0); /* warm-up */
    for (int r = 0; r < reps; r++) {
        t0 = util_now();
        c0 = cpu_now();
        unet_forward(u, NULL, x, t, B, 0);
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

int main(int argc, char **argv)
{
    struct unet_config c;
    struct unet u;
    char msg[256];
    const char *e = getenv("TORCH_UNET_IMGS");
    double torch = e ? atof(e) : 10.5, ips, pc;
    (void)argc;
    nn_blas_setup(argv, 0);
    nn_set_threads(getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 2);
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_unet: %s\n", msg);
        return 1;
    }
    unet_init_closed_form(&u);
    ips = bench(&u, 16, 3, &pc);
    printf("unet forward cifar10 batch 16, 2 threads: %.2f img/s (%.2fx PyTorch at %.1f img/s); "
           "%.2f img per CPU-second\n", ips, ips / torch, torch, pc);
    ips = bench(&u, 1, 5, &pc);
    printf("unet forward cifar10 batch 1, 2 threads: %.2f img/s; %.2f img per CPU-second\n",
           ips, pc);
    unet_free(&u);
    return 0;
}
