/* The FID Inception v3 preprocessing: u8 HWC images to the network's (3,299,299) input, in
   the pytorch-fid or the torch-fidelity convention (see inception.h). */
#include "models/inception.h"

#include <stdlib.h>

#include "models/inception_net.h"
#include "nn/nn.h"
#include "util/util.h"

/* TF1 resize_bilinear, align_corners=False, as torch-fidelity's resample_manually: float32
   grid = dst * (float)(in/out), lo = trunc, hi = min(lo+1, in-1); lerp along x, then y. */
static void tf1_resize(float *out, const float *in, int C, int H, int W, int OH, int OW,
                       int *lo, float *d)
{
    int *xlo = lo, *xhi = lo + OW, *ylo = lo + 2 * OW, *yhi = ylo + OH;
    float *dx = d, *dy = d + OW;
    float sx = (float)((double)W / OW), sy = (float)((double)H / OH);
    for (int x = 0; x < OW; x++) {
        float g = (float)x * sx;
        xlo[x] = (int)g;
        xhi[x] = xlo[x] + 1 < W - 1 ? xlo[x] + 1 : W - 1;
        dx[x] = g - (float)xlo[x];
    }
    for (int y = 0; y < OH; y++) {
        float g = (float)y * sy;
        ylo[y] = (int)g;
        yhi[y] = ylo[y] + 1 < H - 1 ? ylo[y] + 1 : H - 1;
        dy[y] = g - (float)ylo[y];
    }
    for (int c = 0; c < C; c++) {
        const float *p = in + (size_t)c * H * W;
        for (int y = 0; y < OH; y++) {
            const float *r0 = p + (size_t)ylo[y] * W, *r1 = p + (size_t)yhi[y] * W;
            float *o = out + ((size_t)c * OH + y) * OW;
            for (int x = 0; x < OW; x++) {
                float a = r0[xlo[x]], b = r0[xhi[x]], e = r1[xlo[x]], f = r1[xhi[x]];
                float top = a + (b - a) * dx[x];
                float bot = e + (f - e) * dx[x];
                o[x] = top + (bot - top) * dy[y];
            }
        }
    }
}

/* floats of preprocess() scratch: the image as float, then the TF1 grid (2 float and 4 int
   tables of 299) or clean's (inception_clean_scratch) */
size_t inception_pre_scratch(int H, int W)
{
    size_t clean = inception_clean_scratch(H, W);
    return (size_t)3 * H * W + (clean > 6 * INCEPTION_SIZE ? clean : 6 * INCEPTION_SIZE);
}

void inception_pre_run(float *x, float *tmp, const uint8_t *img, int H, int W,
                       enum inception_resize mode)
{
    size_t HW = (size_t)H * W, n = (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < HW; i++)
            tmp[c * HW + i] = mode == INCEPTION_RESIZE_PYTORCH_FID ? (float)img[i * 3 + c] / 255.0f
                                                                   : (float)img[i * 3 + c];
    if (mode == INCEPTION_RESIZE_CLEAN) {
        inception_clean_resize(x, tmp, tmp + 3 * HW, H, W);
        for (size_t i = 0; i < n; i++)
            x[i] = (x[i] - 128.0f) / 128.0f;
    } else if (mode == INCEPTION_RESIZE_PYTORCH_FID) {
        nn_bilinear_resize_forward(x, tmp, 1, 3, H, W, INCEPTION_SIZE, INCEPTION_SIZE);
        for (size_t i = 0; i < n; i++)
            x[i] = 2.0f * x[i] - 1.0f;
    } else {
        float *d = tmp + 3 * HW;
        int *lo = (int *)(d + 2 * INCEPTION_SIZE);
        tf1_resize(x, tmp, 3, H, W, INCEPTION_SIZE, INCEPTION_SIZE, lo, d);
        for (size_t i = 0; i < n; i++)
            x[i] = (x[i] - 128.0f) / 128.0f;
    }
}

void inception_preprocess(float *x, const uint8_t *img, int H, int W, enum inception_resize mode)
{
    float *tmp = xmalloc(inception_pre_scratch(H, W) * sizeof(float));
    inception_pre_run(x, tmp, img, H, W, mode);
    free(tmp);
}
