/* What the vae tools (vae-train, vae-sample, vae-recon) share on the command line, around the
   model of vae.h: reading and writing their 32x32 uint8 image arrays and the options of
   vae-sample and vae-recon. (nn_blas_setup does their OMP_WAIT_POLICY=passive re-exec.) */
#ifndef VAE_CLI_H
#define VAE_CLI_H
#include <stddef.h>
#include <stdint.h>

#include "util/opt.h"
#include "util/util.h"

struct npy;
struct outfile;

/* npy_load_images, then insists on 32x32: t is uint8 (N,32,32,3); on -1 t holds nothing */
int vae_load_images(const char *path, struct npy *t, char *msg, size_t msglen);
/* outfile_open(path) and the .npy header of uint8 (n,32,32,3) images; on -1 nothing is left */
int vae_images_create(struct outfile *of, const char *path, int64_t n, char *msg,
                      size_t msglen);
/* Options vae-sample and vae-recon share: -m/--model, -o/--output, -S/--seed 0..LONG_MAX,
   -b/--batch-size 1..65536, -t/--threads 1..1024, -v/--verbose. */
struct vae_tool_opts {
    const char *model, *out;
    long seed, batch, threads;
    int verbose;
};
#define VAE_TOOL_OPTS_INIT {NULL, "-", 0, 256, util_threads_default(), 0}
/* opt_next's c and optarg: 1 if c is one of them (applied), 0 if it is not, -1 if the value
   is bad (p->msg says why) */
int vae_tool_opt(struct vae_tool_opts *o, struct opt *p, int c);
#endif
