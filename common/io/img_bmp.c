/* BMP decoding as PIL 9.4's BmpImagePlugin reads it, then convert('RGB'):
   - headers: OS/2 1.x (12 bytes), BITMAPINFOHEADER (40), OS/2 2.x (64), V4 (108), V5 (124);
     a height with its top byte 0xFF is a top-down image (PIL's y_flip test);
   - 1, 4, 8 bits through the palette (B,G,R + padding), entries past the palette gray
     (i,i,i) as in ImagingPaletteNew; 16 bits 5-5-5, 24 and 32 bits B,G,R(,X); BITFIELDS
     only in PIL's SUPPORTED layouts (16 bits 5-6-5 or 5-5-5, 24, 32 with or without alpha,
     which convert('RGB') drops); RLE8 and RLE4 as PIL's BmpRleDecoder, quirks included;
   - the pixel data starts at the file header's offset, except that an offset pointing just
     past the info header (no room for the palette) is moved past 4 bytes per colour. */
#include "io/img_internal.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return le16(p) | le16(p + 2) << 16;
}

/* the pixel layouts PIL names by raw mode */
enum bmp_raw { RAW_PAL, RAW_BGR15, RAW_BGR16, RAW_BGR, RAW_BGRX, RAW_XBGR, RAW_RGBX };

struct bmp {
    long long w, h;
    int bits, top_down, rle4, rle;
    enum bmp_raw raw;
    uint8_t pal[256][3];
    size_t off; /* pixel data */
};

/* BITFIELDS: PIL's SUPPORTED masks and their raw modes; -1 if not supported */
static int bmp_masks(struct bmp *b, uint32_t r, uint32_t g, uint32_t bl, uint32_t a)
{
    if (b->bits == 32) {
        if (g == 0xFF00 && ((r == 0xFF0000 && bl == 0xFF && (a == 0 || a == 0xFF000000))))
            b->raw = RAW_BGRX; /* BGRX, BGRA */
        else if (r == 0xFF000000 && g == 0xFF0000 && bl == 0xFF00 && (a == 0 || a == 0xFF))
            b->raw = RAW_XBGR; /* XBGR, ABGR */
        else if (r == 0xFF && g == 0xFF00 && bl == 0xFF0000 && a == 0xFF000000)
            b->raw = RAW_RGBX; /* RGBA */
        else if (r == 0 && g == 0 && bl == 0 && a == 0)
            b->raw = RAW_BGRX; /* PIL reads all-zero masks as BGRA */
        else
            return -1;
        return 0;
    }
    if (b->bits == 24 && r == 0xFF0000 && g == 0xFF00 && bl == 0xFF)
        b->raw = RAW_BGR;
    else if (b->bits == 16 && r == 0xF800 && g == 0x7E0 && bl == 0x1F)
        b->raw = RAW_BGR16;
    else if (b->bits == 16 && r == 0x7C00 && g == 0x3E0 && bl == 0x1F)
        b->raw = RAW_BGR15;
    else
        return -1;
    return 0;
}

/* file and info headers, palette: everything but the pixels */
static int bmp_header(struct bmp *b, const unsigned char *buf, size_t len, char *msg,
                      size_t msglen)
{
    uint32_t hs, comp = 0, off;
    uint64_t colors = 0;
    size_t pos, pad = 4;
    if (len < 18)
        goto trunc;
    off = le32(buf + 10);
    hs = le32(buf + 14);
    if (hs != 12 && hs != 40 && hs != 64 && hs != 108 && hs != 124) {
        snprintf(msg, msglen, "unsupported BMP header size %u", hs);
        return -1;
    }
    if (len < 14 + (size_t)hs)
        goto trunc;
    const unsigned char *h = buf + 18;
    pos = 14 + hs;
    if (hs == 12) {
        b->w = le16(h);
        b->h = le16(h + 2);
        b->bits = (int)le16(h + 6);
        pad = 3;
    } else {
        b->top_down = h[7] == 0xFF;
        b->w = le32(h);
        b->h = b->top_down ? (1LL << 32) - le32(h + 4) : le32(h + 4);
        b->bits = (int)le16(h + 10);
        comp = le32(h + 12);
        colors = le32(h + 28);
    }
    if (b->bits != 1 && b->bits != 4 && b->bits != 8 && b->bits != 16 && b->bits != 24 &&
        b->bits != 32) {
        snprintf(msg, msglen, "unsupported BMP pixel depth %d", b->bits);
        return -1;
    }
    b->raw = b->bits <= 8 ? RAW_PAL : b->bits == 16 ? RAW_BGR15 : b->bits == 24 ? RAW_BGR
                                                                                 : RAW_BGRX;
    if (comp == 3) {
        uint32_t m[4] = {0, 0, 0, 0};
        if (hs >= 56) { /* in the header */
            for (int i = 0; i < 4; i++)
                m[i] = le32(h + 36 + 4 * i);
        } else { /* after a 40-byte header: three masks, no alpha */
            if (len < pos + 12)
                goto trunc;
            for (int i = 0; i < 3; i++)
                m[i] = le32(buf + pos + 4 * i);
            pos += 12;
        }
        if (bmp_masks(b, m[0], m[1], m[2], m[3]) == -1) {
            snprintf(msg, msglen, "unsupported BMP bitfields layout");
            return -1;
        }
    } else if (comp == 1 || comp == 2) {
        b->rle = 1;
        b->rle4 = comp == 2;
    } else if (comp != 0) {
        snprintf(msg, msglen, "unsupported BMP compression %u", comp);
        return -1;
    }
    if (colors == 0)
        colors = 1ULL << b->bits;
    if (off == 14 + hs && b->bits <= 8)
        off += (uint32_t)(4 * colors);
    if (b->bits <= 8) {
        if (colors > 65536) {
            snprintf(msg, msglen, "unsupported BMP palette size %llu",
                     (unsigned long long)colors);
            return -1;
        }
        for (int i = 0; i < 256; i++) {
            size_t p = pos + (size_t)i * pad;
            if ((uint64_t)i < colors && p + 3 <= len) {
                b->pal[i][0] = buf[p + 2];
                b->pal[i][1] = buf[p + 1];
                b->pal[i][2] = buf[p];
            } else {
                b->pal[i][0] = b->pal[i][1] = b->pal[i][2] = (uint8_t)i;
            }
        }
        pos += (size_t)(pad * colors);
    }
    b->off = off != 0 ? off : pos;
    return img_check_dims(b->w, b->h, msg, msglen);
trunc:
    snprintf(msg, msglen, "truncated BMP file");
    return -1;
}

/* One row of w pixels in layout b->raw to RGB. */
static void bmp_row(uint8_t *o, const unsigned char *in, const struct bmp *b)
{
    for (long long x = 0; x < b->w; x++, o += 3) {
        uint32_t v;
        switch (b->raw) {
        case RAW_PAL:
            v = b->bits == 8 ? in[x] : b->bits == 4 ? in[x / 2] >> (4 - 4 * (x % 2)) & 15
                                                     : in[x / 8] >> (7 - x % 8) & 1;
            memcpy(o, b->pal[v], 3);
            break;
        case RAW_BGR15: /* ImagingUnpackBGR15 */
            v = le16(in + 2 * x);
            o[0] = (uint8_t)((v >> 10 & 31) * 255 / 31);
            o[1] = (uint8_t)((v >> 5 & 31) * 255 / 31);
            o[2] = (uint8_t)((v & 31) * 255 / 31);
            break;
        case RAW_BGR16: /* ImagingUnpackBGR16 */
            v = le16(in + 2 * x);
            o[0] = (uint8_t)((v >> 11 & 31) * 255 / 31);
            o[1] = (uint8_t)((v >> 5 & 63) * 255 / 63);
            o[2] = (uint8_t)((v & 31) * 255 / 31);
            break;
        case RAW_BGR:
            o[0] = in[3 * x + 2], o[1] = in[3 * x + 1], o[2] = in[3 * x];
            break;
        case RAW_BGRX:
            o[0] = in[4 * x + 2], o[1] = in[4 * x + 1], o[2] = in[4 * x];
            break;
        case RAW_XBGR:
            o[0] = in[4 * x + 3], o[1] = in[4 * x + 2], o[2] = in[4 * x + 1];
            break;
        case RAW_RGBX:
            memcpy(o, in + 4 * x, 3);
            break;
        }
    }
}

/* PIL 9.4's BmpRleDecoder: palette indices, w*h of them or more; -1 when the data ends
   first. Its quirks are kept so that the pixels are PIL's: a delta reads two bytes and then
   two more as (right, up); RLE4's absolute runs read count/2 bytes; runs past a row's end
   are cut; word alignment is by file position. */
static uint8_t *bmp_rle(const unsigned char *buf, size_t len, const struct bmp *b)
{
    size_t need = (size_t)(b->w * b->h), n = 0, cap = need + 1, pos = b->off;
    long long x = 0;
    uint8_t *d = xmalloc(cap);
#define PUT(v)                                                                               \
    do {                                                                                     \
        if (n == cap)                                                                        \
            d = xrealloc(d, cap *= 2);                                                       \
        d[n++] = (uint8_t)(v);                                                               \
    } while (0)
    while (n < need) {
        if (pos + 2 > len)
            break;
        unsigned cnt = buf[pos], byte = buf[pos + 1];
        pos += 2;
        if (cnt != 0) {
            if (x + cnt > b->w)
                cnt = (unsigned)(x < b->w ? b->w - x : 0);
            for (unsigned i = 0; i < cnt; i++)
                PUT(!b->rle4 ? byte : i % 2 == 0 ? byte >> 4 : byte & 15);
            x += cnt;
        } else if (byte == 0) { /* end of line */
            while (n % (size_t)b->w != 0)
                PUT(0);
            x = 0;
        } else if (byte == 1) { /* end of bitmap */
            break;
        } else if (byte == 2) { /* delta */
            if (pos + 4 > len)
                break;
            size_t skip = buf[pos + 2] + (size_t)buf[pos + 3] * (size_t)b->w;
            pos += 4;
            if (n + skip > need + (size_t)b->w) /* past the end: the rest is zeros */
                skip = need + (size_t)b->w - n;
            for (size_t i = 0; i < skip; i++)
                PUT(0);
            x = (long long)(n % (size_t)b->w);
        } else { /* absolute run */
            size_t nb = b->rle4 ? byte / 2 : byte, got = nb < len - pos ? nb : len - pos;
            for (size_t i = 0; i < got; i++) {
                if (b->rle4) {
                    PUT(buf[pos + i] >> 4);
                    PUT(buf[pos + i] & 15);
                } else {
                    PUT(buf[pos + i]);
                }
            }
            pos += got;
            if (got < nb)
                break;
            x += byte;
            if (pos % 2 != 0)
                pos++;
        }
    }
#undef PUT
    if (n < need) {
        free(d);
        return NULL;
    }
    return d;
}

int img_bmp_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                   size_t msglen)
{
    struct bmp b;
    memset(&b, 0, sizeof b);
    if (bmp_header(&b, buf, len, msg, msglen) == -1)
        return -1;
    size_t stride = (size_t)(((b.w * b.bits + 31) >> 3) & ~3LL);
    /* before allocating: a short file must not cost the memory its header claims */
    if (!b.rle && (b.off > len || (len - b.off) / stride < (size_t)b.h)) {
        snprintf(msg, msglen, "truncated BMP file");
        return -1;
    }
    uint8_t *rgb = xmalloc((size_t)(b.w * b.h * 3));
    if (b.rle) {
        uint8_t *idx = bmp_rle(buf, len, &b);
        if (idx == NULL) {
            free(rgb);
            snprintf(msg, msglen, "truncated BMP file: not enough RLE data");
            return -1;
        }
        for (long long y = 0; y < b.h; y++) {
            uint8_t *o = rgb + (size_t)((b.top_down ? y : b.h - 1 - y) * b.w * 3);
            for (long long x = 0; x < b.w; x++)
                memcpy(o + 3 * x, b.pal[idx[y * b.w + x]], 3);
        }
        free(idx);
    } else {
        for (long long y = 0; y < b.h; y++)
            bmp_row(rgb + (size_t)((b.top_down ? y : b.h - 1 - y) * b.w * 3),
                    buf + b.off + (size_t)y * stride, &b);
    }
    im->w = (int)b.w;
    im->h = (int)b.h;
    im->rgb = rgb;
    return 0;
}
