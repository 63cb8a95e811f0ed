/* clean-fid's "clean" resize (make_resizer("PIL", quantize_after=False, "bicubic", (299,299))):
   each channel becomes a float32 PIL image (mode 'F'), Image.resize((299, 299), BICUBIC),
   then clip to 0..255. This follows Pillow 9.4's Resample.c for 32-bit float images:
   coefficients in double from the a = -0.5 cubic with its support (2) widened by the
   downscale factor (the antialiasing), normalised per output pixel; a horizontal pass into a
   float32 image, then a vertical pass, each summing in double and storing float32. Where no
   resampling is needed the pass is the identity exactly (weights 1, 0, 0). */
#include "models/inception_net.h"

#include <math.h>
#include <stdint.h>

#include "io/img.h"
#include "models/inception.h"

#define CLEAN_SUPPORT 2.0

/* Pillow's ksize for in -> out */
static int clean_ksize(int in, int out)
{
    double scale = (double)in / out;
    return (int)ceil(CLEAN_SUPPORT * (scale < 1.0 ? 1.0 : scale)) * 2 + 1;
}

/* Pillow precompute_coeffs (box 0..in): k (out, ksize), bounds (out, 2) = first, count */
static void coeffs(double *k, int *bounds, int in, int out, int ksize)
{
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale;
    double support = CLEAN_SUPPORT * fs, ss = 1.0 / fs;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        double *kk = k + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = img_bicubic_filter((x + xmin - center + 0.5) * ss);
            kk[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                kk[x] /= ww;
        for (; x < ksize; x++)
            kk[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

/* floats: the horizontal pass (299 x H), both coefficient tables in double (+1 for the
   alignment of doubles in a float buffer), both bounds tables */
size_t inception_clean_scratch(int H, int W)
{
    size_t S = INCEPTION_SIZE;
    return S * H + 2 * (S * clean_ksize(W, INCEPTION_SIZE) + S * clean_ksize(H, INCEPTION_SIZE) + 1) +
           4 * S;
}

void inception_clean_resize(float *out, const float *in, float *scratch, int H, int W)
{
    const int S = INCEPTION_SIZE;
    int kh = clean_ksize(W, S), kv = clean_ksize(H, S);
    float *tmp = scratch;                                   /* (H, 299) */
    uintptr_t p = (uintptr_t)(scratch + (size_t)S * H);
    double *ch = (double *)((p + 7) & ~(uintptr_t)7);       /* (299, kh) */
    double *cv = ch + (size_t)S * kh;                       /* (299, kv) */
    int *bh = (int *)(cv + (size_t)S * kv), *bv = bh + 2 * S;
    coeffs(ch, bh, W, S, kh);
    coeffs(cv, bv, H, S, kv);
    for (int c = 0; c < 3; c++) {
        const float *src = in + (size_t)c * H * W;
        float *dst = out + (size_t)c * S * S;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < S; xx++) {
                const double *k = ch + (size_t)xx * kh;
                const float *row = src + (size_t)y * W + bh[2 * xx];
                double ss = 0.0;
                for (int x = 0; x < bh[2 * xx + 1]; x++)
                    ss += row[x] * k[x];
                tmp[(size_t)y * S + xx] = (float)ss;
            }
        for (int yy = 0; yy < S; yy++) {
            const double *k = cv + (size_t)yy * kv;
            int y0 = bv[2 * yy], ny = bv[2 * yy + 1];
            for (int xx = 0; xx < S; xx++) {
                double ss = 0.0;
                for (int y = 0; y < ny; y++)
                    ss += tmp[(size_t)(y0 + y) * S + xx] * k[y];
                float v = (float)ss;
                dst[(size_t)yy * S + xx] = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            }
        }
    }
}
