/* The 1x7 and 7x1 convs of Mixed_6b..Mixed_7a (a third of the network's multiplies) by 1-D
   Winograd F(2,7): per pair of outputs along the kernel's axis, the 8 input values d become
   V = B^T d, the 7 taps g become U = G g, and the pair is A^T (U .* V). The sum over input
   channels at each of the 8 points is a GEMM, M_xi (OC,T) = U_xi (OC,C) V_xi (C,T), so 8
   multiplies per two outputs replace 14 (with 17 outputs, 9 pairs: 1.65x fewer). Points 0,
   +-1, +-2, +-1/2 and infinity: in float32 the error is about 6x that of the direct sum
   (tests/unit/test_inception.c holds the network to PyTorch at 1e-4).

   Layout: the input (C,G,H,W) is first laid out as lines along the kernel's axis, X (C,LL,S):
   position i of each of the S lines (G*W columns or G*H rows), zero padded (3 before, so
   that LL = 2P + 6 for the P pairs), so that every transform loop runs over the lines at unit
   stride. Columns of V and M are (pair t, line s).
   A column's sum does not depend on the number of lines, so neither does an output. */
#include <stddef.h>
#include <string.h>

#include "inception_net.h"
#include "nn.h"

/* B^T, as w7_in computes it:
   { 1, 0, -21/4, 0, 21/4, 0, -1, 0 },  { 0, 1, 1, -17/4, -17/4, 1, 1, 0 },
   { 0, -1, 1, 17/4, -17/4, -1, 1, 0 }, { 0, 1/2, 1/4, -5/2, -5/4, 2, 1, 0 },
   { 0, -1/2, 1/4, 5/2, -5/4, -2, 1, 0 }, { 0, 2, 4, -5/2, -5, 1/2, 1, 0 },
   { 0, -2, 4, 5/2, -5, -1/2, 1, 0 },  { 0, -1, 0, 21/4, 0, -21/4, 0, 1 };
   A^T = { 1, 1, 1, 1, 1, 1, 1, 0 }, { 0, 1, -1, 2, -2, 1/2, -1/2, 1 } (in w7_out).
   G (8,7), in double: the weights are transformed once */
static const double G7[8][7] = {
    { 1, 0, 0, 0, 0, 0, 0 },
    { -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9, -2. / 9 },
    { -2. / 9, 2. / 9, -2. / 9, 2. / 9, -2. / 9, 2. / 9, -2. / 9 },
    { 1. / 90, 1. / 45, 2. / 45, 4. / 45, 8. / 45, 16. / 45, 32. / 45 },
    { 1. / 90, -1. / 45, 2. / 45, -4. / 45, 8. / 45, -16. / 45, 32. / 45 },
    { 32. / 45, 16. / 45, 8. / 45, 4. / 45, 2. / 45, 1. / 45, 1. / 90 },
    { 32. / 45, -16. / 45, 8. / 45, -4. / 45, 2. / 45, -1. / 45, 1. / 90 },
    { 0, 0, 0, 0, 0, 0, 1 },
};

void inception_w7_weights(float *u, const float *w, int OC, int C)
{
    for (int xi = 0; xi < 8; xi++)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                const float *k = w + ((size_t)o * C + c) * 7;
                double s = 0;
                for (int j = 0; j < 7; j++)
                    s += G7[xi][j] * k[j];
                u[((size_t)xi * OC + o) * C + c] = (float)s;
            }
}

/* pairs P and padded line length LL for lines of L */
static int w7_pairs(int L, int *LL)
{
    *LL = L + (L & 1) + 6;
    return (L + 1) / 2;
}

size_t inception_w7_scratch(int C, int OC, int G, int H, int W, int vertical)
{
    int LL, P = w7_pairs(vertical ? H : W, &LL);
    size_t S = (size_t)G * (vertical ? W : H), T = (size_t)P * S;
    return (size_t)C * LL * S + 8 * T * ((size_t)C + OC) + (size_t)LL * S;
}

/* X (C,LL,S) from in (C,G,H,W): lines along H (vertical, 7x1) or along W (1x7) */
static void w7_lines(float *X, const float *in, int C, int G, int H, int W, int LL,
                     int vertical)
{
    int L = vertical ? H : W, S = G * (vertical ? W : H);
    for (int c = 0; c < C; c++) {
        float *x = X + (size_t)c * LL * S;
        memset(x, 0, sizeof(float) * 3 * S);
        memset(x + (size_t)(3 + L) * S, 0, sizeof(float) * (LL - 3 - L) * S);
        for (int g = 0; g < G; g++) {
            const float *p = in + ((size_t)c * G + g) * H * W;
            if (vertical)
                for (int i = 0; i < H; i++)
                    memcpy(x + (size_t)(3 + i) * S + g * W, p + i * W, sizeof(float) * W);
            else
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < W; i++)
                        x[(size_t)(3 + i) * S + g * H + h] = p[h * W + i];
        }
    }
}

/* V (8,C,P*S): B^T d for each pair t and line, B^T's rows sharing their partial sums */
static void w7_in(float *V, const float *X, int C, int S, int P, int LL)
{
    size_t T = (size_t)P * S, xs = (size_t)C * T;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < P; t++) {
            const float *d = X + ((size_t)c * LL + 2 * t) * S;
            float *v = V + (size_t)c * T + (size_t)t * S;
#pragma omp simd
            for (int s = 0; s < S; s++) {
                float d0 = d[s], d1 = d[S + s], d2 = d[2 * S + s], d3 = d[3 * S + s];
                float d4 = d[4 * S + s], d5 = d[5 * S + s], d6 = d[6 * S + s];
                float d7 = d[7 * S + s];
                v[s] = d0 - d6 + 5.25f * (d4 - d2);
                float a = d2 + d6 - 4.25f * d4, b = d1 + d5 - 4.25f * d3;
                v[xs + s] = a + b;
                v[2 * xs + s] = a - b;
                a = 0.25f * d2 - 1.25f * d4 + d6, b = 0.5f * d1 - 2.5f * d3 + 2.0f * d5;
                v[3 * xs + s] = a + b;
                v[4 * xs + s] = a - b;
                a = 4.0f * d2 - 5.0f * d4 + d6, b = 2.0f * d1 - 2.5f * d3 + 0.5f * d5;
                v[5 * xs + s] = a + b;
                v[6 * xs + s] = a - b;
                v[7 * xs + s] = d7 - d1 + 5.25f * (d3 - d5);
            }
        }
}

/* out (OC,G,H,W) = ReLU(A^T M + b), through Y (2P,S) per output channel */
static void w7_out(float *out, const float *M, float *Y, const float *b, int OC, int G, int H,
                   int W, int P, int vertical)
{
    int S = G * (vertical ? W : H);
    size_t T = (size_t)P * S, xs = (size_t)OC * T;
    for (int o = 0; o < OC; o++) {
        const float *m = M + (size_t)o * T;
        float bo = b[o];
        for (int t = 0; t < P; t++) {
            const float *q = m + (size_t)t * S;
            float *y0 = Y + (size_t)(2 * t) * S, *y1 = y0 + S;
#pragma omp simd
            for (int s = 0; s < S; s++) {
                float m0 = q[s], m1 = q[xs + s], m2 = q[2 * xs + s], m3 = q[3 * xs + s];
                float m4 = q[4 * xs + s], m5 = q[5 * xs + s], m6 = q[6 * xs + s];
                float m7 = q[7 * xs + s];
                float e = m0 + m1 + m2 + m3 + m4 + m5 + m6 + bo;
                float f = (m1 - m2) + 2.0f * (m3 - m4) + 0.5f * (m5 - m6) + m7 + bo;
                y0[s] = e > 0.0f ? e : 0.0f;
                y1[s] = f > 0.0f ? f : 0.0f;
            }
        }
        for (int g = 0; g < G; g++) {
            float *p = out + ((size_t)o * G + g) * H * W;
            if (vertical)
                for (int i = 0; i < H; i++)
                    memcpy(p + i * W, Y + (size_t)i * S + g * W, sizeof(float) * W);
            else
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < W; i++)
                        p[h * W + i] = Y[(size_t)i * S + g * H + h];
        }
    }
}

void inception_w7_forward(float *out, float *scratch, const float *in, const float *u,
                          const float *b, int C, int OC, int G, int H, int W, int vertical)
{
    int LL, P = w7_pairs(vertical ? H : W, &LL), S = G * (vertical ? W : H);
    size_t T = (size_t)P * S;
    float *X = scratch, *V = X + (size_t)C * LL * S, *M = V + 8 * T * C, *Y = M + 8 * T * OC;
    w7_lines(X, in, C, G, H, W, LL, vertical);
    w7_in(V, X, C, S, P, LL);
    for (int xi = 0; xi < 8; xi++)
        nn_sgemm_serial(0, 0, OC, (int)T, C, 1.0f, u + (size_t)xi * OC * C, C,
                        V + (size_t)xi * C * T, (int)T, 0.0f, M + (size_t)xi * OC * T, (int)T);
    w7_out(out, M, Y, b, OC, G, H, W, P, vertical);
}
