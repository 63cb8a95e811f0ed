/* MATLAB level-5 MAT-file reader (numeric arrays only). Layout: a 128-byte header, then data
   elements, each a tag (type, byte count) or a "small element" packing both into the first
   4 bytes with up to 4 data bytes after. miCOMPRESSED holds a zlib stream of one element. */
#include "io/mat.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    MI_INT8 = 1, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32, MI_SINGLE,
    MI_DOUBLE = 9, MI_INT64 = 12, MI_UINT64, MI_MATRIX, MI_COMPRESSED
};
#define MAT_MAX_INFLATE ((size_t)1 << 30)

struct el {
    uint32_t type, nbytes;
    const unsigned char *data;
    size_t total; /* tag + data + padding: where the next element starts */
};

static uint32_t get32(const unsigned char *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t get16(const unsigned char *p, int be)
{
    return (uint16_t)(be ? p[0] << 8 | p[1] : p[1] << 8 | p[0]);
}

static int el_parse(const unsigned char *p, size_t avail, int be, struct el *e, char *msg,
                    size_t msglen)
{
    uint32_t v;
    if (avail < 8) {
        snprintf(msg, msglen, "truncated: %zu stray bytes where a data element should be", avail);
        return -1;
    }
    v = get32(p, be);
    if (v >> 16 != 0) { /* small element */
        e->type = v & 0xffff;
        e->nbytes = v >> 16;
        e->data = p + 4;
        e->total = 8;
        if (e->nbytes > 4) {
            snprintf(msg, msglen, "corrupt small data element (%u bytes)", e->nbytes);
            return -1;
        }
        return 0;
    }
    e->type = v;
    e->nbytes = get32(p + 4, be);
    e->data = p + 8;
    if (e->nbytes > avail - 8) {
        snprintf(msg, msglen, "truncated: element of %u bytes, %zu left", e->nbytes, avail - 8);
        return -1;
    }
    /* compressed elements are not padded; others pad to 8 (the last one may omit it) */
    e->total = 8 + (size_t)e->nbytes;
    if (e->type != MI_COMPRESSED)
        e->total = (e->total + 7) & ~(size_t)7;
    if (e->total > avail)
        e->total = avail;
    return 0;
}

static size_t mi_size(uint32_t type)
{
    switch (type) {
    case MI_INT8: case MI_UINT8: return 1;
    case MI_INT16: case MI_UINT16: return 2;
    case MI_INT32: case MI_UINT32: case MI_SINGLE: return 4;
    case MI_DOUBLE: case MI_INT64: case MI_UINT64: return 8;
    default: return 0;
    }
}

static double mi_value(const unsigned char *p, uint32_t type, int be)
{
    uint64_t u;
    switch (type) {
    case MI_INT8: return (int8_t)p[0];
    case MI_UINT8: return p[0];
    case MI_INT16: return (int16_t)get16(p, be);
    case MI_UINT16: return get16(p, be);
    case MI_INT32: return (int32_t)get32(p, be);
    case MI_UINT32: return get32(p, be);
    case MI_SINGLE: {
        uint32_t b = get32(p, be);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    default:
        u = be ? (uint64_t)get32(p, be) << 32 | get32(p + 4, be)
               : (uint64_t)get32(p + 4, be) << 32 | get32(p, be);
        if (type == MI_INT64)
            return (double)(int64_t)u;
        if (type == MI_UINT64)
            return (double)u;
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
}

/* miMATRIX payload: flags, dims, name, real part. *keep 0 for arrays we skip (char, cell,
   struct, sparse, complex). */
static int parse_matrix(const unsigned char *p, size_t n, int be, struct mat_var *v, int *keep,
                        char *msg, size_t msglen)
{
    struct el f, d, nm, re;
    uint32_t cls;
    int64_t numel = 1;
    size_t ts;
    *keep = 0;
    memset(v, 0, sizeof *v);
    if (n == 0) /* empty placeholder */
        return 0;
    if (el_parse(p, n, be, &f, msg, msglen) == -1)
        return -1;
    if (f.type != MI_UINT32 || f.nbytes != 8) {
        snprintf(msg, msglen, "corrupt matrix: bad array flags");
        return -1;
    }
    cls = get32(f.data, be) & 0xff;
    if (cls < 6 || cls > 15 || (get32(f.data, be) & 0x800))
        return 0;
    p += f.total, n -= f.total;
    if (el_parse(p, n, be, &d, msg, msglen) == -1)
        return -1;
    if (d.type != MI_INT32 || d.nbytes % 4 != 0 || d.nbytes < 8 || d.nbytes > 32) {
        snprintf(msg, msglen, "corrupt matrix: bad dimensions element");
        return -1;
    }
    p += d.total, n -= d.total;
    if (el_parse(p, n, be, &nm, msg, msglen) == -1)
        return -1;
    if (nm.type != MI_INT8 && nm.type != MI_UINT8) {
        snprintf(msg, msglen, "corrupt matrix: bad name element");
        return -1;
    }
    p += nm.total, n -= nm.total;
    if (el_parse(p, n, be, &re, msg, msglen) == -1)
        return -1;
    ts = mi_size(re.type);
    if (ts == 0) {
        snprintf(msg, msglen, "corrupt matrix: unsupported data type %u", re.type);
        return -1;
    }
    v->ndim = (int)(d.nbytes / 4);
    for (int i = 0; i < v->ndim; i++) {
        int32_t k = (int32_t)get32(d.data + 4 * i, be);
        if (k < 0) {
            snprintf(msg, msglen, "corrupt matrix: negative dimension");
            return -1;
        }
        v->dims[i] = k;
        if (k != 0 && numel > INT64_MAX / k) {
            snprintf(msg, msglen, "corrupt matrix: dimensions overflow");
            return -1;
        }
        numel *= k;
    }
    if ((uint64_t)numel * ts != re.nbytes || (uint64_t)numel > re.nbytes) {
        snprintf(msg, msglen, "corrupt matrix: %jd elements but %u data bytes of type %u",
                 (intmax_t)numel, re.nbytes, re.type);
        return -1;
    }
    v->numel = numel;
    v->name = xmalloc(nm.nbytes + 1);
    memcpy(v->name, nm.data, nm.nbytes);
    v->name[nm.nbytes] = '\0';
    v->data = xmalloc(sizeof *v->data * (numel ? numel : 1));
    for (int64_t i = 0; i < numel; i++)
        v->data[i] = mi_value(re.data + i * ts, re.type, be);
    *keep = 1;
    return 0;
}

static int inflate_all(const unsigned char *in, size_t n, unsigned char **out, size_t *outlen,
                       char *msg, size_t msglen)
{
    z_stream s;
    size_t cap = n * 4 + 1024, done = 0;
    unsigned char *b;
    int rc;
    memset(&s, 0, sizeof s);
    if (inflateInit(&s) != Z_OK) {
        snprintf(msg, msglen, "inflate init failed");
        return -1;
    }
    if (n > UINT32_MAX) {
        inflateEnd(&s);
        snprintf(msg, msglen, "compressed element too large");
        return -1;
    }
    b = xmalloc(cap);
    s.next_in = (unsigned char *)in;
    s.avail_in = (unsigned)n;
    for (;;) {
        if (done == cap) {
            if (cap >= MAT_MAX_INFLATE) {
                rc = Z_MEM_ERROR;
                break;
            }
            cap *= 2;
            b = xrealloc(b, cap);
        }
        size_t room = cap - done;
        s.next_out = b + done;
        s.avail_out = room > (1u << 30) ? (1u << 30) : (unsigned)room;
        unsigned ao = s.avail_out;
        rc = inflate(&s, Z_NO_FLUSH);
        done += ao - s.avail_out;
        if (rc != Z_OK)
            break;
        if (s.avail_in == 0 && s.avail_out != 0) {
            rc = Z_BUF_ERROR;
            break;
        }
    }
    inflateEnd(&s);
    if (rc != Z_STREAM_END) {
        if (rc == Z_DATA_ERROR)
            snprintf(msg, msglen, "corrupt compressed element: %s", s.msg ? s.msg : "bad data");
        else if (rc == Z_MEM_ERROR)
            snprintf(msg, msglen, "compressed element inflates past %zu bytes", MAT_MAX_INFLATE);
        else
            snprintf(msg, msglen, "truncated compressed element");
        free(b);
        return -1;
    }
    *out = b;
    *outlen = done;
    return 0;
}

static int add_matrix(struct mat_file *m, const unsigned char *p, size_t n, int be, char *msg,
                      size_t msglen)
{
    struct mat_var v;
    int keep;
    if (parse_matrix(p, n, be, &v, &keep, msg, msglen) == -1) {
        free(v.name);
        free(v.data);
        return -1;
    }
    if (!keep)
        return 0;
    m->v = xrealloc(m->v, sizeof *m->v * (m->n + 1));
    m->v[m->n++] = v;
    return 0;
}

int mat_read_mem(const unsigned char *buf, size_t len, struct mat_file *m, char *msg,
                 size_t msglen)
{
    size_t pos = 128;
    int be;
    memset(m, 0, sizeof *m);
    if (len < 128) {
        snprintf(msg, msglen, "not a MATLAB 5 .mat file (%zu bytes)", len);
        return -1;
    }
    if (memcmp(buf + 126, "IM", 2) == 0)
        be = 0;
    else if (memcmp(buf + 126, "MI", 2) == 0)
        be = 1;
    else {
        snprintf(msg, msglen, "not a MATLAB 5 .mat file (bad endian indicator)");
        return -1;
    }
    if (get16(buf + 124, be) != 0x0100) {
        snprintf(msg, msglen, "unsupported .mat version 0x%04x%s", get16(buf + 124, be),
                 get16(buf + 124, be) == 0x0200 ? " (v7.3/HDF5)" : "");
        return -1;
    }
    while (pos < len) {
        struct el e;
        if (el_parse(buf + pos, len - pos, be, &e, msg, msglen) == -1)
            goto fail;
        if (e.type == MI_COMPRESSED) {
            unsigned char *in;
            size_t inlen;
            struct el ie;
            int rc;
            if (inflate_all(e.data, e.nbytes, &in, &inlen, msg, msglen) == -1)
                goto fail;
            rc = el_parse(in, inlen, be, &ie, msg, msglen);
            if (rc == 0 && ie.type == MI_MATRIX)
                rc = add_matrix(m, ie.data, ie.nbytes, be, msg, msglen);
            free(in);
            if (rc == -1)
                goto fail;
        } else if (e.type == MI_MATRIX) {
            if (add_matrix(m, e.data, e.nbytes, be, msg, msglen) == -1)
                goto fail;
        }
        pos += e.total;
    }
    return 0;
fail:
    mat_free(m);
    return -1;
}

int mat_read(const char *path, struct mat_file *m, char *msg, size_t msglen)
{
    unsigned char *buf;
    size_t len;
    int rc;
    memset(m, 0, sizeof *m);
    if (util_read_file(path, &buf, &len, msg, msglen) == -1)
        return -1;
    rc = mat_read_mem(buf, len, m, msg, msglen);
    free(buf);
    return rc;
}

const struct mat_var *mat_find(const struct mat_file *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            return &m->v[i];
    return NULL;
}

void mat_free(struct mat_file *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].data);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}
