/* Evaluation of a training run by ddpm-sample, fid and kid; see ddpm_eval.h. */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
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
    snprintf(e->dir, sizeof e->dir, "%s/.eval-%ld", outdir, (long)getpid());
    e->ref = ref;
    e->weights = weights;
    e->samples = samples;
    e->steps = steps;
    e->seed = seed;
    e->threads = threads;
}

/* Runs argv[0] from bindir, its stdout into out (NUL-terminated). 0 on exit status 0, -1 on
   any other, -2 with msg if it could not be started. The child says why exec failed. */
static int run_tool(const char *bindir, char **argv, char *out, size_t outlen, char *msg,
                    size_t msglen)
{
    int fd[2], status;
    size_t len = 0;
    ssize_t k;
    pid_t pid;
    char exe[4300], **env = par_child_env(); /* under mpirun, not a second rank */
    snprintf(exe, sizeof exe, "%s/%s", bindir, argv[0]);
    if (pipe(fd) == -1) {
        snprintf(msg, msglen, "pipe: %s", strerror(errno));
        return -2;
    }
    fflush(NULL);
    if ((pid = fork()) == -1) {
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        return -2;
    }
    if (pid == 0) {
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
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int ddpm_eval_ref(struct ddpm_eval *e, char *msg, size_t msglen)
{
    char out[256], thr[32], *argv[12];
    int a, rc;
    if (e->fid_ref[0])
        return 0;
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
        if ((rc = run_tool(e->bindir, argv, out, sizeof out, msg, msglen)) < 0) {
            e->fid_ref[0] = '\0';
            if (rc == -2)
                return -1;
            if (trainer_stop())
                return 0;
            snprintf(msg, msglen, "evaluation: %s of %s failed",
                     k ? "kid --save-features" : "fid --save-stats", e->ref);
            return -1;
        }
    }
    return 0;
}

/* the number after key in out */
static int read_score(const char *out, const char *key, double *v)
{
    const char *p = strstr(out, key);
    return p != NULL && sscanf(p + strlen(key), "%lf", v) == 1 ? 0 : -1;
}

int ddpm_eval_score(struct ddpm_eval *e, struct ddpm_scores *sc, char *msg, size_t msglen)
{
    static const char *files[] = {"config.json", "scheduler_config.json", "model_index.json",
                                  "diffusion_pytorch_model.safetensors", "samples.npy"};
    char samples[4200], n[32], steps[32], seed[32], thr[32], out[4096];
    char *argv[24];
    int a, rc;

    snprintf(thr, sizeof thr, "%ld", e->threads);
    snprintf(samples, sizeof samples, "%s/samples.npy", e->dir);
    snprintf(n, sizeof n, "%ld", e->samples);
    snprintf(steps, sizeof steps, "%ld", e->steps);
    snprintf(seed, sizeof seed, "%ld", e->seed);
    a = 0;
    argv[a++] = "ddpm-sample", argv[a++] = "--model", argv[a++] = e->dir, argv[a++] = "-n";
    argv[a++] = n, argv[a++] = "--scheduler", argv[a++] = "ddim", argv[a++] = "--steps";
    argv[a++] = steps, argv[a++] = "--seed", argv[a++] = seed, argv[a++] = "--threads";
    argv[a++] = thr, argv[a++] = "-o", argv[a++] = samples, argv[a] = NULL;
    if ((rc = run_tool(e->bindir, argv, out, sizeof out, msg, msglen)) < 0) {
        if (rc == -2)
            return -1;
        /* the children got the Ctrl-C too: skip, the trainer saves a checkpoint */
        if (trainer_stop())
            goto done;
        snprintf(msg, msglen, "evaluation: ddpm-sample failed");
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        a = 0;
        argv[a++] = k ? "kid" : "fid", argv[a++] = "--threads", argv[a++] = thr;
        if (e->weights != NULL)
            argv[a++] = "--weights", argv[a++] = (char *)e->weights;
        argv[a++] = samples, argv[a++] = k ? e->kid_ref : e->fid_ref, argv[a] = NULL;
        if ((rc = run_tool(e->bindir, argv, out, sizeof out, msg, msglen)) < 0) {
            if (rc == -2)
                return -1;
            if (trainer_stop())
                goto done;
            snprintf(msg, msglen, "evaluation: %s failed", argv[0]);
            return -1;
        }
        if (k == 0 && read_score(out, "FID:", &sc->fid) == -1) {
            snprintf(msg, msglen, "evaluation: fid: unexpected output");
            return -1;
        }
        if (k == 1 && (read_score(out, "kernel_inception_distance_mean:", &sc->kid) == -1 ||
                       read_score(out, "kernel_inception_distance_std:", &sc->kid_std) == -1)) {
            snprintf(msg, msglen, "evaluation: kid: unexpected output");
            return -1;
        }
    }
done:
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(samples, sizeof samples, "%s/%s", e->dir, files[i]);
        unlink(samples);
    }
    rmdir(e->dir);
    return trainer_stop() ? 1 : 0;
}

void ddpm_eval_remove_ref(struct ddpm_eval *e)
{
    if (e->fid_ref[0]) {
        unlink(e->fid_ref);
        unlink(e->kid_ref);
    }
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
