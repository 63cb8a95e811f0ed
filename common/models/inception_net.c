/* Over 600 lines: the whole network's forward in one place, blocks in pytorch-fid's order,
   so it reads top to bottom against the module it reproduces.

   The FID Inception v3 forward (the layer table and the weights are in inception.c).

   Images run in groups of INCEPTION_GROUP slots (see forward_batch). Each image of a group
   runs alone through the stem and the 35x35 blocks up to Mixed_5d: there a map has 1225 to
   22201 pixels, enough columns for an efficient GEMM. The group then runs together from
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

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "models/inception_net.h"
#include "nn/nn.h"
#include "util/util.h"

#define COL_FLOATS (1 << 20) /* an im2col block holds at most this many floats ... */
#define COL_MIN 256          /* ... but at least this many columns */

static const struct inception_layer *const layers = inception_layers;

/* ---- the forward ---- */

/* A thread's workspace. In plan mode nothing is computed: the sizes every op needs are
   recorded, so the workspace is sized by the same code that uses it. */
struct ws {
    int plan;
    size_t max_act, max_scratch;
    size_t *wino_n;    /* plan for inception_net_prepare: Winograd weight floats per layer */
    float *buf[6];     /* max_act floats each */
    float *grp;        /* (288,G,35,35): the group's Mixed_5d outputs */
    float *scratch;
    int stage;         /* capture the output of this stage into stage_out (-1: none) */
    float *stage_out;
    size_t stage_len, stage_n;
};

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
        if (net->u[l] != NULL && w7)
            need_scratch(ws, nn_wino7_scratch(&g));
        else if (net->u[l] != NULL)
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
    } else if (net->u[l] != NULL && w7)
        nn_wino7_forward_serial(out, ws->scratch, in, net->u[l], net->b[l], &g,
                                NN_WINO7_CNHW | NN_WINO7_RELU);
    else if (net->u[l] != NULL)
        conv_wino(out, ws->scratch, in, net->u[l], net->b[l], &g);
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

/* the tail starts at Mixed_6a (stage 10), on Mixed_5d outputs (288,G,35,35) */
#define TAIL_STAGE 10
#define TAIL_C 288
#define TAIL_HW (35 * 35)

/* One image x (3,299,299) up to Mixed_5d; d64, d192 may be NULL. Returns its output
   (288,35,35), in ws->buf[1], or NULL when the stage asked for was before. */
static float *forward_head(const struct inception *net, struct ws *ws, const float *x,
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

/* A group from Mixed_6a on: x (288,G,35,35) -> pool3 (G,2048), logits (G,1008),
   d768 (G,768); any may be NULL */
static void forward_tail(const struct inception *net, struct ws *ws, const float *x, int G,
                         float *pool3, float *logits, float *d768)
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

/* The batch's outputs, each may be NULL: pool3 (N,2048), logits (N,1008), d64 (N,64),
   d192 (N,192), d768 (N,768) */
struct outs {
    float *pool3, *logits, *d64, *d192, *d768;
};

static float *row(float *p, int i, int n)
{
    return p != NULL ? p + (size_t)i * n : NULL;
}

/* Images i0..i0+G-1: x (3,299,299) each, or u8 images (H,W,3) preprocessed into ws->xin */
struct input {
    const float *x;
    const uint8_t *img;
    int H, W;
    enum inception_resize mode;
    float *xin, *tmp; /* per thread */
};

/* Slots s0..s1-1 of a group of G, holding images i0, i0+1, ...: each image alone through the
   head, then the group's tail; empty slots hold zeros and their outputs are dropped. tail_out:
   G * (2048 + 1008 + 768) floats for the tail's outputs of every slot. */
static void forward_group(const struct inception *net, struct ws *ws, const struct input *in,
                          const struct outs *o, int i0, int G, int s0, int s1, float *tail_out)
{
    size_t HW = TAIL_HW;
    int tail = o->pool3 != NULL || o->logits != NULL || o->d768 != NULL || ws->stage >= 0;
    for (int k = s0; k < s1; k++) {
        int i = i0 + k - s0;
        const float *xi = in->xin;
        if (in->x != NULL)
            xi = in->x + (size_t)i * 3 * INCEPTION_SIZE * INCEPTION_SIZE;
        else
            inception_pre_run(in->xin, in->tmp, in->img + (size_t)i * in->H * in->W * 3, in->H,
                              in->W, in->mode);
        float *y = forward_head(net, ws, xi, row(o->d64, i, 64), row(o->d192, i, 192));
        if (y == NULL)
            return;
        if (tail)
            for (int c = 0; c < TAIL_C; c++)
                memcpy(ws->grp + ((size_t)c * G + k) * HW, y + c * HW, HW * sizeof(float));
    }
    if (!tail)
        return;
    for (int k = 0; k < G; k++)
        if (k < s0 || k >= s1)
            for (int c = 0; c < TAIL_C; c++)
                memset(ws->grp + ((size_t)c * G + k) * HW, 0, HW * sizeof(float));
    if (tail_out == NULL) { /* inception_stage: the output is captured inside */
        forward_tail(net, ws, ws->grp, G, NULL, NULL, NULL);
        return;
    }
    float *p3 = tail_out, *lg = p3 + (size_t)G * INCEPTION_DIMS;
    float *d7 = lg + (size_t)G * INCEPTION_CLASSES;
    forward_tail(net, ws, ws->grp, G, o->pool3 ? p3 : NULL, o->logits ? lg : NULL,
                 o->d768 ? d7 : NULL);
    int n = s1 - s0;
    if (o->pool3 != NULL)
        memcpy(row(o->pool3, i0, INCEPTION_DIMS), p3 + (size_t)s0 * INCEPTION_DIMS,
               (size_t)n * INCEPTION_DIMS * sizeof(float));
    if (o->logits != NULL)
        memcpy(row(o->logits, i0, INCEPTION_CLASSES), lg + (size_t)s0 * INCEPTION_CLASSES,
               (size_t)n * INCEPTION_CLASSES * sizeof(float));
    if (o->d768 != NULL)
        memcpy(row(o->d768, i0, 768), d7 + (size_t)s0 * 768, (size_t)n * 768 * sizeof(float));
}

#define TAIL_OUT (INCEPTION_DIMS + INCEPTION_CLASSES + 768) /* floats per slot */

/* sizes of the buffers for groups of G images: activations, scratch */
static void ws_plan(const struct inception *net, int G, size_t *wino_n, size_t *act_n,
                    size_t *scratch_n)
{
    struct ws ws;
    float dummy[1];
    memset(&ws, 0, sizeof ws);
    ws.plan = 1;
    ws.stage = -1;
    ws.wino_n = wino_n;
    /* never dereferenced: plan mode only offsets buffer pointers */
    for (int k = 0; k < 6; k++)
        ws.buf[k] = dummy;
    forward_head(net, &ws, NULL, NULL, NULL);
    forward_tail(net, &ws, NULL, G, NULL, NULL, NULL);
    *act_n = ws.max_act;
    *scratch_n = ws.max_scratch;
}

/* floats for one thread: 6 activation buffers, the group's input, conv scratch, the 299x299
   input and the preprocessing scratch for an HxW image, the tail's outputs */
static size_t ws_floats(const struct inception *net, int G, int H, int W, size_t *act_n,
                        size_t *scratch_n)
{
    ws_plan(net, G, NULL, act_n, scratch_n);
    return 6 * *act_n + (size_t)TAIL_C * TAIL_HW * G + *scratch_n +
           (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE +
           (H > 0 ? inception_pre_scratch(H, W) : 0) + (size_t)G * TAIL_OUT;
}

/* carves p: returns the 299x299 input, followed by the preprocessing scratch */
static float *ws_carve(struct ws *ws, float *p, int G, size_t act_n, size_t scratch_n)
{
    memset(ws, 0, sizeof *ws);
    ws->stage = -1;
    for (int k = 0; k < 6; k++) {
        ws->buf[k] = p;
        p += act_n;
    }
    ws->grp = p;
    p += (size_t)TAIL_C * TAIL_HW * G;
    ws->scratch = p;
    return p + scratch_n;
}

void inception_net_prepare(struct inception *net)
{
    size_t n[INCEPTION_N_CONV] = { 0 }, total = 0, act_n, scratch_n;
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        net->u[l] = NULL;
    ws_plan(net, 1, n, &act_n, &scratch_n);
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        total += n[l];
    net->wino = total > 0 ? xmalloc_big(total * sizeof(float)) : NULL;
    float *p = net->wino;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        const struct inception_layer *y = &layers[l];
        struct nn_conv g;
        if (n[l] == 0)
            continue;
        nn_conv_init_ex(&g, 1, y->C, 17, 17, y->OC, y->KH, y->KW, 1, 1, y->PH, y->PW, y->PH,
                        y->PW);
        nn_conv_wino_weights(p, net->w[l], &g);
        net->u[l] = p;
        p += n[l];
    }
}

/* The batch driver: x is either float input (N,3,299,299) or u8 images (N,H,W,3). Images run
   in groups of INCEPTION_GROUP slots: the image with index g = first + i in the whole run takes
   slot g % G of group g / G, and empty slots hold zeros. Under OpenBLAS's Haswell kernels a
   GEMM column's sum depends on the width of the call and on its place in it (nn.c); both are
   set by the slot here, so an image's features are the same bits whatever batch it comes in,
   wherever the batch starts and whatever the thread count. Threads take whole groups, with
   single-threaded BLAS inside: the GEMMs are too small to split well across threads. */
static void forward_batch(const struct inception *net, const struct outs *o, const float *x,
                          const uint8_t *img, int N, int first, int H, int W,
                          enum inception_resize mode)
{
    int G = INCEPTION_GROUP, q0 = first / G, q1 = (first + N - 1) / G, ng = q1 - q0 + 1;
    int T = nn_get_threads(), nt = T < ng ? T : ng;
    if (N < 1)
        return;
    size_t act_n, scratch_n, per = ws_floats(net, G, img ? H : 0, W, &act_n, &scratch_n);
    float *mem = xmalloc_big((size_t)nt * per * sizeof(float));
    nn_set_threads(1);
    #pragma omp parallel num_threads(nt)
    {
        struct ws ws;
        struct input in = { x, img, H, W, mode, NULL, NULL };
        float *p = mem + (size_t)omp_get_thread_num() * per;
        in.xin = ws_carve(&ws, p, G, act_n, scratch_n);
        in.tmp = in.xin + (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE;
        float *tail_out = p + per - (size_t)G * TAIL_OUT;
        #pragma omp for schedule(dynamic, 1)
        for (int q = q0; q <= q1; q++) {
            int a = q * G > first ? q * G : first, b = (q + 1) * G < first + N ? (q + 1) * G
                                                                                : first + N;
            forward_group(net, &ws, &in, o, a - first, G, a - q * G, b - q * G, tail_out);
        }
    }
    nn_set_threads(T);
    free(mem);
}

void inception_forward(const struct inception *net, float *pool3, float *logits, float *dims64,
                       float *dims192, float *dims768, const float *x, int N, int first)
{
    struct outs o = { pool3, logits, dims64, dims192, dims768 };
    forward_batch(net, &o, x, NULL, N, first, 0, 0, INCEPTION_RESIZE_PYTORCH_FID);
}

void inception_forward_u8(const struct inception *net, float *pool3, float *logits,
                          float *dims64, float *dims192, float *dims768, const uint8_t *img,
                          int N, int first, int H, int W, enum inception_resize mode)
{
    struct outs o = { pool3, logits, dims64, dims192, dims768 };
    forward_batch(net, &o, NULL, img, N, first, H, W, mode);
}

size_t inception_stage(const struct inception *net, float *out, size_t outlen, const float *x,
                       int stage)
{
    size_t act_n, scratch_n, per = ws_floats(net, 1, 0, 0, &act_n, &scratch_n);
    float *mem = xmalloc_big(per * sizeof(float));
    struct ws ws;
    struct outs o = { NULL, NULL, NULL, NULL, NULL };
    struct input in = { x, NULL, 0, 0, INCEPTION_RESIZE_PYTORCH_FID, NULL, NULL };
    in.xin = ws_carve(&ws, mem, 1, act_n, scratch_n);
    ws.stage = stage;
    ws.stage_out = out;
    ws.stage_len = outlen;
    forward_group(net, &ws, &in, &o, 0, 1, 0, 1, NULL);
    free(mem);
    return ws.stage_n;
}
