/* The FID Inception v3's batch driver: the per-thread workspace (sized by a planning run of
   the forward in inception_net.c, allocated by the caller: inception_ws_init), the Winograd
   weights made at load, groups of images over the threads, and the public entry points
   (inception_run, inception_stage, ...). */
#include "models/inception.h"

#include <assert.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "models/inception_net.h"
#include "nn/nn.h"
#include "util/util.h"

static const struct inception_layer *const layers = inception_layers;

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
   G * TAIL_OUT floats for the tail's outputs of every slot. */
static void forward_group(const struct inception *net, struct ws *ws, const struct input *in,
                          const struct inception_outputs *o, int i0, int G, int s0, int s1,
                          float *tail_out)
{
    size_t HW = TAIL_HW;
    int tail = o->pool3 != NULL || o->logits != NULL || o->dims768 != NULL ||
               o->spatial != NULL || ws->stage >= 0;
    for (int k = s0; k < s1; k++) {
        int i = i0 + k - s0;
        const float *xi = in->xin;
        if (in->x != NULL)
            xi = in->x + (size_t)i * 3 * INCEPTION_SIZE * INCEPTION_SIZE;
        else
            inception_pre_run(in->xin, in->tmp, in->img + (size_t)i * in->H * in->W * 3, in->H,
                              in->W, in->mode);
        float *y = inception_net_head(net, ws, xi, row(o->dims64, i, 64), row(o->dims192, i, 192));
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
        inception_net_tail(net, ws, ws->grp, G, NULL, NULL, NULL, NULL);
        return;
    }
    float *p3 = tail_out, *lg = p3 + (size_t)G * INCEPTION_DIMS;
    float *d7 = lg + (size_t)G * INCEPTION_CLASSES, *sp = d7 + (size_t)G * 768;
    inception_net_tail(net, ws, ws->grp, G, o->pool3 ? p3 : NULL, o->logits ? lg : NULL,
                 o->dims768 ? d7 : NULL, o->spatial ? sp : NULL);
    int n = s1 - s0;
    if (o->pool3 != NULL)
        memcpy(row(o->pool3, i0, INCEPTION_DIMS), p3 + (size_t)s0 * INCEPTION_DIMS,
               (size_t)n * INCEPTION_DIMS * sizeof(float));
    if (o->logits != NULL)
        memcpy(row(o->logits, i0, INCEPTION_CLASSES), lg + (size_t)s0 * INCEPTION_CLASSES,
               (size_t)n * INCEPTION_CLASSES * sizeof(float));
    if (o->dims768 != NULL)
        memcpy(row(o->dims768, i0, 768), d7 + (size_t)s0 * 768, (size_t)n * 768 * sizeof(float));
    if (o->spatial != NULL)
        memcpy(row(o->spatial, i0, INCEPTION_SPATIAL_DIMS),
               sp + (size_t)s0 * INCEPTION_SPATIAL_DIMS,
               (size_t)n * INCEPTION_SPATIAL_DIMS * sizeof(float));
}

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
    inception_net_head(net, &ws, NULL, NULL, NULL);
    inception_net_tail(net, &ws, NULL, G, NULL, NULL, NULL, NULL);
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
        net->wino.u[l] = NULL;
    ws_plan(net, 1, n, &act_n, &scratch_n);
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        total += n[l];
    net->wino.buf = total > 0 ? xmalloc_big(total * sizeof(float)) : NULL;
    float *p = net->wino.buf;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        const struct inception_layer *y = &layers[l];
        struct nn_conv g;
        if (n[l] == 0)
            continue;
        nn_conv_init_ex(&g, 1, y->C, 17, 17, y->OC, y->KH, y->KW, 1, 1, y->PH, y->PW, y->PH,
                        y->PW);
        nn_conv_wino_weights(p, net->w[l], &g);
        net->wino.u[l] = p;
        p += n[l];
    }
}

/* the most groups a batch of N spans: one more than N / G when it starts inside a group */
static int max_groups(int N)
{
    int G = INCEPTION_GROUP;
    return (N + G - 2) / G + 1;
}

void inception_ws_init(struct inception_ws *ws, const struct inception *net, int max_batch,
                       int H, int W)
{
    int T = nn_get_threads(), ng = max_groups(max_batch);
    assert(max_batch > 0 && H >= 0 && W >= 0);
    memset(ws, 0, sizeof *ws);
    ws->max_batch = max_batch;
    ws->n_thr = T < ng ? T : ng;
    ws->H = H;
    ws->W = W;
    ws->per = ws_floats(net, INCEPTION_GROUP, H, W, &ws->act_n, &ws->scratch_n);
    ws->buf = xmalloc_big((size_t)ws->n_thr * ws->per * sizeof(float));
}

void inception_ws_free(struct inception_ws *ws)
{
    free(ws->buf);
    memset(ws, 0, sizeof *ws);
}

/* The batch driver: x is either float input (N,3,299,299) or u8 images (N,H,W,3). Images run
   in groups of INCEPTION_GROUP slots: the image with index g = first + i in the whole run takes
   slot g % G of group g / G, and empty slots hold zeros. Under OpenBLAS's Haswell kernels a
   GEMM column's sum depends on the width of the call and on its place in it (nn.c); both are
   set by the slot here, so an image's features are the same bits whatever batch it comes in,
   wherever the batch starts and whatever the thread count. Threads take whole groups, with
   single-threaded BLAS inside: the GEMMs are too small to split well across threads. */
static void forward_batch(const struct inception *net, struct inception_ws *w,
                          const struct inception_outputs *o, const float *x, const uint8_t *img,
                          int N, int first, int H, int W, enum inception_resize mode)
{
    int G = INCEPTION_GROUP, q0 = first / G, q1 = (first + N - 1) / G, ng = q1 - q0 + 1;
    int T = nn_get_threads(), nt = T < ng ? T : ng;
    if (N < 1)
        return;
    /* the caller's workspace: sized for N images (and HxW ones when they are u8) */
    assert(N <= w->max_batch && ng <= max_groups(w->max_batch));
    assert(img == NULL || (w->H > 0 && inception_pre_scratch(H, W) <=
                                           inception_pre_scratch(w->H, w->W)));
    nt = nt < w->n_thr ? nt : w->n_thr; /* threads change no bit */
    size_t per = w->per;
    float *mem = w->buf;
    nn_set_threads(1);
    #pragma omp parallel num_threads(nt)
    {
        struct ws ws;
        struct input in = { x, img, H, W, mode, NULL, NULL };
        float *p = mem + (size_t)omp_get_thread_num() * per;
        in.xin = ws_carve(&ws, p, G, w->act_n, w->scratch_n);
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
}

void inception_run(const struct inception *net, struct inception_ws *ws,
                   const struct inception_outputs *o, const float *x, int N, int first)
{
    forward_batch(net, ws, o, x, NULL, N, first, 0, 0, INCEPTION_RESIZE_PYTORCH_FID);
}

void inception_run_u8(const struct inception *net, struct inception_ws *ws,
                      const struct inception_outputs *o, const uint8_t *img, int N, int first,
                      int H, int W, enum inception_resize mode)
{
    forward_batch(net, ws, o, NULL, img, N, first, H, W, mode);
}

void inception_forward(const struct inception *net, struct inception_ws *ws, float *pool3,
                       float *logits, float *dims64, float *dims192, float *dims768,
                       const float *x, int N, int first)
{
    struct inception_outputs o = { pool3, logits, dims64, dims192, dims768, NULL };
    inception_run(net, ws, &o, x, N, first);
}

void inception_forward_u8(const struct inception *net, struct inception_ws *ws, float *pool3,
                          float *logits, float *dims64, float *dims192, float *dims768,
                          const uint8_t *img, int N, int first, int H, int W,
                          enum inception_resize mode)
{
    struct inception_outputs o = { pool3, logits, dims64, dims192, dims768, NULL };
    inception_run_u8(net, ws, &o, img, N, first, H, W, mode);
}

size_t inception_stage(const struct inception *net, struct inception_ws *w, float *out,
                       size_t outlen, const float *x, int stage)
{
    size_t act_n, scratch_n;
    struct ws ws;
    struct inception_outputs o = { NULL, NULL, NULL, NULL, NULL, NULL };
    struct input in = { x, NULL, 0, 0, INCEPTION_RESIZE_PYTORCH_FID, NULL, NULL };
    /* a group of one in the first thread's part of w (made for groups of INCEPTION_GROUP) */
    assert(ws_floats(net, 1, 0, 0, &act_n, &scratch_n) <= w->per && act_n <= w->act_n &&
           scratch_n <= w->scratch_n);
    in.xin = ws_carve(&ws, w->buf, 1, w->act_n, w->scratch_n);
    ws.stage = stage;
    ws.stage_out = out;
    ws.stage_len = outlen;
    forward_group(net, &ws, &in, &o, 0, 1, 0, 1, NULL);
    return ws.stage_n;
}
