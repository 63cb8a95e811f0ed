/* The vae tools' shared command-line helpers (vae_cli.h). */
#include "models/vae_cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "io/npy.h"

int vae_load_images(const char *path, struct npy *t, char *msg, size_t msglen)
{
    if (npy_load_images(path, t, msg, msglen) == -1)
        return -1;
    if (t->shape[1] != 32 || t->shape[2] != 32) {
        snprintf(msg, msglen, "want 32x32 images, got %" PRId64 "x%" PRId64, t->shape[2],
                 t->shape[1]);
        npy_free(t);
        return -1;
    }
    return 0;
}

int vae_images_create(struct outfile *of, const char *path, int64_t n, char *msg,
                      size_t msglen)
{
    int64_t shape[4] = {n, 32, 32, 3};
    if (outfile_open(of, path, msg, msglen) == -1)
        return -1;
    if (npy_write_header(of->f, NPY_U8, 4, shape, msg, msglen) == -1) {
        outfile_abort(of);
        return -1;
    }
    return 0;
}

int vae_tool_opt(struct vae_tool_opts *o, struct opt *p, int c)
{
    switch (c) {
    case 'm': o->model = optarg; return 1;
    case 'o': o->out = optarg; return 1;
    case 'S': return opt_long(p, 0, LONG_MAX, &o->seed) == -1 ? -1 : 1;
    case 'b': return opt_long(p, 1, 65536, &o->batch) == -1 ? -1 : 1;
    case 't': return opt_long(p, 1, 1024, &o->threads) == -1 ? -1 : 1;
    case 'v': o->verbose = 1; return 1;
    default: return 0;
    }
}
