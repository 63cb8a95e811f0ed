/* 3x3 stride-1 pad-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray 2016): each 4x4 output
   tile costs 36 multiplies per channel pair instead of 144. The 36 products become 36 GEMMs
   (OC x C) x (C x tiles), by nn_sgemm_chain (nn_chain.c): each output is one fmaf chain over
   the input channels in order, so a tile's result depends neither on the thread count nor on
   how many images share the call, and the GEMMs run on the batch's tiles alone, unpadded.
   Transforms (points 0, +-1, +-2, inf):
     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
            0 4 0 -5 0 1]
     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
   float32 error is about 1e-6 relative to the output scale for these channel counts.
   The tile transforms run per (channel, image or group of small images) on two buffers that
   stay in L1 (see LT), so V and M, tens of MB at batch 16 with slots C*T floats apart, are
   each written or read once, in runs of tiles, rather than pass after pass in place. On
   AVX-512 they are intrinsics (the patches' de-interleave and the tiles' interleave by
   vpermt2ps); elsewhere plain C; the same float operations, so the same bits (isa.bats).
   The UNet's inference also has the ops around a conv done in its transforms
   (nn_wino4_forward_fused): its input's group norm + SiLU, its output's adds.
   Why both this and F(2x2,3x3) (nn_wino.c, what nn_conv.c dispatches to): on the UNet's
   shapes (128-256 channels, batch 16, pad 1) this one is faster, so the UNet calls it; under
   nn_conv.c, with any padding and the Inception network's shapes, F(4x4) measured no faster
   and its rounding error is about 20x larger. See nn_wino4.h. */
#include "nn/nn_wino4.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "nn/nn.h"
#include "nn/nn_math.h"
#include "util/util.h"

#define TS 4 /* output tile */
#define AS 6 /* input tile */

/* The 1-D transforms over n tiles, out of place: input slot k at x + k*xs, output slot k at
   y + k*ys. Out of place so that a pass can read M or write V directly (strided slots of the
   big buffers) while its other side is the L1 buffer. */
#if defined(__AVX512F__)
/* 16 tiles a vector, masked at the end; each output the same expression as the scalar loop
   below (the build does not contract a*b+c into an fma, intrinsics or not) */
/* nt: full aligned vectors are streamed past the caches (see wino_input_tiles) */
static inline void wino_st(float *p, __mmask16 m, __m512 v, int nt)
{
    if (nt && m == 0xffff && ((uintptr_t)p & 63) == 0)
        _mm512_stream_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, m, v);
}
static inline void bt6v_nt(float *restrict y, size_t ys, const float *restrict x, size_t xs,
                           int n, int nt)
{
    const __m512 c2 = _mm512_set1_ps(2), c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5);
    const __m512 cm2 = _mm512_set1_ps(-2), cm4 = _mm512_set1_ps(-4);
    for (int t = 0; t < n; t += 16) {
        __mmask16 m = (__mmask16)(n - t >= 16 ? 0xffff : (1u << (n - t)) - 1);
        __m512 d0 = _mm512_maskz_loadu_ps(m, x + t), d1 = _mm512_maskz_loadu_ps(m, x + xs + t);
        __m512 d2 = _mm512_maskz_loadu_ps(m, x + 2 * xs + t);
        __m512 d3 = _mm512_maskz_loadu_ps(m, x + 3 * xs + t);
        __m512 d4 = _mm512_maskz_loadu_ps(m, x + 4 * xs + t);
        __m512 d5 = _mm512_maskz_loadu_ps(m, x + 5 * xs + t);
        /* 4 * d0 - 5 * d2 + d4 */
        wino_st(y + t, m,
                _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, d0), _mm512_mul_ps(c5, d2)), d4),
                nt);
        /* -4 * d1 - 4 * d2 + d3 + d4 */
        __m512 f42 = _mm512_mul_ps(c4, d2);
        wino_st(y + ys + t, m,
                _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(cm4, d1), f42), d3), d4),
                nt);
        /* 4 * d1 - 4 * d2 - d3 + d4 */
        __m512 f41 = _mm512_mul_ps(c4, d1);
        wino_st(y + 2 * ys + t, m, _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(f41, f42), d3), d4),
                nt);
        /* -2 * d1 - d2 + 2 * d3 + d4 */
        __m512 f23 = _mm512_mul_ps(c2, d3);
        wino_st(y + 3 * ys + t, m,
                _mm512_add_ps(_mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(cm2, d1), d2), f23), d4),
                nt);
        /* 2 * d1 - d2 - 2 * d3 + d4 */
        wino_st(y + 4 * ys + t, m,
                _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_mul_ps(c2, d1), d2), f23), d4),
                nt);
        /* 4 * d1 - 5 * d3 + d5 */
        wino_st(y + 5 * ys + t, m, _mm512_add_ps(_mm512_sub_ps(f41, _mm512_mul_ps(c5, d3)), d5),
                nt);
    }
}
static void bt6v(float *restrict y, size_t ys, const float *restrict x, size_t xs, int n)
{
    bt6v_nt(y, ys, x, xs, n, 0);
}
#else
#define bt6v_nt(y, ys, x, xs, n, nt) ((void)(nt), bt6v(y, ys, x, xs, n))
static void bt6v(float *restrict y, size_t ys, const float *restrict x, size_t xs, int n)
{
    for (int t = 0; t < n; t++) {
        float d0 = x[t], d1 = x[xs + t], d2 = x[2 * xs + t], d3 = x[3 * xs + t];
        float d4 = x[4 * xs + t], d5 = x[5 * xs + t];
        y[t] = 4 * d0 - 5 * d2 + d4;
        y[ys + t] = -4 * d1 - 4 * d2 + d3 + d4;
        y[2 * ys + t] = 4 * d1 - 4 * d2 - d3 + d4;
        y[3 * ys + t] = -2 * d1 - d2 + 2 * d3 + d4;
        y[4 * ys + t] = 2 * d1 - d2 - 2 * d3 + d4;
        y[5 * ys + t] = 4 * d1 - 5 * d3 + d5;
    }
}
#endif

/* 6 slots in -> 4 slots out */
#if defined(__AVX512F__)
static void at6v(float *restrict y, size_t ys, const float *restrict x, size_t xs, int n)
{
    const __m512 c2 = _mm512_set1_ps(2), c4 = _mm512_set1_ps(4), c8 = _mm512_set1_ps(8);
    for (int t = 0; t < n; t += 16) {
        __mmask16 m = (__mmask16)(n - t >= 16 ? 0xffff : (1u << (n - t)) - 1);
        __m512 m0 = _mm512_maskz_loadu_ps(m, x + t), m1 = _mm512_maskz_loadu_ps(m, x + xs + t);
        __m512 m2 = _mm512_maskz_loadu_ps(m, x + 2 * xs + t);
        __m512 m3 = _mm512_maskz_loadu_ps(m, x + 3 * xs + t);
        __m512 m4 = _mm512_maskz_loadu_ps(m, x + 4 * xs + t);
        __m512 m5 = _mm512_maskz_loadu_ps(m, x + 5 * xs + t);
        __m512 s1 = _mm512_add_ps(m1, m2), d1 = _mm512_sub_ps(m1, m2);
        __m512 s3 = _mm512_add_ps(m3, m4), d3 = _mm512_sub_ps(m3, m4);
        _mm512_mask_storeu_ps(y + t, m, _mm512_add_ps(_mm512_add_ps(m0, s1), s3));
        _mm512_mask_storeu_ps(y + ys + t, m, _mm512_add_ps(d1, _mm512_mul_ps(c2, d3)));
        _mm512_mask_storeu_ps(y + 2 * ys + t, m, _mm512_add_ps(s1, _mm512_mul_ps(c4, s3)));
        _mm512_mask_storeu_ps(y + 3 * ys + t, m,
                              _mm512_add_ps(_mm512_add_ps(d1, _mm512_mul_ps(c8, d3)), m5));
    }
}
#else
static void at6v(float *restrict y, size_t ys, const float *restrict x, size_t xs, int n)
{
    for (int t = 0; t < n; t++) {
        float m0 = x[t], m1 = x[xs + t], m2 = x[2 * xs + t], m3 = x[3 * xs + t];
        float m4 = x[4 * xs + t], m5 = x[5 * xs + t];
        float s1 = m1 + m2, d1 = m1 - m2, s3 = m3 + m4, d3 = m3 - m4;
        y[t] = m0 + s1 + s3;
        y[ys + t] = d1 + 2 * d3;
        y[2 * ys + t] = s1 + 4 * s3;
        y[3 * ys + t] = d1 + 8 * d3 + m5;
    }
}
#endif

/* Tiles of one (image, channel) transformed at once: the whole image up to 64 tiles (a 32x32
   map), else chunks of whole tile rows, or of one row's tiles when a row is wider. Two
   buffers of 36 slots of LT floats stay in L1, so V and M are each touched once, in runs. */
#define LT 64

/* the chunks of an image's tile grid: rows [ty, ty + nr) x columns [tx, tx + nc), contiguous
   in the tile order (nr is 1 whenever nc < tw) */
struct wino_chunk {
    int ty, tx, nr, nc;
};

static int wino_chunk_next(struct wino_chunk *k, int th, int tw)
{
    if (k->nr == 0) { /* the first */
        k->ty = 0, k->tx = 0;
    } else if (k->tx + k->nc < tw) {
        k->tx += k->nc;
    } else {
        k->ty += k->nr, k->tx = 0;
    }
    if (k->ty >= th)
        return 0;
    if (tw <= LT) {
        k->nr = LT / tw < th - k->ty ? LT / tw : th - k->ty;
        k->nc = tw;
    } else {
        k->nr = 1;
        k->nc = tw - k->tx < LT ? tw - k->tx : LT;
    }
    return 1;
}

/* The lines a task reads next: nm pieces of len bytes, stride bytes apart from p */
struct wino_pf {
    const char *p;
    size_t stride, len;
    int nm;
};

/* part k of parts of f's lines prefetched; w: for writing (the loop is over runs of lines,
   4 divisions a call: GCC 12 deleted a loop over single lines whose body was only the
   prefetch, and a division per run made small convs' output transform slower) */
static inline void wino_pf_part(const struct wino_pf *f, int k, int parts, int w)
{
    if (f->nm == 0)
        return;
    size_t lpm = (f->len + 63) / 64, tot = lpm * (size_t)f->nm;
    size_t l = tot * k / parts, l1 = tot * (k + 1) / parts;
    const char *a = f->p + l / lpm * f->stride;
    for (size_t o = l % lpm; l < l1; o = 0, a += f->stride) {
        size_t e = l1 - l < lpm - o ? l1 - l : lpm - o;
        for (size_t i = o * 64; i < (o + e) * 64; i += 64)
            if (w)
                __builtin_prefetch(a + i, 1, 3);
            else
                __builtin_prefetch(a + i, 0, 3);
        l += e;
    }
}

/* The GEMMs' columns are the batch's tiles, T = N * tiles per image: nn_sgemm_chain gives a
   column the same bits whatever the width of the call and the column's place in it, so no
   padding (with OpenBLAS's kernels, whose sums depend on both, every GEMM was padded to fixed
   chunks of 256 columns, mostly zeros at batch 1). A chunk is still what a caller cuts its
   batch by for a smaller scratch (nn_wino4_chunk_images): about 256 tiles, whole images. */
static int wino_imgs_per_chunk(int tpi)
{
    if (tpi < 16)
        return 16;
    return tpi >= 256 ? 1 : (256 + tpi - 1) / tpi;
}

static size_t wino_cols(int N, int tpi)
{
    return (size_t)N * tpi;
}

/* columns of the GEMM calls: any cut gives the same bits; this one feeds both threads */
#define WINO_GEMM_COLS 256

/* The 36 slots of V and M (and of the kept tiles) lie nn_wino4_slot(C * T) floats apart, not
   C * T: for the UNet's shapes C * T * 4 bytes is a multiple of 4 KiB, which put the 36 runs
   of tiles a transform task writes (V) or reads (M) in the same L1 sets. An odd number of
   64-byte lines between slots puts slot p's run p lines further round. It measured a small
   gain (the output transform ~5% faster at batch 16, the input transform the same within the
   noise): their time went mostly to memory latency (see wino_input_tiles). WINO_SLOT_PAD: a
   line of floats. Only the layout changes, never a value. */
#define WINO_SLOT_PAD 16

/* V from this size on is written with streaming stores (wino_input_tiles): at batch 16 the
   transform took 15-30% less time and the GEMMs, which then read V from memory, 0-5% more
   (1 thread, near the noise), less than the gain; on a V of 2-5 MB (batch 4) the GEMMs lost
   more than the transform gained. */
#define WINO_NT_BYTES ((size_t)8 << 20)

static int wino_tpi(int H, int W)
{
    return ((H + TS - 1) / TS) * ((W + TS - 1) / TS);
}

int nn_wino4_chunk_images(int H, int W)
{
    return wino_imgs_per_chunk(wino_tpi(H, W));
}

size_t nn_wino4_slot(size_t n)
{
    size_t s = (n + WINO_SLOT_PAD - 1) / WINO_SLOT_PAD * WINO_SLOT_PAD;
    return s / WINO_SLOT_PAD % 2 ? s : s + WINO_SLOT_PAD;
}

size_t nn_wino4_scratch(int N, int C, int H, int W, int OC)
{
    int tpi = wino_tpi(H, W), ipc = wino_imgs_per_chunk(tpi);
    size_t T = wino_cols(N > ipc ? N : ipc, tpi); /* (1, ...) holds a chunk */
    return 36 * (nn_wino4_slot((size_t)C * T) + nn_wino4_slot((size_t)OC * T));
}

/* x/6, x/12, x/24 rounded as the float divisions are, without the divider: x times the double
   nearest 1/d, rounded to float. When x/d is a dyadic rational (3 divides x's significand) it
   has at most 24 bits, the double product lies within 2^-54 relative of it and rounds to it
   exactly; otherwise x/d's binary expansion repeats 01 and stays at least 2^-27 relative
   from a float halfway point, far beyond the product's error, so both round the same way.
   Checked on all 2^32 floats (NaNs aside) for d = 6, 12, 24. The divisions were the
   transform's cost: a 16-lane vdivps issues about once per 10 cycles. x/4 is x * 0.25f, an
   exact scaling rounded once either way. */
static inline float div6(float x)
{
    return (float)((double)x * (1.0 / 6));
}
static inline float div12(float x)
{
    return (float)((double)x * (1.0 / 12));
}
static inline float div24(float x)
{
    return (float)((double)x * (1.0 / 24));
}

/* maps of at most this many tiles (16x16) keep U transposed: their GEMMs have few columns
   at batch 1 (16, 4, 1), where the row-lane kernel takes U as it is (nn_sgemm_chain_at:
   with U streamed from memory, as the UNet's kept U at batch 1, 1.4-1.7x as fast as with A
   row-major); at 64 tiles (32x32, batch 1) the column kernel on row-major A is ~8% faster,
   and from 256 columns both are the same */
#define WINO_T_MAX_TPI 16

/* U = G g G^T per (oc, c), in chunks of WW kernels so that each of the 36 outputs is a
   contiguous vector store and the arithmetic vectorises (the same operations in the same
   order as a per-kernel G g G^T, so the same bits). Training rebuilds it every step, and
   inference on the convs left out of the cache at every use, so it is worth the care. */
#define WW 32
/* n <= WW kernels gs floats apart from g (one oc's input channels: 9; one c's output
   channels: C * 9), their U at u0 .. u0+n-1 of each product's matrix, st apart */
#if defined(__AVX512F__)
/* div6 etc. on 16 lanes: the same float -> double, product, double -> float (round to
   nearest) as the scalar ones, 8 lanes of doubles at a time */
static inline __m512 div_v(__m512 x, __m512d r)
{
    __m256 lo = _mm512_castps512_ps256(x);
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
    __m256 ql = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(lo), r));
    __m256 qh = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(hi), r));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(ql)),
                                               _mm256_castps_pd(qh), 1));
}

/* the 6 rows of G applied to (g0, g1, g2), each the scalar loop's expression */
static inline void g6_v(__m512 *t, __m512 g0, __m512 g1, __m512 g2)
{
    const __m512d r6 = _mm512_set1_pd(1.0 / 6), r12 = _mm512_set1_pd(1.0 / 12);
    const __m512d r24 = _mm512_set1_pd(1.0 / 24);
    const __m512 neg = _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u));
    __m512 a24 = div_v(g0, r24), b12 = div_v(g1, r12), c6 = div_v(g2, r6);
    t[0] = _mm512_mul_ps(g0, _mm512_set1_ps(0.25f));
    t[1] = div_v(_mm512_xor_ps(_mm512_add_ps(_mm512_add_ps(g0, g1), g2), neg), r6);
    t[2] = div_v(_mm512_xor_ps(_mm512_add_ps(_mm512_sub_ps(g0, g1), g2), neg), r6);
    t[3] = _mm512_add_ps(_mm512_add_ps(a24, b12), c6);
    t[4] = _mm512_add_ps(_mm512_sub_ps(a24, b12), c6);
    t[5] = g2;
}

static void wino_w_chunk(float *u0, size_t st, const float *g, size_t gs, int n)
{
    float f[9][WW];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 9; k++)
            f[k][i] = g[i * gs + k];
    for (int i0 = 0; i0 < n; i0 += 16) {
        __mmask16 m = (__mmask16)(n - i0 >= 16 ? 0xffff : (1u << (n - i0)) - 1);
        __m512 t[3][6], u[6]; /* t[x][y]: (G g)[y][x] */
        for (int x = 0; x < 3; x++)
            g6_v(t[x], _mm512_maskz_loadu_ps(m, f[x] + i0), _mm512_maskz_loadu_ps(m, f[3 + x] + i0),
                 _mm512_maskz_loadu_ps(m, f[6 + x] + i0));
        for (int y = 0; y < 6; y++) {
            g6_v(u, t[0][y], t[1][y], t[2][y]);
            for (int k = 0; k < 6; k++)
                _mm512_mask_storeu_ps(u0 + (size_t)(y * 6 + k) * st + i0, m, u[k]);
        }
    }
}
#else
static void wino_w_chunk(float *u0, size_t st, const float *g, size_t gs, int n)
{
    float f[9][WW], t[6][3][WW];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 9; k++)
            f[k][i] = g[i * gs + k];
    for (int x = 0; x < 3; x++)
        for (int i = 0; i < n; i++) { /* t (6,3) = G g, columns */
            float g0 = f[x][i], g1 = f[3 + x][i], g2 = f[6 + x][i];
            t[0][x][i] = g0 * 0.25f;
            t[1][x][i] = div6(-(g0 + g1 + g2));
            t[2][x][i] = div6(-(g0 - g1 + g2));
            t[3][x][i] = div24(g0) + div12(g1) + div6(g2);
            t[4][x][i] = div24(g0) - div12(g1) + div6(g2);
            t[5][x][i] = g2;
        }
    for (int y = 0; y < 6; y++) { /* u (6,6) = t G^T, rows */
        float *u = u0 + (size_t)(y * 6) * st;
        for (int i = 0; i < n; i++) {
            float g0 = t[y][0][i], g1 = t[y][1][i], g2 = t[y][2][i];
            u[i] = g0 * 0.25f;
            u[st + i] = div6(-(g0 + g1 + g2));
            u[2 * st + i] = div6(-(g0 - g1 + g2));
            u[3 * st + i] = div24(g0) + div12(g1) + div6(g2);
            u[4 * st + i] = div24(g0) - div12(g1) + div6(g2);
            u[5 * st + i] = g2;
        }
    }
}
#endif

/* kernels a block of nn_wino4_weights: its 36 rows of U go to a buffer in L1 first, then to
   U a row at a time. Written straight, the 36 rows went to addresses OC*C floats apart, most
   often a multiple of 4 KiB, which share L1 sets (and L2's at 64 KiB): lines were evicted
   before they were whole (256x256: 23 ns a kernel, against 9 at 255x256). */
#define WB (4 * WW)
static void wino_w_block(float *U, size_t st, const float *g, size_t gs, int n)
{
    float b[36 * WB] __attribute__((aligned(64)));
    for (int c0 = 0; c0 < n; c0 += WW)
        wino_w_chunk(b + c0, WB, g + (size_t)c0 * gs, gs, n - c0 < WW ? n - c0 : WW);
    for (int p = 0; p < 36; p++)
        memcpy(U + (size_t)p * st, b + p * WB, (size_t)n * sizeof(float));
}

void nn_wino4_weights(float *U, const float *w, int C, int OC)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int oc = 0; oc < OC; oc++)
        for (int c0 = 0; c0 < C; c0 += WB)
            wino_w_block(U + (size_t)oc * C + c0, (size_t)OC * C, w + ((size_t)oc * C + c0) * 9, 9,
                         C - c0 < WB ? C - c0 : WB);
}

/* the same kernels' U transposed, chunked over output channels: slower to make (its writes
   are OC floats apart), hence only for U that is made once and kept */
void nn_wino4_weights_t(float *U, const float *w, int C, int OC)
{
#pragma omp parallel for collapse(2) schedule(static)
    for (int oc0 = 0; oc0 < OC; oc0 += WB)
        for (int c = 0; c < C; c++)
            wino_w_block(U + (size_t)c * OC + oc0, (size_t)OC * C, w + ((size_t)oc0 * C + c) * 9,
                         (size_t)C * 9, OC - oc0 < WB ? OC - oc0 : WB);
}

int nn_wino4_transposed(int H, int W)
{
    return wino_tpi(H, W) <= WINO_T_MAX_TPI;
}

size_t nn_wino4_tiles(int N, int C, int H, int W)
{
    return 36 * nn_wino4_slot((size_t)C * wino_cols(N, wino_tpi(H, W)));
}

/* One chunk's rows of 6x6 patches de-interleaved into g (slot i*6+j holds d[i][j] of the
   chunk's tiles from t0 on, LT floats a slot): tile rows [ty, ty + nr), columns [tx, tx + nc)
   of the map x (H x W), zero outside it. */
#if defined(__AVX512F__)
/* 8 tiles at a time: row positions 4u+j (j < 4) from two vectors of 16 by one vpermt2ps,
   j = 4, 5 as j = 0, 1 of vectors loaded 4 positions on; masked loads give the zero padding
   and masked stores stop at the chunk's last tile. Only data movement: the same values. */
static void wino_gather(float *g, int t0, const float *x, int H, int W, int ty, int tx, int nr,
                        int nc)
{
    const __m512i i0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(1));
    const __m512i i2 = _mm512_add_epi32(i0, _mm512_set1_epi32(2));
    const __m512i i3 = _mm512_add_epi32(i0, _mm512_set1_epi32(3));
    const __m512 z = _mm512_setzero_ps();
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < AS; i++) {
            int yy = (ty + r) * TS - 1 + i;
            float *d = g + (size_t)i * AS * LT + t0 + r * nc;
            for (int u0 = 0; u0 < nc; u0 += 8) {
                int n8 = nc - u0 < 8 ? nc - u0 : 8;
                __mmask16 ms = (__mmask16)((1u << n8) - 1);
                if (yy < 0 || yy >= H) {
                    for (int j = 0; j < AS; j++)
                        _mm512_mask_storeu_ps(d + j * LT + u0, ms, z);
                    continue;
                }
                /* positions p0 + [0, 36) of the padded row are x[lo + p], valid on [a, b) */
                long lo = (long)(tx + u0) * TS - 1;
                const float *xr = x + (size_t)yy * W;
                __mmask16 m[4];
                for (int v = 0; v < 4; v++) {
                    long p = lo + (v & 1) * 16 + (v >> 1) * 4; /* 0, 16, 4, 20 */
                    long a = p < 0 ? -p : 0, b = W - p < 16 ? W - p : 16;
                    uint32_t mm = b > a ? ((b >= 16 ? 0xffffu : (1u << b) - 1) & ~((1u << a) - 1)) : 0;
                    m[v] = (__mmask16)mm;
                }
                __m512 A = _mm512_maskz_loadu_ps(m[0], xr + lo);
                __m512 B = _mm512_maskz_loadu_ps(m[1], xr + lo + 16);
                __m512 A4 = _mm512_maskz_loadu_ps(m[2], xr + lo + 4);
                __m512 B4 = _mm512_maskz_loadu_ps(m[3], xr + lo + 20);
                _mm512_mask_storeu_ps(d + u0, ms, _mm512_permutex2var_ps(A, i0, B));
                _mm512_mask_storeu_ps(d + LT + u0, ms, _mm512_permutex2var_ps(A, i1, B));
                _mm512_mask_storeu_ps(d + 2 * LT + u0, ms, _mm512_permutex2var_ps(A, i2, B));
                _mm512_mask_storeu_ps(d + 3 * LT + u0, ms, _mm512_permutex2var_ps(A, i3, B));
                _mm512_mask_storeu_ps(d + 4 * LT + u0, ms, _mm512_permutex2var_ps(A4, i0, B4));
                _mm512_mask_storeu_ps(d + 5 * LT + u0, ms, _mm512_permutex2var_ps(A4, i1, B4));
            }
        }
}
#else
static void wino_gather(float *g, int t0, const float *x, int H, int W, int ty, int tx, int nr,
                        int nc)
{
    float prow[LT * TS + 2]; /* a zero-padded row */
    int lo = tx * TS - 1, np = nc * TS + 2;
    int ka = lo < 0 ? -lo : 0, kb = W - lo < np ? W - lo : np;
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < AS; i++) {
            int yy = (ty + r) * TS - 1 + i;
            float *d = g + (size_t)i * AS * LT + t0 + r * nc;
            if (yy < 0 || yy >= H) {
                for (int j = 0; j < AS; j++)
                    memset(d + j * LT, 0, nc * sizeof(float));
                continue;
            }
            for (int u = 0; u < ka; u++)
                prow[u] = 0;
            memcpy(prow + ka, x + (size_t)yy * W + lo + ka, (kb - ka) * sizeof(float));
            for (int u = kb; u < np; u++)
                prow[u] = 0;
            for (int j = 0; j < AS; j++) {
                float *restrict dj = d + j * LT;
                for (int u = 0; u < nc; u++)
                    dj[u] = prow[u * TS + j];
            }
        }
}
#endif

/* y = silu(x * a + b), nn_group_norm_silu_forward's expression per element; 16 lanes where
   there are (GCC's default of 8 for -march=native made this loop most of the transform) */
#if defined(__AVX512F__)
__attribute__((noinline, target("prefer-vector-width=512")))
#endif
static void wino_silu_map(float *restrict y, const float *restrict x, int n, float a, float b)
{
    for (int i = 0; i < n; i++)
        y[i] = nn_silu_sym(x[i] * a + b);
}

int nn_wino4_pre_fits(int H, int W)
{
    return wino_tpi(H, W) <= LT;
}

/* pre: NULL, or with scale: the conv's input is silu(in * scale + shift) per (image, channel),
   made here a map at a time in L1 (maps of at most LT tiles, nn_wino4_pre_fits) and never
   stored */
static void wino_input_tiles(float *V, size_t T, size_t c0, const float *in,
                             const struct nn_wino4_fuse *pre, int N, int C, int H, int W)
{
    int th = (H + TS - 1) / TS, tw = (W + TS - 1) / TS, tpi = th * tw;
    size_t Tr = (size_t)N * tpi, ps = nn_wino4_slot((size_t)C * T);
    /* maps of fewer than LT tiles: several images' tiles, contiguous in V, make one chunk, so
       that the transforms run on full vectors (an 8x8 map is 4 tiles) */
    int ipg = tpi < LT ? LT / tpi : 1, ng = (N + ipg - 1) / ipg;

    /* per (channel, group of images) and chunk of their tiles: the 6x6 patches
       de-interleaved into g (slot i*6+j holds d[i][j] of every tile), B^T along i into h
       (slot q*6+j), then along j straight into V (slot q*6+r, a run of the chunk's tiles).
       Each task's maps (one 4 KiB page at 32x32, the next task's C maps further) are a fresh
       start for the hardware prefetcher, and waiting for them was ~40% of the transform (the
       gather's loads, in a profile): so each task prefetches the next task's maps, a sixth of
       them per pass into V (all at once stalled on the misses in flight). A V of at least
       WINO_NT_BYTES is streamed past the caches (no read for ownership), with a fence before
       the barrier, ahead of the GEMMs' reads on the other thread. */
    int nt_v = 36 * ps * sizeof(float) >= WINO_NT_BYTES;
#pragma omp parallel
    {
#pragma omp for collapse(2) schedule(static) nowait
        for (int c = 0; c < C; c++)
            for (int gi = 0; gi < ng; gi++) {
                int n0 = gi * ipg, n1 = n0 + ipg < N ? n0 + ipg : N;
                float g[36 * LT], h[36 * LT];
                struct wino_chunk k = {0, 0, 0, 0};
                float act[LT * TS * TS]; /* the activated map, with pre */
                /* the next (channel, group)'s maps, prefetched a sixth at a time below */
                struct wino_pf pf = {NULL, 0, 0, 0};
                int cn = gi + 1 < ng ? c : c + 1, gn = gi + 1 < ng ? gi + 1 : 0;
                if (cn < C) {
                    int a0 = gn * ipg, a1 = a0 + ipg < N ? a0 + ipg : N;
                    pf = (struct wino_pf){(const char *)(in + ((size_t)a0 * C + cn) * H * W),
                                          (size_t)C * H * W * sizeof(float),
                                          (size_t)H * W * sizeof(float), a1 - a0};
                }
                for (int n = n0; n < n1; n++) {
                    const float *x = in + ((size_t)n * C + c) * H * W;
                    if (pre != NULL && pre->scale != NULL) { /* nn_group_norm_silu_forward's */
                        wino_silu_map(act, x, H * W, pre->scale[(size_t)n * C + c],
                                      pre->shift[(size_t)n * C + c]);
                        x = act;
                    }
                    float *vb = V + (size_t)c * T + c0 + (size_t)n * tpi;
                    int nt = (n1 - n0) * tpi;
                    if (ipg > 1 || tpi == LT) { /* the whole images at once */
                        wino_gather(g, (n - n0) * tpi, x, H, W, 0, 0, th, tw);
                        if (n + 1 < n1)
                            continue;
                        vb -= (size_t)(n1 - n0 - 1) * tpi;
                    } else {
                        if (!wino_chunk_next(&k, th, tw)) {
                            k = (struct wino_chunk){0, 0, 0, 0};
                            continue; /* the next image */
                        }
                        n--; /* this image again, for its next chunk */
                        nt = k.nr * k.nc;
                        wino_gather(g, 0, x, H, W, k.ty, k.tx, k.nr, k.nc);
                        vb += (size_t)k.ty * tw + k.tx;
                    }
                    for (int j = 0; j < AS; j++) /* i*6+j -> q*6+j */
                        bt6v(h + j * LT, AS * LT, g + j * LT, AS * LT, nt);
                    for (int q = 0; q < AS; q++) { /* q*6+j -> q*6+r */
                        wino_pf_part(&pf, q, AS, 0);
                        bt6v_nt(vb + (size_t)(q * AS) * ps, ps, h + q * AS * LT, LT, nt, nt_v);
                    }
                    pf.nm = 0; /* (a chunked map: all in its first chunk) */
                }
            }
#if defined(__AVX512F__)
        _mm_sfence();
#endif
    }
    if (c0 == 0 && Tr == T)
        return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int p = 0; p < 36; p++) { /* the empty slots */
            float *v = V + (size_t)p * ps + (size_t)c * T;
            memset(v, 0, c0 * sizeof(float));
            memset(v + c0 + Tr, 0, (T - c0 - Tr) * sizeof(float));
        }
}

void nn_wino4_input_tiles(float *V, size_t T, size_t c0, const float *in, int N, int C, int H,
                          int W)
{
    wino_input_tiles(V, T, c0, in, NULL, N, C, H, W);
}

/* M (36,OC,T) = the products with the weights transformed here, WINO_OB kernel rows at a
   time just before those rows' 36 GEMMs: a conv whose transform is not cached (inference on
   the largest maps) then writes its U (4x the weights) to memory and reads it back no more; a
   block's 36 (WINO_OB, C) matrices (at most 0.9 MB at C = 512) stay in the L2 of the thread
   that made them. The same transform and the same chains, so the same bits. ub: 36*OC*C
   floats (nn_wino4_weights' room), cut into one block's room per thread when the threads'
   blocks fit, else per block. */
#define WINO_OB 12 /* a multiple of the chain kernel's row blocks (6 and 12) */
static void wino_products_w(float *M, size_t psm, const float *V, size_t psv, const float *w,
                            float *ub, int T, int C, int OC)
{
    int nb = (OC + WINO_OB - 1) / WINO_OB;
#pragma omp parallel
    {
        int per_thread = omp_get_num_threads() * WINO_OB <= OC;
#pragma omp for schedule(dynamic, 1)
        for (int ib = 0; ib < nb; ib++) {
            int oc0 = ib * WINO_OB, ob = OC - oc0 < WINO_OB ? OC - oc0 : WINO_OB;
            float *Ub = ub + 36 * (size_t)C *
                                 (per_thread ? (size_t)omp_get_thread_num() * WINO_OB : (size_t)oc0);
            for (int r = 0; r < ob; r++)
                for (int c0 = 0; c0 < C; c0 += WW)
                    wino_w_chunk(Ub + (size_t)r * C + c0, (size_t)ob * C,
                                 w + ((size_t)(oc0 + r) * C + c0) * 9, 9,
                                 C - c0 < WW ? C - c0 : WW);
            for (int p = 0; p < 36; p++)
                nn_sgemm_chain(ob, T, C, Ub + (size_t)p * ob * C, C, V + (size_t)p * psv, T,
                               M + (size_t)p * psm + (size_t)oc0 * T, T);
        }
    }
}

/* One chunk's 4x4 output tiles from g (slot i*4+j holds y[i][j] of the chunk's tiles from
   t0 on, LT floats a slot) plus the bias into the map y (H x W): tile rows [ty, ty + nr),
   columns [tx, tx + nc), clipped to the map; then plus *add, then plus res (the map's
   residual, laid out as y), where not NULL. */
#if defined(__AVX512F__)
/* 8 tiles' 32 outputs of a row at a time: two vpermt2ps rounds interleave the 4 slots, the
   bias added to each value as before (s + bias), masked stores clip the map's edge */
static void wino_scatter(float *y, const float *g, int t0, float bias, const float *add,
                         const float *res, int H, int W, int ty, int tx, int nr, int nc)
{
    /* (a0 b0 a1 b1 ...) of a, b: lanes 0-15 from their lanes 0-7, 16-31 from 8-15 */
    const __m512i lo2 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i lo4 = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i hi4 = _mm512_add_epi32(lo4, _mm512_set1_epi32(8));
    const __m512 bv = _mm512_set1_ps(bias), av = _mm512_set1_ps(add ? *add : 0.0f);
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < TS && (ty + r) * TS + i < H; i++) {
            const float *s = g + (size_t)i * TS * LT + t0 + r * nc;
            float *row = y + (size_t)((ty + r) * TS + i) * W + tx * TS;
            for (int u0 = 0; u0 < nc; u0 += 8) {
                /* row positions 4 * u0 + [0, 32) inside the map and the chunk */
                int np = (nc - u0) * TS, left = W - (tx + u0) * TS;
                np = np < left ? np : left;
                np = np < 32 ? np : 32;
                __m512 s0 = _mm512_loadu_ps(s + u0), s1 = _mm512_loadu_ps(s + LT + u0);
                __m512 s2 = _mm512_loadu_ps(s + 2 * LT + u0), s3 = _mm512_loadu_ps(s + 3 * LT + u0);
                __m512 e01 = _mm512_permutex2var_ps(s0, lo2, s1); /* s0[u] s1[u], u < 8 */
                __m512 e23 = _mm512_permutex2var_ps(s2, lo2, s3);
                __m512 w0 = _mm512_permutex2var_ps(e01, lo4, e23); /* u 0-3 */
                __m512 w1 = _mm512_permutex2var_ps(e01, hi4, e23); /* u 4-7 */
                __mmask16 m0 = (__mmask16)(np >= 16 ? 0xffff : (1u << np) - 1);
                __mmask16 m1 = (__mmask16)(np >= 32 ? 0xffff : np > 16 ? (1u << (np - 16)) - 1 : 0);
                w0 = _mm512_add_ps(w0, bv);
                w1 = _mm512_add_ps(w1, bv);
                if (add) {
                    w0 = _mm512_add_ps(w0, av);
                    w1 = _mm512_add_ps(w1, av);
                }
                if (res) {
                    const float *rr = res + (row - y) + u0 * TS;
                    w0 = _mm512_add_ps(w0, _mm512_maskz_loadu_ps(m0, rr));
                    w1 = _mm512_add_ps(w1, _mm512_maskz_loadu_ps(m1, rr + 16));
                }
                _mm512_mask_storeu_ps(row + u0 * TS, m0, w0);
                _mm512_mask_storeu_ps(row + u0 * TS + 16, m1, w1);
            }
        }
}
#else
static void wino_scatter(float *y, const float *g, int t0, float bias, const float *add,
                         const float *res, int H, int W, int ty, int tx, int nr, int nc)
{
    /* the tiles whose 4 columns all lie inside the map, then the last partial one */
    int nf = W / TS - tx < nc ? W / TS - tx : nc;
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < TS && (ty + r) * TS + i < H; i++) {
            const float *s = g + (size_t)i * TS * LT + t0 + r * nc;
            float *row = y + (size_t)((ty + r) * TS + i) * W + tx * TS;
            for (int u = 0; u < nf; u++)
                for (int j = 0; j < TS; j++)
                    row[u * TS + j] = s[j * LT + u] + bias;
            for (int u = nf; u < nc; u++)
                for (int j = 0; j < TS && (tx + u) * TS + j < W; j++)
                    row[u * TS + j] = s[j * LT + u] + bias;
            int nw = (nc * TS < W - tx * TS ? nc * TS : W - tx * TS);
            if (add)
                for (int p = 0; p < nw; p++)
                    row[p] += *add;
            if (res)
                for (int p = 0; p < nw; p++)
                    row[p] += res[(row - y) + p];
        }
}
#endif

/* out (N,OC,H,W) = A^T m A + b of M (36,OC,T), per (out channel, group of images) and chunk
   of their tiles (as the input side's): A^T along r straight from M (slot q*6+r) into h (slot
   q*4+j), along q into g (slot i*4+j), then interleaved into the 4x4 tiles with the bias.
   As on the input side, a task's 36 runs of M and its output maps are too short for the
   hardware prefetcher, so each task (of whole images) prefetches the next one's. */
static void wino_output_tiles(float *out, const float *M, size_t T, const float *b,
                              const struct nn_wino4_fuse *f, int N, int OC, int H, int W)
{
    const float *fadd = f ? f->add : NULL, *fres = f ? f->res : NULL;
    int th = (H + TS - 1) / TS, tw = (W + TS - 1) / TS, tpi = th * tw;
    int ipg = tpi < LT ? LT / tpi : 1, ng = (N + ipg - 1) / ipg;
    size_t ps = nn_wino4_slot((size_t)OC * T);
#pragma omp parallel for collapse(2) schedule(static)
    for (int oc = 0; oc < OC; oc++)
        for (int gi = 0; gi < ng; gi++) {
            int n0 = gi * ipg, n1 = n0 + ipg < N ? n0 + ipg : N;
            float bias = b ? b[oc] : 0.0f;
            float g[16 * LT + 16], h[24 * LT]; /* g: room for wino_scatter's 8-tile reads */
            struct wino_chunk k = {0, 0, 0, 0};
            if (ipg > 1 || tpi == LT) { /* the group's whole images at once */
                int nt = (n1 - n0) * tpi;
                /* the next (channel, group)'s runs of M (prefetched a sixth at a time below),
                   output maps (for writing) and residual maps */
                struct wino_pf pm = {NULL, 0, 0, 0}, po = pm, pr = pm;
                int on = gi + 1 < ng ? oc : oc + 1, gn = gi + 1 < ng ? gi + 1 : 0;
                if (on < OC) {
                    int a0 = gn * ipg, a1 = a0 + ipg < N ? a0 + ipg : N;
                    size_t o = ((size_t)a0 * OC + on) * H * W;
                    pm = (struct wino_pf){(const char *)(M + (size_t)on * T + (size_t)a0 * tpi),
                                          ps * sizeof(float),
                                          (size_t)(a1 - a0) * tpi * sizeof(float), 36};
                    po = (struct wino_pf){(const char *)(out + o),
                                          (size_t)OC * H * W * sizeof(float),
                                          (size_t)H * W * sizeof(float), a1 - a0};
                    if (fres)
                        pr = po, pr.p = (const char *)(fres + o);
                }
                const float *m = M + (size_t)oc * T + (size_t)n0 * tpi;
                for (int q = 0; q < AS; q++) { /* q*6+r -> q*4+j */
                    wino_pf_part(&pm, q, AS, 0);
                    at6v(h + q * TS * LT, LT, m + (size_t)(q * AS) * ps, ps, nt);
                }
                wino_pf_part(&po, 0, 1, 1);
                wino_pf_part(&pr, 0, 1, 0);
                for (int j = 0; j < TS; j++) /* q*4+j -> i*4+j */
                    at6v(g + j * LT, TS * LT, h + j * LT, TS * LT, nt);
                for (int n = n0; n < n1; n++) {
                    size_t o = ((size_t)n * OC + oc) * H * W;
                    wino_scatter(out + o, g, (n - n0) * tpi, bias,
                                 fadd ? fadd + (size_t)n * OC + oc : NULL, fres ? fres + o : NULL,
                                 H, W, 0, 0, th, tw);
                }
                continue;
            }
            while (wino_chunk_next(&k, th, tw)) {
                int nt = k.nr * k.nc;
                const float *m = M + (size_t)oc * T + (size_t)n0 * tpi + (size_t)k.ty * tw + k.tx;
                for (int q = 0; q < AS; q++)
                    at6v(h + q * TS * LT, LT, m + (size_t)(q * AS) * ps, ps, nt);
                for (int j = 0; j < TS; j++)
                    at6v(g + j * LT, TS * LT, h + j * LT, TS * LT, nt);
                size_t o = ((size_t)n0 * OC + oc) * H * W;
                wino_scatter(out + o, g, 0, bias, fadd ? fadd + (size_t)n0 * OC + oc : NULL,
                             fres ? fres + o : NULL, H, W, k.ty, k.tx, k.nr, k.nc);
            }
        }
}

/* V (36,C,T) the input tiles, M (36,OC,T) the products, slots nn_wino4_slot(C * T) and
   nn_wino4_slot(OC * T) floats apart */
static void wino_conv3(float *out, float *V, float *M, const float *in,
                       const struct nn_wino4_fuse *pre, const float *U, int ut, const float *w,
                       float *ub, const float *b, int N, int C, int H, int W, int OC,
                       struct nn_wino4_times *times)
{
    size_t T = wino_cols(N, wino_tpi(H, W));
    size_t psv = nn_wino4_slot((size_t)C * T), psm = nn_wino4_slot((size_t)OC * T);
    int nch = (int)((T + WINO_GEMM_COLS - 1) / WINO_GEMM_COLS);
    double t0 = times ? util_now() : 0.0, t1;

    wino_input_tiles(V, T, 0, in, pre, N, C, H, W);
    if (times) {
        t1 = util_now();
        times->in_sec += t1 - t0;
        t0 = t1;
    }

    if (U != NULL) {
        /* the 36 products, one fixed-order GEMM per (product, block of columns) */
#pragma omp parallel for collapse(2) schedule(static)
        for (int p = 0; p < 36; p++)
            for (int j = 0; j < nch; j++) {
                size_t j0 = (size_t)j * WINO_GEMM_COLS;
                int nc = T - j0 < WINO_GEMM_COLS ? (int)(T - j0) : WINO_GEMM_COLS;
                if (ut)
                    nn_sgemm_chain_at(OC, nc, C, U + (size_t)p * OC * C, OC,
                                      V + (size_t)p * psv + j0, (int)T,
                                      M + (size_t)p * psm + j0, (int)T);
                else
                    nn_sgemm_chain(OC, nc, C, U + (size_t)p * OC * C, C,
                                   V + (size_t)p * psv + j0, (int)T,
                                   M + (size_t)p * psm + j0, (int)T);
            }
    } else {
        wino_products_w(M, psm, V, psv, w, ub, (int)T, C, OC);
    }
    if (times) {
        t1 = util_now();
        times->gemm_sec += t1 - t0;
        times->gemm_flop += 72.0 * OC * C * (double)T;
        t0 = t1;
    }
    wino_output_tiles(out, M, T, b, pre, N, OC, H, W);
    if (times)
        times->out_sec += util_now() - t0;
}

void nn_wino4_forward(float *out, float *scratch, const float *in, const float *U,
                      const float *b, int N, int C, int H, int W, int OC,
                      struct nn_wino4_times *times)
{
    wino_conv3(out, scratch, scratch + nn_wino4_tiles(N, C, H, W), in,
               NULL, U, 0, NULL, NULL, b, N, C, H, W, OC, times);
}

/* Where the transform inside the GEMMs measured faster than apart: not below 16 tiles (the
   row-lane kernel, nn_chain.c, wants calls of 64 rows, more than a block's 12), not above 16
   (at batch 16, fusing the 16x16 maps' convs, 256 tiles, and the 8x8 ones', 64, took
   bench_unet -v's GEMMs from 167 to 256 and 193 ms, against 34 ms for the transforms apart,
   2026-12-07). The two bounds meet: only calls of exactly 16 tiles fuse today. */
#define WINO_FUSED_MIN_COLS 16
#define WINO_FUSED_MAX_COLS 16

int nn_wino4_fuses(int N, int H, int W)
{
    size_t T = wino_cols(N, wino_tpi(H, W));
    return T >= WINO_FUSED_MIN_COLS && T <= WINO_FUSED_MAX_COLS;
}

void nn_wino4_forward_fused(float *out, float *scratch, float *ubuf, const float *in,
                          const struct nn_wino4_fuse *pre, const float *U, const float *w,
                          const float *b, int N, int C, int H, int W, int OC,
                          struct nn_wino4_times *times)
{
    if (U == NULL && !nn_wino4_fuses(N, H, W)) {
        double t0 = times ? util_now() : 0.0;
        nn_wino4_weights(ubuf, w, C, OC);
        if (times)
            times->gemm_sec += util_now() - t0;
        U = ubuf;
    }
    wino_conv3(out, scratch, scratch + nn_wino4_tiles(N, C, H, W), in,
               pre, U, 0, w, ubuf, b, N, C, H, W, OC, times);
}

void nn_wino4_forward_fused_t(float *out, float *scratch, const float *in,
                              const struct nn_wino4_fuse *pre, const float *Ut, const float *b,
                              int N, int C, int H, int W, int OC, struct nn_wino4_times *times)
{
    wino_conv3(out, scratch, scratch + nn_wino4_tiles(N, C, H, W), in,
               pre, Ut, 1, NULL, NULL, b, N, C, H, W, OC, times);
}

void nn_wino4_forward_t(float *out, float *scratch, const float *in, const float *Ut,
                        const float *b, int N, int C, int H, int W, int OC,
                        struct nn_wino4_times *times)
{
    nn_wino4_forward_fused_t(out, scratch, in, NULL, Ut, b, N, C, H, W, OC, times);
}

void nn_wino4_forward_keep(float *out, float *scratch, float *v, const float *in,
                           const float *U, const float *b, int N, int C, int H, int W, int OC,
                           struct nn_wino4_times *times)
{
    wino_conv3(out, v, scratch, in, NULL, U, 0, NULL, NULL, b, N, C, H, W, OC, times);
}
