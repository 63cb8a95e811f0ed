/* Shared plumbing of the metric tools; see metrics_cli.h. */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/metrics_cli.h"
#include "nn/nn.h"
#include "nn/tool.h"
#include "io/npy.h"
#include "util/par.h"
#include "util/shard.h"
#include "util/util.h"

void metrics_cli_init(struct metrics_cli *o, enum inception_resize mode)
{
    memset(o, 0, sizeof *o);
    o->batch = 50;
    o->threads = util_threads_default();
    o->n_shards = 1;
    o->mode = mode;
}


int metrics_cli_opt(struct metrics_cli *o, int c, const char *arg, char *msg, size_t msglen)
{
    long v;
    switch (c) {
    case 'b':
        if (metrics_cli_long(arg, 1, 4096, &v, "--batch-size", msg, msglen) == -1)
            return -1;
        o->batch = (int)v;
        break;
    case 't':
        if (metrics_cli_long(arg, 1, 256, &v, "--threads", msg, msglen) == -1)
            return -1;
        o->threads = (int)v;
        break;
    case 'w':
        o->weights = arg;
        break;
    case 'r':
        if (strcmp(arg, "pytorch-fid") == 0)
            o->mode = INCEPTION_RESIZE_PYTORCH_FID;
        else if (strcmp(arg, "torch-fidelity") == 0)
            o->mode = INCEPTION_RESIZE_TORCH_FIDELITY;
        else if (strcmp(arg, "clean") == 0)
            o->mode = INCEPTION_RESIZE_CLEAN;
        else
            return opt_bad_value(msg, msglen, "--resize", arg,
                                 "want pytorch-fid, torch-fidelity or clean");
        break;
    case 'j':
        o->json = 1;
        break;
    case METRICS_CLI_SKIP_BAD:
        o->skip_bad = 1;
        break;
    case 'v':
        o->verbose = 1;
        break;
    case 'D':
    case 'W':
        o->ignored = 1;
        break;
    default:
        return 0;
    }
    return 1;
}

static void rows_of(const void *o, const struct metrics_input *in, int64_t *lo, int64_t *hi)
{
    metrics_cli_range(o, in, lo, hi);
}

int metrics_cli_open_input(struct metrics_input *in, const char *path,
                           const struct metrics_cli *o, const char *tool, char *msg,
                           size_t msglen)
{
    char **bad = NULL;
    int n_bad = 0, rc;
    int64_t n;
    if (par_size() > 1 && strcmp(path, "-") == 0) {
        memset(in, 0, sizeof *in);
        snprintf(msg, msglen, "under mpirun, read a file: mpirun passes stdin to rank 0 only");
        return -1;
    }
    /* under mpirun a rank reads only the rows of an .npy it runs (its share of the images;
       of a feature cache, rank 0 all and the others none); a plain run, as ever, all */
    if ((par_size() > 1 ? metrics_input_open_rows(in, path, rows_of, o, msg, msglen)
                        : metrics_input_open(in, path, msg, msglen)) == -1)
        return -1;
    if (!o->skip_bad)
        return 0;
    n = in->n;
    rc = metrics_input_drop_bad(in, &bad, &n_bad, msg, msglen);
    for (int i = 0; i < n_bad && par_rank() == 0; i++) /* under mpirun: once, not per rank */
        fprintf(stderr, "%s: %s (skipped)\n", tool, bad[i]);
    if (n_bad > 0 && rc == 0 && par_rank() == 0)
        fprintf(stderr, "%s: %s: skipped %d of %lld images\n", tool, path, n_bad, (long long)n);
    strv_free(bad, n_bad);
    if (rc == -1)
        metrics_input_free(in);
    return rc;
}

int metrics_cli_getopt(struct metrics_cli *o, int argc, char **argv,
                       const struct option *longopts, char *msg, size_t msglen)
{
    int c, res;
    msg[0] = '\0';
    if (o->op.longopts != longopts)
        opt_init(&o->op, "vhb:t:", longopts);
    while ((c = opt_next(&o->op, argc, argv)) != -1) {
        if ((res = metrics_cli_opt(o, c, optarg, msg, msglen)) == 0)
            return c;
        if (res == -1)
            return '?';
    }
    return -1;
}

int metrics_cli_start_par(struct metrics_cli *o, int *argc, char ***argv, char *msg,
                          size_t msglen)
{
    const struct tool t = {.mpi = 1, .verbose = o->verbose, .threads = o->threads};
    /* ranks > 0 wait in here for rank 0's checks */
    if (tool_init_blas(argc, argv, &t, msg, msglen) == -1)
        return -1;
    o->verbose = o->verbose && par_rank() == 0;
    if (o->ignored && par_rank() == 0)
        warnx("note: --device and --num-workers are ignored: this runs on the CPU with "
              "--threads %d", o->threads);
    return 0;
}

void metrics_cli_range(const struct metrics_cli *o, const struct metrics_input *in,
                       int64_t *lo, int64_t *hi)
{
    long a, b, c, d;
    shard_range((long)in->n, o->shard, o->n_shards, &a, &b);
    if (par_size() > 1 && metrics_cli_needs_net(in)) {
        shard_range(b - a, par_rank(), par_size(), &c, &d);
        b = a + d;
        a += c;
    } else if (par_rank() > 0) {
        a = b;
    }
    *lo = a;
    *hi = b;
}

int metrics_cli_check_split(const struct metrics_cli *o, const struct metrics_input *in,
                            char *msg, size_t msglen)
{
    long a, b;
    if (o->n_shards > in->n) {
        snprintf(msg, msglen, "--shard %d/%d: more shards than the %lld %s", o->shard,
                 o->n_shards, (long long)in->n,
                 in->kind == METRICS_FEATURES ? "feature rows" : "images");
        return -1;
    }
    shard_range((long)in->n, o->shard, o->n_shards, &a, &b);
    if (par_size() > 1 && metrics_cli_needs_net(in) && par_size() > b - a) {
        snprintf(msg, msglen, "%d processes for %ld images: want at least one image each",
                 par_size(), b - a);
        return -1;
    }
    return 0;
}

int64_t metrics_cli_rows(const struct metrics_cli *o, const struct metrics_input *in)
{
    long a, b;
    shard_range((long)in->n, o->shard, o->n_shards, &a, &b);
    return b - a;
}

int metrics_cli_shard(struct metrics_cli *o, const char *arg, char *msg, size_t msglen)
{
    if (shard_parse(arg, &o->shard, &o->n_shards) == -1)
        return opt_bad_value(msg, msglen, "--shard", arg, SHARD_WANT);
    o->shard_given = 1;
    return 0;
}

int metrics_cli_shard_needs_save(const struct metrics_cli *o, int save, const char *needs,
                                 const char *tool, char *msg, size_t msglen)
{
    if (!o->shard_given || save)
        return 0;
    snprintf(msg, msglen, "--shard needs --save-features: %s all the images; join the shards' "
             "features with npycat, then give %s the joined file", needs, tool);
    return -1;
}

int metrics_cli_long(const char *arg, long lo, long hi, long *v, const char *what, char *msg,
                     size_t msglen)
{
    return opt_parse_long(what, arg, lo, hi, v, msg, msglen);
}

const char *metrics_cli_resize_name(enum inception_resize mode)
{
    return mode == INCEPTION_RESIZE_PYTORCH_FID ? "pytorch-fid"
           : mode == INCEPTION_RESIZE_CLEAN   ? "clean"
                                              : "torch-fidelity";
}

int metrics_cli_needs_net(const struct metrics_input *in)
{
    return in->kind == METRICS_IMAGES || in->kind == METRICS_FOLDER;
}

int metrics_cli_open_net(struct inception *net, const struct metrics_cli *o, const char *argv0,
                         char *desc, size_t desclen, char *msg, size_t msglen)
{
    char used[4096];
    if (inception_open(net, o->weights, argv0, used, sizeof used, msg, msglen) == -1)
        return -1;
    snprintf(desc, desclen, "weights %s; preprocessing %s; batch %d", used,
             o->mode == INCEPTION_RESIZE_PYTORCH_FID
                 ? "pytorch-fid (u8/255, bilinear half-pixel to 299, 2x-1)"
             : o->mode == INCEPTION_RESIZE_CLEAN
                 ? "clean (0..255, PIL float bicubic antialiased to 299, (x-128)/128)"
                 : "torch-fidelity (0..255, TF1 bilinear to 299, (x-128)/128)",
             o->batch);
    return 0;
}

int metrics_cli_load_net(struct inception *net, const struct metrics_cli *o, const char *argv0,
                         const char *tool, const char *settings, char *msg, size_t msglen)
{
    char desc[4352];
    if (metrics_cli_open_net(net, o, argv0, desc, sizeof desc, msg, msglen) == -1)
        return -1;
    if (o->verbose)
        fprintf(stderr, "%s: %s%s%s; %d threads\n", tool, desc, settings != NULL ? "; " : "",
                settings != NULL ? settings : "", nn_get_threads());
    if (net->synthetic && par_rank() == 0)
        warnx(METRICS_CLI_SYNTHETIC_WARNING);
    return 0;
}

struct sink_ctx {
    struct metrics_cli_sink *s;
    struct progress pr;
    int verbose;
};

void metrics_cli_logits(float *logits, const float *pool3, int64_t n, const float *fc_w)
{
    for (int64_t i = 0; i < n; i++)
        nn_sgemm_serial(0, 1, 1, INCEPTION_CLASSES, INCEPTION_DIMS, 1.0f,
                        pool3 + (size_t)i * INCEPTION_DIMS, INCEPTION_DIMS, fc_w,
                        INCEPTION_DIMS, 0.0f, logits + (size_t)i * INCEPTION_CLASSES,
                        INCEPTION_CLASSES);
}

/* f (n, s->d) to where s says; logits_unbiased row by row: independent of the batch and
   thread count */
static int sink_rows(struct metrics_cli_sink *s, const float *f, int n)
{
    int w = s->fc_w != NULL ? INCEPTION_CLASSES : s->d;
    if (s->out != NULL) {
        if (fwrite(f, sizeof(float) * s->d, n, s->out) != (size_t)n)
            return -1;
    } else if (s->st != NULL) {
        metrics_stats_add(s->st, f, n);
    } else {
        if (s->n + n > s->cap) {
            s->cap = (s->n + n) * 2;
            s->rows = xrealloc(s->rows, (size_t)s->cap * w * sizeof(float));
        }
        if (s->fc_w != NULL)
            metrics_cli_logits(s->rows + (size_t)s->n * INCEPTION_CLASSES, f, n, s->fc_w);
        else
            memcpy(s->rows + (size_t)s->n * w, f, (size_t)n * w * sizeof(float));
    }
    s->n += n;
    return 0;
}

static int sink(void *p, const float *f, const float *sp, int n)
{
    struct sink_ctx *c = p;
    if (sink_rows(c->s, f, n) != 0 || (sp != NULL && sink_rows(c->s->spatial, sp, n) != 0))
        return -1;
    if (c->verbose)
        progress_update(&c->pr, (long)c->s->n, NULL);
    return 0;
}

/* rank 0 under mpirun: rank r's rows (width s->d, from par_send), and then its spatial rows
   when s has a spatial sink, into s, in pieces of batch */
static int take_rank(struct sink_ctx *c, int r, int batch)
{
    size_t len, slen = 0;
    float *rows = par_recv(r, &len), *sp = NULL;
    int64_t n = (int64_t)(len / (sizeof(float) * c->s->d));
    int rc = 0, sd = c->s->spatial != NULL ? c->s->spatial->d : 0;
    if (sd > 0) {
        sp = par_recv(r, &slen);
        if ((int64_t)(slen / (sizeof(float) * sd)) != n)
            rc = -1;
    }
    for (int64_t i = 0; i < n && rc == 0; i += batch) {
        int b = n - i < batch ? (int)(n - i) : batch;
        rc = sink(c, rows + (size_t)i * c->s->d, sp != NULL ? sp + (size_t)i * sd : NULL, b);
    }
    free(rows);
    free(sp);
    return rc;
}

int metrics_cli_features(struct metrics_cli_sink *s, struct metrics_input *in,
                         const char *path, const struct inception *net,
                         const struct metrics_cli *o, const char *tool, char *msg,
                         size_t msglen)
{
    struct sink_ctx c;
    struct metrics_cli_sink mine, mine_sp;
    char m[1024];
    int64_t lo, hi;
    /* under mpirun every rank runs its range; a rank > 0 collects its rows (and spatial
       rows) and sends them to rank 0, which puts them after its own, in rank order: the
       rows of one process */
    int gather = par_size() > 1 && metrics_cli_needs_net(in);
    metrics_cli_range(o, in, &lo, &hi);
    if (gather && par_rank() > 0) {
        memset(&mine, 0, sizeof mine);
        memset(&mine_sp, 0, sizeof mine_sp);
        mine.d = s->d;
        if (s->spatial != NULL) {
            mine_sp.d = s->spatial->d;
            mine.spatial = &mine_sp;
        }
        c.s = &mine;
    } else {
        c.s = s;
    }
    c.verbose = o->verbose;
    progress_init(&c.pr, tool, path, (long)metrics_cli_rows(o, in));
    if (metrics_input_features_range(in, lo, hi, net, o->batch, o->mode, s->d,
                                     s->spatial != NULL, sink, &c, m, sizeof m) == -1)
        goto fail;
    if (gather && par_rank() > 0) {
        par_send(mine.rows, (size_t)mine.n * mine.d * sizeof(float));
        free(mine.rows);
        if (s->spatial != NULL) {
            par_send(mine_sp.rows, (size_t)mine_sp.n * mine_sp.d * sizeof(float));
            free(mine_sp.rows);
        }
    } else if (gather) {
        for (int r = 1; r < par_size(); r++)
            if (take_rank(&c, r, o->batch) != 0) {
                snprintf(m, sizeof m, "write error");
                goto fail;
            }
    }
    if (o->verbose)
        progress_done(&c.pr);
    return 0;
fail:
    if ((s->out != NULL && ferror(s->out)) ||
        (s->spatial != NULL && s->spatial->out != NULL && ferror(s->spatial->out)))
        snprintf(msg, msglen, "writing features: write error");
    else
        snprintf(msg, msglen, "%s: %s", path, m);
    return -1;
}

int metrics_cli_save_features(const char *out, struct metrics_input *in, const char *path,
                              int d, const struct inception *net, const struct metrics_cli *o,
                              const char *tool, char *msg, size_t msglen)
{
    struct metrics_cli_sink s;
    struct outfile of;
    int64_t shape[2] = { metrics_cli_rows(o, in), d };
    char m[1024];
    memset(&s, 0, sizeof s);
    s.d = d;
    /* every rank has opened its input and loaded the network before rank 0 makes its
       temporary output: a rank whose node lacks a file ends the job while no temporary file
       exists (mpirun's SIGKILL, 1 s after its SIGTERM, can come before a loaded rank 0's
       clean-up) */
    par_barrier();
    if (par_rank() > 0) /* its rows go to rank 0, which writes the file */
        return metrics_cli_features(&s, in, path, net, o, tool, msg, msglen);
    if (outfile_open(&of, out, m, sizeof m) == -1)
        goto fail;
    if (npy_write_header(of.f, NPY_F32, 2, shape, m, sizeof m) == -1) {
        outfile_abort(&of);
        goto fail;
    }
    s.out = of.f;
    if (metrics_cli_features(&s, in, path, net, o, tool, msg, msglen) == -1) {
        outfile_abort(&of);
        return -1;
    }
    if (outfile_commit(&of, m, sizeof m) == -1)
        goto fail;
    return 0;
fail:
    snprintf(msg, msglen, "%s: %s", out, m);
    return -1;
}
