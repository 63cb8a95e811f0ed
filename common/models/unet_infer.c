/* diffusers UNet2DModel: the inference-only layout (unet_alloc_infer). Sampling needs none of
   what a backward reads, so only the skip connections (read again by the up blocks) and the
   time embedding (read by every resnet) get their own storage; every other activation lives
   in one of a few shared buffers ("slabs") sized for the largest layer that uses it. On the
   google/ddpm-cifar10-32 shape at batch 16 that is about 160 MB instead of the training
   layout's 670 MB (README, "Start-up and huge pages"). unet_forward runs unchanged over
   whichever layout the pointers describe. */
#include "models/unet.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_wino.h"
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
    u->x_in = own(L, B * c->in_channels * hw);
    u->t_in = own(L, B);
    u->temb = own(L, (size_t)B * C0);
    u->te1 = own(L, (size_t)B * TE);
    u->te1_act = own(L, (size_t)B * TE);
    u->emb = own(L, (size_t)B * TE);
    u->emb_act = own(L, (size_t)B * TE);
    u->h0 = own(L, B * C0 * hw);
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
    u->act_out = slab(L, SL_A, B * C0 * hw);
    u->out = own(L, B * c->out_channels * hw);
}

/* ---- the 3x3 stride-1 convs (Winograd) and the scratch ---- */
struct wconv {
    const float *w;
    int C, H, W, OC;
};

static int add_conv(struct wconv *v, int n, const float *w, int C, int H, int W, int OC)
{
    v[n] = (struct wconv){w, C, H, W, OC};
    return n + 1;
}

/* every Winograd conv of the forward, in order; v: room for all (see n_wconv) */
static int list_convs(const struct unet *u, struct wconv *v)
{
    const struct unet_config *c = &u->cfg;
    int S = c->sample_size, n = 0;
    n = add_conv(v, n, u->conv_in_w, c->in_channels, S, S, c->block_out_channels[0]);
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < c->n_levels; i++) {
            const struct unet_level *lv = d ? &u->up[i] : &u->down[i];
            for (int j = 0; j < lv->n_res; j++) {
                const struct unet_resnet *r = &lv->res[j];
                n = add_conv(v, n, r->conv1_w, r->cin, r->H, r->W, r->cout);
                n = add_conv(v, n, r->conv2_w, r->cout, r->H, r->W, r->cout);
            }
            if (d && lv->has_sample) {
                const struct unet_sample *s = &lv->sample;
                n = add_conv(v, n, s->w, s->C, 2 * s->H, 2 * s->W, s->C);
            }
            if (d == 0 && i == c->n_levels - 1)
                for (int j = 0; j < 2; j++) {
                    const struct unet_resnet *r = &u->mid_res[j];
                    n = add_conv(v, n, r->conv1_w, r->cin, r->H, r->W, r->cout);
                    n = add_conv(v, n, r->conv2_w, r->cout, r->H, r->W, r->cout);
                }
        }
    n = add_conv(v, n, u->conv_out_w, c->block_out_channels[0], S, S, c->out_channels);
    return n;
}

static int n_wconv(const struct unet *u)
{
    int n = 2 + 4; /* conv_in, conv_out, the mid resnets */
    for (int i = 0; i < u->cfg.n_levels; i++)
        n += 2 * (u->down[i].n_res + u->up[i].n_res) + 1;
    return n;
}

static int by_area(const void *a, const void *b)
{
    const struct wconv *x = a, *y = b;
    long d = (long)x->H * x->W - (long)y->H * y->W;
    return d < 0 ? -1 : d > 0 ? 1 : (x->w > y->w) - (x->w < y->w); /* stable: param order */
}

/* The weight cache: the convs on the smallest maps first (their GEMMs have the fewest
   columns, so a transform at every use costs most next to them: 4x4 maps at a batch of 16
   are 16 columns a GEMM, 32x32 maps 1024) while the whole stays within mem_bytes; the rest
   share wino_tmp. Also sizes the scratch: one GEMM chunk of any conv, and conv3s2's
   im2col. */
static void wino_infer(struct unet *u, size_t mem_bytes)
{
    int nc = n_wconv(u);
    struct wconv *v = xmalloc((size_t)nc * sizeof *v);
    size_t total = 0, tmp = 0, scr = 0, most = 0, room;
    int n = list_convs(u, v);
    assert(n <= nc);
    for (int i = 0; i < n; i++) {
        size_t f = 36 * (size_t)v[i].C * v[i].OC;
        most = f > most ? f : most;
        f = nn_wino4_scratch(1, v[i].C, v[i].H, v[i].W, v[i].OC);
        scr = f > scr ? f : scr;
    }
    for (int i = 0; i < u->cfg.n_levels - 1; i++) { /* conv3s2's per-thread im2col slices */
        const struct unet_sample *s = &u->down[i].sample;
        size_t im = (size_t)nn_get_threads() * s->C * 9 * (s->H / 2) * (s->W / 2);
        scr = im > scr ? im : scr;
    }
    /* floats left for the cache when one uncached conv's transform needs room too */
    room = u->n_params + u->n_acts + scr + most;
    room = mem_bytes / sizeof(float) > room ? mem_bytes / sizeof(float) - room : 0;
    free(u->wino);
    free(u->wino_tmp);
    free(u->wino_off);
    u->wino_off = xmalloc((size_t)u->pt.n * sizeof *u->wino_off);
    for (int e = 0; e < u->pt.n; e++)
        u->wino_off[e] = UNET_WINO_NONE;
    qsort(v, (size_t)n, sizeof *v, by_area);
    for (int i = 0; i < n; i++) {
        size_t f = 36 * (size_t)v[i].C * v[i].OC;
        int e = param_find_ptr(&u->pt, v[i].w);
        if (u->wino_off[e] != UNET_WINO_NONE)
            continue; /* a weight used twice (none in diffusers) is cached once */
        if (total + f <= room) {
            u->wino_off[e] = total;
            total += f;
        } else if (f > tmp) {
            tmp = f;
        }
    }
    free(v);
    u->n_wino = total;
    u->n_wino_tmp = tmp;
    u->wino = total ? xmalloc_big(total * sizeof(float)) : NULL;
    u->wino_tmp = tmp ? xmalloc_big(tmp * sizeof(float)) : NULL;
    free(u->scratch);
    u->n_scratch = scr;
    u->scratch = xmalloc_big((scr ? scr : 1) * sizeof(float));
    unet_weights_changed(u);
}

void unet_alloc_infer(struct unet *u, int B, size_t mem_bytes)
{
    struct ilay L;
    assert(B > 0 && !u->keep_v);
    memset(&L, 0, sizeof L);
    model_infer(u, &L, B);
    for (int s = 0; s < N_SLABS; s++) {
        L.at[s] = L.off;
        L.off += L.slab[s];
    }
    free(u->acts);
    u->n_acts = L.off;
    u->acts = xmalloc_big(u->n_acts * sizeof(float));
    L.base = u->acts;
    L.off = 0;
    model_infer(u, &L, B);
    wino_infer(u, mem_bytes);
    u->max_batch = B;
    u->n_thr = nn_get_threads();
    u->infer = 1;
}
