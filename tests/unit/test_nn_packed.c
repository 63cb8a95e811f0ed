/* The packed Linear kernel (nn_linear_packed.c) and the attention on it (nn_attn_qkv.c):
   exact on small integers (every product and sum representable, so any order gives the same
   float), against a double reference on real-valued data over ragged shapes (rows not a
   multiple of the 12-row block, k not a multiple of the 384 block, strides wider than the
   data, no bias), and the promise callers rely on: a row's bits do not depend on the rows
   around it, its place, or the thread count. Attention against nn_attention_forward on
   separate q, k, v, including a head width (16) narrower than a panel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "test.h"
#include "util/util.h"

static float val(size_t i, unsigned s)
{
    unsigned h = (unsigned)(i * 2654435761u) ^ (s * 40503u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (float)((double)(h & 0xffff) / 32768.0 - 1.0);
}

static void test_integers(void)
{
    int M = 29, K = 517, N = 64;
    float *a = xmalloc((size_t)M * K * 4), *w = xmalloc((size_t)N * K * 4);
    float *wp = xmalloc((size_t)N * K * 4), *b = xmalloc((size_t)N * 4), *c = xmalloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)((int)(i % 7) - 3);
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = (float)((int)(i % 5) - 2);
    for (int j = 0; j < N; j++)
        b[j] = (float)(j - 20);
    nn_pack_linear(wp, w, N, K);
    nn_linear_packed(c, N, a, K, wp, b, M, K, N);
    int ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            long s = (long)b[j];
            for (int k = 0; k < K; k++)
                s += (long)a[(size_t)i * K + k] * (long)w[(size_t)j * K + k];
            ok &= c[(size_t)i * N + j] == (float)s;
        }
    CHECK(ok, "nn_linear_packed exact on small integers (29 x 517 x 64, with bias)");
    free(a);
    free(w);
    free(wp);
    free(b);
    free(c);
}

static void test_shape(int M, int K, int N, int bias)
{
    int ldi = K + 3, ldo = N + 32;
    float *a = xmalloc((size_t)M * ldi * 4), *w = xmalloc((size_t)N * K * 4);
    float *wp = xmalloc((size_t)N * K * 4), *b = xmalloc((size_t)N * 4);
    float *c = xmalloc((size_t)M * ldo * 4), *c1 = xmalloc((size_t)M * ldo * 4);
    for (size_t i = 0; i < (size_t)M * ldi; i++)
        a[i] = val(i, 1);
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = val(i, 2);
    for (int j = 0; j < N; j++)
        b[j] = val((size_t)j, 3);
    nn_pack_linear(wp, w, N, K);
    nn_set_threads(2);
    nn_linear_packed(c, ldo, a, ldi, wp, bias ? b : NULL, M, K, N);
    int close = 1, same = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? b[j] : 0, sa = fabs(s);
            for (int k = 0; k < K; k++) {
                double p = (double)a[(size_t)i * ldi + k] * w[(size_t)j * K + k];
                s += p;
                sa += fabs(p);
            }
            close &= fabs(c[(size_t)i * ldo + j] - s) <= 1.2e-7 * (K + 1) * sa + 1e-30;
        }
    /* every row alone, in reverse order, on 1 and 3 threads: the same bits */
    for (int t = 1; t <= 3; t += 2) {
        nn_set_threads(t);
        for (int i = M - 1; i >= 0; i--)
            nn_linear_packed(c1 + (size_t)i * ldo, ldo, a + (size_t)i * ldi, ldi, wp,
                             bias ? b : NULL, 1, K, N);
        for (int i = 0; i < M; i++)
            same &= memcmp(c + (size_t)i * ldo, c1 + (size_t)i * ldo, (size_t)N * 4) == 0;
        nn_linear_packed_serial(c1, ldo, a, ldi, wp, bias ? b : NULL, M, K, N);
        for (int i = 0; i < M; i++)
            same &= memcmp(c + (size_t)i * ldo, c1 + (size_t)i * ldo, (size_t)N * 4) == 0;
    }
    nn_set_threads(2);
    CHECK(close, "nn_linear_packed %d x %d x %d%s within the float error bound of double", M, K,
          N, bias ? " + bias" : "");
    CHECK(same, "nn_linear_packed %d x %d x %d: rows alone, serial, 1 and 3 threads give the "
          "same bits", M, K, N);
    free(a);
    free(w);
    free(wp);
    free(b);
    free(c);
    free(c1);
}

static void test_attention(int N, int T, int C, int heads)
{
    size_t R = (size_t)N * T;
    float *qkv = xmalloc(R * 3 * C * 4), *q = xmalloc(R * C * 4), *k = xmalloc(R * C * 4);
    float *v = xmalloc(R * C * 4), *o = xmalloc(R * C * 4), *o1 = xmalloc(R * C * 4);
    float *want = xmalloc(R * C * 4), *att = xmalloc((size_t)N * heads * T * T * 4);
    for (size_t i = 0; i < R * 3 * C; i++)
        qkv[i] = 2 * val(i, 4);
    for (size_t r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            q[r * C + c] = qkv[r * 3 * C + c];
            k[r * C + c] = qkv[r * 3 * C + C + c];
            v[r * C + c] = qkv[r * 3 * C + 2 * C + c];
        }
    nn_set_threads(2);
    nn_attention_forward(want, att, q, k, v, N, T, C, heads);
    nn_attention_qkv_forward(o, qkv, N, T, C, heads);
    char name[128];
    snprintf(name, sizeof name, "nn_attention_qkv_forward N %d T %d C %d heads %d against "
             "nn_attention_forward", N, T, C, heads);
    test_close(name, o, want, R * C, 1e-5, 1e-4);
    int same = 1;
    nn_set_threads(3);
    for (int n = N - 1; n >= 0; n--)
        nn_attention_qkv_forward(o1 + (size_t)n * T * C, qkv + (size_t)n * T * 3 * C, 1, T, C,
                                 heads);
    same &= memcmp(o, o1, R * C * 4) == 0;
    nn_set_threads(1);
    nn_attention_qkv_forward(o1, qkv, N, T, C, heads);
    same &= memcmp(o, o1, R * C * 4) == 0;
    nn_set_threads(2);
    CHECK(same, "nn_attention_qkv_forward: one image at a time on 3 threads and all on 1 "
          "thread give the same bits");
    free(qkv);
    free(q);
    free(k);
    free(v);
    free(o);
    free(o1);
    free(want);
    free(att);
}

int main(void)
{
    test_integers();
    test_shape(1, 1, 32, 1);
    test_shape(13, 7, 96, 0);
    test_shape(29, 300, 64, 1);
    test_shape(40, 588, 32, 1);
    test_shape(12, 513, 160, 0);
    test_attention(3, 37, 64, 2);
    test_attention(2, 50, 64, 4);
    test_attention(1, 257, 128, 2);
    return test_done();
}
