/* ZIP archives in memory. Reading trusts the central directory for sizes and offsets (numpy's
   savez writes ZIP64 local headers whose sizes are 0xFFFFFFFF), then checks that each local
   header is where the directory says and that the data fits in the buffer. */
#include "io/zip.h"
#include "util/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define U32MAX 0xffffffffu
/* deflate cannot expand more than ~1032:1; a larger claim is a lie (or a bomb) */
#define MAX_RATIO 1040

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Finds the end of central directory record, scanning back over a comment. */
static int find_eocd(const unsigned char *buf, size_t len, size_t *pos)
{
    size_t lo;
    if (len < 22)
        return -1;
    lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd32(buf + i) == SIG_EOCD && i + 22 + rd16(buf + i + 20) <= len) {
            *pos = i;
            return 0;
        }
    return -1;
}

/* The ZIP64 extended information extra field replaces the 0xFFFFFFFF fields, in order. */
static int zip64_extra(const unsigned char *x, size_t xlen, struct zip_entry *e, int need_u,
                       int need_c, int need_o)
{
    while (xlen >= 4) {
        uint16_t id = rd16(x), sz = rd16(x + 2);
        if ((size_t)sz + 4 > xlen)
            return -1;
        if (id == 1) {
            const unsigned char *p = x + 4;
            size_t need = 8 * (need_u + need_c + need_o);
            if (sz < need)
                return -1;
            if (need_u)
                e->usize = rd64(p), p += 8;
            if (need_c)
                e->csize = rd64(p), p += 8;
            if (need_o)
                e->offset = rd64(p);
            return 0;
        }
        x += 4 + sz;
        xlen -= 4 + sz;
    }
    return -1;
}

static int parse_central(struct zip *z, const unsigned char *p, size_t avail, size_t *used,
                         struct zip_entry *e, char *msg, size_t msglen)
{
    const unsigned char *buf = z->buf;
    size_t nlen, xlen, clen;
    uint32_t cs, us, off;
    if (avail < 46 || rd32(p) != SIG_CENTRAL) {
        snprintf(msg, msglen, "corrupt zip: bad central directory entry");
        return -1;
    }
    nlen = rd16(p + 28);
    xlen = rd16(p + 30);
    clen = rd16(p + 32);
    if (46 + nlen + xlen + clen > avail) {
        snprintf(msg, msglen, "corrupt zip: central directory entry overruns");
        return -1;
    }
    *used = 46 + nlen + xlen + clen;
    if (rd16(p + 8) & 1) {
        snprintf(msg, msglen, "encrypted zip members not supported");
        return -1;
    }
    e->method = rd16(p + 10);
    e->crc = rd32(p + 16);
    cs = rd32(p + 20);
    us = rd32(p + 24);
    off = rd32(p + 42);
    e->csize = cs;
    e->usize = us;
    e->offset = off;
    if ((cs == U32MAX || us == U32MAX || off == U32MAX) &&
        zip64_extra(p + 46 + nlen, xlen, e, us == U32MAX, cs == U32MAX, off == U32MAX) == -1) {
        snprintf(msg, msglen, "corrupt zip: bad ZIP64 extra field");
        return -1;
    }
    if (memchr(p + 46, '\0', nlen) != NULL) {
        snprintf(msg, msglen, "corrupt zip: NUL in a member name");
        return -1;
    }
    e->name = xmalloc(nlen + 1);
    memcpy(e->name, p + 46, nlen);
    e->name[nlen] = '\0';
    if (e->method != 0 && e->method != 8) {
        snprintf(msg, msglen, "%s: unsupported zip compression method %d", e->name, e->method);
        return -1;
    }
    /* the local header: its name and extra lengths may differ from the central ones
       (PyTorch pads the local extra field to align data to 64 bytes) */
    if (e->offset > z->len || z->len - e->offset < 30 || rd32(buf + e->offset) != SIG_LOCAL) {
        snprintf(msg, msglen, "corrupt zip: %s: bad local header", e->name);
        return -1;
    }
    e->data = e->offset + 30 + rd16(buf + e->offset + 26) + rd16(buf + e->offset + 28);
    if (e->data > z->len || z->len - e->data < e->csize) {
        snprintf(msg, msglen, "truncated zip: %s: data runs past the end", e->name);
        return -1;
    }
    if (e->method == 0 && e->csize != e->usize) {
        snprintf(msg, msglen, "corrupt zip: %s: stored sizes differ", e->name);
        return -1;
    }
    if (e->method == 8 && e->usize / MAX_RATIO > e->csize + 64) {
        snprintf(msg, msglen, "corrupt zip: %s: implausible size %ju", e->name,
                 (uintmax_t)e->usize);
        return -1;
    }
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    uint64_t x = (*(const struct zip_entry *const *)a)->offset,
             y = (*(const struct zip_entry *const *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Members never share bytes in a real archive; overlapping ones let a small file inflate
   one deflate stream once per central entry (Fifield's overlapping zip bomb): thousands of
   copies of 1 GB from 1 MB when an .npz is loaded whole. */
static int check_overlap(const struct zip *z, char *msg, size_t msglen)
{
    const struct zip_entry **s = xmalloc(((size_t)z->n + 1) * sizeof *s);
    int rc = 0;
    for (int i = 0; i < z->n; i++)
        s[i] = &z->e[i];
    if (z->n > 1)
        qsort(s, (size_t)z->n, sizeof *s, cmp_offset);
    for (int i = 1; i < z->n && rc == 0; i++)
        if (s[i]->offset < s[i - 1]->data + s[i - 1]->csize) {
            snprintf(msg, msglen, "corrupt zip: members overlap");
            rc = -1;
        }
    free(s);
    return rc;
}

int zip_open(struct zip *z, const unsigned char *buf, size_t len, char *msg, size_t msglen)
{
    size_t eocd, pos, end;
    uint64_t n, cdsize, cdoff;
    memset(z, 0, sizeof *z);
    z->buf = buf;
    z->len = len;
    if (find_eocd(buf, len, &eocd) == -1) {
        snprintf(msg, msglen, len >= 4 && rd32(buf) == SIG_LOCAL
                                  ? "truncated or corrupt zip: no end of central directory"
                                  : "not a zip file");
        return -1;
    }
    n = rd16(buf + eocd + 10);
    cdsize = rd32(buf + eocd + 12);
    cdoff = rd32(buf + eocd + 16);
    if (eocd >= 20 && rd32(buf + eocd - 20) == SIG_LOC64) {
        uint64_t o = rd64(buf + eocd - 20 + 8);
        if (o > len || len - o < 56 || rd32(buf + o) != SIG_EOCD64) {
            snprintf(msg, msglen, "corrupt zip: bad ZIP64 end of central directory");
            return -1;
        }
        n = rd64(buf + o + 32);
        cdsize = rd64(buf + o + 40);
        cdoff = rd64(buf + o + 48);
    }
    if (cdoff > len || cdsize > len - cdoff || n > cdsize / 46) {
        snprintf(msg, msglen, "corrupt zip: bad central directory bounds");
        return -1;
    }
    z->e = xcalloc(n ? n : 1, sizeof *z->e);
    pos = cdoff;
    end = cdoff + cdsize;
    for (uint64_t i = 0; i < n; i++) {
        size_t used;
        z->n = (int)i + 1;
        if (parse_central(z, buf + pos, end - pos, &used, &z->e[i], msg, msglen) == -1) {
            if (msglen > 0) /* messages quote member names from the file */
                util_msg_oneline(msg);
            zip_close(z);
            return -1;
        }
        pos += used;
    }
    if (check_overlap(z, msg, msglen) == -1) {
        zip_close(z);
        return -1;
    }
    return 0;
}

void zip_close(struct zip *z)
{
    for (int i = 0; i < z->n; i++)
        free(z->e[i].name);
    free(z->e);
    z->e = NULL;
    z->n = 0;
}

int zip_find(const struct zip *z, const char *name)
{
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->e[i].name, name) == 0)
            return i;
    return -1;
}

const unsigned char *zip_data(const struct zip *z, int i)
{
    if (i < 0 || i >= z->n || z->e[i].method != 0)
        return NULL;
    return z->buf + z->e[i].data;
}

static int inflate_raw(const unsigned char *in, uint64_t inlen, unsigned char *out,
                       uint64_t outlen, char *msg, size_t msglen)
{
    z_stream s;
    int rc;
    uint64_t done_in = 0, done_out = 0;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK) {
        snprintf(msg, msglen, "inflate init failed");
        return -1;
    }
    /* avail_in/avail_out are 32-bit: feed in chunks */
    do {
        uint64_t ri = inlen - done_in, ro = outlen - done_out;
        s.next_in = (unsigned char *)in + done_in;
        s.avail_in = ri > (1u << 30) ? (1u << 30) : (unsigned)ri;
        s.next_out = out + done_out;
        s.avail_out = ro > (1u << 30) ? (1u << 30) : (unsigned)ro;
        unsigned ai = s.avail_in, ao = s.avail_out;
        rc = inflate(&s, Z_NO_FLUSH);
        done_in += ai - s.avail_in;
        done_out += ao - s.avail_out;
        if (rc == Z_BUF_ERROR && (done_in == inlen || done_out == outlen))
            break;
    } while (rc == Z_OK);
    inflateEnd(&s);
    if (rc == Z_STREAM_END && done_out == outlen)
        return 0;
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
        snprintf(msg, msglen, "corrupt deflate stream: %s", s.msg ? s.msg : "bad data");
    else if (rc == Z_STREAM_END)
        snprintf(msg, msglen, "inflated size %ju, want %ju", (uintmax_t)done_out,
                 (uintmax_t)outlen);
    else if (done_out == outlen)
        snprintf(msg, msglen, "inflated data longer than %ju bytes", (uintmax_t)outlen);
    else
        snprintf(msg, msglen, "truncated deflate stream");
    return -1;
}

static uint32_t crc_of(const unsigned char *p, uint64_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static int extract(const struct zip *z, int i, unsigned char **out, size_t *outlen, char *msg,
                   size_t msglen)
{
    const struct zip_entry *e;
    unsigned char *b;
    uint32_t crc;
    assert(i >= 0 && i < z->n);
    e = &z->e[i];
    if (e->usize > SIZE_MAX - 1) {
        snprintf(msg, msglen, "%s: too large", e->name);
        return -1;
    }
    b = malloc(e->usize ? e->usize : 1);
    if (b == NULL) {
        snprintf(msg, msglen, "%s: out of memory (%ju bytes)", e->name, (uintmax_t)e->usize);
        return -1;
    }
    if (e->method == 0) {
        memcpy(b, z->buf + e->data, e->usize);
    } else {
        char m[96];
        if (inflate_raw(z->buf + e->data, e->csize, b, e->usize, m, sizeof m) == -1) {
            snprintf(msg, msglen, "%s: %s", e->name, m);
            free(b);
            return -1;
        }
    }
    crc = crc_of(b, e->usize);
    if (crc != e->crc) {
        snprintf(msg, msglen, "%s: CRC mismatch (%08x, want %08x)", e->name, crc, e->crc);
        free(b);
        return -1;
    }
    *out = b;
    *outlen = e->usize;
    return 0;
}

int zip_extract(const struct zip *z, int i, unsigned char **out, size_t *outlen, char *msg,
                size_t msglen)
{
    if (extract(z, i, out, outlen, msg, msglen) == 0)
        return 0;
    if (msglen > 0) /* messages quote member names from the file */
        util_msg_oneline(msg);
    return -1;
}

/* ---- writing ---- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = v >> 8;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Raw deflate of in into a malloc'd buffer, like Python zipfile's ZIP_DEFLATED. */
static int deflate_raw(const unsigned char *in, size_t n, unsigned char **out, size_t *outlen,
                       char *msg, size_t msglen)
{
    z_stream s;
    size_t cap;
    unsigned char *b;
    int rc;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        snprintf(msg, msglen, "deflate init failed");
        return -1;
    }
    cap = n + n / 1000 + 1024 + (n >> 12) * 5; /* deflateBound without the 32-bit limit */
    b = xmalloc(cap);
    size_t done_in = 0, done_out = 0;
    do {
        size_t ri = n - done_in, ro = cap - done_out;
        s.next_in = (unsigned char *)in + done_in;
        s.avail_in = ri > (1u << 30) ? (1u << 30) : (unsigned)ri;
        s.next_out = b + done_out;
        s.avail_out = ro > (1u << 30) ? (1u << 30) : (unsigned)ro;
        unsigned ai = s.avail_in, ao = s.avail_out;
        rc = deflate(&s, done_in + ai == n ? Z_FINISH : Z_NO_FLUSH);
        done_in += ai - s.avail_in;
        done_out += ao - s.avail_out;
    } while (rc == Z_OK || (rc == Z_BUF_ERROR && done_out < cap));
    deflateEnd(&s);
    if (rc != Z_STREAM_END) {
        snprintf(msg, msglen, "deflate failed (%d)", rc);
        free(b);
        return -1;
    }
    *out = b;
    *outlen = done_out;
    return 0;
}

struct wentry {
    uint64_t off, csize, usize;
    uint32_t crc;
    int method;
};

static int put(FILE *f, const void *p, size_t n, uint64_t *pos)
{
    *pos += n;
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int zip_write(FILE *f, const char *const *names, const unsigned char *const *data,
              const size_t *lens, int n, int compress, char *msg, size_t msglen)
{
    struct wentry *w = xcalloc(n ? n : 1, sizeof *w);
    unsigned char h[64];
    uint64_t pos = 0, cdoff, cdsize;
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        unsigned char *c = NULL;
        size_t clen = lens[i], nl = strlen(names[i]);
        int z64;
        if (nl > 65535) {
            snprintf(msg, msglen, "member name too long");
            free(w);
            return -1;
        }
        if (compress && deflate_raw(data[i], lens[i], &c, &clen, msg, msglen) == -1) {
            free(w);
            return -1;
        }
        w[i].off = pos;
        w[i].usize = lens[i];
        w[i].csize = clen;
        w[i].crc = crc_of(data[i], lens[i]);
        w[i].method = compress ? 8 : 0;
        z64 = w[i].usize >= U32MAX || w[i].csize >= U32MAX;
        put32(h, SIG_LOCAL);
        put16(h + 4, z64 ? 45 : 20);
        put16(h + 6, 0);
        put16(h + 8, (uint16_t)w[i].method);
        put16(h + 10, 0);      /* 00:00 */
        put16(h + 12, 0x21);   /* 1980-01-01 */
        put32(h + 14, w[i].crc);
        put32(h + 18, z64 ? U32MAX : (uint32_t)w[i].csize);
        put32(h + 22, z64 ? U32MAX : (uint32_t)w[i].usize);
        put16(h + 26, (uint16_t)nl);
        put16(h + 28, z64 ? 20 : 0);
        put16(h + 30, 1);
        put16(h + 32, 16);
        put64(h + 34, w[i].usize);
        put64(h + 42, w[i].csize);
        bad |= put(f, h, 30, &pos) | put(f, names[i], nl, &pos);
        if (z64)
            bad |= put(f, h + 30, 20, &pos);
        bad |= put(f, c ? c : data[i], clen, &pos);
        free(c);
    }
    cdoff = pos;
    for (int i = 0; i < n && !bad; i++) {
        size_t nl = strlen(names[i]), xl = 4;
        int bu = w[i].usize >= U32MAX, bc = w[i].csize >= U32MAX, bo = w[i].off >= U32MAX;
        unsigned char *x = h + 46;
        put32(h, SIG_CENTRAL);
        put16(h + 4, 45 | 3 << 8); /* made by Unix */
        put16(h + 6, bu || bc || bo ? 45 : 20);
        put16(h + 8, 0);
        put16(h + 10, (uint16_t)w[i].method);
        put16(h + 12, 0);
        put16(h + 14, 0x21);
        put32(h + 16, w[i].crc);
        put32(h + 20, bc ? U32MAX : (uint32_t)w[i].csize);
        put32(h + 24, bu ? U32MAX : (uint32_t)w[i].usize);
        put16(h + 28, (uint16_t)nl);
        put16(h + 32, 0);
        put16(h + 34, 0);
        put16(h + 36, 0);
        put32(h + 38, 0644u << 16 | 0x8000u << 16);
        put32(h + 42, bo ? U32MAX : (uint32_t)w[i].off);
        if (bu)
            put64(x + xl, w[i].usize), xl += 8;
        if (bc)
            put64(x + xl, w[i].csize), xl += 8;
        if (bo)
            put64(x + xl, w[i].off), xl += 8;
        put16(x, 1);
        put16(x + 2, (uint16_t)(xl - 4));
        if (xl == 4)
            xl = 0;
        put16(h + 30, (uint16_t)xl);
        bad |= put(f, h, 46, &pos) | put(f, names[i], nl, &pos) | put(f, x, xl, &pos);
    }
    cdsize = pos - cdoff;
    if (!bad && (n >= 0xffff || cdoff >= U32MAX || cdsize >= U32MAX)) {
        uint64_t e64 = pos;
        put32(h, SIG_EOCD64);
        put64(h + 4, 44);
        put16(h + 12, 45 | 3 << 8);
        put16(h + 14, 45);
        put32(h + 16, 0);
        put32(h + 20, 0);
        put64(h + 24, (uint64_t)n);
        put64(h + 32, (uint64_t)n);
        put64(h + 40, cdsize);
        put64(h + 48, cdoff);
        put32(h + 56, SIG_LOC64);
        put32(h + 60, 0);
        bad |= put(f, h, 64, &pos);
        put64(h, e64);
        put32(h + 8, 1);
        bad |= put(f, h, 12, &pos);
    }
    put32(h, SIG_EOCD);
    put16(h + 4, 0);
    put16(h + 6, 0);
    put16(h + 8, n >= 0xffff ? 0xffff : (uint16_t)n);
    put16(h + 10, n >= 0xffff ? 0xffff : (uint16_t)n);
    put32(h + 12, cdsize >= U32MAX ? U32MAX : (uint32_t)cdsize);
    put32(h + 16, cdoff >= U32MAX ? U32MAX : (uint32_t)cdoff);
    put16(h + 20, 0);
    if (!bad)
        bad |= put(f, h, 22, &pos);
    free(w);
    if (bad) {
        snprintf(msg, msglen, "write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}
