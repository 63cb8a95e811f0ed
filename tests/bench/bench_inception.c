/* FID Inception v3 throughput: images/s for a batch of 32x32 uint8 images through the
   pytorch-fid preprocessing and the network to pool3, on --threads 2: as shipped (1x1 branch
   convs fused into one GEMM per block, groups of INCEPTION_GROUP images from Mixed_6b on)
   and with separate 1x1 convs. The best of `repeats` runs of the batch
   (the machine is shared: the best is the least disturbed). Compare with
   tests/bench/torch_inception.py (same network and batch in PyTorch, 2 threads).
   Usage: bench_inception [batch [repeats]] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "models/inception.h"
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
    struct inception net;
    struct rng r;
    long N = 16, reps = 1;
    nn_blas_setup(argv, 0);
    if ((argc > 1 && util_parse_long(argv[1], 1, 1000, &N) == -1) ||
        (argc > 2 && util_parse_long(argv[2], 1, 100, &reps) == -1)) {
        fprintf(stderr, "usage: bench_inception [batch [repeats]]\n");
        return 2;
    }
    nn_set_threads(2);
    inception_synthetic(&net);
    uint8_t *img = xmalloc((size_t)N * 32 * 32 * 3);
    float *f = xmalloc((size_t)N * INCEPTION_DIMS * sizeof(float));
    rng_seed(&r, 1);
    for (long i = 0; i < N * 32 * 32 * 3; i++)
        img[i] = (uint8_t)rng_below(&r, 256);
    struct inception_ws ws; /* for the largest batch, N */
    inception_ws_init(&ws, &net, (int)N, 32, 32);
    inception_forward_u8(&net, &ws, f, NULL, NULL, NULL, NULL, img, 2, 0, 32, 32,
                         INCEPTION_RESIZE_PYTORCH_FID);
    static const char *const what[2] = { "fused 1x1", "separate 1x1" };
    for (int k = 0; k < 2; k++) {
        double dt = 1e30, dc = 0;
        net.fuse = k != 1;
        for (long r = 0; r < reps; r++) {
            double t0 = util_now(), c0 = cpu_now();
            inception_forward_u8(&net, &ws, f, NULL, NULL, NULL, NULL, img, (int)N, 0, 32,
                                 32, INCEPTION_RESIZE_PYTORCH_FID);
            if (util_now() - t0 < dt) {
                dt = util_now() - t0;
                dc = cpu_now() - c0;
            }
        }
        printf("inception batch %ld threads 2 %s: %.2f img/s (%.3f s/img of CPU)\n", N, what[k],
               N / dt, dc / N);
    }
    inception_ws_free(&ws);
    inception_free(&net);
    free(img);
    free(f);
    return 0;
}
