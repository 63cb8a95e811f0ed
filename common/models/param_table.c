/* The parameter name table shared by the models: see param_table.h. */
#include "models/param_table.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void param_table_init(struct param_table *t)
{
    memset(t, 0, sizeof *t);
}

float *param_add(struct param_table *t, const char *leaf, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, int64_t d3)
{
    int64_t d[4] = {d0, d1, d2, d3};
    size_t cnt = 1;
    float *p = t->base != NULL ? t->base + t->off : NULL;
    assert(ndim >= 1 && ndim <= 4);
    for (int i = 0; i < ndim; i++) {
        assert(d[i] > 0);
        cnt *= (size_t)d[i];
    }
    if (t->base != NULL) {
        struct st_entry *e = &t->e[t->at];
        char name[256];
        assert(t->at < t->n);
        snprintf(name, sizeof name, "%s%s", t->prefix, leaf);
        e->name = xstrdup(name);
        e->ndim = ndim;
        for (int i = 0; i < 4; i++)
            e->shape[i] = i < ndim ? d[i] : 0;
        e->ptr = p;
    }
    t->off += cnt;
    t->at++;
    return p;
}

void param_alias(struct param_table *t, const char *leaf)
{
    char name[256];
    assert(t->at > 0);
    if (t->base == NULL)
        return;
    snprintf(name, sizeof name, "%s%s", t->prefix, leaf);
    free(t->alias[t->at - 1]);
    t->alias[t->at - 1] = xstrdup(name);
}

void param_prefix(struct param_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->prefix, sizeof t->prefix, fmt, ap);
    va_end(ap);
}

void param_table_alloc(struct param_table *t)
{
    assert(t->base == NULL && t->at > 0);
    t->n = t->at;
    t->n_floats = t->off;
    t->base = xcalloc_big(t->n_floats, sizeof(float));
    t->e = xcalloc((size_t)t->n, sizeof *t->e);
    t->alias = xcalloc((size_t)t->n, sizeof *t->alias);
    t->at = 0;
    t->off = 0;
    t->prefix[0] = '\0';
}

void param_table_done(struct param_table *t)
{
    assert(t->base != NULL && t->at == t->n && t->off == t->n_floats);
    t->prefix[0] = '\0';
}

void param_table_free(struct param_table *t)
{
    for (int i = 0; t->e != NULL && i < t->n; i++) {
        free((char *)t->e[i].name);
        free(t->alias[i]);
    }
    free(t->e);
    free(t->alias);
    free(t->base);
    memset(t, 0, sizeof *t);
}

size_t param_numel(const struct st_entry *e)
{
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++)
        n *= (size_t)e->shape[d];
    return n;
}

size_t param_offset(const struct param_table *t, int i)
{
    assert(i >= 0 && i < t->n);
    return (size_t)(t->e[i].ptr - t->base);
}

int param_find_ptr(const struct param_table *t, const float *p)
{
    /* entries are in block order: binary search on the start pointers */
    int lo = 0, hi = t->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (t->e[mid].ptr <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    assert(t->e[lo].ptr == p);
    return lo;
}

struct st_entry *param_entries(const struct param_table *t, const float *base,
                               const char *prefix, int alias, char **names)
{
    struct st_entry *e = xmalloc((size_t)t->n * sizeof *e);
    size_t len = 0, at = 0, pl = strlen(prefix);
    for (int i = 0; i < t->n; i++) {
        const char *nm = alias && t->alias[i] != NULL ? t->alias[i] : t->e[i].name;
        len += pl + strlen(nm) + 1;
    }
    *names = xmalloc(len);
    for (int i = 0; i < t->n; i++) {
        const char *nm = alias && t->alias[i] != NULL ? t->alias[i] : t->e[i].name;
        e[i] = t->e[i];
        e[i].name = *names + at;
        at += (size_t)sprintf(*names + at, "%s%s", prefix, nm) + 1;
        e[i].ptr = (float *)base + param_offset(t, i);
    }
    return e;
}

int param_table_load(const struct param_table *t, const struct st_file *f, int allow_extra,
                     char *msg, size_t msglen)
{
    struct st_entry *e = xmalloc((size_t)t->n * sizeof *e);
    int rc;
    memcpy(e, t->e, (size_t)t->n * sizeof *e);
    /* per tensor, its name if the file has it, else its alias if the file has that */
    for (int i = 0; i < t->n; i++)
        if (t->alias[i] != NULL && st_find(f, e[i].name) == NULL &&
            st_find(f, t->alias[i]) != NULL)
            e[i].name = t->alias[i];
    rc = st_load_entries(f, e, t->n, allow_extra, msg, msglen);
    free(e);
    return rc;
}

int param_table_save(const struct param_table *t, int alias, const char *path,
                     const char *const *keys, const char *const *vals, int n_meta, char *msg,
                     size_t msglen)
{
    char *names;
    struct st_entry *e = param_entries(t, t->base, "", alias, &names);
    int rc = st_save_entries(path, e, t->n, keys, vals, n_meta, msg, msglen);
    free(e);
    free(names);
    return rc;
}
