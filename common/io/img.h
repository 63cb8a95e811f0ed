/* Images: decoding sniffed by magic bytes (PNG via libpng: palette, gray, alpha, 16-bit;
   JPEG via libjpeg-turbo: gray, RGB, CMYK/YCCK including Adobe-inverted; and the other
   formats pytorch-fid reads from a folder: BMP, PBM/PGM/PPM, TIFF via libtiff, WebP via
   libwebp) to packed RGB8 as PIL's convert('RGB') gives; PNG encoding; resizing like PIL. */
#ifndef IMG_H
#define IMG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct img {
    int w, h;
    uint8_t *rgb; /* h*w*3, malloc'd */
};

/* Decodes an image held in memory, pixel-exact with PIL 9.4 (same libjpeg-turbo, libtiff
   and libwebp). -1 and msg ("not an image file (...)", "corrupt JPEG: ...", "truncated
   JPEG file") on failure; never prints. No global state: safe to call from several threads
   at once. */
int img_decode(const unsigned char *buf, size_t len, struct img *im, char *msg, size_t msglen);
int img_load(const char *path, struct img *im, char *msg, size_t msglen);
void img_free(struct img *im);

/* 8-bit RGB (channels 3) or gray (channels 1) PNG to a stream. */
int img_png_write(FILE *f, const uint8_t *pix, int w, int h, int channels, char *msg,
                  size_t msglen);

/* PIL Image.resize((ow, oh), BILINEAR) on an RGB8 image: separable antialiased triangle
   filter with support scaled by the downscale factor, PIL's fixed-point coefficients and
   rounding. out: oh*ow*3. */
void img_resize_bilinear(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h);
/* The same with Image.BICUBIC (Keys' cubic a = -0.5, support 2 scaled the same way; the
   result clipped to 0..255 as PIL does): torchvision's Resize(BICUBIC) on a PIL image. */
void img_resize_bicubic(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h);
/* Pillow's bicubic_filter (Resample.c): Keys' cubic with a = -0.5, support 2, in double;
   also clean-fid's float resize (models/inception_clean.c) */
double img_bicubic_filter(double x);
/* The centre box of img_resize_center_crop: the largest box of aspect ow:oh with floor'd
   sizes (cw = h*ow/oh when the image is wider, else ch = w*oh/ow) at floor((w-cw)/2),
   floor((h-ch)/2). PIL equivalent: im.crop((x0, y0, x0+cw, y0+ch)).resize((ow, oh)). */
void img_center_box(int w, int h, int ow, int oh, int *x0, int *y0, int *cw, int *ch);
/* Centre crop to the largest box of aspect ow:oh (img_center_box), then resize as above. */
void img_resize_center_crop(uint8_t *out, int ow, int oh, const uint8_t *in, int w, int h);
#endif
