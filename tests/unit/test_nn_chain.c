/* nn_sgemm_chain, the fixed-order SGEMM of the Winograd products (common/nn/nn_chain.c),
   against its definition: every C[i][j] is the fmaf chain over k = 0..K-1 in order from 0,
   written here as a plain loop. The bits must be equal for shapes that hit every register
   tile and tail (M, N, K not multiples of 4, 6, 8, 12, 16, 64; K past the 256-deep blocks),
   for strided A, B and C, and for any sub-range of rows and columns of a call (what lets the
   UNet drop its padded GEMM chunks); and the values must be a matrix product (a float64 loop,
   within float32 rounding of the sum). The calls of few columns (the Winograd products of one
   image: 1, 4, 16 tiles) take another kernel, lanes across rows, hence the small-N shapes
   around its row and k blocks (64, 128) and its widest call. nn_sgemm_chain_at, the same on A
   stored transposed (the Winograd weights' layout), must give the same bits on every shape,
   and so must the Winograd conv on the transposed weights (nn_wino4_weights_t,
   nn_wino4_forward_t) as on the row-major ones; nn_sgemm_chain_bt, B stored transposed (the
   Winograd weight gradient's M V^T), the same bits on every shape too. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_wino4.h"
#include "test.h"

static uint64_t rng_state = 88172645463325252ull;

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
        x[i] = (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1);
    }
}

/* the definition: one fmaf chain per element, k in order */
static void chain_ref(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
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

static void matmul_f64(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[(size_t)i * lda + k] * B[(size_t)k * ldb + j];
            C[(size_t)i * ldc + j] = (float)s;
        }
}

/* one shape, A (M,K) in rows of lda, B (K,N) in rows of ldb, C in rows of ldc */
static void test_shape(int M, int N, int K, int pad)
{
    int lda = K + pad, ldb = N + pad, ldc = N + 2 * pad;
    size_t na = (size_t)M * lda, nb = (size_t)K * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
    float *C = malloc(nc * sizeof(float)), *R = malloc(nc * sizeof(float));
    float *D = malloc(nc * sizeof(float));
    fill(A, na);
    fill(B, nb);
    /* the padding columns of C are left alone */
    for (size_t i = 0; i < nc; i++)
        C[i] = R[i] = D[i] = -7.0f;
    nn_sgemm_chain(M, N, K, A, lda, B, ldb, C, ldc);
    chain_ref(M, N, K, A, lda, B, ldb, R, ldc);
    CHECK(memcmp(C, R, nc * sizeof(float)) == 0,
          "M=%d N=%d K=%d (lda %d ldb %d ldc %d): the bits of one fmaf chain per element", M, N,
          K, lda, ldb, ldc);
    /* A transposed, rows of M + pad */
    int ldat = M + pad;
    float *At = malloc((size_t)K * ldat * sizeof(float));
    for (size_t i = 0; i < (size_t)K * ldat; i++)
        At[i] = NAN; /* the padding must not be read into C */
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            At[(size_t)k * ldat + i] = A[(size_t)i * lda + k];
    for (size_t i = 0; i < nc; i++)
        D[i] = -7.0f;
    nn_sgemm_chain_at(M, N, K, At, ldat, B, ldb, D, ldc);
    CHECK(memcmp(D, R, nc * sizeof(float)) == 0,
          "M=%d N=%d K=%d (ldat %d ldb %d ldc %d): A transposed, the same bits", M, N, K, ldat,
          ldb, ldc);
    free(At);
    /* B transposed, rows of K + pad */
    int ldbt = K + pad;
    float *Bt = malloc((size_t)N * ldbt * sizeof(float));
    for (size_t i = 0; i < (size_t)N * ldbt; i++)
        Bt[i] = NAN;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            Bt[(size_t)j * ldbt + k] = B[(size_t)k * ldb + j];
    for (size_t i = 0; i < nc; i++)
        D[i] = -7.0f;
    nn_sgemm_chain_bt(M, N, K, A, lda, Bt, ldbt, D, ldc);
    CHECK(memcmp(D, R, nc * sizeof(float)) == 0,
          "M=%d N=%d K=%d (lda %d ldbt %d ldc %d): B transposed, the same bits", M, N, K, lda,
          ldbt, ldc);
    free(Bt);
    matmul_f64(M, N, K, A, lda, B, ldb, D, ldc);
    char name[96];
    snprintf(name, sizeof name, "M=%d N=%d K=%d: a matrix product (float64 loop)", M, N, K);
    test_close(name, C, D, nc, 1e-5 * sqrt((double)K), 1e-5);
    free(A);
    free(B);
    free(C);
    free(R);
    free(D);
}

/* rows [r0, r0+m) and columns [c0, c0+n) of one product, computed by a call of that size
   alone: the same bits as inside the whole call */
static void test_subranges(int M, int N, int K)
{
    float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
    float *C = malloc((size_t)M * N * sizeof(float)), *S = malloc((size_t)M * N * sizeof(float));
    int bad = 0, tried = 0;
    fill(A, (size_t)M * K);
    fill(B, (size_t)K * N);
    nn_sgemm_chain(M, N, K, A, K, B, N, C, N);
    for (int m = 1; m <= M; m += 1 + m / 2)
        for (int n = 1; n <= N; n += 1 + n / 3)
            for (int r0 = 0; r0 + m <= M; r0 += 1 + 2 * m)
                for (int c0 = 0; c0 + n <= N; c0 += 1 + 3 * n) {
                    nn_sgemm_chain(m, n, K, A + (size_t)r0 * K, K, B + c0, N, S, n);
                    for (int i = 0; i < m; i++)
                        if (memcmp(S + (size_t)i * n, C + (size_t)(r0 + i) * N + c0,
                                   (size_t)n * sizeof(float)) != 0) {
                            if (!bad)
                                printf("# rows %d+%d, columns %d+%d differ\n", r0, m, c0, n);
                            bad++;
                            break;
                        }
                    tried++;
                }
    CHECK(!bad, "M=%d N=%d K=%d: %d sub-calls give the bits of the whole call (%d differ)", M,
          N, K, tried, bad);
    free(A);
    free(B);
    free(C);
    free(S);
}

/* a 3x3 conv C -> OC on N images of H x W, U row-major and transposed: the same bits */
static void test_wino_t(int N, int C, int OC, int H, int W)
{
    size_t ni = (size_t)N * C * H * W, no = (size_t)N * OC * H * W, nw = (size_t)OC * C * 9;
    size_t nu = 36 * (size_t)C * OC, ns = nn_wino4_scratch(N, C, H, W, OC);
    float *in = malloc(ni * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *b = malloc((size_t)OC * sizeof(float)), *U = malloc(nu * sizeof(float));
    float *Ut = malloc(nu * sizeof(float)), *s = malloc(ns * sizeof(float));
    float *o1 = malloc(no * sizeof(float)), *o2 = malloc(no * sizeof(float));
    fill(in, ni);
    fill(w, nw);
    fill(b, (size_t)OC);
    nn_wino4_weights(U, w, C, OC);
    nn_wino4_weights_t(Ut, w, C, OC);
    int same = 1;
    for (int p = 0; p < 36 && same; p++)
        for (int oc = 0; oc < OC && same; oc++)
            for (int c = 0; c < C && same; c++)
                same = memcmp(&U[((size_t)p * OC + oc) * C + c], &Ut[((size_t)p * C + c) * OC + oc],
                              sizeof(float)) == 0;
    CHECK(same, "C=%d OC=%d: nn_wino4_weights_t is nn_wino4_weights transposed", C, OC);
    nn_wino4_forward(o1, s, in, U, b, N, C, H, W, OC, NULL);
    nn_wino4_forward_t(o2, s, in, Ut, b, N, C, H, W, OC, NULL);
    CHECK(memcmp(o1, o2, no * sizeof(float)) == 0,
          "N=%d C=%d OC=%d %dx%d: the Winograd conv on U transposed, the same bits", N, C, OC, H,
          W);
    free(in), free(w), free(b), free(U), free(Ut), free(s), free(o1), free(o2);
}

int main(void)
{
    static const int shapes[][3] = {
        {1, 1, 1},   {1, 17, 3},   {5, 1, 9},    {6, 64, 32},  {7, 65, 33},
        {12, 16, 8}, {13, 47, 70}, {25, 100, 5}, {36, 257, 128}, {19, 31, 300},
        {64, 256, 256}, {3, 600, 513},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        test_shape(shapes[i][0], shapes[i][1], shapes[i][2], 0);
        test_shape(shapes[i][0], shapes[i][1], shapes[i][2], 3);
    }
    static const int small_n[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 24, 25, 33};
    static const int small_mk[][2] = {{1, 1},    {15, 16},  {17, 127}, {63, 128},
                                      {64, 129}, {65, 300}, {130, 33}, {256, 256}};
    for (size_t n = 0; n < sizeof small_n / sizeof small_n[0]; n++)
        for (size_t i = 0; i < sizeof small_mk / sizeof small_mk[0]; i++)
            test_shape(small_mk[i][0], small_n[n], small_mk[i][1], n % 2 ? 5 : 0);
    test_subranges(29, 70, 40);
    test_subranges(130, 9, 150);
    test_subranges(13, 300, 260);
    test_wino_t(1, 37, 70, 4, 4);
    test_wino_t(3, 64, 130, 8, 8);
    test_wino_t(2, 40, 64, 16, 16);
    test_wino_t(1, 33, 20, 11, 7);
    return test_done();
}
