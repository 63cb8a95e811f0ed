/* pipe: runs the stages of a pipeline YAML file (pipelines/) in dependency order, skipping the stages
   whose command, params and deps are unchanged since their outs were made (.pipe/NAME.lock).
   Stages run as /bin/sh -c CMD in the current directory, with this program's directory (bin/)
   first on PATH, stdin from /dev/null and stdout/stderr passed through. */
#include "util/opt.h"
#include "pipeline/pipeline.h"
#include "util/util.h"
#include "nn/tool.h"

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage_line[] =
    "usage: pipe run FILE [STAGE...] [-P name=value] [-n|--dry-run] [-f|--force] "
    "[-j N] [-q] [-v]\n"
    "       pipe status FILE [STAGE...] [-P name=value]\n"
    "       pipe dag FILE [--dot]\n"
    "       pipe time -o FILE CMD [ARG...]\n";

static const char help[] =
    "\n"
    "Runs the stages of a YAML pipeline (params, stages with cmd, deps, outs, foreach)\n"
    "in dependency order, redoing only what changed since the run recorded in\n"
    ".pipe/NAME.lock (hashes of each stage's command, params, deps and outs). Stages\n"
    "run with /bin/sh -c in the current directory, this program's folder first on\n"
    "PATH. A failed or interrupted stage's outs are deleted. See README.md.\n"
    "\n"
    "  run FILE [STAGE...]     run the stale stages (or those named, and what they\n"
    "                          need); exit 1 at the first failing stage\n"
    "  status FILE [STAGE...]  print 'NAME: why' for every stale stage\n"
    "  dag FILE                print each stage and the stages it needs\n"
    "  time -o FILE CMD...     run CMD and write its wall time in seconds to FILE\n"
    "\n"
    "  -P, --param NAME=VALUE  override a param for this run (repeatable)\n"
    "  -n, --dry-run           print what would run and why; run nothing\n"
    "  -f, --force             run the selected stages even when up to date\n"
    "  -j, --jobs N            up to N independent stages at once (default 1),\n"
    "                          each with the cores shared out: OMP_NUM_THREADS\n"
    "                          = cores / N (at least 1) unless it is set\n"
    "  -q, --quiet             say nothing about stages\n"
    "  -v, --verbose           the commands too, and the skipped stages\n"
    "  --dot                   dag: print Graphviz instead\n"
    "  -o FILE                 time: where the seconds go\n"
    "  -h, --help              this text\n"
    "\n"
    "Example:\n"
    "  pipe run pipelines/demo.yaml -P vae_epochs=5 -j 2\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

/* this program's directory goes first on PATH, so stages find the other tools */
static void path_add_self(void)
{
    char self[PATH_MAX], *slash, *path;
    const char *old = getenv("PATH");
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    size_t len;
    if (n <= 0)
        return;
    self[n] = '\0';
    if ((slash = strrchr(self, '/')) == NULL)
        return;
    *slash = '\0';
    len = strlen(self) + (old ? strlen(old) : 0) + 2;
    path = xmalloc(len);
    snprintf(path, len, "%s%s%s", self, old && *old ? ":" : "", old ? old : "");
    setenv("PATH", path, 1);
    free(path);
}

/* ---- signals: blocked except inside sigsuspend, so no wake-up is lost --------------------- */

static volatile sig_atomic_t got_sig, got_alarm;
static sigset_t orig_mask;

static void on_sig(int sig) { got_sig = sig; }
static void on_alarm(int sig) { (void)sig; got_alarm = 1; }
static void on_chld(int sig) { (void)sig; }

static void signals_setup(void)
{
    struct sigaction sa;
    sigset_t block;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    sigemptyset(&block);
    for (int i = 0; i < 3; i++)
        sigaddset(&block, sigs[i]);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &orig_mask);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_sig;
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
}

/* an interrupt that came while no stage ran is still pending (blocked): notice it */
static void poll_signals(void)
{
    sigset_t pend;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    sigpending(&pend);
    for (int i = 0; i < 3; i++)
        if (sigismember(&pend, sigs[i]))
            got_sig = sigs[i];
}

/* The OMP_NUM_THREADS a stage gets when jobs stages may run at once: the cores shared out
   (at least 1 each), unless the user set it. The tools take it as their --threads default,
   so -j 2 on 2 cores runs two 1-thread stages rather than four threads on two cores. */
static void share_cores(int jobs)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char v[32];
    if (jobs <= 1 || getenv("OMP_NUM_THREADS") != NULL)
        return;
    snprintf(v, sizeof v, "%ld", cores > jobs ? cores / jobs : 1);
    setenv("OMP_NUM_THREADS", v, 1);
}

static pid_t spawn(const char *cmd)
{
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == -1)
        err(1, "fork");
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGALRM, SIGPIPE};
        /* its own process group: an interrupt reaches the whole stage, and only through us */
        setpgid(0, 0);
        for (int i = 0; i < 6; i++)
            signal(sigs[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, &orig_mask, NULL);
        if (fd >= 0) {
            dup2(fd, 0);
            close(fd);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

/* ---- run, status, dag --------------------------------------------------------------------- */

struct opts {
    int dry, force, jobs, quiet, verbose, dot;
    int n_over, n_targets;
    char **over, **targets;
};

enum { PENDING, RUNNING, DONE, FAILED };

static void load(struct pipeline *p, const char *file, struct opts *o, char **lockpath)
{
    char msg[TOOL_MSG];
    if (pipeline_load(p, file, o->n_over, o->over, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    if (lockpath == NULL)
        return;
    *lockpath = pipeline_lock_path(file);
    if (pipeline_lock_read(p, *lockpath, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
}

/* why stage i would run when the stages in will_run run first; "" when it would not */
static int explain(struct pipeline *p, int i, const char *will_run, int force, char *why,
                   size_t whylen)
{
    int rc = pipeline_stale(p, i, why, whylen);
    if (rc == -1)
        errx(1, "%s", why);
    /* a stage never run says so; otherwise a stale upstream explains missing or changed deps */
    for (int k = 0; k < p->stages[i].n_up && p->stages[i].lock.present; k++)
        if (will_run[p->stages[i].up[k]]) {
            snprintf(why, whylen, "upstream stage %s is stale", p->stages[p->stages[i].up[k]].name);
            rc = 1;
            break;
        }
    if (rc == 0 && force) {
        snprintf(why, whylen, "forced");
        rc = 1;
    }
    return rc;
}

static int cmd_status(const char *file, struct opts *o, int dry)
{
    struct pipeline p;
    char *lockpath, msg[TOOL_MSG], why[TOOL_MSG], *sel, *will;
    int n_stale = 0;
    load(&p, file, o, &lockpath);
    sel = xmalloc(p.n_stages);
    will = xcalloc(p.n_stages, 1);
    if (pipeline_select(&p, o->n_targets, o->targets, sel, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    for (int i = 0; i < p.n_stages; i++) {
        if (!sel[i] || !explain(&p, i, will, dry && o->force, why, sizeof why))
            continue;
        will[i] = 1;
        n_stale++;
        printf("%s: %s\n", p.stages[i].name, why);
        if (dry) { /* the command, each line indented by a tab */
            putchar('\t');
            for (const char *c = p.stages[i].cmd; *c; c++)
                fputs(*c == '\n' ? "\n\t" : (char[2]){*c, 0}, stdout);
            putchar('\n');
        }
    }
    if (n_stale == 0 && !o->quiet)
        fprintf(stderr, "pipe: %s: everything is up to date\n", file);
    free(sel);
    free(will);
    free(lockpath);
    pipeline_free(&p);
    return 0;
}

static int cmd_dag(const char *file, struct opts *o)
{
    struct pipeline p;
    load(&p, file, o, NULL);
    if (o->dot)
        printf("digraph \"%s\" {\n", file);
    for (int i = 0; i < p.n_stages; i++) {
        const struct pipe_stage *s = &p.stages[i];
        if (o->dot) {
            printf("\t\"%s\";\n", s->name);
            for (int k = 0; k < s->n_up; k++)
                printf("\t\"%s\" -> \"%s\";\n", p.stages[s->up[k]].name, s->name);
            continue;
        }
        printf("%s:", s->name);
        for (int k = 0; k < s->n_up; k++)
            printf(" %s", p.stages[s->up[k]].name);
        putchar('\n');
    }
    if (o->dot)
        printf("}\n");
    pipeline_free(&p);
    return 0;
}

/* a finished stage: record it in the lock, or remove its outs */
static int finish(struct pipeline *p, int i, int status, const char *lockpath)
{
    char msg[TOOL_MSG], why[TOOL_MSG + 128];
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok && pipeline_lock_update(p, i, msg, sizeof msg) == 0) {
        if (pipeline_lock_write(p, lockpath, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        return DONE;
    }
    if (ok)
        snprintf(why, sizeof why, "stage %s failed: %s", p->stages[i].name, msg);
    else if (WIFEXITED(status))
        snprintf(why, sizeof why, "stage %s failed with exit status %d", p->stages[i].name,
                 WEXITSTATUS(status));
    else
        snprintf(why, sizeof why, "stage %s killed by signal %d", p->stages[i].name,
                 WTERMSIG(status));
    if (!p->stages[i].persist && pipeline_remove_outs(p, i, msg, sizeof msg) == -1)
        warnx("%s", msg);
    if (!got_sig)
        warnx("%s", why);
    return FAILED;
}

struct runner {
    struct pipeline p;
    const struct opts *o;
    char *lockpath, *sel, *state;
    pid_t *pid;
    int running, failed, n_ran;
};

/* starts every ready stage there is room for; skipping a fresh one may make another ready */
static void launch_ready(struct runner *r)
{
    struct pipeline *p = &r->p;
    char msg[TOOL_MSG], why[TOOL_MSG];
    for (int i = 0; i < p->n_stages && !r->failed && r->running < r->o->jobs; i++) {
        int k, rc;
        if (!r->sel[i] || r->state[i] != PENDING)
            continue;
        for (k = 0; k < p->stages[i].n_up && r->state[p->stages[i].up[k]] == DONE; k++)
            ;
        if (k < p->stages[i].n_up)
            continue;
        poll_signals();
        if (got_sig)
            return;
        if ((rc = pipeline_stale(p, i, why, sizeof why)) == -1)
            errx(1, "%s", why);
        if (rc == 0 && r->o->force)
            snprintf(why, sizeof why, "forced");
        if (rc == 0 && !r->o->force) {
            if (r->o->verbose)
                fprintf(stderr, "pipe: %s is up to date\n", p->stages[i].name);
            r->state[i] = DONE;
            i = -1; /* look again from the start */
            continue;
        }
        if (!r->o->quiet)
            fprintf(stderr, "pipe: running %s (%s)%s%s\n", p->stages[i].name, why,
                    r->o->verbose ? ": " : "", r->o->verbose ? p->stages[i].cmd : "");
        if ((!p->stages[i].persist && pipeline_remove_outs(p, i, msg, sizeof msg) == -1) ||
            pipeline_make_out_dirs(p, i, msg, sizeof msg) == -1)
            errx(1, "%s", msg);
        r->pid[i] = spawn(p->stages[i].cmd);
        r->state[i] = RUNNING;
        r->running++;
        r->n_ran++;
    }
}

/* sends sig to every running stage's process group */
static void signal_running(struct runner *r, int sig)
{
    for (int i = 0; i < r->p.n_stages; i++)
        if (r->state[i] == RUNNING)
            kill(-r->pid[i], sig);
}

static int cmd_run(const char *file, struct opts *o)
{
    struct runner r = {.o = o};
    char msg[TOOL_MSG];
    int forwarded = 0, status;
    int run_fd;
    if (o->dry)
        return cmd_status(file, o, 1);
    /* the pipeline first (a bad file makes no .pipe folder), then the run lock, then the
       record of earlier runs, read under the lock */
    load(&r.p, file, o, NULL);
    r.lockpath = pipeline_lock_path(file);
    if ((run_fd = pipeline_run_lock(r.lockpath, msg, sizeof msg)) == -1)
        errx(1, "%s: %s%s", file, msg,
             strstr(msg, "another") == msg ? "; wait for it to finish" : "");
    if (pipeline_lock_read(&r.p, r.lockpath, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    r.sel = xmalloc(r.p.n_stages);
    r.state = xcalloc(r.p.n_stages, 1);
    r.pid = xcalloc(r.p.n_stages, sizeof *r.pid);
    if (pipeline_select(&r.p, o->n_targets, o->targets, r.sel, msg, sizeof msg) == -1)
        errx(1, "%s", msg);
    signals_setup();
    for (;;) {
        pid_t w;
        if (!got_sig)
            launch_ready(&r);
        if (r.running == 0)
            break;
        if (got_sig && !forwarded) {
            signal_running(&r, got_sig);
            forwarded = 1;
            alarm(5);
        }
        if (got_alarm) { /* a stage ignored the interrupt for 5 s */
            signal_running(&r, SIGKILL);
            got_alarm = 0;
        }
        if ((w = waitpid(-1, &status, WNOHANG)) == -1 && errno != EINTR)
            err(1, "waitpid");
        if (w <= 0) {
            sigsuspend(&orig_mask);
            continue;
        }
        for (int i = 0; i < r.p.n_stages; i++)
            if (r.state[i] == RUNNING && r.pid[i] == w) {
                r.state[i] = finish(&r.p, i, status, r.lockpath);
                r.failed |= r.state[i] == FAILED;
                r.running--;
            }
    }
    if (got_sig) {
        for (int i = 0; i < r.p.n_stages; i++)
            if (r.state[i] == FAILED)
                warnx("interrupted: stopped stage %s%s", r.p.stages[i].name,
                      r.p.stages[i].persist ? "" : " and removed its outs");
        if (!r.failed)
            warnx("interrupted");
    } else if (r.n_ran == 0 && !r.failed && !o->quiet) {
        fprintf(stderr, "pipe: %s: everything is up to date\n", file);
    }
    free(r.sel);
    free(r.state);
    free(r.pid);
    free(r.lockpath);
    pipeline_free(&r.p);
    close(run_fd);
    return got_sig ? 128 + got_sig : r.failed ? 1 : 0;
}

/* pipe time -o FILE CMD...: runs CMD and writes its wall time in seconds to FILE */
static int cmd_time(int argc, char **argv)
{
    const char *out = NULL;
    struct outfile of;
    char msg[TOOL_MSG];
    int c, status;
    double t0;
    pid_t pid;
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    struct opt op;
    optind = 1;
    opt_init(&op, "+o:h", none);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'h')
            usage(0, NULL);
        else
            usage(2, NULL);
    }
    if (out == NULL || optind >= argc)
        usage(2, "time: want -o FILE and a command");
    if (util_check_output(out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    t0 = util_now();
    fflush(stdout);
    if ((pid = fork()) == -1)
        err(1, "fork");
    if (pid == 0) {
        execvp(argv[optind], argv + optind);
        warn("%s", argv[optind]);
        _exit(127);
    }
    signal(SIGINT, SIG_IGN); /* the child gets it too and decides */
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            err(1, "waitpid");
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    if (WEXITSTATUS(status) != 0)
        return WEXITSTATUS(status);
    if (outfile_open(&of, out, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    fprintf(of.f, "%.3f\n", util_now() - t0);
    if (outfile_commit(&of, msg, sizeof msg) == -1)
        errx(1, "%s: %s", out, msg);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"dry-run", no_argument, NULL, 'n'}, {"force", no_argument, NULL, 'f'},
        {"jobs", required_argument, NULL, 'j'}, {"param", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'}, {"verbose", no_argument, NULL, 'v'},
        {"dot", no_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct opts o = {0};
    const char *sub, *file;
    long j;
    int c, rc;
    struct opt op;
    o.jobs = 1;
    if (argc < 2)
        usage(2, "a subcommand is required: run, status, dag or time");
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)
        usage(0, NULL);
    /* its own signals: it passes them on to the stages it runs */
    tool_init(&argc, &argv, &(struct tool){.own_signals = 1}, NULL, 0);
    if (strcmp(sub, "time") == 0)
        return cmd_time(argc - 1, argv + 1);
    if (strcmp(sub, "run") != 0 && strcmp(sub, "status") != 0 && strcmp(sub, "dag") != 0) {
        char msg[TOOL_MSG];
        snprintf(msg, sizeof msg, "unknown subcommand '%.80s' (want run, status, dag or time)", sub);
        usage(2, msg);
    }
    o.over = xcalloc(argc, sizeof *o.over);
    o.targets = xcalloc(argc, sizeof *o.targets);
    optind = 1;
    /* the subcommand stands in argv[0]'s place; opt_next names the tool in messages */
    opt_init(&op, "nfj:P:qvh", longs);
    while ((c = opt_next(&op, argc - 1, argv + 1)) != -1) {
        switch (c) {
        case 'n': o.dry = 1; break;
        case 'f': o.force = 1; break;
        case 'q': o.quiet = 1; break;
        case 'v': o.verbose = 1; break;
        case 'd': o.dot = 1; break;
        case 'P': o.over[o.n_over++] = optarg; break;
        case 'j':
            if (opt_long(&op, 1, 64, &j) == -1)
                usage(2, op.msg);
            o.jobs = (int)j;
            break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    if (optind + 1 >= argc)
        usage(2, "FILE is required");
    file = argv[optind + 1];
    for (int i = optind + 2; i < argc; i++)
        o.targets[o.n_targets++] = argv[i];
    if (strcmp(sub, "dag") == 0 && o.n_targets > 0)
        usage(2, "dag takes no stage names");
    path_add_self();
    if (strcmp(sub, "run") == 0) {
        share_cores(o.jobs);
        rc = cmd_run(file, &o);
    }
    else if (strcmp(sub, "status") == 0)
        rc = cmd_status(file, &o, 0);
    else
        rc = cmd_dag(file, &o);
    free(o.over);
    free(o.targets);
    if (fclose(stdout) == EOF)
        err(1, "stdout");
    return rc;
}
