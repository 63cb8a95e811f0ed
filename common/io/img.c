/* Image decoding (PNG, JPEG; the other formats in img_bmp.c, img_pnm.c, img_tiff.c and
   img_webp.c) and PNG encoding; PIL-exact resizing is in img_resize.c.

   Decoding reproduces PIL 9.4's Image.open(p).convert('RGB'):
   - PNG: PIL's own modes (PngImagePlugin _MODES) then its converters. Gray 1/2/4-bit is scaled
     to 0..255 (L;2 x85, L;4 x17, mode "1" x255); 16-bit gray is mode "I" and I->RGB clips at
     255 (it does not shift); 16-bit RGB, RGBA and LA keep the high byte; alpha is dropped, not
     composited; palette entries past the PLTE length are gray (i,i,i) as in ImagingPaletteNew.
   - JPEG: libjpeg-turbo with its defaults (ISLOW DCT, fancy upsampling), as PIL uses it.
     PIL reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I") and converts
     CMYK->RGB as R = nk - nk*C/255 with nk = 255 - K (MULDIV255 rounding).
   libpng and libjpeg errors longjmp back here and become msg; warnings are ignored, except a
   JPEG that ends before its last scanline, which PIL rejects as truncated, and libjpeg's
   corrupt-data warnings (jpeg_corrupt_warning), which are errors: libjpeg goes on with
   gray or garbage pixels, and a data set should not silently hold a broken photo. */
#include "io/img.h"
#include "io/img_internal.h"
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* PIL refuses images over 2 * Image.MAX_IMAGE_PIXELS (DecompressionBombError). */
#define IMG_MAX_PIXELS 178956970LL

int img_check_dims(long long w, long long h, char *msg, size_t msglen)
{
    if (w <= 0 || h <= 0) {
        snprintf(msg, msglen, "bad image size %lldx%lld", w, h);
        return -1;
    }
    if (w > IMG_MAX_PIXELS / h) { /* w * h could overflow: BMP and TIFF sizes are 32-bit */
        snprintf(msg, msglen, "image too large: %lldx%lld", w, h);
        return -1;
    }
    return 0;
}

/* ---- PNG ---- */

struct png_ctx {
    jmp_buf jb;
    png_structp png;
    png_infop info;
    const unsigned char *buf;
    size_t len, pos;
    char *msg;
    size_t msglen;
};

static void png_on_error(png_structp png, png_const_charp text)
{
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, c->msglen, "corrupt PNG: %s", text);
    longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp text)
{
    (void)png;
    (void)text;
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    struct png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos)
        png_error(png, "truncated file");
    memcpy(out, c->buf + c->pos, n);
    c->pos += n;
}

/* rows: h rows of rowbytes as libpng gives them after png_set_packing (one byte per sample
   below 8 bits, big-endian pairs at 16 bits). */
static void png_to_rgb(uint8_t *rgb, const uint8_t *rows, size_t rowbytes, int w, int h,
                       int ctype, int depth, const uint8_t pal[256][3])
{
    for (int y = 0; y < h; y++) {
        const uint8_t *r = rows + (size_t)y * rowbytes;
        uint8_t *o = rgb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, o += 3) {
            int v;
            switch (ctype) {
            case PNG_COLOR_TYPE_GRAY:
                if (depth == 16) {
                    v = r[2 * x] << 8 | r[2 * x + 1];
                    v = v > 255 ? 255 : v; /* mode I -> RGB clips */
                } else {
                    v = r[x] * (depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1);
                }
                o[0] = o[1] = o[2] = (uint8_t)v;
                break;
            case PNG_COLOR_TYPE_GRAY_ALPHA:
                o[0] = o[1] = o[2] = r[x * 2 * (depth / 8)];
                break;
            case PNG_COLOR_TYPE_PALETTE:
                memcpy(o, pal[r[x]], 3);
                break;
            case PNG_COLOR_TYPE_RGB:
                for (int k = 0; k < 3; k++)
                    o[k] = r[(x * 3 + k) * (depth / 8)];
                break;
            case PNG_COLOR_TYPE_RGB_ALPHA:
                for (int k = 0; k < 3; k++)
                    o[k] = r[(x * 4 + k) * (depth / 8)];
                break;
            }
        }
    }
}

static int png_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                      size_t msglen)
{
    struct png_ctx c = {.buf = buf, .len = len, .msg = msg, .msglen = msglen, .info = NULL};
    /* png and info live in memory (c.png, c.info): they change after setjmp */
    uint8_t *volatile rows = NULL, *volatile rgb = NULL;
    png_bytep *volatile rowp = NULL;
    uint8_t pal[256][3];
    png_uint_32 w, h;
    int depth, ctype, interlace;
    size_t rowbytes;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error,
                                             png_on_warning);
    c.png = png;
    if (png == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (setjmp(c.jb)) {
        png_destroy_read_struct(&c.png, &c.info, NULL);
        free(rows);
        free(rgb);
        free(rowp);
        return -1;
    }
    png_infop info = c.info = png_create_info_struct(png);
    if (info == NULL)
        png_error(png, "out of memory");
    png_set_read_fn(png, &c, png_on_read);
    png_set_user_limits(png, 1 << 20, 1 << 20);
    png_read_info(png, info);
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (img_check_dims(w, h, msg, msglen) == -1)
        longjmp(c.jb, 1);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp p;
        int n = 0;
        for (int i = 0; i < 256; i++)
            pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
        if (png_get_PLTE(png, info, &p, &n) & PNG_INFO_PLTE)
            for (int i = 0; i < n && i < 256; i++) {
                pal[i][0] = p[i].red;
                pal[i][1] = p[i].green;
                pal[i][2] = p[i].blue;
            }
    }
    if (depth < 8)
        png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    rowbytes = png_get_rowbytes(png, info);
    rgb = xmalloc((size_t)w * h * 3);
    rowp = xmalloc(h * sizeof *rowp);
    if (ctype == PNG_COLOR_TYPE_RGB && depth == 8) {
        for (png_uint_32 y = 0; y < h; y++)
            rowp[y] = rgb + (size_t)y * w * 3;
        png_read_image(png, rowp);
    } else {
        rows = xmalloc(rowbytes * h);
        for (png_uint_32 y = 0; y < h; y++)
            rowp[y] = rows + (size_t)y * rowbytes;
        png_read_image(png, rowp);
        png_to_rgb(rgb, rows, rowbytes, w, h, ctype, depth, (const uint8_t(*)[3])pal);
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(rows);
    free(rowp);
    im->w = w;
    im->h = h;
    im->rgb = rgb;
    return 0;
}

/* ---- JPEG ---- */

struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    struct jpeg_progress_mgr progress;
    int eof; /* ran out of data: libjpeg pads with gray, PIL says "truncated" */
    char *msg;
    size_t msglen;
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    snprintf(c->msg, c->msglen, "corrupt JPEG: %s", text);
    longjmp(c->jb, 1);
}

/* libjpeg's "Corrupt JPEG data" warnings that mean the entropy-coded data is broken, so
   pixels from there on are made up. Not among them: extraneous bytes between segments
   (common in camera files whose pixels are all there) and a bad ICC marker (not read). */
static int jpeg_corrupt_warning(int code)
{
    return code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
           code == JWRN_ARITH_BAD_CODE || code == JWRN_MUST_RESYNC;
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    const char *prefix = "Corrupt JPEG data: ";
    if (level != -1)
        return;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF)
        c->eof = 1;
    if (!jpeg_corrupt_warning(cinfo->err->msg_code))
        return;
    cinfo->err->format_message(cinfo, text);
    if (c->eof) /* the data ran out first: the marker hit is the EOI libjpeg made up */
        snprintf(c->msg, c->msglen, "truncated JPEG file");
    else
        snprintf(c->msg, c->msglen, "corrupt JPEG: %s",
                 strncmp(text, prefix, strlen(prefix)) == 0 ? text + strlen(prefix) : text);
    longjmp(c->jb, 1);
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* A progressive JPEG may repeat scans, each a pass over the whole image: a 2 MB file of 20000
   scans of 8000x8000 took two minutes. Real files have about ten; libjpeg-turbo suggests a
   limit of 500 for untrusted input (TJPARAM_SCANLIMIT). */
#define IMG_MAX_SCANS 500

static void jpeg_on_progress(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    if (((j_decompress_ptr)cinfo)->input_scan_number > IMG_MAX_SCANS) {
        snprintf(c->msg, c->msglen, "corrupt JPEG: more than %d scans", IMG_MAX_SCANS);
        longjmp(c->jb, 1);
    }
}

/* PIL's cmyk2rgb on "CMYK;I" input (bytes inverted first). */
static void cmyk_to_rgb(uint8_t *o, const uint8_t *in, int w)
{
    for (int x = 0; x < w; x++, in += 4, o += 3) {
        int nk = in[3]; /* 255 - (255 - K) */
        for (int k = 0; k < 3; k++) {
            int t = (255 - in[k]) * nk + 128;
            o[k] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
    }
}

static int jpeg_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                       size_t msglen)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx c;
    uint8_t *volatile rgb = NULL, *volatile tmp = NULL;
    int w, h, nc;

    memset(&c, 0, sizeof c);
    c.msg = msg;
    c.msglen = msglen;
    cinfo.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = jpeg_on_error;
    c.pub.emit_message = jpeg_on_message;
    c.pub.output_message = jpeg_on_output;
    if (setjmp(c.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(tmp);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    c.progress.progress_monitor = jpeg_on_progress;
    cinfo.progress = &c.progress;
    jpeg_mem_src(&cinfo, buf, len);
    jpeg_read_header(&cinfo, TRUE);
    /* before jpeg_start_decompress, which sizes a progressive file's coefficient arrays */
    if (img_check_dims(cinfo.image_width, cinfo.image_height, msg, msglen) == -1)
        longjmp(c.jb, 1);
    nc = cinfo.num_components;
    if (nc == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (nc == 3)
        cinfo.out_color_space = JCS_RGB;
    else if (nc == 4)
        cinfo.out_color_space = JCS_CMYK;
    else {
        snprintf(msg, msglen, "unsupported JPEG with %d components", nc);
        longjmp(c.jb, 1);
    }
    jpeg_start_decompress(&cinfo);
    w = cinfo.output_width;
    h = cinfo.output_height;
    rgb = xmalloc((size_t)w * h * 3);
    if (nc != 3)
        tmp = xmalloc((size_t)w * nc);
    while (cinfo.output_scanline < cinfo.output_height && !c.eof) {
        uint8_t *o = rgb + (size_t)cinfo.output_scanline * w * 3;
        if (nc == 3) {
            JSAMPROW r[8];
            int n = cinfo.output_height - cinfo.output_scanline;
            n = n > 8 ? 8 : n;
            for (int i = 0; i < n; i++)
                r[i] = o + (size_t)i * w * 3;
            jpeg_read_scanlines(&cinfo, r, n);
            continue;
        }
        JSAMPROW r = tmp;
        if (jpeg_read_scanlines(&cinfo, &r, 1) != 1)
            break;
        if (nc == 1)
            for (int x = 0; x < w; x++)
                o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = tmp[x];
        else
            cmyk_to_rgb(o, tmp, w);
    }
    if (c.eof) {
        snprintf(msg, msglen, "truncated JPEG file");
        longjmp(c.jb, 1);
    }
    /* No jpeg_finish_decompress: every pixel is in; a missing EOI after it is harmless. */
    jpeg_destroy_decompress(&cinfo);
    free(tmp);
    im->w = w;
    im->h = h;
    im->rgb = rgb;
    return 0;
}

int img_decode(const unsigned char *buf, size_t len, struct img *im, char *msg, size_t msglen)
{
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    im->w = im->h = 0;
    im->rgb = NULL;
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0)
        return png_decode(buf, len, im, msg, msglen);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return jpeg_decode(buf, len, im, msg, msglen);
    /* the other formats of pytorch-fid's folders, sniffed as PIL's _accept functions do */
    if (len >= 2 && buf[0] == 'B' && buf[1] == 'M')
        return img_bmp_decode(buf, len, im, msg, msglen);
    if (len >= 2 && buf[0] == 'P' && buf[1] >= '1' && buf[1] <= '6')
        return img_pnm_decode(buf, len, im, msg, msglen);
    if (len >= 4 && (memcmp(buf, "II*\0", 4) == 0 || memcmp(buf, "MM\0*", 4) == 0 ||
                     memcmp(buf, "II+\0", 4) == 0 || memcmp(buf, "MM\0+", 4) == 0))
        return img_tiff_decode(buf, len, im, msg, msglen);
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return img_webp_decode(buf, len, im, msg, msglen);
    snprintf(msg, msglen, len == 0 ? "empty file"
                                   : "not an image file (BMP, JPEG, PNG, PNM, TIFF or WebP)");
    return -1;
}

int img_load(const char *path, struct img *im, char *msg, size_t msglen)
{
    unsigned char *buf;
    size_t len;
    int r;
    im->w = im->h = 0;
    im->rgb = NULL;
    if (util_read_file(path, &buf, &len, msg, msglen) == -1)
        return -1;
    r = img_decode(buf, len, im, msg, msglen);
    free(buf);
    return r;
}

void img_free(struct img *im)
{
    free(im->rgb);
    im->rgb = NULL;
    im->w = im->h = 0;
}

/* ---- PNG encoding ---- */

struct png_wctx {
    jmp_buf jb;
    png_structp png;
    png_infop info;
    FILE *f;
    char *msg;
    size_t msglen;
};

static void png_on_write_error(png_structp png, png_const_charp text)
{
    struct png_wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, c->msglen, "PNG encoding: %s", text);
    longjmp(c->jb, 1);
}

static void png_on_write(png_structp png, png_bytep data, size_t n)
{
    struct png_wctx *c = png_get_io_ptr(png);
    if (fwrite(data, 1, n, c->f) != n)
        png_error(png, strerror(errno));
}

static void png_on_flush(png_structp png)
{
    (void)png;
}

int img_png_write(FILE *f, const uint8_t *pix, int w, int h, int channels, char *msg,
                  size_t msglen)
{
    struct png_wctx c = {.f = f, .msg = msg, .msglen = msglen, .info = NULL};
    png_structp png;
    png_infop info;

    if (channels != 1 && channels != 3) {
        snprintf(msg, msglen, "PNG encoding: %d channels", channels);
        return -1;
    }
    if (w <= 0 || h <= 0 || w > 1 << 24 || h > 1 << 24) {
        snprintf(msg, msglen, "PNG encoding: bad size %dx%d", w, h);
        return -1;
    }
    c.png = png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_on_write_error,
                                          png_on_warning);
    if (png == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (setjmp(c.jb)) {
        png_destroy_write_struct(&c.png, &c.info);
        return -1;
    }
    c.info = info = png_create_info_struct(png);
    if (info == NULL)
        png_error(png, "out of memory");
    png_set_write_fn(png, &c, png_on_write, png_on_flush);
    png_set_IHDR(png, info, w, h, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(pix + (size_t)y * w * channels));
    png_write_end(png, info);
    png_destroy_write_struct(&c.png, &c.info);
    return 0;
}
