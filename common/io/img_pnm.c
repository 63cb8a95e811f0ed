/* PBM, PGM and PPM decoding as PIL 9.4's PpmImagePlugin reads them, then convert('RGB'):
   - binary P4 (1 bit, 1 = black), P5 and P6; plain P1, P2 and P3;
   - the header: up to 6 magic bytes ended by whitespace, then tokens of at most 10 bytes
     separated by whitespace, '#' comments to the end of the line; one whitespace byte
     after the last token, then the pixels;
   - maxval 255 is taken as is; another maxval scales each value v to
     round(v / maxval * 255) with Python's round (half to even), except that a PGM with a
     maxval above 255 becomes PIL's mode I (round(v / maxval * 65535)), which convert('RGB')
     clips at 255; maxval 65535 PGMs are read as I;16B, clipped the same way. */
#include "io/img_internal.h"
#include "util/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pnm_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

struct pnm {
    const unsigned char *buf;
    size_t len, pos;
};

/* a '#' comment: to CR, LF or the end; the CR or LF is consumed */
static void pnm_comment(struct pnm *p)
{
    while (p->pos < p->len) {
        int c = p->buf[p->pos++];
        if (c == '\r' || c == '\n')
            break;
    }
}

/* PpmImageFile._read_token as a non-negative integer; -1 on a bad token */
static long pnm_token(struct pnm *p)
{
    char tok[12];
    int n = 0;
    long v;
    while (p->pos < p->len) {
        int c = p->buf[p->pos++];
        if (pnm_space(c)) {
            if (n == 0)
                continue;
            break;
        }
        if (c == '#') {
            pnm_comment(p);
            continue;
        }
        if (n == 11)
            return -1; /* longer than 10 */
        tok[n++] = (char)c;
    }
    tok[n] = '\0';
    if (n == 0 || n > 10 || util_parse_long(tok, 0, 99999999999L, &v) == -1 || tok[0] == '+' ||
        tok[0] == '-')
        return -1;
    return v;
}

/* value v of maxval to the 0..255 of RGB, through PIL's mode L or I */
static uint8_t pnm_scale(long v, long maxval, int mode_i)
{
    double out_max = mode_i ? 65535 : 255, r = rint((double)v / (double)maxval * out_max);
    if (r > out_max)
        r = out_max;
    return (uint8_t)(r > 255 ? 255 : r);
}

/* plain P2/P3 values: whitespace-separated decimal tokens, '#' comments removed */
static int pnm_plain_values(struct pnm *p, uint8_t *out, size_t n, long maxval, int mode_i,
                            char *msg, size_t msglen)
{
    for (size_t i = 0; i < n; i++) {
        char tok[12];
        int k = 0;
        long v;
        while (p->pos < p->len) {
            int c = p->buf[p->pos];
            if (c == '#') {
                pnm_comment(p);
            } else if (pnm_space(c)) {
                p->pos++;
                if (k > 0)
                    break;
            } else {
                if (k == 11) {
                    snprintf(msg, msglen, "corrupt PNM file: token too long");
                    return -1;
                }
                tok[k++] = (char)c;
                p->pos++;
            }
        }
        tok[k] = '\0';
        if (k == 0) {
            snprintf(msg, msglen, "truncated PNM file");
            return -1;
        }
        if (k > 10 || util_parse_long(tok, 0, 99999999999L, &v) == -1 || tok[0] == '+' ||
            tok[0] == '-' || v > maxval) {
            snprintf(msg, msglen, "corrupt PNM file: bad value '%s'", tok);
            util_msg_oneline(msg);
            return -1;
        }
        out[i] = pnm_scale(v, maxval, mode_i);
    }
    return 0;
}

/* plain P1 bits: every byte but whitespace and comments is '0' (white) or '1' (black) */
static int pnm_plain_bits(struct pnm *p, uint8_t *out, size_t n, char *msg, size_t msglen)
{
    size_t i = 0;
    while (i < n && p->pos < p->len) {
        int c = p->buf[p->pos];
        if (c == '#') {
            pnm_comment(p);
            continue;
        }
        p->pos++;
        if (pnm_space(c))
            continue;
        if (c != '0' && c != '1') {
            snprintf(msg, msglen, "corrupt PNM file: bad bit '%c'", c);
            util_msg_oneline(msg);
            return -1;
        }
        out[i++] = c == '0' ? 255 : 0;
    }
    if (i < n) {
        snprintf(msg, msglen, "truncated PNM file");
        return -1;
    }
    return 0;
}

/* binary P4/P5/P6 samples; bands 1 or 3 */
static int pnm_binary(struct pnm *p, uint8_t *out, long w, long h, int bands, int bits,
                      long maxval, int mode_i)
{
    size_t n = (size_t)w * h * bands;
    if (bits == 1) {
        size_t row = ((size_t)w + 7) / 8;
        if ((p->len - p->pos) / row < (size_t)h)
            return -1;
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
                out[(size_t)y * w + x] =
                    p->buf[p->pos + (size_t)y * row + x / 8] >> (7 - x % 8) & 1 ? 0 : 255;
        return 0;
    }
    int bytes = maxval < 256 ? 1 : 2;
    if ((p->len - p->pos) / bytes < n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *s = p->buf + p->pos + i * bytes;
        long v = bytes == 1 ? s[0] : (long)s[0] << 8 | s[1];
        if (maxval == 255)
            out[i] = (uint8_t)v;
        else if (maxval == 65535 && mode_i) /* I;16B */
            out[i] = (uint8_t)(v > 255 ? 255 : v);
        else
            out[i] = pnm_scale(v, maxval, mode_i);
    }
    return 0;
}

int img_pnm_decode(const unsigned char *buf, size_t len, struct img *im, char *msg,
                   size_t msglen)
{
    struct pnm p = {buf, len, 0};
    char magic[8];
    int n = 0;
    while (n < 6 && p.pos < len && !pnm_space(buf[p.pos]))
        magic[n++] = (char)buf[p.pos++];
    magic[n] = '\0';
    if (p.pos < len && n < 6)
        p.pos++; /* the whitespace that ended it */
    if (n != 2 || magic[0] != 'P' || magic[1] < '1' || magic[1] > '6') {
        snprintf(msg, msglen, "unsupported PNM kind");
        return -1;
    }
    int kind = magic[1] - '0', plain = kind <= 3, bits = kind == 1 || kind == 4;
    int bands = kind == 3 || kind == 6 ? 3 : 1;
    long w = pnm_token(&p), h = w < 0 ? -1 : pnm_token(&p), maxval = 1;
    if (w < 0 || h < 0) {
        snprintf(msg, msglen, "corrupt PNM header");
        return -1;
    }
    if (!bits && ((maxval = pnm_token(&p)) < 1 || maxval > 65535)) {
        snprintf(msg, msglen, "corrupt PNM header: maxval must be 1 to 65535");
        return -1;
    }
    if (img_check_dims(w, h, msg, msglen) == -1)
        return -1;
    int mode_i = bands == 1 && !bits && maxval > 255;
    size_t count = (size_t)w * h * bands;
    /* before allocating: a short file must not cost the memory its header claims */
    size_t need = plain ? (bits ? count : 2 * count - 1)
                        : bits ? ((size_t)w + 7) / 8 * (size_t)h : count * (maxval < 256 ? 1 : 2);
    if (len - p.pos < need) {
        snprintf(msg, msglen, "truncated PNM file");
        return -1;
    }
    uint8_t *v = xmalloc(count), *rgb = xmalloc((size_t)w * h * 3);
    int rc;
    if (plain && bits)
        rc = pnm_plain_bits(&p, v, count, msg, msglen);
    else if (plain)
        rc = pnm_plain_values(&p, v, count, maxval, mode_i, msg, msglen);
    else if ((rc = pnm_binary(&p, v, w, h, bands, bits, maxval, mode_i)) == -1)
        snprintf(msg, msglen, "truncated PNM file");
    if (rc == -1) {
        free(v);
        free(rgb);
        return -1;
    }
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < 3; c++)
            rgb[3 * i + c] = v[bands == 3 ? 3 * i + c : i];
    free(v);
    im->w = (int)w;
    im->h = (int)h;
    im->rgb = rgb;
    return 0;
}
