/* The lock file, content hashes (XXH64) and outs: the half of the pipeline module that looks
   at files. pipeline.c parses and checks the YAML. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "pipeline/pipeline.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- small string lists (as in pipeline.c) ---------------------------------------------- */


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

void pipeline_lock_clear(struct pipe_lock *l)
{
    strv_free(l->deps, l->n_deps);
    strv_free(l->outs, l->n_outs);
    strv_free(l->params, l->n_params);
    free(l->dep_h);
    free(l->out_h);
    free(l->param_h);
    memset(l, 0, sizeof *l);
}

static void lock_add(char ***v, uint64_t **h, int *n, const char *name, uint64_t hash)
{
    *h = xrealloc(*h, (*n + 1) * sizeof **h);
    (*h)[*n] = hash;
    strv_add(v, n, name);
}

/* Lock format, one record per line, a stage's records between "stage NAME" and "end":
   "cmd HEX", "param HEX NAME", "dep HEX PATH", "out HEX PATH". Names and paths run to the end
   of the line. */
int pipeline_run_lock(const char *lockpath, char *msg, size_t msglen)
{
    char *path = xmalloc(strlen(lockpath) + 5), *dir = xstrdup(lockpath), *slash;
    char pid[32] = "";
    int fd = -1;
    sprintf(path, "%s.run", lockpath);
    if ((slash = strrchr(dir, '/')) != NULL) {
        *slash = '\0';
        if (util_mkdirs(dir, msg, msglen) == -1)
            goto out;
    }
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        int e = errno;
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(msg, msglen, "another 'pipe run' of this pipeline is running%s%s%s",
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        else
            snprintf(msg, msglen, "%s: %s", path, strerror(e));
        close(fd);
        fd = -1;
        goto out;
    }
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, strlen(pid), 0) != (ssize_t)strlen(pid)) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        close(fd);
        fd = -1;
    }
out:
    free(path);
    free(dir);
    return fd;
}

int pipeline_lock_read(struct pipeline *p, const char *lockpath, char *msg, size_t msglen)
{
    FILE *f = fopen(lockpath, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, cur = -2; /* -2: outside a stage, -1: a stage no longer in the file */
    struct pipe_lock junk = {0}, *l = NULL;
    for (int i = 0; i < p->n_stages; i++)
        pipeline_lock_clear(&p->stages[i].lock);
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
            pipeline_lock_clear(l);
            l->present = 1;
            continue;
        }
        if (cur == -2)
            goto bad;
        if (strcmp(word, "end") == 0) {
            cur = -2;
            pipeline_lock_clear(&junk);
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
    pipeline_lock_clear(&junk);
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
    pipeline_lock_clear(&junk);
    for (int i = 0; i < p->n_stages; i++)
        pipeline_lock_clear(&p->stages[i].lock);
    return -1;
}

int pipeline_lock_write(const struct pipeline *p, const char *lockpath, char *msg,
                        size_t msglen)
{
    struct outfile o;
    char m[256];
    char *dir = xstrdup(lockpath), *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (util_mkdirs(dir, m, sizeof m) == -1) {
            snprintf(msg, msglen, "%s: %s", dir, m);
            free(dir);
            return -1;
        }
    }
    free(dir);
    if (outfile_open(&o, lockpath, m, sizeof m) == -1) {
        snprintf(msg, msglen, "%s: %s", lockpath, m);
        return -1;
    }
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
    if (outfile_commit(&o, m, sizeof m) == -1) {
        snprintf(msg, msglen, "%s: %s", lockpath, m);
        return -1;
    }
    return 0;
}

static uint64_t param_hash(const struct pipeline *p, const char *name)
{
    const char *v = p->param_value[strv_find(p->param_name, p->n_params, name)];
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
            pipeline_lock_clear(&l);
            return -1;
        }
        lock_add(&l.outs, &l.out_h, &l.n_outs, s->outs[k], h);
    }
    pipeline_lock_clear(&s->lock);
    s->lock = l;
    return 0;
}

static int lock_index(char **v, int n, const char *s) { return strv_find(v, n, s); }

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
        if (strv_find(s->deps, s->n_deps, l->deps[k]) < 0)
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
        if (strv_find(s->outs, s->n_outs, l->outs[k]) < 0)
            STALE("out %s removed", l->outs[k]);
    for (int k = 0; k < l->n_params && !stale; k++)
        if (strv_find(s->params, s->n_params, l->params[k]) < 0)
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
        char *d = xstrdup(s->outs[k]), *slash = strrchr(d, '/'), m[256];
        int rc = 0;
        if (slash != NULL && slash != d) {
            *slash = '\0';
            if ((rc = util_mkdirs(d, m, sizeof m)) == -1)
                snprintf(msg, msglen, "%s: %s", d, m);
        }
        free(d);
        if (rc == -1)
            return -1;
    }
    return 0;
}
