/* Quality per step of every sampler on the closed-form model of issue 18: data x0 ~ N(0, s^2)
   (s = 0.5) has the exact noise prediction eps(x, t) = sqrt(1 - abar_t) x / (abar_t s^2 + 1 -
   abar_t). Samples from N(0,1) noise (seeded, standardised, 100000 per run) go through each sampler; the
   output is Gaussian with mean 0, so its 2-Wasserstein distance to the truth is |std - s|,
   printed per scheduler and step count. A sampler run, not a timed test:
       build/bench/bench_samplers [N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/rng.h"
#include "nn/sampler.h"
#include "util/util.h"

static double w2(struct sampler *s, double sd, int N)
{
    float *x = xmalloc((size_t)N * sizeof(float)), *xin = xmalloc((size_t)N * sizeof(float));
    float *eps = xmalloc((size_t)N * sizeof(float)), *z = xmalloc((size_t)N * sizeof(float));
    const float *ac = s->base.alphas_cumprod;
    struct rng r;
    double m = 0, v = 0;
    rng_seed(&r, 18);
    rng_normal_fill(&r, x, (size_t)N);
    /* standardised x_T: a deterministic (linear) sampler's W2 is then exact, free of the
       sample's own error (the stochastic ones keep ~ s / sqrt(2N)) */
    for (int k = 0; k < N; k++)
        m += x[k];
    m /= N;
    for (int k = 0; k < N; k++)
        v += (x[k] - m) * (x[k] - m);
    v = sqrt(v / N);
    for (int k = 0; k < N; k++)
        x[k] = (float)((x[k] - m) / v) * s->init_noise_sigma;
    m = v = 0;
    sampler_reset(s);
    for (int i = 0; i < s->n_calls; i++) {
        /* abar at a float t through the sigma table, linear between integers as Euler's */
        float t = s->t[i];
        int j = (int)floorf(t);
        double sg = sqrt((1 - ac[j]) / ac[j]);
        if (t > j && j + 1 < s->base.T)
            sg += (t - j) * (sqrt((1 - ac[j + 1]) / ac[j + 1]) - sg);
        double ab = 1 / (1 + sg * sg);
        sampler_scale_input(s, i, xin, x, (size_t)N);
        for (int k = 0; k < N; k++)
            eps[k] = (float)(sqrt(1 - ab) * xin[k] / (ab * sd * sd + 1 - ab));
        if (sampler_step_needs_noise(s, i))
            rng_normal_fill(&r, z, (size_t)N);
        sampler_step(s, i, x, eps, z, (size_t)N);
    }
    for (int k = 0; k < N; k++)
        m += x[k];
    m /= N;
    for (int k = 0; k < N; k++)
        v += (x[k] - m) * (x[k] - m);
    free(x);
    free(xin);
    free(eps);
    free(z);
    /* W2 of two Gaussians: sqrt(dmean^2 + dstd^2) */
    return sqrt(m * m + (sqrt(v / N) - sd) * (sqrt(v / N) - sd));
}

int main(int argc, char **argv)
{
    static const struct {
        const char *label;
        enum sampler_kind k;
        int order, prk;
    } ks[] = {{"ddpm", SAMPLER_DDPM, 0, 0}, {"ddim", SAMPLER_DDIM, 0, 0},
              {"dpm-solver++ 1", SAMPLER_DPM, 1, 0}, {"dpm-solver++ 2", SAMPLER_DPM, 2, 0},
              {"dpm-solver++ 3", SAMPLER_DPM, 3, 0}, {"sde-dpm-solver++ 2", SAMPLER_SDE_DPM, 2, 0},
              {"unipc 2", SAMPLER_UNIPC, 2, 0}, {"pndm", SAMPLER_PNDM, 0, 0},
              {"pndm --prk", SAMPLER_PNDM, 0, 1}, {"euler", SAMPLER_EULER, 0, 0},
              {"euler-a", SAMPLER_EULER_A, 0, 0}};
    static const int steps[] = {5, 10, 20, 50, 100, 1000};
    int N = argc > 1 ? atoi(argv[1]) : 100000;
    struct sched_config c;
    char msg[256];
    sched_config_default(&c);
    c.clip_sample = 0; /* the closed form is for unclipped data */
    printf("%-20s", "W2 (s = 0.5)");
    for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++)
        printf(" %9d", steps[j]);
    printf("\n");
    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
        printf("%-20s", ks[q].label);
        for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++) {
            struct sampler s;
            struct sampler_opts o = {steps[j], 0, ks[q].order, -1, ks[q].prk, 0};
            if (sampler_init(&s, &c, ks[q].k, &o, (size_t)N, msg, sizeof msg) == -1) {
                printf(" %9s", "-");
                continue;
            }
            printf(" %9.2g", w2(&s, 0.5, N));
            fflush(stdout);
            sampler_free(&s);
        }
        printf("\n");
    }
    return 0;
}
