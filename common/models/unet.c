/* diffusers UNet2DModel: the forward pass (and the closed-form test weights). The layout of
   parameters and activations is in unet_layout.c, config parsing and folder I/O in
   unet_io.c. */
#include "models/unet.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_chain.h"
#include "models/unet_prof.h"
#include "nn/nn.h"
#include "nn/nn_wino.h"
#include "util/util.h"

/* ---- forward ---- */

/* nn_wino4_forward's phase times, asked for only while profiling: times (zeroed) or NULL */
static struct nn_wino4_times *wino_times(struct nn_wino4_times *t)
{
    memset(t, 0, sizeof *t);
#ifndef UNET_NO_PROF
    if (unet_prof_enabled)
        return t;
#endif
    return NULL;
}

/* ... and into unet_prof's table */
static void wino_prof(const struct nn_wino4_times *t)
{
#ifndef UNET_NO_PROF
    if (unet_prof_enabled) {
        unet_prof_sec[UNET_PROF_WINO_IN] += t->in_sec;
        unet_prof_sec[UNET_PROF_WINO_GEMM] += t->gemm_sec;
        unet_prof_flop[UNET_PROF_WINO_GEMM] += t->gemm_flop;
        unet_prof_sec[UNET_PROF_WINO_OUT] += t->out_sec;
    }
#endif
    (void)t;
}

/* unet_alloc_infer's conv: the cached transform or one made now into wino.tmp, and the
   batch cut at GEMM chunk boundaries, so that the scratch holds one chunk's tiles (the same
   GEMMs on the same columns of each chunk as one call over the batch: the same bits) */
static void conv3_infer(struct unet *u, float *out, const float *in,
                        const struct nn_wino4_fuse *pre, const float *w, const float *b, int e,
                        int B, int C, int H, int W, int OC)
{
    const float *U;
    struct nn_wino4_times tm;
    int ipc = nn_wino4_chunk_images(H, W), ut = 0;
    assert(nn_wino4_scratch(1, C, H, W, OC) <= u->acts.n_scratch);
    if (u->wino.off[e] == UNET_WINO_NONE && B <= ipc && nn_wino4_fuses(B, H, W)) {
        /* one chunk, where fusing measured faster: the transform inside the GEMMs, whose time
           it then counts in (the same bits either way) */
        nn_wino4_forward_fused(out, u->acts.scratch, u->wino.tmp, in, pre, NULL, w, b, B, C, H,
                             W, OC, wino_times(&tm));
        wino_prof(&tm);
        return;
    }
    UNET_PROF_BEGIN(UNET_PROF_WINO_WEIGHTS);
    if (u->wino.off[e] == UNET_WINO_NONE) {
        nn_wino4_weights(u->wino.tmp, w, C, OC);
        U = u->wino.tmp;
    } else {
        /* made once: on small maps transposed, for the GEMMs of few columns */
        float *Uc = u->wino.buf + u->wino.off[e];
        ut = nn_wino4_transposed(H, W);
        if (!u->wino.ok[e]) {
            if (ut)
                nn_wino4_weights_t(Uc, w, C, OC);
            else
                nn_wino4_weights(Uc, w, C, OC);
            u->wino.ok[e] = 1;
        }
        U = Uc;
    }
    UNET_PROF_END(UNET_PROF_WINO_WEIGHTS, 0.0);
    for (int n0 = 0; n0 < B;) {
        int n1 = n0 + ipc;
        n1 = n1 < B ? n1 : B;
        struct nn_wino4_fuse pc = {NULL, NULL, NULL, NULL}; /* the chunk's images' */
        if (pre != NULL) {
            size_t at = (size_t)n0 * C, ao = (size_t)n0 * OC;
            pc.scale = pre->scale ? pre->scale + at : NULL;
            pc.shift = pre->shift ? pre->shift + at : NULL;
            pc.add = pre->add ? pre->add + ao : NULL;
            pc.res = pre->res ? pre->res + ao * H * W : NULL;
        }
        if (ut)
            nn_wino4_forward_fused_t(out + (size_t)n0 * OC * H * W, u->acts.scratch,
                                     in + (size_t)n0 * C * H * W, pre ? &pc : NULL, U, b,
                                     n1 - n0, C, H, W, OC, wino_times(&tm));
        else
            nn_wino4_forward_fused(out + (size_t)n0 * OC * H * W, u->acts.scratch, NULL,
                                   in + (size_t)n0 * C * H * W, pre ? &pc : NULL, U, NULL, b,
                                   n1 - n0, C, H, W, OC, wino_times(&tm));
        wino_prof(&tm);
        n0 = n1;
    }
}

/* pre: NULL, or the ops to do in the transforms (inference only) */
static void conv3_pre(struct unet *u, float *out, const float *in, const struct nn_wino4_fuse *pre,
                      const float *w, const float *b, int B, int C, int H, int W, int OC)
{
    int e = param_find_ptr(&u->pt, w);
    struct nn_wino4_times tm;
    UNET_PROF_FLOP(unet_prof_conv3_flop, 18.0 * C * OC * H * W * B);
    if (u->acts.infer) {
        conv3_infer(u, out, in, pre, w, b, e, B, C, H, W, OC);
        return;
    }
    assert(pre == NULL);
    assert(nn_wino4_scratch(B, C, H, W, OC) <= u->acts.n_scratch && u->wino.tmp != NULL);
    float *U = u->wino.tmp;
    UNET_PROF_BEGIN(UNET_PROF_WINO_WEIGHTS);
    nn_wino4_weights(U, w, C, OC);
    UNET_PROF_END(UNET_PROF_WINO_WEIGHTS, 0.0);
    /* the input tiles kept for the weight gradient, where they fit */
    struct unet_tiles *kt = &u->tiles;
    if (kt->v != NULL && kt->v[e] != NULL && nn_wino4_tiles(B, C, H, W) <= kt->cap[e]) {
        nn_wino4_forward_keep(out, u->acts.scratch, kt->v[e], in, U, b, B, C, H, W, OC,
                              wino_times(&tm));
        wino_prof(&tm);
        kt->batch[e] = B;
        return;
    }
    if (kt->v != NULL)
        kt->batch[e] = 0;
    nn_wino4_forward(out, u->acts.scratch, in, U, b, B, C, H, W, OC, wino_times(&tm));
    wino_prof(&tm);
}

static void conv3(struct unet *u, float *out, const float *in, const float *w, const float *b,
                  int B, int C, int H, int W, int OC)
{
    conv3_pre(u, out, in, NULL, w, b, B, C, H, W, OC);
}

static void norm_forward(const struct unet *u, struct unet_norm *n, const float *in, int B, int HW)
{
    UNET_PROF_BEGIN(UNET_PROF_NORM);
    nn_group_norm_silu_forward(n->out, n->mean, n->rstd, in, n->w, n->b, B, n->C, HW, n->G,
                               u->cfg.norm_eps, 0);
    UNET_PROF_END(UNET_PROF_NORM, 0.0);
}

/* act = silu(GN(in)); the norm output itself is not stored (a backward recomputes it from
   in, mean and rstd) */
static void norm_silu_forward(const struct unet *u, struct unet_norm *n, float *act,
                              const float *in, int B, int HW)
{
    UNET_PROF_BEGIN(UNET_PROF_NORM);
    nn_group_norm_silu_forward(act, n->mean, n->rstd, in, n->w, n->b, B, n->C, HW, n->G,
                               u->cfg.norm_eps, 1);
    UNET_PROF_END(UNET_PROF_NORM, 0.0);
}

/* out = conv3(silu(GN(in))) (+ add per (image, channel)) (+ res). In inference the add and
   res go into the output transform (NULL: none; training passes NULL and adds apart) and, on
   maps the input transform takes whole (the ddpm-cifar10 shape's all), the norm's statistics
   are made here and applied inside the input transform, so the activation (act: its room
   otherwise) never goes to memory; the same expressions on the same values: the same bits */
static void norm_silu_conv3(struct unet *u, struct unet_norm *n, float *act, const float *in,
                            float *out, const float *w, const float *b, const float *add,
                            const float *res, int B, int H, int W, int OC)
{
    struct nn_wino4_fuse f = {NULL, NULL, add, res};
    assert(u->acts.infer || (add == NULL && res == NULL));
    if (u->acts.infer && n->scale != NULL && nn_wino4_pre_fits(H, W)) {
        f.scale = n->scale;
        f.shift = n->shift;
        UNET_PROF_BEGIN(UNET_PROF_NORM);
        nn_group_norm_silu_affine(n->scale, n->shift, n->mean, n->rstd, in, n->w, n->b, B, n->C,
                                  H * W, n->G, u->cfg.norm_eps);
        UNET_PROF_END(UNET_PROF_NORM, 0.0);
    } else {
        norm_silu_forward(u, n, act, in, B, H * W);
        in = act;
    }
    conv3_pre(u, out, in, u->acts.infer ? &f : NULL, w, b, B, n->C, H, W, OC);
}

/* ---- building blocks (the GEMMs besides the 3x3 stride-1 convs are in unet_chain.c) ---- */

/* ResnetBlock2D, time_embedding_norm "default" */
static void resnet_forward(struct unet *u, struct unet_resnet *r, const float *in, int B)
{
    int HW = r->H * r->W, cout = r->cout, cin = r->cin;
    size_t n = (size_t)B * cout * HW;
    r->in = in;
    int inf = u->acts.infer; /* the time embedding and residual adds in the convs */
    UNET_PROF_BEGIN(UNET_PROF_TEMB);
    unet_chain_linear_vec(r->tproj, u->acts.emb_act, r->temb_w, r->temb_b, B,
                          u->cfg.time_embed_dim, cout, u->acts.scratch);
    UNET_PROF_END(UNET_PROF_TEMB, 2.0 * B * u->cfg.time_embed_dim * cout);
    norm_silu_conv3(u, &r->norm1, r->act1, in, r->h1, r->conv1_w, r->conv1_b,
                    inf ? r->tproj : NULL, NULL, B, r->H, r->W, cout);
    if (!inf) {
        UNET_PROF_BEGIN(UNET_PROF_TEMB);
#pragma omp parallel for collapse(2)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < cout; c++) {
                float *h = r->h1 + ((size_t)b * cout + c) * HW, t = r->tproj[b * cout + c];
                for (int i = 0; i < HW; i++)
                    h[i] += t;
            }
        UNET_PROF_END(UNET_PROF_TEMB, 0.0);
    }
    norm_silu_conv3(u, &r->norm2, r->act2, r->h1, r->out, r->conv2_w, r->conv2_b, NULL,
                    inf && !r->sc_w ? in : NULL, B, r->H, r->W, cout);
    if (r->sc_w) {
        /* conv_shortcut 1x1: out[b] = (out[b] + W (cout,cin) @ in[b] (cin,HW)) + bias */
        UNET_PROF_BEGIN(UNET_PROF_CONV_1X1);
        unet_chain_conv1x1_add(r->out, in, r->sc_w, r->sc_b, B, cin, cout, HW, u->acts.scratch,
                               u->acts.n_thr);
        UNET_PROF_END(UNET_PROF_CONV_1X1, 2.0 * B * cout * cin * HW);
    } else if (!inf) {
        UNET_PROF_BEGIN(UNET_PROF_ADD);
        nn_add_forward(r->out, r->out, in, n);
        UNET_PROF_END(UNET_PROF_ADD, 0.0);
    }
    if (r->scale != 1.0f) {
        UNET_PROF_BEGIN(UNET_PROF_ADD);
        float s = r->scale;
#pragma omp parallel for
        for (size_t i = 0; i < n; i++)
            r->out[i] /= s;
        UNET_PROF_END(UNET_PROF_ADD, 0.0);
    }
}

/* Attention with group_norm, residual_connection, single or multi head */
static void attn_forward(struct unet *u, struct unet_attn *a, const float *in, int B)
{
    int C = a->C, T = a->T;
    size_t n = (size_t)B * T * C;
    a->in = in;
    norm_forward(u, &a->norm, in, B, T);
    {
        UNET_PROF_BEGIN(UNET_PROF_OTHER);
        nn_transpose_forward(a->tok, a->norm.out, B, C, T);
        UNET_PROF_END(UNET_PROF_OTHER, 0.0);
    }
    assert(unet_chain_scratch(u, B, u->acts.n_thr) <= u->acts.n_scratch);
    unet_chain_attention(a, a->norm.out, B, u->acts.scratch);
    {
        UNET_PROF_BEGIN(UNET_PROF_OTHER);
        nn_transpose_forward(a->out, a->proj, B, T, C);
        UNET_PROF_END(UNET_PROF_OTHER, 0.0);
    }
    UNET_PROF_BEGIN(UNET_PROF_ADD);
    nn_add_forward(a->out, a->out, in, n);
    if (a->scale != 1.0f) {
        float s = a->scale;
#pragma omp parallel for
        for (size_t i = 0; i < n; i++)
            a->out[i] /= s;
    }
    UNET_PROF_END(UNET_PROF_ADD, 0.0);
}

static void down_forward(struct unet *u, struct unet_sample *s, const float *in, int B)
{
    int p = u->cfg.downsample_padding;
    s->in = in;
    assert((size_t)u->acts.n_thr * s->C * 9 * (s->H / 2) * (s->W / 2) <= u->acts.n_scratch);
    UNET_PROF_BEGIN(UNET_PROF_CONV_S2);
    if (p == 0) /* Downsample2D pads (0,1,0,1) itself, then conv with padding 0 */
        unet_chain_conv3s2(s->out, u->acts.scratch, in, s->w, s->b, B, s->C, s->H, s->W, s->C,
                           0, 0, 1, 1, u->acts.n_thr);
    else
        unet_chain_conv3s2(s->out, u->acts.scratch, in, s->w, s->b, B, s->C, s->H, s->W, s->C,
                           p, p, p, p, u->acts.n_thr);
    /* the output size of both paddings (a (0,1,0,1) pad keeps H/2 as p = 1 does) */
    UNET_PROF_END(UNET_PROF_CONV_S2, 18.0 * B * s->C * s->C * (s->H / 2) * (s->W / 2));
}

static void up_forward(struct unet *u, struct unet_sample *s, const float *in, int B)
{
    s->in = in;
    UNET_PROF_BEGIN(UNET_PROF_UPSAMPLE);
    nn_upsample2x_forward(s->up, in, B, s->C, s->H, s->W);
    UNET_PROF_END(UNET_PROF_UPSAMPLE, 0.0);
    conv3(u, s->out, s->up, s->w, s->b, B, s->C, 2 * s->H, 2 * s->W, s->C);
}

void unet_forward(struct unet *u, float *eps, const float *x, const float *t, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    size_t nin = (size_t)B * c->in_channels * S * S;
    const float *h;
    int ns = 0;

    /* the activations are sized once (unet_alloc_acts, unet_alloc_infer): a larger batch is
       the caller's bug */
    assert(B > 0 && B <= u->acts.max_batch);
    {
        UNET_PROF_BEGIN(UNET_PROF_OTHER);
        if (c->center_input_sample)
            for (size_t i = 0; i < nin; i++)
                u->acts.x_in[i] = 2.0f * x[i] - 1.0f;
        else
            memcpy(u->acts.x_in, x, nin * sizeof(float));
        memcpy(u->acts.t_in, t, (size_t)B * sizeof(float));
        UNET_PROF_END(UNET_PROF_OTHER, 0.0);
    }

    /* Timesteps + TimestepEmbedding: linear_2(silu(linear_1(emb))) */
    UNET_PROF_BEGIN(UNET_PROF_TEMB);
    nn_timestep_embedding(u->acts.temb, u->acts.t_in, B, C0, c->flip_sin_to_cos, c->freq_shift,
                          10000.0f, 1.0f);
    unet_chain_linear_vec(u->acts.te1, u->acts.temb, u->lin1_w, u->lin1_b, B, C0, TE,
                          u->acts.scratch);
    nn_silu_forward(u->acts.te1_act, u->acts.te1, (size_t)B * TE);
    unet_chain_linear_vec(u->acts.emb, u->acts.te1_act, u->lin2_w, u->lin2_b, B, TE, TE,
                          u->acts.scratch);
    /* every resnet applies its nonlinearity to temb before time_emb_proj */
    nn_silu_forward(u->acts.emb_act, u->acts.emb, (size_t)B * TE);
    UNET_PROF_END(UNET_PROF_TEMB, 2.0 * B * TE * (C0 + TE));

    conv3(u, u->acts.h0, u->acts.x_in, u->conv_in_w, u->conv_in_b, B, c->in_channels, S, S, C0);
    h = u->acts.h0;
    u->acts.skips[ns++] = h;
    for (int i = 0; i < c->n_levels; i++) {
        struct unet_level *lv = &u->down[i];
        for (int j = 0; j < lv->n_res; j++) {
            resnet_forward(u, &lv->res[j], h, B);
            h = lv->res[j].out;
            if (lv->has_attn) {
                attn_forward(u, &lv->attn[j], h, B);
                h = lv->attn[j].out;
            }
            u->acts.skips[ns++] = h;
        }
        if (lv->has_sample) {
            down_forward(u, &lv->sample, h, B);
            h = lv->sample.out;
            u->acts.skips[ns++] = h;
        }
    }
    u->acts.n_skips = ns;
    resnet_forward(u, &u->mid_res[0], h, B);
    h = u->mid_res[0].out;
    if (c->add_attention) {
        attn_forward(u, &u->mid_attn, h, B);
        h = u->mid_attn.out;
    }
    resnet_forward(u, &u->mid_res[1], h, B);
    h = u->mid_res[1].out;
    for (int i = 0; i < c->n_levels; i++) {
        struct unet_level *lv = &u->up[i];
        for (int j = 0; j < lv->n_res; j++) {
            struct unet_resnet *r = &lv->res[j];
            int skip_c = r->cin - (j ? r->cout : (i ? u->up[i - 1].res[0].cout
                                                    : c->block_out_channels[c->n_levels - 1]));
            /* cat([hidden, skip], dim=1): hidden first */
            UNET_PROF_BEGIN(UNET_PROF_OTHER);
            nn_concat_forward(r->cat, h, u->acts.skips[--ns], B, r->cin - skip_c, skip_c,
                              r->H * r->W);
            UNET_PROF_END(UNET_PROF_OTHER, 0.0);
            resnet_forward(u, r, r->cat, B);
            h = r->out;
            if (lv->has_attn) {
                attn_forward(u, &lv->attn[j], h, B);
                h = lv->attn[j].out;
            }
        }
        if (lv->has_sample) {
            up_forward(u, &lv->sample, h, B);
            h = lv->sample.out;
        }
    }
    assert(ns == 0);
    norm_silu_conv3(u, &u->norm_out, u->acts.act_out, h, u->acts.out, u->conv_out_w,
                    u->conv_out_b, NULL, NULL, B, S, S, c->out_channels);
    if (eps) {
        UNET_PROF_BEGIN(UNET_PROF_OTHER);
        memcpy(eps, u->acts.out, (size_t)B * c->out_channels * S * S * sizeof(float));
        UNET_PROF_END(UNET_PROF_OTHER, 0.0);
    }
}

/* ---- closed-form weights ---- */
static const struct st_entry *sort_base;
static int cmp_entry(const void *a, const void *b)
{
    return strcmp(sort_base[*(const int *)a].name, sort_base[*(const int *)b].name);
}

void unet_init_closed_form(struct unet *u)
{
    int *ord = xmalloc((size_t)u->pt.n * sizeof *ord);
    for (int i = 0; i < u->pt.n; i++)
        ord[i] = i;
    sort_base = u->pt.e;
    qsort(ord, (size_t)u->pt.n, sizeof *ord, cmp_entry);
    for (int k = 0; k < u->pt.n; k++) {
        const struct st_entry *e = &u->pt.e[ord[k]];
        size_t cnt = 1;
        int is_norm = strstr(e->name, "norm") != NULL;
        int is_bias = strcmp(e->name + strlen(e->name) - 5, ".bias") == 0;
        double s = 0.1;
        for (int d = 0; d < e->ndim; d++)
            cnt *= (size_t)e->shape[d];
        if (!is_norm && !is_bias)
            s = 1.0 / sqrt((double)(cnt / (size_t)e->shape[0]));
        for (size_t i = 0; i < cnt; i++) {
            double v = sin(0.1 * (double)i + k);
            e->ptr[i] = (float)(is_norm && !is_bias ? 1.0 + 0.1 * v : s * v);
        }
    }
    free(ord);
    unet_weights_changed(u);
}
