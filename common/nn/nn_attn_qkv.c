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
#include "util/util.h"

#define NR NN_PACK_NR

static size_t scratch_size(int T, int C, int heads)
{
    size_t Tp = ((size_t)T + NR - 1) / NR * NR, D = (size_t)C / heads;
    /* scores (T, Tp), packed k (Tp x D), packed v (Dp x T), the output of a narrow head */
    return (size_t)T * Tp + D * Tp + 2 * (size_t)T * ((D + NR - 1) / NR * NR);
}

/* rows of s (T, ld) -> softmax over the first n entries, in place */
static void softmax_rows(float *s, int T, int n, int ld)
{
    for (int r = 0; r < T; r++) {
        float *y = s + (size_t)r * ld, m = -INFINITY, sum = 0;
#pragma omp simd reduction(max : m)
        for (int j = 0; j < n; j++)
            m = y[j] > m ? y[j] : m;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            y[j] = nn_expf(y[j] - m);
            sum += y[j];
        }
        float is = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < n; j++)
            y[j] *= is;
    }
}

static void attn1(float *out, int ldo, const float *qkv, int ldq, float *scr, int T, int C,
                  int D, float scale)
{
    int Tp = (T + NR - 1) / NR * NR, Dp = (D + NR - 1) / NR * NR;
    float *s = scr, *kp = s + (size_t)T * Tp, *vp = kp + (size_t)D * Tp;
    const float *q = qkv, *k = qkv + C, *v = qkv + 2 * C;
    /* k as the weights (T, D) of a Linear: panels of NR tokens (zero past T), scaled */
    for (int p = 0; p < Tp / NR; p++)
        for (int d = 0; d < D; d++)
            for (int c = 0; c < NR; c++) {
                int t = p * NR + c;
                kp[((size_t)p * D + d) * NR + c] = t < T ? k[(size_t)t * ldq + d] * scale : 0.0f;
            }
    nn_linear_packed_serial(s, Tp, q, ldq, kp, NULL, T, D, Tp);
    softmax_rows(s, T, T, Tp);
    /* v^T (D, T) as the weights: panel p holds channels p*NR.. for every token */
    for (int p = 0; p < Dp / NR; p++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < NR; c++) {
                int d = p * NR + c;
                vp[((size_t)p * T + t) * NR + c] = d < D ? v[(size_t)t * ldq + d] : 0.0f;
            }
    if (Dp == D) {
        nn_linear_packed_serial(out, ldo, s, Tp, vp, NULL, T, T, D);
        return;
    }
    /* a head width off the panel size: through the scores' buffer, then copied */
    float *o = vp + (size_t)Dp * T;
    nn_linear_packed_serial(o, Dp, s, Tp, vp, NULL, T, T, Dp);
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
