/* nn_sgemm_chain (nn_chain.c) against OpenBLAS on one thread, on the Winograd products'
   shapes: (OC x C) (C x T) with T = 256 (a full chunk of the padded forward), 1, 4, 16 and 64
   (the tiles of one image at 4x4, 8x8, 16x16 and 32x32: batch 1, where T <= 8 takes the
   kernel with lanes across rows), 2 and 8 (batch 2 at 4x4, 8x8), 1024 (batch 16 at 32x32 in
   one call). One line per
   shape: GFLOP/s of the chain kernel on T columns (A row-major, and chain_at: A transposed,
   the Winograd weights' layout), of OpenBLAS on T columns and on the 256 columns the padded
   forward runs; best of 7 alternating rounds, CPU time.
   Then the check: column j and row i of C give the same bits whatever the call's width, the
   column's place, the rows of the call, whether A comes transposed, and as a plain fmaf
   chain.
   usage: bench_gemm_chain [-c]  (-c: the check only) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn.h"
#include "util/util.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill(float *x, size_t n, unsigned s)
{
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* A (M,K) transposed into At (K,M) */
static void transpose(float *At, const float *A, int M, int K)
{
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            At[(size_t)k * M + i] = A[(size_t)i * K + k];
}

/* seconds of one call of kind (0 chain, 1 OpenBLAS, 2 chain on At) averaged over reps */
static double run(int kind, int reps, int M, int N, int K, const float *A, const float *At,
                  const float *B, float *C)
{
    double t0 = cpu_now();
    for (int r = 0; r < reps; r++) {
        if (kind == 0)
            nn_sgemm_chain(M, N, K, A, K, B, N, C, N);
        else if (kind == 2)
            nn_sgemm_chain_at(M, N, K, At, M, B, N, C, N);
        else
            nn_sgemm_serial(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    }
    return (cpu_now() - t0) / reps;
}

static int check(void)
{
    int M = 37, K = 300, N = 300, bad = 0;
    float *A = xmalloc((size_t)M * K * sizeof(float)), *B = xmalloc((size_t)K * N * sizeof(float));
    float *C = xmalloc((size_t)M * N * sizeof(float)), *D = xmalloc((size_t)M * N * sizeof(float));
    float *At = xmalloc((size_t)M * K * sizeof(float));
    fill(A, (size_t)M * K, 1);
    fill(B, (size_t)K * N, 2);
    transpose(At, A, M, K);
    nn_sgemm_chain(M, N, K, A, K, B, N, C, N);
    for (int i = 0; i < M; i++) /* the plain chain */
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int k = 0; k < K; k++)
                acc = fmaf(A[(size_t)i * K + k], B[(size_t)k * N + j], acc);
            bad += memcmp(&acc, &C[(size_t)i * N + j], 4) != 0;
        }
    for (int t = 0; t < 200; t++) { /* sub-calls: rows i0..i1, columns j0..j1 */
        unsigned s = 77u + t * 2654435761u;
        int i0 = s % M, j0 = (s >> 8) % N;
        int i1 = i0 + 1 + (int)((s >> 16) % (M - i0)), j1 = j0 + 1 + (int)((s >> 20) % (N - j0));
        for (int at = 0; at < 2; at++) {
            if (at)
                nn_sgemm_chain_at(i1 - i0, j1 - j0, K, At + i0, M, B + j0, N, D, j1 - j0);
            else
                nn_sgemm_chain(i1 - i0, j1 - j0, K, A + (size_t)i0 * K, K, B + j0, N, D,
                               j1 - j0);
            for (int i = i0; i < i1; i++)
                bad += memcmp(D + (size_t)(i - i0) * (j1 - j0), C + (size_t)i * N + j0,
                              (size_t)(j1 - j0) * 4) != 0;
        }
    }
    for (int n = 1; n <= 33; n++) /* the narrow calls, whole rows: the row-lane kernel */
        for (int j0 = 0; j0 + n <= N; j0 += 37)
            for (int at = 0; at < 2; at++) {
                if (at)
                    nn_sgemm_chain_at(M, n, K, At, M, B + j0, N, D, n);
                else
                    nn_sgemm_chain(M, n, K, A, K, B + j0, N, D, n);
                for (int i = 0; i < M; i++)
                    bad += memcmp(D + (size_t)i * n, C + (size_t)i * N + j0, (size_t)n * 4) != 0;
            }
    printf("check: %s (%d mismatching rows or elements)\n", bad ? "FAIL" : "ok", bad);
    free(A), free(B), free(C), free(D), free(At);
    return bad != 0;
}

int main(int argc, char **argv)
{
    static const int shapes[][2] = {{128, 128}, {256, 256}, {256, 512}, {512, 256}, {128, 256}};
    static const int Ts[] = {256, 1, 2, 4, 8, 16, 64, 1024};
    if (check())
        return 1;
    if (argc > 1 && strcmp(argv[1], "-c") == 0)
        return 0;
    nn_set_threads(1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++) {
            int OC = shapes[s][0], C = shapes[s][1], T = Ts[t], TP = T < 256 ? 256 : T;
            float *A = xmalloc((size_t)OC * C * sizeof(float));
            float *At = xmalloc((size_t)OC * C * sizeof(float));
            float *B = xmalloc((size_t)C * TP * sizeof(float));
            float *Cm = xmalloc((size_t)OC * TP * sizeof(float));
            fill(A, (size_t)OC * C, 3);
            transpose(At, A, OC, C);
            fill(B, (size_t)C * TP, 4);
            double fl = 2.0 * OC * C * T, best[4] = {1e9, 1e9, 1e9, 1e9};
            int reps = (int)(2e8 / fl) + 1;
            for (int round = 0; round < 7; round++) {
                double x;
                x = run(0, reps, OC, T, C, A, At, B, Cm);
                best[0] = x < best[0] ? x : best[0];
                x = run(1, reps, OC, T, C, A, At, B, Cm);
                best[1] = x < best[1] ? x : best[1];
                x = run(1, reps, OC, TP, C, A, At, B, Cm);
                best[2] = x < best[2] ? x : best[2];
                x = run(2, reps, OC, T, C, A, At, B, Cm);
                best[3] = x < best[3] ? x : best[3];
            }
            printf("OC=%d C=%d T=%d chain=%.1f chain_at=%.1f blas=%.1f blas_padded=%.1f GFLOP/s "
                   "chain_at/blas=%.2f time blas_padded/chain_at=%.2f\n",
                   OC, C, T, fl / best[0] * 1e-9, fl / best[3] * 1e-9, fl / best[1] * 1e-9,
                   fl / best[2] * 1e-9, best[1] / best[3], best[2] / best[3]);
            fflush(stdout);
            free(A), free(At), free(B), free(Cm);
        }
    return 0;
}
