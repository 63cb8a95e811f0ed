#define _XOPEN_SOURCE 700 /* nftw */
#include "pipeline.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* ---- XXH64 ------------------------------------------------------------------------------ */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

struct xxh {
    uint64_t v[4], total, seed;
    unsigned char buf[32];
    size_t nbuf;
};

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t rd32(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static uint64_t xxh_round(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    return rotl(acc, 31) * P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * P1 + P4;
}

static void xxh_init(struct xxh *s, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

static void xxh_stripe(struct xxh *s, const unsigned char *p)
{
    for (int i = 0; i < 4; i++)
        s->v[i] = xxh_round(s->v[i], rd64(p + 8 * i));
}

static void xxh_update(struct xxh *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->total += len;
    if (s->nbuf + len < 32) {
        memcpy(s->buf + s->nbuf, p, len);
        s->nbuf += len;
        return;
    }
    if (s->nbuf > 0) {
        size_t k = 32 - s->nbuf;
        memcpy(s->buf + s->nbuf, p, k);
        xxh_stripe(s, s->buf);
        p += k;
        len -= k;
        s->nbuf = 0;
    }
    for (; len >= 32; p += 32, len -= 32)
        xxh_stripe(s, p);
    memcpy(s->buf, p, len);
    s->nbuf = len;
}

static uint64_t xxh_digest(const struct xxh *s)
{
    uint64_t h;
    const unsigned char *p = s->buf, *end = s->buf + s->nbuf;
    if (s->total >= 32) {
        h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
        for (int i = 0; i < 4; i++)
            h = xxh_merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    for (; p + 8 <= end; p += 8) {
        h ^= xxh_round(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
    }
    if (p + 4 <= end) {
        h ^= rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= *p * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t pipe_hash(const void *buf, size_t len, uint64_t seed)
{
    struct xxh s;
    xxh_init(&s, seed);
    xxh_update(&s, buf, len);
    return xxh_digest(&s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* a directory hashes its sorted (name, kind, content hash) records with seed 1 */
static int hash_dir(const char *path, uint64_t *h, char *msg, size_t msglen)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct xxh s;
    if (d == NULL) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    xxh_init(&s, 1);
    for (int i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(path) + strlen(names[i]) + 2;
        char *child = xmalloc(len);
        uint64_t ch;
        unsigned char le[8];
        snprintf(child, len, "%s/%s", path, names[i]);
        rc = pipe_hash_path(child, &ch, msg, msglen);
        free(child);
        if (rc == 1) { /* vanished while we looked: not part of the content */
            rc = 0;
            continue;
        }
        for (int k = 0; k < 8; k++)
            le[k] = ch >> (8 * k);
        xxh_update(&s, names[i], strlen(names[i]) + 1);
        xxh_update(&s, le, 8);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    *h = xxh_digest(&s);
    return rc;
}

int pipe_hash_path(const char *path, uint64_t *h, char *msg, size_t msglen)
{
    struct stat st;
    static unsigned char buf[1 << 20];
    struct xxh s;
    FILE *f;
    size_t k;
    if (stat(path, &st) == -1) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 1;
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return hash_dir(path, h, msg, msglen);
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, msglen, "%s: not a regular file or directory", path);
        return -1;
    }
    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        return -1;
    }
    xxh_init(&s, 0);
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        xxh_update(&s, buf, k);
    if (ferror(f)) {
        snprintf(msg, msglen, "%s: read error", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    *h = xxh_digest(&s);
    return 0;
}

/* ---- growable strings and string lists -------------------------------------------------- */

struct sb {
    char *s;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void list_add(char ***v, int *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

static void list_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int list_find(char **v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return i;
    return -1;
}

/* ---- YAML to stages ----------------------------------------------------------------------- */

struct ctx {
    const char *path;
    yaml_document_t *doc;
    struct pipeline *p;
    char *msg;
    size_t msglen;
    char **used; /* params named by the stage being built */
    int n_used;
};

/* what ${item}, ${item.F} and ${key} mean inside one foreach item */
struct ivars {
    const char *item;   /* scalar item, or NULL */
    yaml_node_t *imap;  /* mapping item, or NULL */
    const char *key;    /* NULL outside foreach */
};

static int fail(struct ctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    int k = line > 0 ? snprintf(c->msg, c->msglen, "%s:%d: ", c->path, line)
                     : snprintf(c->msg, c->msglen, "%s: ", c->path);
    if (k < 0 || (size_t)k >= c->msglen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(c->msg + k, c->msglen - k, fmt, ap);
    va_end(ap);
    return -1;
}

static int line_of(yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static yaml_node_t *node(struct ctx *c, int i) { return yaml_document_get_node(c->doc, i); }

static const char *scalar(yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_null(yaml_node_t *n)
{
    const char *s = scalar(n);
    if (s == NULL || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *kind(yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list"
                                                                                      : "a scalar";
}

/* a mapping's keys must be scalars and unique */
static int check_mapping(struct ctx *c, yaml_node_t *m, const char *what)
{
    yaml_node_pair_t *a, *b;
    if (m->type != YAML_MAPPING_NODE)
        return fail(c, line_of(m), "%s must be a mapping, not %s", what, kind(m));
    for (a = m->data.mapping.pairs.start; a < m->data.mapping.pairs.top; a++) {
        yaml_node_t *k = node(c, a->key);
        if (scalar(k) == NULL)
            return fail(c, line_of(k), "keys in %s must be scalars", what);
        for (b = m->data.mapping.pairs.start; b < a; b++)
            if (strcmp(scalar(node(c, b->key)), scalar(k)) == 0)
                return fail(c, line_of(k), "duplicate key '%s' in %s", scalar(k), what);
    }
    return 0;
}

static int valid_name(const char *s, int ident)
{
    if (*s == '\0' || (ident && isdigit((unsigned char)*s)))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && (ident || (*s != '-' && *s != '.')))
            return 0;
    return 1;
}

static int param_index(const struct pipeline *p, const char *name)
{
    return list_find(p->param_name, p->n_params, name);
}

/* Replaces ${name}, ${item}, ${item.F} and ${key}; "\${" is a literal "${". Records params
   used in c->used. NULL (msg) on an undefined name. */
static char *interp(struct ctx *c, const char *s, int line, const struct ivars *iv)
{
    struct sb b = {0};
    sb_add(&b, "", 0);
    while (*s) {
        const char *open = strstr(s, "${"), *close, *val = NULL;
        char name[128];
        size_t n;
        if (open == NULL) {
            sb_add(&b, s, strlen(s));
            break;
        }
        if (open > s && open[-1] == '\\') {
            sb_add(&b, s, open - 1 - s);
            sb_add(&b, "${", 2);
            s = open + 2;
            continue;
        }
        sb_add(&b, s, open - s);
        if ((close = strchr(open + 2, '}')) == NULL) {
            fail(c, line, "unterminated '${' in '%s'", open);
            goto bad;
        }
        n = close - open - 2;
        if (n == 0 || n >= sizeof name) {
            fail(c, line, "bad '${...}' in '%.*s'", (int)(close - open + 1), open);
            goto bad;
        }
        memcpy(name, open + 2, n);
        name[n] = '\0';
        if (strcmp(name, "item") == 0 && iv->item != NULL) {
            val = iv->item;
        } else if (strcmp(name, "key") == 0 && iv->key != NULL) {
            val = iv->key;
        } else if (strncmp(name, "item.", 5) == 0 && iv->imap != NULL) {
            yaml_node_pair_t *pr;
            for (pr = iv->imap->data.mapping.pairs.start; pr < iv->imap->data.mapping.pairs.top;
                 pr++)
                if (strcmp(scalar(node(c, pr->key)), name + 5) == 0)
                    val = scalar(node(c, pr->value));
            if (val == NULL) {
                fail(c, line, "foreach item has no scalar field '%s'", name + 5);
                goto bad;
            }
        } else {
            int k = param_index(c->p, name);
            if (k < 0) {
                if (strcmp(name, "item") == 0 || strcmp(name, "key") == 0 ||
                    strncmp(name, "item.", 5) == 0)
                    fail(c, line, "'${%s}' outside foreach", name);
                else
                    fail(c, line, "undefined param '%s'", name);
                goto bad;
            }
            val = c->p->param_value[k];
            if (list_find(c->used, c->n_used, name) < 0)
                list_add(&c->used, &c->n_used, name);
        }
        if (iv->item != NULL || iv->imap != NULL || iv->key != NULL) {
            /* foreach values may name params themselves: one more pass, without items */
            char *sub = interp(c, val, line, &(struct ivars){0});
            if (sub == NULL)
                goto bad;
            sb_add(&b, sub, strlen(sub));
            free(sub);
        } else {
            sb_add(&b, val, strlen(val));
        }
        s = close + 1;
    }
    return b.s;
bad:
    free(b.s);
    return NULL;
}

/* "./a//b/" -> "a/b"; NULL when nothing is left */
static char *norm_path(const char *s)
{
    struct sb b = {0};
    int abs = *s == '/';
    sb_add(&b, abs ? "/" : "", abs);
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > 0 && !(n == 1 && s[0] == '.')) {
            if (b.n > 0 && b.s[b.n - 1] != '/')
                sb_add(&b, "/", 1);
            sb_add(&b, s, n);
        }
        s += n;
        while (*s == '/')
            s++;
    }
    if (b.n == 0 || (abs && b.n == 1)) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static int has_dotdot(const char *s)
{
    for (const char *p = s; (p = strstr(p, "..")) != NULL; p += 2)
        if ((p == s || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return 1;
    return 0;
}

static void stage_free(struct pipe_stage *s)
{
    free(s->name);
    free(s->group);
    free(s->cmd);
    list_free(s->deps, s->n_deps);
    list_free(s->outs, s->n_outs);
    list_free(s->params, s->n_params);
    free(s->dep_line);
    free(s->out_line);
    free(s->up);
    free(s->dep_h);
    list_free(s->lock.deps, s->lock.n_deps);
    list_free(s->lock.outs, s->lock.n_outs);
    list_free(s->lock.params, s->lock.n_params);
    free(s->lock.dep_h);
    free(s->lock.out_h);
    free(s->lock.param_h);
    memset(s, 0, sizeof *s);
}

/* deps or outs: a list of path scalars (or null) */
static int parse_paths(struct ctx *c, yaml_node_t *n, const struct ivars *iv, const char *what,
                       char ***v, int **lines, int *count)
{
    yaml_node_item_t *it;
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, line_of(n), "'%s' must be a list of paths, not %s", what, kind(n));
    for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node(c, *it);
        char *s, *p;
        if (scalar(e) == NULL)
            return fail(c, line_of(e), "'%s' must be a list of paths, not of %s", what, kind(e));
        if ((s = interp(c, scalar(e), line_of(e), iv)) == NULL)
            return -1;
        p = norm_path(s);
        if (p == NULL || strchr(p, '\n') != NULL ||
            (strcmp(what, "outs") == 0 && has_dotdot(p))) {
            fail(c, line_of(e), "bad path '%s' in %s", s, what);
            free(s);
            free(p);
            return -1;
        }
        free(s);
        if (list_find(*v, *count, p) >= 0) {
            fail(c, line_of(e), "'%s' is listed twice in %s", p, what);
            free(p);
            return -1;
        }
        *lines = xrealloc(*lines, (*count + 1) * sizeof **lines);
        (*lines)[*count] = line_of(e);
        *v = xrealloc(*v, (*count + 1) * sizeof **v);
        (*v)[(*count)++] = p;
    }
    return 0;
}

static int parse_cmd(struct ctx *c, yaml_node_t *n, const struct ivars *iv, char **cmd)
{
    struct sb b = {0};
    yaml_node_item_t *it;
    if (scalar(n) != NULL && !is_null(n)) {
        *cmd = interp(c, scalar(n), line_of(n), iv);
        return *cmd ? 0 : -1;
    }
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.start == n->data.sequence.items.top)
        return fail(c, line_of(n), "'cmd' must be a command or a list of commands");
    /* a list runs in order and stops at the first failure, like DVC's */
    for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node(c, *it);
        char *s;
        if (scalar(e) == NULL) {
            free(b.s);
            return fail(c, line_of(e), "'cmd' must be a command or a list of commands");
        }
        if ((s = interp(c, scalar(e), line_of(e), iv)) == NULL) {
            free(b.s);
            return -1;
        }
        if (b.n > 0)
            sb_add(&b, " && ", 4);
        sb_add(&b, "{ ", 2);
        sb_add(&b, s, strlen(s));
        sb_add(&b, "\n}", 2);
        free(s);
    }
    *cmd = b.s;
    return 0;
}

/* one stage body (a stage's mapping, or a foreach's do:) into a new stage */
static int parse_body(struct ctx *c, yaml_node_t *m, const char *name, const char *group,
                      int line, const struct ivars *iv)
{
    struct pipe_stage s = {0};
    yaml_node_pair_t *pr;
    int have_cmd = 0;
    if (check_mapping(c, m, "a stage") == -1)
        return -1;
    list_free(c->used, c->n_used);
    c->used = NULL;
    c->n_used = 0;
    s.name = xstrdup(name);
    s.group = xstrdup(group);
    s.line = line;
    for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *key = scalar(k);
        int rc = 0;
        if (strcmp(key, "cmd") == 0) {
            rc = parse_cmd(c, v, iv, &s.cmd);
            have_cmd = 1;
        } else if (strcmp(key, "deps") == 0) {
            rc = parse_paths(c, v, iv, "deps", &s.deps, &s.dep_line, &s.n_deps);
        } else if (strcmp(key, "outs") == 0) {
            rc = parse_paths(c, v, iv, "outs", &s.outs, &s.out_line, &s.n_outs);
        } else if (strcmp(key, "params") == 0) {
            yaml_node_item_t *it;
            if (!is_null(v) && v->type != YAML_SEQUENCE_NODE)
                rc = fail(c, line_of(v), "'params' must be a list of param names");
            for (it = v->data.sequence.items.start;
                 rc == 0 && v->type == YAML_SEQUENCE_NODE && it < v->data.sequence.items.top;
                 it++) {
                yaml_node_t *e = node(c, *it);
                if (scalar(e) == NULL || param_index(c->p, scalar(e)) < 0)
                    rc = scalar(e) ? fail(c, line_of(e), "undefined param '%s'", scalar(e))
                                   : fail(c, line_of(e), "'params' must be a list of names");
                else if (list_find(c->used, c->n_used, scalar(e)) < 0)
                    list_add(&c->used, &c->n_used, scalar(e));
            }
        } else if (strcmp(key, "always_changed") == 0 || strcmp(key, "persist") == 0) {
            const char *b = scalar(v);
            int *flag = key[0] == 'a' ? &s.always : &s.persist;
            if (b && strcmp(b, "true") == 0)
                *flag = 1;
            else if (b == NULL || strcmp(b, "false") != 0)
                rc = fail(c, line_of(v), "'%s' must be true or false", key);
        } else if (strcmp(key, "desc") != 0) {
            rc = fail(c, line_of(k), "unknown key '%s' in stage '%s'", key, group);
        }
        if (rc == -1) {
            stage_free(&s);
            return -1;
        }
    }
    if (!have_cmd) {
        stage_free(&s);
        return fail(c, line, "stage '%s' has no 'cmd'", group);
    }
    s.params = c->used;
    s.n_params = c->n_used;
    c->used = NULL;
    c->n_used = 0;
    if (s.n_params > 1)
        qsort(s.params, s.n_params, sizeof *s.params, cmp_str);
    if (pipeline_find(c->p, s.name) >= 0) {
        fail(c, line, "two stages are called '%s'", s.name);
        stage_free(&s);
        return -1;
    }
    c->p->stages = xrealloc(c->p->stages, (c->p->n_stages + 1) * sizeof *c->p->stages);
    c->p->stages[c->p->n_stages++] = s;
    return 0;
}

static int parse_foreach(struct ctx *c, yaml_node_t *m, const char *group, int line)
{
    yaml_node_t *fe = NULL, *body = NULL;
    yaml_node_pair_t *pr;
    char name[512], idx[32];
    for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        const char *key = scalar(node(c, pr->key));
        if (strcmp(key, "foreach") == 0)
            fe = node(c, pr->value);
        else if (strcmp(key, "do") == 0)
            body = node(c, pr->value);
        else
            return fail(c, line_of(node(c, pr->key)),
                        "unknown key '%s' in foreach stage '%s' (put it under 'do')", key, group);
    }
    if (body == NULL)
        return fail(c, line, "foreach stage '%s' has no 'do'", group);
    if (fe->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *it;
        int i = 0;
        for (it = fe->data.sequence.items.start; it < fe->data.sequence.items.top; it++, i++) {
            yaml_node_t *e = node(c, *it);
            struct ivars iv = {scalar(e), NULL, NULL};
            if (e->type == YAML_MAPPING_NODE) {
                if (check_mapping(c, e, "a foreach item") == -1)
                    return -1;
                iv.imap = e;
            } else if (scalar(e) == NULL) {
                return fail(c, line_of(e), "foreach items must be scalars or mappings");
            }
            snprintf(idx, sizeof idx, "%d", i);
            iv.key = iv.item ? iv.item : idx;
            snprintf(name, sizeof name, "%s@%s", group, iv.key);
            if (strchr(iv.key, '\n') != NULL || *iv.key == '\0')
                return fail(c, line_of(e), "bad foreach item '%s'", iv.key);
            if (parse_body(c, body, name, group, line_of(e), &iv) == -1)
                return -1;
        }
    } else if (fe->type == YAML_MAPPING_NODE) {
        if (check_mapping(c, fe, "foreach") == -1)
            return -1;
        for (pr = fe->data.mapping.pairs.start; pr < fe->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node(c, pr->key), *e = node(c, pr->value);
            struct ivars iv = {scalar(e), NULL, scalar(k)};
            if (e->type == YAML_MAPPING_NODE) {
                if (check_mapping(c, e, "a foreach item") == -1)
                    return -1;
                iv.imap = e;
            } else if (scalar(e) == NULL) {
                return fail(c, line_of(e), "foreach items must be scalars or mappings");
            }
            if (!valid_name(iv.key, 0))
                return fail(c, line_of(k), "bad foreach key '%s'", iv.key);
            snprintf(name, sizeof name, "%s@%s", group, iv.key);
            if (parse_body(c, body, name, group, line_of(k), &iv) == -1)
                return -1;
        }
    } else {
        return fail(c, line_of(fe), "'foreach' must be a list or a mapping");
    }
    return 0;
}

static int parse_params(struct ctx *c, yaml_node_t *m)
{
    yaml_node_pair_t *pr;
    struct pipeline *p = c->p;
    if (is_null(m))
        return 0;
    if (check_mapping(c, m, "'params'") == -1)
        return -1;
    for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        if (!valid_name(scalar(k), 1))
            return fail(c, line_of(k), "bad param name '%s'", scalar(k));
        if (strcmp(scalar(k), "item") == 0 || strcmp(scalar(k), "key") == 0)
            return fail(c, line_of(k), "'%s' is reserved for foreach", scalar(k));
        if (scalar(v) == NULL)
            return fail(c, line_of(v), "param '%s' must be a scalar, not %s", scalar(k),
                        kind(v));
        list_add(&p->param_name, &p->n_params, scalar(k));
        p->param_value = xrealloc(p->param_value, p->n_params * sizeof *p->param_value);
        p->param_value[p->n_params - 1] = xstrdup(is_null(v) ? "" : scalar(v));
        p->param_line = xrealloc(p->param_line, p->n_params * sizeof *p->param_line);
        p->param_line[p->n_params - 1] = line_of(k);
    }
    return 0;
}

static int apply_overrides(struct ctx *c, int n_over, char **over)
{
    for (int i = 0; i < n_over; i++) {
        const char *eq = strchr(over[i], '=');
        char name[128];
        int k;
        if (eq == NULL || eq == over[i] || (size_t)(eq - over[i]) >= sizeof name)
            return fail(c, 0, "-P %s: want NAME=VALUE", over[i]);
        memcpy(name, over[i], eq - over[i]);
        name[eq - over[i]] = '\0';
        if ((k = param_index(c->p, name)) < 0)
            return fail(c, 0, "-P %s: no param '%s' in the pipeline", over[i], name);
        free(c->p->param_value[k]);
        c->p->param_value[k] = xstrdup(eq + 1);
    }
    return 0;
}

static int parse_doc(struct ctx *c, int n_over, char **over)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc), *stages = NULL;
    yaml_node_pair_t *pr;
    if (root == NULL)
        return fail(c, 0, "empty pipeline: want a mapping with 'stages'");
    if (check_mapping(c, root, "the pipeline") == -1)
        return -1;
    for (pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key);
        if (strcmp(scalar(k), "params") == 0) {
            if (parse_params(c, node(c, pr->value)) == -1)
                return -1;
        } else if (strcmp(scalar(k), "stages") == 0) {
            stages = node(c, pr->value);
        } else {
            return fail(c, line_of(k), "unknown key '%s' (want 'params' or 'stages')",
                        scalar(k));
        }
    }
    if (apply_overrides(c, n_over, over) == -1)
        return -1;
    if (stages == NULL)
        return fail(c, 0, "no 'stages'");
    if (check_mapping(c, stages, "'stages'") == -1)
        return -1;
    for (pr = stages->data.mapping.pairs.start; pr < stages->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
        const char *name = scalar(k);
        int rc;
        if (!valid_name(name, 0))
            return fail(c, line_of(k), "bad stage name '%s' (letters, digits, _ - .)", name);
        if (check_mapping(c, v, "a stage") == -1)
            return -1;
        rc = 0;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++)
            if (strcmp(scalar(node(c, q->key)), "foreach") == 0)
                rc = 1;
        if ((rc ? parse_foreach(c, v, name, line_of(k))
                : parse_body(c, v, name, name, line_of(k), &(struct ivars){0})) == -1)
            return -1;
    }
    if (c->p->n_stages == 0)
        return fail(c, line_of(stages), "no stages");
    return 0;
}

/* ---- graph checks ------------------------------------------------------------------------ */

/* a == b, or one is inside the other directory */
static int path_overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
    if (strncmp(a, b, n) != 0)
        return 0;
    return na == nb || (na < nb ? b[n] == '/' : a[n] == '/');
}

static int check_outs(struct ctx *c)
{
    struct pipeline *p = c->p;
    for (int i = 0; i < p->n_stages; i++)
        for (int a = 0; a < p->stages[i].n_outs; a++)
            for (int j = 0; j <= i; j++)
                for (int b = 0; b < (j == i ? a : p->stages[j].n_outs); b++) {
                    const char *x = p->stages[i].outs[a], *y = p->stages[j].outs[b];
                    if (!path_overlap(x, y))
                        continue;
                    if (strcmp(x, y) == 0)
                        return fail(c, p->stages[i].out_line[a],
                                    "out '%s' of stage '%s' is also an out of stage '%s'", x,
                                    p->stages[i].name, p->stages[j].name);
                    return fail(c, p->stages[i].out_line[a],
                                "out '%s' of stage '%s' overlaps out '%s' of stage '%s'", x,
                                p->stages[i].name, y, p->stages[j].name);
                }
    return 0;
}

static int link_deps(struct ctx *c)
{
    struct pipeline *p = c->p;
    for (int i = 0; i < p->n_stages; i++) {
        struct pipe_stage *s = &p->stages[i];
        for (int d = 0; d < s->n_deps; d++) {
            int found = 0;
            for (int j = 0; j < p->n_stages; j++)
                for (int o = 0; o < p->stages[j].n_outs; o++) {
                    int k;
                    if (!path_overlap(s->deps[d], p->stages[j].outs[o]))
                        continue;
                    if (j == i)
                        return fail(c, s->dep_line[d], "cycle: stage '%s' depends on its own out '%s'",
                                    s->name, p->stages[j].outs[o]);
                    found = 1;
                    for (k = 0; k < s->n_up && s->up[k] != j; k++)
                        ;
                    if (k == s->n_up) {
                        s->up = xrealloc(s->up, (s->n_up + 1) * sizeof *s->up);
                        s->up[s->n_up++] = j;
                    }
                }
            if (!found && !util_exists(s->deps[d]))
                return fail(c, s->dep_line[d],
                            "dep '%s' of stage '%s' does not exist and no stage makes it",
                            s->deps[d], s->name);
        }
    }
    return 0;
}

/* depth-first search from stage i for a path back to start; path[] gets the stages after i */
static int find_cycle(const struct pipeline *p, int i, int start, char *seen, int *path, int depth)
{
    if (seen[i])
        return 0;
    seen[i] = 1;
    for (int k = 0; k < p->stages[i].n_up; k++) {
        int j = p->stages[i].up[k], n;
        path[depth] = j;
        if (j == start)
            return depth + 1;
        if ((n = find_cycle(p, j, start, seen, path, depth + 1)) > 0)
            return n;
    }
    return 0;
}

/* stable topological order: repeatedly the first stage (in file order) whose ups are done */
static int order_stages(struct ctx *c)
{
    struct pipeline *p = c->p;
    int n = p->n_stages, *pos = xmalloc(n * sizeof *pos), *ord = xmalloc(n * sizeof *ord);
    char *done = xcalloc(n, 1);
    struct pipe_stage *sorted;
    for (int m = 0; m < n; m++) {
        int pick = -1;
        for (int i = 0; i < n && pick < 0; i++) {
            int k;
            if (done[i])
                continue;
            for (k = 0; k < p->stages[i].n_up && done[p->stages[i].up[k]]; k++)
                ;
            if (k == p->stages[i].n_up)
                pick = i;
        }
        if (pick < 0) { /* every stage left waits on another: name one cycle */
            struct sb b = {0};
            char *seen = xcalloc(n, 1);
            int *path = xmalloc(n * sizeof *path), len = 0, s;
            for (s = 0; s < n && len == 0; s++) {
                memset(seen, 0, n);
                if (!done[s])
                    len = find_cycle(p, s, s, seen, path, 0);
            }
            s--;
            sb_add(&b, p->stages[s].name, strlen(p->stages[s].name));
            for (int k = 0; k < len; k++) {
                sb_add(&b, " needs ", 7);
                sb_add(&b, p->stages[path[k]].name, strlen(p->stages[path[k]].name));
            }
            fail(c, p->stages[s].line, "cycle: %s", b.s ? b.s : "?");
            free(b.s);
            free(seen);
            free(path);
            free(pos);
            free(ord);
            free(done);
            return -1;
        }
        done[pick] = 1;
        ord[m] = pick;
        pos[pick] = m;
    }
    sorted = xmalloc(n * sizeof *sorted);
    for (int m = 0; m < n; m++) {
        sorted[m] = p->stages[ord[m]];
        for (int k = 0; k < sorted[m].n_up; k++)
            sorted[m].up[k] = pos[sorted[m].up[k]];
    }
    free(p->stages);
    p->stages = sorted;
    free(pos);
    free(ord);
    free(done);
    return 0;
}

int pipeline_load(struct pipeline *p, const char *path, int n_over, char **over, char *msg,
                  size_t msglen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    unsigned char *buf;
    size_t len;
    char m2[256];
    struct ctx c = {path, &doc, p, msg, msglen, NULL, 0};
    int rc;
    memset(p, 0, sizeof *p);
    if (util_read_file(path, &buf, &len, m2, sizeof m2) == -1) {
        snprintf(msg, msglen, "%s: %s", path, m2);
        return -1;
    }
    p->path = xstrdup(path);
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int line = (int)parser.problem_mark.line + 1;
        char ctx[128] = "";
        if (parser.context != NULL)
            snprintf(ctx, sizeof ctx, " %s at line %d", parser.context,
                     (int)parser.context_mark.line + 1);
        fail(&c, line, "bad YAML: %s%s", parser.problem ? parser.problem : "syntax error", ctx);
        yaml_parser_delete(&parser);
        free(buf);
        pipeline_free(p);
        return -1;
    }
    rc = parse_doc(&c, n_over, over);
    if (rc == 0) {
        /* a second document is a mistake, not something to ignore */
        yaml_document_t d2;
        if (!yaml_parser_load(&parser, &d2)) {
            rc = fail(&c, (int)parser.problem_mark.line + 1, "bad YAML: %s",
                      parser.problem ? parser.problem : "syntax error");
        } else {
            if (yaml_document_get_root_node(&d2) != NULL)
                rc = fail(&c, (int)d2.start_mark.line + 1, "more than one YAML document");
            yaml_document_delete(&d2);
        }
    }
    list_free(c.used, c.n_used);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(buf);
    if (rc == 0)
        rc = check_outs(&c);
    if (rc == 0)
        rc = link_deps(&c);
    if (rc == 0)
        rc = order_stages(&c);
    if (rc == -1) {
        pipeline_free(p);
        return -1;
    }
    return 0;
}

void pipeline_free(struct pipeline *p)
{
    for (int i = 0; i < p->n_stages; i++)
        stage_free(&p->stages[i]);
    free(p->stages);
    list_free(p->param_name, p->n_params);
    list_free(p->param_value, p->n_params);
    free(p->param_line);
    free(p->path);
    memset(p, 0, sizeof *p);
}

int pipeline_find(const struct pipeline *p, const char *name)
{
    for (int i = 0; i < p->n_stages; i++)
        if (strcmp(p->stages[i].name, name) == 0)
            return i;
    return -1;
}

int pipeline_select(const struct pipeline *p, int n_targets, char **targets, char *sel,
                    char *msg, size_t msglen)
{
    memset(sel, n_targets == 0, p->n_stages);
    for (int t = 0; t < n_targets; t++) {
        int found = 0;
        for (int i = 0; i < p->n_stages; i++)
            if (strcmp(p->stages[i].name, targets[t]) == 0 ||
                strcmp(p->stages[i].group, targets[t]) == 0)
                sel[i] = found = 1;
        if (!found) {
            snprintf(msg, msglen, "%s: no stage '%s'", p->path, targets[t]);
            return -1;
        }
    }
    /* stages are in dependency order: walking backwards closes over the ups */
    for (int i = p->n_stages - 1; i >= 0; i--)
        if (sel[i])
            for (int k = 0; k < p->stages[i].n_up; k++)
                sel[p->stages[i].up[k]] = 1;
    return 0;
}

/* ---- lock file --------------------------------------------------------------------------- */

char *pipeline_lock_path(const char *yaml_path)
{
    const char *base = strrchr(yaml_path, '/');
    size_t n;
    char *s;
    base = base ? base + 1 : yaml_path;
    n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
        n -= 4;
    s = xmalloc(n + 12);
    snprintf(s, n + 12, ".pipe/%.*s.lock", (int)n, base);
    return s;
}

static void lock_clear(struct pipe_lock *l)
{
    list_free(l->deps, l->n_deps);
    list_free(l->outs, l->n_outs);
    list_free(l->params, l->n_params);
    free(l->dep_h);
    free(l->out_h);
    free(l->param_h);
    memset(l, 0, sizeof *l);
}

static void lock_add(char ***v, uint64_t **h, int *n, const char *name, uint64_t hash)
{
    *h = xrealloc(*h, (*n + 1) * sizeof **h);
    (*h)[*n] = hash;
    list_add(v, n, name);
}

/* Lock format, one record per line, a stage's records between "stage NAME" and "end":
   "cmd HEX", "param HEX NAME", "dep HEX PATH", "out HEX PATH". Names and paths run to the end
   of the line. */
int pipeline_lock_read(struct pipeline *p, const char *lockpath, char *msg, size_t msglen)
{
    FILE *f = fopen(lockpath, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, cur = -2; /* -2: outside a stage, -1: a stage no longer in the file */
    struct pipe_lock junk = {0}, *l = NULL;
    for (int i = 0; i < p->n_stages; i++)
        lock_clear(&p->stages[i].lock);
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(msg, msglen, "%s: %s", lockpath, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        char word[16], *rest;
        unsigned long long h = 0;
        int off = 0;
        lineno++;
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (lineno == 1) {
            if (strcmp(line, "pipe-lock 1") != 0)
                goto bad;
            continue;
        }
        if (sscanf(line, "%15s %n", word, &off) != 1)
            goto bad;
        rest = line + off;
        if (strcmp(word, "stage") == 0 && cur == -2) {
            cur = pipeline_find(p, rest);
            l = cur >= 0 ? &p->stages[cur].lock : &junk;
            lock_clear(l);
            l->present = 1;
            continue;
        }
        if (cur == -2)
            goto bad;
        if (strcmp(word, "end") == 0) {
            cur = -2;
            lock_clear(&junk);
            continue;
        }
        if (sscanf(rest, "%16llx%n", &h, &off) != 1 || (rest[off] != ' ' && rest[off] != '\0'))
            goto bad;
        rest += off + (rest[off] == ' ');
        if (strcmp(word, "cmd") == 0)
            l->cmd = h;
        else if (strcmp(word, "param") == 0)
            lock_add(&l->params, &l->param_h, &l->n_params, rest, h);
        else if (strcmp(word, "dep") == 0)
            lock_add(&l->deps, &l->dep_h, &l->n_deps, rest, h);
        else if (strcmp(word, "out") == 0)
            lock_add(&l->outs, &l->out_h, &l->n_outs, rest, h);
        else
            goto bad;
    }
    free(line);
    fclose(f);
    lock_clear(&junk);
    if (cur != -2 || lineno == 0) {
        snprintf(msg, msglen, "%s: truncated lock file (delete it to run every stage again)",
                 lockpath);
        return -1;
    }
    return 0;
bad:
    snprintf(msg, msglen, "%s:%d: malformed lock file (delete it to run every stage again)",
             lockpath, lineno);
    free(line);
    fclose(f);
    lock_clear(&junk);
    for (int i = 0; i < p->n_stages; i++)
        lock_clear(&p->stages[i].lock);
    return -1;
}

int pipeline_lock_write(const struct pipeline *p, const char *lockpath, char *msg,
                        size_t msglen)
{
    struct outfile o;
    char *dir = xstrdup(lockpath), *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (util_mkdirs(dir, msg, msglen) == -1) {
            free(dir);
            return -1;
        }
    }
    free(dir);
    if (outfile_open(&o, lockpath, msg, msglen) == -1)
        return -1;
    fprintf(o.f, "pipe-lock 1\n");
    for (int i = 0; i < p->n_stages; i++) {
        const struct pipe_lock *l = &p->stages[i].lock;
        if (!l->present)
            continue;
        fprintf(o.f, "stage %s\ncmd %016llx\n", p->stages[i].name, (unsigned long long)l->cmd);
        for (int k = 0; k < l->n_params; k++)
            fprintf(o.f, "param %016llx %s\n", (unsigned long long)l->param_h[k], l->params[k]);
        for (int k = 0; k < l->n_deps; k++)
            fprintf(o.f, "dep %016llx %s\n", (unsigned long long)l->dep_h[k], l->deps[k]);
        for (int k = 0; k < l->n_outs; k++)
            fprintf(o.f, "out %016llx %s\n", (unsigned long long)l->out_h[k], l->outs[k]);
        fprintf(o.f, "end\n");
    }
    return outfile_commit(&o, msg, msglen);
}

static uint64_t param_hash(const struct pipeline *p, const char *name)
{
    const char *v = p->param_value[param_index(p, name)];
    return pipe_hash(v, strlen(v), 0);
}

int pipeline_lock_update(struct pipeline *p, int i, char *msg, size_t msglen)
{
    struct pipe_stage *s = &p->stages[i];
    struct pipe_lock l = {0};
    l.present = 1;
    l.cmd = pipe_hash(s->cmd, strlen(s->cmd), 0);
    for (int k = 0; k < s->n_params; k++)
        lock_add(&l.params, &l.param_h, &l.n_params, s->params[k], param_hash(p, s->params[k]));
    for (int k = 0; k < s->n_deps; k++)
        lock_add(&l.deps, &l.dep_h, &l.n_deps, s->deps[k], s->dep_h ? s->dep_h[k] : 0);
    for (int k = 0; k < s->n_outs; k++) {
        uint64_t h = 0;
        int rc = pipe_hash_path(s->outs[k], &h, msg, msglen);
        if (rc == 1)
            snprintf(msg, msglen, "stage '%s' did not make its out '%s'", s->name, s->outs[k]);
        if (rc != 0) {
            lock_clear(&l);
            return -1;
        }
        lock_add(&l.outs, &l.out_h, &l.n_outs, s->outs[k], h);
    }
    lock_clear(&s->lock);
    s->lock = l;
    return 0;
}

static int lock_index(char **v, int n, const char *s) { return list_find(v, n, s); }

int pipeline_stale(struct pipeline *p, int i, char *why, size_t whylen)
{
    struct pipe_stage *s = &p->stages[i];
    const struct pipe_lock *l = &s->lock;
    int stale = 0, missing = -1;
    char msg[256];
    free(s->dep_h);
    s->dep_h = xcalloc(s->n_deps ? s->n_deps : 1, sizeof *s->dep_h);
#define STALE(...) do { if (!stale) snprintf(why, whylen, __VA_ARGS__); stale = 1; } while (0)
    /* all deps are hashed even when the answer is known: the lock needs them after the run */
    for (int k = 0; k < s->n_deps; k++) {
        int rc = pipe_hash_path(s->deps[k], &s->dep_h[k], msg, sizeof msg);
        if (rc == -1) {
            snprintf(why, whylen, "%s", msg);
            return -1;
        }
        if (rc == 1) {
            s->dep_h[k] = 0;
            if (missing < 0)
                missing = k;
        }
    }
    if (s->always)
        STALE("always_changed");
    if (!l->present)
        STALE("never run");
    if (missing >= 0)
        STALE("dep %s missing", s->deps[missing]);
    for (int k = 0; k < s->n_params && !stale; k++) {
        int j = lock_index(l->params, l->n_params, s->params[k]);
        if (j < 0)
            STALE("param %s added", s->params[k]);
        else if (l->param_h[j] != param_hash(p, s->params[k]))
            STALE("param %s changed", s->params[k]);
    }
    if (!stale && l->cmd != pipe_hash(s->cmd, strlen(s->cmd), 0))
        STALE("command changed");
    for (int k = 0; k < s->n_deps && !stale; k++) {
        int j = lock_index(l->deps, l->n_deps, s->deps[k]);
        if (j < 0)
            STALE("dep %s added", s->deps[k]);
        else if (l->dep_h[j] != s->dep_h[k])
            STALE("dep %s changed", s->deps[k]);
    }
    for (int k = 0; k < l->n_deps && !stale; k++)
        if (list_find(s->deps, s->n_deps, l->deps[k]) < 0)
            STALE("dep %s removed", l->deps[k]);
    for (int k = 0; k < s->n_outs && !stale; k++) {
        int j = lock_index(l->outs, l->n_outs, s->outs[k]), rc;
        uint64_t h = 0;
        if (j < 0) {
            STALE("out %s added", s->outs[k]);
            break;
        }
        rc = pipe_hash_path(s->outs[k], &h, msg, sizeof msg);
        if (rc == -1) {
            snprintf(why, whylen, "%s", msg);
            return -1;
        }
        if (rc == 1)
            STALE("out %s missing", s->outs[k]);
        else if (h != l->out_h[j])
            STALE("out %s changed", s->outs[k]);
    }
    for (int k = 0; k < l->n_outs && !stale; k++)
        if (list_find(s->outs, s->n_outs, l->outs[k]) < 0)
            STALE("out %s removed", l->outs[k]);
    for (int k = 0; k < l->n_params && !stale; k++)
        if (list_find(s->params, s->n_params, l->params[k]) < 0)
            STALE("param %s removed", l->params[k]);
#undef STALE
    if (!stale && whylen > 0)
        why[0] = '\0';
    return stale;
}

/* ---- outs -------------------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

int pipeline_remove_outs(const struct pipeline *p, int i, char *msg, size_t msglen)
{
    const struct pipe_stage *s = &p->stages[i];
    for (int k = 0; k < s->n_outs; k++) {
        struct stat st;
        const char *o = s->outs[k];
        if (lstat(o, &st) == -1)
            continue;
        if (S_ISDIR(st.st_mode) ? nftw(o, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1
                                : (unlink(o) == -1 && errno != ENOENT)) {
            snprintf(msg, msglen, "%s: cannot remove: %s", o, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int pipeline_make_out_dirs(const struct pipeline *p, int i, char *msg, size_t msglen)
{
    const struct pipe_stage *s = &p->stages[i];
    for (int k = 0; k < s->n_outs; k++) {
        char *d = xstrdup(s->outs[k]), *slash = strrchr(d, '/');
        int rc = 0;
        if (slash != NULL && slash != d) {
            *slash = '\0';
            rc = util_mkdirs(d, msg, msglen);
        }
        free(d);
        if (rc == -1)
            return -1;
    }
    return 0;
}
