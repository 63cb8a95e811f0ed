/* DINOv2 ViT forward (facebookresearch/dinov2 dinov2/models/vision_transformer.py and
   dinov2/layers/{block,attention,mlp,layer_scale,patch_embed}.py), dgm-eval's preprocessing,
   and the position-embedding interpolation. */
#include "models/dinov2.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "io/img.h"
#include "models/dinov2_prof.h"
#include "nn/nn.h"
#include "util/util.h"

/* dgm-eval's DINOv2Encoder.transform with clean_resize=False (its default):
   TF.Resize((224, 224), BICUBIC) on the PIL image (Pillow's antialiased cubic, uint8 result),
   ToTensor (uint8 / 255 in float32), then TF.Normalize with ImageNet's mean and std, given
   as float64 numpy arrays but cast to the tensor's float32 by torchvision before
   x.sub_(mean).div_(std). The project's spec (metrics-beyond.md) and dgm-eval's source agree
   here; its clean_resize=True path (clean-fid's per-channel float resize) and
   torch-fidelity's DINOv2 extractor (bilinear) give other features and are not followed. */
static const float pre_mean[3] = { 0.485f, 0.456f, 0.406f };
static const float pre_std[3] = { 0.229f, 0.224f, 0.225f };

void dinov2_preprocess(float *x, uint8_t *tmp, const uint8_t *img, int H, int W)
{
    const int S = DINOV2_SIZE;
    img_resize_bicubic(tmp, S, S, img, W, H);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++)
            x[(size_t)c * S * S + i] = ((float)tmp[3 * i + c] / 255.0f - pre_mean[c]) / pre_std[c];
}

/* interpolate_pos_encoding of facebookresearch/dinov2 as torch.hub loads it today (main,
   2025-08; dgm-eval calls torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')):
   interpolate_offset 0.1 and interpolate_antialias False (the defaults dinov2_vitl14 keeps),
   so F.interpolate(bicubic, scale_factor=((gh + 0.1) / grid, (gw + 0.1) / grid)), whose output
   is floor(grid * scale) = gh x gw and whose source coordinates use 1/scale_factor, not
   grid/gh. (The first release used the same 0.1 offset on (w0 + 0.1) / sqrt(N) too.) When the
   input's patch count equals the table's and H == W the table is used as it is, as there. */
void dinov2_pos_embed(float *pos, const struct dinov2 *net, int H, int W, int gh, int gw)
{
    int D = net->cfg.dim, G = net->cfg.grid;
    if (gh * gw == G * G && H == W) {
        memcpy(pos, net->pos_embed, (size_t)(1 + G * G) * D * sizeof(float));
        return;
    }
    memcpy(pos, net->pos_embed, (size_t)D * sizeof(float));
    float *in = xmalloc((size_t)D * G * G * sizeof(float));
    float *out = xmalloc((size_t)D * gh * gw * sizeof(float));
    nn_transpose_forward(in, net->pos_embed + D, 1, G * G, D);     /* (G*G, D) -> (D, G*G) */
    /* PyTorch: scale = (float)(1.0 / scale_factor), scale_factor a Python float (double) */
    float sh = (float)(1.0 / ((gh + 0.1) / G)), sw = (float)(1.0 / ((gw + 0.1) / G));
    nn_bicubic_resize_forward(out, in, 1, D, G, G, gh, gw, sh, sw);
    nn_transpose_forward(pos + D, out, 1, D, gh * gw);
    free(in);
    free(out);
}

void dinov2_ws_init(struct dinov2_ws *ws, const struct dinov2 *net, int H, int W)
{
    const struct dinov2_config *c = &net->cfg;
    memset(ws, 0, sizeof *ws);
    ws->H = H;
    ws->W = W;
    ws->gh = H / c->patch;   /* Conv2d(stride = patch) drops the remainder */
    ws->gw = W / c->patch;
    ws->T = 1 + ws->gh * ws->gw;
    size_t B = DINOV2_BATCH, T = (size_t)ws->T, D = (size_t)c->dim;
    size_t P = 3 * (size_t)c->patch * c->patch;
    size_t nm = B * (T * c->mlp > (T - 1) * P ? T * c->mlp : (T - 1) * P);
    size_t S = DINOV2_SIZE, npre = B * 3 * (size_t)H * W > B * 3 * S * S ? B * 3 * (size_t)H * W
                                                                         : B * 3 * S * S;
    size_t total = T * D + 6 * B * T * D + nm + npre + S * S;
    ws->mem = xmalloc_big(total * sizeof(float));
    float *p = ws->mem;
    ws->pos = p;
    p += T * D;
    float **bufs[3] = { &ws->x, &ws->h, &ws->a };
    for (int i = 0; i < 3; i++) {
        *bufs[i] = p;
        p += B * T * D;
    }
    ws->qkv = p;
    p += 3 * B * T * D;
    ws->m = p;
    p += nm;
    ws->pre = p;
    p += npre;
    ws->tmp = (uint8_t *)p;
    dinov2_pos_embed(ws->pos, net, H, W, ws->gh, ws->gw);
}

void dinov2_ws_free(struct dinov2_ws *ws)
{
    free(ws->mem);
    memset(ws, 0, sizeof *ws);
}

/* Conv2d(3, D, p, stride p) as a GEMM: patches (gh*gw, 3*p*p), row = patch (py, px) in
   flatten(2) order, column = (c, ky, kx) as the weight's (D, 3, p, p) */
static void patchify(float *out, const float *x, int H, int W, int p, int gh, int gw)
{
    size_t P = 3 * (size_t)p * p;
    for (int py = 0; py < gh; py++)
        for (int px = 0; px < gw; px++) {
            float *o = out + ((size_t)py * gw + px) * P;
            for (int c = 0; c < 3; c++)
                for (int ky = 0; ky < p; ky++)
                    memcpy(o + ((size_t)c * p + ky) * p,
                           x + ((size_t)c * H + (size_t)py * p + ky) * W + (size_t)px * p,
                           (size_t)p * sizeof(float));
        }
}

/* x (T,D) += gamma (D) * y (T,D): LayerScale and the residual; then, when nw is given, the
   next LayerNorm of each row into y while the row is in cache (one pass over x fewer) */
static void add_scaled_norm(float *x, float *y, const float *gamma, const float *nw,
                            const float *nb, int T, int D)
{
#pragma omp parallel for schedule(static) if ((size_t)T * D > 65536 && !omp_in_parallel())
    for (int t = 0; t < T; t++) {
        float *xr = x + (size_t)t * D, *yr = y + (size_t)t * D;
#pragma omp simd
        for (int d = 0; d < D; d++)
            xr[d] += gamma[d] * yr[d];
        if (nw != NULL)
            nn_layer_norm_forward(yr, xr, nw, nb, 1, D, DINOV2_EPS);
    }
}

/* one Block over the n images' tokens, x = x + ls1(attn(norm1(x))); x = x + ls2(mlp(norm2(x))),
   with norm1(x) in h on entry; leaves next_w/next_b's norm of the new x in h (if given) */
static void block_forward(const struct dinov2_config *c, const struct dinov2_block *b,
                          struct dinov2_ws *ws, int n, const float *next_w, const float *next_b)
{
    int T = ws->T, D = c->dim, R = n * T, F = c->mlp;
    double fl = 2.0 * R * D; /* flops of a GEMM over the tokens, per output column and k */
    DINOV2_PROF_BEGIN(DINOV2_PROF_QKV);
    nn_linear_packed(ws->qkv, 3 * D, ws->h, D, b->qkv_w, b->qkv_b, R, D, 3 * D);
    DINOV2_PROF_END(DINOV2_PROF_QKV, 3 * fl * D);
    DINOV2_PROF_BEGIN(DINOV2_PROF_ATTN);
    nn_attention_qkv_forward(ws->a, ws->qkv, n, T, D, c->heads);
    DINOV2_PROF_END(DINOV2_PROF_ATTN, 2.0 * fl * T);
    DINOV2_PROF_BEGIN(DINOV2_PROF_PROJ);
    nn_linear_packed(ws->h, D, ws->a, D, b->proj_w, b->proj_b, R, D, D);
    DINOV2_PROF_END(DINOV2_PROF_PROJ, fl * D);
    DINOV2_PROF_BEGIN(DINOV2_PROF_ADD);
    add_scaled_norm(ws->x, ws->h, b->ls1, b->norm2_w, b->norm2_b, R, D);
    DINOV2_PROF_END(DINOV2_PROF_ADD, 0.0);
    DINOV2_PROF_BEGIN(DINOV2_PROF_FC1);
    /* GELU fused: applied to each tile of fc1's output as it is finished, while in L1, instead
       of a pass over the 16 MB (batch 4) afterwards; its time counts in fc1's line */
    nn_linear_packed_ep(ws->m, F, ws->h, D, b->fc1_w, b->fc1_b, R, D, F, nn_gelu_rows);
    DINOV2_PROF_END(DINOV2_PROF_FC1, fl * F);
    DINOV2_PROF_BEGIN(DINOV2_PROF_FC2);
    nn_linear_packed(ws->h, D, ws->m, F, b->fc2_w, b->fc2_b, R, F, D);
    DINOV2_PROF_END(DINOV2_PROF_FC2, fl * F);
    {
        DINOV2_PROF_BEGIN(DINOV2_PROF_ADD);
        add_scaled_norm(ws->x, ws->h, b->ls2, next_w, next_b, R, D);
        DINOV2_PROF_END(DINOV2_PROF_ADD, 0.0);
    }
}

/* n <= DINOV2_BATCH images x (n,3,H,W) -> feat (n,D) */
static void forward_n(const struct dinov2 *net, struct dinov2_ws *ws, float *feat,
                      const float *x, int n)
{
    const struct dinov2_config *c = &net->cfg;
    int D = c->dim, T = ws->T, P = 3 * c->patch * c->patch;
    size_t per = 3 * (size_t)ws->H * ws->W;
    DINOV2_PROF_BEGIN(DINOV2_PROF_PATCH);
    for (int i = 0; i < n; i++) {
        float *xi = ws->x + (size_t)i * T * D, *pi = ws->m + (size_t)i * (T - 1) * P;
        patchify(pi, x + i * per, ws->H, ws->W, c->patch, ws->gh, ws->gw);
        nn_linear_packed(xi + D, D, pi, P, net->patch_w, net->patch_b, T - 1, P, D);
        memcpy(xi, net->cls_token, (size_t)D * sizeof(float));
        nn_add_forward(xi, xi, ws->pos, (size_t)T * D);
    }
    DINOV2_PROF_END(DINOV2_PROF_PATCH, 2.0 * n * (T - 1) * P * D);
    if (c->depth > 0) {
        DINOV2_PROF_BEGIN(DINOV2_PROF_NORM);
        nn_layer_norm_forward(ws->h, ws->x, net->blocks[0].norm1_w, net->blocks[0].norm1_b,
                              n * T, D, DINOV2_EPS);
        DINOV2_PROF_END(DINOV2_PROF_NORM, 0.0);
    }
    for (int b = 0; b < c->depth; b++) {
        const struct dinov2_block *nx = b + 1 < c->depth ? &net->blocks[b + 1] : NULL;
        block_forward(c, &net->blocks[b], ws, n, nx ? nx->norm1_w : NULL,
                      nx ? nx->norm1_b : NULL);
    }
    /* forward_features' x_norm_clstoken: the final norm of token 0 */
    DINOV2_PROF_BEGIN(DINOV2_PROF_NORM);
    for (int i = 0; i < n; i++)
        nn_layer_norm_forward(feat + (size_t)i * D, ws->x + (size_t)i * T * D, net->norm_w,
                              net->norm_b, 1, D, DINOV2_EPS);
    DINOV2_PROF_END(DINOV2_PROF_NORM, 0.0);
}

void dinov2_forward(const struct dinov2 *net, struct dinov2_ws *ws, float *feat,
                    const float *x, int N)
{
    size_t per = 3 * (size_t)ws->H * ws->W;
    for (int i = 0; i < N; i += DINOV2_BATCH) {
        int n = N - i < DINOV2_BATCH ? N - i : DINOV2_BATCH;
        forward_n(net, ws, feat + (size_t)i * net->cfg.dim, x + i * per, n);
    }
}

void dinov2_forward_u8(const struct dinov2 *net, struct dinov2_ws *ws, float *feat,
                       const uint8_t *img, int N, int H, int W)
{
    size_t per = 3 * (size_t)DINOV2_SIZE * DINOV2_SIZE;
    for (int i = 0; i < N; i += DINOV2_BATCH) {
        int n = N - i < DINOV2_BATCH ? N - i : DINOV2_BATCH;
        DINOV2_PROF_BEGIN(DINOV2_PROF_PRE);
        for (int j = 0; j < n; j++)
            dinov2_preprocess(ws->pre + j * per, ws->tmp, img + (size_t)(i + j) * H * W * 3, H,
                              W);
        DINOV2_PROF_END(DINOV2_PROF_PRE, 0.0);
        forward_n(net, ws, feat + (size_t)i * net->cfg.dim, ws->pre, n);
    }
}
