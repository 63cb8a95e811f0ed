/* diffusers UNet2DModel: where everything lives. The parameter block (with the state-dict
   names of every tensor), the activations the forward keeps for the backward, the conv
   scratch, and unet_init / unet_free / unet_alloc_acts. The forward is in unet.c, config
   parsing and folder I/O in unet_io.c. */
#include "models/unet.h"
#include "models/unet_wino.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_chain.h"
#include "nn/nn.h"
#include "nn/nn_wino.h"
#include "util/util.h"

/* ---- parameter layout ----
   model_layout runs twice over the architecture (param_table.h): the first run counts, the
   second carves pointers out of the one parameter block and names the entries as the
   diffusers state dict does. */
struct layout {
    struct unet *u;
    struct param_table *t;
};

static float *param(struct layout *L, const char *leaf, int ndim, int64_t d0, int64_t d1,
                    int64_t d2, int64_t d3)
{
    return param_add(L->t, leaf, ndim, d0, d1, d2, d3);
}

static void norm_layout(struct layout *L, struct unet_norm *n, const char *name, int C, int G)
{
    char leaf[64];
    n->C = C;
    n->G = G;
    snprintf(leaf, sizeof leaf, "%s.weight", name);
    n->w = param(L, leaf, 1, C, 0, 0, 0);
    snprintf(leaf, sizeof leaf, "%s.bias", name);
    n->b = param(L, leaf, 1, C, 0, 0, 0);
}

static void resnet_layout(struct layout *L, struct unet_resnet *r, int cin, int cout, int H,
                          int W, float scale)
{
    const struct unet_config *c = &L->u->cfg;
    int TE = c->time_embed_dim;
    r->cin = cin;
    r->cout = cout;
    r->H = H;
    r->W = W;
    r->scale = scale;
    norm_layout(L, &r->norm1, "norm1", cin, c->norm_num_groups);
    r->conv1_w = param(L, "conv1.weight", 4, cout, cin, 3, 3);
    r->conv1_b = param(L, "conv1.bias", 1, cout, 0, 0, 0);
    r->temb_w = param(L, "time_emb_proj.weight", 2, cout, TE, 0, 0);
    r->temb_b = param(L, "time_emb_proj.bias", 1, cout, 0, 0, 0);
    norm_layout(L, &r->norm2, "norm2", cout, c->norm_num_groups);
    r->conv2_w = param(L, "conv2.weight", 4, cout, cout, 3, 3);
    r->conv2_b = param(L, "conv2.bias", 1, cout, 0, 0, 0);
    r->sc_w = r->sc_b = NULL;
    if (cin != cout) {
        r->sc_w = param(L, "conv_shortcut.weight", 4, cout, cin, 1, 1);
        r->sc_b = param(L, "conv_shortcut.bias", 1, cout, 0, 0, 0);
    }
}

static void attn_layout(struct layout *L, struct unet_attn *a, int C, int T, int head_dim, int G,
                        float scale)
{
    static const char *modern[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    static const char *legacy[4] = {"query", "key", "value", "proj_attn"};
    float **w[4] = {&a->q_w, &a->k_w, &a->v_w, &a->o_w};
    float **b[4] = {&a->q_b, &a->k_b, &a->v_b, &a->o_b};
    a->C = C;
    a->T = T;
    a->heads = head_dim ? C / head_dim : 1;
    a->scale = scale;
    norm_layout(L, &a->norm, "group_norm", C, G);
    for (int i = 0; i < 4; i++) {
        char leaf[64];
        for (int j = 0; j < 2; j++) {
            snprintf(leaf, sizeof leaf, "%s.%s", modern[i], j ? "bias" : "weight");
            if (j)
                *b[i] = param(L, leaf, 1, C, 0, 0, 0);
            else
                *w[i] = param(L, leaf, 2, C, C, 0, 0);
            snprintf(leaf, sizeof leaf, "%s.%s", legacy[i], j ? "bias" : "weight");
            param_alias(L->t, leaf);
        }
    }
}

/* the whole model, in the state-dict order of diffusers (attentions before resnets) */
static void model_layout(struct layout *L)
{
    struct unet *u = L->u;
    const struct unet_config *c = &u->cfg;
    int nl = c->n_levels, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    int S = c->sample_size, cout = C0;
    int skip_ch[UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 1], ns = 0;

    param_prefix(L->t, "%s", "");
    u->conv_in_w = param(L, "conv_in.weight", 4, C0, c->in_channels, 3, 3);
    u->conv_in_b = param(L, "conv_in.bias", 1, C0, 0, 0, 0);
    u->lin1_w = param(L, "time_embedding.linear_1.weight", 2, TE, C0, 0, 0);
    u->lin1_b = param(L, "time_embedding.linear_1.bias", 1, TE, 0, 0, 0);
    u->lin2_w = param(L, "time_embedding.linear_2.weight", 2, TE, TE, 0, 0);
    u->lin2_b = param(L, "time_embedding.linear_2.bias", 1, TE, 0, 0, 0);
    skip_ch[ns++] = C0;
    for (int i = 0; i < nl; i++) {
        struct unet_level *lv = &u->down[i];
        int cin = cout, hd;
        cout = c->block_out_channels[i];
        hd = c->attention_head_dim ? c->attention_head_dim : 0;
        lv->n_res = c->layers_per_block;
        lv->has_attn = c->down_attn[i];
        lv->has_sample = i < nl - 1;
        if (lv->has_attn)
            for (int j = 0; j < lv->n_res; j++) {
                param_prefix(L->t, "down_blocks.%d.attentions.%d.", i, j);
                attn_layout(L, &lv->attn[j], cout, S * S, hd, c->norm_num_groups, 1.0f);
            }
        for (int j = 0; j < lv->n_res; j++) {
            param_prefix(L->t, "down_blocks.%d.resnets.%d.", i, j);
            resnet_layout(L, &lv->res[j], j ? cout : cin, cout, S, S, 1.0f);
            skip_ch[ns++] = cout;
        }
        if (lv->has_sample) {
            param_prefix(L->t, "down_blocks.%d.downsamplers.0.", i);
            lv->sample.C = cout;
            lv->sample.H = lv->sample.W = S;
            lv->sample.w = param(L, "conv.weight", 4, cout, cout, 3, 3);
            lv->sample.b = param(L, "conv.bias", 1, cout, 0, 0, 0);
            S /= 2;
            skip_ch[ns++] = cout;
        }
    }
    {
        int C = c->block_out_channels[nl - 1];
        int G = c->attn_norm_num_groups ? c->attn_norm_num_groups : c->norm_num_groups;
        float sf = c->mid_block_scale_factor;
        if (c->add_attention) {
            param_prefix(L->t, "mid_block.attentions.0.");
            attn_layout(L, &u->mid_attn, C, S * S, c->attention_head_dim, G, sf);
        }
        for (int j = 0; j < 2; j++) {
            param_prefix(L->t, "mid_block.resnets.%d.", j);
            resnet_layout(L, &u->mid_res[j], C, C, S, S, sf);
        }
    }
    cout = c->block_out_channels[nl - 1];
    for (int i = 0; i < nl; i++) {
        struct unet_level *lv = &u->up[i];
        int prev = cout, hd = c->attention_head_dim;
        cout = c->block_out_channels[nl - 1 - i];
        lv->n_res = c->layers_per_block + 1;
        lv->has_attn = c->up_attn[i];
        lv->has_sample = i < nl - 1;
        if (lv->has_attn)
            for (int j = 0; j < lv->n_res; j++) {
                param_prefix(L->t, "up_blocks.%d.attentions.%d.", i, j);
                attn_layout(L, &lv->attn[j], cout, S * S, hd, c->norm_num_groups, 1.0f);
            }
        for (int j = 0; j < lv->n_res; j++) {
            int skip = skip_ch[--ns];
            param_prefix(L->t, "up_blocks.%d.resnets.%d.", i, j);
            resnet_layout(L, &lv->res[j], (j ? cout : prev) + skip, cout, S, S, 1.0f);
        }
        if (lv->has_sample) {
            param_prefix(L->t, "up_blocks.%d.upsamplers.0.", i);
            lv->sample.C = cout;
            lv->sample.H = lv->sample.W = S;
            lv->sample.w = param(L, "conv.weight", 4, cout, cout, 3, 3);
            lv->sample.b = param(L, "conv.bias", 1, cout, 0, 0, 0);
            S *= 2;
        }
    }
    assert(ns == 0);
    param_prefix(L->t, "%s", "");
    norm_layout(L, &u->norm_out, "conv_norm_out", C0, c->norm_num_groups);
    u->conv_out_w = param(L, "conv_out.weight", 4, c->out_channels, C0, 3, 3);
    u->conv_out_b = param(L, "conv_out.bias", 1, c->out_channels, 0, 0, 0);
}

static int check_config(const struct unet_config *c, char *msg, size_t msglen)
{
    int S = c->sample_size;
    if (c->n_levels < 1 || c->n_levels > UNET_MAX_LEVELS) {
        snprintf(msg, msglen, "block_out_channels: want 1..%d levels, got %d", UNET_MAX_LEVELS,
                 c->n_levels);
        return -1;
    }
    if (c->layers_per_block < 1 || c->layers_per_block + 1 > UNET_MAX_LAYERS) {
        snprintf(msg, msglen, "layers_per_block: want 1..%d, got %d", UNET_MAX_LAYERS - 1,
                 c->layers_per_block);
        return -1;
    }
    if (S < 1 || S > 4096 || S % (1 << (c->n_levels - 1)) != 0) {
        snprintf(msg, msglen, "sample_size: %d is not a multiple of %d", S,
                 1 << (c->n_levels - 1));
        return -1;
    }
    if (c->in_channels < 1 || c->in_channels > 64 || c->out_channels < 1 || c->out_channels > 64) {
        snprintf(msg, msglen, "in_channels/out_channels: want 1..64");
        return -1;
    }
    if (c->block_out_channels[0] % 2 != 0) {
        snprintf(msg, msglen, "block_out_channels[0]: %d is odd (time embedding needs even)",
                 c->block_out_channels[0]);
        return -1;
    }
    if (c->time_embed_dim < 1 || c->time_embed_dim > 65536) {
        snprintf(msg, msglen, "time_embedding_dim: %d out of range", c->time_embed_dim);
        return -1;
    }
    for (int i = 0; i < c->n_levels; i++) {
        int C = c->block_out_channels[i];
        if (C < 1 || C > 65536 || c->norm_num_groups < 1 || C % c->norm_num_groups != 0) {
            snprintf(msg, msglen, "block_out_channels[%d]: %d not divisible by norm_num_groups %d",
                     i, C, c->norm_num_groups);
            return -1;
        }
        if (c->attention_head_dim && C % c->attention_head_dim != 0) {
            snprintf(msg, msglen, "attention_head_dim: %d does not divide block_out_channels[%d] = %d",
                     c->attention_head_dim, i, C);
            return -1;
        }
    }
    if (c->attn_norm_num_groups && c->block_out_channels[c->n_levels - 1] % c->attn_norm_num_groups) {
        snprintf(msg, msglen, "attn_norm_num_groups: %d does not divide %d",
                 c->attn_norm_num_groups, c->block_out_channels[c->n_levels - 1]);
        return -1;
    }
    /* the concatenated up-block inputs are normed with norm_num_groups too */
    for (int i = 0; i < c->n_levels; i++) {
        int a = c->block_out_channels[i], b = c->block_out_channels[i ? i - 1 : 0];
        if ((a + b) % c->norm_num_groups) {
            snprintf(msg, msglen, "norm_num_groups: %d does not divide an up-block input (%d)",
                     c->norm_num_groups, a + b);
            return -1;
        }
    }
    return 0;
}

int unet_init(struct unet *u, const struct unet_config *c, char *msg, size_t msglen)
{
    struct layout L;
    memset(u, 0, sizeof *u);
    if (check_config(c, msg, msglen) == -1)
        return -1;
    u->cfg = *c;
    L.u = u;
    L.t = &u->pt;
    param_table_init(&u->pt);
    model_layout(&L);
    param_table_alloc(&u->pt);
    model_layout(&L);
    param_table_done(&u->pt);
    u->params = u->pt.base;
    u->n_params = u->pt.n_floats;
    return 0;
}

void unet_free(struct unet *u)
{
    param_table_free(&u->pt);
    free(u->acts.buf);
    free(u->acts.scratch);
    unet_wino_free(u);
    unet_tiles_free(u);
    memset(u, 0, sizeof *u);
}

/* ---- activation layout (same two-pass idea) ---- */
struct alay {
    float *base;
    size_t off;
};

static float *act(struct alay *A, size_t n)
{
    float *p = A->base ? A->base + A->off : NULL;
    A->off += (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
    return p;
}

static void norm_acts(struct alay *A, struct unet_norm *n, int B, int HW, int keep_out)
{
    n->out = keep_out ? act(A, (size_t)B * n->C * HW) : NULL;
    n->mean = act(A, (size_t)B * n->G);
    n->rstd = act(A, (size_t)B * n->G);
    n->scale = n->shift = NULL; /* training keeps the activation for the backward */
}

static void resnet_acts(struct alay *A, struct unet_resnet *r, int B, int is_up)
{
    size_t hw = (size_t)r->H * r->W;
    r->cat = is_up ? act(A, B * r->cin * hw) : NULL;
    norm_acts(A, &r->norm1, B, r->H * r->W, 0);
    r->act1 = act(A, B * r->cin * hw);
    r->tproj = act(A, (size_t)B * r->cout);
    r->h1 = act(A, B * r->cout * hw);
    norm_acts(A, &r->norm2, B, r->H * r->W, 0);
    r->act2 = act(A, B * r->cout * hw);
    r->out = act(A, B * r->cout * hw);
}

static void attn_acts(struct alay *A, struct unet_attn *a, int B)
{
    size_t n = (size_t)B * a->T * a->C;
    norm_acts(A, &a->norm, B, a->T, 1);
    a->tok = act(A, n);
    a->q = act(A, n);
    a->k = act(A, n);
    a->v = act(A, n);
    a->att = act(A, (size_t)B * a->heads * a->T * a->T);
    a->ao = act(A, n);
    a->proj = act(A, n);
    a->out = act(A, n);
}

static void sample_acts(struct alay *A, struct unet_sample *s, int B, int is_up)
{
    size_t n = (size_t)B * s->C * s->H * s->W;
    s->up = is_up ? act(A, 4 * n) : NULL;
    s->out = act(A, is_up ? 4 * n : n / 4);
}

static void model_acts(struct unet *u, struct alay *A, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    size_t hw = (size_t)S * S;
    u->acts.x_in = act(A, B * c->in_channels * hw);
    u->acts.t_in = act(A, B);
    u->acts.temb = act(A, (size_t)B * C0);
    u->acts.te1 = act(A, (size_t)B * TE);
    u->acts.te1_act = act(A, (size_t)B * TE);
    u->acts.emb = act(A, (size_t)B * TE);
    u->acts.emb_act = act(A, (size_t)B * TE);
    u->acts.h0 = act(A, B * C0 * hw);
    for (int i = 0; i < c->n_levels; i++) {
        struct unet_level *lv = &u->down[i];
        for (int j = 0; j < lv->n_res; j++) {
            resnet_acts(A, &lv->res[j], B, 0);
            if (lv->has_attn)
                attn_acts(A, &lv->attn[j], B);
        }
        if (lv->has_sample)
            sample_acts(A, &lv->sample, B, 0);
    }
    resnet_acts(A, &u->mid_res[0], B, 0);
    if (c->add_attention)
        attn_acts(A, &u->mid_attn, B);
    resnet_acts(A, &u->mid_res[1], B, 0);
    for (int i = 0; i < c->n_levels; i++) {
        struct unet_level *lv = &u->up[i];
        for (int j = 0; j < lv->n_res; j++) {
            resnet_acts(A, &lv->res[j], B, 1);
            if (lv->has_attn)
                attn_acts(A, &lv->attn[j], B);
        }
        if (lv->has_sample)
            sample_acts(A, &lv->sample, B, 1);
    }
    norm_acts(A, &u->norm_out, B, (int)hw, 0);
    u->acts.act_out = act(A, B * C0 * hw);
    u->acts.out = act(A, B * c->out_channels * hw);
}

static size_t conv_scratch(int B, int C, int H, int W, int OC, int S, int pt, int pl, int pb,
                           int pr)
{
    int OH = (H + pt + pb - 3) / S + 1, OW = (W + pl + pr - 3) / S + 1;
    if (S == 1)
        return nn_wino4_scratch(B, C, H, W, OC);
    return (size_t)nn_get_threads() * C * 9 * OH * OW; /* conv3s2's im2col slices */
}

static size_t model_scratch(const struct unet *u, int B)
{
    const struct unet_config *c = &u->cfg;
    size_t m = 0, s;
    int S = c->sample_size;
#define MAXS(x) do { s = (x); if (s > m) m = s; } while (0)
    MAXS(conv_scratch(B, c->in_channels, S, S, c->block_out_channels[0], 1, 1, 1, 1, 1));
    MAXS(conv_scratch(B, c->block_out_channels[0], S, S, c->out_channels, 1, 1, 1, 1, 1));
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < c->n_levels; i++) {
            const struct unet_level *lv = d ? &u->up[i] : &u->down[i];
            for (int j = 0; j < lv->n_res; j++) {
                const struct unet_resnet *r = &lv->res[j];
                MAXS(conv_scratch(B, r->cin, r->H, r->W, r->cout, 1, 1, 1, 1, 1));
                MAXS(conv_scratch(B, r->cout, r->H, r->W, r->cout, 1, 1, 1, 1, 1));
            }
            if (lv->has_sample) {
                const struct unet_sample *sp = &lv->sample;
                int p = c->downsample_padding;
                if (d)
                    MAXS(conv_scratch(B, sp->C, 2 * sp->H, 2 * sp->W, sp->C, 1, 1, 1, 1, 1));
                else if (p == 0)
                    MAXS(conv_scratch(B, sp->C, sp->H, sp->W, sp->C, 2, 0, 0, 1, 1));
                else
                    MAXS(conv_scratch(B, sp->C, sp->H, sp->W, sp->C, 2, p, p, p, p));
            }
        }
    for (int j = 0; j < 2; j++) {
        const struct unet_resnet *r = &u->mid_res[j];
        MAXS(conv_scratch(B, r->cin, r->H, r->W, r->cout, 1, 1, 1, 1, 1));
    }
    MAXS(unet_chain_scratch(u, B, nn_get_threads()));
#undef MAXS
    return m;
}

void unet_alloc_acts(struct unet *u, int B)
{
    struct alay A = {NULL, 0};
    assert(B > 0);
    unet_tiles_free(u); /* sized for the old batch */
    u->acts.infer = 0;
    model_acts(u, &A, B);
    free(u->acts.buf);
    u->acts.n = A.off;
    u->acts.buf = xmalloc_big(u->acts.n * sizeof(float));
    A.base = u->acts.buf;
    A.off = 0;
    model_acts(u, &A, B);
    free(u->acts.scratch);
    u->acts.n_scratch = model_scratch(u, B);
    u->acts.scratch = xmalloc_big((u->acts.n_scratch ? u->acts.n_scratch : 1) * sizeof(float));
    u->acts.max_batch = B;
    u->acts.n_thr = nn_get_threads();
    unet_wino_alloc_at_use(u);
}

