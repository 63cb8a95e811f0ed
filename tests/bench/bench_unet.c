/* UNet2DModel forward on the google/ddpm-cifar10-32 shape (closed-form weights), batch 16:
   images per second, and the ratio to PyTorch 1.13 on 2 threads (10.5 img/s measured here by
   tests/bench/torch_unet.py; override with TORCH_UNET_IMGS). Also batch 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn.h"
#include "unet.h"
#include "util.h"

static double bench(struct unet *u, int B, int reps)
{
    size_t n = (size_t)B * 3 * 32 * 32;
    float *x = xmalloc(n * sizeof(float)), *t = xmalloc((size_t)B * sizeof(float));
    double t0, best = 1e30;
    for (size_t i = 0; i < n; i++)
        x[i] = sinf(0.37f * (float)i);
    for (int b = 0; b < B; b++)
        t[b] = (float)(b * 61 % 1000);
    unet_forward(u, NULL, x, t, B); /* warm-up */
    for (int r = 0; r < reps; r++) {
        t0 = util_now();
        unet_forward(u, NULL, x, t, B);
        t0 = util_now() - t0;
        if (t0 < best)
            best = t0;
    }
    free(x);
    free(t);
    return B / best;
}

int main(int argc, char **argv)
{
    struct unet_config c;
    struct unet u;
    char msg[256];
    const char *e = getenv("TORCH_UNET_IMGS");
    double torch = e ? atof(e) : 10.5, ips;
    (void)argc;
    nn_blas_setup(argv, 0);
    nn_set_threads(2);
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_unet: %s\n", msg);
        return 1;
    }
    unet_init_closed_form(&u);
    ips = bench(&u, 16, 3);
    printf("unet forward cifar10 batch 16, 2 threads: %.2f img/s (%.2fx PyTorch at %.1f img/s)\n",
           ips, ips / torch, torch);
    ips = bench(&u, 1, 5);
    printf("unet forward cifar10 batch 1, 2 threads: %.2f img/s\n", ips);
    unet_free(&u);
    return 0;
}
