/* ckpt-convert: PyTorch checkpoints (.pth/.bin, zip or legacy) and safetensors files to
   safetensors, laid out as the safetensors library writes them. Floating tensors become F32
   (--keep-dtype keeps F16/BF16/F64); integer and bool tensors (num_batches_tracked) are kept
   as they are unless --float-only. The pickle is interpreted, never executed: anything but a
   state dict of tensors is refused. --list prints name, dtype and shape per tensor. IN and
   OUT may be "-" (stdin, stdout). */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/opt.h"
#include "io/pth.h"
#include "io/st.h"
#include "util/util.h"
#include "nn/tool.h"

static const char usage_line[] =
    "usage: ckpt-convert [--keep-dtype] [--float-only] [--threads N] IN OUT.safetensors\n"
    "       ckpt-convert --list IN\n";

static const char help[] =
    "\n"
    "Converts a PyTorch checkpoint (torch.save .pth/.bin, zip or legacy format) or a\n"
    "safetensors file to safetensors, laid out as the safetensors library writes it, with\n"
    "the input's metadata and \"format\": \"pt\". The pickle is interpreted, never run:\n"
    "anything but a state dict of tensors is refused. IN and OUT may be - (stdin, stdout).\n"
    "By default floating tensors become F32 and integer and bool tensors (e.g.\n"
    "num_batches_tracked) are kept as they are.\n"
    "\n"
    "  --keep-dtype        keep F16, BF16 and F64 tensors as they are\n"
    "  --float-only        leave out the integer and bool tensors\n"
    "  --list              print name, dtype and shape of each tensor of IN instead, one\n"
    "                      tab-separated line each\n"
    "  -t, --threads N     accepted like every tool's (default 2); conversion is I/O\n"
    "                      bound and single-threaded\n"
    "  -h, --help          this text\n"
    "\n"
    "Example:\n"
    "  ckpt-convert vae.pth vae.safetensors && vae-sample --model vae.safetensors -n 16\n";

static void usage(int status, const char *problem)
{
    tool_usage(status, problem, usage_line, help);
    exit(status);
}

static int is_float(enum st_dtype d)
{
    return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64;
}

/* safetensors starts with a little-endian header length and '{' at byte 8 */
static int open_any(struct st_file *f, const char *path, char *msg, size_t msglen)
{
    unsigned char head[9];
    FILE *fp = fopen(path, "rb");
    size_t n;
    if (fp == NULL) {
        snprintf(msg, msglen, "%s", strerror(errno));
        return -1;
    }
    n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (n == sizeof head && head[8] == '{' && head[6] == 0 && head[7] == 0)
        return st_open(f, path, msg, msglen);
    return pth_open(f, path, msg, msglen);
}

/* "-": stdin into an unlinked temporary file, so both readers can mmap and sniff it */
static int open_stdin(struct st_file *f, char *msg, size_t msglen)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    unsigned char buf[1 << 16];
    size_t n;
    snprintf(path, sizeof path, "%s/ckpt-convert.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd == -1) {
        snprintf(msg, msglen, "temporary file in %.150s: %s", dir && *dir ? dir : "/tmp",
                 strerror(errno));
        return -1;
    }
    FILE *tmp = fdopen(fd, "wb");
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (fwrite(buf, 1, n, tmp) != n)
            break;
    int bad = ferror(stdin) || ferror(tmp);
    if (fclose(tmp) != 0 || bad) {
        snprintf(msg, msglen, "copying stdin to a temporary file: %s", strerror(errno));
        unlink(path);
        return -1;
    }
    int rc = open_any(f, path, msg, msglen);
    unlink(path);
    return rc;
}

static void list(const struct st_file *f)
{
    for (int i = 0; i < f->n; i++) {
        const struct st_tensor *t = &f->t[i];
        printf("%s\t%s\t", t->name, st_dtype_name(t->dtype));
        for (int k = 0; k < t->ndim; k++)
            printf("%s%lld", k ? "," : "", (long long)t->shape[k]);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    enum { O_LIST = 256, O_KEEP, O_FLOAT };
    static const struct option lo[] = {
        {"list", 0, 0, O_LIST}, {"keep-dtype", 0, 0, O_KEEP}, {"float-only", 0, 0, O_FLOAT},
        {"threads", 1, 0, 't'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int do_list = 0, keep = 0, float_only = 0, c;
    long threads;
    char msg[TOOL_MSG];
    struct st_file f;
    struct opt op;

    opt_init(&op, "t:h", lo);
    while ((c = opt_next(&op, argc, argv)) != -1) {
        switch (c) {
        case O_LIST: do_list = 1; break;
        case O_KEEP: keep = 1; break;
        case O_FLOAT: float_only = 1; break;
        case 't':
            /* accepted like every tool's; conversion is I/O bound and single-threaded */
            if (opt_long(&op, 1, 1024, &threads) == -1)
                usage(2, op.msg);
            break;
        case 'h': usage(0, NULL); break;
        default: usage(2, NULL);
        }
    }
    argc -= optind;
    argv += optind;
    if (argc == 0)
        usage(2, do_list ? "IN is required" : "IN and OUT are required");
    if (!do_list && argc == 1)
        usage(2, "OUT is required");
    if (argc > (do_list ? 1 : 2)) {
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[do_list ? 1 : 2]);
        usage(2, msg);
    }
    tool_init(&argc, &argv, &(struct tool){0}, msg, sizeof msg);
    if (!do_list && util_check_output(argv[1], msg, sizeof msg) == -1)
        errx(1, "%s: %s", argv[1], msg);

    if ((strcmp(argv[0], "-") == 0 ? open_stdin(&f, msg, sizeof msg)
                                   : open_any(&f, argv[0], msg, sizeof msg)) == -1)
        errx(1, "%s: %s", argv[0], msg);
    if (do_list) {
        list(&f);
        st_close(&f);
        if (fclose(stdout) != 0)
            err(1, "stdout");
        return 0;
    }

    /* output table: converted floats in one block, other tensors pointing into f */
    struct st_tensor *t = xcalloc((size_t)f.n + 1, sizeof *t);
    size_t nconv = 0;
    int n = 0;
    for (int i = 0; i < f.n; i++)
        if (is_float(f.t[i].dtype) && !keep && f.t[i].dtype != ST_F32)
            nconv += (size_t)st_numel(&f.t[i]);
    float *block = xmalloc(nconv * sizeof(float) + 1), *q = block;
    for (int i = 0; i < f.n; i++) {
        const struct st_tensor *s = &f.t[i];
        if (!is_float(s->dtype) && float_only)
            continue;
        t[n] = *s;
        if (is_float(s->dtype) && !keep && s->dtype != ST_F32) {
            st_to_f32(s, q);
            t[n].dtype = ST_F32;
            t[n].data = q;
            t[n].nbytes = (size_t)st_numel(s) * sizeof(float);
            q += st_numel(s);
        }
        n++;
    }

    /* keep the input's metadata; "format": "pt" as diffusers and transformers expect */
    const char **mk = xcalloc((size_t)f.n_meta + 1, sizeof *mk);
    const char **mv = xcalloc((size_t)f.n_meta + 1, sizeof *mv);
    int nm = 0;
    for (int i = 0; i < f.n_meta; i++, nm++) {
        mk[nm] = f.meta_keys[i];
        mv[nm] = f.meta_vals[i];
    }
    if (st_meta(&f, "format") == NULL) {
        mk[nm] = "format";
        mv[nm++] = "pt";
    }
    if (st_save_tensors(argv[1], t, n, mk, mv, nm, msg, sizeof msg) == -1)
        errx(1, "%s: %s", argv[1], msg);
    free(mk);
    free(mv);
    free(block);
    free(t);
    st_close(&f);
    if (fclose(stdout) != 0)
        err(1, "stdout");
    return 0;
}
