/* DINOv2 ViT-L/14 (FD-DINOv2's network) throughput: images/s for a batch of 32x32 uint8
   images through dgm-eval's preprocessing (PIL bicubic to 224) and the network to the cls
   token, on 2 threads, with the closed-form synthetic weights (same arithmetic as the real
   file). The best of `repeats` runs (the machine is shared). Also the time to build the
   synthetic weights. Compare with tests/bench/torch_dinov2.py (same network and batch).
   Usage: bench_dinov2 [batch [repeats]] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "models/dinov2.h"
#include "nn/nn.h"
#include "util/rng.h"
#include "util/util.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    struct dinov2 net;
    struct dinov2_ws ws;
    struct rng r;
    long N = 4, reps = 2;
    nn_blas_setup(argv, 0);
    if ((argc > 1 && util_parse_long(argv[1], 1, 1000, &N) == -1) ||
        (argc > 2 && util_parse_long(argv[2], 1, 100, &reps) == -1)) {
        fprintf(stderr, "usage: bench_dinov2 [batch [repeats]]\n");
        return 2;
    }
    nn_set_threads(2);
    double t0 = util_now();
    dinov2_synthetic(&net, &dinov2_vitl14);
    double tsyn = util_now() - t0;
    uint8_t *img = xmalloc((size_t)N * 32 * 32 * 3);
    float *f = xmalloc((size_t)N * net.cfg.dim * sizeof(float));
    rng_seed(&r, 1);
    for (long i = 0; i < N * 32 * 32 * 3; i++)
        img[i] = (uint8_t)rng_below(&r, 256);
    dinov2_ws_init(&ws, &net, DINOV2_SIZE, DINOV2_SIZE);
    dinov2_forward_u8(&net, &ws, f, img, 1, 32, 32); /* warm-up: first touch of the pages */
    double dt = 1e30, dc = 0;
    for (long k = 0; k < reps; k++) {
        double c0 = cpu_now();
        t0 = util_now();
        dinov2_forward_u8(&net, &ws, f, img, (int)N, 32, 32);
        if (util_now() - t0 < dt) {
            dt = util_now() - t0;
            dc = cpu_now() - c0;
        }
    }
    printf("dinov2 vitl14 224 batch %ld threads 2: %.2f img/s (%.2f s/img of CPU; synthetic "
           "weights built in %.2f s)\n", N, N / dt, dc / N, tsyn);
    dinov2_ws_free(&ws);
    dinov2_free(&net);
    free(img);
    free(f);
    return 0;
}
