/* DINOv2 features of an input into Frechet statistics or a feature file, and the checks of
   such a file read back (metrics_dinov2.h). */
#include "eval/metrics_dinov2.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/img.h"
#include "io/npy.h"
#include "util/par.h"
#include "util/util.h"

/* the features of images [lo, hi) of in into f (hi - lo, dim): -1 with msg naming the file
   of a folder that does not decode */
static int features(float *f, struct metrics_input *in, int64_t lo, int64_t hi,
                    const struct dinov2 *net, char *msg, size_t msglen)
{
    struct dinov2_ws ws;
    int rc = 0;
    size_t per = 3 * (size_t)DINOV2_SIZE * DINOV2_SIZE;
    /* DINOV2_BATCH images at a time share the network's GEMMs (the weights are read once
       for them); features do not depend on the batching (dinov2.h) */
    dinov2_ws_init(&ws, net, DINOV2_SIZE, DINOV2_SIZE);
    for (int64_t i = lo; i < hi && rc == 0; i += DINOV2_BATCH) {
        int b = hi - i < DINOV2_BATCH ? (int)(hi - i) : DINOV2_BATCH;
        float *fi = f + (size_t)(i - lo) * net->cfg.dim;
        if (in->kind == METRICS_IMAGES) {
            int H = (int)in->arr.shape[1], W = (int)in->arr.shape[2];
            dinov2_forward_u8(net, &ws, fi, metrics_input_image(in, i), b, H, W);
            continue;
        }
        /* a folder's images have their own sizes: each resized into its slot of ws.pre */
        for (int k = 0; k < b; k++) {
            struct img im;
            if (img_load(in->files[i + k], &im, msg, msglen) == -1) {
                char m2[512];
                snprintf(m2, sizeof m2, "%s: %s", in->files[i + k], msg);
                snprintf(msg, msglen, "%s", m2);
                rc = -1;
                break;
            }
            dinov2_preprocess(ws.pre + k * per, ws.tmp, im.rgb, im.h, im.w);
            img_free(&im);
        }
        if (rc == 0)
            dinov2_forward(net, &ws, fi, ws.pre, b);
    }
    dinov2_ws_free(&ws);
    return rc;
}

/* where run() puts rank 0's rows, in index order */
typedef int (*rows_sink)(void *ctx, const float *f, int64_t n);

/* the features of [lo, hi) of in through net; rank 0's sink gets its own rows, then every
   other rank's in rank order (a rank > 0 sends its share to rank 0 and its sink gets none).
   -1 with msg from features(), or "write error" when the sink fails. */
static int run(struct metrics_input *in, int64_t lo, int64_t hi, const struct dinov2 *net,
               rows_sink sink, void *ctx, char *msg, size_t msglen)
{
    int d = net->cfg.dim, rc = 0;
    if (in->kind != METRICS_IMAGES && in->kind != METRICS_FOLDER) {
        snprintf(msg, msglen, "the DINOv2 network runs on images, not on %s",
                 in->kind == METRICS_STATS ? "statistics" : "feature rows");
        return -1;
    }
    /* a share's features are (share, dim) floats, 4 KiB an image for ViT-L: small beside
       the network, so a rank keeps them and sends them whole */
    float *f = xmalloc(((size_t)(hi - lo) + 1) * d * sizeof(float));
    if (features(f, in, lo, hi, net, msg, msglen) == -1) {
        free(f);
        return -1;
    }
    if (par_rank() > 0) {
        par_send(f, (size_t)(hi - lo) * d * sizeof(float));
        free(f);
        return 0;
    }
    rc = sink(ctx, f, hi - lo);
    free(f);
    /* every rank's share is received, even after a failed write: the senders must finish */
    for (int r = 1; r < par_size(); r++) {
        size_t len;
        float *g = par_recv(r, &len);
        if (rc == 0)
            rc = sink(ctx, g, (int64_t)(len / (sizeof(float) * d)));
        free(g);
    }
    if (rc != 0)
        snprintf(msg, msglen, "write error");
    return rc == 0 ? 0 : -1;
}

static int stats_sink(void *ctx, const float *f, int64_t n)
{
    /* metrics_stats folds rows in fixed chunks whatever the calls: the sums of one process */
    metrics_stats_add(ctx, f, n);
    return 0;
}

int metrics_dinov2_stats(struct metrics_stats *st, struct metrics_input *in, int64_t lo,
                         int64_t hi, const struct dinov2 *net, char *msg, size_t msglen)
{
    return run(in, lo, hi, net, stats_sink, st, msg, msglen);
}

struct file_sink {
    FILE *f;
    int d;
};

static int file_sink(void *ctx, const float *f, int64_t n)
{
    struct file_sink *s = ctx;
    size_t k = (size_t)n * s->d;
    return fwrite(f, sizeof(float), k, s->f) == k ? 0 : -1;
}

int metrics_dinov2_save(const char *out, struct metrics_input *in, int64_t lo, int64_t hi,
                        int64_t n_rows, const struct dinov2 *net, char *msg, size_t msglen)
{
    struct outfile of;
    struct file_sink s = { NULL, net->cfg.dim };
    int64_t shape[2] = { n_rows, net->cfg.dim };
    char m[1024];
    /* every rank has opened its input and loaded the network before rank 0 makes its
       temporary file, as metrics_cli_save_features: a rank that fails to start ends the job
       while no temporary file exists */
    par_barrier();
    if (par_rank() > 0)
        return run(in, lo, hi, net, file_sink, &s, msg, msglen);
    if (outfile_open(&of, out, m, sizeof m) == -1)
        goto fail;
    if (npy_write_header(of.f, NPY_F32, 2, shape, m, sizeof m) == -1) {
        outfile_abort(&of);
        goto fail;
    }
    s.f = of.f;
    if (run(in, lo, hi, net, file_sink, &s, m, sizeof m) == -1) {
        outfile_abort(&of);
        /* a folder's file that does not decode names itself; a failed write is out's */
        if (strcmp(m, "write error") == 0)
            goto fail;
        snprintf(msg, msglen, "%s", m);
        return -1;
    }
    if (outfile_commit(&of, m, sizeof m) == -1)
        goto fail;
    return 0;
fail:
    snprintf(msg, msglen, "%s: %s", out, m);
    return -1;
}

int metrics_dinov2_check_cache(const struct metrics_input *in, int dim, char *msg,
                               size_t msglen)
{
    assert(in->kind == METRICS_FEATURES);
    if (in->d != dim) {
        snprintf(msg, msglen, "%d-d features; FD-DINOv2 wants %d-d DINOv2 features%s", in->d,
                 dim, in->d == 2048 ? " (2048-d are Inception pool3's)" : "");
        return -1;
    }
    if (in->n < 2) {
        snprintf(msg, msglen, "%lld feature row: FD-DINOv2 needs at least 2 for a covariance",
                 (long long)in->n);
        return -1;
    }
    const float *f = in->arr.data;
    for (int64_t i = 0; i < in->arr.shape[0]; i++)
        for (int k = 0; k < dim; k++)
            if (!isfinite(f[i * dim + k])) {
                snprintf(msg, msglen, "row %lld has a NaN or infinite value",
                         (long long)(in->row0 + i));
                return -1;
            }
    return 0;
}
