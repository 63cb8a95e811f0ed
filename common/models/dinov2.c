/* DINOv2 ViT: the tensor table, loading (official .pth names), synthetic weights and where
   the weights are looked for. The forward is in dinov2_net.c. */
#include "models/dinov2.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/pth.h"
#include "io/st.h"
#include "models/inception.h"
#include "nn/nn.h"
#include "util/util.h"

const struct dinov2_config dinov2_vitl14 = { 14, 1024, 24, 16, 4096, 37 };

static const char *const block_names[DINOV2_N_BLOCK_TENSORS] = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight",
    "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma",
};

int dinov2_n_tensors(const struct dinov2_config *cfg)
{
    return 5 + DINOV2_N_BLOCK_TENSORS * cfg->depth + 2;
}

static int shape1(int64_t s[4], int64_t a)
{
    s[0] = a;
    return 1;
}

static int shape2(int64_t s[4], int64_t a, int64_t b)
{
    s[0] = a;
    s[1] = b;
    return 2;
}

static int shape3(int64_t s[4], int64_t a, int64_t b, int64_t c)
{
    s[0] = a;
    s[1] = b;
    s[2] = c;
    return 3;
}

int dinov2_tensor(const struct dinov2_config *cfg, int t, char *buf, size_t len,
                  int64_t s[4])
{
    int64_t D = cfg->dim, M = cfg->mlp, G = cfg->grid;
    int nb = DINOV2_N_BLOCK_TENSORS * cfg->depth;
    switch (t) {
    case 0: snprintf(buf, len, "cls_token"); return shape3(s, 1, 1, D);
    case 1: snprintf(buf, len, "pos_embed"); return shape3(s, 1, 1 + G * G, D);
    case 2: snprintf(buf, len, "mask_token"); return shape2(s, 1, D);
    case 3:
        snprintf(buf, len, "patch_embed.proj.weight");
        shape3(s, D, 3, cfg->patch);
        s[3] = cfg->patch;
        return 4;
    case 4: snprintf(buf, len, "patch_embed.proj.bias"); return shape1(s, D);
    default: break;
    }
    if (t == 5 + nb) {
        snprintf(buf, len, "norm.weight");
        return shape1(s, D);
    }
    if (t == 6 + nb) {
        snprintf(buf, len, "norm.bias");
        return shape1(s, D);
    }
    if (t < 5 || t > 6 + nb)
        return 0;
    int b = (t - 5) / DINOV2_N_BLOCK_TENSORS, j = (t - 5) % DINOV2_N_BLOCK_TENSORS;
    snprintf(buf, len, "blocks.%d.%s", b, block_names[j]);
    switch (j) {
    case 2: return shape2(s, 3 * D, D);
    case 3: return shape1(s, 3 * D);
    case 4: return shape2(s, D, D);
    case 9: return shape2(s, M, D);
    case 10: return shape1(s, M);
    case 11: return shape2(s, D, M);
    default: return shape1(s, D);
    }
}

static size_t numel(const int64_t *s, int nd)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)s[i];
    return n;
}

/* one allocation for every tensor, in table order; ptr[t] receives tensor t's place */
static void carve(struct dinov2 *net, const struct dinov2_config *cfg, float **ptr)
{
    int n = dinov2_n_tensors(cfg);
    size_t total = 0;
    char name[64];
    int64_t s[4];
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    for (int t = 0; t < n; t++)
        total += numel(s, dinov2_tensor(cfg, t, name, sizeof name, s));
    net->params = xmalloc_big(total * sizeof(float));
    net->blocks = xcalloc((size_t)cfg->depth, sizeof *net->blocks);
    float *p = net->params;
    for (int t = 0; t < n; t++) {
        ptr[t] = p;
        p += numel(s, dinov2_tensor(cfg, t, name, sizeof name, s));
    }
    net->cls_token = ptr[0];
    net->pos_embed = ptr[1];
    net->mask_token = ptr[2];
    net->patch_w = ptr[3];
    net->patch_b = ptr[4];
    for (int b = 0; b < cfg->depth; b++) {
        float **q = ptr + 5 + DINOV2_N_BLOCK_TENSORS * b;
        struct dinov2_block *k = &net->blocks[b];
        *k = (struct dinov2_block){ q[0], q[1], q[2], q[3], q[4], q[5], q[6],
                                    q[7], q[8], q[9], q[10], q[11], q[12], q[13] };
    }
    net->norm_w = ptr[n - 2];
    net->norm_b = ptr[n - 1];
}

/* the Linear weights into nn_pack_linear's panels, in place (a copy in between): the forward
   reads them only that way, and a second copy of ViT-L's 1.2 GB would be too much */
static void pack_weights(struct dinov2 *net)
{
    const struct dinov2_config *c = &net->cfg;
    int D = c->dim, M = c->mlp, P = 3 * c->patch * c->patch;
    int most = M > 3 * D ? M : 3 * D;
    most = most > P ? most : P;
    float *tmp = xmalloc_big((size_t)most * D * sizeof(float));
    for (int b = -1; b < c->depth; b++) {
        struct dinov2_block *k = b >= 0 ? &net->blocks[b] : NULL;
        float *w[4] = { k ? k->qkv_w : net->patch_w, k ? k->proj_w : NULL,
                        k ? k->fc1_w : NULL, k ? k->fc2_w : NULL };
        int n[4] = { k ? 3 * D : D, D, M, D };
        int kk[4] = { k ? D : 3 * c->patch * c->patch, D, D, M };
        for (int i = 0; i < 4; i++) {
            if (w[i] == NULL)
                continue;
            size_t sz = (size_t)n[i] * kk[i] * sizeof(float);
            nn_pack_linear(tmp, w[i], n[i], kk[i]);
            memcpy(w[i], tmp, sz);
        }
    }
    free(tmp);
}

/* the synthetic scale and offset of tensor t (see dinov2.h) */
static void synth_scale(const struct dinov2_config *cfg, int t, const int64_t *s, int nd,
                        double *scale, double *offset)
{
    int nb = DINOV2_N_BLOCK_TENSORS * cfg->depth, j = (t - 5) % DINOV2_N_BLOCK_TENSORS;
    *offset = 0;
    if (t == 0) {
        *scale = 0.5;
    } else if (t == 1) {
        *scale = 1.0;
    } else if (t == 2) {
        *scale = 0.0;
    } else if (t == 3 || (t < 5 + nb && (j == 2 || j == 4 || j == 9 || j == 11))) {
        *scale = sqrt(3.0 / (double)(numel(s, nd) / (size_t)s[0]));  /* weights */
    } else if (t == 5 + nb || (t < 5 + nb && (j == 0 || j == 7))) {
        *scale = 0.1;                                                /* norm weights */
        *offset = 1.0;
    } else if (t < 5 + nb && (j == 6 || j == 13)) {
        *scale = 0.25;                                               /* LayerScale gammas */
        *offset = 0.25;
    } else {
        *scale = 0.05;                                               /* biases */
    }
}

void dinov2_synthetic(struct dinov2 *net, const struct dinov2_config *cfg)
{
    int n = dinov2_n_tensors(cfg);
    float **ptr = xcalloc((size_t)n, sizeof *ptr);
    carve(net, cfg, ptr);
    net->synthetic = 1;
    for (int t = 0; t < n; t++) {
        char name[64];
        int64_t s[4];
        int nd = dinov2_tensor(cfg, t, name, sizeof name, s);
        size_t m = numel(s, nd);
        double scale, offset;
        synth_scale(cfg, t, s, nd, &scale, &offset);
        float *p = ptr[t];
#pragma omp parallel for schedule(static) if (m > 65536)
        for (size_t i = 0; i < m; i++)
            p[i] = (float)(offset + scale * inception_synth_u(i, (uint32_t)t));
    }
    free(ptr);
    pack_weights(net);
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

/* the architecture the tensors of f describe */
static int read_config(const struct st_file *f, struct dinov2_config *cfg, int heads,
                       char *msg, size_t msglen)
{
    const struct st_tensor *cls = st_find(f, "cls_token"), *pos = st_find(f, "pos_embed"),
                           *pw = st_find(f, "patch_embed.proj.weight"),
                           *fc1 = st_find(f, "blocks.0.mlp.fc1.weight");
    if (cls == NULL || pos == NULL || pw == NULL || fc1 == NULL) {
        snprintf(msg, msglen, "not a DINOv2 ViT checkpoint: no %s",
                 cls == NULL ? "cls_token" : pos == NULL ? "pos_embed"
                 : pw == NULL ? "patch_embed.proj.weight" : "blocks.0.mlp.fc1.weight");
        return -1;
    }
    if (cls->ndim != 3 || pos->ndim != 3 || pw->ndim != 4 || fc1->ndim != 2 ||
        cls->shape[2] < 1 || cls->shape[2] > 65536 || pw->shape[2] < 1 || pw->shape[2] > 64 ||
        pw->shape[2] != pw->shape[3] || fc1->shape[0] < 1 || fc1->shape[0] > 262144 ||
        pos->shape[1] < 2) {
        snprintf(msg, msglen, "not a DINOv2 ViT checkpoint: unexpected tensor shapes");
        return -1;
    }
    int64_t G = (int64_t)llround(sqrt((double)(pos->shape[1] - 1)));
    if (G * G != pos->shape[1] - 1 || G > 1024) {
        snprintf(msg, msglen, "pos_embed: %lld positions: not 1 + a square grid",
                 (long long)pos->shape[1]);
        return -1;
    }
    cfg->dim = (int)cls->shape[2];
    cfg->patch = (int)pw->shape[2];
    cfg->mlp = (int)fc1->shape[0];
    cfg->grid = (int)G;
    cfg->heads = heads > 0 ? heads : cfg->dim >= 64 ? cfg->dim / 64 : 1;
    if (cfg->heads < 1 || cfg->dim % cfg->heads != 0) {
        snprintf(msg, msglen, "dim %d does not split into %d heads", cfg->dim, cfg->heads);
        return -1;
    }
    char name[64];
    cfg->depth = 0;
    do
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", cfg->depth);
    while (st_find(f, name) != NULL && ++cfg->depth < 1000);
    return 0;
}

int dinov2_load(struct dinov2 *net, const char *path, int heads, char *msg, size_t msglen)
{
    struct st_file f;
    struct dinov2_config cfg;
    memset(net, 0, sizeof *net);
    if (strcmp(path, "synthetic") == 0) {
        dinov2_synthetic(net, &dinov2_vitl14);
        return 0;
    }
    if (!util_exists(path) || util_is_dir(path)) {
        snprintf(msg, msglen, util_is_dir(path) ? "Is a directory" : "No such file or directory");
        return -1;
    }
    if ((is_pth(path) ? pth_open(&f, path, msg, msglen) : st_open(&f, path, msg, msglen)) == -1)
        return -1;
    if (read_config(&f, &cfg, heads, msg, msglen) == -1) {
        st_close(&f);
        return -1;
    }
    int n = dinov2_n_tensors(&cfg);
    float **ptr = xcalloc((size_t)n, sizeof *ptr);
    struct st_entry *e = xcalloc((size_t)n, sizeof *e);
    char *names = xcalloc((size_t)n, 64);
    carve(net, &cfg, ptr);
    for (int t = 0; t < n; t++) {
        e[t].name = names + (size_t)t * 64;
        e[t].ndim = dinov2_tensor(&cfg, t, names + (size_t)t * 64, 64, e[t].shape);
        e[t].ptr = ptr[t];
    }
    /* no extras: a register model (register_tokens) or anything else is not dgm-eval's */
    int rc = st_load_entries(&f, e, n, 0, msg, msglen);
    st_close(&f);
    free(names);
    free(e);
    free(ptr);
    /* checked after the tensors, so a file missing one says so first */
    if (rc == 0 && (cfg.dim % NN_PACK_NR != 0 || cfg.mlp % NN_PACK_NR != 0)) {
        snprintf(msg, msglen, "dim %d, mlp %d: not multiples of %d (every official DINOv2's "
                 "are)", cfg.dim, cfg.mlp, NN_PACK_NR);
        rc = -1;
    }
    if (rc == -1)
        dinov2_free(net);
    else
        pack_weights(net);
    return rc;
}

void dinov2_free(struct dinov2 *net)
{
    free(net->params);
    free(net->blocks);
    memset(net, 0, sizeof *net);
}

int dinov2_default_weights(char *path, size_t pathlen, const char *argv0, char *msg,
                           size_t msglen)
{
    const char *env = getenv("DINOV2_WEIGHTS");
    if (env != NULL && *env != '\0') {
        snprintf(path, pathlen, "%s", env);
        if (strcmp(env, "synthetic") == 0 || util_exists(env))
            return 0;
        snprintf(msg, msglen, "DINOV2_WEIGHTS=%s: No such file (run `make weights`, or "
                 "download %s)", env, DINOV2_URL);
        return -1;
    }
    if (util_find_weights(path, pathlen, DINOV2_WEIGHTS_FILE, argv0))
        return 0;
    snprintf(msg, msglen, "no DINOv2 weights weights/%s: run `make weights` (or download %s), "
             "set DINOV2_WEIGHTS or pass --dinov2-weights", DINOV2_WEIGHTS_FILE, DINOV2_URL);
    return -1;
}

int dinov2_open(struct dinov2 *net, const char *path, const char *argv0, char *used,
                size_t usedlen, char *msg, size_t msglen)
{
    memset(net, 0, sizeof *net);
    if (path == NULL) {
        if (dinov2_default_weights(used, usedlen, argv0, msg, msglen) == -1)
            return -1;
    } else
        snprintf(used, usedlen, "%s", path);
    if (dinov2_load(net, used, 0, msg, msglen) == -1) {
        char m2[512];
        snprintf(m2, sizeof m2, "%s: %s", used, msg);
        snprintf(msg, msglen, "%s", m2);
        return -1;
    }
    return 0;
}
