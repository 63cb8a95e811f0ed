/* Driver for tests/cli/isa.bats: writes nn_wino4's transforms' outputs (the weight, input and
   output transforms, with every op nn_wino4_forward_fused takes into them) on ragged shapes
   to stdout as raw floats, so that builds of nn_wino4.c for different instruction sets (its
   AVX-512 intrinsics, the plain C loops elsewhere) can be compared byte for byte. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "nn/nn_wino4.h"
#include "util/util.h"

/* what nn_wino4.c takes from the rest of the library, here so that the driver links with
   that one object: the GEMMs as plain fmaf chains (this file is built once, so both builds
   run the same products; they are nn_chain.c's business, not this test's) */
void nn_sgemm_chain(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s = fmaf(A[(size_t)i * lda + k], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = s;
        }
}

/* the same on A transposed (U from nn_wino4_weights_t) */
void nn_sgemm_chain_at(int M, int N, int K, const float *At, int ldat, const float *B, int ldb,
                       float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s = fmaf(At[(size_t)k * ldat + i], B[(size_t)k * ldb + j], s);
            C[(size_t)i * ldc + j] = s;
        }
}

double util_now(void)
{
    return 0.0;
}

static void fill(float *x, size_t n, unsigned s, float scale)
{
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * (float)((int)(s >> 9) - 4194304) / 4194304.0f;
    }
}

int main(void)
{
    /* N, C, H, W, OC: edges off the 4x4 tiles, maps over 64 tiles (chunked), 16 tiles (the
       transform inside the products), several images a chunk */
    static const int shapes[][5] = {{3, 5, 7, 9, 4},  {2, 3, 1, 1, 2},   {1, 2, 33, 31, 3},
                                    {1, 2, 9, 290, 2}, {2, 4, 5, 17, 3},  {5, 3, 16, 16, 4},
                                    {16, 4, 4, 4, 3},  {17, 2, 8, 8, 33}, {2, 40, 32, 32, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int N = shapes[i][0], C = shapes[i][1], H = shapes[i][2], W = shapes[i][3];
        int OC = shapes[i][4];
        size_t nin = (size_t)N * C * H * W, nout = (size_t)N * OC * H * W;
        size_t nw = (size_t)OC * C * 9, nu = 36 * (size_t)OC * C;
        size_t ns = nn_wino4_scratch(N, C, H, W, OC);
        float *in = malloc(nin * sizeof(float)), *out = malloc(nout * sizeof(float));
        float *res = malloc(nout * sizeof(float)), *w = malloc(nw * sizeof(float));
        /* 3 empty columns before, 2 after */
        size_t T = (size_t)N * ((H + 3) / 4) * ((W + 3) / 4) + 5, ps = nn_wino4_slot((size_t)C * T);
        float *U = malloc(nu * sizeof(float)), *V = malloc(36 * ps * sizeof(float));
        float *scr = malloc(ns * sizeof(float)), *b = malloc(OC * sizeof(float));
        float *sc = malloc((size_t)N * C * sizeof(float)), *sh = malloc((size_t)N * C * sizeof(float));
        float *add = malloc((size_t)N * OC * sizeof(float));
        if (!in || !out || !res || !w || !U || !V || !scr || !b || !sc || !sh || !add)
            return 1;
        fill(in, nin, 1 + (unsigned)i, 4.0f);
        fill(res, nout, 50 + (unsigned)i, 1.0f);
        fill(w, nw, 100 + (unsigned)i, 0.3f);
        fill(b, OC, 200 + (unsigned)i, 1.0f);
        fill(sc, (size_t)N * C, 300 + (unsigned)i, 2.0f);
        fill(sh, (size_t)N * C, 400 + (unsigned)i, 1.0f);
        fill(add, (size_t)N * OC, 500 + (unsigned)i, 1.0f);
        nn_wino4_weights_t(U, w, C, OC); /* the transposed layout's chunks, over OC */
        fwrite(U, sizeof(float), nu, stdout);
        nn_wino4_weights(U, w, C, OC);
        fwrite(U, sizeof(float), nu, stdout);
        /* the tiles at an offset in wider rows, the empty columns zeroed */
        nn_wino4_input_tiles(V, T, 3, in, N, C, H, W);
        for (int p = 0; p < 36; p++) /* not the floats between the slots */
            fwrite(V + p * ps, sizeof(float), (size_t)C * T, stdout);
        nn_wino4_forward(out, scr, in, U, b, N, C, H, W, OC, NULL);
        fwrite(out, sizeof(float), nout, stdout);
        struct nn_wino4_fuse f = {NULL, NULL, add, res};
        if (nn_wino4_pre_fits(H, W))
            f.scale = sc, f.shift = sh;
        nn_wino4_forward_fused(out, scr, U, in, &f, NULL, w, b, N, C, H, W, OC, NULL);
        fwrite(out, sizeof(float), nout, stdout);
        free(in), free(out), free(res), free(w), free(U), free(V), free(scr), free(b);
        free(sc), free(sh), free(add);
    }
    return 0;
}
