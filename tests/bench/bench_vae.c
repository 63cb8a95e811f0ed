/* Training throughput of the study's VAE (latent 128, batch 64, Adam): images per second of
   vae_forward + vae_backward + adam_step, best of 3 two-second runs, at 1 and 2 threads; and
   decoding throughput (vae-sample). With TORCH_VAE_IMGS (PyTorch's img/s on 2 threads, which
   tests/bench/bench_vae.sh measures just before, in the same run) also the ratio to it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/nn.h"
#include "nn/optim.h"
#include "util/rng.h"
#include "util/util.h"
#include "models/vae.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* images/s (wall) of the best run; *per_cpu: images per CPU-second over all runs, which a
   busy machine disturbs less */
static double bench_train(int threads, int B, int L, double *per_cpu)
{
    struct vae m;
    struct rng r;
    struct adam o = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    float *x, *eps, *am, *av;
    double best = 0;
    long step = 0;

    nn_set_threads(threads);
    vae_init(&m, L, 1.0f);
    rng_seed(&r, 1);
    vae_init_params(&m, &r);
    vae_batch_alloc(&m, B);
    x = xmalloc((size_t)B * VAE_D * sizeof(float));
    eps = xmalloc((size_t)B * L * sizeof(float));
    am = xcalloc(m.n_params, sizeof(float));
    av = xcalloc(m.n_params, sizeof(float));
    for (size_t i = 0; i < (size_t)B * VAE_D; i++)
        x[i] = 2 * rng_uniform(&r) - 1;
    double c0 = 0, imgs = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = util_now(), t;
        long n = 0;
        if (rep == 1)
            c0 = cpu_now();
        do {
            rng_normal_fill(&r, eps, (size_t)B * L);
            vae_zero_grad(&m);
            vae_forward(&m, x, eps, B, 0, NULL, NULL);
            vae_backward(&m, B);
            adam_step(&o, m.params, m.grads, am, av, m.n_params, ++step);
            n++;
        } while ((t = util_now() - t0) < (rep == 0 ? 0.3 : 2.0));
        if (rep > 0 && n * B / t > best)
            best = n * B / t;
        if (rep > 0)
            imgs += (double)n * B;
    }
    *per_cpu = imgs / (cpu_now() - c0);
    free(x), free(eps), free(am), free(av);
    vae_free(&m);
    return best;
}

static double bench_decode(int threads, int B, int L)
{
    struct vae m;
    struct rng r;
    float *z;
    double best = 0;

    nn_set_threads(threads);
    vae_init(&m, L, 1.0f);
    rng_seed(&r, 1);
    vae_init_params(&m, &r);
    vae_batch_alloc(&m, B);
    z = xmalloc((size_t)B * L * sizeof(float));
    rng_normal_fill(&r, z, (size_t)B * L);
    for (int rep = 0; rep < 3; rep++) {
        double t0 = util_now(), t;
        long n = 0;
        do {
            vae_decode(&m, z, B, 0);
            n++;
        } while ((t = util_now() - t0) < 1.0);
        if (n * B / t > best)
            best = n * B / t;
    }
    free(z);
    vae_free(&m);
    return best;
}

int main(int argc, char **argv)
{
    const char *e = getenv("TORCH_VAE_IMGS");
    double torch = e ? atof(e) : 0;
    nn_blas_setup(argv, 0); /* also makes idle OpenMP threads sleep, as in the tools */
    (void)argc;
    for (int t = 1; t <= 2; t++) {
        double cpu, ips = bench_train(t, 64, 128, &cpu);
        printf("bench_vae: train batch 64 latent 128 threads %d: %.0f img/s", t, ips);
        if (torch > 0)
            printf(" (%.2fx PyTorch's %.0f img/s on 2 threads, measured just before)",
                   ips / torch, torch);
        printf(", %.0f img per CPU-second\n", cpu);
    }
    for (int t = 1; t <= 2; t++)
        printf("bench_vae: decode batch 256 latent 128 threads %d: %.0f img/s\n", t,
               bench_decode(t, 256, 128));
    return 0;
}
