/* Data-parallel DDPM training (ddpm-train under mpirun) on the google/ddpm-cifar10-32 shape
   (closed-form weights), global batch 16: each rank the gradient of its share
   (numpy.array_split sizes), the sum of the 35.7M-float gradient overlapping the backward
   (ddpm_train_reduce_arm), clip + AdamW (+ EMA on rank 0), as ddpm-train's step. One line
   from rank 0: images per second, the step's wall time and the wait for the sum at its end; under mpirun also MPI_Allreduce alone on the gradient
   (best of BENCH_REPS) with its bus bandwidth, 2 (K-1)/K bytes / time (what a ring moves per
   rank). Plain (make bench runs every bench binary so): 1 rank x BENCH_THREADS (2) threads;
   tests/bench/mpi_train.sh runs it under mpirun -np 2 with 1 thread each. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"
#include "models/ddpm_train.h"
#include "nn/nn.h"
#include "nn/sched.h"
#include "util/par.h"
#include "util/rng.h"
#include "util/shard.h"
#include "util/util.h"

int main(int argc, char **argv)
{
    struct unet_config c;
    struct unet u;
    struct sched s;
    struct sched_config sc;
    struct ddpm_train tr;
    struct ddpm_hparams h;
    struct rng r;
    char msg[256];
    int B = 16, reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 3;
    int nt = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 2, rank, K;
    long lo, hi;
    size_t per = 3 * 32 * 32;
    float *x0, *noise;
    int t[16];
    double best = 1e30, best_ar = 1e30, ar_in_best = 0;

    nn_blas_setup(argv, 0);
    if (par_init(&argc, &argv, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_mpi_train: %s\n", msg);
        return 1;
    }
    par_go();
    rank = par_rank(), K = par_size();
    nn_set_threads(nt);
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_mpi_train: %s\n", msg);
        return 1;
    }
    unet_init_closed_form(&u);
    sched_config_default(&sc);
    if (sched_init(&s, &sc, SCHED_DDPM, 1000, 0, msg, sizeof msg) == -1)
        return 1;
    ddpm_hparams_default(&h);
    h.total = 1000;
    h.warmup = 0;
    shard_range(B, rank, K, &lo, &hi);
    ddpm_train_init(&tr, &u, (int)(hi - lo), rank == 0);
    x0 = xmalloc((size_t)B * per * sizeof(float));
    noise = xmalloc((size_t)B * per * sizeof(float));
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * per; i++)
        x0[i] = sinf(0.37f * (float)i);
    rng_normal_fill(&r, noise, (size_t)B * per);
    for (int b = 0; b < B; b++)
        t[b] = (int)rng_below(&r, 1000);
    for (int k = 0; k <= reps; k++) { /* k = 0: warm-up */
        double t0, ta;
        par_barrier();
        t0 = util_now();
        memset(tr.grads, 0, u.n_params * sizeof(float));
        ddpm_train_reduce_arm(&tr);
        ddpm_train_accumulate(&tr, &s, x0 + lo * per, noise + lo * per, t + lo, (int)(hi - lo),
                              (float)(hi - lo) / (float)B);
        ta = util_now();
        ddpm_train_reduce_finish(&tr);
        ta = util_now() - ta;
        ddpm_train_apply(&tr, &h, NULL, NULL);
        par_barrier();
        t0 = util_now() - t0;
        if (k > 0 && t0 < best)
            best = t0, ar_in_best = ta;
    }
    for (int k = 0; K > 1 && k <= reps; k++) {
        double t0;
        par_barrier();
        t0 = util_now();
        par_allreduce_sum(tr.grads, u.n_params);
        t0 = util_now() - t0;
        if (k > 0 && t0 < best_ar)
            best_ar = t0;
    }
    if (rank == 0) {
        double mb = u.n_params * 4.0 / 1e6;
        printf("ddpm train step cifar10 global batch 16, %d rank%s x %d thread%s: %.2f img/s, "
               "step %.2f s", K, K > 1 ? "s" : "", nt, nt > 1 ? "s" : "", B / best, best);
        if (K > 1)
            printf(" (%.3f s of it in the allreduce, waiting for the slower rank included); "
                   "MPI_Allreduce of %.1fM floats (%.0f MB), shared "
                   "memory: %.3f s, bus bandwidth %.2f GB/s",
                   ar_in_best, u.n_params / 1e6, mb, best_ar,
                   2.0 * (K - 1) / K * mb / 1e3 / best_ar);
        printf("\n");
    }
    free(x0);
    free(noise);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    par_finalize();
    return 0;
}
