/* checkpoint-STEP folders of a training output folder; see ckpt_dir.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/ckpt_dir.h"
#include "util/util.h"

int ckpt_dir_path(char *buf, size_t len, const char *outdir, long step)
{
    int n = snprintf(buf, len, "%s/checkpoint-%ld", outdir, step);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

long ckpt_dir_steps(const char *outdir, long **steps)
{
    DIR *d = opendir(outdir);
    struct dirent *de;
    long n = 0, cap = 0;
    *steps = NULL;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        long s;
        if (strncmp(de->d_name, "checkpoint-", 11) != 0 ||
            util_parse_long(de->d_name + 11, 0, LONG_MAX, &s) == -1)
            continue;
        if (n == cap)
            *steps = xrealloc(*steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **steps);
        (*steps)[n++] = s;
    }
    closedir(d);
    if (n > 0)
        qsort(*steps, (size_t)n, sizeof **steps, cmp_long);
    return n;
}

long ckpt_dir_latest(const char *outdir)
{
    long *steps, n = ckpt_dir_steps(outdir, &steps), best = n > 0 ? steps[n - 1] : -1;
    free(steps);
    return best;
}

/* deletes the checkpoint files in dir, then dir */
/* one of the files a checkpoint folder holds, or the temporary file of one being written
   (outfile_open's NAME.PID.XXXXXX, left by a process killed while writing it) */
static int ckpt_file(const char *name)
{
    static const char *files[] = {"config.json", "scheduler_config.json",
                                  "diffusion_pytorch_model.safetensors", "model_index.json",
                                  "training_state.safetensors"};
    long pid;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(name, files[i]) == 0 || outfile_temp_name(name, files[i], &pid))
            return 1;
    return 0;
}

static int remove_ckpt_folder(const char *dir)
{
    char path[4200];
    DIR *d = opendir(dir);
    struct dirent *de;
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (ckpt_file(de->d_name) && n > 0 && (size_t)n < sizeof path)
                unlink(path);
        }
        closedir(d);
    }
    return rmdir(dir);
}

int ckpt_dir_remove(const char *outdir, long step, char *msg, size_t msglen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", outdir, step);
    if (remove_ckpt_folder(dir) == -1) {
        snprintf(msg, msglen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int ckpt_dir_sweep(const char *outdir)
{
    DIR *d = opendir(outdir);
    struct dirent *de;
    int n = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        long step, pid;
        int used = 0;
        char kind[4], path[4200], base[4200];
        if (sscanf(de->d_name, "checkpoint-%ld.%3[a-z]-%ld%n", &step, kind, &pid, &used) != 3 ||
            de->d_name[used] != '\0' || (strcmp(kind, "tmp") != 0 && strcmp(kind, "old") != 0) ||
            pid <= 0 || pid > INT_MAX || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", outdir, de->d_name);
        snprintf(base, sizeof base, "%s/checkpoint-%ld", outdir, step);
        if (strcmp(kind, "old") == 0 && !util_exists(base) && rename(path, base) == 0) {
            n++;
            continue;
        }
        remove_ckpt_folder(path);
        n++;
    }
    closedir(d);
    return n;
}
