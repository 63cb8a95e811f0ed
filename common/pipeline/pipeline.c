/* Over 600 lines: the YAML side is one concern (libyaml events, ${} interpolation, the
   checks of each stage), each part short.

   Pipelines: the YAML side (parsing, ${} interpolation, the checks of each stage), the only
   user of libyaml. pipeline_graph.c checks and orders the stages as a graph and selects
   targets; pipeline_lock.c has the lock file, hashing and outs. */
#include "pipeline/pipeline.h"
#include "pipeline/pipeline_internal.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
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

int pipeline_vfail(char *msg, size_t msglen, const char *path, int line, const char *fmt,
                   va_list ap)
{
    int k = line > 0 ? snprintf(msg, msglen, "%s:%d: ", path, line)
                     : snprintf(msg, msglen, "%s: ", path);
    if (k < 0 || (size_t)k >= msglen)
        return -1;
    vsnprintf(msg + k, msglen - k, fmt, ap);
    return -1;
}

static int fail(struct ctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pipeline_vfail(c->msg, c->msglen, c->path, line, fmt, ap);
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
    return strv_find(p->param_name, p->n_params, name);
}

/* Replaces ${name}, ${item}, ${item.F} and ${key}; "\${" is a literal "${". Records params
   used in c->used. A param whose value is empty leaves no trace: it takes the space after it
   along when it starts the text or follows a space ("${launch} fid" is "fid", as if it were
   not there), and it is not recorded (any value it takes later shows in the text, which
   then changes). So a launcher param, empty by default, changes nothing until it is set.
   NULL (msg) on an undefined name. */
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
            if (val[0] == '\0') {
                s = close + 1;
                if (*s == ' ' && (b.n == 0 || b.s[b.n - 1] == ' '))
                    s++;
                continue;
            }
            if (strv_find(c->used, c->n_used, name) < 0)
                strv_add(&c->used, &c->n_used, name);
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
    strv_free(s->deps, s->n_deps);
    strv_free(s->outs, s->n_outs);
    strv_free(s->params, s->n_params);
    free(s->dep_line);
    free(s->out_line);
    free(s->up);
    free(s->dep_h);
    pipeline_lock_clear(&s->lock);
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
        if (strv_find(*v, *count, p) >= 0) {
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
    strv_free(c->used, c->n_used);
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
                else if (strv_find(c->used, c->n_used, scalar(e)) < 0)
                    strv_add(&c->used, &c->n_used, scalar(e));
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

/* a foreach item: a scalar (${item}) or a mapping (${item.F}) */
static int foreach_item(struct ctx *c, yaml_node_t *e, struct ivars *iv)
{
    if (e->type == YAML_MAPPING_NODE) {
        if (check_mapping(c, e, "a foreach item") == -1)
            return -1;
        iv->imap = e;
    } else if (scalar(e) == NULL) {
        return fail(c, line_of(e), "foreach items must be scalars or mappings");
    }
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
            if (foreach_item(c, e, &iv) == -1)
                return -1;
            snprintf(idx, sizeof idx, "%d", i);
            iv.key = iv.item ? iv.item : idx;
            /* the stage is named by the item as used: real-${n} -> real-100 */
            char *shown = NULL;
            if (iv.item != NULL &&
                (shown = interp(c, iv.item, line_of(e), &(struct ivars){0})) == NULL)
                return -1;
            const char *label = shown != NULL ? shown : iv.key;
            snprintf(name, sizeof name, "%s@%s", group, label);
            if (strchr(label, '\n') != NULL || *label == '\0') {
                fail(c, line_of(e), "bad foreach item '%s'", iv.key);
                free(shown);
                return -1;
            }
            free(shown);
            if (parse_body(c, body, name, group, line_of(e), &iv) == -1)
                return -1;
        }
    } else if (fe->type == YAML_MAPPING_NODE) {
        if (check_mapping(c, fe, "foreach") == -1)
            return -1;
        for (pr = fe->data.mapping.pairs.start; pr < fe->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = node(c, pr->key), *e = node(c, pr->value);
            struct ivars iv = {scalar(e), NULL, scalar(k)};
            if (foreach_item(c, e, &iv) == -1)
                return -1;
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
        strv_add(&p->param_name, &p->n_params, scalar(k));
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

/* libyaml's scanner spends time proportional to the flow nesting ([ and {) on every token, so
   a hostile file of a million '[' took many minutes to refuse; pipelines nest a level or two.
   A first pass over the tokens stops past this depth, while each token is still cheap.
   Returns the line where the nesting got too deep, or 0 (syntax errors are left to the
   parse proper). */
#define PIPE_MAX_FLOW_DEPTH 64
static int flow_too_deep(const unsigned char *buf, size_t len)
{
    yaml_parser_t ps;
    yaml_token_t tok;
    int depth = 0, line = 0, end = 0;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_string(&ps, buf, len);
    while (!end && line == 0 && yaml_parser_scan(&ps, &tok)) {
        if (tok.type == YAML_FLOW_SEQUENCE_START_TOKEN || tok.type == YAML_FLOW_MAPPING_START_TOKEN)
            depth++;
        else if (tok.type == YAML_FLOW_SEQUENCE_END_TOKEN || tok.type == YAML_FLOW_MAPPING_END_TOKEN)
            depth--;
        if (depth > PIPE_MAX_FLOW_DEPTH)
            line = (int)tok.start_mark.line + 1;
        end = tok.type == YAML_STREAM_END_TOKEN;
        yaml_token_delete(&tok);
    }
    yaml_parser_delete(&ps);
    return line;
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
    int deep = flow_too_deep(buf, len);
    if (deep > 0) {
        fail(&c, deep, "bad YAML: [ ] and { } nested deeper than %d levels", PIPE_MAX_FLOW_DEPTH);
        free(buf);
        pipeline_free(p);
        return -1;
    }
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
    strv_free(c.used, c.n_used);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(buf);
    if (rc == 0)
        rc = pipeline_order(p, msg, msglen);
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
    strv_free(p->param_name, p->n_params);
    strv_free(p->param_value, p->n_params);
    free(p->param_line);
    free(p->path);
    memset(p, 0, sizeof *p);
}
