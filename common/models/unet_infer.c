/* diffusers UNet2DModel: the inference-only layout (unet_alloc_infer). Sampling needs none of
   what a backward reads, so only the skip connections (read again by the up blocks) and the
   time embedding (read by every resnet) get their own storage; every other activation lives
   in one of a few shared buffers ("slabs") sized for the largest layer that uses it. On the
   google/ddpm-cifar10-32 shape at batch 16 that is about 160 MB instead of the training
   layout's 670 MB (README, "Start-up and huge pages"). unet_forward runs unchanged over
   whichever layout the pointers describe. */
#include "models/unet.h"
#include "models/unet_wino.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "util/util.h"

/* Each slab is reused by layer after layer: which one a buffer goes to follows its lifetime
   in the forward (unet.c), checked there op by op:
   CAT  an up resnet's cat([h, skip]), its input until the shortcut at its end
   A    act1, then act2 (act1 is dead after conv1); an attention's norm output, then its ao;
        an upsampler's upsampled input; conv_norm_out's silu
   H    h1; an attention's tokens, then its projection (tok is dead after q, k, v)
   P0/1 the hidden state between blocks of the mid and up path, ping-pong: a layer's output
        never aliases its input
   Q/K/V/ATT an attention's q, k, v and softmax */
enum { SL_CAT, SL_A, SL_H, SL_P0, SL_P1, SL_Q, SL_K, SL_V, SL_ATT, N_SLABS };

struct ilay {
    float *base;           /* NULL: the sizing pass */
    size_t off;            /* floats of own storage so far */
    size_t slab[N_SLABS];  /* the largest use of each slab */
    size_t at[N_SLABS];    /* second pass: where each slab starts */
    int cur;               /* the P slab holding the hidden state */
};

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
}

static float *own(struct ilay *L, size_t n)
{
    float *p = L->base ? L->base + L->off : NULL;
    L->off += round16(n);
    return p;
}

static float *slab(struct ilay *L, int s, size_t n)
{
    if (L->base == NULL) {
        if (round16(n) > L->slab[s])
            L->slab[s] = round16(n);
        return NULL;
    }
    assert(round16(n) <= L->slab[s]);
    return L->base + L->at[s];
}

/* the next hidden state: the P slab that does not hold the current one */
static float *next_p(struct ilay *L, size_t n)
{
    L->cur = !L->cur;
    return slab(L, SL_P0 + L->cur, n);
}

static void norm_infer(struct ilay *L, struct unet_norm *n, int B, float *out)
{
    n->out = out;
    n->mean = own(L, (size_t)B * n->G);
    n->rstd = own(L, (size_t)B * n->G);
    /* a norm + SiLU that only a 3x3 conv reads: applied in its input transform */
    n->scale = out == NULL ? own(L, (size_t)B * n->C) : NULL;
    n->shift = out == NULL ? own(L, (size_t)B * n->C) : NULL;
}

/* out: where the block's output goes (own storage for a skip, else a P slab) */
static void resnet_infer(struct ilay *L, struct unet_resnet *r, int B, int is_up, float *out)
{
    size_t hw = (size_t)r->H * r->W;
    r->cat = is_up ? slab(L, SL_CAT, B * r->cin * hw) : NULL;
    norm_infer(L, &r->norm1, B, NULL);
    r->act1 = slab(L, SL_A, B * r->cin * hw);
    r->tproj = own(L, (size_t)B * r->cout);
    r->h1 = slab(L, SL_H, B * r->cout * hw);
    norm_infer(L, &r->norm2, B, NULL);
    r->act2 = slab(L, SL_A, B * r->cout * hw);
    r->out = out;
}

static void attn_infer(struct ilay *L, struct unet_attn *a, int B, float *out)
{
    size_t n = (size_t)B * a->T * a->C;
    norm_infer(L, &a->norm, B, slab(L, SL_A, n));
    a->tok = slab(L, SL_H, n);
    a->q = slab(L, SL_Q, n);
    a->k = slab(L, SL_K, n);
    a->v = slab(L, SL_V, n);
    a->att = slab(L, SL_ATT, (size_t)B * a->heads * a->T * a->T);
    a->ao = slab(L, SL_A, n);
    a->proj = slab(L, SL_H, n);
    a->out = out;
}

static void model_infer(struct unet *u, struct ilay *L, int B)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, C0 = c->block_out_channels[0], TE = c->time_embed_dim;
    size_t hw = (size_t)S * S;
    L->cur = 0;
    u->acts.x_in = own(L, B * c->in_channels * hw);
    u->acts.t_in = own(L, B);
    u->acts.temb = own(L, (size_t)B * C0);
    u->acts.te1 = own(L, (size_t)B * TE);
    u->acts.te1_act = own(L, (size_t)B * TE);
    u->acts.emb = own(L, (size_t)B * TE);
    u->acts.emb_act = own(L, (size_t)B * TE);
    u->acts.h0 = own(L, B * C0 * hw);
    for (int i = 0; i < c->n_levels; i++) { /* every block output here is a skip */
        struct unet_level *lv = &u->down[i];
        for (int j = 0; j < lv->n_res; j++) {
            struct unet_resnet *r = &lv->res[j];
            size_t n = (size_t)B * r->cout * r->H * r->W;
            if (lv->has_attn) {
                resnet_infer(L, r, B, 0, next_p(L, n));
                attn_infer(L, &lv->attn[j], B, own(L, n));
            } else {
                resnet_infer(L, r, B, 0, own(L, n));
            }
        }
        if (lv->has_sample) {
            struct unet_sample *s = &lv->sample;
            s->up = NULL;
            s->out = own(L, (size_t)B * s->C * (s->H / 2) * (s->W / 2));
        }
    }
    {
        struct unet_resnet *r = &u->mid_res[0];
        size_t n = (size_t)B * r->cout * r->H * r->W;
        resnet_infer(L, r, B, 0, next_p(L, n));
        if (c->add_attention)
            attn_infer(L, &u->mid_attn, B, next_p(L, n));
        resnet_infer(L, &u->mid_res[1], B, 0, next_p(L, n));
    }
    for (int i = 0; i < c->n_levels; i++) {
        struct unet_level *lv = &u->up[i];
        for (int j = 0; j < lv->n_res; j++) {
            struct unet_resnet *r = &lv->res[j];
            size_t n = (size_t)B * r->cout * r->H * r->W;
            resnet_infer(L, r, B, 1, next_p(L, n));
            if (lv->has_attn)
                attn_infer(L, &lv->attn[j], B, next_p(L, n));
        }
        if (lv->has_sample) {
            struct unet_sample *s = &lv->sample;
            size_t n = (size_t)B * s->C * 4 * s->H * s->W;
            s->up = slab(L, SL_A, n);
            s->out = next_p(L, n);
        }
    }
    norm_infer(L, &u->norm_out, B, NULL);
    u->acts.act_out = slab(L, SL_A, B * C0 * hw);
    u->acts.out = own(L, B * c->out_channels * hw);
}

void unet_alloc_infer(struct unet *u, int B, size_t mem_bytes)
{
    struct ilay L;
    assert(B > 0);
    unet_tiles_free(u); /* no backward runs on this layout */
    memset(&L, 0, sizeof L);
    model_infer(u, &L, B);
    for (int s = 0; s < N_SLABS; s++) {
        L.at[s] = L.off;
        L.off += L.slab[s];
    }
    free(u->acts.buf);
    u->acts.n = L.off;
    u->acts.buf = xmalloc_big(u->acts.n * sizeof(float));
    L.base = u->acts.buf;
    L.off = 0;
    model_infer(u, &L, B);
    unet_wino_alloc_infer(u, B, mem_bytes);
    u->acts.max_batch = B;
    u->acts.n_thr = nn_get_threads();
    u->acts.infer = 1;
}
