/* The FID Inception v3 forward, blocks in pytorch-fid's order, so it reads top to bottom
   against the module it reproduces (the layer table and the weights are in inception.c, the
   workspace and the batch driver in inception_run.c).

   Images run in groups of INCEPTION_GROUP slots (inception_run.c's forward_batch). Each image
   of a group runs alone through the stem and the 35x35 blocks up to Mixed_5d: there a map has
   1225 to 22201 pixels, enough columns for an efficient GEMM. The group then runs together from
   Mixed_6a on, in a channel-major layout (C,G,H,W): a conv is a GEMM over the G*OH*OW columns
   of the group (or 8 of them for the 1x7 and 7x1 convs by Winograd, nn_wino7.c), so the
   weights of the 17x17 and 8x8 stages (most of the 95 MB) stream from memory once per group
   instead of once per image, and the 8x8 GEMMs get more than 64 columns. Pools and bias/ReLU
   treat (C,G) as C*G channels, concatenation is by channel offset as for one image.

   Every GEMM's shape and every column's place in it are set by the layer and the image's slot
   alone (the group always has G slots, empty ones zero), and everything else is per pixel or
   per image. So an image's features are the same bit for bit whatever its batch, wherever the
   batch starts in the run and whatever the thread count, under any OpenBLAS kernel
   (tests/unit/test_inception.c checks it under each kernel the CPU runs). */
#include "models/inception.h"

#include <stdlib.h>
#include <string.h>

#include "models/inception_net.h"
#include "nn/nn.h"
#include "util/util.h"

#define COL_FLOATS (1 << 20) /* an im2col block holds at most this many floats ... */
#define COL_MIN 256          /* ... but at least this many columns */

static const struct inception_layer *const layers = inception_layers;

/* ---- the forward ---- */


static void act(struct ws *ws, size_t n)
{
    if (n > ws->max_act)
        ws->max_act = n;
}

static void need_scratch(struct ws *ws, size_t n)
{
    if (n > ws->max_scratch)
        ws->max_scratch = n;
}

/* p (C,n) += b (C), then ReLU */
static void bias_relu(float *p, const float *b, int C, size_t n)
{
    for (int o = 0; o < C; o++) {
        float *q = p + (size_t)o * n, bo = b[o];
        for (size_t i = 0; i < n; i++) {
            float v = q[i] + bo;
            q[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

static void relu(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = p[i] > 0.0f ? p[i] : 0.0f;
}

static int col_block(int K, int cols)
{
    int blk = COL_FLOATS / K;
    blk = blk < COL_MIN ? COL_MIN : blk;
    return blk < cols ? blk : cols;
}

/* out (OC,G,OH,OW) = ReLU(conv(in (C,G,H,W), w) + b) by im2col, in blocks of columns */
static void conv_im2col(float *out, float *col, const float *in, const float *w, const float *b,
                        const struct nn_conv *g)
{
    int K = g->C * g->KH * g->KW, cols = g->N * g->OH * g->OW, blk = col_block(K, cols);
    size_t HW = (size_t)g->H * g->W;
    for (int j0 = 0; j0 < cols; j0 += blk) {
        int n = cols - j0 < blk ? cols - j0 : blk;
        nn_im2col(col, n, in, g->N * HW, HW, g, j0, n);
        nn_sgemm_serial(0, 0, g->OC, n, K, 1.0f, w, K, col, n, 0.0f, out + j0, cols);
    }
    bias_relu(out, b, g->OC, cols);
}

/* (A,B,n) -> (B,A,n) */
static void swap01(float *dst, const float *src, int A, int B, size_t n)
{
    for (int a = 0; a < A; a++)
        for (int i = 0; i < B; i++)
            memcpy(dst + ((size_t)i * A + a) * n, src + ((size_t)a * B + i) * n,
                   n * sizeof(float));
}

/* floats of scratch for conv_wino */
static size_t wino_scratch(const struct nn_conv *g)
{
    size_t n = nn_conv_wino_scratch(g);
    if (g->N > 1)
        n += (size_t)g->N * (g->C * g->H * g->W + g->OC * g->OH * g->OW);
    return n;
}

/* out (OC,G,OH,OW) = ReLU(conv + b) by Winograd on the weights u transformed at load. The nn
   core takes images (G,C,H,W): a group goes through it transposed, whole images, so each
   output tile sums as it does for G = 1. */
static void conv_wino(float *out, float *scratch, const float *in, const float *u,
                      const float *b, const struct nn_conv *g)
{
    size_t HW = (size_t)g->H * g->W, OHW = (size_t)g->OH * g->OW, n = g->N * g->OC * OHW;
    if (g->N == 1) {
        nn_conv2d_forward_wino(out, scratch, in, u, b, g);
    } else {
        float *x = scratch, *y = x + g->N * g->C * HW;
        swap01(x, in, g->C, g->N, HW);
        nn_conv2d_forward_wino(y, y + n, x, u, b, g);
        swap01(out, y, g->N, g->OC, OHW);
    }
    relu(out, n);
}

/* BasicConv2d l (or the nl adjacent fused 1x1 layers l..l+nl-1) on in (C,G,H,W) ->
   out (OC,G,OH,OW) */
static void conv(const struct inception *net, struct ws *ws, float *out, const float *in, int l,
                 int nl, int H, int W, int G, int *OHp, int *OWp)
{
    const struct inception_layer *y = &layers[l];
    int OC = 0;
    for (int k = 0; k < nl; k++)
        OC += layers[l + k].OC;
    struct nn_conv g;
    nn_conv_init_ex(&g, G, y->C, H, W, OC, y->KH, y->KW, y->S, y->S, y->PH, y->PW, y->PH, y->PW);
    g.nt = 1; /* a thread per group: all single-threaded inside */
    size_t cols = (size_t)G * g.OH * g.OW;
    *OHp = g.OH;
    *OWp = g.OW;
    int pointwise = y->KH == 1 && y->KW == 1 && y->S == 1, w7 = nn_wino7_ok(&g);
    if (ws->plan) {
        act(ws, (size_t)OC * cols);
        if (ws->wino_n != NULL && nl == 1)
            ws->wino_n[l] = nn_conv_wino_size(&g);
        if (net->wino.u[l] != NULL && w7)
            need_scratch(ws, nn_wino7_scratch(&g));
        else if (net->wino.u[l] != NULL)
            need_scratch(ws, wino_scratch(&g));
        else if (!pointwise)
            need_scratch(ws, (size_t)y->C * y->KH * y->KW * col_block(y->C * y->KH * y->KW,
                                                                        (int)cols));
        return;
    }
    if (pointwise) {
        nn_sgemm_serial(0, 0, OC, (int)cols, y->C, 1.0f, net->w[l], y->C, in, (int)cols, 0.0f,
                        out, (int)cols);
        bias_relu(out, net->b[l], OC, cols);
    } else if (net->wino.u[l] != NULL && w7)
        nn_wino7_forward_serial(out, ws->scratch, in, net->wino.u[l], net->b[l], &g,
                                NN_WINO7_CNHW | NN_WINO7_RELU);
    else if (net->wino.u[l] != NULL)
        conv_wino(out, ws->scratch, in, net->wino.u[l], net->b[l], &g);
    else
        conv_im2col(out, ws->scratch, in, net->w[l], net->b[l], &g);
}

/* 3x3 pool on C planes (C*G for a group) */
static void pool(struct ws *ws, float *out, const float *in, int C, int H, int W, int max, int S,
                 int P, int *OH, int *OW)
{
    *OH = nn_pool_out(H, 3, S, P);
    *OW = nn_pool_out(W, 3, S, P);
    if (ws->plan) {
        act(ws, (size_t)C * *OH * *OW);
        return;
    }
    if (max)
        nn_max_pool2d_planes(out, in, C, H, W, 3, S, P);
    else
        nn_avg_pool2d_planes(out, in, C, H, W, 3, S, P, 0);
}

/* The block's 1x1 convs on x (C,G,H,W): layers l..l+nl-1 into t (their OCs stacked), plus,
   when pooled, branch_pool = layer l+nl (after the average pool, or the max pool when
   maxpool) into pout. Fused: one GEMM for all of them, the average pool applied to
   branch_pool's pre-activation rows (see the layer table). */
static void group_1x1(const struct inception *net, struct ws *ws, float *t, float *pout,
                      const float *x, int l, int nl, int H, int W, int G, int maxpool)
{
    int OC = 0, oh, ow, C = layers[l].C, PF = layers[l + nl].OC;
    size_t cols = (size_t)G * H * W;
    for (int k = 0; k < nl; k++)
        OC += layers[l + k].OC;
    if (ws->plan) {
        act(ws, (size_t)(OC + PF) * cols);
        act(ws, (size_t)C * cols);
        return;
    }
    if (net->fuse && !maxpool) {
        nn_sgemm_serial(0, 0, OC + PF, (int)cols, C, 1.0f, net->w[l], C, x, (int)cols, 0.0f, t,
                        (int)cols);
        bias_relu(t, net->b[l], OC, cols);
        nn_avg_pool2d_planes(pout, t + (size_t)OC * cols, PF * G, H, W, 3, 1, 1, 0);
        bias_relu(pout, net->b[l + nl], PF, cols);
        return;
    }
    if (net->fuse)
        conv(net, ws, t, x, l, nl, H, W, G, &oh, &ow);
    else
        for (int k = 0, off = 0; k < nl; off += layers[l + k].OC, k++)
            conv(net, ws, t + (size_t)off * cols, x, l + k, 1, H, W, G, &oh, &ow);
    float *v = ws->buf[5];
    pool(ws, v, x, C * G, H, W, maxpool, 1, 1, &oh, &ow);
    conv(net, ws, pout, v, l + nl, 1, H, W, G, &oh, &ow);
}

static void copy_ch(struct ws *ws, float *dst, const float *src, size_t n)
{
    if (!ws->plan)
        memcpy(dst, src, n * sizeof(float));
}

/* FIDInceptionA: x (IN,G,35,35) -> out (224+pf,G,35,35) */
static void block_a(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W, int G)
{
    size_t cs = (size_t)G * H * W; /* channel stride */
    int oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3];
    group_1x1(net, ws, t, out + 224 * cs, x, l, 3, H, W, G, 0); /* 64 | 48 | 64 */
    copy_ch(ws, out, t, 64 * cs);
    conv(net, ws, out + 64 * cs, t + 64 * cs, l + 4, 1, H, W, G, &oh, &ow);
    conv(net, ws, u, t + 112 * cs, l + 5, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 128 * cs, u, l + 6, 1, H, W, G, &oh, &ow);
}

/* InceptionB (Mixed_6a): x (288,G,35,35) -> out (768,G,17,17) */
static void block_b(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int IN, int H, int W, int G)
{
    int oh, ow, h2, w2;
    float *t = ws->buf[2], *u = ws->buf[3];
    conv(net, ws, out, x, l, 1, H, W, G, &oh, &ow);
    size_t cs = (size_t)G * oh * ow;
    conv(net, ws, t, x, l + 1, 1, H, W, G, &h2, &w2);
    conv(net, ws, u, t, l + 2, 1, H, W, G, &h2, &w2);
    conv(net, ws, out + 384 * cs, u, l + 3, 1, H, W, G, &h2, &w2);
    pool(ws, out + 480 * cs, x, IN * G, H, W, 1, 2, 0, &h2, &w2);
}

/* FIDInceptionC: x (768,G,17,17) -> out (768,G,17,17) */
static void block_c(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W, int G)
{
    size_t cs = (size_t)G * H * W;
    int c7 = layers[l + 1].OC, oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3], *v = ws->buf[4];
    group_1x1(net, ws, t, out + 576 * cs, x, l, 3, H, W, G, 0); /* 192 | c7 | c7 */
    copy_ch(ws, out, t, 192 * cs);
    conv(net, ws, u, t + 192 * cs, l + 4, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 192 * cs, u, l + 5, 1, H, W, G, &oh, &ow);
    conv(net, ws, u, t + (192 + c7) * cs, l + 6, 1, H, W, G, &oh, &ow);
    conv(net, ws, v, u, l + 7, 1, H, W, G, &oh, &ow);
    conv(net, ws, u, v, l + 8, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 384 * cs, u, l + 9, 1, H, W, G, &oh, &ow);
}

/* InceptionD (Mixed_7a): x (768,G,17,17) -> out (1280,G,8,8) */
static void block_d(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W, int G)
{
    size_t cs = (size_t)G * H * W;
    int oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3], *v = ws->buf[4];
    if (net->fuse)
        conv(net, ws, t, x, l, 2, H, W, G, &oh, &ow);          /* 192 | 192 */
    else {
        conv(net, ws, t, x, l, 1, H, W, G, &oh, &ow);
        conv(net, ws, t + 192 * cs, x, l + 1, 1, H, W, G, &oh, &ow);
    }
    conv(net, ws, out, t, l + 2, 1, H, W, G, &oh, &ow);
    size_t ocs = (size_t)G * oh * ow;
    conv(net, ws, u, t + 192 * cs, l + 3, 1, H, W, G, &oh, &ow);
    conv(net, ws, v, u, l + 4, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 320 * ocs, v, l + 5, 1, H, W, G, &oh, &ow);
    pool(ws, out + 512 * ocs, x, 768 * G, H, W, 1, 2, 0, &oh, &ow);
}

/* FIDInceptionE_1 (avg pool) / E_2 (max pool): x (IN,G,8,8) -> out (2048,G,8,8) */
static void block_e(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W, int G, int maxpool)
{
    size_t cs = (size_t)G * H * W;
    int oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3];
    group_1x1(net, ws, t, out + 1856 * cs, x, l, 3, H, W, G, maxpool); /* 320|384|448 */
    copy_ch(ws, out, t, 320 * cs);
    const float *b3 = t + 320 * cs, *bd = t + 704 * cs;
    conv(net, ws, out + 320 * cs, b3, l + 4, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 704 * cs, b3, l + 5, 1, H, W, G, &oh, &ow);
    conv(net, ws, u, bd, l + 6, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 1088 * cs, u, l + 7, 1, H, W, G, &oh, &ow);
    conv(net, ws, out + 1472 * cs, u, l + 8, 1, H, W, G, &oh, &ow);
}

/* out (G,C): the mean over HW of each channel and image of in (C,G,HW) */
static void spatial_mean(float *out, const float *in, int C, int G, int HW)
{
    for (int c = 0; c < C; c++)
        for (int k = 0; k < G; k++) {
            const float *p = in + ((size_t)c * G + k) * HW;
            double s = 0;
            for (int i = 0; i < HW; i++)
                s += p[i];
            out[(size_t)k * C + c] = (float)(s / HW);
        }
}

/* stage s done: its output y (n floats). Returns 1 when the caller wanted this stage, so the
   forward can stop. */
static int stage_done(struct ws *ws, int s, const float *y, size_t n)
{
    if (ws->plan || ws->stage != s)
        return 0;
    ws->stage_n = n;
    if (n <= ws->stage_len)
        memcpy(ws->stage_out, y, n * sizeof(float));
    return 1;
}


/* One image x (3,299,299) up to Mixed_5d; d64, d192 may be NULL. Returns its output
   (288,35,35), in ws->buf[1], or NULL when the stage asked for was before. */
float *inception_net_head(const struct inception *net, struct ws *ws, const float *x,
                          float *d64, float *d192)
{
    /* the stem, stages 0-6: Conv2d_1a..2b, max pool, Conv2d_3b, 4a, max pool (layer < 0);
       each from one ping-pong buffer into the other */
    static const struct {
        int layer, C;
    } stem[7] = {{0, 32}, {1, 32}, {2, 64}, {-1, 64}, {3, 80}, {4, 192}, {-1, 192}};
    float *a = ws->buf[0], *b = ws->buf[1], *buf[2] = {a, b};
    const float *src = x;
    int H = INCEPTION_SIZE, W = INCEPTION_SIZE, s = 0;
    for (int k = 0; k < 7; k++) {
        float *out = buf[k % 2];
        if (stem[k].layer >= 0)
            conv(net, ws, out, src, stem[k].layer, 1, H, W, 1, &H, &W);
        else
            pool(ws, out, src, stem[k].C, H, W, 1, 2, 0, &H, &W);
        if (stage_done(ws, s++, out, (size_t)stem[k].C * H * W))
            return NULL;
        float *dims = k == 3 ? d64 : k == 6 ? d192 : NULL; /* after each max pool */
        if (dims != NULL && !ws->plan)
            spatial_mean(dims, out, stem[k].C, 1, H * W);
        src = out;
    }
    /* Mixed_5b..5d: the stem's output is in a */
    static const int la[3] = { L_5B, L_5C, L_5D };
    for (int k = 0; k < 3; k++) {
        float *in = k % 2 == 0 ? a : b, *out = k % 2 == 0 ? b : a;
        int C = 224 + layers[la[k] + 3].OC;
        block_a(net, ws, out, in, la[k], H, W, 1);
        act(ws, (size_t)C * H * W);
        if (stage_done(ws, s++, out, (size_t)C * H * W))
            return NULL;
    }
    return b; /* Mixed_5d */
}

/* out (G,2023): sFID's features from Mixed_6d's output y (768,G,17,17), whose first 192
   channels are branch1x1 after BN and ReLU (TF's mixed_6/conv); channels 0..6 in TF's NHWC
   order, (h*17 + w)*7 + c, as guided-diffusion's [..., :7] and reshape take them */
static void spatial_nhwc(float *out, const float *y, int G)
{
    const int HW = INCEPTION_SPATIAL_HW * INCEPTION_SPATIAL_HW, C = INCEPTION_SPATIAL_C;
    for (int k = 0; k < G; k++)
        for (int c = 0; c < C; c++) {
            const float *p = y + ((size_t)c * G + k) * HW;
            float *q = out + (size_t)k * INCEPTION_SPATIAL_DIMS + c;
            for (int i = 0; i < HW; i++)
                q[(size_t)i * C] = p[i];
        }
}

/* A group from Mixed_6a on: x (288,G,35,35) -> pool3 (G,2048), logits (G,1008),
   d768 (G,768), sp (G,2023); any may be NULL */
void inception_net_tail(const struct inception *net, struct ws *ws, const float *x, int G,
                        float *pool3, float *logits, float *d768, float *sp)
{
    float *a = ws->buf[0], *b = ws->buf[1];
    int H = 17, W = 17, s = TAIL_STAGE;
    block_b(net, ws, b, x, L_6A, TAIL_C, 35, 35, G);
    act(ws, (size_t)768 * G * H * W);
    if (stage_done(ws, s++, b, (size_t)768 * G * H * W))
        return;
    static const int lc[4] = { L_6B, L_6C, L_6D, L_6E };
    const float *in = b;
    for (int k = 0; k < 4; k++) {
        float *out = k % 2 == 0 ? a : b;
        block_c(net, ws, out, in, lc[k], H, W, G);
        if (lc[k] == L_6D && sp != NULL && !ws->plan) {
            spatial_nhwc(sp, out, G);
            if (pool3 == NULL && logits == NULL && d768 == NULL && ws->stage < 0)
                return; /* nothing asked for past Mixed_6d (fid --dims 2023) */
        }
        if (stage_done(ws, s++, out, (size_t)768 * G * H * W))
            return;
        in = out;
    }
    /* Mixed_6e output is in b */
    if (d768 != NULL && !ws->plan)
        spatial_mean(d768, b, 768, G, H * W);
    block_d(net, ws, a, b, L_7A, H, W, G);
    H = nn_pool_out(H, 3, 2, 0);
    W = nn_pool_out(W, 3, 2, 0);
    act(ws, (size_t)1280 * G * H * W);
    if (stage_done(ws, s++, a, (size_t)1280 * G * H * W))
        return;
    block_e(net, ws, b, a, L_7B, H, W, G, 0);
    act(ws, (size_t)2048 * G * H * W);
    if (stage_done(ws, s++, b, (size_t)2048 * G * H * W))
        return;
    block_e(net, ws, a, b, L_7C, H, W, G, 1);
    if (stage_done(ws, s++, a, (size_t)2048 * G * H * W))
        return;
    if (ws->plan)
        return;
    float *p3 = b;
    spatial_mean(p3, a, INCEPTION_DIMS, G, H * W);
    if (stage_done(ws, s++, p3, INCEPTION_DIMS))
        return;
    if (pool3 != NULL)
        memcpy(pool3, p3, (size_t)G * INCEPTION_DIMS * sizeof(float));
    if (logits != NULL) { /* nn_linear_forward, on this thread */
        for (int k = 0; k < G; k++)
            memcpy(logits + (size_t)k * INCEPTION_CLASSES, net->fc_b,
                   INCEPTION_CLASSES * sizeof(float));
        nn_sgemm_serial(0, 1, G, INCEPTION_CLASSES, INCEPTION_DIMS, 1.0f, p3, INCEPTION_DIMS,
                        net->fc_w, INCEPTION_DIMS, 1.0f, logits, INCEPTION_CLASSES);
    }
}
