/* DINOv2 features of an input into Frechet statistics (metrics_dinov2.h). */
#include "eval/metrics_dinov2.h"

#include <stdio.h>
#include <stdlib.h>

#include "io/img.h"
#include "util/util.h"

int metrics_dinov2_stats(struct metrics_stats *st, struct metrics_input *in,
                         const struct dinov2 *net, char *msg, size_t msglen)
{
    if (in->kind != METRICS_IMAGES && in->kind != METRICS_FOLDER) {
        snprintf(msg, msglen, "--fd-dinov2 needs images: %s hold no DINOv2 features",
                 in->kind == METRICS_STATS ? "statistics" : "Inception features");
        return -1;
    }
    struct dinov2_ws ws;
    float *f = xmalloc((size_t)net->cfg.dim * sizeof(float));
    int rc = 0;
    /* every image runs alone at dgm-eval's 224 x 224: features do not depend on batching */
    dinov2_ws_init(&ws, net, DINOV2_SIZE, DINOV2_SIZE);
    for (int64_t i = 0; i < in->n && rc == 0; i++) {
        if (in->kind == METRICS_IMAGES) {
            int H = (int)in->arr.shape[1], W = (int)in->arr.shape[2];
            dinov2_forward_u8(net, &ws, f, (const uint8_t *)in->arr.data + (size_t)i * H * W * 3,
                              1, H, W);
        } else {
            struct img im;
            if (img_load(in->files[i], &im, msg, msglen) == -1) {
                char m2[512];
                snprintf(m2, sizeof m2, "%s: %s", in->files[i], msg);
                snprintf(msg, msglen, "%s", m2);
                rc = -1;
                break;
            }
            dinov2_forward_u8(net, &ws, f, im.rgb, 1, im.h, im.w);
            img_free(&im);
        }
        metrics_stats_add(st, f, 1);
    }
    dinov2_ws_free(&ws);
    free(f);
    return rc;
}
