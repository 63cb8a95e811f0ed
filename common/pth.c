/* PyTorch .pth reader: a pickle interpreter for the subset torch.save writes for a state dict,
   then storages from the zip members or the legacy trailing blobs. Nothing in the pickle is
   ever executed: GLOBAL names are matched against a short allow list. */
#include "pth.h"
#include "util.h"
#include "zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PK_MAX_STACK (1 << 20)
#define PK_MAX_MEMO (1 << 20)
#define PK_MAX_DEPTH 16

enum pv_type {
    PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL,
    PV_STORAGE, PV_TENSOR
};

enum pv_global { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };

/* One pickle value. Values live in an arena (struct pk.all) and are freed together, so the
   memo and containers can share them freely. */
struct pv {
    enum pv_type type;
    int64_t i;                 /* INT, BOOL; GLOBAL kind; STORAGE numel */
    double f;
    char *s;                   /* STR (NUL-terminated copy); STORAGE key */
    size_t slen;
    struct pv **items;         /* TUPLE, LIST; DICT: key, value pairs */
    int n, cap;
    enum st_dtype dt;          /* GLOBAL G_STORAGE, STORAGE */
    /* STORAGE: bytes once resolved */
    const unsigned char *data;
    size_t nbytes;
    /* TENSOR */
    struct pv *storage;
    int64_t offset;
    int ndim;
    int64_t size[ST_MAXDIM], stride[ST_MAXDIM];
};

struct pk {
    struct pv **all;
    size_t n_all, cap_all;
    struct pv **stack;
    int sp, cap_stack;
    int *marks;
    int n_marks, cap_marks;
    struct pv **memo;
    size_t cap_memo, n_memo;
    char *msg;
    size_t msglen;
    size_t pos; /* opcode offset, for messages */
};

static int pk_fail(struct pk *k, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    snprintf(k->msg, k->msglen, "pickle: %s", buf);
    return -1;
}

static struct pv *pv_new(struct pk *k, enum pv_type t)
{
    if (k->n_all == k->cap_all) {
        k->cap_all = k->cap_all ? 2 * k->cap_all : 256;
        k->all = xrealloc(k->all, k->cap_all * sizeof *k->all);
    }
    struct pv *v = xcalloc(1, sizeof *v);
    v->type = t;
    k->all[k->n_all++] = v;
    return v;
}

static void pv_append(struct pv *c, struct pv *v)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->items = xrealloc(c->items, (size_t)c->cap * sizeof *c->items);
    }
    c->items[c->n++] = v;
}

static void pk_free(struct pk *k)
{
    for (size_t i = 0; i < k->n_all; i++) {
        free(k->all[i]->s);
        free(k->all[i]->items);
        free(k->all[i]);
    }
    free(k->all);
    free(k->stack);
    free(k->marks);
    free(k->memo);
}

static int push(struct pk *k, struct pv *v)
{
    if (k->sp == PK_MAX_STACK)
        return pk_fail(k, "stack deeper than %d", PK_MAX_STACK);
    if (k->sp == k->cap_stack) {
        k->cap_stack = k->cap_stack ? 2 * k->cap_stack : 64;
        k->stack = xrealloc(k->stack, (size_t)k->cap_stack * sizeof *k->stack);
    }
    k->stack[k->sp++] = v;
    return 0;
}

static struct pv *pop(struct pk *k)
{
    int floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
    if (k->sp <= floor) {
        pk_fail(k, "stack underflow at offset %zu", k->pos);
        return NULL;
    }
    return k->stack[--k->sp];
}

static struct pv *top(struct pk *k)
{
    int floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
    if (k->sp <= floor) {
        pk_fail(k, "stack underflow at offset %zu", k->pos);
        return NULL;
    }
    return k->stack[k->sp - 1];
}

/* pops back to the last MARK; the popped items are k->stack[*from .. k->sp) before the call */
static int pop_mark(struct pk *k, int *from)
{
    if (k->n_marks == 0)
        return pk_fail(k, "no MARK at offset %zu", k->pos);
    *from = k->marks[--k->n_marks];
    return 0;
}

static int memo_put(struct pk *k, uint64_t idx, struct pv *v)
{
    if (idx >= PK_MAX_MEMO)
        return pk_fail(k, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= k->cap_memo) {
        size_t cap = k->cap_memo ? k->cap_memo : 64;
        while (cap <= idx)
            cap *= 2;
        k->memo = xrealloc(k->memo, cap * sizeof *k->memo);
        memset(k->memo + k->cap_memo, 0, (cap - k->cap_memo) * sizeof *k->memo);
        k->cap_memo = cap;
    }
    if (k->memo[idx] == NULL)
        k->n_memo++;
    k->memo[idx] = v;
    return 0;
}

static int memo_get(struct pk *k, uint64_t idx)
{
    if (idx >= k->cap_memo || k->memo[idx] == NULL)
        return pk_fail(k, "memo index %llu not set", (unsigned long long)idx);
    return push(k, k->memo[idx]);
}

static const struct {
    const char *name;
    enum st_dtype dt;
} storages[] = {
    {"FloatStorage", ST_F32}, {"DoubleStorage", ST_F64}, {"HalfStorage", ST_F16},
    {"BFloat16Storage", ST_BF16}, {"LongStorage", ST_I64}, {"IntStorage", ST_I32},
    {"ByteStorage", ST_U8}, {"BoolStorage", ST_BOOL},
};

/* the allow list: anything else is refused before it could be called */
static int pk_global(struct pk *k, const char *mod, size_t ml, const char *name, size_t nl)
{
    struct pv *g;
    char full[160];
    snprintf(full, sizeof full, "%.*s.%.*s", (int)(ml < 64 ? ml : 64), mod,
             (int)(nl < 64 ? nl : 64), name);
    for (size_t i = 0; i < ml + nl; i++) {
        unsigned char c = (unsigned char)(i < ml ? mod[i] : name[i - ml]);
        if (c < 0x20 || c >= 0x7f) {
            full[0] = '\0';
            break;
        }
    }
    g = pv_new(k, PV_GLOBAL);
    if (strcmp(full, "collections.OrderedDict") == 0)
        g->i = G_ODICT;
    else if (strcmp(full, "torch._utils._rebuild_tensor_v2") == 0)
        g->i = G_REBUILD_V2;
    else if (strcmp(full, "torch._utils._rebuild_parameter") == 0)
        g->i = G_REBUILD_PARAM;
    else {
        size_t i = 0, ns = sizeof storages / sizeof storages[0];
        if (strncmp(full, "torch.", 6) == 0)
            while (i < ns && strcmp(full + 6, storages[i].name) != 0)
                i++;
        if (strncmp(full, "torch.", 6) != 0 || i == ns)
            return pk_fail(k, "refusing global %s: not a tensor state dict",
                           full[0] ? full : "(binary name)");
        g->i = G_STORAGE;
        g->dt = storages[i].dt;
    }
    return push(k, g);
}

static int as_int(const struct pv *v, int64_t *out)
{
    if (v == NULL || (v->type != PV_INT && v->type != PV_BOOL))
        return -1;
    *out = v->i;
    return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, meta]) */
static int rebuild_tensor(struct pk *k, const struct pv *args)
{
    if (args->type != PV_TUPLE || args->n < 4 || args->items[0]->type != PV_STORAGE)
        return pk_fail(k, "_rebuild_tensor_v2 with unexpected arguments");
    const struct pv *sz = args->items[2], *st = args->items[3];
    struct pv *t = pv_new(k, PV_TENSOR);
    t->storage = args->items[0];
    if (as_int(args->items[1], &t->offset) == -1 || t->offset < 0 ||
        sz->type != PV_TUPLE || st->type != PV_TUPLE || sz->n != st->n)
        return pk_fail(k, "_rebuild_tensor_v2: bad offset, size or stride");
    if (sz->n > ST_MAXDIM)
        return pk_fail(k, "tensor with %d dims (max %d)", sz->n, ST_MAXDIM);
    t->ndim = sz->n;
    for (int i = 0; i < sz->n; i++)
        if (as_int(sz->items[i], &t->size[i]) == -1 || as_int(st->items[i], &t->stride[i]) == -1 ||
            t->size[i] < 0 || t->stride[i] < 0)
            return pk_fail(k, "_rebuild_tensor_v2: bad size or stride");
    return push(k, t);
}

static int reduce(struct pk *k)
{
    struct pv *args = pop(k), *fn = args ? pop(k) : NULL;
    if (fn == NULL)
        return -1;
    if (fn->type != PV_GLOBAL || args->type != PV_TUPLE)
        return pk_fail(k, "REDUCE of something not callable at offset %zu", k->pos);
    switch (fn->i) {
    case G_ODICT:
        if (args->n != 0)
            return pk_fail(k, "OrderedDict with arguments");
        return push(k, pv_new(k, PV_DICT));
    case G_REBUILD_V2:
        return rebuild_tensor(k, args);
    case G_REBUILD_PARAM:
        if (args->n < 1 || args->items[0]->type != PV_TENSOR)
            return pk_fail(k, "_rebuild_parameter without a tensor");
        return push(k, args->items[0]);
    default:
        return pk_fail(k, "cannot call a storage class");
    }
}

/* BINPERSID: ('storage', cls, key, location, numel[, view_metadata]) */
static int persid(struct pk *k)
{
    struct pv *t = pop(k);
    if (t == NULL)
        return -1;
    if (t->type != PV_TUPLE || t->n < 5 || t->items[0]->type != PV_STR ||
        strcmp(t->items[0]->s, "storage") != 0 || t->items[1]->type != PV_GLOBAL ||
        t->items[1]->i != G_STORAGE)
        return pk_fail(k, "unsupported persistent id");
    struct pv *s = pv_new(k, PV_STORAGE), *key = t->items[2];
    s->dt = t->items[1]->dt;
    if (key->type == PV_STR)
        s->s = xstrdup(key->s);
    else if (key->type == PV_INT) {
        s->s = xmalloc(24);
        snprintf(s->s, 24, "%lld", (long long)key->i);
    } else
        return pk_fail(k, "storage key is not a string");
    if (as_int(t->items[4], &s->i) == -1 || s->i < 0)
        return pk_fail(k, "bad storage size");
    if (t->n > 5 && t->items[5]->type != PV_NONE)
        return pk_fail(k, "storage views (view_metadata) are not supported");
    return push(k, s);
}

static int setitems(struct pk *k, struct pv *d, int from)
{
    if ((k->sp - from) % 2 != 0)
        return pk_fail(k, "odd number of items for SETITEMS");
    if (d->type != PV_DICT)
        return pk_fail(k, "SETITEM(S) on a non-dict");
    for (int i = from; i < k->sp; i += 2) {
        pv_append(d, k->stack[i]);
        pv_append(d, k->stack[i + 1]);
    }
    k->sp = from;
    return 0;
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int push_str(struct pk *k, const unsigned char *p, size_t n)
{
    struct pv *v = pv_new(k, PV_STR);
    v->s = xmalloc(n + 1);
    memcpy(v->s, p, n);
    v->s[n] = '\0';
    v->slen = n;
    return push(k, v);
}

static int push_int(struct pk *k, int64_t i, enum pv_type t)
{
    struct pv *v = pv_new(k, t);
    v->i = i;
    return push(k, v);
}

/* Runs one pickle from buf; *used is its length through STOP, *out the result. */
static int pk_run(struct pk *k, const unsigned char *buf, size_t len, size_t *used,
                  struct pv **out)
{
    size_t p = 0;
    k->sp = 0;
    k->n_marks = 0;
    /* every pickle has its own memo */
    if (k->cap_memo)
        memset(k->memo, 0, k->cap_memo * sizeof *k->memo);
    k->n_memo = 0;
#define NEED(n)                                                                         \
    do {                                                                                \
        if (len - p < (size_t)(n))                                                      \
            return pk_fail(k, "truncated at offset %zu", k->pos);                       \
    } while (0)
    for (;;) {
        int from = 0;
        struct pv *v, *c;
        uint64_t n;
        k->pos = p;
        NEED(1);
        unsigned char op = buf[p++];
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (buf[p] > 5)
                return pk_fail(k, "protocol %d not supported", buf[p]);
            p++;
            break;
        case 0x95: /* FRAME */
            NEED(8);
            p += 8;
            break;
        case '.': /* STOP */
            if ((v = pop(k)) == NULL)
                return -1;
            *out = v;
            *used = p;
            return 0;
        case '(': /* MARK */
            if (k->n_marks == k->cap_marks) {
                if (k->cap_marks >= PK_MAX_STACK)
                    return pk_fail(k, "too many MARKs");
                k->cap_marks = k->cap_marks ? 2 * k->cap_marks : 16;
                k->marks = xrealloc(k->marks, (size_t)k->cap_marks * sizeof *k->marks);
            }
            k->marks[k->n_marks++] = k->sp;
            break;
        case '}': /* EMPTY_DICT */
            if (push(k, pv_new(k, PV_DICT)) == -1)
                return -1;
            break;
        case ')': /* EMPTY_TUPLE */
            if (push(k, pv_new(k, PV_TUPLE)) == -1)
                return -1;
            break;
        case ']': /* EMPTY_LIST */
            if (push(k, pv_new(k, PV_LIST)) == -1)
                return -1;
            break;
        case 't': /* TUPLE */
            if (pop_mark(k, &from) == -1)
                return -1;
            v = pv_new(k, PV_TUPLE);
            for (int i = from; i < k->sp; i++)
                pv_append(v, k->stack[i]);
            k->sp = from;
            if (push(k, v) == -1)
                return -1;
            break;
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            int m = op - 0x84;
            struct pv *it[3];
            for (int i = m - 1; i >= 0; i--)
                if ((it[i] = pop(k)) == NULL)
                    return -1;
            v = pv_new(k, PV_TUPLE);
            for (int i = 0; i < m; i++)
                pv_append(v, it[i]);
            if (push(k, v) == -1)
                return -1;
            break;
        }
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
        case 'B': /* BINBYTES */
            NEED(4);
            n = rd_le(buf + p, 4);
            p += 4;
            NEED(n);
            if (push_str(k, buf + p, (size_t)n) == -1)
                return -1;
            p += n;
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
        case 'C':  /* SHORT_BINBYTES */
            NEED(1);
            n = buf[p++];
            NEED(n);
            if (push_str(k, buf + p, (size_t)n) == -1)
                return -1;
            p += n;
            break;
        case 0x8d: /* BINUNICODE8 */
            NEED(8);
            n = rd_le(buf + p, 8);
            p += 8;
            NEED(n);
            if (push_str(k, buf + p, (size_t)n) == -1)
                return -1;
            p += n;
            break;
        case 'J': /* BININT */
            NEED(4);
            if (push_int(k, (int32_t)(uint32_t)rd_le(buf + p, 4), PV_INT) == -1)
                return -1;
            p += 4;
            break;
        case 'K': /* BININT1 */
            NEED(1);
            if (push_int(k, buf[p++], PV_INT) == -1)
                return -1;
            break;
        case 'M': /* BININT2 */
            NEED(2);
            if (push_int(k, (int64_t)rd_le(buf + p, 2), PV_INT) == -1)
                return -1;
            p += 2;
            break;
        case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
            NEED(1);
            n = buf[p++];
            NEED(n);
            int64_t x = 0;
            if (n > 8) {
                /* only the legacy magic number 0x1950a86a20f9469cfc6c (10 bytes) */
                if (n != 10 || memcmp(buf + p, "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10))
                    return pk_fail(k, "integer of %d bytes", (int)n);
                x = INT64_MAX;
            } else if (n > 0) {
                uint64_t u = rd_le(buf + p, (int)n);
                if (n < 8 && (buf[p + n - 1] & 0x80))
                    u |= ~(uint64_t)0 << (8 * n);
                x = (int64_t)u;
            }
            if (push_int(k, x, PV_INT) == -1)
                return -1;
            p += n;
            break;
        }
        case 'N':
            if (push(k, pv_new(k, PV_NONE)) == -1)
                return -1;
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            if (push_int(k, op == 0x88, PV_BOOL) == -1)
                return -1;
            break;
        case 'G': { /* BINFLOAT, big-endian */
            NEED(8);
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = u << 8 | buf[p + i];
            v = pv_new(k, PV_FLOAT);
            memcpy(&v->f, &u, 8);
            p += 8;
            if (push(k, v) == -1)
                return -1;
            break;
        }
        case 'q': /* BINPUT */
        case 'r': /* LONG_BINPUT */
            NEED(op == 'q' ? 1 : 4);
            n = rd_le(buf + p, op == 'q' ? 1 : 4);
            p += op == 'q' ? 1 : 4;
            if ((v = top(k)) == NULL || memo_put(k, n, v) == -1)
                return -1;
            break;
        case 0x94: /* MEMOIZE */
            /* Python: memo[len(memo)] = top */
            if ((v = top(k)) == NULL || memo_put(k, k->n_memo, v) == -1)
                return -1;
            break;
        case 'h': /* BINGET */
        case 'j': /* LONG_BINGET */
            NEED(op == 'h' ? 1 : 4);
            n = rd_le(buf + p, op == 'h' ? 1 : 4);
            p += op == 'h' ? 1 : 4;
            if (memo_get(k, n) == -1)
                return -1;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const unsigned char *a = buf + p, *e1, *e2;
            e1 = memchr(a, '\n', len - p);
            e2 = e1 ? memchr(e1 + 1, '\n', len - (size_t)(e1 + 1 - buf)) : NULL;
            if (e2 == NULL)
                return pk_fail(k, "truncated GLOBAL at offset %zu", k->pos);
            if (pk_global(k, (const char *)a, (size_t)(e1 - a), (const char *)e1 + 1,
                          (size_t)(e2 - e1 - 1)) == -1)
                return -1;
            p = (size_t)(e2 + 1 - buf);
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            struct pv *nm = pop(k), *md = nm ? pop(k) : NULL;
            if (md == NULL)
                return -1;
            if (md->type != PV_STR || nm->type != PV_STR)
                return pk_fail(k, "STACK_GLOBAL of non-strings");
            if (pk_global(k, md->s, md->slen, nm->s, nm->slen) == -1)
                return -1;
            break;
        }
        case 'R': /* REDUCE */
            if (reduce(k) == -1)
                return -1;
            break;
        case 'b': /* BUILD: state of an OrderedDict (_metadata) is dropped */
            if ((v = pop(k)) == NULL || (c = top(k)) == NULL)
                return -1;
            if (c->type != PV_DICT && c->type != PV_TENSOR)
                return pk_fail(k, "BUILD on an unexpected object");
            break;
        case 's': /* SETITEM */
            if (k->sp - (k->n_marks ? k->marks[k->n_marks - 1] : 0) < 3)
                return pk_fail(k, "stack underflow at offset %zu", k->pos);
            if (setitems(k, k->stack[k->sp - 3], k->sp - 2) == -1)
                return -1;
            break;
        case 'u': /* SETITEMS */
            if (pop_mark(k, &from) == -1)
                return -1;
            if (from == 0 || (k->n_marks && k->marks[k->n_marks - 1] >= from))
                return pk_fail(k, "SETITEMS without a dict");
            if (setitems(k, k->stack[from - 1], from) == -1)
                return -1;
            break;
        case 'a': /* APPEND */
            if ((v = pop(k)) == NULL || (c = top(k)) == NULL)
                return -1;
            if (c->type != PV_LIST)
                return pk_fail(k, "APPEND to a non-list");
            pv_append(c, v);
            break;
        case 'e': /* APPENDS */
            if (pop_mark(k, &from) == -1)
                return -1;
            if (from == 0 || k->stack[from - 1]->type != PV_LIST ||
                (k->n_marks && k->marks[k->n_marks - 1] >= from))
                return pk_fail(k, "APPENDS without a list");
            for (int i = from; i < k->sp; i++)
                pv_append(k->stack[from - 1], k->stack[i]);
            k->sp = from;
            break;
        case 'Q': /* BINPERSID */
            if (persid(k) == -1)
                return -1;
            break;
        default:
            return pk_fail(k, "unsupported opcode 0x%02x at offset %zu", op, k->pos);
        }
    }
#undef NEED
}

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
        return pk_fail(k, "dicts nested deeper than %d", PK_MAX_DEPTH);
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
            return pk_fail(k, "dict key is not a string");
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

/* Copies a strided view of its storage into dst (contiguous), after checking every element
   it touches lies inside the storage. */
static int materialize(const char *name, const struct pv *t, unsigned char *dst, char *msg,
                       size_t msglen)
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
        return 0;
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
    return 0;
}

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

/* refuses checkpoints that would expand past this (a hostile pickle can name one storage
   many times) */
#define PTH_MAX_TOTAL ((size_t)64 << 30)

static int build_file(struct pk *k, struct st_file *f, const struct pv *root)
{
    struct tlist l = {0};
    int rc = -1;
    if (root->type != PV_DICT)
        return pk_fail(k, "the pickled object is not a dict");
    if (collect(k, &l, root, "", 0) == -1)
        goto out;
    /* sorted by name, as a safetensors file lists them; duplicates become neighbours */
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
        total += ((size_t)numel * st_dtype_size(t->storage->dt) + 63) & ~(size_t)63;
        if (total > PTH_MAX_TOTAL) {
            snprintf(k->msg, k->msglen, "tensors add up to more than 64 GiB");
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
        if (t->storage->data == NULL && o->nbytes > 0) {
            snprintf(k->msg, k->msglen, "tensor \"%.80s\": storage %s missing", o->name,
                     t->storage->s);
            goto out;
        }
        if (materialize(o->name, t, (unsigned char *)f->owned + off, k->msg, k->msglen) == -1)
            goto out;
        off += (o->nbytes + 63) & ~(size_t)63;
    }
    rc = 0;
out:
    for (int i = 0; i < l.n; i++)
        free(l.a[i].name);
    free(l.a);
    return rc;
}

/* all storages (reachable or not) referenced by persistent ids, in creation order */
static void each_storage(struct pk *k, struct pv ***out, int *n)
{
    *n = 0;
    *out = xmalloc((k->n_all + 1) * sizeof **out);
    for (size_t i = 0; i < k->n_all; i++)
        if (k->all[i]->type == PV_STORAGE)
            (*out)[(*n)++] = k->all[i];
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
    if (pk_run(k, pkl, pkl_len, &used, &root) == -1) {
        free(root_dir);
        goto out;
    }
    each_storage(k, &ss, &ns);
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
    rc = build_file(k, f, root);
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
    if (pk_run(k, buf, len, &used, &v) == -1)
        return -1;
    if (v->type != PV_INT || v->i != INT64_MAX) {
        snprintf(k->msg, k->msglen, "not a PyTorch checkpoint (bad magic number)");
        return -1;
    }
    p += used;
    if (pk_run(k, buf + p, len - p, &used, &v) == -1)
        return -1;
    if (v->type != PV_INT || v->i != 1001) {
        snprintf(k->msg, k->msglen, "legacy protocol %lld, want 1001", (long long)v->i);
        return -1;
    }
    p += used;
    if (pk_run(k, buf + p, len - p, &used, &v) == -1)
        return -1;
    p += used;
    for (int i = 0; v->type == PV_DICT && i + 1 < v->n; i += 2)
        if (v->items[i]->type == PV_STR && strcmp(v->items[i]->s, "little_endian") == 0 &&
            v->items[i + 1]->type == PV_BOOL && !v->items[i + 1]->i) {
            snprintf(k->msg, k->msglen, "big-endian checkpoint not supported");
            return -1;
        }
    if (pk_run(k, buf + p, len - p, &used, &root) == -1)
        return -1;
    p += used;
    if (pk_run(k, buf + p, len - p, &used, &keys) == -1)
        return -1;
    p += used;
    if (keys->type != PV_LIST) {
        snprintf(k->msg, k->msglen, "storage key list missing");
        return -1;
    }
    each_storage(k, &ss, &ns);
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
        uint64_t numel = rd_le(buf + p, 8);
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
    rc = build_file(k, f, root);
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
    pk_free(&k);
    if (map)
        munmap(map, len);
    else
        free(buf);
    if (rc == -1)
        st_close(f);
    return rc;
}
