/* Evaluation of a training run by ddpm-sample, fid and kid; see ddpm_eval.h. */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eval/ddpm_eval.h"
#include "models/trainer.h"
#include "util/par.h"
#include "util/util.h"

void ddpm_eval_init(struct ddpm_eval *e, const char *outdir, const char *ref,
                    const char *weights, long samples, long steps, long seed, long threads)
{
    char exe[sizeof e->bindir];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    memset(e, 0, sizeof *e);
    if (k > 0) {
        exe[k] = '\0';
        if (strrchr(exe, '/') != NULL)
            *strrchr(exe, '/') = '\0';
        memcpy(e->bindir, exe, sizeof exe);
    }
    snprintf(e->outdir, sizeof e->outdir, "%s", outdir);
    e->rank = par_rank();
    e->K = par_size();
    if (e->rank == 0) {
        snprintf(e->dir, sizeof e->dir, "%s/.eval-%ld", outdir, (long)getpid());
    } else { /* OUTDIR is rank 0's, maybe on another node */
        const char *tmp = getenv("TMPDIR");
        snprintf(e->dir, sizeof e->dir, "%s/ddpm-train-eval-%ld",
                 tmp != NULL && tmp[0] ? tmp : "/tmp", (long)getpid());
    }
    e->ref = ref;
    e->weights = weights;
    e->samples = samples;
    e->steps = steps;
    e->seed = seed;
    e->threads = threads;
}

/* Runs argv[0] from bindir, its stdout into out (NUL-terminated). 0 on exit status 0, -1 on
   any other, -2 with msg if it could not be started. The child says why exec failed.
   hold_stderr: the child's stderr is kept in a temporary file and shown only if it fails:
   under mpirun every rank runs the same tools on its shard, and their warnings (synthetic
   weights, N below the feature dimension) are rank 0's to say once. */
static int run_tool(const char *bindir, char **argv, int hold_stderr, char *out, size_t outlen,
                    char *msg, size_t msglen)
{
    int fd[2], status, ok;
    size_t len = 0;
    ssize_t k;
    pid_t pid;
    FILE *held = NULL;
    char exe[4300], **env = par_child_env(); /* under mpirun, not a second rank */
    snprintf(exe, sizeof exe, "%s/%s", bindir, argv[0]);
    if (hold_stderr && (held = tmpfile()) == NULL) {
        snprintf(msg, msglen, "temporary file: %s", strerror(errno));
        return -2;
    }
    if (pipe(fd) == -1) {
        snprintf(msg, msglen, "pipe: %s", strerror(errno));
        if (held)
            fclose(held);
        return -2;
    }
    fflush(NULL);
    if ((pid = fork()) == -1) {
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        if (held)
            fclose(held);
        return -2;
    }
    if (pid == 0) {
        if (held)
            dup2(fileno(held), 2);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execve(exe, argv, env);
        warn("%s", exe);
        _exit(127);
    }
    close(fd[1]);
    while ((k = read(fd[0], out + len, outlen - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = '\0';
    close(fd[0]);
    while (waitpid(pid, &status, 0) == -1)
        ;
    ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (held) {
        char buf[4096];
        size_t got;
        rewind(held);
        while (!ok && (got = fread(buf, 1, sizeof buf, held)) > 0)
            fwrite(buf, 1, got, stderr);
        fclose(held);
    }
    return ok ? 0 : -1;
}

/* the number after key in out */
static int read_score(const char *out, const char *key, double *v)
{
    const char *p = strstr(out, key);
    return p != NULL && sscanf(p + strlen(key), "%lf", v) == 1 ? 0 : -1;
}

/* ---- under mpirun (K > 1): every rank runs its shard, rank 0 joins and scores ----
   Rank r makes shard r/K of the samples (ddpm-sample --shard) and the fid and kid features
   of them (and of the reference, fid and kid --save-features --shard) in its own e->dir,
   sends the feature files to rank 0 (par_send: no shared file system needed), and rank 0
   joins them in rank order (npycat), which is the 1-process features file: image i's
   features depend only on the image, image i only on the seed and i. Rank 0 then scores
   from the features, as a 1-process run from the images (the same rows, the same sums), and
   sends the verdict to every rank, so that they all go on alike. Each rank's status travels
   with its files: 0, 1 (interrupted: its tool failed after a signal) or -1 (failed: msg
   says why); every rank has cleaned up by the time it returns -1, and the others return -1
   with msg "" (another rank failed and says why). */

/* e->dir/NAME.R.npy: rank R's part (on rank R, and rank 0's copy of it) */
static void part_path(char *p, size_t len, const struct ddpm_eval *e, const char *name, int r)
{
    snprintf(p, len, "%s/%s.%d.npy", e->dir, name, r);
}

/* run_tool as a step of the evaluation: 0, 1 if it failed because a signal asked the run to
   stop (the children got it too), -1 with msg */
static int run_step(const struct ddpm_eval *e, char **argv, char *out, size_t outlen,
                    const char *what, char *msg, size_t msglen)
{
    int rc = run_tool(e->bindir, argv, e->rank > 0, out, outlen, msg, msglen);
    if (rc == 0)
        return 0;
    if (rc == -2)
        return -1;
    if (trainer_stop())
        return 1;
    if (e->K > 1)
        snprintf(msg, msglen, "evaluation: %s failed (process %d of %d)", what, e->rank, e->K);
    else
        snprintf(msg, msglen, "evaluation: %s failed", what);
    return -1;
}

/* ddpm-sample (DDIM) of the model in e->dir into samples, shard RANK/K of them when shard:
   0, 1, -1 as run_step */
static int sample(const struct ddpm_eval *e, int shard, const char *samples, char *msg,
                  size_t msglen)
{
    char n[32], steps[32], seed[32], thr[32], sh[32], out[4096], *argv[24];
    int a = 0;
    snprintf(n, sizeof n, "%ld", e->samples);
    snprintf(steps, sizeof steps, "%ld", e->steps);
    snprintf(seed, sizeof seed, "%ld", e->seed);
    snprintf(thr, sizeof thr, "%ld", e->threads);
    snprintf(sh, sizeof sh, "%d/%d", e->rank, e->K);
    argv[a++] = "ddpm-sample", argv[a++] = "--model", argv[a++] = (char *)e->dir;
    argv[a++] = "-n", argv[a++] = n;
    if (shard)
        argv[a++] = "--shard", argv[a++] = sh;
    argv[a++] = "--scheduler", argv[a++] = "ddim", argv[a++] = "--steps", argv[a++] = steps;
    argv[a++] = "--seed", argv[a++] = seed, argv[a++] = "--threads", argv[a++] = thr;
    argv[a++] = "-o", argv[a++] = (char *)samples, argv[a] = NULL;
    return run_step(e, argv, out, sizeof out, "ddpm-sample", msg, msglen);
}

/* fid (k 0) or kid (k 1) of in (images: with --weights; or their features) against the
   cached reference, its score read into sc: 0, 1, -1 as run_step */
static int score_tool(const struct ddpm_eval *e, int k, const char *in, int images,
                      struct ddpm_scores *sc, char *msg, size_t msglen)
{
    char thr[32], out[4096], *argv[12];
    int a = 0, st;
    snprintf(thr, sizeof thr, "%ld", e->threads);
    argv[a++] = k ? "kid" : "fid", argv[a++] = "--threads", argv[a++] = thr;
    if (images && e->weights != NULL)
        argv[a++] = "--weights", argv[a++] = (char *)e->weights;
    argv[a++] = (char *)in, argv[a++] = (char *)(k ? e->kid_ref : e->fid_ref), argv[a] = NULL;
    if ((st = run_step(e, argv, out, sizeof out, argv[0], msg, msglen)) != 0)
        return st;
    if (k == 0 && read_score(out, "FID:", &sc->fid) == -1) {
        snprintf(msg, msglen, "evaluation: fid: unexpected output");
        return -1;
    }
    if (k == 1 && (read_score(out, "kernel_inception_distance_mean:", &sc->kid) == -1 ||
                   read_score(out, "kernel_inception_distance_std:", &sc->kid_std) == -1)) {
        snprintf(msg, msglen, "evaluation: kid: unexpected output");
        return -1;
    }
    return 0;
}

/* fid (k 0) or kid (k 1) --save-features [--shard RANK/K] in out: 0, 1, -1 as run_step */
static int save_features(const struct ddpm_eval *e, int k, const char *in, int shard,
                         const char *out, char *msg, size_t msglen)
{
    char thr[32], sh[32], buf[256], what[4400], *argv[16];
    int a = 0;
    snprintf(thr, sizeof thr, "%ld", e->threads);
    snprintf(sh, sizeof sh, "%d/%d", e->rank, e->K);
    argv[a++] = k ? "kid" : "fid", argv[a++] = "--threads", argv[a++] = thr;
    if (e->weights != NULL)
        argv[a++] = "--weights", argv[a++] = (char *)e->weights;
    argv[a++] = "--save-features";
    if (shard)
        argv[a++] = "--shard", argv[a++] = sh;
    argv[a++] = (char *)in, argv[a++] = (char *)out, argv[a] = NULL;
    snprintf(what, sizeof what, "%s --save-features of %s", argv[0], in);
    return run_step(e, argv, buf, sizeof buf, what, msg, msglen);
}

/* the worse of two statuses: -1 (failed) over 1 (interrupted) over 0 */
static int worse(int a, int b)
{
    return a == -1 || b == -1 ? -1 : a == 1 || b == 1 ? 1 : 0;
}

/* Collective: this rank's status st and, when 0, its two parts NAME.RANK.npy (names[0],
   names[1]) go to rank 0, which writes them into its e->dir, streamed (par_send_file): the
   parts of a large evaluation set never sit whole in memory. A rank > 0 returns its status
   (-1 with msg if a part cannot be read); rank 0 the worst of all (-1 with msg if a part
   cannot be written, "" if another rank failed). */
static int gather_parts(const struct ddpm_eval *e, int st, const char *const *names,
                        char *msg, size_t msglen)
{
    char path[4400];
    FILE *f[2] = {NULL, NULL};
    if (e->rank > 0) {
        for (int i = 0; i < 2 && st == 0; i++) {
            part_path(path, sizeof path, e, names[i], e->rank);
            if ((f[i] = fopen(path, "rb")) == NULL) {
                snprintf(msg, msglen, "%s: %s", path, strerror(errno));
                st = -1;
            }
        }
        par_send(&st, sizeof st);
        for (int i = 0; i < 2 && st == 0; i++)
            if (par_send_file(f[i], msg, msglen) == -1) {
                part_path(path, sizeof path, e, names[i], e->rank);
                snprintf(msg, msglen, "%s: read error", path);
                st = -1;
            }
        for (int i = 0; i < 2; i++)
            if (f[i] != NULL)
                fclose(f[i]);
        return st;
    }
    for (int r = 1; r < e->K; r++) {
        size_t n;
        int *p = par_recv(r, &n), sr = n == sizeof sr ? *p : -1;
        free(p);
        if (sr == -1 && st != -1)
            msg[0] = '\0'; /* rank r says why */
        st = worse(st, sr);
        for (int i = 0; i < 2 && sr == 0; i++) {
            char m[64];
            FILE *out = NULL;
            part_path(path, sizeof path, e, names[i], r);
            if (st == 0 && (out = fopen(path, "wb")) == NULL) {
                snprintf(msg, msglen, "%s: %s", path, strerror(errno));
                st = -1;
            }
            /* drained whatever happens: rank r sends it in any case */
            int rc = par_recv_file(r, out, m, sizeof m);
            if (out != NULL && fclose(out) != 0 && rc == 0) {
                snprintf(m, sizeof m, "write error");
                rc = -1;
            }
            if (rc == -1 && st == 0) {
                if (m[0] != '\0')
                    snprintf(msg, msglen, "%s: %s", path, m);
                else
                    msg[0] = '\0';
                st = -1;
            }
            if (rc == -1 && m[0] == '\0')
                sr = -1; /* rank r failed: it sends no more */
        }
    }
    return st;
}

/* rank 0: npycat -o out of the K parts of name, in rank order */
static int join_parts(const struct ddpm_eval *e, const char *name, const char *out, char *msg,
                      size_t msglen)
{
    char buf[256], what[64], **argv = xmalloc(((size_t)e->K + 4) * sizeof *argv);
    char *paths = xmalloc((size_t)e->K * 4400);
    int a = 0, rc;
    argv[a++] = "npycat", argv[a++] = "-o", argv[a++] = (char *)out;
    for (int r = 0; r < e->K; r++) {
        part_path(paths + (size_t)r * 4400, 4400, e, name, r);
        argv[a++] = paths + (size_t)r * 4400;
    }
    argv[a] = NULL;
    snprintf(what, sizeof what, "npycat of the %s features", name);
    rc = run_step(e, argv, buf, sizeof buf, what, msg, msglen);
    free(paths);
    free(argv);
    return rc;
}

/* every file in e->dir, then e->dir */
static void remove_dir(const struct ddpm_eval *e)
{
    char path[4400];
    struct dirent *d;
    DIR *dir = opendir(e->dir);
    if (dir == NULL)
        return;
    while ((d = readdir(dir)) != NULL)
        if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", e->dir, d->d_name);
            unlink(path);
        }
    closedir(dir);
    rmdir(e->dir);
}

/* what rank 0 decided, sent to every rank */
struct verdict {
    int rc; /* 0, 1: interrupted, -1: failed */
    struct ddpm_scores sc;
};

/* Collective end of an evaluation step: rank 0's verdict v to every rank, e->dir removed.
   Returns v->rc; with -1 msg stays this rank's own message if it failed (st == -1), else "". */
static int finish(const struct ddpm_eval *e, struct verdict *v, int st, char *msg,
                  size_t msglen)
{
    par_bcast(v, sizeof *v);
    remove_dir(e);
    if (v->rc == -1 && st != -1 && msglen > 0)
        msg[0] = '\0';
    return v->rc;
}

static int par_ref(struct ddpm_eval *e, char *msg, size_t msglen)
{
    static const char *const names[] = {"ref-fid", "ref-kid"};
    char part[4400], joined[4400], buf[256], thr[32], *argv[12];
    struct verdict v = {0, {0, 0, 0}};
    int st = 0, a;

    snprintf(e->fid_ref, sizeof e->fid_ref, "%s/.eval-ref-%ld.npz", e->outdir, (long)getpid());
    snprintf(e->kid_ref, sizeof e->kid_ref, "%s/.eval-ref-%ld.npy", e->outdir, (long)getpid());
    if (mkdir(e->dir, 0777) == -1 && errno != EEXIST) {
        snprintf(msg, msglen, "%s: %s", e->dir, strerror(errno));
        st = -1;
    }
    for (int k = 0; k < 2 && st == 0; k++) {
        part_path(part, sizeof part, e, names[k], e->rank);
        st = save_features(e, k, e->ref, 1, part, msg, msglen);
    }
    st = gather_parts(e, st, names, msg, msglen);
    if (e->rank == 0 && st == 0) {
        /* the joined fid features -> their statistics, as fid --save-stats of the images */
        snprintf(joined, sizeof joined, "%s/ref-fid.npy", e->dir);
        if ((st = join_parts(e, names[0], joined, msg, msglen)) == 0 &&
            (st = join_parts(e, names[1], e->kid_ref, msg, msglen)) == 0) {
            snprintf(thr, sizeof thr, "%ld", e->threads);
            a = 0;
            argv[a++] = "fid", argv[a++] = "--threads", argv[a++] = thr;
            if (e->weights != NULL)
                argv[a++] = "--weights", argv[a++] = (char *)e->weights;
            argv[a++] = "--save-stats", argv[a++] = joined, argv[a++] = e->fid_ref;
            argv[a] = NULL;
            st = run_step(e, argv, buf, sizeof buf, "fid --save-stats of the reference", msg,
                          msglen);
        }
    }
    v.rc = st;
    if (finish(e, &v, st, msg, msglen) != 0) {
        if (e->rank == 0) {
            unlink(e->fid_ref);
            unlink(e->kid_ref);
        }
        e->fid_ref[0] = '\0';
    }
    return v.rc;
}

static int par_score(struct ddpm_eval *e, struct ddpm_scores *sc, char *msg, size_t msglen)
{
    static const char *const names[] = {"fid", "kid"};
    char samples[4400], part[4400], joined[4400];
    struct verdict v = {0, {0, 0, 0}};
    int st;

    snprintf(samples, sizeof samples, "%s/samples.npy", e->dir);
    st = sample(e, 1, samples, msg, msglen);
    for (int k = 0; k < 2 && st == 0; k++) {
        part_path(part, sizeof part, e, names[k], e->rank);
        st = save_features(e, k, samples, 0, part, msg, msglen);
    }
    st = gather_parts(e, st, names, msg, msglen);
    for (int k = 0; k < 2 && e->rank == 0 && st == 0; k++) {
        snprintf(joined, sizeof joined, "%s/%s.npy", e->dir, names[k]);
        if ((st = join_parts(e, names[k], joined, msg, msglen)) == 0)
            st = score_tool(e, k, joined, 0, &v.sc, msg, msglen);
    }
    v.rc = st;
    if (finish(e, &v, st, msg, msglen) == 0)
        *sc = v.sc;
    return v.rc;
}

int ddpm_eval_ref(struct ddpm_eval *e, char *msg, size_t msglen)
{
    char out[256], thr[32], *argv[12];
    int a, rc;
    if (e->fid_ref[0])
        return 0;
    if (e->K > 1)
        return par_ref(e, msg, msglen);
    snprintf(thr, sizeof thr, "%ld", e->threads);
    snprintf(e->fid_ref, sizeof e->fid_ref, "%s/.eval-ref-%ld.npz", e->outdir, (long)getpid());
    snprintf(e->kid_ref, sizeof e->kid_ref, "%s/.eval-ref-%ld.npy", e->outdir, (long)getpid());
    for (int k = 0; k < 2; k++) {
        a = 0;
        argv[a++] = k ? "kid" : "fid", argv[a++] = "--threads", argv[a++] = thr;
        if (e->weights != NULL)
            argv[a++] = "--weights", argv[a++] = (char *)e->weights;
        argv[a++] = k ? "--save-features" : "--save-stats", argv[a++] = (char *)e->ref;
        argv[a++] = k ? e->kid_ref : e->fid_ref, argv[a] = NULL;
        if ((rc = run_tool(e->bindir, argv, e->rank > 0, out, sizeof out, msg, msglen)) < 0) {
            e->fid_ref[0] = '\0';
            if (rc == -2)
                return -1;
            if (trainer_stop())
                return 1;
            snprintf(msg, msglen, "evaluation: %s of %s failed",
                     k ? "kid --save-features" : "fid --save-stats", e->ref);
            return -1;
        }
    }
    return 0;
}

int ddpm_eval_score(struct ddpm_eval *e, struct ddpm_scores *sc, char *msg, size_t msglen)
{
    static const char *files[] = {"config.json", "scheduler_config.json", "model_index.json",
                                  "diffusion_pytorch_model.safetensors", "samples.npy"};
    char samples[4200];
    int st;

    if (e->K > 1)
        return par_score(e, sc, msg, msglen);
    snprintf(samples, sizeof samples, "%s/samples.npy", e->dir);
    /* interrupted (1): the children got the Ctrl-C too; skip, the trainer saves a checkpoint */
    st = sample(e, 0, samples, msg, msglen);
    for (int k = 0; k < 2 && st == 0; k++)
        st = score_tool(e, k, samples, 1, sc, msg, msglen);
    if (st == -1)
        return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(samples, sizeof samples, "%s/%s", e->dir, files[i]);
        unlink(samples);
    }
    rmdir(e->dir);
    return trainer_stop() ? 1 : 0;
}

void ddpm_eval_remove_ref(struct ddpm_eval *e)
{
    if (e->fid_ref[0] && e->rank == 0) {
        unlink(e->fid_ref);
        unlink(e->kid_ref);
    }
    e->fid_ref[0] = '\0';
}

int ddpm_eval_write_json(const char *path, long step, double loss, const struct ddpm_scores *sc,
                         char *msg, size_t msglen)
{
    struct outfile of;
    if (outfile_open(&of, path, msg, msglen) == -1)
        return -1;
    fprintf(of.f, "{\n    \"step\": %ld,\n    \"train_loss\": %.7g,\n    \"fid\": %.7g,\n"
                  "    \"kid\": %.7g,\n    \"kid_std\": %.7g\n}\n", step, loss, sc->fid,
            sc->kid, sc->kid_std);
    return outfile_commit(&of, msg, msglen);
}
