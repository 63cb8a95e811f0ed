/* Scaled dot-product self-attention over T tokens, per (image, head): scores q k^T / sqrt(D)
   into att, softmax along keys, out = att v. Heads are column slices of q, k, v (N,T,C),
   addressed with leading dimension C, so no reshuffling copies. */
#include <math.h>
#include <omp.h>

#include "nn/nn.h"

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static void attn_fwd1(float *out, float *att, const float *q, const float *k, const float *v,
                      int T, int C, int D, gemm_fn gemm)
{
    gemm(0, 1, T, T, D, 1.0f / sqrtf((float)D), q, C, k, C, 0.0f, att, T);
    nn_softmax_forward(att, att, T, T);
    gemm(0, 0, T, D, T, 1.0f, att, T, v, C, 0.0f, out, C);
}

void nn_attention_forward(float *out, float *att, const float *q, const float *k,
                          const float *v, int N, int T, int C, int heads)
{
    /* each (image, head) on one thread with single-threaded GEMMs, whatever the thread
       count, so the result does not depend on it (splitting one head's GEMMs over the
       threads when N*heads is below their count gave other bits) */
    int D = C / heads, nt = nn_get_threads(), ntask = N * heads;
    size_t TC = (size_t)T * C, TT = (size_t)T * T;
    nt = omp_in_parallel() ? 1 : nt < ntask ? nt : ntask;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < ntask; i++) {
        int n = i / heads, h = i % heads;
        size_t o = n * TC + (size_t)h * D;
        attn_fwd1(out + o, att + i * TT, q + o, k + o, v + o, T, C, D, nn_sgemm_serial);
    }
}

/* dS = att * (dA - rowsum(dA * att)) / sqrt(D), with dA = dout v^T */
void nn_attention_softmax_backward(float *ds, const float *att, int T, float sc)
{
    for (int r = 0; r < T; r++) {
        float *d = ds + (size_t)r * T;
        const float *a = att + (size_t)r * T;
        float s = 0;
        for (int j = 0; j < T; j++)
            s += d[j] * a[j];
        for (int j = 0; j < T; j++)
            d[j] = a[j] * (d[j] - s) * sc;
    }
}

static void attn_bwd1(float *dq, float *dk, float *dv, float *ds, const float *dout,
                      const float *q, const float *k, const float *v, const float *att, int T,
                      int C, int D, gemm_fn gemm)
{
    float sc = 1.0f / sqrtf((float)D);
    if (dv != NULL)
        gemm(1, 0, T, D, T, 1.0f, att, T, dout, C, 1.0f, dv, C);
    if (dq == NULL && dk == NULL)
        return;
    gemm(0, 1, T, T, D, 1.0f, dout, C, v, C, 0.0f, ds, T);
    nn_attention_softmax_backward(ds, att, T, sc);
    if (dq != NULL)
        gemm(0, 0, T, D, T, 1.0f, ds, T, k, C, 1.0f, dq, C);
    if (dk != NULL)
        gemm(1, 0, T, D, T, 1.0f, ds, T, q, C, 1.0f, dk, C);
}

void nn_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *att,
                           int N, int T, int C, int heads)
{
    int D = C / heads, nt = nn_get_threads(), ntask = N * heads;
    size_t TC = (size_t)T * C, TT = (size_t)T * T;
#define ATT_ARGS(o, i)                                                                         \
    dq != NULL ? dq + (o) : NULL, dk != NULL ? dk + (o) : NULL, dv != NULL ? dv + (o) : NULL,  \
        scratch + (i) * TT, dout + (o), q + (o), k + (o), v + (o), att + (i) * TT, T, C, D
    if (ntask >= nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int i = 0; i < ntask; i++) {
            size_t o = i / heads * TC + (size_t)(i % heads) * D;
            attn_bwd1(ATT_ARGS(o, i), nn_sgemm_serial);
        }
    } else {
        for (int i = 0; i < ntask; i++) {
            size_t o = i / heads * TC + (size_t)(i % heads) * D;
            attn_bwd1(ATT_ARGS(o, i), nn_sgemm);
        }
    }
#undef ATT_ARGS
}
