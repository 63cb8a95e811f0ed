/* DINOv2 ViT-L/14 (FD-DINOv2's network) throughput: images/s for a batch of 32x32 uint8
   images through dgm-eval's preprocessing (PIL bicubic to 224) and the network to the cls
   token, on 2 threads, with the closed-form synthetic weights (same arithmetic as the real
   file). The best of `repeats` runs (the machine is shared). Also the time to build the
   synthetic weights. Compare with tests/bench/torch_dinov2.py (same network and batch).
   -v: then where a forward's time goes, per kind of operation (common/models/dinov2_prof.h):
   ms per image, % of the timed forward, GFLOP/s where the op's flops are counted, and the
   forward without timers, run alternately, for the overhead (and a check that the features
   are the same bits).
   Usage: bench_dinov2 [-v] [batch [repeats]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/dinov2.h"
#include "models/dinov2_prof.h"
#include "nn/nn.h"
#include "util/rng.h"
#include "util/util.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* reps batches with the timers and reps without, alternated; the table per image */
static void profile(const struct dinov2 *net, struct dinov2_ws *ws, const uint8_t *img, int N,
                    int reps)
{
    size_t nf = (size_t)N * net->cfg.dim;
    float *f0 = xmalloc(nf * sizeof(float)), *f1 = xmalloc(nf * sizeof(float));
    double on = 0, off = 0, sum = 0, t0;
    int same = 1;
    dinov2_prof_reset();
    for (int r = 0; r < reps; r++) {
        t0 = util_now();
        dinov2_forward_u8(net, ws, f0, img, N, 32, 32);
        off += util_now() - t0;
        dinov2_prof_enabled = 1;
        t0 = util_now();
        dinov2_forward_u8(net, ws, f1, img, N, 32, 32);
        on += util_now() - t0;
        dinov2_prof_enabled = 0;
        same &= memcmp(f0, f1, nf * sizeof(float)) == 0;
    }
    double per = (double)reps * N;
    on /= per;
    off /= per;
    printf("\nwhere the forward's time goes: batch %d, %d threads, mean of %d batches, per "
           "image\n", N, nn_get_threads(), reps);
    printf("  %-40s %9s %6s %8s\n", "op", "ms/img", "%", "GFLOP/s");
    for (int k = 0; k < DINOV2_PROF_N; k++) {
        double sec = dinov2_prof_sec[k] / per;
        sum += sec;
        printf("  %-40s %9.2f %6.1f", dinov2_prof_name[k], 1e3 * sec, 100 * sec / on);
        if (dinov2_prof_flop[k] > 0 && sec > 0)
            printf(" %8.1f", dinov2_prof_flop[k] / per / sec * 1e-9);
        printf("\n");
    }
    printf("  %-40s %9.2f %6.1f\n", "not timed (between the timers)", 1e3 * (on - sum),
           100 * (on - sum) / on);
    printf("  %-40s %9.2f %6.1f\n", "forward with the timers (wall)", 1e3 * on, 100.0);
    printf("  %-40s %9.2f %6.1f  (timers' overhead %+.1f%%; features %s)\n",
           "forward without the timers (wall)", 1e3 * off, 100 * off / on,
           100 * (on - off) / off, same ? "the same bits" : "DIFFER");
    free(f0);
    free(f1);
    if (!same)
        exit(1);
}

int main(int argc, char **argv)
{
    struct dinov2 net;
    struct dinov2_ws ws;
    struct rng r;
    long N = 4, reps = 2;
    nn_blas_setup(argv, 0);
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0, a = 1 + verbose;
    if (argc > a + 2 || (argc > a && util_parse_long(argv[a], 1, 1000, &N) == -1) ||
        (argc > a + 1 && util_parse_long(argv[a + 1], 1, 100, &reps) == -1)) {
        fprintf(stderr, "usage: bench_dinov2 [-v] [batch [repeats]]\n");
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
    if (verbose)
        profile(&net, &ws, img, (int)N, (int)reps);
    dinov2_ws_free(&ws);
    dinov2_free(&net);
    free(img);
    free(f);
    return 0;
}
