/* NumPy .npy: one array's header and payload, read from memory or a stream and written.
   The header is a Python dict literal; we parse the subset numpy writes (three keys, any
   order) and distrust everything in it. The .npz container and loading by path (which
   sniffs .npy or .npz) are in npz.c. */
#include "io/npy.h"
#include "io/npy_internal.h"
#include "util/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NPY_MAX_HEADER (1u << 20) /* numpy itself refuses > 10000 by default */
#define NPY_ALIGN 64
/* numpy >= 1.24 pads the header with 21 - len(repr(shape[0])) spaces so it can grow in place */
#define NPY_GROWTH_DIGITS 21

static const char *const dtype_names[] = {"uint8", "int32", "int64", "float32", "float64"};
static const char *const dtype_descr[] = {"|u1", "<i4", "<i8", "<f4", "<f8"};
static const size_t dtype_sizes[] = {1, 4, 8, 4, 8};

size_t npy_dtype_size(enum npy_dtype t)
{
    return dtype_sizes[t];
}

const char *npy_dtype_name(enum npy_dtype t)
{
    return dtype_names[t];
}

int64_t npy_count(const struct npy *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t npy_nbytes(const struct npy *t)
{
    return (size_t)npy_count(t) * dtype_sizes[t->dtype];
}

void npy_alloc(struct npy *t, enum npy_dtype dtype, int ndim, const int64_t *shape)
{
    assert(ndim >= 0 && ndim <= NPY_MAXDIM);
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        assert(shape[i] >= 0);
        t->shape[i] = shape[i];
    }
    t->data = xcalloc(npy_nbytes(t), 1);
}

void npy_free(struct npy *t)
{
    free(t->data);
    t->data = NULL;
}

/* ---- header parsing ---- */

struct hp {
    const char *s, *end;
};

static void hp_ws(struct hp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int hp_char(struct hp *p, char c)
{
    hp_ws(p);
    if (p->s < p->end && *p->s == c) {
        p->s++;
        return 0;
    }
    return -1;
}

/* 'text' or "text" into out (NUL-terminated); -1 on syntax error or overlong */
static int hp_string(struct hp *p, char *out, size_t cap)
{
    char q;
    size_t n = 0;
    hp_ws(p);
    if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
        return -1;
    q = *p->s++;
    while (p->s < p->end && *p->s != q) {
        if (*p->s == '\\' || n + 1 >= cap)
            return -1;
        out[n++] = *p->s++;
    }
    if (p->s >= p->end)
        return -1;
    p->s++;
    out[n] = '\0';
    return 0;
}

static int hp_word(struct hp *p, const char *w)
{
    size_t n = strlen(w);
    hp_ws(p);
    if ((size_t)(p->end - p->s) >= n && memcmp(p->s, w, n) == 0) {
        p->s += n;
        return 0;
    }
    return -1;
}

static int parse_descr(const char *d, enum npy_dtype *dt, char *msg, size_t msglen)
{
    static const char *const le[] = {"u1", "i4", "i8", "f4", "f8"};
    char order = d[0];
    if (strcmp(d, "O") == 0 || strcmp(d, "|O") == 0 || strcmp(d, "<O") == 0) {
        snprintf(msg, msglen, "object arrays not supported");
        return -1;
    }
    if (order == '>' && d[1] != '\0' && strcmp(d + 1, "u1") != 0 && strcmp(d + 1, "i1") != 0) {
        snprintf(msg, msglen, "big-endian data not supported ('%s')", d);
        return -1;
    }
    if (order == '<' || order == '|' || order == '=' || order == '>') {
        for (int i = 0; i < 5; i++)
            if (strcmp(d + 1, le[i]) == 0 && (i == 0 || order != '|')) {
                *dt = (enum npy_dtype)i;
                return 0;
            }
    }
    snprintf(msg, msglen, "unsupported dtype '%s'", d);
    return -1;
}

static int parse_shape(struct hp *p, struct npy *t, char *msg, size_t msglen)
{
    int n = 0;
    if (hp_char(p, '(') == -1)
        goto syntax;
    for (;;) {
        int64_t v = 0;
        hp_ws(p);
        if (p->s < p->end && *p->s == ')') {
            p->s++;
            break;
        }
        if (p->s < p->end && *p->s == '-') {
            snprintf(msg, msglen, "negative dimension in shape");
            return -1;
        }
        if (p->s >= p->end || *p->s < '0' || *p->s > '9')
            goto syntax;
        while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
            if (v > (INT64_MAX - 9) / 10) {
                snprintf(msg, msglen, "dimension too large in shape");
                return -1;
            }
            v = v * 10 + (*p->s++ - '0');
        }
        if (p->s < p->end && *p->s == 'L') /* Python 2 longs */
            p->s++;
        if (n == NPY_MAXDIM) {
            snprintf(msg, msglen, "too many dimensions (max %d)", NPY_MAXDIM);
            return -1;
        }
        t->shape[n++] = v;
        hp_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (hp_char(p, ')') == -1)
            goto syntax;
        if (n == 1) /* "(5)" is an int, not a tuple */
            goto syntax;
        break;
    }
    t->ndim = n;
    return 0;
syntax:
    snprintf(msg, msglen, "bad header: shape is not a tuple of integers");
    return -1;
}

/* Parses the dict in h[0..n) into t's dtype/ndim/shape and checks the byte count fits. */
static int parse_dict(const char *h, size_t n, struct npy *t, char *msg, size_t msglen)
{
    struct hp p = {h, h + n};
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    char key[32], descr[32];
    size_t bytes;

    memset(t, 0, sizeof *t);
    if (memchr(h, '\0', n) != NULL) {
        snprintf(msg, msglen, "bad header: NUL byte");
        return -1;
    }
    if (hp_char(&p, '{') == -1) {
        snprintf(msg, msglen, "bad header: not a dict");
        return -1;
    }
    for (;;) {
        if (hp_char(&p, '}') == 0)
            break;
        if (hp_string(&p, key, sizeof key) == -1 || hp_char(&p, ':') == -1)
            goto syntax;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            have_descr = 1;
            hp_ws(&p);
            if (p.s < p.end && *p.s == '[') {
                snprintf(msg, msglen, "structured dtypes not supported");
                return -1;
            }
            if (hp_string(&p, descr, sizeof descr) == -1)
                goto syntax;
            if (parse_descr(descr, &t->dtype, msg, msglen) == -1)
                return -1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            have_fortran = 1;
            if (hp_word(&p, "True") == 0) {
                snprintf(msg, msglen, "fortran_order arrays not supported");
                return -1;
            }
            if (hp_word(&p, "False") == -1)
                goto syntax;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            have_shape = 1;
            if (parse_shape(&p, t, msg, msglen) == -1)
                return -1;
        } else {
            snprintf(msg, msglen, "bad header: unexpected key '%s'", key);
            return -1;
        }
        if (hp_char(&p, ',') == 0)
            continue;
        if (hp_char(&p, '}') == -1)
            goto syntax;
        break;
    }
    hp_ws(&p);
    if (p.s != p.end) {
        snprintf(msg, msglen, "bad header: trailing garbage after the dict");
        return -1;
    }
    if (!have_descr || !have_fortran || !have_shape) {
        snprintf(msg, msglen, "bad header: missing '%s'",
                 !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
        return -1;
    }
    bytes = dtype_sizes[t->dtype];
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] != 0 && bytes > (SIZE_MAX >> 1) / (uint64_t)t->shape[i]) {
            snprintf(msg, msglen, "array too large: byte count overflows");
            return -1;
        }
        bytes *= (size_t)t->shape[i];
    }
    return 0;
syntax:
    snprintf(msg, msglen, "bad header: not a numpy header dict");
    return -1;
}

/* parse_dict quotes keys and dtypes from the file: keep the message one line */
static int parse_header(const char *h, size_t n, struct npy *t, char *msg, size_t msglen)
{
    if (parse_dict(h, n, t, msg, msglen) == 0)
        return 0;
    if (msglen > 0)
        util_msg_oneline(msg);
    return -1;
}

/* Checks magic and version of the first 8 bytes; *lenbytes: 2 (v1) or 4 (v2, v3). */
static int check_magic(const unsigned char *b, int *lenbytes, char *msg, size_t msglen)
{
    if (memcmp(b, "\x93NUMPY", 6) != 0) {
        snprintf(msg, msglen, "not a .npy file (bad magic)");
        return -1;
    }
    if (b[6] < 1 || b[6] > 3 || b[7] != 0) {
        snprintf(msg, msglen, "unsupported .npy version %d.%d", b[6], b[7]);
        return -1;
    }
    *lenbytes = b[6] == 1 ? 2 : 4;
    return 0;
}

static size_t get_hlen(const unsigned char *b, int lenbytes)
{
    size_t n = b[0] | (size_t)b[1] << 8;
    if (lenbytes == 4)
        n |= (size_t)b[2] << 16 | (size_t)b[3] << 24;
    return n;
}

int npy_read_mem(const unsigned char *buf, size_t len, struct npy *t, char *msg, size_t msglen)
{
    int lb;
    size_t hlen, off, nb;
    if (len < 8) {
        snprintf(msg, msglen, "truncated: want 8 bytes, got %zu", len);
        return -1;
    }
    if (check_magic(buf, &lb, msg, msglen) == -1)
        return -1;
    if (len < 8 + (size_t)lb) {
        snprintf(msg, msglen, "truncated: want %d bytes, got %zu", 8 + lb, len);
        return -1;
    }
    hlen = get_hlen(buf + 8, lb);
    off = 8 + lb;
    if (hlen > NPY_MAX_HEADER) {
        snprintf(msg, msglen, "header too long (%zu bytes)", hlen);
        return -1;
    }
    if (len - off < hlen) {
        snprintf(msg, msglen, "truncated header: want %zu bytes, got %zu", hlen, len - off);
        return -1;
    }
    if (parse_header((const char *)buf + off, hlen, t, msg, msglen) == -1)
        return -1;
    off += hlen;
    nb = npy_nbytes(t);
    if (len - off < nb) {
        snprintf(msg, msglen, "truncated: want %zu bytes, got %zu", nb, len - off);
        return -1;
    }
    if (len - off > nb) {
        snprintf(msg, msglen, "%zu bytes of trailing data after the array", len - off - nb);
        return -1;
    }
    t->data = malloc(nb ? nb : 1);
    if (t->data == NULL) {
        snprintf(msg, msglen, "out of memory (%zu bytes)", nb);
        return -1;
    }
    memcpy(t->data, buf + off, nb);
    return 0;
}

static size_t rd_read(struct npy_stream *r, void *buf, size_t n)
{
    size_t k = n < r->npre ? n : r->npre;
    if (k > 0)
        memcpy(buf, r->pre, k);
    r->pre += k;
    r->npre -= k;
    if (k < n)
        k += fread((unsigned char *)buf + k, 1, n - k, r->f);
    return k;
}

static int rd_exact(struct npy_stream *r, void *buf, size_t n, const char *what, char *msg,
                    size_t msglen)
{
    size_t got = rd_read(r, buf, n);
    if (got == n)
        return 0;
    if (ferror(r->f))
        snprintf(msg, msglen, "read error: %s", strerror(errno));
    else if (got == 0 && *what == '\0')
        snprintf(msg, msglen, "empty input");
    else
        snprintf(msg, msglen, "truncated%s%s: want %zu bytes, got %zu", *what ? " " : "", what, n,
                 got);
    return -1;
}

/* Payload of nb bytes. Regular files are size-checked first; pipes grow the buffer as data
   arrives so a lying header cannot make us allocate its claim up front. */
static int rd_payload(struct npy_stream *r, size_t nb, void **out, char *msg, size_t msglen)
{
    struct stat st;
    size_t cap, got = 0;
    unsigned char *b;
    if (r->npre == 0 && fstat(fileno(r->f), &st) == 0 && S_ISREG(st.st_mode)) {
        off_t pos = ftello(r->f);
        if (pos >= 0 && (uint64_t)(st.st_size - pos) < nb) {
            snprintf(msg, msglen, "truncated: want %zu bytes, got %jd", nb,
                     (intmax_t)(st.st_size - pos));
            return -1;
        }
        cap = nb;
    } else {
        cap = nb < ((size_t)64 << 20) ? nb : ((size_t)64 << 20);
    }
    b = malloc(cap ? cap : 1);
    if (b == NULL)
        goto oom;
    for (;;) {
        size_t k = rd_read(r, b + got, cap - got);
        got += k;
        if (got == nb)
            break;
        if (got < cap) {
            if (ferror(r->f))
                snprintf(msg, msglen, "read error: %s", strerror(errno));
            else
                snprintf(msg, msglen, "truncated: want %zu bytes, got %zu", nb, got);
            free(b);
            return -1;
        }
        cap = cap > nb / 2 ? nb : cap * 2;
        unsigned char *nbuf = realloc(b, cap);
        if (nbuf == NULL) {
            free(b);
            goto oom;
        }
        b = nbuf;
    }
    *out = b;
    return 0;
oom:
    snprintf(msg, msglen, "out of memory (%zu bytes)", nb);
    return -1;
}

int npy_stream_header(struct npy_stream *r, struct npy *t, char *msg, size_t msglen)
{
    unsigned char pre[12];
    char *h;
    int lb;
    size_t hlen;
    memset(t, 0, sizeof *t);
    if (rd_exact(r, pre, 8, "", msg, msglen) == -1)
        return -1;
    if (check_magic(pre, &lb, msg, msglen) == -1)
        return -1;
    if (rd_exact(r, pre + 8, lb, "header", msg, msglen) == -1)
        return -1;
    hlen = get_hlen(pre + 8, lb);
    if (hlen > NPY_MAX_HEADER) {
        snprintf(msg, msglen, "header too long (%zu bytes)", hlen);
        return -1;
    }
    h = xmalloc(hlen + 1);
    if (rd_exact(r, h, hlen, "header", msg, msglen) == -1 ||
        parse_header(h, hlen, t, msg, msglen) == -1) {
        free(h);
        return -1;
    }
    free(h);
    return 0;
}

int npy_stream_read(struct npy_stream *r, struct npy *t, char *msg, size_t msglen)
{
    if (npy_stream_header(r, t, msg, msglen) == -1)
        return -1;
    return rd_payload(r, npy_nbytes(t), &t->data, msg, msglen);
}

int npy_read(FILE *f, struct npy *t, char *msg, size_t msglen)
{
    struct npy_stream r = {f, NULL, 0};
    return npy_stream_read(&r, t, msg, msglen);
}

/* ---- writing ---- */

/* The full prefix (magic, version, length, dict, padding, '\n') exactly as numpy 1.24 writes
   it; returns its length. buf must hold 512 bytes (4 dims need < 256). */
size_t npy_header_bytes(unsigned char *buf, enum npy_dtype dtype, int ndim,
                        const int64_t *shape)
{
    char d[256], dims[128];
    size_t n = 0, hl, pad, total;
    int k = 0, v2;
    dims[0] = '\0';
    for (int i = 0; i < ndim; i++)
        k += snprintf(dims + k, sizeof dims - k, "%s%jd", i ? ", " : "", (intmax_t)shape[i]);
    n = snprintf(d, sizeof d, "{'descr': '%s', 'fortran_order': False, 'shape': (%s%s), }",
                 dtype_descr[dtype], dims, ndim == 1 ? "," : "");
    if (ndim > 0) {
        char first[32];
        int fl = snprintf(first, sizeof first, "%jd", (intmax_t)shape[0]);
        for (int i = fl; i < NPY_GROWTH_DIGITS; i++)
            d[n++] = ' ';
    }
    hl = n + 1; /* + '\n' */
    v2 = 10 + hl + NPY_ALIGN > 65535;
    pad = NPY_ALIGN - ((v2 ? 12 : 10) + hl) % NPY_ALIGN; /* numpy pads 64 when already aligned */
    total = (v2 ? 12 : 10) + hl + pad;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = v2 ? 2 : 1;
    buf[7] = 0;
    size_t len = hl + pad, off = v2 ? 12 : 10;
    buf[8] = len & 0xff;
    buf[9] = len >> 8 & 0xff;
    if (v2) {
        buf[10] = len >> 16 & 0xff;
        buf[11] = len >> 24 & 0xff;
    }
    memcpy(buf + off, d, n);
    memset(buf + off + n, ' ', pad);
    buf[total - 1] = '\n';
    return total;
}

int npy_write_header(FILE *f, enum npy_dtype dtype, int ndim, const int64_t *shape, char *msg,
                     size_t msglen)
{
    unsigned char h[512];
    size_t n;
    if (ndim < 0 || ndim > NPY_MAXDIM) {
        snprintf(msg, msglen, "cannot write %d dimensions (max %d)", ndim, NPY_MAXDIM);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            snprintf(msg, msglen, "negative dimension");
            return -1;
        }
    n = npy_header_bytes(h, dtype, ndim, shape);
    if (fwrite(h, 1, n, f) != n) {
        snprintf(msg, msglen, "write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int npy_write(FILE *f, const struct npy *t, char *msg, size_t msglen)
{
    size_t nb = npy_nbytes(t);
    if (npy_write_header(f, t->dtype, t->ndim, t->shape, msg, msglen) == -1)
        return -1;
    if (fwrite(t->data, 1, nb, f) != nb) {
        snprintf(msg, msglen, "write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int npy_save(const char *path, const struct npy *t, char *msg, size_t msglen)
{
    struct outfile o;
    if (outfile_open(&o, path, msg, msglen) == -1)
        return -1;
    if (npy_write(o.f, t, msg, msglen) == -1) {
        outfile_abort(&o);
        return -1;
    }
    return outfile_commit(&o, msg, msglen);
}
