/* PyTorch .pth reader: the storages' bytes from the zip members (torch >= 1.6) or the legacy
   trailing blobs, and the pickled state dict (run by pickle.c) turned into an st_file of
   contiguous tensors. */
#include "io/pickle.h"
#include "io/pth.h"
#include "util/util.h"
#include "io/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- from the object tree to an st_file ---- */

struct named {
    char *name;
    struct pv *t;
};

struct tlist {
    struct named *a;
    int n, cap;
};

static int collect(struct pk *k, struct tlist *l, const struct pv *d, const char *prefix,
                   int depth)
{
    if (depth > PK_MAX_DEPTH)
        return pickle_fail(k, "dicts nested deeper than %d", PK_MAX_DEPTH);
    for (int i = 0; i + 1 < d->n; i += 2) {
        const struct pv *key = d->items[i];
        struct pv *val = d->items[i + 1];
        if (val->type != PV_TENSOR && val->type != PV_DICT)
            continue; /* step counters, hyper-parameters, ... */
        char kbuf[24];
        const char *ks = kbuf;
        if (key->type == PV_INT)
            snprintf(kbuf, sizeof kbuf, "%lld", (long long)key->i); /* optimizer state */
        else if (key->type == PV_STR && strlen(key->s) == key->slen)
            ks = key->s;
        else
            return pickle_fail(k, "dict key is not a string");
        size_t nl = strlen(prefix) + strlen(ks) + 2;
        char *name = xmalloc(nl);
        snprintf(name, nl, "%s%s%s", prefix, prefix[0] ? "." : "", ks);
        if (val->type == PV_DICT) {
            int rc = collect(k, l, val, name, depth + 1);
            free(name);
            if (rc == -1)
                return -1;
            continue;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 64;
            l->a = xrealloc(l->a, (size_t)l->cap * sizeof *l->a);
        }
        l->a[l->n].name = name;
        l->a[l->n++].t = val;
    }
    return 0;
}

/* Checks that every element a strided view touches lies inside its storage. */
static int check_view(const char *name, const struct pv *t, char *msg, size_t msglen)
{
    const struct pv *s = t->storage;
    size_t es = st_dtype_size(s->dt);
    int64_t numel = 1, last = t->offset;
    for (int i = 0; i < t->ndim; i++)
        numel *= t->size[i];
    if (numel == 0)
        return 0;
    /* last element touched; sizes and strides are >= 0, offsets < storage size < 2^62 */
    if ((uint64_t)s->i > s->nbytes / es) {
        snprintf(msg, msglen, "tensor \"%.80s\": storage %.40s has %zu bytes, not %lld elements",
                 name, s->s, s->nbytes, (long long)s->i);
        return -1;
    }
    int bad = last >= s->i;
    for (int i = 0; !bad && i < t->ndim; i++) {
        if (t->stride[i] != 0 && t->size[i] - 1 > (s->i - 1 - last) / t->stride[i])
            bad = 1;
        else
            last += (t->size[i] - 1) * t->stride[i];
    }
    if (bad) {
        snprintf(msg, msglen, "tensor \"%.80s\": view past the end of its storage (%lld elements)",
                 name, (long long)s->i);
        return -1;
    }
    return 0;
}

/* Copies a strided view (checked by check_view) of its storage into dst, contiguous. */
static void materialize(const struct pv *t, unsigned char *dst)
{
    const struct pv *s = t->storage;
    size_t es = st_dtype_size(s->dt);
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        numel *= t->size[i];
    if (numel == 0)
        return;
    const unsigned char *src = s->data;
    int64_t idx[ST_MAXDIM] = {0}, expect = 1;
    int contiguous = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->size[i] != 1 && t->stride[i] != expect)
            contiguous = 0;
        expect *= t->size[i];
    }
    if (contiguous) {
        memcpy(dst, src + (size_t)t->offset * es, (size_t)numel * es);
        return;
    }
    /* innermost dimension in a loop, the outer ones by an odometer */
    int nd = t->ndim;
    int64_t inner = nd ? t->size[nd - 1] : 1, istride = nd ? t->stride[nd - 1] : 0;
    for (int64_t done = 0; done < numel; done += inner) {
        int64_t base = t->offset;
        for (int i = 0; i < nd - 1; i++)
            base += idx[i] * t->stride[i];
        for (int64_t j = 0; j < inner; j++)
            memcpy(dst + (size_t)(done + j) * es, src + (size_t)(base + j * istride) * es, es);
        for (int i = nd - 2; i >= 0; i--) {
            if (++idx[i] < t->size[i])
                break;
            idx[i] = 0;
        }
    }
}

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

/* Tensors are copied out contiguous; views sharing a storage (tied weights) or broadcasting
   it (stride 0) can make that more than the file holds, but a hostile pickle can name one
   small storage with a huge stride-0 size: refuse anything past the file's length plus this. */
#define PTH_MAX_EXPAND ((size_t)1 << 30)

/* len: the checkpoint's size in bytes */
static int build_file(struct pk *k, struct st_file *f, const struct pv *root, size_t len)
{
    struct tlist l = {0};
    int rc = -1;
    if (root->type != PV_DICT)
        return pickle_fail(k, "the pickled object is not a dict");
    if (collect(k, &l, root, "", 0) == -1)
        goto out;
    /* sorted by name, as a safetensors file lists them; duplicates become neighbours */
    if (l.n > 1) /* qsort(NULL, 0) is undefined */
        qsort(l.a, (size_t)l.n, sizeof *l.a, cmp_named);
    for (int i = 1; i < l.n; i++)
        if (strcmp(l.a[i].name, l.a[i - 1].name) == 0) {
            snprintf(k->msg, k->msglen, "duplicate tensor name \"%.80s\"", l.a[i].name);
            goto out;
        }
    size_t total = 0;
    for (int i = 0; i < l.n; i++) {
        const struct pv *t = l.a[i].t;
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->size[d] != 0 && numel > ((uint64_t)1 << 40) / (uint64_t)t->size[d]) {
                snprintf(k->msg, k->msglen, "tensor \"%.80s\": too large", l.a[i].name);
                goto out;
            }
            numel *= (uint64_t)t->size[d];
        }
        /* views are checked before the allocation they size */
        if (t->storage->data == NULL && numel > 0) {
            snprintf(k->msg, k->msglen, "tensor \"%.80s\": storage %s missing", l.a[i].name,
                     t->storage->s);
            goto out;
        }
        if (check_view(l.a[i].name, t, k->msg, k->msglen) == -1)
            goto out;
        total += ((size_t)numel * st_dtype_size(t->storage->dt) + 63) & ~(size_t)63;
        if (total > len + PTH_MAX_EXPAND) {
            snprintf(k->msg, k->msglen, "tensors add up to more than the file's %zu bytes + 1 GiB",
                     len);
            goto out;
        }
    }
    f->owned = malloc(total ? total : 1);
    if (f->owned == NULL) {
        snprintf(k->msg, k->msglen, "out of memory for %zu bytes of tensors", total);
        goto out;
    }
    f->t = xcalloc((size_t)l.n + 1, sizeof *f->t);
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        const struct pv *t = l.a[i].t;
        struct st_tensor *o = &f->t[i];
        o->name = l.a[i].name;
        l.a[i].name = NULL;
        f->n++;
        o->dtype = t->storage->dt;
        o->ndim = t->ndim;
        memcpy(o->shape, t->size, sizeof o->shape);
        o->nbytes = (size_t)st_numel(o) * st_dtype_size(o->dtype);
        o->data = (unsigned char *)f->owned + off;
        materialize(t, (unsigned char *)f->owned + off);
        off += (o->nbytes + 63) & ~(size_t)63;
    }
    rc = 0;
out:
    for (int i = 0; i < l.n; i++)
        free(l.a[i].name);
    free(l.a);
    return rc;
}

static int load_zip(struct pk *k, struct st_file *f, const unsigned char *buf, size_t len)
{
    struct zip z;
    char zmsg[128];
    unsigned char *pkl = NULL;
    size_t pkl_len, used;
    struct pv *root, **ss = NULL;
    int rc = -1, ns = 0, ip = -1;
    if (zip_open(&z, buf, len, zmsg, sizeof zmsg) == -1) {
        snprintf(k->msg, k->msglen, "%s", zmsg);
        return -1;
    }
    for (int i = 0; i < z.n; i++) {
        const char *sl = strchr(z.e[i].name, '/');
        if (sl && strcmp(sl + 1, "data.pkl") == 0)
            ip = i;
    }
    if (ip < 0) {
        snprintf(k->msg, k->msglen, "zip without <archive>/data.pkl: not a PyTorch checkpoint");
        goto out;
    }
    size_t rl = (size_t)(strchr(z.e[ip].name, '/') - z.e[ip].name) + 1;
    char *root_dir = xmalloc(rl + 1);
    memcpy(root_dir, z.e[ip].name, rl);
    root_dir[rl] = '\0';
    {
        char bo[300];
        snprintf(bo, sizeof bo, "%sbyteorder", root_dir);
        int ib = zip_find(&z, bo);
        const unsigned char *b = ib >= 0 ? zip_data(&z, ib) : NULL;
        if (b != NULL && z.e[ib].usize == 3 && memcmp(b, "big", 3) == 0) {
            snprintf(k->msg, k->msglen, "big-endian checkpoint not supported");
            free(root_dir);
            goto out;
        }
    }
    if (zip_extract(&z, ip, &pkl, &pkl_len, zmsg, sizeof zmsg) == -1) {
        snprintf(k->msg, k->msglen, "%s", zmsg);
        free(root_dir);
        goto out;
    }
    if (pickle_run(k, pkl, pkl_len, &used, &root) == -1) {
        free(root_dir);
        goto out;
    }
    pickle_storages(k, &ss, &ns);
    for (int i = 0; i < ns; i++) {
        char *name = xmalloc(rl + strlen(ss[i]->s) + 8);
        sprintf(name, "%sdata/%s", root_dir, ss[i]->s);
        int ie = zip_find(&z, name);
        free(name);
        if (ie < 0) {
            snprintf(k->msg, k->msglen, "storage data/%.60s missing from the archive", ss[i]->s);
            free(root_dir);
            goto out;
        }
        const unsigned char *d = zip_data(&z, ie);
        if (d == NULL) {
            snprintf(k->msg, k->msglen, "storage data/%.60s is compressed", ss[i]->s);
            free(root_dir);
            goto out;
        }
        /* zip_data skips the CRC; check it here so a damaged weight file is noticed */
        uint64_t left = z.e[ie].usize;
        const unsigned char *q = d;
        uLong crc = crc32(0L, Z_NULL, 0);
        while (left > 0) {
            uInt c = left > (1u << 30) ? (1u << 30) : (uInt)left;
            crc = crc32(crc, q, c);
            q += c;
            left -= c;
        }
        if ((uint32_t)crc != z.e[ie].crc) {
            snprintf(k->msg, k->msglen, "storage data/%.60s: CRC mismatch", ss[i]->s);
            free(root_dir);
            goto out;
        }
        ss[i]->data = d;
        ss[i]->nbytes = (size_t)z.e[ie].usize;
    }
    free(root_dir);
    rc = build_file(k, f, root, len);
out:
    free(ss);
    free(pkl);
    zip_close(&z);
    return rc;
}

/* legacy: magic, protocol, sys_info, object, storage keys pickles, then per key in that
   order: int64 numel and the raw bytes */
static int load_legacy(struct pk *k, struct st_file *f, const unsigned char *buf, size_t len)
{
    size_t p = 0, used;
    struct pv *v, *root, *keys, **ss = NULL;
    int ns = 0, rc = -1;
    if (pickle_run(k, buf, len, &used, &v) == -1)
        return -1;
    if (v->type != PV_INT || v->i != INT64_MAX) {
        snprintf(k->msg, k->msglen, "not a PyTorch checkpoint (bad magic number)");
        return -1;
    }
    p += used;
    if (pickle_run(k, buf + p, len - p, &used, &v) == -1)
        return -1;
    if (v->type != PV_INT || v->i != 1001) {
        snprintf(k->msg, k->msglen, "legacy protocol %lld, want 1001", (long long)v->i);
        return -1;
    }
    p += used;
    if (pickle_run(k, buf + p, len - p, &used, &v) == -1)
        return -1;
    p += used;
    for (int i = 0; v->type == PV_DICT && i + 1 < v->n; i += 2)
        if (v->items[i]->type == PV_STR && strcmp(v->items[i]->s, "little_endian") == 0 &&
            v->items[i + 1]->type == PV_BOOL && !v->items[i + 1]->i) {
            snprintf(k->msg, k->msglen, "big-endian checkpoint not supported");
            return -1;
        }
    if (pickle_run(k, buf + p, len - p, &used, &root) == -1)
        return -1;
    p += used;
    if (pickle_run(k, buf + p, len - p, &used, &keys) == -1)
        return -1;
    p += used;
    if (keys->type != PV_LIST) {
        snprintf(k->msg, k->msglen, "storage key list missing");
        return -1;
    }
    pickle_storages(k, &ss, &ns);
    for (int i = 0; i < keys->n; i++) {
        const struct pv *key = keys->items[i];
        if (key->type != PV_STR) {
            snprintf(k->msg, k->msglen, "storage key is not a string");
            goto out;
        }
        if (len - p < 8) {
            snprintf(k->msg, k->msglen, "truncated: storage %.60s missing", key->s);
            goto out;
        }
        uint64_t numel = pickle_le(buf + p, 8);
        p += 8;
        struct pv *s = NULL;
        for (int j = 0; j < ns; j++)
            if (strcmp(ss[j]->s, key->s) == 0) {
                s = ss[j];
                if (s->data != NULL) {
                    snprintf(k->msg, k->msglen, "storage %.60s stored twice", key->s);
                    goto out;
                }
                /* several persistent ids may name one storage */
                for (int m = j + 1; m < ns; m++)
                    if (strcmp(ss[m]->s, key->s) == 0 && ss[m]->dt != s->dt) {
                        snprintf(k->msg, k->msglen, "storage %.60s with two dtypes", key->s);
                        goto out;
                    }
                break;
            }
        if (s == NULL) {
            snprintf(k->msg, k->msglen, "storage %.60s not referenced", key->s);
            goto out;
        }
        size_t es = st_dtype_size(s->dt);
        if (numel > (len - p) / es) {
            snprintf(k->msg, k->msglen, "truncated: storage %.60s wants %llu bytes, %zu left",
                     key->s, (unsigned long long)(numel * es), len - p);
            goto out;
        }
        for (int j = 0; j < ns; j++)
            if (strcmp(ss[j]->s, key->s) == 0) {
                ss[j]->data = buf + p;
                ss[j]->nbytes = (size_t)numel * es;
            }
        p += (size_t)numel * es;
    }
    rc = build_file(k, f, root, len);
out:
    free(ss);
    return rc;
}

int pth_open(struct st_file *f, const char *path, char *msg, size_t msglen)
{
    struct pk k = {0};
    struct stat sb;
    unsigned char *buf = NULL;
    void *map = NULL;
    size_t len = 0;
    int fd, rc;
    memset(f, 0, sizeof *f);
    k.msg = msg;
    k.msglen = msglen;
    fd = strcmp(path, "-") == 0 ? -1 : open(path, O_RDONLY);
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED) {
            snprintf(msg, msglen, "mmap: %s", strerror(errno));
            return -1;
        }
        len = (size_t)sb.st_size;
        buf = map;
    } else {
        if (fd >= 0)
            close(fd);
        if (util_read_file(path, &buf, &len, msg, msglen) == -1)
            return -1;
    }
    if (len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0)
        rc = load_zip(&k, f, buf, len);
    else if (len >= 2 && buf[0] == 0x80 && buf[1] <= 5)
        rc = load_legacy(&k, f, buf, len);
    else {
        snprintf(msg, msglen, "not a PyTorch checkpoint (neither zip nor pickle)");
        rc = -1;
    }
    pickle_free(&k);
    /* messages quote names and storage keys from the pickle: keep them one line */
    if (rc == -1 && msglen > 0)
        util_msg_oneline(msg);
    if (map)
        munmap(map, len);
    else
        free(buf);
    if (rc == -1)
        st_close(f);
    return rc;
}
