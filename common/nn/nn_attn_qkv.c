/* Self-attention over a fused qkv buffer (a Linear(C, 3C) output: row t = [q | k | v]) for
   inference, on the packed kernel of nn_linear_packed.c: per (image, head), scores = q k^T
   scale with k packed (and scaled) as a Linear's weights, a one-pass softmax per row, then
   att v with v packed the same way. Every value is a fixed chain of operations on its own
   image and head, so the bits depend neither on the batch nor on which thread ran the task;
   the tasks are spread over the threads.

   Why not nn_attention_forward: its per-head OpenBLAS calls (257 x 257 x 64 for DINOv2) ran
   at a fifth of the big GEMMs' speed, and it needs q, k, v as separate buffers. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_math.h"
#include "nn/nn_transpose.h"
#include "util/util.h"

#define NR NN_PACK_NR

static size_t scratch_size(int T, int C, int heads)
{
    size_t Tp = ((size_t)T + NR - 1) / NR * NR, D = (size_t)C / heads;
    size_t Dp = (D + NR - 1) / NR * NR;
    /* scores^T (T, Tp), packed q (Tp x D), packed v (T x Dp), a narrow head's output */
    return (size_t)T * Tp + D * Tp + 2 * (size_t)T * Dp;
}

/* softmax over keys of s^T (T keys, ld): a query's scores are a column, so the vectors run
   across queries; NR columns at a time, whose T rows stay in L1 for the three passes */
static void softmax_cols(float *st, int T, int ld)
{
    for (int p = 0; p < ld; p += NR) {
        float *b = st + p, m[NR], sum[NR];
        for (int c = 0; c < NR; c++) {
            m[c] = -INFINITY;
            sum[c] = 0;
        }
        for (int j = 0; j < T; j++)
#pragma omp simd
            for (int c = 0; c < NR; c++)
                m[c] = b[(size_t)j * ld + c] > m[c] ? b[(size_t)j * ld + c] : m[c];
        for (int j = 0; j < T; j++)
#pragma omp simd
            for (int c = 0; c < NR; c++) {
                b[(size_t)j * ld + c] = nn_expf(b[(size_t)j * ld + c] - m[c]);
                sum[c] += b[(size_t)j * ld + c];
            }
        for (int c = 0; c < NR; c++)
            sum[c] = 1.0f / sum[c];
        for (int j = 0; j < T; j++)
#pragma omp simd
            for (int c = 0; c < NR; c++)
                b[(size_t)j * ld + c] *= sum[c];
    }
}

/* one (image, head), computed transposed so that the softmax runs along vectors and the
   second product's left operand, att^T, is read k-major as it lies: s^T (keys x queries) =
   k (q scale)^T with q packed; then out = att v with att^T as the transposed left operand
   and v packed (a plain copy of its rows, NR channels a panel) */
#if defined(__AVX512F__)
__attribute__((target("prefer-vector-width=512")))
#endif
static void attn1(float *out, int ldo, const float *qkv, int ldq, float *scr, int T, int C,
                  int D, float scale)
{
    int Tp = (T + NR - 1) / NR * NR, Dp = (D + NR - 1) / NR * NR;
    float *st = scr, *qp = st + (size_t)T * Tp, *vp = qp + (size_t)D * Tp;
    float *o = vp + (size_t)T * Dp;
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
#if defined(__AVX512F__)
    if (D % 16 == 0) { /* 16 queries by 16 channels a transpose: the same products, stored */
        __m512 sv = _mm512_set1_ps(scale);
        for (int t0 = 0; t0 < Tp; t0 += 16)
            for (int d0 = 0; d0 < D; d0 += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = t0 + i < T ? _mm512_mul_ps(_mm512_loadu_ps(q + (size_t)(t0 + i) * ldq + d0), sv)
                                      : _mm512_setzero_ps();
                nn_transpose16(r);
                float *dst = qp + (size_t)(t0 / NR) * D * NR + (size_t)d0 * NR + t0 % NR;
                for (int d = 0; d < 16; d++)
                    _mm512_storeu_ps(dst + (size_t)d * NR, r[d]);
            }
    } else
#endif
    for (int p = 0; p < Tp / NR; p++)
        for (int c = 0; c < NR; c++) {
            int t = p * NR + c;
            float *dst = qp + (size_t)p * D * NR + c;
            if (t >= T) {
                for (int d = 0; d < D; d++)
                    dst[(size_t)d * NR] = 0.0f;
                continue;
            }
            const float *src = q + (size_t)t * ldq;
            for (int d = 0; d < D; d++)
                dst[(size_t)d * NR] = src[d] * scale;
        }
    nn_gemm_packed_serial(st, Tp, NR, k, ldq, 0, qp, NULL, T, D, Tp);
    softmax_cols(st, T, Tp);
    for (int p = 0; p < Dp / NR; p++)
        for (int t = 0; t < T; t++) {
            float *dst = vp + ((size_t)p * T + t) * NR;
            int w = D - p * NR < NR ? D - p * NR : NR;
            if (w == NR) { /* a fixed size the compiler inlines: the libc call was 6% */
                memcpy(dst, v + (size_t)t * ldq + p * NR, NR * sizeof(float));
                continue;
            }
            memcpy(dst, v + (size_t)t * ldq + p * NR, (size_t)w * sizeof(float));
            memset(dst + w, 0, (size_t)(NR - w) * sizeof(float));
        }
    if (Dp == D) {
        nn_gemm_packed_serial(out, ldo, NR, st, Tp, 1, vp, NULL, T, T, D);
        return;
    }
    /* a head width off the panel size: through a buffer, then copied */
    nn_gemm_packed_serial(o, Dp, NR, st, Tp, 1, vp, NULL, T, T, Dp);
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * ldo, o + (size_t)t * Dp, (size_t)D * sizeof(float));
}

void nn_attention_qkv_forward(float *out, const float *qkv, int N, int T, int C, int heads)
{
    int D = C / heads, ntask = N * heads, nt = nn_get_threads();
    size_t per = scratch_size(T, C, heads);
    float scale = 1.0f / sqrtf((float)D);
    nt = omp_in_parallel() ? 1 : nt < ntask ? nt : ntask;
    /* per call: glibc serves it from the heap once the first such block has been freed */
    float *scratch = xmalloc((size_t)nt * per * sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        float *scr = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(static)
        for (int i = 0; i < ntask; i++) {
            int n = i / heads, h = i % heads;
            attn1(out + (size_t)n * T * C + (size_t)h * D, C,
                  qkv + (size_t)n * T * 3 * C + (size_t)h * D, 3 * C, scr, T, C, D, scale);
        }
    }
    free(scratch);
}
