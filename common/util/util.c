#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BIG_ALIGN ((size_t)2 << 20)

void *xmalloc_big(size_t n)
{
    void *p;
    if (n < BIG_ALIGN)
        return xmalloc(n);
    if (posix_memalign(&p, BIG_ALIGN, n) != 0) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    /* advice only: a kernel without THP leaves 4 KiB pages, which work the same */
    madvise(p, n / BIG_ALIGN * BIG_ALIGN, MADV_HUGEPAGE);
    return p;
}

void *xcalloc_big(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        fprintf(stderr, "out of memory (%zu x %zu bytes)\n", n, size);
        exit(1);
    }
    void *p = xmalloc_big(n * size);
    memset(p, 0, n * size); /* posix_memalign may reuse freed heap memory */
    return p;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu x %zu bytes)\n", n, size);
        exit(1);
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

int util_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

long util_threads_default(void)
{
    const char *e = getenv("OMP_NUM_THREADS");
    char first[32];
    long n;
    if (e == NULL)
        return 2;
    snprintf(first, sizeof first, "%.*s", (int)strcspn(e, ","), e);
    return util_parse_long(first, 1, 1024, &n) == 0 ? n : 2;
}

int util_parse_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int util_parse_size(const char *s, int *w, int *h)
{
    char buf[64], *x;
    long a, b;
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    x = strchr(buf, 'x');
    if (x == NULL) {
        if (util_parse_long(buf, 1, 65535, &a) == -1)
            return -1;
        *w = *h = (int)a;
        return 0;
    }
    *x = '\0';
    if (util_parse_long(buf, 1, 65535, &a) == -1 || util_parse_long(x + 1, 1, 65535, &b) == -1)
        return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

/* Temporary files still open, so that a signal handler can remove them. */
#define MAX_TEMPS 64
static char *volatile temps[MAX_TEMPS];

static void temps_add(char *p)
{
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i] == NULL) {
            temps[i] = p;
            return;
        }
}

static void temps_del(const char *p)
{
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i] == p)
            temps[i] = NULL;
}

void util_remove_temps(void)
{
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i] != NULL)
            unlink(temps[i]);
}

static void on_signal(int sig)
{
    util_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

void util_cleanup_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, on_signal);
    signal(SIGXFSZ, SIG_IGN);
}

/* the folder of path ("." for a bare name) in a malloc'd string */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (slash == NULL)
        return xstrdup(".");
    while (slash > path && slash[-1] == '/')
        slash--;
    if (slash == path)
        return xstrdup("/");
    d = xmalloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = '\0';
    return d;
}

/* creates and removes PREFIX.XXXXXX, a file or (dir) a folder */
static int try_create(const char *prefix, int dir, char *msg, size_t msglen)
{
    char *tmp = xmalloc(strlen(prefix) + 8), *d;
    int ok;
    sprintf(tmp, "%s.XXXXXX", prefix);
    if (dir) {
        ok = mkdtemp(tmp) != NULL && rmdir(tmp) == 0;
    } else {
        int fd = mkstemp(tmp);
        ok = fd != -1;
        if (ok) {
            close(fd);
            unlink(tmp);
        }
    }
    if (!ok) {
        int e = errno;
        d = dir_of(tmp);
        snprintf(msg, msglen, "cannot create a %s in %s: %s", dir ? "folder" : "file", d,
                 strerror(e));
        free(d);
    }
    free(tmp);
    return ok ? 0 : -1;
}

int util_check_output(const char *path, char *msg, size_t msglen)
{
    if (strcmp(path, "-") == 0)
        return 0;
    if (util_is_dir(path)) {
        snprintf(msg, msglen, "is a directory");
        return -1;
    }
    return try_create(path, 0, msg, msglen);
}

int util_binary_to_tty(const char *path)
{
    return strcmp(path, "-") == 0 && isatty(STDOUT_FILENO);
}

int util_check_output_dir(const char *path, char *msg, size_t msglen)
{
    char *inside;
    int rc;
    if (util_is_dir(path)) {
        inside = xmalloc(strlen(path) + 8);
        sprintf(inside, "%s/.probe", path);
        rc = try_create(inside, 0, msg, msglen);
        free(inside);
        return rc;
    }
    if (util_exists(path)) {
        snprintf(msg, msglen, "exists and is not a directory");
        return -1;
    }
    return try_create(path, 1, msg, msglen);
}

int outfile_open(struct outfile *o, const char *path, char *msg, size_t msglen)
{
    struct stat st;
    int fd;
    memset(o, 0, sizeof *o);
    if (strcmp(path, "-") == 0) {
        o->f = stdout;
        return 0;
    }
    if (util_is_dir(path)) { /* the rename at the end would fail: say so now */
        snprintf(msg, msglen, "cannot create %s: %s", path, strerror(EISDIR));
        return -1;
    }
    o->path = xstrdup(path);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        /* a device or a pipe (-o /dev/null): written in place, as a renamed temporary file
           would replace it (as root, /dev/null itself) */
        if ((o->f = fopen(path, "wb")) == NULL) {
            snprintf(msg, msglen, "%s", strerror(errno));
            free(o->path);
            o->path = NULL;
            return -1;
        }
        return 0;
    }
    /* the pid in the name lets a later run tell a dead run's file (outfile_sweep) */
    o->tmp = xmalloc(strlen(path) + 32);
    sprintf(o->tmp, "%s.%ld.XXXXXX", path, (long)getpid());
    fd = mkstemp(o->tmp);
    if (fd == -1) {
        snprintf(msg, msglen, "%s", strerror(errno));
        free(o->path);
        free(o->tmp);
        o->path = o->tmp = NULL;
        return -1;
    }
    fchmod(fd, 0644);
    temps_add(o->tmp);
    o->f = fdopen(fd, "wb");
    return 0;
}

int outfile_temp_name(const char *name, const char *base, long *pid)
{
    size_t nb = strlen(base);
    const char *p = name + nb + 1;
    char *end;
    if (strncmp(name, base, nb) != 0 || name[nb] != '.')
        return 0;
    *pid = 0;
    if (strlen(p) == 6 && strchr(p, '.') == NULL)
        return 1; /* BASE.XXXXXX, as builds before the pid was in the name made them */
    if (*p < '1' || *p > '9')
        return 0;
    errno = 0;
    *pid = strtol(p, &end, 10);
    return errno == 0 && *pid <= INT_MAX && *end == '.' && strlen(end + 1) == 6;
}

int outfile_sweep(const char *path)
{
    char *dir = dir_of(path), full[4200];
    const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (d == NULL) {
        free(dir);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        long pid;
        /* a file without a pid may belong to a running older build: left alone */
        if (!outfile_temp_name(de->d_name, base, &pid) || pid == 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
        n += unlink(full) == 0;
    }
    closedir(d);
    free(dir);
    return n;
}

int outfile_commit(struct outfile *o, char *msg, size_t msglen)
{
    int bad;
    if (o->path == NULL) {
        if (fflush(stdout) != 0) {
            snprintf(msg, msglen, "write error on stdout: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    bad = ferror(o->f) | fflush(o->f);
    if (fclose(o->f) != 0 || bad) {
        snprintf(msg, msglen, "write error: %s", strerror(errno));
        o->f = NULL;
        outfile_abort(o);
        return -1;
    }
    o->f = NULL;
    if (o->tmp != NULL && rename(o->tmp, o->path) != 0) {
        snprintf(msg, msglen, "%s", strerror(errno));
        outfile_abort(o);
        return -1;
    }
    temps_del(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return 0;
}

void outfile_abort(struct outfile *o)
{
    if (o->path == NULL)
        return;
    if (o->f != NULL)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp != NULL)
        unlink(o->tmp);
    temps_del(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
}

void util_msg_oneline(char *msg)
{
    for (; msg != NULL && *msg; msg++)
        if ((unsigned char)*msg < 0x20 || *msg == 0x7f)
            *msg = '?';
}

int util_read_file(const char *path, unsigned char **buf, size_t *len, char *msg, size_t msglen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *b;
    if (f == NULL) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return -1;
    }
    if (util_is_dir(path)) {
        snprintf(msg, msglen, "is a directory");
        fclose(f);
        return -1;
    }
    b = xmalloc(cap + 1);
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            b = xrealloc(b, cap + 1);
        }
    }
    if (ferror(f)) {
        snprintf(msg, msglen, "read error: %s", strerror(errno));
        free(b);
        if (f != stdin)
            fclose(f);
        return -1;
    }
    if (f != stdin)
        fclose(f);
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

void strv_add(char ***v, int *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

void strv_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int strv_find(char **v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return i;
    return -1;
}

double util_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

double util_process_age(void)
{
    char buf[1024], *p;
    unsigned long long start = 0;
    struct timespec t;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* the command name may hold spaces; the fields follow its ')' */
    /* after ')': field 3 (state) ... field 22 (starttime): skip 19 fields */
    for (int i = 0; p && i < 20; i++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p, "%llu", &start) != 1 || clock_gettime(CLOCK_BOOTTIME, &t) == -1)
        return -1;
    return t.tv_sec + t.tv_nsec * 1e-9 - (double)start / (double)sysconf(_SC_CLK_TCK);
}

int util_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int util_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int util_mkdirs(const char *path, char *msg, size_t msglen)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        snprintf(msg, msglen, "path too long");
        return -1;
    }
    strcpy(buf, path);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            if (i == n)
                snprintf(msg, msglen, "%s", strerror(errno));
            else
                snprintf(msg, msglen, "cannot create directory %s: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    if (!util_is_dir(path)) {
        snprintf(msg, msglen, "not a directory");
        return -1;
    }
    return 0;
}

static void fmt_hms(char *buf, size_t n, double s)
{
    long t = s < 0 || !isfinite(s) ? 0 : (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_init(struct progress *p, const char *tool, const char *what, long total)
{
    p->tool = tool;
    p->what = what;
    p->total = total;
    p->start = p->last = util_now();
    p->every = isatty(2) ? 0.2 : 10.0;
}

void progress_update(struct progress *p, long done, const char *extra)
{
    double now = util_now(), el = now - p->start, rate;
    char eta[32];
    if (now - p->last < p->every && done < p->total)
        return;
    p->last = now;
    rate = el > 0 ? done / el : 0;
    fmt_hms(eta, sizeof eta, rate > 0 ? (p->total - done) / rate : 0);
    fprintf(stderr, "%s%s: %s %ld/%ld (%.2f/s, ETA %s)%s%s%s", isatty(2) ? "\r" : "", p->tool,
            p->what, done, p->total, rate, eta, extra ? " " : "", extra ? extra : "",
            isatty(2) ? "\033[K" : "\n");
}

void progress_done(struct progress *p)
{
    char el[32];
    fmt_hms(el, sizeof el, util_now() - p->start);
    fprintf(stderr, "%s%s: %s done in %s%s\n", isatty(2) ? "\r" : "", p->tool, p->what, el,
            isatty(2) ? "\033[K" : "");
}

static int try_path(char *path, size_t pathlen, const char *dir, const char *rel,
                    const char *file)
{
    snprintf(path, pathlen, "%s%s%s%s", dir, *dir ? "/" : "", rel, file);
    return util_exists(path) && !util_is_dir(path);
}

int util_find_weights(char *path, size_t pathlen, const char *file, const char *argv0)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 && argv0 != NULL) {
        snprintf(exe, sizeof exe, "%s", argv0);
        n = (ssize_t)strlen(exe);
    }
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            if (try_path(path, pathlen, exe, "../weights/", file) ||
                try_path(path, pathlen, exe, "weights/", file))
                return 1;
        }
    }
    return try_path(path, pathlen, "", "weights/", file) || try_path(path, pathlen, "", "", file);
}
