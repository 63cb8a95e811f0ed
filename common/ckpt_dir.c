/* checkpoint-STEP folders of a training output folder; see ckpt_dir.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_dir.h"
#include "util.h"

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

int ckpt_dir_remove(const char *outdir, long step, char *msg, size_t msglen)
{
    static const char *files[] = {"config.json", "scheduler_config.json",
                                  "diffusion_pytorch_model.safetensors", "model_index.json",
                                  "training_state.safetensors"};
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", outdir, step);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    if (rmdir(dir) == -1) {
        snprintf(msg, msglen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}
