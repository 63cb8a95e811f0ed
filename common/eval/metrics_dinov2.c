/* DINOv2 features of an input into Frechet statistics (metrics_dinov2.h). */
#include "eval/metrics_dinov2.h"

#include <stdio.h>
#include <stdlib.h>

#include "io/img.h"
#include "util/par.h"
#include "util/util.h"

/* the features of images [lo, hi) of in into f (hi - lo, dim): -1 with msg naming the file
   of a folder that does not decode */
static int features(float *f, struct metrics_input *in, int64_t lo, int64_t hi,
                    const struct dinov2 *net, char *msg, size_t msglen)
{
    struct dinov2_ws ws;
    int rc = 0;
    /* every image runs alone at dgm-eval's 224 x 224: features do not depend on batching */
    dinov2_ws_init(&ws, net, DINOV2_SIZE, DINOV2_SIZE);
    for (int64_t i = lo; i < hi; i++) {
        float *fi = f + (size_t)(i - lo) * net->cfg.dim;
        if (in->kind == METRICS_IMAGES) {
            int H = (int)in->arr.shape[1], W = (int)in->arr.shape[2];
            dinov2_forward_u8(net, &ws, fi, metrics_input_image(in, i), 1, H, W);
            continue;
        }
        struct img im;
        if (img_load(in->files[i], &im, msg, msglen) == -1) {
            char m2[512];
            snprintf(m2, sizeof m2, "%s: %s", in->files[i], msg);
            snprintf(msg, msglen, "%s", m2);
            rc = -1;
            break;
        }
        dinov2_forward_u8(net, &ws, fi, im.rgb, 1, im.h, im.w);
        img_free(&im);
    }
    dinov2_ws_free(&ws);
    return rc;
}

int metrics_dinov2_stats(struct metrics_stats *st, struct metrics_input *in, int64_t lo,
                         int64_t hi, const struct dinov2 *net, char *msg, size_t msglen)
{
    int d = net->cfg.dim;
    if (in->kind != METRICS_IMAGES && in->kind != METRICS_FOLDER) {
        snprintf(msg, msglen, "--fd-dinov2 needs images: %s hold no DINOv2 features",
                 in->kind == METRICS_STATS ? "statistics" : "Inception features");
        return -1;
    }
    /* a share's features are (share, dim) floats, 4 KiB an image for ViT-L: small beside
       the network, so a rank keeps them and sends them whole */
    float *f = xmalloc(((size_t)(hi - lo) + 1) * d * sizeof(float));
    if (features(f, in, lo, hi, net, msg, msglen) == -1) {
        free(f);
        return -1;
    }
    if (par_rank() > 0) { /* rank 0 adds them after its own and those of the ranks before */
        par_send(f, (size_t)(hi - lo) * d * sizeof(float));
        free(f);
        return 0;
    }
    /* metrics_stats folds rows in fixed chunks whatever the calls: the sums of one process */
    metrics_stats_add(st, f, hi - lo);
    free(f);
    for (int r = 1; r < par_size(); r++) {
        size_t len;
        float *g = par_recv(r, &len);
        metrics_stats_add(st, g, (int64_t)(len / (sizeof(float) * d)));
        free(g);
    }
    return 0;
}
