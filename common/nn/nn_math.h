/* Inline math for the nn core's element-wise loops. glibc's expf is not vectorised without
   -ffast-math, which made SiLU and softmax cost 3 ns a value; nn_expf is Cephes' expf
   (range reduction by ln 2 in two parts, degree-6 polynomial, 2^n through the exponent bits),
   within 2 ulp on [-87, 88] and branch-free, so loops over it vectorise. */
#ifndef NN_MATH_H
#define NN_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x = 2^n e^r for n, the nearest integer to x / ln 2 as the caller rounds it: the rest of
   Cephes' expf, shared by nn_expf and nn_erf_exp */
static inline float nn_exp_reduced(float x, float n)
{
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    union {
        int32_t i;
        float f;
    } s = {((int32_t)n + 127) << 23};
    return p * s.f;
}

static inline float nn_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: floorf would not vectorise (inexact flag) */
    return nn_exp_reduced(x, (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f);
}
/* silu(v) = v * sigmoid(v) for the fused group norm + SiLU (nn_group_norm_silu_forward), with sigmoid(v) = 1/2 + sign(v) (1/(1 + e^-|v|) - 1/2) and
   e^-|v| by Cephes expf (range reduction by ln 2, degree-6 polynomial, relative error
   ~1e-7). Written branch-free so that GCC vectorises it without -ffast-math (fmaxf, or a
   float clamp next to fabsf, stop the vectoriser: the clamp is on the integer exponent). */
static inline float nn_silu_sym(float v)
{
    float t = -fabsf(v);
    int32_t mi = (int32_t)(t * 1.44269504f - 0.5f); /* nearest integer to t / ln 2 */
    mi = mi < -125 ? -125 : mi;
    float keep = (float)(mi > -125);
    t = t * keep - 86.0f * (1.0f - keep);           /* e^-86 is 0 next to 1 anyway */
    float m = (float)mi;
    float r = t - m * 0.693359375f + m * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = (mi + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale); /* the bit cast; compilers emit a register move */
    float s = 1.0f / (1.0f + p * scale);
    return v * (0.5f + copysignf(s - 0.5f, v));
}

/* tanh as Eigen's ptanh_float: a [13/6] rational function on [-7.9, 7.9] (clamped beyond),
   within 4e-7 of tanh; unlike libm's tanhf it vectorises. */
static inline float nn_tanhf_rational(float x)
{
    const float c = 7.90531110763549805f;
    float xc = x > c ? c : (x < -c ? -c : x), x2 = xc * xc, p, q;
    p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return fabsf(x) < 0.0004f ? x : xc * p / q;
}
/* erf in float32 as Norbert Juffa's erff (his published minimax fits, within 1 ulp with a
   correctly rounded exp): x + x P(x^2) below |x| = 0.9277, else 1 - e^Q(|x|) with the sign of
   x. Branch-free (both sides computed, one kept) and written op for op as the AVX-512 path of
   nn_gelu_forward, which must give the same bits; its exp is Cephes' (as nn_expf) with every
   step an fmaf, within 2 ulp on [-87, 0], and clamped there (e^-87 is nothing next to 1).
   NaN stays NaN (the comparison fails and the polynomial side carries it); erf(+-inf) = +-1. */
static inline float nn_erf_exp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    return nn_exp_reduced(x, fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f);
}

static inline float nn_erff(float a)
{
    float t = fabsf(a), s = a * a;
    float r = fmaf(-1.72853470e-5f, t, 3.83197126e-4f);
    float u = fmaf(-3.88396438e-3f, t, 2.42546219e-2f);
    r = fmaf(r, s, u);
    r = fmaf(r, t, -1.06777877e-1f);
    r = fmaf(r, t, -6.34846687e-1f);
    r = fmaf(r, t, -1.28717512e-1f);
    r = fmaf(r, t, -t);
    float big = copysignf(1.0f - nn_erf_exp(r), a);
    float c = -5.96761703e-4f;
    c = fmaf(c, s, 4.99119423e-3f);
    c = fmaf(c, s, -2.67681349e-2f);
    c = fmaf(c, s, 1.12819925e-1f);
    c = fmaf(c, s, -3.76125336e-1f);
    c = fmaf(c, s, 1.28379166e-1f);
    c = fmaf(c, a, a);
    return t > 0.927734375f ? big : c;
}
#endif
