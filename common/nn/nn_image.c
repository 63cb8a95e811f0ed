/* uint8 NHWC images <-> float NCHW in [-1, 1]; see nn_image.h. */
#include <math.h>
#include <stddef.h>

#include "nn/nn_image.h"

float nn_image_from_u8(uint8_t u)
{
    return u / 127.5f - 1.0f;
}

uint8_t nn_image_to_u8(float x)
{
    /* (x + 1) * 127.5 is (x/2 + 0.5) * 255 scaled by a power of two, so it rounds the same;
       nearbyintf under the default rounding mode is numpy's half to even */
    float v = (x + 1.0f) * 127.5f;
    v = v > 0 ? (v < 255 ? nearbyintf(v) : 255) : 0; /* NaN fails both tests: 0 */
    return (uint8_t)v;
}

void nn_image_to_nchw(float *x, const uint8_t *img, int N, int C, int H, int W)
{
    size_t HW = (size_t)H * W, D = (size_t)C * HW;
    for (size_t n = 0; n < (size_t)N; n++)
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < HW; p++)
                x[n * D + c * HW + p] = nn_image_from_u8(img[n * D + p * C + c]);
}

void nn_image_from_nchw(uint8_t *img, const float *x, int N, int C, int H, int W)
{
    size_t HW = (size_t)H * W, D = (size_t)C * HW;
    for (size_t n = 0; n < (size_t)N; n++)
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < HW; p++)
                img[n * D + p * C + c] = nn_image_to_u8(x[n * D + c * HW + p]);
}
