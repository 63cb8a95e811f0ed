/* Driver for tests/cli/isa.bats (not a unit test binary: the Makefile builds test_*.c only):
   writes nn_linear_packed's output on fixed ragged shapes (rows, k and the panel count off
   every kernel's blocks) to stdout as raw floats, so that builds of nn_linear_packed.c for
   different instruction sets can be compared byte for byte. */
#include <stdio.h>
#include <stdlib.h>

#include "nn/nn.h"

/* the one symbol nn_linear_packed.c takes from the rest of the library (nn.c), so that the
   driver links without it, whatever build (sanitizers, another BUILD) made the library */
int nn_get_threads(void)
{
    return 2;
}

static void fill(float *x, size_t n, unsigned s)
{
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int)(s >> 9) - 4194304) / 4194304.0f;
    }
}

int main(void)
{
    static const int shapes[][3] = {{1, 1, 32}, {5, 17, 64}, {13, 385, 96}, {37, 1000, 160},
                                    {29, 769, 32}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int M = shapes[i][0], K = shapes[i][1], N = shapes[i][2];
        float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
        float *wp = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
        float *o = malloc(sizeof(float) * M * N);
        if (!a || !w || !wp || !b || !o)
            return 1;
        fill(a, (size_t)M * K, 1 + (unsigned)i);
        fill(w, (size_t)N * K, 100 + (unsigned)i);
        fill(b, (size_t)N, 200 + (unsigned)i);
        nn_pack_linear(wp, w, N, K);
        nn_linear_packed(o, N, a, K, wp, i % 2 ? b : NULL, M, K, N);
        fwrite(o, sizeof(float), (size_t)M * N, stdout);
        free(a), free(w), free(wp), free(b), free(o);
    }
    return 0;
}
