/* TIFF decoding with libtiff, to the pixels of PIL 9.4's TiffImagePlugin then convert('RGB'):
   the first page; contiguous samples read as stored (any compression libtiff knows) and
   converted as PIL's OPEN_INFO raw modes are: gray 1/2/4/8 bits scaled to 0..255 (inverted
   for min-is-white), 16-bit gray as I;16 (clipped at 255, never inverted), RGB 8 bits and
   16 bits (the high byte), alpha dropped but associated alpha undone (RGBa: v*255/a),
   palette through the colour map's high bytes, CMYK by PIL's cmyk2rgb. Planar-separate and
   YCbCr (but JPEG, which libtiff turns into RGB) go through TIFFReadRGBAImage, as PIL's
   libtiff decoder does for YCbCr. Errors and warnings go to per-handle handlers (libtiff
   4.5's TIFFOpenOptions), so nothing is printed and threads do not share state. */
#include "io/img_internal.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

struct tiff_mem {
    const unsigned char *buf;
    size_t len, pos;
    char *msg;
    size_t msglen;
    int failed;
};

static tsize_t mem_read(thandle_t h, tdata_t out, tsize_t n)
{
    struct tiff_mem *m = h;
    size_t k = m->pos < m->len ? m->len - m->pos : 0;
    if ((size_t)n < k)
        k = (size_t)n;
    memcpy(out, m->buf + m->pos, k);
    m->pos += k;
    return (tsize_t)k;
}

static tsize_t mem_write(thandle_t h, tdata_t p, tsize_t n)
{
    (void)h, (void)p, (void)n;
    return -1;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    struct tiff_mem *m = h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
    if (off > UINT64_MAX - base)
        return (toff_t)-1;
    m->pos = (size_t)(base + off);
    return m->pos;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h)
{
    return ((struct tiff_mem *)h)->len;
}

static int mem_map(thandle_t h, tdata_t *p, toff_t *n)
{
    (void)h, (void)p, (void)n;
    return 0;
}

static void mem_unmap(thandle_t h, tdata_t p, toff_t n)
{
    (void)h, (void)p, (void)n;
}

/* the first error becomes msg */
static int on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
    struct tiff_mem *m = user;
    char text[200];
    (void)t, (void)module;
    if (!m->failed) {
        vsnprintf(text, sizeof text, fmt, ap);
        snprintf(m->msg, m->msglen, "corrupt TIFF: %s", text);
        util_msg_oneline(m->msg);
    }
    m->failed = 1;
    return 1;
}

static int on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)t, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

struct tiff_info {
    uint32_t w, h;
    uint16_t bps, spp, photo, planar, format, n_extra, *extra;
};

/* the whole image's contiguous samples, rowbytes a row: from strips row by row, or tiles */
static uint8_t *tiff_read_contig(TIFF *t, const struct tiff_info *in, size_t rowbytes)
{
    uint8_t *img = xmalloc(rowbytes * in->h + 1);
    if (!TIFFIsTiled(t)) {
        for (uint32_t y = 0; y < in->h; y++)
            if (TIFFReadScanline(t, img + rowbytes * y, y, 0) < 0)
                goto fail;
        return img;
    }
    uint32_t tw, th;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    size_t tsize = (size_t)TIFFTileSize64(t), trow = (size_t)TIFFTileRowSize64(t);
    size_t pix_bits = (size_t)in->bps * in->spp;
    if (tw == 0 || th == 0 || tsize == 0 || trow * th > tsize || (tw * pix_bits) % 8 != 0)
        goto fail;
    uint8_t *tile = xmalloc(tsize);
    for (uint32_t y0 = 0; y0 < in->h; y0 += th)
        for (uint32_t x0 = 0; x0 < in->w; x0 += tw) {
            if (TIFFReadTile(t, tile, x0, y0, 0, 0) < 0) {
                free(tile);
                goto fail;
            }
            size_t bx = x0 * pix_bits / 8, n = trow < rowbytes - bx ? trow : rowbytes - bx;
            for (uint32_t y = y0; y < in->h && y < y0 + th; y++)
                memcpy(img + rowbytes * y + bx, tile + trow * (y - y0), n);
        }
    free(tile);
    return img;
fail:
    free(img);
    return NULL;
}

/* sample i of a row of bps-bit samples (1..16), as stored (16 bits: native order) */
static unsigned sample(const uint8_t *row, size_t i, int bps)
{
    if (bps == 8)
        return row[i];
    if (bps == 16) {
        uint16_t v;
        memcpy(&v, row + 2 * i, 2);
        return v;
    }
    size_t bit = i * (size_t)bps;
    return (unsigned)(row[bit / 8] >> (8 - bps - bit % 8)) & ((1u << bps) - 1);
}

/* one row of contiguous samples to RGB, as PIL's raw mode for in; pal for palettes */
static void tiff_row(uint8_t *o, const uint8_t *row, const struct tiff_info *in,
                     const uint8_t (*pal)[3], int assoc)
{
    int bps = in->bps, spp = in->spp;
    for (uint32_t x = 0; x < in->w; x++, o += 3) {
        size_t s = (size_t)x * spp;
        unsigned v = sample(row, s, bps);
        if (in->photo <= 1) { /* gray */
            if (bps == 16)
                v = v > 255 ? 255 : v;
            else
                v = v * (bps == 1 ? 255 : bps == 2 ? 85 : bps == 4 ? 17 : 1);
            if (in->photo == 0 && bps != 16)
                v = 255 - v;
            o[0] = o[1] = o[2] = (uint8_t)v;
        } else if (in->photo == 3) {
            memcpy(o, pal[v & 255], 3);
        } else if (in->photo == 5) { /* CMYK */
            unsigned c[4];
            for (int k = 0; k < 4; k++)
                c[k] = sample(row, s + k, bps) >> (bps - 8);
            for (int k = 0; k < 3; k++)
                o[k] = img_cmyk_channel((int)c[k], (int)c[3]);
        } else { /* RGB */
            unsigned a = spp > 3 ? sample(row, s + 3, bps) >> (bps - 8) : 255;
            for (int k = 0; k < 3; k++) {
                unsigned c = sample(row, s + k, bps) >> (bps - 8);
                if (assoc && a != 255) /* PIL's unpackRGBa */
                    c = a == 0 ? 0 : c * 255 / a > 255 ? 255 : c * 255 / a;
                o[k] = (uint8_t)c;
            }
        }
    }
}

/* the formats tiff_row handles; 0 for TIFFReadRGBAImage */
static int tiff_contig_ok(const struct tiff_info *in, int jpeg)
{
    int b = in->bps, color = in->photo <= 1 || in->photo == 3 ? 1 : in->photo == 5 ? 4 : 3;
    int extra = in->spp - color;
    if (in->planar != PLANARCONFIG_CONTIG || in->format != SAMPLEFORMAT_UINT || extra < 0)
        return 0;
    switch (in->photo) {
    case 0:
    case 1: return b == 1 || b == 2 || b == 4 || b == 8 || (b == 16 && extra == 0);
    case 2: return b == 8 || b == 16;
    case 3: return (b == 1 || b == 2 || b == 4 || b == 8) && (extra == 0 || b == 8);
    case 5: return b == 8 || b == 16;
    case 6: return jpeg && b == 8 && in->spp == 3; /* read as RGB: JPEGCOLORMODE_RGB */
    }
    return 0;
}

static int tiff_decode(TIFF *t, struct img *im, char *msg, size_t msglen)
{
    struct tiff_info in;
    uint16_t comp = 1, *cm[3];
    uint8_t pal[256][3];
    int assoc = 0;
    memset(&in, 0, sizeof in);
    if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &in.w) ||
        !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &in.h))
        return -1;
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &in.bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &in.spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &in.planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &in.format);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
    TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &in.n_extra, &in.extra);
    if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &in.photo))
        in.photo = 0; /* PIL's default */
    if (img_check_dims(in.w, in.h, msg, msglen) == -1)
        return -2;
    assoc = in.n_extra > 0 && in.extra[0] == EXTRASAMPLE_ASSOCALPHA;
    uint8_t *rgb = xmalloc((size_t)in.w * in.h * 3);
    if (tiff_contig_ok(&in, comp == COMPRESSION_JPEG)) {
        if (in.photo == 6) {
            TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
            in.photo = 2;
        }
        if (in.photo == 3) {
            if (!TIFFGetField(t, TIFFTAG_COLORMAP, &cm[0], &cm[1], &cm[2])) {
                free(rgb);
                snprintf(msg, msglen, "corrupt TIFF: palette image without a colour map");
                return -2;
            }
            for (int i = 0; i < 256; i++)
                for (int k = 0; k < 3; k++)
                    pal[i][k] = i < (1 << in.bps) ? (uint8_t)(cm[k][i] >> 8) : (uint8_t)i;
        }
        size_t rowbytes = (size_t)TIFFScanlineSize64(t);
        uint8_t *img = rowbytes > 0 ? tiff_read_contig(t, &in, rowbytes) : NULL;
        if (img == NULL) {
            free(rgb);
            return -1;
        }
        for (uint32_t y = 0; y < in.h; y++)
            tiff_row(rgb + (size_t)y * in.w * 3, img + rowbytes * y, &in,
                     (const uint8_t(*)[3])pal, assoc);
        free(img);
    } else {
        char why[1024];
        uint32_t *r = xmalloc((size_t)in.w * in.h * sizeof *r);
        if (!TIFFRGBAImageOK(t, why) ||
            !TIFFReadRGBAImageOriented(t, in.w, in.h, r, ORIENTATION_TOPLEFT, 0)) {
            free(r);
            free(rgb);
            snprintf(msg, msglen, "unsupported TIFF: photometric %u, %u samples of %u bits",
                     in.photo, in.spp, in.bps);
            return -2;
        }
        for (size_t i = 0; i < (size_t)in.w * in.h; i++) {
            rgb[3 * i] = (uint8_t)TIFFGetR(r[i]);
            rgb[3 * i + 1] = (uint8_t)TIFFGetG(r[i]);
            rgb[3 * i + 2] = (uint8_t)TIFFGetB(r[i]);
        }
        free(r);
    }
    im->w = (int)in.w;
    im->h = (int)in.h;
    im->rgb = rgb;
    return 0;
}

int img_tiff_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                    size_t msglen)
{
    struct tiff_mem m = {buf, len, 0, msg, msglen, 0};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    TIFF *t;
    int rc;
    msg[0] = '\0';
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &m);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &m);
    t = TIFFClientOpenExt("TIFF", "rm", &m, mem_read, mem_write, mem_seek, mem_close, mem_size,
                          mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (t == NULL) {
        if (msg[0] == '\0')
            snprintf(msg, msglen, "corrupt TIFF file");
        return -1;
    }
    rc = tiff_decode(t, im, msg, msglen);
    TIFFClose(t);
    if (rc == -1 || (rc == 0 && m.failed)) {
        if (rc == 0)
            img_free(im);
        if (!m.failed)
            snprintf(msg, msglen, "corrupt TIFF file");
        return -1;
    }
    return rc == 0 ? 0 : -1;
}
