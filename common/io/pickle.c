/* The pickle machine of pickle.h: the value arena, the stack with its MARKs, the memo, the
   GLOBAL allow list and the opcodes torch.save's state dicts use (protocols 2 to 5). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "util/util.h"

int pickle_fail(struct pk *k, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    snprintf(k->msg, k->msglen, "pickle: %s", buf);
    return -1;
}

/* Every opcode makes at most a couple of values (~250 bytes each) that live until
   pickle_free, so a dict given one item over and over ("K\x01K\x01s") made 100 bytes of
   memory per input byte; a state dict needs about 25 values per tensor. pickle_run refuses
   to go past this. */
#define PK_MAX_VALUES ((size_t)1 << 21)

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

void pickle_free(struct pk *k)
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
        return pickle_fail(k, "stack deeper than %d", PK_MAX_STACK);
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
        pickle_fail(k, "stack underflow at offset %zu", k->pos);
        return NULL;
    }
    return k->stack[--k->sp];
}

static struct pv *top(struct pk *k)
{
    int floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
    if (k->sp <= floor) {
        pickle_fail(k, "stack underflow at offset %zu", k->pos);
        return NULL;
    }
    return k->stack[k->sp - 1];
}

/* pops back to the last MARK; the popped items are k->stack[*from .. k->sp) before the call */
static int pop_mark(struct pk *k, int *from)
{
    if (k->n_marks == 0)
        return pickle_fail(k, "no MARK at offset %zu", k->pos);
    *from = k->marks[--k->n_marks];
    return 0;
}

static int memo_put(struct pk *k, uint64_t idx, struct pv *v)
{
    if (idx >= PK_MAX_MEMO)
        return pickle_fail(k, "memo index %llu too large", (unsigned long long)idx);
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
        return pickle_fail(k, "memo index %llu not set", (unsigned long long)idx);
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
            return pickle_fail(k, "refusing global %s: not a tensor state dict",
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
        return pickle_fail(k, "_rebuild_tensor_v2 with unexpected arguments");
    const struct pv *sz = args->items[2], *st = args->items[3];
    struct pv *t = pv_new(k, PV_TENSOR);
    t->storage = args->items[0];
    if (as_int(args->items[1], &t->offset) == -1 || t->offset < 0 ||
        sz->type != PV_TUPLE || st->type != PV_TUPLE || sz->n != st->n)
        return pickle_fail(k, "_rebuild_tensor_v2: bad offset, size or stride");
    if (sz->n > ST_MAXDIM)
        return pickle_fail(k, "tensor with %d dims (max %d)", sz->n, ST_MAXDIM);
    t->ndim = sz->n;
    for (int i = 0; i < sz->n; i++)
        if (as_int(sz->items[i], &t->size[i]) == -1 || as_int(st->items[i], &t->stride[i]) == -1 ||
            t->size[i] < 0 || t->stride[i] < 0)
            return pickle_fail(k, "_rebuild_tensor_v2: bad size or stride");
    return push(k, t);
}

static int reduce(struct pk *k)
{
    struct pv *args = pop(k), *fn = args ? pop(k) : NULL;
    if (fn == NULL)
        return -1;
    if (fn->type != PV_GLOBAL || args->type != PV_TUPLE)
        return pickle_fail(k, "REDUCE of something not callable at offset %zu", k->pos);
    switch (fn->i) {
    case G_ODICT:
        if (args->n != 0)
            return pickle_fail(k, "OrderedDict with arguments");
        return push(k, pv_new(k, PV_DICT));
    case G_REBUILD_V2:
        return rebuild_tensor(k, args);
    case G_REBUILD_PARAM:
        if (args->n < 1 || args->items[0]->type != PV_TENSOR)
            return pickle_fail(k, "_rebuild_parameter without a tensor");
        return push(k, args->items[0]);
    default:
        return pickle_fail(k, "cannot call a storage class");
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
        return pickle_fail(k, "unsupported persistent id");
    struct pv *s = pv_new(k, PV_STORAGE), *key = t->items[2];
    s->dt = t->items[1]->dt;
    if (key->type == PV_STR)
        s->s = xstrdup(key->s);
    else if (key->type == PV_INT) {
        s->s = xmalloc(24);
        snprintf(s->s, 24, "%lld", (long long)key->i);
    } else
        return pickle_fail(k, "storage key is not a string");
    if (as_int(t->items[4], &s->i) == -1 || s->i < 0)
        return pickle_fail(k, "bad storage size");
    if (t->n > 5 && t->items[5]->type != PV_NONE)
        return pickle_fail(k, "storage views (view_metadata) are not supported");
    return push(k, s);
}

static int setitems(struct pk *k, struct pv *d, int from)
{
    if ((k->sp - from) % 2 != 0)
        return pickle_fail(k, "odd number of items for SETITEMS");
    if (d->type != PV_DICT)
        return pickle_fail(k, "SETITEM(S) on a non-dict");
    for (int i = from; i < k->sp; i += 2) {
        pv_append(d, k->stack[i]);
        pv_append(d, k->stack[i + 1]);
    }
    k->sp = from;
    return 0;
}

uint64_t pickle_le(const unsigned char *p, int n)
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
int pickle_run(struct pk *k, const unsigned char *buf, size_t len, size_t *used,
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
            return pickle_fail(k, "truncated at offset %zu", k->pos);                       \
    } while (0)
    for (;;) {
        int from = 0;
        struct pv *v, *c;
        uint64_t n;
        k->pos = p;
        if (k->n_all > PK_MAX_VALUES)
            return pickle_fail(k, "more than %zu values", PK_MAX_VALUES);
        NEED(1);
        unsigned char op = buf[p++];
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (buf[p] > 5)
                return pickle_fail(k, "protocol %d not supported", buf[p]);
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
                    return pickle_fail(k, "too many MARKs");
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
        case 'X':  /* BINUNICODE */
        case 'T':  /* BINSTRING */
        case 'B':  /* BINBYTES */
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
        case 'C':  /* SHORT_BINBYTES */
        case 0x8d: { /* BINUNICODE8 */
            /* the length field: 1 byte for the SHORT_ forms, 8 for BINUNICODE8, else 4 */
            int w = op == 0x8c || op == 'U' || op == 'C' ? 1 : op == 0x8d ? 8 : 4;
            NEED(w);
            n = pickle_le(buf + p, w);
            p += (size_t)w;
            NEED(n);
            if (push_str(k, buf + p, (size_t)n) == -1)
                return -1;
            p += n;
            break;
        }
        case 'J': /* BININT */
            NEED(4);
            if (push_int(k, (int32_t)(uint32_t)pickle_le(buf + p, 4), PV_INT) == -1)
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
            if (push_int(k, (int64_t)pickle_le(buf + p, 2), PV_INT) == -1)
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
                    return pickle_fail(k, "integer of %d bytes", (int)n);
                x = INT64_MAX;
            } else if (n > 0) {
                uint64_t u = pickle_le(buf + p, (int)n);
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
            n = pickle_le(buf + p, op == 'q' ? 1 : 4);
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
            n = pickle_le(buf + p, op == 'h' ? 1 : 4);
            p += op == 'h' ? 1 : 4;
            if (memo_get(k, n) == -1)
                return -1;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const unsigned char *a = buf + p, *e1, *e2;
            e1 = memchr(a, '\n', len - p);
            e2 = e1 ? memchr(e1 + 1, '\n', len - (size_t)(e1 + 1 - buf)) : NULL;
            if (e2 == NULL)
                return pickle_fail(k, "truncated GLOBAL at offset %zu", k->pos);
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
                return pickle_fail(k, "STACK_GLOBAL of non-strings");
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
                return pickle_fail(k, "BUILD on an unexpected object");
            break;
        case 's': /* SETITEM */
            if (k->sp - (k->n_marks ? k->marks[k->n_marks - 1] : 0) < 3)
                return pickle_fail(k, "stack underflow at offset %zu", k->pos);
            if (setitems(k, k->stack[k->sp - 3], k->sp - 2) == -1)
                return -1;
            break;
        case 'u': /* SETITEMS */
            if (pop_mark(k, &from) == -1)
                return -1;
            if (from == 0 || (k->n_marks && k->marks[k->n_marks - 1] >= from))
                return pickle_fail(k, "SETITEMS without a dict");
            if (setitems(k, k->stack[from - 1], from) == -1)
                return -1;
            break;
        case 'a': /* APPEND */
            if ((v = pop(k)) == NULL || (c = top(k)) == NULL)
                return -1;
            if (c->type != PV_LIST)
                return pickle_fail(k, "APPEND to a non-list");
            pv_append(c, v);
            break;
        case 'e': /* APPENDS */
            if (pop_mark(k, &from) == -1)
                return -1;
            if (from == 0 || k->stack[from - 1]->type != PV_LIST ||
                (k->n_marks && k->marks[k->n_marks - 1] >= from))
                return pickle_fail(k, "APPENDS without a list");
            for (int i = from; i < k->sp; i++)
                pv_append(k->stack[from - 1], k->stack[i]);
            k->sp = from;
            break;
        case 'Q': /* BINPERSID */
            if (persid(k) == -1)
                return -1;
            break;
        default:
            return pickle_fail(k, "unsupported opcode 0x%02x at offset %zu", op, k->pos);
        }
    }
#undef NEED
}

/* all storages (reachable or not) referenced by persistent ids, in creation order */
void pickle_storages(struct pk *k, struct pv ***out, int *n)
{
    *n = 0;
    *out = xmalloc((k->n_all + 1) * sizeof **out);
    for (size_t i = 0; i < k->n_all; i++)
        if (k->all[i]->type == PV_STORAGE)
            (*out)[(*n)++] = k->all[i];
}
