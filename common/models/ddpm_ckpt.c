/* ddpm-train's checkpoint folders: the diffusers model folder of the current weights plus
   training_state.safetensors (Adam moments, EMA shadow, the run's metadata). */
#include "models/ddpm_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/st.h"
#include "models/ddpm_train.h"
#include "models/unet.h"
#include "nn/sched.h"
#include "util/util.h"

static void join(char *out, size_t len, const char *dir, const char *name)
{
    if (snprintf(out, len, "%s/%s", dir, name) >= (int)len)
        out[0] = '\0'; /* callers checked the dir's length */
}

/* rm -r of a folder holding only files */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        join(path, sizeof path, dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int ddpm_ckpt_save(const char *dir, const struct ddpm_train *tr, const struct sched_config *sc,
                   const char *const *keys, const char *const *vals, int n_meta, char *msg,
                   size_t msglen)
{
    char tmp[4096], path[4096], old[4096], m[256];
    struct st_tensor t[3];
    const float *src[3] = {tr->m, tr->v, tr->ema};
    const char *names[3] = {"adam_m", "adam_v", "ema"};
    int nt = tr->ema != NULL ? 3 : 2;

    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid()) >= (int)sizeof tmp - 64) {
        snprintf(msg, msglen, "path too long");
        return -1;
    }
    remove_flat_dir(tmp);
    if (unet_save_dir(tr->u, tmp, m, sizeof m) == -1)
        goto fail;
    join(path, sizeof path, tmp, "scheduler_config.json");
    if (sched_config_save(sc, path, m, sizeof m) == -1)
        goto fail;
    for (int i = 0; i < nt; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = (char *)names[i];
        t[i].dtype = ST_F32;
        t[i].ndim = 1;
        t[i].shape[0] = (int64_t)tr->u->n_params;
        t[i].data = src[i];
        t[i].nbytes = tr->u->n_params * sizeof(float);
    }
    join(path, sizeof path, tmp, "training_state.safetensors");
    if (st_save_tensors(path, t, nt, keys, vals, n_meta, m, sizeof m) == -1)
        goto fail;
    /* replace an existing dir: move it aside first so a crash leaves one of the two */
    snprintf(old, sizeof old, "%s.old-%ld", dir, (long)getpid());
    if (util_is_dir(dir) && rename(dir, old) == -1) {
        snprintf(m, sizeof m, "%s", strerror(errno));
        goto fail;
    }
    if (rename(tmp, dir) == -1) {
        snprintf(m, sizeof m, "%s", strerror(errno));
        goto fail;
    }
    remove_flat_dir(old);
    return 0;
fail:
    snprintf(msg, msglen, "%s", m);
    remove_flat_dir(tmp);
    return -1;
}

int ddpm_ckpt_load_state(const char *dir, struct ddpm_train *tr, struct st_file *f, char *msg,
                         size_t msglen)
{
    char path[4096], m[160];
    float *dst[3] = {tr->m, tr->v, tr->ema};
    const char *names[3] = {"adam_m", "adam_v", "ema"};
    join(path, sizeof path, dir, "training_state.safetensors");
    if (st_open(f, path, m, sizeof m) == -1) {
        snprintf(msg, msglen, "training_state.safetensors: %s", m);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        const struct st_tensor *t = st_find(f, names[i]);
        if (dst[i] == NULL) {
            if (t != NULL) {
                snprintf(msg, msglen, "checkpoint has EMA weights: resume with --use-ema");
                goto fail;
            }
            continue;
        }
        if (t == NULL) {
            snprintf(msg, msglen, i == 2 ? "checkpoint has no EMA weights (trained without "
                     "--use-ema)" : "training_state.safetensors: no %s", names[i]);
            goto fail;
        }
        if (t->dtype != ST_F32 || t->ndim != 1 || t->shape[0] != (int64_t)tr->u->n_params) {
            snprintf(msg, msglen, "training_state.safetensors: %s: want F32 (%zu)", names[i],
                     tr->u->n_params);
            goto fail;
        }
        memcpy(dst[i], t->data, tr->u->n_params * sizeof(float));
    }
    return 0;
fail:
    st_close(f);
    return -1;
}
