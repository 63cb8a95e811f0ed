/* DDPM training on the google/ddpm-cifar10-32 shape (closed-form weights), batch 16:
   forward + backward + clip + AdamW (+ EMA) per step, in images per second, and the peak
   resident memory (getrusage). With TORCH_TRAIN_IMGS (PyTorch's img/s, which
   tests/bench/ddpm_train.sh measures just before, in the same run) also the ratio to it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "nn/nn.h"
#include "util/rng.h"
#include "nn/sched.h"
#include "models/unet.h"
#include "models/ddpm_train.h"
#include "util/util.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    struct unet_config c;
    struct unet u;
    struct sched s;
    struct sched_config sc;
    struct ddpm_train tr;
    struct ddpm_hparams h;
    struct rusage ru;
    struct rng r;
    char msg[256];
    const char *e = getenv("TORCH_TRAIN_IMGS");
    double torch = e ? atof(e) : 0, best = 1e30, cbest = 1e30;
    int B = 16, reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 3;
    int nt = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 2;
    size_t n = (size_t)B * 3 * 32 * 32;
    float *x0, *noise;
    int t[16];

    (void)argc;
    nn_blas_setup(argv, 0);
    nn_set_threads(nt);
    unet_config_cifar10(&c);
    if (unet_init(&u, &c, msg, sizeof msg) == -1) {
        fprintf(stderr, "bench_ddpm_train: %s\n", msg);
        return 1;
    }
    unet_init_closed_form(&u);
    sched_config_default(&sc);
    if (sched_init(&s, &sc, SCHED_DDPM, 1000, 0, msg, sizeof msg) == -1)
        return 1;
    ddpm_hparams_default(&h);
    h.total = 1000;
    h.warmup = 0;
    h.use_ema = 1;
    ddpm_train_init(&tr, &u, B, 1);
    x0 = xmalloc(n * sizeof(float));
    noise = xmalloc(n * sizeof(float));
    rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++)
        x0[i] = sinf(0.37f * (float)i);
    rng_normal_fill(&r, noise, n);
    for (int b = 0; b < B; b++)
        t[b] = (int)rng_below(&r, 1000);
    ddpm_train_step(&tr, &h, &s, x0, noise, t, B, NULL, NULL); /* warm-up */
    for (int k = 0; k < reps; k++) {
        double t0 = util_now(), c0 = cpu_now();
        ddpm_train_step(&tr, &h, &s, x0, noise, t, B, NULL, NULL);
        t0 = util_now() - t0;
        c0 = cpu_now() - c0;
        if (t0 < best)
            best = t0;
        if (c0 < cbest)
            cbest = c0;
    }
    getrusage(RUSAGE_SELF, &ru);
    printf("ddpm train step cifar10 batch 16 (fwd+bwd+clip+AdamW+EMA), %d threads: %.2f img/s", nt,
           B / best);
    if (torch > 0)
        printf(" (%.2fx PyTorch's %.2f img/s measured just before)", B / best / torch, torch);
    printf("; %.2f img per CPU-second; peak RSS %.0f MiB\n", B / cbest, ru.ru_maxrss / 1024.0);
    free(x0);
    free(noise);
    ddpm_train_free(&tr);
    sched_free(&s);
    unet_free(&u);
    return 0;
}
