#include "io/st.h"
#include "io/json.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* the Rust reader's limit */
#define ST_MAX_HEADER 100000000ULL

static const struct {
    const char *name;
    size_t size;
    int rank; /* position in safetensors' Dtype enum order, which its writer sorts by */
} dtypes[] = {
    [ST_F32] = {"F32", 4, 5}, [ST_F16] = {"F16", 2, 2}, [ST_BF16] = {"BF16", 2, 3},
    [ST_F64] = {"F64", 8, 6}, [ST_I64] = {"I64", 8, 7}, [ST_I32] = {"I32", 4, 4},
    [ST_U8] = {"U8", 1, 1},   [ST_BOOL] = {"BOOL", 1, 0},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t st_dtype_size(enum st_dtype d)
{
    return dtypes[d].size;
}

const char *st_dtype_name(enum st_dtype d)
{
    return dtypes[d].name;
}

int64_t st_numel(const struct st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static void st_zero(struct st_file *f)
{
    memset(f, 0, sizeof *f);
}

void st_close(struct st_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    free(f->owned);
    st_zero(f);
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const struct json *j, uint64_t *out)
{
    if (j->type != JSON_NUMBER || !(j->number >= 0) || j->number > 9007199254740992.0 ||
        j->number != floor(j->number))
        return -1;
    *out = (uint64_t)j->number;
    return 0;
}

struct span {
    uint64_t begin, end;
    int i;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* One header entry into t; data_len is the size of the data section. */
static int parse_info(struct st_tensor *t, const char *name, const struct json *v,
                      uint64_t data_len, uint64_t off[2], char *msg, size_t msglen)
{
    const struct json *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"),
                      *of = json_get(v, "data_offsets");
    if (v->type != JSON_OBJECT || dt == NULL || sh == NULL || of == NULL) {
        snprintf(msg, msglen, "tensor \"%.60s\": need dtype, shape and data_offsets", name);
        return -1;
    }
    if (dt->type != JSON_STRING) {
        snprintf(msg, msglen, "tensor \"%.60s\": dtype is not a string", name);
        return -1;
    }
    int d = -1;
    for (int k = 0; k < N_DTYPES; k++)
        if (strcmp(dt->string, dtypes[k].name) == 0)
            d = k;
    if (d < 0) {
        snprintf(msg, msglen, "tensor \"%.60s\": unsupported dtype \"%.16s\"", name, dt->string);
        return -1;
    }
    t->dtype = (enum st_dtype)d;
    if (sh->type != JSON_ARRAY || sh->n > ST_MAXDIM) {
        snprintf(msg, msglen, "tensor \"%.60s\": shape is not an array of at most %d dims", name,
                 ST_MAXDIM);
        return -1;
    }
    t->ndim = sh->n;
    uint64_t numel = 1, limit = ((uint64_t)1 << 62) / dtypes[d].size;
    int zero = 0;
    for (int k = 0; k < sh->n; k++) {
        uint64_t dim;
        if (json_uint(&sh->items[k], &dim) == -1) {
            snprintf(msg, msglen, "tensor \"%.60s\": shape[%d] is not an integer >= 0", name, k);
            return -1;
        }
        t->shape[k] = (int64_t)dim;
        if (dim == 0)
            zero = 1;
        else if (!zero && numel > limit / dim) {
            snprintf(msg, msglen, "tensor \"%.60s\": shape too large", name);
            return -1;
        } else if (!zero)
            numel *= dim;
    }
    if (zero)
        numel = 0;
    if (of->type != JSON_ARRAY || of->n != 2 || json_uint(&of->items[0], &off[0]) == -1 ||
        json_uint(&of->items[1], &off[1]) == -1) {
        snprintf(msg, msglen, "tensor \"%.60s\": data_offsets is not [begin, end]", name);
        return -1;
    }
    if (off[0] > off[1] || off[1] > data_len) {
        snprintf(msg, msglen,
                 "tensor \"%.60s\": data_offsets [%llu, %llu] outside the %llu data bytes", name,
                 (unsigned long long)off[0], (unsigned long long)off[1],
                 (unsigned long long)data_len);
        return -1;
    }
    if (off[1] - off[0] != numel * dtypes[d].size) {
        snprintf(msg, msglen, "tensor \"%.60s\": %llu bytes for %llu %s values", name,
                 (unsigned long long)(off[1] - off[0]), (unsigned long long)numel,
                 dtypes[d].name);
        return -1;
    }
    t->nbytes = (size_t)(off[1] - off[0]);
    return 0;
}

static int parse_meta(struct st_file *f, const struct json *m, char *msg, size_t msglen)
{
    if (m->type != JSON_OBJECT) {
        snprintf(msg, msglen, "__metadata__ is not an object");
        return -1;
    }
    f->meta_keys = xcalloc((size_t)m->n + 1, sizeof *f->meta_keys);
    f->meta_vals = xcalloc((size_t)m->n + 1, sizeof *f->meta_vals);
    for (int i = 0; i < m->n; i++) {
        if (m->items[i].type != JSON_STRING) {
            snprintf(msg, msglen, "__metadata__ \"%.60s\" is not a string", m->keys[i]);
            return -1;
        }
        f->meta_keys[i] = xstrdup(m->keys[i]);
        f->meta_vals[i] = xstrdup(m->items[i].string);
        f->n_meta++;
    }
    return 0;
}

/* Validates the header of buf (len bytes) and fills f's tables pointing into buf. */
static int st_parse(struct st_file *f, const unsigned char *buf, size_t len, char *msg,
                    size_t msglen)
{
    char jmsg[128];
    uint64_t hlen = 0;
    if (len < 8) {
        snprintf(msg, msglen, "truncated: %zu bytes, want at least 8", len);
        return -1;
    }
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > ST_MAX_HEADER) {
        snprintf(msg, msglen, "header length %llu larger than 100 MB: not a safetensors file",
                 (unsigned long long)hlen);
        return -1;
    }
    if (hlen > len - 8) {
        snprintf(msg, msglen, "truncated: header length %llu but only %zu bytes follow",
                 (unsigned long long)hlen, len - 8);
        return -1;
    }
    if (hlen < 2 || buf[8] != '{') {
        snprintf(msg, msglen, "header is not a JSON object: not a safetensors file");
        return -1;
    }
    struct json *j = json_parse((const char *)buf + 8, (size_t)hlen, jmsg, sizeof jmsg);
    if (j == NULL) {
        snprintf(msg, msglen, "header: %s", jmsg);
        return -1;
    }
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    struct span *sp = xmalloc(((size_t)j->n + 1) * sizeof *sp);
    int ns = 0, rc = -1;
    f->t = xcalloc((size_t)j->n + 1, sizeof *f->t);
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->keys[i], "__metadata__") == 0) {
            if (parse_meta(f, &j->items[i], msg, msglen) == -1)
                goto out;
            continue;
        }
        struct st_tensor *t = &f->t[f->n];
        uint64_t off[2];
        if (parse_info(t, j->keys[i], &j->items[i], data_len, off, msg, msglen) == -1)
            goto out;
        t->name = xstrdup(j->keys[i]);
        t->data = data + off[0];
        if (off[1] > off[0])
            sp[ns++] = (struct span){off[0], off[1], f->n};
        f->n++;
    }
    qsort(sp, (size_t)ns, sizeof *sp, cmp_span);
    for (int i = 1; i < ns; i++)
        if (sp[i].begin < sp[i - 1].end) {
            snprintf(msg, msglen, "tensors \"%.50s\" and \"%.50s\" overlap",
                     f->t[sp[i - 1].i].name, f->t[sp[i].i].name);
            goto out;
        }
    rc = 0;
out:
    free(sp);
    json_free(j);
    return rc;
}

int st_open(struct st_file *f, const char *path, char *msg, size_t msglen)
{
    struct stat sb;
    int fd;
    st_zero(f);
    fd = strcmp(path, "-") == 0 ? -1 : open(path, O_RDONLY);
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            snprintf(msg, msglen, "mmap: %s", strerror(errno));
            return -1;
        }
        f->map = m;
        f->map_len = (size_t)sb.st_size;
    } else {
        /* stdin, pipes, empty files */
        unsigned char *buf;
        size_t len;
        if (fd >= 0)
            close(fd);
        if (util_read_file(path, &buf, &len, msg, msglen) == -1)
            return -1;
        f->owned = buf;
        f->map_len = len;
    }
    const unsigned char *buf = f->map ? f->map : f->owned;
    if (st_parse(f, buf, f->map_len, msg, msglen) == -1) {
        /* torch.save's zip, or its legacy pickle (protocol 2 and up): a .pth/.bin given
           where safetensors are wanted */
        if (f->map_len >= 4 && (memcmp(buf, "PK\3\4", 4) == 0 ||
                                (buf[0] == 0x80 && buf[1] >= 2 && buf[1] <= 5)))
            snprintf(msg, msglen, "a PyTorch checkpoint, not safetensors: convert it with "
                     "ckpt-convert IN OUT.safetensors");
        if (msglen > 0) /* names and dtypes quoted from the header may hold a newline */
            util_msg_oneline(msg);
        st_close(f);
        return -1;
    }
    return 0;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

const char *st_meta(const struct st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

/* IEEE half to float, exact for every input (subnormals, inf, NaN payloads). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    float f;
    if (exp == 0x1f)
        u = sign | 0x7f800000u | man << 13;
    else if (exp != 0)
        u = sign | (exp + 112) << 23 | man << 13;
    else {
        /* subnormal (or zero): man * 2^-24 is exact in float */
        f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    memcpy(&f, &u, 4);
    return f;
}

void st_to_f32(const struct st_tensor *t, float *dst)
{
    const unsigned char *p = t->data;
    size_t n = (size_t)st_numel(t);
    switch (t->dtype) {
    case ST_F32:
        memcpy(dst, p, n * 4);
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &u, 4);
        }
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ST_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ST_U8:
    case ST_BOOL:
        for (size_t i = 0; i < n; i++)
            dst[i] = p[i];
        break;
    }
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

int st_load_entries(const struct st_file *f, const struct st_entry *e, int n, int allow_extra,
                    char *msg, size_t msglen)
{
    for (int i = 0; i < n; i++) {
        const struct st_tensor *t = st_find(f, e[i].name);
        char a[64], b[64];
        if (t == NULL) {
            snprintf(msg, msglen, "missing tensor \"%.80s\"", e[i].name);
            return -1;
        }
        int same = t->ndim == e[i].ndim;
        for (int k = 0; same && k < t->ndim; k++)
            same = t->shape[k] == e[i].shape[k];
        if (!same) {
            fmt_shape(a, sizeof a, t->ndim, t->shape);
            fmt_shape(b, sizeof b, e[i].ndim, e[i].shape);
            snprintf(msg, msglen, "tensor \"%.80s\": shape %s in the file, the model wants %s",
                     e[i].name, a, b);
            return -1;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 &&
            t->dtype != ST_F64) {
            snprintf(msg, msglen, "tensor \"%.80s\": dtype %s, the model wants floats", e[i].name,
                     dtypes[t->dtype].name);
            return -1;
        }
    }
    if (!allow_extra)
        for (int i = 0; i < f->n; i++) {
            int k = 0;
            while (k < n && strcmp(e[k].name, f->t[i].name) != 0)
                k++;
            if (k == n) {
                snprintf(msg, msglen, "unexpected tensor \"%.80s\" in the file", f->t[i].name);
                if (msglen > 0) /* the name comes from the file */
                    util_msg_oneline(msg);
                return -1;
            }
        }
    for (int i = 0; i < n; i++)
        st_to_f32(st_find(f, e[i].name), e[i].ptr);
    return 0;
}

static int cmp_write_order(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a,
                           *y = *(const struct st_tensor *const *)b;
    int rx = dtypes[x->dtype].rank, ry = dtypes[y->dtype].rank;
    if (rx != ry)
        return ry - rx;
    return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* header JSON as the Rust writer lays it out: compact, __metadata__ first, then tensors in data
   order; padded with spaces to a multiple of 8 */
static char *st_header(const struct st_tensor *const *order, int n, const char *const *mk,
                       const char *const *mv, int n_meta, size_t *len)
{
    char *buf = NULL;
    size_t blen = 0;
    FILE *m = open_memstream(&buf, &blen);
    uint64_t off = 0;
    fputc('{', m);
    if (n_meta > 0) {
        /* sort keys through an index so the values follow */
        const char **keys = xmalloc((size_t)n_meta * sizeof *keys);
        memcpy(keys, mk, (size_t)n_meta * sizeof *keys);
        qsort(keys, (size_t)n_meta, sizeof *keys, cmp_str);
        fputs("\"__metadata__\":{", m);
        for (int i = 0; i < n_meta; i++) {
            int k = 0;
            while (mk[k] != keys[i])
                k++;
            json_write_string(m, mk[k]);
            fputc(':', m);
            json_write_string(m, mv[k]);
            fputc(i + 1 < n_meta ? ',' : '}', m);
        }
        free(keys);
        if (n > 0)
            fputc(',', m);
    }
    for (int i = 0; i < n; i++) {
        const struct st_tensor *t = order[i];
        json_write_string(m, t->name);
        fprintf(m, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[t->dtype].name);
        for (int k = 0; k < t->ndim; k++)
            fprintf(m, "%s%lld", k ? "," : "", (long long)t->shape[k]);
        fprintf(m, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                (unsigned long long)(off + t->nbytes));
        off += t->nbytes;
        if (i + 1 < n)
            fputc(',', m);
    }
    fputc('}', m);
    while (ftell(m) % 8 != 0)
        fputc(' ', m);
    fclose(m);
    *len = blen;
    return buf;
}

int st_save_tensors(const char *path, const struct st_tensor *t, int n,
                    const char *const *meta_keys, const char *const *meta_vals, int n_meta,
                    char *msg, size_t msglen)
{
    const struct st_tensor **order = xmalloc(((size_t)n + 1) * sizeof *order);
    struct outfile o;
    unsigned char lenbuf[8];
    size_t hlen;
    for (int i = 0; i < n; i++) {
        order[i] = &t[i];
        if ((size_t)st_numel(&t[i]) * dtypes[t[i].dtype].size != t[i].nbytes) {
            snprintf(msg, msglen, "tensor \"%.80s\": %zu bytes do not match its shape",
                     t[i].name, t[i].nbytes);
            free(order);
            return -1;
        }
    }
    qsort(order, (size_t)n, sizeof *order, cmp_write_order);
    for (int i = 1; i < n; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(order[i]->name, order[k]->name) == 0) {
                snprintf(msg, msglen, "duplicate tensor name \"%.80s\"", order[i]->name);
                free(order);
                return -1;
            }
    for (int i = 1; i < n_meta; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(meta_keys[i], meta_keys[k]) == 0) {
                snprintf(msg, msglen, "duplicate metadata key \"%.80s\"", meta_keys[i]);
                free(order);
                return -1;
            }
    char *hdr = st_header(order, n, meta_keys, meta_vals, n_meta, &hlen);
    if (outfile_open(&o, path, msg, msglen) == -1) {
        free(hdr);
        free(order);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    fwrite(lenbuf, 1, 8, o.f);
    fwrite(hdr, 1, hlen, o.f);
    for (int i = 0; i < n; i++)
        if (order[i]->nbytes > 0)
            fwrite(order[i]->data, 1, order[i]->nbytes, o.f);
    free(hdr);
    free(order);
    return outfile_commit(&o, msg, msglen);
}

int st_save_entries(const char *path, const struct st_entry *e, int n, const char *const *meta_keys,
                    const char *const *meta_vals, int n_meta, char *msg, size_t msglen)
{
    struct st_tensor *t = xcalloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i < n; i++) {
        int bad = e[i].ndim < 0 || e[i].ndim > 4;
        for (int k = 0; !bad && k < e[i].ndim; k++)
            bad = e[i].shape[k] < 0;
        if (bad) {
            snprintf(msg, msglen, "tensor \"%.80s\": bad shape", e[i].name);
            free(t);
            return -1;
        }
        t[i].name = (char *)e[i].name;
        t[i].dtype = ST_F32;
        t[i].ndim = e[i].ndim;
        for (int k = 0; k < e[i].ndim; k++)
            t[i].shape[k] = e[i].shape[k];
        t[i].data = e[i].ptr;
        t[i].nbytes = (size_t)st_numel(&t[i]) * 4;
    }
    int rc = st_save_tensors(path, t, n, meta_keys, meta_vals, n_meta, msg, msglen);
    free(t);
    return rc;
}
