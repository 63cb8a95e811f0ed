/* Element-wise activations. Loops are OpenMP-parallel above a size where a fork pays off. */
#include <math.h>

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

void nn_gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n > ACT_PAR)
    for (size_t i = 0; i < n; i++)
        out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * (float)M_SQRT1_2));
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
