/* Element-wise activations. Loops are OpenMP-parallel above a size where a fork pays off. */
#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "nn/nn.h"
#include "nn/nn_math.h"

#define ACT_PAR 65536

void nn_relu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > 0 ? in[i] : 0;
}

void nn_relu_backward(float *din, const float *dout, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        din[i] += in[i] > 0 ? dout[i] : 0;
}

/* in place, from the ReLU's output: serial, for callers that thread over images themselves */
void nn_relu_mask(float *d, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = y[i] > 0 ? d[i] : 0;
}

void nn_silu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] / (1.0f + nn_expf(-in[i]));
}

void nn_silu_backward(float *din, const float *dout, const float *in, size_t n)
{
    /* d/dx x s(x) = s (1 + x (1 - s)) */
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + nn_expf(-in[i]));
        din[i] += dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}

void nn_tanh_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = tanhf(in[i]);
}

void nn_tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void nn_sigmoid_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = 1.0f / (1.0f + nn_expf(-in[i]));
}

void nn_sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

#if defined(__AVX512F__)
/* nn_erff (nn_math.h) on 16 lanes, op for op, so the bits are the scalar function's */
static inline __m512 erf16(__m512 a)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 t = _mm512_andnot_ps(sign, a), s = _mm512_mul_ps(a, a);
    __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(-1.72853470e-5f), t, _mm512_set1_ps(3.83197126e-4f));
    __m512 u = _mm512_fmadd_ps(_mm512_set1_ps(-3.88396438e-3f), t, _mm512_set1_ps(2.42546219e-2f));
    r = _mm512_fmadd_ps(r, s, u);
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-1.06777877e-1f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-6.34846687e-1f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-1.28717512e-1f));
    r = _mm512_fmadd_ps(r, t, _mm512_sub_ps(_mm512_setzero_ps(), t));
    /* nn_erf_exp(r) */
    r = _mm512_max_ps(r, _mm512_set1_ps(-87.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 nk = _mm512_sub_ps(_mm512_fmadd_ps(r, _mm512_set1_ps(1.44269504088896341f), magic),
                              magic);
    __m512 f = _mm512_fmadd_ps(nk, _mm512_set1_ps(-0.693359375f), r);
    f = _mm512_fmadd_ps(nk, _mm512_set1_ps(2.12194440e-4f), f);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(f, f), f), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(nk), _mm512_set1_epi32(127)),
                                  23);
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(p, _mm512_castsi512_ps(e)));
    big = _mm512_or_ps(big, _mm512_and_ps(a, sign)); /* copysign: 1 - e^r is >= 0 */
    __m512 c = _mm512_set1_ps(-5.96761703e-4f);
    c = _mm512_fmadd_ps(c, s, _mm512_set1_ps(4.99119423e-3f));
    c = _mm512_fmadd_ps(c, s, _mm512_set1_ps(-2.67681349e-2f));
    c = _mm512_fmadd_ps(c, s, _mm512_set1_ps(1.12819925e-1f));
    c = _mm512_fmadd_ps(c, s, _mm512_set1_ps(-3.76125336e-1f));
    c = _mm512_fmadd_ps(c, s, _mm512_set1_ps(1.28379166e-1f));
    c = _mm512_fmadd_ps(c, a, a);
    __mmask16 m = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0.927734375f), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(m, c, big);
}

static inline __m512 gelu16(__m512 x)
{
    __m512 e = erf16(_mm512_mul_ps(x, _mm512_set1_ps((float)M_SQRT1_2)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
#endif

/* 0.5 x (1 + erf(x / sqrt 2)) as PyTorch's exact GELU computes it, with nn_erff (within
   ~1 ulp of erf, as glibc's erff) instead of libm's scalar erff: 25M values an image in
   DINOv2's MLPs made that a tenth of the forward. Bits are the same on every path (the
   AVX-512 lanes and the portable C compute the same fmaf sequence). */
void nn_gelu_forward(float *out, const float *in, size_t n)
{
#if defined(__AVX512F__)
    size_t nv = (n + 15) / 16;
#pragma omp parallel for schedule(static) if (n > ACT_PAR)
    for (size_t v = 0; v < nv; v++) {
        size_t i = v * 16, k = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)(k == 16 ? 0xffff : (1u << k) - 1);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, in + i)));
    }
#else
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = 0.5f * in[i] * (1.0f + nn_erff(in[i] * (float)M_SQRT1_2));
#endif
}

/* nn_gelu_forward in place on the calling thread, for the rows of a tile the packed GEMM
   has just finished (nn_linear_packed_ep): the same operations, without a parallel region */
void nn_gelu_rows(float *x, size_t n)
{
#if defined(__AVX512F__)
    for (size_t i = 0; i < n; i += 16) {
        size_t k = n - i < 16 ? n - i : 16;
        __mmask16 m = (__mmask16)(k == 16 ? 0xffff : (1u << k) - 1);
        _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
#else
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + nn_erff(x[i] * (float)M_SQRT1_2));
#endif
}

void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
    const float k = (float)(0.5 * M_2_SQRTPI * M_SQRT1_2); /* 1/sqrt(2 pi) */
#pragma omp parallel for schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        din[i] += dout[i] * (cdf + x * k * expf(-0.5f * x * x));
    }
}
