/* PIL-exact resizing of packed RGB8 images (bilinear and bicubic with antialias, as
   Image.resize does them), the centre box and the centre crop: a port of PIL 9.4
   libImaging/Resample.c. */
#include "io/img.h"
#include "util/util.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Resizing: a port of PIL 9.4 libImaging/Resample.c (ImagingResample, BILINEAR and
   BICUBIC) ---- */

/* 32 - 8 - 2: 8 bits of pixel, 2 of headroom for negative/over-unity coefficient sums. */
#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

double img_bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct resample_filter {
    double (*f)(double);
    double support;
};
static const struct resample_filter filter_bilinear = { bilinear_filter, 1.0 };
static const struct resample_filter filter_bicubic = { img_bicubic_filter, 2.0 };

/* precompute_coeffs + normalize_coeffs_8bpc for one axis of inSize pixels (box in0..in1) to
   outSize. bounds: 2*outSize (first, count); kk: outSize*ksize. Returns ksize. */
static int resample_coeffs(const struct resample_filter *flt, int in_size, float in0, float in1,
                           int out_size, int **boundsp, int32_t **kkp)
{
    double support, scale, filterscale, center, ww, ss;
    int ksize, xmin, xmax;
    int *bounds;
    int32_t *kk;
    double *k;

    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0)
        filterscale = 1.0;
    support = flt->support * filterscale;
    ksize = (int)ceil(support) * 2 + 1;
    kk = xmalloc((size_t)out_size * ksize * sizeof *kk);
    bounds = xmalloc((size_t)out_size * 2 * sizeof *bounds);
    k = xmalloc((size_t)ksize * sizeof *k);
    for (int xx = 0; xx < out_size; xx++) {
        center = in0 + (xx + 0.5) * scale;
        ww = 0.0;
        ss = 1.0 / filterscale;
        xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = flt->f((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? k[x] : 0.0;
            kk[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PRECISION_BITS))
                                       : (int)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static inline uint8_t clip8(int v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* in: h rows of w RGB pixels, row stride `stride` bytes -> out (oh,ow,3). */
static void resize_strided(const struct resample_filter *flt, uint8_t *out, int ow, int oh,
                           const uint8_t *in, int w, int h, size_t stride)
{
    int *bh, *bv, kh, kv, y0, y1;
    int32_t *ch, *cv;
    uint8_t *tmp = NULL;
    const uint8_t *src = in;
    size_t sstride = stride;
    int need_h = ow != w, need_v = oh != h;

    if (!need_h && !need_v) {
        for (int y = 0; y < h; y++)
            memcpy(out + (size_t)y * w * 3, in + (size_t)y * stride, (size_t)w * 3);
        return;
    }
    kh = resample_coeffs(flt, w, 0, (float)w, ow, &bh, &ch);
    kv = resample_coeffs(flt, h, 0, (float)h, oh, &bv, &cv);
    /* rows the vertical pass reads */
    y0 = bv[0];
    y1 = bv[oh * 2 - 2] + bv[oh * 2 - 1];
    if (need_h) {
        uint8_t *dst = need_v ? (tmp = xmalloc((size_t)(y1 - y0) * ow * 3)) : out;
        for (int i = 0; i < oh; i++)
            bv[i * 2] -= y0;
        for (int y = 0; y < (need_v ? y1 - y0 : h); y++) {
            const uint8_t *row = in + (size_t)(y + (need_v ? y0 : 0)) * stride;
            uint8_t *o = dst + (size_t)y * ow * 3;
            for (int xx = 0; xx < ow; xx++) {
                const int32_t *k = ch + xx * kh;
                const uint8_t *p = row + (size_t)bh[xx * 2] * 3;
                int n = bh[xx * 2 + 1];
                int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < n; x++, p += 3) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                o[xx * 3 + 0] = clip8(s0);
                o[xx * 3 + 1] = clip8(s1);
                o[xx * 3 + 2] = clip8(s2);
            }
        }
        src = tmp;
        sstride = (size_t)ow * 3;
    }
    if (need_v) {
        int xs = need_h ? ow : w;
        for (int yy = 0; yy < oh; yy++) {
            const int32_t *k = cv + yy * kv;
            int ymin = bv[yy * 2], n = bv[yy * 2 + 1];
            uint8_t *o = out + (size_t)yy * xs * 3;
            for (int c = 0; c < xs * 3; c++) {
                int s = 1 << (PRECISION_BITS - 1);
                const uint8_t *p = src + (size_t)ymin * sstride + c;
                for (int y = 0; y < n; y++, p += sstride)
                    s += *p * k[y];
                o[c] = clip8(s);
            }
        }
    }
    free(tmp);
    free(bh);
    free(bv);
    free(ch);
    free(cv);
}

void img_resize_bilinear(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h)
{
    resize_strided(&filter_bilinear, out, ow, oh, in, w, h, (size_t)w * 3);
}

void img_resize_bicubic(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h)
{
    resize_strided(&filter_bicubic, out, ow, oh, in, w, h, (size_t)w * 3);
}

void img_center_box(int w, int h, int ow, int oh, int *x0, int *y0, int *cw, int *ch)
{
    /* largest box of aspect ow:oh, floor sizes and offsets */
    if ((long long)w * oh > (long long)h * ow) {
        *ch = h;
        *cw = (int)((long long)h * ow / oh);
    } else {
        *cw = w;
        *ch = (int)((long long)w * oh / ow);
    }
    if (*cw < 1)
        *cw = 1;
    if (*ch < 1)
        *ch = 1;
    *x0 = (w - *cw) / 2;
    *y0 = (h - *ch) / 2;
}

void img_resize_center_crop(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h)
{
    int x0, y0, cw, ch;
    img_center_box(w, h, ow, oh, &x0, &y0, &cw, &ch);
    resize_strided(&filter_bilinear, out, ow, oh, in + ((size_t)y0 * w + x0) * 3, cw, ch,
                   (size_t)w * 3);
}
