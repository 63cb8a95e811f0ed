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
   block), else from what C holds. A[r][k] is at A + r * sr + k * sk: row-major A (sr = lda,
   sk = 1) or A stored transposed (sr = 1, sk = its row stride), where a k's R values share
   a cache line. */
static inline __attribute__((always_inline)) void
ch_block(int R, int nv, int fresh, int kn, const float *A, int sr, int sk, const float *B,
         int ldb, float *C, int ldc, vmask mf, vmask ml)
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
            vec a = V_BCAST(A + (size_t)r * sr + (size_t)k * sk);
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

/* the full-width row blocks, then the rows left one at a time (A's strides as ch_block's;
   always inlined so that a stride of 1 is a constant there) */
static inline __attribute__((always_inline)) void
ch_panel(int nv, int M, int fresh, int kn, const float *A, int sr, int sk, const float *B, int ldb,
         float *C, int ldc, vmask ml)
{
    vmask mf = ch_mask(VL);
    int i = 0;
#define CH_ROWS(NV, R)                                                                      \
    do {                                                                                    \
        for (; i + (R) <= M; i += (R))                                                      \
            ch_block(R, NV, fresh, kn, A + (size_t)i * sr, sr, sk, B, ldb,                  \
                     C + (size_t)i * ldc, ldc, mf, ml);                                     \
        for (; i < M; i++)                                                                  \
            ch_block(1, NV, fresh, kn, A + (size_t)i * sr, sr, sk, B, ldb,                  \
                     C + (size_t)i * ldc, ldc, mf, ml);                                     \
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


#if VL == 16
/* Few columns (the Winograd products of one image on 4x4 and 8x8 maps: 1 and 4 tiles): with
   lanes across columns most of each vector is masked off and every A[i][k] costs a broadcast
   and an FMA for 1 to 4 products. Here the lanes run across RL_MB rows instead: a block of A
   is transposed into at (k, row) in L1, then per k one load of 16 rows' A[.][k] and one
   broadcast of B[k][j] per column feed 16 chains. Each chain is still acc = fmaf(A[i][k],
   B[k][j], acc) over k in order from 0 (carried across blocks of k in acc), so the same bits
   as the column kernel; only the lanes differ. */
#define RL_MB 64  /* rows of a block: 4 vectors */
#define RL_KB 128 /* k of a block: at is 32 KB, in L1 */
#ifndef RL_NC
#define RL_NC 6 /* columns at a time: 24 accumulators */
#endif
#define RL_MAXN 8 /* the widest call it takes: from 9 columns the column kernel's lanes fill */
#ifndef RL_PF
#define RL_PF 16 /* rows of At ahead (cold At, 256x256: 1 column 7 -> 8, 4: 21 -> 27 GFLOP/s) */
#endif
#ifndef RL_MAXN_AT
#define RL_MAXN_AT 24 /* the same with A transposed (no packing): from 32 columns the column
                          kernel is faster */
#endif

/* r[16] (16 rows of 16 floats) transposed in place: unpacks within 128-bit lanes, then
   lane shuffles */
static inline __attribute__((always_inline)) void rl_tr16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4g+e], 128-bit lane l: rows 4g..4g+3 of column 4l+e */
    for (int e = 0; e < 4; e++) {
        __m512 v88 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        __m512 w88 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        __m512 vdd = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        __m512 wdd = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        r[e] = _mm512_shuffle_f32x4(v88, w88, 0x88);
        r[8 + e] = _mm512_shuffle_f32x4(v88, w88, 0xdd);
        r[4 + e] = _mm512_shuffle_f32x4(vdd, wdd, 0x88);
        r[12 + e] = _mm512_shuffle_f32x4(vdd, wdd, 0xdd);
    }
}

/* at[k][r] = A[r][k] for r < mb, k < kb (rows past mb: zeros) */
static void rl_pack(float *restrict at, const float *A, int lda, int mb, int kb)
{
    for (int r0 = 0; r0 < RL_MB; r0 += 16)
        for (int k0 = 0; k0 < kb; k0 += 16) {
            int kn = kb - k0 < 16 ? kb - k0 : 16;
            __mmask16 km = ch_mask(kn);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = r0 + i < mb ? _mm512_maskz_loadu_ps(km, A + (size_t)(r0 + i) * lda + k0)
                                   : _mm512_setzero_ps();
            rl_tr16(r);
            for (int k = 0; k < kn; k++)
                _mm512_store_ps(at + (size_t)(k0 + k) * RL_MB + r0, r[k]);
        }
}

/* acc[j][r] (nc columns from B's column 0, RL_MB rows) over the kb rows of at (lat apart,
   its 4 vectors of rows masked by m: rows past the matrix are not read) and of B; pf: at
   comes from memory, prefetch it RL_PF rows ahead */
static inline __attribute__((always_inline)) void
rl_cols(int nc, int fresh, int pf, int kb, const float *restrict at, int lat,
        const __mmask16 m[4], const float *B, int ldb, float *restrict acc)
{
    __m512 a[RL_NC][4];
#pragma GCC unroll 6
    for (int j = 0; j < nc; j++)
        for (int v = 0; v < 4; v++)
            a[j][v] = fresh ? _mm512_setzero_ps() : _mm512_load_ps(acc + j * RL_MB + v * 16);
    for (int k = 0; k < kb; k++) {
        const float *ak = at + (size_t)k * lat, *bk = B + (size_t)k * ldb;
        if (pf && k + RL_PF < kb)
            for (int v = 0; v < 4; v++)
                _mm_prefetch((const char *)(ak + (size_t)RL_PF * lat + 16 * v), _MM_HINT_T0);
        __m512 x0 = _mm512_maskz_loadu_ps(m[0], ak), x1 = _mm512_maskz_loadu_ps(m[1], ak + 16);
        __m512 x2 = _mm512_maskz_loadu_ps(m[2], ak + 32);
        __m512 x3 = _mm512_maskz_loadu_ps(m[3], ak + 48);
#pragma GCC unroll 6
        for (int j = 0; j < nc; j++) {
            __m512 b = _mm512_set1_ps(bk[j]);
            a[j][0] = _mm512_fmadd_ps(x0, b, a[j][0]);
            a[j][1] = _mm512_fmadd_ps(x1, b, a[j][1]);
            a[j][2] = _mm512_fmadd_ps(x2, b, a[j][2]);
            a[j][3] = _mm512_fmadd_ps(x3, b, a[j][3]);
        }
    }
#pragma GCC unroll 6
    for (int j = 0; j < nc; j++)
        for (int v = 0; v < 4; v++)
            _mm512_store_ps(acc + j * RL_MB + v * 16, a[j][v]);
}

/* the N columns of a block of k, RL_NC at a time (at, lat, m as rl_cols'; pf: prefetch at
   in the first pass) */
static inline __attribute__((always_inline)) void
rl_block(int N, int fresh, int pf, int kb, const float *at, int lat, const __mmask16 m[4],
         const float *Bk, int ldb, float *acc)
{
    for (int j = 0, nc; j < N; j += nc) {
        float *aj = acc + (size_t)j * RL_MB;
        /* 7 or 8 left: 4 and the rest rather than RL_NC and 1 or 2 */
        nc = N - j <= RL_NC ? N - j : N - j <= 8 ? 4 : RL_NC;
        switch (nc) {
        case 1: rl_cols(1, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
        case 2: rl_cols(2, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
        case 3: rl_cols(3, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
#if RL_NC > 4
        case 4: rl_cols(4, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
        case 5: rl_cols(5, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
#endif
        default: rl_cols(RL_NC, fresh, pf && j == 0, kb, at, lat, m, Bk + j, ldb, aj); break;
        }
    }
}

/* C rows i0 .. i0+mb-1 from acc[j][r] */
static void rl_store(int mb, int N, const float *acc, float *C, int ldc)
{
    for (int r = 0; r < mb; r++)
        for (int j = 0; j < N; j++)
            C[(size_t)r * ldc + j] = acc[j * RL_MB + r];
}

static void rl_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc)
{
    float at[RL_KB * RL_MB] __attribute__((aligned(64)));
    float acc[RL_MAXN_AT * RL_MB] __attribute__((aligned(64)));
    const __mmask16 all[4] = {0xffff, 0xffff, 0xffff, 0xffff};
    for (int i0 = 0; i0 < M; i0 += RL_MB) {
        int mb = M - i0 < RL_MB ? M - i0 : RL_MB;
        for (int k0 = 0; k0 < K; k0 += RL_KB) {
            int kb = K - k0 < RL_KB ? K - k0 : RL_KB;
            rl_pack(at, A + (size_t)i0 * lda + k0, lda, mb, kb);
            rl_block(N, k0 == 0, 0, kb, at, RL_MB, all, B + (size_t)k0 * ldb, ldb, acc);
        }
        rl_store(mb, N, acc, C + (size_t)i0 * ldc, ldc);
    }
}

/* the same on A stored transposed, At (K,M): its rows already hold a k's values of 64 rows
   contiguous, so no packing, and it pays from more columns on. Few columns make it a
   stream of At from memory (the UNet's kept U at batch 1), so per block of k all the rows
   of a super-block of RL_SB run, over that block's RL_KB contiguous rows of At, rather
   than one row block over all of K (a 256-byte piece of every row of At) */
#define RL_SB 512
static void rl_gemm_at(int M, int N, int K, const float *At, int ldat, const float *B, int ldb,
                       float *C, int ldc)
{
    float acc[RL_SB / RL_MB][RL_MAXN_AT * RL_MB] __attribute__((aligned(64)));
    for (int s0 = 0; s0 < M; s0 += RL_SB) {
        int sb = M - s0 < RL_SB ? M - s0 : RL_SB;
        for (int k0 = 0; k0 < K; k0 += RL_KB) {
            int kb = K - k0 < RL_KB ? K - k0 : RL_KB;
            for (int i0 = 0; i0 < sb; i0 += RL_MB) {
                int mb = sb - i0 < RL_MB ? sb - i0 : RL_MB;
                __mmask16 m[4];
                for (int v = 0; v < 4; v++)
                    m[v] = mb <= 16 * v ? 0 : ch_mask(mb - 16 * v);
                rl_block(N, k0 == 0, 1, kb, At + (size_t)k0 * ldat + s0 + i0, ldat, m,
                         B + (size_t)k0 * ldb, ldb, acc[i0 / RL_MB]);
            }
        }
        for (int i0 = 0; i0 < sb; i0 += RL_MB)
            rl_store(sb - i0 < RL_MB ? sb - i0 : RL_MB, N, acc[i0 / RL_MB],
                     C + (size_t)(s0 + i0) * ldc, ldc);
    }
}
#endif

/* k of a block: B's copied panel (CH_KB x 64 floats, 32 KB) and the A lines of a row block
   fit the 48 KB L1 (at 256 the 64 KB panel streamed from L2 for every row block: 256x256
   by 256 columns 178 -> 194 GFLOP/s; with A transposed, whose broadcasts take a line per
   k, 160 -> 180 at 64 columns) */
#ifndef CH_KB
#define CH_KB 128
#endif

#ifdef VL
/* pb (kn, NB) = the kn x w block of B given transposed (B[k][j] at Bt[j * ldbt + k]), columns
   past w zero: moves only, by 16 x 16 register transposes where there are 16 lanes */
static void pack_bt(float *restrict pb, const float *Bt, int ldbt, int kn, int w)
{
    const int NB = CH_NV * VL;
#if VL == 16
    for (int j0 = 0; j0 < w; j0 += 16) {
        int jn = w - j0 < 16 ? w - j0 : 16;
        for (int k0 = 0; k0 < kn; k0 += 16) {
            int kk = kn - k0 < 16 ? kn - k0 : 16;
            __mmask16 mk = ch_mask(kk);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < jn ? _mm512_maskz_loadu_ps(mk, Bt + (size_t)(j0 + i) * ldbt + k0)
                              : _mm512_setzero_ps();
            rl_tr16(r);
            for (int i = 0; i < kk; i++)
                _mm512_store_ps(pb + (size_t)(k0 + i) * NB + j0, r[i]);
        }
    }
#else
    for (int k = 0; k < kn; k++)
        for (int j = 0; j < NB; j++)
            pb[(size_t)k * NB + j] = j < w ? Bt[(size_t)j * ldbt + k] : 0.0f;
#endif
}
#endif

/* the column kernel over all of C, A[i][k] at A + i * sr + k * sk (ch_block); bt: B given
   transposed, B[k][j] at B + j * ldb + k, each panel transposed as it is copied */
static inline __attribute__((always_inline)) void
chain(int M, int N, int K, const float *A, int sr, int sk, const float *B, int ldb, int bt,
      float *C, int ldc)
{
#ifdef VL
    const int NB = CH_NV * VL;
    for (int k0 = 0; k0 < K; k0 += CH_KB) {
        int kn = K - k0 < CH_KB ? K - k0 : CH_KB, fresh = k0 == 0;
        const float *Ak = A + (size_t)k0 * sk; /* this block of k */
        const float *Bk = bt ? B + k0 : B + (size_t)k0 * ldb;
        for (int j = 0; j < N; j += NB) {
            int w = N - j < NB ? N - j : NB, nv = (w + VL - 1) / VL;
            vmask ml = ch_mask(w - (nv - 1) * VL);
            if (N <= NB && !bt) {
                ch_panel(nv, M, fresh, kn, Ak, sr, sk, Bk + j, ldb, C + j, ldc, ml);
                continue;
            }
            /* the panel's rows of this block copied contiguous: rows of B a power of two
               apart share cache sets */
            float pb[CH_KB * CH_NV * VL] __attribute__((aligned(64)));
            vmask mf = ch_mask(VL);
            if (bt)
                pack_bt(pb, Bk + (size_t)j * ldb, ldb, kn, w);
            else
                for (int k = 0; k < kn; k++)
                    for (int v = 0; v < nv; v++)
                        V_STORE(pb + (size_t)k * NB + v * VL,
                                V_LOAD(Bk + (size_t)k * ldb + j + v * VL, v == nv - 1 ? ml : mf),
                                mf);
            ch_panel(nv, M, fresh, kn, Ak, sr, sk, pb, NB, C + j, ldc, ml);
        }
    }
#else
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0;
            for (int k = 0; k < K; k++)
                acc = fmaf(A[(size_t)i * sr + (size_t)k * sk],
                           bt ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j], acc);
            C[(size_t)i * ldc + j] = acc;
        }
#endif
}

static int chain_empty(int M, int N, int K, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return 1;
    if (K > 0)
        return 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = 0;
    return 1;
}

void nn_sgemm_chain(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                    float *C, int ldc)
{
    if (chain_empty(M, N, K, C, ldc))
        return;
#if VL == 16
    if (N <= RL_MAXN) {
        rl_gemm(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    chain(M, N, K, A, lda, 1, B, ldb, 0, C, ldc);
}

void nn_sgemm_chain_at(int M, int N, int K, const float *At, int ldat, const float *B, int ldb,
                       float *C, int ldc)
{
    if (chain_empty(M, N, K, C, ldc))
        return;
#if VL == 16
    if (N <= RL_MAXN || (N <= RL_MAXN_AT && M >= RL_MB)) {
        rl_gemm_at(M, N, K, At, ldat, B, ldb, C, ldc);
        return;
    }
#endif
    chain(M, N, K, At, 1, ldat, B, ldb, 0, C, ldc);
}

void nn_sgemm_chain_bt(int M, int N, int K, const float *A, int lda, const float *Bt, int ldbt,
                       float *C, int ldc)
{
    if (chain_empty(M, N, K, C, ldc))
        return;
    chain(M, N, K, A, lda, 1, Bt, ldbt, 1, C, ldc);
}
