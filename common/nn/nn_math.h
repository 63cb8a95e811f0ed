/* Inline math for the nn core's element-wise loops. glibc's expf is not vectorised without
   -ffast-math, which made SiLU and softmax cost 3 ns a value; nn_expf is Cephes' expf
   (range reduction by ln 2 in two parts, degree-6 polynomial, 2^n through the exponent bits),
   within 2 ulp on [-87, 88] and branch-free, so loops over it vectorise. */
#ifndef NN_MATH_H
#define NN_MATH_H
#include <math.h>
#include <stdint.h>

static inline float nn_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: floorf would not vectorise (inexact flag) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
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
#endif
