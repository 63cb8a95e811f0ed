#include "models/inception.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/inception_net.h"
#include "models/param_table.h"
#include "io/pth.h"
#include "io/st.h"
#include "util/util.h"

#define BN_EPS 1e-3

/* Layers in memory order. The 1x1 convs of a block that read the block input come first and
   are adjacent, branch_pool last among them, so their folded weights (and biases) form one
   (sum OC, C) matrix: one GEMM. branch_pool joins it because a 1x1 conv commutes with the
   average pool before it (both linear; the padding-excluding average of a constant is that
   constant): avgpool(W x) + b = W avgpool(x) + b, pooling 32-192 channels instead of
   192-2048. */
#define K1(P, N, C, OC) { P "." N, C, OC, 1, 1, 1, 0, 0 }
#define BLOCK_A(P, IN, PF)                                                                   \
    K1(P, "branch1x1", IN, 64), K1(P, "branch5x5_1", IN, 48), K1(P, "branch3x3dbl_1", IN, 64), \
    K1(P, "branch_pool", IN, PF), { P ".branch5x5_2", 48, 64, 5, 5, 1, 2, 2 },               \
    { P ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1 },                                          \
    { P ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1 }
#define BLOCK_C(P, C7)                                                                       \
    K1(P, "branch1x1", 768, 192), K1(P, "branch7x7_1", 768, C7),                             \
    K1(P, "branch7x7dbl_1", 768, C7), K1(P, "branch_pool", 768, 192),                        \
    { P ".branch7x7_2", C7, C7, 1, 7, 1, 0, 3 }, { P ".branch7x7_3", C7, 192, 7, 1, 1, 3, 0 }, \
    { P ".branch7x7dbl_2", C7, C7, 7, 1, 1, 3, 0 },                                          \
    { P ".branch7x7dbl_3", C7, C7, 1, 7, 1, 0, 3 },                                          \
    { P ".branch7x7dbl_4", C7, C7, 7, 1, 1, 3, 0 },                                          \
    { P ".branch7x7dbl_5", C7, 192, 1, 7, 1, 0, 3 }
#define BLOCK_E(P, IN)                                                                       \
    K1(P, "branch1x1", IN, 320), K1(P, "branch3x3_1", IN, 384),                              \
    K1(P, "branch3x3dbl_1", IN, 448), K1(P, "branch_pool", IN, 192),                         \
    { P ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1 }, { P ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0 }, \
    { P ".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1 },                                        \
    { P ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1 },                                       \
    { P ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0 }

const struct inception_layer inception_layers[INCEPTION_N_CONV] = {
    { "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0 },
    { "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0 },
    { "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1 },
    K1("Conv2d_3b_1x1", "", 64, 80),
    { "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0 },
    BLOCK_A("Mixed_5b", 192, 32), BLOCK_A("Mixed_5c", 256, 64), BLOCK_A("Mixed_5d", 288, 64),
    /* Mixed_6a: InceptionB(288) */
    { "Mixed_6a.branch3x3", 288, 384, 3, 3, 2, 0, 0 },
    K1("Mixed_6a", "branch3x3dbl_1", 288, 64),
    { "Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1 },
    { "Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0 },
    BLOCK_C("Mixed_6b", 128), BLOCK_C("Mixed_6c", 160), BLOCK_C("Mixed_6d", 160),
    BLOCK_C("Mixed_6e", 192),
    /* Mixed_7a: InceptionD(768) */
    K1("Mixed_7a", "branch3x3_1", 768, 192), K1("Mixed_7a", "branch7x7x3_1", 768, 192),
    { "Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2, 0, 0 },
    { "Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3 },
    { "Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0 },
    { "Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0 },
    BLOCK_E("Mixed_7b", 1280), BLOCK_E("Mixed_7c", 2048),
};

/* "Conv2d_3b_1x1." has a trailing dot from K1 with an empty name */
static void layer_name(char *buf, size_t len, int l)
{
    size_t n = strlen(inception_layers[l].name);
    if (n > 0 && inception_layers[l].name[n - 1] == '.')
        n--;
    snprintf(buf, len, "%.*s", (int)n, inception_layers[l].name);
}

static size_t layer_wsize(int l)
{
    const struct inception_layer *y = &inception_layers[l];
    return (size_t)y->OC * y->C * y->KH * y->KW;
}

/* ---- weights ---- */

static uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

double inception_synth_u(uint64_t i, uint32_t t)
{
    uint32_t h = fmix32((uint32_t)i ^ (uint32_t)(t * 0x9E3779B9u));
    return (double)h / 4294967296.0 * 2.0 - 1.0;
}

static void synth_fill(float *dst, size_t n, uint32_t t, double scale, double offset)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)(offset + scale * inception_synth_u(i, t));
}

static void carve(struct inception *net)
{
    size_t nw = 0, nb = 0;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        nw += layer_wsize(l);
        nb += inception_layers[l].OC;
    }
    size_t total = nw + nb + (size_t)INCEPTION_CLASSES * INCEPTION_DIMS + INCEPTION_CLASSES;
    net->params = xmalloc_big(total * sizeof(float));
    float *p = net->params;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        net->w[l] = p;
        p += layer_wsize(l);
    }
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        net->b[l] = p;
        p += inception_layers[l].OC;
    }
    net->fc_w = p;
    p += (size_t)INCEPTION_CLASSES * INCEPTION_DIMS;
    net->fc_b = p;
    net->fuse = 1;
}

/* bn (4, OC): weight, bias, running_mean, running_var -> folds into w[l], b[l] */
static void fold_bn(struct inception *net, int l, const float *bn)
{
    int OC = inception_layers[l].OC;
    size_t per = layer_wsize(l) / OC;
    for (int o = 0; o < OC; o++) {
        double s = bn[o] / sqrt((double)bn[3 * OC + o] + BN_EPS);
        for (size_t i = 0; i < per; i++)
            net->w[l][o * per + i] = (float)(net->w[l][o * per + i] * s);
        net->b[l][o] = (float)(bn[OC + o] - bn[2 * OC + o] * s);
    }
}

/* The checkpoint's tensors, named as in the .pth: per BasicConv2d (the layer table's order)
   conv.weight and the BatchNorm's weight, bias, running_mean, running_var (adjacent: the
   (4, OC) block fold_bn takes), then fc. */
static void ckpt_layout(struct param_table *t)
{
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        const struct inception_layer *y = &inception_layers[l];
        char base[64];
        layer_name(base, sizeof base, l);
        param_prefix(t, "%s.", base);
        param_add(t, "conv.weight", 4, y->OC, y->C, y->KH, y->KW);
        param_add(t, "bn.weight", 1, y->OC, 0, 0, 0);
        param_add(t, "bn.bias", 1, y->OC, 0, 0, 0);
        param_add(t, "bn.running_mean", 1, y->OC, 0, 0, 0);
        param_add(t, "bn.running_var", 1, y->OC, 0, 0, 0);
    }
    param_prefix(t, "%s", "");
    param_add(t, "fc.weight", 2, INCEPTION_CLASSES, INCEPTION_DIMS, 0, 0);
    param_add(t, "fc.bias", 1, INCEPTION_CLASSES, 0, 0, 0);
}

#define CK_FC (5 * INCEPTION_N_CONV) /* fc.weight's entry */

static void ckpt_alloc(struct param_table *t)
{
    param_table_init(t);
    ckpt_layout(t);
    param_table_alloc(t);
    ckpt_layout(t);
    param_table_done(t);
}

/* the network's parameters from the checkpoint's: BN folded into each conv */
static void from_ckpt(struct inception *net, const struct param_table *ck)
{
    carve(net);
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        memcpy(net->w[l], ck->e[5 * l].ptr, layer_wsize(l) * sizeof(float));
        fold_bn(net, l, ck->e[5 * l + 1].ptr);
    }
    memcpy(net->fc_w, ck->e[CK_FC].ptr, (size_t)INCEPTION_CLASSES * INCEPTION_DIMS * sizeof(float));
    memcpy(net->fc_b, ck->e[CK_FC + 1].ptr, INCEPTION_CLASSES * sizeof(float));
}

static int cmp_layer_name(const void *a, const void *b)
{
    char x[64], y[64];
    layer_name(x, sizeof x, *(const int *)a);
    layer_name(y, sizeof y, *(const int *)b);
    return strcmp(x, y);
}

void inception_synthetic(struct inception *net)
{
    int order[INCEPTION_N_CONV];
    struct param_table ck;
    ckpt_alloc(&ck);
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        order[l] = l;
    /* tensor numbers follow the alphabetical order of the state-dict names */
    qsort(order, INCEPTION_N_CONV, sizeof order[0], cmp_layer_name);
    for (int r = 0; r < INCEPTION_N_CONV; r++) {
        int l = order[r], OC = inception_layers[l].OC;
        uint32_t t = 6 * (uint32_t)r;
        size_t n = layer_wsize(l);
        float *bn = ck.e[5 * l + 1].ptr;
        synth_fill(ck.e[5 * l].ptr, n, t, sqrt(6.0 / (double)(n / OC)), 0);
        synth_fill(bn, OC, t + 1, 0.2, 1);
        synth_fill(bn + OC, OC, t + 2, 0.2, 0);
        synth_fill(bn + 2 * OC, OC, t + 3, 0.2, 0);
        synth_fill(bn + 3 * OC, OC, t + 4, 0.5, 1);
    }
    synth_fill(ck.e[CK_FC].ptr, (size_t)INCEPTION_CLASSES * INCEPTION_DIMS, 564,
               sqrt(3.0 / INCEPTION_DIMS), 0);
    synth_fill(ck.e[CK_FC + 1].ptr, INCEPTION_CLASSES, 565, 0.1, 0);
    from_ckpt(net, &ck);
    param_table_free(&ck);
    net->synthetic = 1;
    inception_net_prepare(net);
}

static int is_pth(const char *path)
{
    unsigned char m[2] = { 0, 0 };
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(m, 1, 2, f);
    fclose(f);
    /* zip archive, or a legacy pickle stream (PROTO opcode) */
    return n == 2 && ((m[0] == 'P' && m[1] == 'K') || m[0] == 0x80);
}

int inception_load(struct inception *net, const char *path, char *msg, size_t msglen)
{
    struct st_file f;
    memset(net, 0, sizeof *net);
    if (strcmp(path, "synthetic") == 0) {
        inception_synthetic(net);
        return 0;
    }
    if (!util_exists(path)) {
        snprintf(msg, msglen, "No such file or directory");
        return -1;
    }
    if ((is_pth(path) ? pth_open(&f, path, msg, msglen) : st_open(&f, path, msg, msglen)) == -1)
        return -1;
    struct param_table ck;
    ckpt_alloc(&ck);
    /* extra: bn.num_batches_tracked */
    int rc = param_table_load(&ck, &f, 1, msg, msglen);
    st_close(&f);
    if (rc == 0)
        from_ckpt(net, &ck);
    param_table_free(&ck);
    if (rc == -1)
        return -1;
    inception_net_prepare(net);
    return 0;
}

int inception_open(struct inception *net, const char *path, const char *argv0, char *used,
                   size_t usedlen, char *msg, size_t msglen)
{
    memset(net, 0, sizeof *net);
    if (path == NULL) {
        if (inception_default_weights(used, usedlen, argv0, msg, msglen) == -1)
            return -1;
    } else
        snprintf(used, usedlen, "%s", path);
    if (inception_load(net, used, msg, msglen) == -1) {
        char m2[512];
        snprintf(m2, sizeof m2, "%s: %s", used, msg);
        snprintf(msg, msglen, "%s", m2);
        return -1;
    }
    return 0;
}

void inception_free(struct inception *net)
{
    free(net->params);
    free(net->wino.buf);
    memset(net, 0, sizeof *net);
}

int inception_default_weights(char *path, size_t pathlen, const char *argv0, char *msg,
                              size_t msglen)
{
    const char *env = getenv("FID_WEIGHTS");
    if (env != NULL && *env != '\0') {
        snprintf(path, pathlen, "%s", env);
        if (strcmp(env, "synthetic") == 0 || util_exists(env))
            return 0;
        snprintf(msg, msglen, "FID_WEIGHTS=%s: No such file (run `make weights`)", env);
        return -1;
    }
    if (util_find_weights(path, pathlen, INCEPTION_WEIGHTS_FILE, argv0))
        return 0;
    snprintf(msg, msglen, "no Inception weights weights/%s: run `make weights`, set "
             "FID_WEIGHTS or pass --weights", INCEPTION_WEIGHTS_FILE);
    return -1;
}
