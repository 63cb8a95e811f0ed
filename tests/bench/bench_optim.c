/* adam_step, grad_clip_norm and ema_update over 35.7M parameters (the DDPM CIFAR-10 UNet).
   Compare: /usr/bin/python3 tests/bench/torch_optim.py */
#include "nn/optim.h"
#include "util/rng.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    size_t n = 35746307;
    float *p = xmalloc(n * 4), *g = xmalloc(n * 4), *m = xcalloc(n, 4), *v = xcalloc(n, 4),
          *s = xmalloc(n * 4);
    struct rng r;
    struct adam o = {1e-4f, 0.95f, 0.999f, 1e-8f, 1e-6f, 1};
    rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++)
        p[i] = s[i] = g[i] = rng_uniform(&r) - 0.5f;
    adam_step(&o, p, g, m, v, n, 1);
    int reps = 5;
    double t0 = util_now();
    for (int k = 0; k < reps; k++)
        adam_step(&o, p, g, m, v, n, k + 2);
    double t1 = util_now();
    for (int k = 0; k < reps; k++)
        grad_clip_norm(g, n, 1e9f);
    double t2 = util_now();
    for (int k = 0; k < reps; k++)
        ema_update_f64(s, p, n, 0.999);
    double t3 = util_now();
    printf("optim adamw_step n=%zu: %.1f ms\n", n, (t1 - t0) / reps * 1e3);
    printf("optim grad_clip_norm n=%zu: %.1f ms\n", n, (t2 - t1) / reps * 1e3);
    printf("optim ema_update n=%zu: %.1f ms\n", n, (t3 - t2) / reps * 1e3);
    free(p), free(g), free(m), free(v), free(s);
    return 0;
}
