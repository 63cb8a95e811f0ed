#include "inception.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn.h"
#include "pth.h"
#include "st.h"
#include "util.h"

#define BN_EPS 1e-3

/* One BasicConv2d: Conv2d(C, OC, (KH,KW), stride S, padding (PH,PW), bias=False) + BN + ReLU */
struct layer {
    const char *name;
    int C, OC, KH, KW, S, PH, PW;
};

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

static const struct layer layers[INCEPTION_N_CONV] = {
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

enum { L_5B = 5, L_5C = 12, L_5D = 19, L_6A = 26, L_6B = 30, L_6C = 40, L_6D = 50, L_6E = 60,
       L_7A = 70, L_7B = 76, L_7C = 85 };

/* "Conv2d_3b_1x1." has a trailing dot from K1 with an empty name */
static void layer_name(char *buf, size_t len, int l)
{
    size_t n = strlen(layers[l].name);
    if (n > 0 && layers[l].name[n - 1] == '.')
        n--;
    snprintf(buf, len, "%.*s", (int)n, layers[l].name);
}

static size_t layer_wsize(int l)
{
    const struct layer *y = &layers[l];
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
        nb += layers[l].OC;
    }
    size_t total = nw + nb + (size_t)INCEPTION_CLASSES * INCEPTION_DIMS + INCEPTION_CLASSES;
    net->params = xmalloc(total * sizeof(float));
    float *p = net->params;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        net->w[l] = p;
        p += layer_wsize(l);
    }
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        net->b[l] = p;
        p += layers[l].OC;
    }
    net->fc_w = p;
    p += (size_t)INCEPTION_CLASSES * INCEPTION_DIMS;
    net->fc_b = p;
    net->fuse = 1;
}

/* bn (4, OC): weight, bias, running_mean, running_var -> folds into w[l], b[l] */
static void fold_bn(struct inception *net, int l, const float *bn)
{
    int OC = layers[l].OC;
    size_t per = layer_wsize(l) / OC;
    for (int o = 0; o < OC; o++) {
        double s = bn[o] / sqrt((double)bn[3 * OC + o] + BN_EPS);
        for (size_t i = 0; i < per; i++)
            net->w[l][o * per + i] = (float)(net->w[l][o * per + i] * s);
        net->b[l][o] = (float)(bn[OC + o] - bn[2 * OC + o] * s);
    }
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
    float bn[4 * 448];
    carve(net);
    net->synthetic = 1;
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        order[l] = l;
    /* tensor numbers follow the alphabetical order of the state-dict names */
    qsort(order, INCEPTION_N_CONV, sizeof order[0], cmp_layer_name);
    for (int r = 0; r < INCEPTION_N_CONV; r++) {
        int l = order[r], OC = layers[l].OC;
        uint32_t t = 6 * (uint32_t)r;
        size_t n = layer_wsize(l);
        synth_fill(net->w[l], n, t, sqrt(6.0 / (double)(n / OC)), 0);
        synth_fill(bn, OC, t + 1, 0.2, 1);
        synth_fill(bn + OC, OC, t + 2, 0.2, 0);
        synth_fill(bn + 2 * OC, OC, t + 3, 0.2, 0);
        synth_fill(bn + 3 * OC, OC, t + 4, 0.5, 1);
        fold_bn(net, l, bn);
    }
    synth_fill(net->fc_w, (size_t)INCEPTION_CLASSES * INCEPTION_DIMS, 564,
               sqrt(3.0 / INCEPTION_DIMS), 0);
    synth_fill(net->fc_b, INCEPTION_CLASSES, 565, 0.1, 0);
    net->ws_floats = 0;
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
    carve(net);
    int n = 0, OCsum = 0;
    for (int l = 0; l < INCEPTION_N_CONV; l++)
        OCsum += layers[l].OC;
    float *bn = xmalloc(4 * (size_t)OCsum * sizeof(float));
    struct st_entry *e = xcalloc(5 * INCEPTION_N_CONV + 2, sizeof *e);
    char *names = xcalloc(5 * INCEPTION_N_CONV, 96);
    static const char *const suffix[5] = { "conv.weight", "bn.weight", "bn.bias",
                                           "bn.running_mean", "bn.running_var" };
    float *pb = bn;
    for (int l = 0; l < INCEPTION_N_CONV; l++) {
        const struct layer *y = &layers[l];
        char base[64];
        layer_name(base, sizeof base, l);
        for (int j = 0; j < 5; j++) {
            char *nm = names + (size_t)n * 96;
            snprintf(nm, 96, "%s.%s", base, suffix[j]);
            e[n].name = nm;
            e[n].shape[0] = y->OC;
            if (j == 0) {
                e[n].ndim = 4;
                e[n].shape[1] = y->C;
                e[n].shape[2] = y->KH;
                e[n].shape[3] = y->KW;
                e[n].ptr = net->w[l];
            } else {
                e[n].ndim = 1;
                e[n].ptr = pb + (size_t)(j - 1) * y->OC;
            }
            n++;
        }
        pb += 4 * (size_t)y->OC;
    }
    e[n++] = (struct st_entry){ "fc.weight", 2, { INCEPTION_CLASSES, INCEPTION_DIMS }, net->fc_w };
    e[n++] = (struct st_entry){ "fc.bias", 1, { INCEPTION_CLASSES }, net->fc_b };
    /* extra: bn.num_batches_tracked */
    int rc = st_load_entries(&f, e, n, 1, msg, msglen);
    st_close(&f);
    if (rc == 0) {
        pb = bn;
        for (int l = 0; l < INCEPTION_N_CONV; l++) {
            fold_bn(net, l, pb);
            pb += 4 * (size_t)layers[l].OC;
        }
    }
    free(names);
    free(e);
    free(bn);
    if (rc == -1) {
        inception_free(net);
        return -1;
    }
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
    memset(net, 0, sizeof *net);
}

static int try_path(char *path, size_t pathlen, const char *dir, const char *rel)
{
    snprintf(path, pathlen, "%s%s%s", dir, *dir ? "/" : "", rel);
    return util_exists(path) && !util_is_dir(path);
}

int inception_default_weights(char *path, size_t pathlen, const char *argv0, char *msg,
                              size_t msglen)
{
    const char *env = getenv("FID_WEIGHTS");
    char exe[PATH_MAX];
    if (env != NULL && *env != '\0') {
        snprintf(path, pathlen, "%s", env);
        if (strcmp(env, "synthetic") == 0 || util_exists(env))
            return 0;
        snprintf(msg, msglen, "FID_WEIGHTS=%s: No such file (run `make weights`)", env);
        return -1;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 && argv0 != NULL) {
        snprintf(exe, sizeof exe, "%s", argv0);
        n = (ssize_t)strlen(exe);
    }
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            if (try_path(path, pathlen, exe, "../weights/" INCEPTION_WEIGHTS_FILE) ||
                try_path(path, pathlen, exe, "weights/" INCEPTION_WEIGHTS_FILE))
                return 0;
        }
    }
    if (try_path(path, pathlen, "", "weights/" INCEPTION_WEIGHTS_FILE) ||
        try_path(path, pathlen, "", INCEPTION_WEIGHTS_FILE))
        return 0;
    snprintf(msg, msglen, "no Inception weights weights/%s: run `make weights`, set "
             "FID_WEIGHTS or pass --weights", INCEPTION_WEIGHTS_FILE);
    return -1;
}

/* ---- preprocessing ---- */

/* TF1 resize_bilinear, align_corners=False, as torch-fidelity's resample_manually: float32
   grid = dst * (float)(in/out), lo = trunc, hi = min(lo+1, in-1); lerp along x, then y. */
static void tf1_resize(float *out, const float *in, int C, int H, int W, int OH, int OW,
                       int *lo, float *d)
{
    int *xlo = lo, *xhi = lo + OW, *ylo = lo + 2 * OW, *yhi = ylo + OH;
    float *dx = d, *dy = d + OW;
    float sx = (float)((double)W / OW), sy = (float)((double)H / OH);
    for (int x = 0; x < OW; x++) {
        float g = (float)x * sx;
        xlo[x] = (int)g;
        xhi[x] = xlo[x] + 1 < W - 1 ? xlo[x] + 1 : W - 1;
        dx[x] = g - (float)xlo[x];
    }
    for (int y = 0; y < OH; y++) {
        float g = (float)y * sy;
        ylo[y] = (int)g;
        yhi[y] = ylo[y] + 1 < H - 1 ? ylo[y] + 1 : H - 1;
        dy[y] = g - (float)ylo[y];
    }
    for (int c = 0; c < C; c++) {
        const float *p = in + (size_t)c * H * W;
        for (int y = 0; y < OH; y++) {
            const float *r0 = p + (size_t)ylo[y] * W, *r1 = p + (size_t)yhi[y] * W;
            float *o = out + ((size_t)c * OH + y) * OW;
            for (int x = 0; x < OW; x++) {
                float a = r0[xlo[x]], b = r0[xhi[x]], e = r1[xlo[x]], f = r1[xhi[x]];
                float top = a + (b - a) * dx[x];
                float bot = e + (f - e) * dx[x];
                o[x] = top + (bot - top) * dy[y];
            }
        }
    }
}

/* floats of preprocess() scratch: the image as float, then the TF1 grid (2 float and 4 int
   tables of 299) */
static size_t preprocess_scratch(int H, int W)
{
    return (size_t)3 * H * W + 6 * INCEPTION_SIZE;
}

static void preprocess(float *x, float *tmp, const uint8_t *img, int H, int W,
                       enum inception_resize mode)
{
    size_t HW = (size_t)H * W, n = (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < HW; i++)
            tmp[c * HW + i] = mode == INCEPTION_RESIZE_PYTORCH_FID ? (float)img[i * 3 + c] / 255.0f
                                                                   : (float)img[i * 3 + c];
    if (mode == INCEPTION_RESIZE_PYTORCH_FID) {
        nn_bilinear_resize_forward(x, tmp, 1, 3, H, W, INCEPTION_SIZE, INCEPTION_SIZE);
        for (size_t i = 0; i < n; i++)
            x[i] = 2.0f * x[i] - 1.0f;
    } else {
        float *d = tmp + 3 * HW;
        int *lo = (int *)(d + 2 * INCEPTION_SIZE);
        tf1_resize(x, tmp, 3, H, W, INCEPTION_SIZE, INCEPTION_SIZE, lo, d);
        for (size_t i = 0; i < n; i++)
            x[i] = (x[i] - 128.0f) / 128.0f;
    }
}

void inception_preprocess(float *x, const uint8_t *img, int H, int W, enum inception_resize mode)
{
    float *tmp = xmalloc(preprocess_scratch(H, W) * sizeof(float));
    preprocess(x, tmp, img, H, W, mode);
    free(tmp);
}

/* ---- forward of one image ---- */

/* A thread's workspace. In plan mode nothing is computed: the sizes every op needs are
   recorded, so the workspace is sized by the same code that uses it. */
struct ws {
    int plan;
    size_t max_act, max_scratch;
    float *buf[6];     /* max_act floats each */
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

static void bias_relu(float *p, const float *b, int C, int HW)
{
    for (int o = 0; o < C; o++) {
        float *q = p + (size_t)o * HW, bo = b[o];
        for (int i = 0; i < HW; i++) {
            float v = q[i] + bo;
            q[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* BasicConv2d l (or the nl adjacent fused 1x1 layers l..l+nl-1) on in (C,H,W) */
static void conv(const struct inception *net, struct ws *ws, float *out, const float *in, int l,
                 int nl, int H, int W, int *OHp, int *OWp)
{
    const struct layer *y = &layers[l];
    int OC = 0;
    for (int k = 0; k < nl; k++)
        OC += layers[l + k].OC;
    struct nn_conv g;
    nn_conv_init_ex(&g, 1, y->C, H, W, OC, y->KH, y->KW, y->S, y->S, y->PH, y->PW, y->PH, y->PW);
    size_t n = (size_t)OC * g.OH * g.OW;
    *OHp = g.OH;
    *OWp = g.OW;
    int pointwise = y->KH == 1 && y->KW == 1 && y->S == 1;
    if (ws->plan) {
        act(ws, n);
        if (!pointwise && nn_conv_scratch(&g) > ws->max_scratch)
            ws->max_scratch = nn_conv_scratch(&g);
        return;
    }
    const float *b = net->b[l];
    if (pointwise) {
        int HW = H * W;
        nn_sgemm(0, 0, OC, HW, y->C, 1.0f, net->w[l], y->C, in, HW, 0.0f, out, HW);
        bias_relu(out, b, OC, HW);
    } else {
        nn_conv2d_forward(out, ws->scratch, in, net->w[l], b, &g);
        nn_relu_forward(out, out, n);
    }
}

/* max_pool2d(3, S, P) on (C,H,W), P 0 or 1 (padding is -inf): max of 3 along rows into
   tmp (H,OW), then of 3 along columns. Exact, like any order of max. */
static void max3x3(float *out, const float *in, float *tmp, int C, int H, int W, int S, int P)
{
    int OH = nn_pool_out(H, 3, S, P), OW = nn_pool_out(W, 3, S, P);
    for (int c = 0; c < C; c++) {
        const float *x = in + (size_t)c * H * W;
        float *y = out + (size_t)c * OH * OW;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < OW; j++) {
                int j0 = j * S - P;
                float m = -INFINITY;
                for (int k = j0 < 0 ? 0 : j0; k < j0 + 3 && k < W; k++)
                    m = x[i * W + k] > m ? x[i * W + k] : m;
                tmp[i * OW + j] = m;
            }
        for (int i = 0; i < OH; i++) {
            int i0 = i * S - P;
            for (int j = 0; j < OW; j++) {
                float m = -INFINITY;
                for (int k = i0 < 0 ? 0 : i0; k < i0 + 3 && k < H; k++)
                    m = tmp[k * OW + j] > m ? tmp[k * OW + j] : m;
                y[i * OW + j] = m;
            }
        }
    }
}

static void pool(struct ws *ws, float *out, const float *in, int C, int H, int W, int max, int S,
                 int P, int *OH, int *OW)
{
    *OH = nn_pool_out(H, 3, S, P);
    *OW = nn_pool_out(W, 3, S, P);
    if (ws->plan) {
        act(ws, (size_t)C * *OH * *OW);
        if ((size_t)H * *OW > ws->max_scratch)
            ws->max_scratch = (size_t)H * *OW;
        return;
    }
    if (max)
        max3x3(out, in, ws->scratch, C, H, W, S, P);
    else
        nn_avg_pool2d_forward(out, in, 1, C, H, W, 3, S, P, 0);
}

/* avg_pool2d(3, 1, 1, count_include_pad=False) on (C,H,W), separably: row sums of 3, then
   column sums of 3, divided by the count of real pixels. tmp: H*W floats. */
static void avg3x3(float *out, const float *in, float *tmp, int C, int H, int W)
{
    for (int c = 0; c < C; c++) {
        const float *x = in + (size_t)c * H * W;
        float *y = out + (size_t)c * H * W;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                tmp[i * W + j] = x[i * W + j] + (j > 0 ? x[i * W + j - 1] : 0.0f) +
                                 (j < W - 1 ? x[i * W + j + 1] : 0.0f);
        for (int i = 0; i < H; i++) {
            int ch = 1 + (i > 0) + (i < H - 1);
            for (int j = 0; j < W; j++) {
                int cw = 1 + (j > 0) + (j < W - 1);
                float s = tmp[i * W + j] + (i > 0 ? tmp[(i - 1) * W + j] : 0.0f) +
                          (i < H - 1 ? tmp[(i + 1) * W + j] : 0.0f);
                y[i * W + j] = s / (float)(ch * cw);
            }
        }
    }
}

/* The block's 1x1 convs on x (C,H,W): layers l..l+nl-1 into t (their OCs stacked), plus,
   when pooled, branch_pool = layer l+nl (after the average pool, or the max pool when
   maxpool) into pout. Fused: one GEMM for all of them, the average pool applied to
   branch_pool's pre-activation rows (see the layer table). */
static void group_1x1(const struct inception *net, struct ws *ws, float *t, float *pout,
                      const float *x, int l, int nl, int H, int W, int maxpool)
{
    int HW = H * W, OC = 0, oh, ow, C = layers[l].C, PF = layers[l + nl].OC;
    for (int k = 0; k < nl; k++)
        OC += layers[l + k].OC;
    if (ws->plan) {
        act(ws, (size_t)(OC + PF) * HW);
        act(ws, (size_t)C * HW);
        if ((size_t)HW > ws->max_scratch)
            ws->max_scratch = HW;
        return;
    }
    if (net->fuse && !maxpool) {
        nn_sgemm(0, 0, OC + PF, HW, C, 1.0f, net->w[l], C, x, HW, 0.0f, t, HW);
        bias_relu(t, net->b[l], OC, HW);
        avg3x3(pout, t + (size_t)OC * HW, ws->scratch, PF, H, W);
        bias_relu(pout, net->b[l + nl], PF, HW);
        return;
    }
    if (net->fuse)
        conv(net, ws, t, x, l, nl, H, W, &oh, &ow);
    else
        for (int k = 0, off = 0; k < nl; off += layers[l + k].OC, k++)
            conv(net, ws, t + (size_t)off * HW, x, l + k, 1, H, W, &oh, &ow);
    float *v = ws->buf[5];
    pool(ws, v, x, C, H, W, maxpool, 1, 1, &oh, &ow);
    conv(net, ws, pout, v, l + nl, 1, H, W, &oh, &ow);
}

static void copy_ch(struct ws *ws, float *dst, const float *src, int C, int HW)
{
    if (!ws->plan)
        memcpy(dst, src, (size_t)C * HW * sizeof(float));
}

/* FIDInceptionA: x (IN,35,35) -> out (224+pf,35,35) */
static void block_a(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W)
{
    int HW = H * W, oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3];
    group_1x1(net, ws, t, out + (size_t)224 * HW, x, l, 3, H, W, 0); /* 64 | 48 | 64 */
    copy_ch(ws, out, t, 64, HW);
    conv(net, ws, out + (size_t)64 * HW, t + (size_t)64 * HW, l + 4, 1, H, W, &oh, &ow);
    conv(net, ws, u, t + (size_t)112 * HW, l + 5, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)128 * HW, u, l + 6, 1, H, W, &oh, &ow);
}

/* InceptionB (Mixed_6a): x (288,35,35) -> out (768,17,17) */
static void block_b(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int IN, int H, int W)
{
    int oh, ow, h2, w2;
    float *t = ws->buf[2], *u = ws->buf[3];
    conv(net, ws, out, x, l, 1, H, W, &oh, &ow);
    int OHW = oh * ow;
    conv(net, ws, t, x, l + 1, 1, H, W, &h2, &w2);
    conv(net, ws, u, t, l + 2, 1, H, W, &h2, &w2);
    conv(net, ws, out + (size_t)384 * OHW, u, l + 3, 1, H, W, &h2, &w2);
    pool(ws, out + (size_t)480 * OHW, x, IN, H, W, 1, 2, 0, &h2, &w2);
}

/* FIDInceptionC: x (768,17,17) -> out (768,17,17) */
static void block_c(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W)
{
    int HW = H * W, c7 = layers[l + 1].OC, oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3], *v = ws->buf[4];
    group_1x1(net, ws, t, out + (size_t)576 * HW, x, l, 3, H, W, 0); /* 192 | c7 | c7 */
    copy_ch(ws, out, t, 192, HW);
    conv(net, ws, u, t + (size_t)192 * HW, l + 4, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)192 * HW, u, l + 5, 1, H, W, &oh, &ow);
    conv(net, ws, u, t + (size_t)(192 + c7) * HW, l + 6, 1, H, W, &oh, &ow);
    conv(net, ws, v, u, l + 7, 1, H, W, &oh, &ow);
    conv(net, ws, u, v, l + 8, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)384 * HW, u, l + 9, 1, H, W, &oh, &ow);
}

/* InceptionD (Mixed_7a): x (768,17,17) -> out (1280,8,8) */
static void block_d(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W)
{
    int HW = H * W, oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3], *v = ws->buf[4];
    if (net->fuse)
        conv(net, ws, t, x, l, 2, H, W, &oh, &ow);          /* 192 | 192 */
    else {
        conv(net, ws, t, x, l, 1, H, W, &oh, &ow);
        conv(net, ws, t + (size_t)192 * HW, x, l + 1, 1, H, W, &oh, &ow);
    }
    conv(net, ws, out, t, l + 2, 1, H, W, &oh, &ow);
    int OHW = oh * ow;
    conv(net, ws, u, t + (size_t)192 * HW, l + 3, 1, H, W, &oh, &ow);
    conv(net, ws, v, u, l + 4, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)320 * OHW, v, l + 5, 1, H, W, &oh, &ow);
    pool(ws, out + (size_t)512 * OHW, x, 768, H, W, 1, 2, 0, &oh, &ow);
}

/* FIDInceptionE_1 (avg pool) / E_2 (max pool): x (IN,8,8) -> out (2048,8,8) */
static void block_e(const struct inception *net, struct ws *ws, float *out, const float *x,
                    int l, int H, int W, int maxpool)
{
    int HW = H * W, oh, ow;
    float *t = ws->buf[2], *u = ws->buf[3];
    group_1x1(net, ws, t, out + (size_t)1856 * HW, x, l, 3, H, W, maxpool); /* 320|384|448 */
    copy_ch(ws, out, t, 320, HW);
    const float *b3 = t + (size_t)320 * HW, *bd = t + (size_t)704 * HW;
    conv(net, ws, out + (size_t)320 * HW, b3, l + 4, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)704 * HW, b3, l + 5, 1, H, W, &oh, &ow);
    conv(net, ws, u, bd, l + 6, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)1088 * HW, u, l + 7, 1, H, W, &oh, &ow);
    conv(net, ws, out + (size_t)1472 * HW, u, l + 8, 1, H, W, &oh, &ow);
}

static void spatial_mean(float *out, const float *in, int C, int HW)
{
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int i = 0; i < HW; i++)
            s += in[(size_t)c * HW + i];
        out[c] = (float)(s / HW);
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

/* x (3,299,299) -> pool3 (2048), logits (1008), d64, d192, d768; any may be NULL */
static void forward_one(const struct inception *net, struct ws *ws, const float *x,
                        float *pool3, float *logits, float *d64, float *d192, float *d768)
{
    float *a = ws->buf[0], *b = ws->buf[1];
    int H = INCEPTION_SIZE, W = INCEPTION_SIZE, s = 0;
    conv(net, ws, a, x, 0, 1, H, W, &H, &W);
    if (stage_done(ws, s++, a, (size_t)32 * H * W))
        return;
    conv(net, ws, b, a, 1, 1, H, W, &H, &W);
    if (stage_done(ws, s++, b, (size_t)32 * H * W))
        return;
    conv(net, ws, a, b, 2, 1, H, W, &H, &W);
    if (stage_done(ws, s++, a, (size_t)64 * H * W))
        return;
    pool(ws, b, a, 64, H, W, 1, 2, 0, &H, &W);
    if (stage_done(ws, s++, b, (size_t)64 * H * W))
        return;
    if (d64 != NULL && !ws->plan)
        spatial_mean(d64, b, 64, H * W);
    conv(net, ws, a, b, 3, 1, H, W, &H, &W);
    if (stage_done(ws, s++, a, (size_t)80 * H * W))
        return;
    conv(net, ws, b, a, 4, 1, H, W, &H, &W);
    if (stage_done(ws, s++, b, (size_t)192 * H * W))
        return;
    pool(ws, a, b, 192, H, W, 1, 2, 0, &H, &W);
    if (stage_done(ws, s++, a, (size_t)192 * H * W))
        return;
    if (d192 != NULL && !ws->plan)
        spatial_mean(d192, a, 192, H * W);
    static const int la[3] = { L_5B, L_5C, L_5D };
    for (int k = 0; k < 3; k++) {
        float *in = k % 2 == 0 ? a : b, *out = k % 2 == 0 ? b : a;
        int C = 224 + layers[la[k] + 3].OC;
        block_a(net, ws, out, in, la[k], H, W);
        act(ws, (size_t)C * H * W);
        if (stage_done(ws, s++, out, (size_t)C * H * W))
            return;
    }
    /* Mixed_5d output is in b */
    block_b(net, ws, a, b, L_6A, 288, H, W);
    H = nn_pool_out(H, 3, 2, 0);
    W = nn_pool_out(W, 3, 2, 0);
    act(ws, (size_t)768 * H * W);
    if (stage_done(ws, s++, a, (size_t)768 * H * W))
        return;
    static const int lc[4] = { L_6B, L_6C, L_6D, L_6E };
    for (int k = 0; k < 4; k++) {
        float *in = k % 2 == 0 ? a : b, *out = k % 2 == 0 ? b : a;
        block_c(net, ws, out, in, lc[k], H, W);
        if (stage_done(ws, s++, out, (size_t)768 * H * W))
            return;
    }
    /* Mixed_6e output is in a */
    if (d768 != NULL && !ws->plan)
        spatial_mean(d768, a, 768, H * W);
    block_d(net, ws, b, a, L_7A, H, W);
    H = nn_pool_out(H, 3, 2, 0);
    W = nn_pool_out(W, 3, 2, 0);
    act(ws, (size_t)1280 * H * W);
    if (stage_done(ws, s++, b, (size_t)1280 * H * W))
        return;
    block_e(net, ws, a, b, L_7B, H, W, 0);
    act(ws, (size_t)2048 * H * W);
    if (stage_done(ws, s++, a, (size_t)2048 * H * W))
        return;
    block_e(net, ws, b, a, L_7C, H, W, 1);
    if (stage_done(ws, s++, b, (size_t)2048 * H * W))
        return;
    if (ws->plan)
        return;
    float p3[INCEPTION_DIMS];
    spatial_mean(p3, b, INCEPTION_DIMS, H * W);
    if (stage_done(ws, s++, p3, INCEPTION_DIMS))
        return;
    if (pool3 != NULL)
        memcpy(pool3, p3, sizeof p3);
    if (logits != NULL)
        nn_linear_forward(logits, p3, net->fc_w, net->fc_b, 1, INCEPTION_DIMS,
                          INCEPTION_CLASSES);
}

static void ws_plan(const struct inception *net, size_t *act_n, size_t *scratch_n)
{
    struct ws ws;
    float dummy[1];
    memset(&ws, 0, sizeof ws);
    ws.plan = 1;
    ws.stage = -1;
    /* never dereferenced: plan mode only offsets buffer pointers */
    for (int k = 0; k < 6; k++)
        ws.buf[k] = dummy;
    forward_one(net, &ws, NULL, NULL, NULL, NULL, NULL, NULL);
    *act_n = ws.max_act;
    *scratch_n = ws.max_scratch;
}

/* floats for one thread: 6 activation buffers, conv scratch, the 299x299 input and the
   preprocessing scratch for an HxW image */
static size_t ws_floats(const struct inception *net, int H, int W, size_t *act_n,
                        size_t *scratch_n)
{
    ws_plan(net, act_n, scratch_n);
    return 6 * *act_n + *scratch_n + (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE +
           (H > 0 ? preprocess_scratch(H, W) : 0) + 64;
}

static float *ws_carve(struct ws *ws, float *p, size_t act_n)
{
    memset(ws, 0, sizeof *ws);
    ws->stage = -1;
    for (int k = 0; k < 6; k++) {
        ws->buf[k] = p;
        p += act_n;
    }
    ws->scratch = p;
    return p;
}

/* The batch driver: x is either float input (N,3,299,299) or u8 images (N,H,W,3). Images run
   in parallel, one per thread, each thread with single-threaded BLAS: at 8x8 and 17x17 the
   GEMMs are too small to split well across threads. */
static void forward_batch(const struct inception *net, float *pool3, float *logits, float *d64,
                          float *d192, float *d768, const float *x, const uint8_t *img, int N,
                          int H, int W, enum inception_resize mode)
{
    int T = nn_get_threads(), nt = T < N ? T : N;
    if (nt < 1)
        nt = 1;
    size_t act_n, scratch_n, per = ws_floats(net, img ? H : 0, W, &act_n, &scratch_n);
    float *mem = xmalloc((size_t)nt * per * sizeof(float));
    /* even for one image: a conv split over threads sums in another order */
    nn_set_threads(1);
    #pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int i = 0; i < N; i++) {
        struct ws ws;
        float *p = ws_carve(&ws, mem + (size_t)omp_get_thread_num() * per, act_n);
        float *xin = p + scratch_n;
        const float *xi = xin;
        if (x != NULL)
            xi = x + (size_t)i * 3 * INCEPTION_SIZE * INCEPTION_SIZE;
        else {
            preprocess(xin, xin + (size_t)3 * INCEPTION_SIZE * INCEPTION_SIZE,
                       img + (size_t)i * H * W * 3, H, W, mode);
            xi = xin;
        }
        forward_one(net, &ws, xi, pool3 ? pool3 + (size_t)i * INCEPTION_DIMS : NULL,
                    logits ? logits + (size_t)i * INCEPTION_CLASSES : NULL,
                    d64 ? d64 + (size_t)i * 64 : NULL, d192 ? d192 + (size_t)i * 192 : NULL,
                    d768 ? d768 + (size_t)i * 768 : NULL);
    }
    nn_set_threads(T);
    free(mem);
}

void inception_forward(const struct inception *net, float *pool3, float *logits, float *dims64,
                       float *dims192, float *dims768, const float *x, int N)
{
    forward_batch(net, pool3, logits, dims64, dims192, dims768, x, NULL, N, 0, 0,
                  INCEPTION_RESIZE_PYTORCH_FID);
}

void inception_forward_u8(const struct inception *net, float *pool3, float *logits,
                          float *dims64, float *dims192, float *dims768, const uint8_t *img,
                          int N, int H, int W, enum inception_resize mode)
{
    forward_batch(net, pool3, logits, dims64, dims192, dims768, NULL, img, N, H, W, mode);
}

size_t inception_stage(const struct inception *net, float *out, size_t outlen, const float *x,
                       int stage)
{
    size_t act_n, scratch_n, per = ws_floats(net, 0, 0, &act_n, &scratch_n);
    float *mem = xmalloc(per * sizeof(float));
    struct ws ws;
    ws_carve(&ws, mem, act_n);
    ws.stage = stage;
    ws.stage_out = out;
    ws.stage_len = outlen;
    forward_one(net, &ws, x, NULL, NULL, NULL, NULL, NULL);
    free(mem);
    return ws.stage_n;
}
