/* prdc_compute (precision/recall k=3 and density/coverage k=5) on N x N sets of 2048-d
   features shaped like pool3 (non-negative, mean ~0.5), at the default threads. Three GEMM
   passes (real-real, gen-gen, real-gen): GFLOP/s counts 2*D*(3 N^2). The time grows as N^2:
   50,000 x 50,000 costs (50000/N)^2 times the largest case here. */
#include <stdio.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "eval/prdc.h"
#include "util/rng.h"
#include "util/util.h"

/* bench_prdc [N ...]: the sizes (default 1000 4000 8000) */
int main(int argc, char **argv)
{
    const int d = 2048;
    int64_t ns[16] = {1000, 4000, 8000};
    size_t nn = 3;
    if (argc > 1) {
        nn = 0;
        for (int i = 1; i < argc && nn < 16; i++)
            ns[nn++] = strtoll(argv[i], NULL, 10);
    }
    struct rng r;
    rng_seed(&r, 19);
    nn_set_threads(2);
    for (size_t c = 0; c < nn; c++) {
        int64_t n = ns[c];
        if (n < 6) {
            fprintf(stderr, "bench_prdc: N must be at least 6\n");
            return 2;
        }
        float *a = xmalloc((size_t)n * d * 4), *b = xmalloc((size_t)n * d * 4);
        for (int64_t i = 0; i < n * d; i++) {
            float u = rng_uniform(&r), v = rng_uniform(&r);
            a[i] = u * u;
            b[i] = v * v;
        }
        struct prdc_result res;
        char msg[256];
        double t0 = util_now();
        if (prdc_compute(&res, a, n, b, n, d, 3, 5, msg, sizeof msg) == -1) {
            fprintf(stderr, "bench_prdc: %s\n", msg);
            return 1;
        }
        double t = util_now() - t0;
        printf("prdc N=%lld D=%d: %.2f s, %.1f GFLOP/s (P %.4f R %.4f D %.4f C %.4f)\n",
               (long long)n, d, t, 2.0 * d * 3.0 * n * n / t / 1e9, res.precision,
               res.recall, res.density, res.coverage);
        fflush(stdout);
        free(a);
        free(b);
    }
    return 0;
}
