/* Linear layers on weights packed once (nn_pack_linear): out (M,N) = in (M,K) W^T + b, W (N,K)
   as torch.nn.Linear stores it, N a multiple of NN_PACK_NR.

   Why not OpenBLAS: DINOv2 runs the same weights over every token of a batch, and OpenBLAS
   sums an element in an order that depends on its place in the call (nn.c), so the ViT had to
   run one image (257 rows) at a time to keep features independent of the batch; each image
   then streamed all 1.2 GB of weights through the cache and repacked them. Here every output
   element is one fused multiply-add chain from its bias over k = 0 .. K-1 in order (k blocks
   of KC, the float stored in C between blocks, which changes nothing), so its bits
   depend on its row of in and column of W alone: images can share the GEMMs, and the split
   between threads (by column panels) is free.

   Layout: W packed in panels of NR = 32 output columns, each panel (K, 32) row-major, so the
   micro-kernel reads its two vectors of B per k contiguously. Measured (CPU time, 1 thread,
   1028 x 1024 x 4096 and the ViT's other shapes, on a loaded machine): 160-175 GFLOP/s
   against OpenBLAS's 145-165 on the same shapes as nn_linear_forward runs them (12 rows:
   160-168). A block of at most 14 rows of in
   by KC is copied k-major (14 floats per k) to a buffer that stays in L1, then runs over the
   thread's panels (their KC rows stay in L2): 14 x 2 vector accumulators, 14 broadcasts and 2
   loads per 28 FMAs. */
#include <omp.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_transpose.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define NR NN_PACK_NR
#if defined(__AVX512F__)
#define MR 14 /* 28 accumulators, 2 vectors of B, 1 broadcast: 31 of the 32 registers */
#else
#define MR 12 /* two blocks of the AVX2 kernel's 6 rows */
#endif
#ifndef KC
#define KC 384 /* A block 18 KB in L1; 16 panels of B 786 KB in L2 */
#endif
#define PF_B 16  /* k steps ahead that B is prefetched to L1 */
#define NC 16 /* panels a sweep: their KC rows stay in L2 */

void nn_pack_linear(float *wp, const float *w, int N, int K)
{
#pragma omp parallel for schedule(static) if ((size_t)N * K > 65536)
    for (int p = 0; p < N / NR; p++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < NR; c++)
                wp[((size_t)p * K + k) * NR + c] = w[((size_t)p * NR + c) * K + k];
}

#if defined(__AVX512F__)
/* C rows 0..R-1 (R <= MR), columns 0..31 (+)= A block (kc, MR) x B panel rows (kc, 32) */
static inline __attribute__((always_inline)) void
kern(int R, int kc, const float *ap, const float *bp, float *C, int ldc, const float *bias)
{
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        acc[r][0] = bias != NULL ? _mm512_loadu_ps(bias) : _mm512_loadu_ps(C + (size_t)r * ldc);
        acc[r][1] = bias != NULL ? _mm512_loadu_ps(bias + 16)
                                 : _mm512_loadu_ps(C + (size_t)r * ldc + 16);
    }
    /* the next panel's C tile: it was written a whole k block ago and has left the cache */
    for (int r = 0; r < R; r++) {
        _mm_prefetch((const char *)(C + (size_t)r * ldc + NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)r * ldc + NR + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 2 /* half the loop's counter updates: 1-2% measured, data in L1/L2 */
    for (int k = 0; k < kc; k++) {
        /* measured 5-10% faster than leaving B's stream from L2 to the hardware prefetcher */
        _mm_prefetch((const char *)(bp + (size_t)(k + PF_B) * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + (size_t)(k + PF_B) * NR + 16), _MM_HINT_T0);
        __m512 b0 = _mm512_loadu_ps(bp + (size_t)k * NR), b1 = _mm512_loadu_ps(bp + (size_t)k * NR + 16);
#pragma GCC unroll 14
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(ap[k * MR + r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        _mm512_storeu_ps(C + (size_t)r * ldc, acc[r][0]);
        _mm512_storeu_ps(C + (size_t)r * ldc + 16, acc[r][1]);
    }
}

static void kern_r(int R, int kc, const float *ap, const float *bp, float *C, int ldc,
                   const float *bias)
{
    switch (R) {
#define K_(n) case n: kern(n, kc, ap, bp, C, ldc, bias); break;
        K_(1) K_(2) K_(3) K_(4) K_(5) K_(6) K_(7) K_(8) K_(9) K_(10) K_(11) K_(12)
        K_(13) K_(14)
#undef K_
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
/* AVX2 machines (and OPENBLAS_CORETYPE=Haswell's kind): the same FMA chains in 8-wide
   vectors, so the same bits as the AVX-512 kernel. 16 registers: a half panel (16 columns)
   by 6 rows, 12 accumulators, 2 vectors of B and a broadcast, so 8 loads per 12 FMAs (the
   shape of OpenBLAS's Haswell kernel); 3 rows by the whole panel measured half OpenBLAS's
   rate, its B reloaded for every row. */
#define MR2 6
static inline __attribute__((always_inline)) void
kern2(int R, int kc, const float *ap, const float *bp, float *C, int ldc, const float *bias)
{
    __m256 acc[MR2][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 2; v++)
            acc[r][v] = _mm256_loadu_ps(bias != NULL ? bias + 8 * v : C + (size_t)r * ldc + 8 * v);
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + (size_t)k * NR), b1 = _mm256_loadu_ps(bp + (size_t)k * NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 a = _mm256_broadcast_ss(ap + k * MR + r);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 2; v++)
            _mm256_storeu_ps(C + (size_t)r * ldc + 8 * v, acc[r][v]);
}

static void kern_r(int R, int kc, const float *ap, const float *bp, float *C, int ldc,
                   const float *bias)
{
    for (int h = 0; h < NR; h += 16)
        for (int r0 = 0; r0 < R; r0 += MR2) {
            const float *a = ap + r0, *b = bp + h, *bb = bias != NULL ? bias + h : NULL;
            float *c = C + (size_t)r0 * ldc + h;
            switch (R - r0 < MR2 ? R - r0 : MR2) {
#define K_(n) case n: kern2(n, kc, a, b, c, ldc, bb); break;
                K_(1) K_(2) K_(3) K_(4) K_(5) K_(6)
#undef K_
            }
        }
}
#else
/* the same chains in plain C: fmaf would be a libm call on builds without FMA, so this path
   multiplies and adds (other bits than the AVX-512 and AVX2 ones, the same on every run) */
static void kern_r(int R, int kc, const float *ap, const float *bp, float *C, int ldc,
                   const float *bias)
{
    for (int r = 0; r < R; r++) {
        float acc[NR];
        memcpy(acc, bias != NULL ? bias : C + (size_t)r * ldc, sizeof acc);
        for (int k = 0; k < kc; k++) {
            float a = ap[k * MR + r];
            const float *b = bp + (size_t)k * NR;
#pragma omp simd
            for (int c = 0; c < NR; c++)
                acc[c] += a * b[c];
        }
        memcpy(C + (size_t)r * ldc, acc, sizeof acc);
    }
}
#endif

/* one product: panel p of out starts at out + p * pstride; in is (M,K), or (K,M) when ta */
struct gemm {
    float *out;
    int ldo;
    size_t pstride;
    const float *in;
    int ldi, ta;
    const float *wp, *b;
    int M, K;
    void (*ep)(float *x, size_t n); /* on each finished row piece of out, or NULL */
};

#if defined(__AVX512F__)
/* 14 rows (ld apart) by 16 k of in to ap, k-major: a 16 x 16 transpose in registers (rows 14
   and 15 zero, not stored). The scalar copy took as long as the block's kernel on one panel
   (14 x 384 x 32: 99 -> 133 GFLOP/s with this); 1-2% of the ViT's products. */
static inline void pack_t16(float *ap, const float *in, int ld)
{
    __m512 r[16];
    for (int i = 0; i < 16; i++)
        r[i] = i < MR ? _mm512_loadu_ps(in + (size_t)i * ld) : _mm512_setzero_ps();
    nn_transpose16(r);
    for (int k = 0; k < 16; k++)
        _mm512_mask_storeu_ps(ap + k * MR, (1 << MR) - 1, r[k]);
}
#endif

/* rows i0 .. i0+R-1, k0 .. k0+kc-1 of in, k-major (MR floats a k) */
static void pack_a(float *ap, const struct gemm *g, int i0, int R, int k0, int kc)
{
    if (g->ta) {
        if (R == MR) /* a fixed size the compiler inlines: a libc call a k cost as much as
                        the two panels of att v's kernels (nn_attn_qkv.c) */
            for (int k = 0; k < kc; k++)
                memcpy(ap + k * MR, g->in + (size_t)(k0 + k) * g->ldi + i0, MR * sizeof(float));
        else
            for (int k = 0; k < kc; k++)
                memcpy(ap + k * MR, g->in + (size_t)(k0 + k) * g->ldi + i0, (size_t)R * sizeof(float));
        return;
    }
    int k = 0;
#if defined(__AVX512F__)
    if (R == MR)
        for (; k + 16 <= kc; k += 16)
            pack_t16(ap + k * MR, g->in + (size_t)i0 * g->ldi + k0 + k, g->ldi);
#endif
    for (; k < kc; k++)
        for (int r = 0; r < R; r++)
            ap[k * MR + r] = g->in[(size_t)(i0 + r) * g->ldi + k0 + k];
}

/* part q of n of the lines pack_a will read for rows i0 .. i0+R-1, k0 .. k0+kc-1, to L2:
   spread over the kernels of the block before, so that pack_a finds them there instead of
   waiting on L3 or memory with the FMA units idle */
static void prefetch_a(const struct gemm *g, int i0, int R, int k0, int kc, int q, int n)
{
    if (g->ta) { /* kc rows of R floats: one line each, and the one their end may reach */
        int t0 = (int)((long)kc * q / n), t1 = (int)((long)kc * (q + 1) / n);
        for (int k = t0; k < t1; k++) {
            const float *s = g->in + (size_t)(k0 + k) * g->ldi + i0;
            __builtin_prefetch(s, 0, 2);
            __builtin_prefetch(s + R - 1, 0, 2);
        }
        return;
    }
    int lpr = (kc + 15) / 16 + 1, nl = R * lpr; /* lines a row may touch, unaligned */
    int l0 = (int)((long)nl * q / n), l1 = (int)((long)nl * (q + 1) / n);
    for (int l = l0; l < l1; l++) {
        int r = l / lpr, c = (l % lpr) * 16;
        __builtin_prefetch(g->in + (size_t)(i0 + r) * g->ldi + k0 + (c < kc ? c : kc - 1), 0, 2);
    }
}

/* column panels [p0, p1) of out, in sweeps of NC panels, on the calling thread */
static void run_panels(const struct gemm *g, int p0, int p1)
{
    static const float zero[NR];
    float ap[KC * MR] __attribute__((aligned(64)));
    int M = g->M, K = g->K;
    for (int j0 = p0; j0 < p1; j0 += NC) {
        int j1 = j0 + NC < p1 ? j0 + NC : p1;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = K - k0 < KC ? K - k0 : KC;
            for (int i0 = 0; i0 < M; i0 += MR) {
                int R = M - i0 < MR ? M - i0 : MR;
                /* the block pack_a reads next: the next rows, else the next k block's first */
                int ni = i0 + MR, nk = k0, nkc = kc;
                if (ni >= M) {
                    ni = 0, nk = k0 + KC < K ? k0 + KC : 0;
                    nkc = K - nk < KC ? K - nk : KC;
                }
                int nR = M - ni < MR ? M - ni : MR;
                pack_a(ap, g, i0, R, k0, kc);
                for (int p = j0; p < j1; p++) {
                    const float *bias = k0 > 0 ? NULL : g->b != NULL ? g->b + (size_t)p * NR : zero;
                    prefetch_a(g, ni, nR, nk, nkc, p - j0, j1 - j0);
                    float *c = g->out + (size_t)i0 * g->ldo + (size_t)p * g->pstride;
                    kern_r(R, kc, ap, g->wp + ((size_t)p * K + k0) * NR, c, g->ldo, bias);
                    if (g->ep != NULL && k0 + kc == K)
                        for (int r = 0; r < R; r++)
                            g->ep(c + (size_t)r * g->ldo, NR);
                }
            }
        }
    }
}

/* no k: out is the bias */
static void bias_only(const struct gemm *g, int N)
{
    for (int i = 0; i < g->M; i++)
        for (int j = 0; j < N; j++)
            g->out[(size_t)i * g->ldo + (size_t)(j / NR) * g->pstride + j % NR] =
                g->b != NULL ? g->b[j] : 0.0f;
}

void nn_gemm_packed_serial(float *out, int ldo, size_t pstride, const float *in, int ldi,
                           int ta, const float *wp, const float *b, int M, int K, int N)
{
    struct gemm g = { out, ldo, pstride, in, ldi, ta, wp, b, M, K, NULL };
    if (K <= 0)
        bias_only(&g, N);
    else if (M > 0)
        run_panels(&g, 0, N / NR);
}

void nn_linear_packed_serial(float *out, int ldo, const float *in, int ldi, const float *wp,
                             const float *b, int M, int K, int N)
{
    nn_gemm_packed_serial(out, ldo, NR, in, ldi, 0, wp, b, M, K, N);
}

void nn_linear_packed(float *out, int ldo, const float *in, int ldi, const float *wp,
                      const float *b, int M, int K, int N)
{
    nn_linear_packed_ep(out, ldo, in, ldi, wp, b, M, K, N, NULL);
}

void nn_linear_packed_ep(float *out, int ldo, const float *in, int ldi, const float *wp,
                         const float *b, int M, int K, int N, void (*ep)(float *x, size_t n))
{
    struct gemm g = { out, ldo, NR, in, ldi, 0, wp, b, M, K, ep };
    int np = N / NR, nt = nn_get_threads();
    if (K <= 0) {
        bias_only(&g, N);
        for (int i = 0; ep != NULL && i < M; i++)
            ep(out + (size_t)i * ldo, (size_t)N);
    }
    if (M <= 0 || np <= 0 || K <= 0)
        return;
    nt = omp_in_parallel() ? 1 : nt < np ? nt : np;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        run_panels(&g, (int)((long)np * t / n), (int)((long)np * (t + 1) / n));
    }
}
