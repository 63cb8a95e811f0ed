/* Pipelines as a graph of stages, after pipeline.c has parsed them: no out made twice or
   nested in another stage's out, each dep linked to the stages making it (or existing on
   disk), no cycles, then a stable dependency order; and selecting targets with what they
   need. */
#include "pipeline/pipeline.h"
#include "pipeline/pipeline_internal.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const struct pipeline *p, char *msg, size_t msglen, int line, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    pipeline_vfail(msg, msglen, p->path, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* a == b, or one is inside the other directory */
static int path_overlap(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
    if (strncmp(a, b, n) != 0)
        return 0;
    return na == nb || (na < nb ? b[n] == '/' : a[n] == '/');
}

static int check_outs(struct pipeline *p, char *msg, size_t msglen)
{
    for (int i = 0; i < p->n_stages; i++)
        for (int a = 0; a < p->stages[i].n_outs; a++)
            for (int j = 0; j <= i; j++)
                for (int b = 0; b < (j == i ? a : p->stages[j].n_outs); b++) {
                    const char *x = p->stages[i].outs[a], *y = p->stages[j].outs[b];
                    if (!path_overlap(x, y))
                        continue;
                    if (strcmp(x, y) == 0)
                        return fail(p, msg, msglen, p->stages[i].out_line[a],
                                    "out '%s' of stage '%s' is also an out of stage '%s'", x,
                                    p->stages[i].name, p->stages[j].name);
                    return fail(p, msg, msglen, p->stages[i].out_line[a],
                                "out '%s' of stage '%s' overlaps out '%s' of stage '%s'", x,
                                p->stages[i].name, y, p->stages[j].name);
                }
    return 0;
}

static int link_deps(struct pipeline *p, char *msg, size_t msglen)
{
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
                        return fail(p, msg, msglen, s->dep_line[d],
                                    "cycle: stage '%s' depends on its own out '%s'", s->name,
                                    p->stages[j].outs[o]);
                    found = 1;
                    for (k = 0; k < s->n_up && s->up[k] != j; k++)
                        ;
                    if (k == s->n_up) {
                        s->up = xrealloc(s->up, (s->n_up + 1) * sizeof *s->up);
                        s->up[s->n_up++] = j;
                    }
                }
            if (!found && !util_exists(s->deps[d]))
                return fail(p, msg, msglen, s->dep_line[d],
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

/* names one cycle among the stages not done: "FILE:LINE: cycle: a needs b needs a"; -1 */
static int cycle_fail(const struct pipeline *p, const char *done, char *msg, size_t msglen)
{
    int n = p->n_stages, *path = xmalloc(n * sizeof *path), len = 0, s;
    char *seen = xcalloc(n, 1), *b;
    size_t bl;
    for (s = 0; s < n && len == 0; s++) {
        memset(seen, 0, n);
        if (!done[s])
            len = find_cycle(p, s, s, seen, path, 0);
    }
    s--;
    bl = strlen(p->stages[s].name) + 1;
    for (int k = 0; k < len; k++)
        bl += strlen(" needs ") + strlen(p->stages[path[k]].name);
    b = xmalloc(bl);
    strcpy(b, p->stages[s].name);
    for (int k = 0; k < len; k++) {
        strcat(b, " needs ");
        strcat(b, p->stages[path[k]].name);
    }
    fail(p, msg, msglen, p->stages[s].line, "cycle: %s", b);
    free(b);
    free(seen);
    free(path);
    return -1;
}

/* stable topological order: repeatedly the first stage (in file order) whose ups are done */
static int order_stages(struct pipeline *p, char *msg, size_t msglen)
{
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
        if (pick < 0) { /* every stage left waits on another */
            cycle_fail(p, done, msg, msglen);
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

int pipeline_order(struct pipeline *p, char *msg, size_t msglen)
{
    if (check_outs(p, msg, msglen) == -1 || link_deps(p, msg, msglen) == -1)
        return -1;
    return order_stages(p, msg, msglen);
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
