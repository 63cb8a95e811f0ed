/* nn_sgemm_chain: C (M,N) = A (M,K) B (K,N), row-major, where every C[i][j] is one fused
   multiply-add chain over k = 0 .. K-1 in order, starting from 0: acc = fmaf(A[i][k], B[k][j],
   acc). Vectors run across j (independent columns), k is never split or reordered, so an
   element's bits depend on its row of A and column of B alone: not on M, N, the place of the
   element in the call, the blocking, the vector width or the instruction set (plain C uses
   fmaf, which rounds once as the vector FMAs do). Callers that must give the same bits for a
   column whatever the batch around it (the Winograd products, nn_wino4.c) need no padding.
   Blocking: column panels of NB, row blocks of R rows x NV vectors in registers, k in blocks
   of KB with C stored and reloaded between blocks (a float accumulator stored and reloaded
   is the same float, so the chain is unchanged). */
#include "nn/nn.h"

#include <math.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
#define CH_R 6   /* rows of a block of CH_NV vectors */
#define CH_R1 12 /* rows of a block of one vector: enough chains to hide the FMA latency */
#define CH_NV 4
typedef __m512 vec;
typedef __mmask16 vmask;
#define V_ZERO() _mm512_setzero_ps()
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_LOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STORE(p, v, m) _mm512_mask_storeu_ps(p, m, v)
static vmask ch_mask(int n)
{
    return n >= VL ? (vmask)0xffff : (vmask)((1u << n) - 1);
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 8
#define CH_R 4
#define CH_R1 8
#define CH_NV 3
typedef __m256 vec;
typedef __m256i vmask;
#define V_ZERO() _mm256_setzero_ps()
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_LOAD(p, m) _mm256_maskload_ps(p, m)
#define V_STORE(p, v, m) _mm256_maskstore_ps(p, m, v)
static vmask ch_mask(int n)
{
    int k = n >= VL ? VL : n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

#ifdef VL
/* R rows (at most CH_R, or CH_R1 when nv is 1) x nv vectors (the last masked by ml) of C,
   over the kn columns of A and rows of B given (a block of k): from 0 when fresh (the first
   block), else from what C holds */
static inline __attribute__((always_inline)) void
ch_block(int R, int nv, int fresh, int kn, const float *A, int lda, const float *B, int ldb,
         float *C, int ldc, vmask mf, vmask ml)
{
    vec acc[CH_R1][CH_NV];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = fresh ? V_ZERO()
                              : V_LOAD(C + (size_t)r * ldc + v * VL, v == nv - 1 ? ml : mf);
    for (int k = 0; k < kn; k++) {
        vec b[CH_NV];
        const float *bk = B + (size_t)k * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            b[v] = V_LOAD(bk + v * VL, v == nv - 1 ? ml : mf);
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            vec a = V_BCAST(A + (size_t)r * lda + k);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[r][v] = V_FMA(a, b[v], acc[r][v]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            V_STORE(C + (size_t)r * ldc + v * VL, acc[r][v], v == nv - 1 ? ml : mf);
}

/* the full-width row blocks, then the rows left one at a time */
static void ch_panel(int nv, int M, int fresh, int kn, const float *A, int lda, const float *B,
                     int ldb, float *C, int ldc, vmask ml)
{
    vmask mf = ch_mask(VL);
    int i = 0;
#define CH_ROWS(NV, R)                                                                       \
    do {                                                                                     \
        for (; i + (R) <= M; i += (R))                                                       \
            ch_block(R, NV, fresh, kn, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, \
                     ldc, mf, ml);                                                           \
        for (; i < M; i++)                                                                   \
            ch_block(1, NV, fresh, kn, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, \
                     ldc, mf, ml);                                                           \
    } while (0)
    switch (nv) {
    case 1: CH_ROWS(1, CH_R1); break;
    case 2: CH_ROWS(2, CH_R); break;
    case 3: CH_ROWS(3, CH_R); break;
#if CH_NV > 3
    case 4: CH_ROWS(4, CH_R); break;
#endif
    }
#undef CH_ROWS
}
#endif

#ifndef CH_KB
#define CH_KB 256
#endif

void nn_sgemm_chain(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = 0;
        return;
    }
#ifdef VL
    const int NB = CH_NV * VL;
    for (int k0 = 0; k0 < K; k0 += CH_KB) {
        int kn = K - k0 < CH_KB ? K - k0 : CH_KB, fresh = k0 == 0;
        const float *Ak = A + k0, *Bk = B + (size_t)k0 * ldb; /* this block of k */
        for (int j = 0; j < N; j += NB) {
            int w = N - j < NB ? N - j : NB, nv = (w + VL - 1) / VL;
            vmask ml = ch_mask(w - (nv - 1) * VL);
            if (N <= NB) {
                ch_panel(nv, M, fresh, kn, Ak, lda, Bk + j, ldb, C + j, ldc, ml);
                continue;
            }
            /* the panel's rows of this block copied contiguous: rows of B a power of two
               apart share cache sets */
            float pb[CH_KB * CH_NV * VL] __attribute__((aligned(64)));
            vmask mf = ch_mask(VL);
            for (int k = 0; k < kn; k++)
                for (int v = 0; v < nv; v++)
                    V_STORE(pb + (size_t)k * NB + v * VL,
                            V_LOAD(Bk + (size_t)k * ldb + j + v * VL, v == nv - 1 ? ml : mf), mf);
            ch_panel(nv, M, fresh, kn, Ak, lda, pb, NB, C + j, ldc, ml);
        }
    }
#else
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int k = 0; k < K; k++)
                acc = fmaf(A[(size_t)i * lda + k], B[(size_t)k * ldb + j], acc);
            C[(size_t)i * ldc + j] = acc;
        }
#endif
}
